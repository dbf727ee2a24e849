//! Temporary probe.
fn main() {
    let body = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/fixture_trace_48f.json")).unwrap();
    let template = otlp::decode_json(&body).unwrap().spans;
    let mut spans = Vec::new();
    for _ in 0..2000 { spans.extend(template.iter().cloned()); }
    let json = otlp::to_json(&spans).to_string();
    drop(spans);
    eprintln!("json bytes {}", json.len());
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "decode" {
        let d = otlp::decode_json(json.as_bytes()).unwrap();
        eprintln!("spans {}", d.spans.len());
    }
}
