//! Temporary probe.
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "write" {
        let body = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/fixture_trace_48f.json")).unwrap();
        let template = otlp::decode_json(&body).unwrap().spans;
        let mut spans = Vec::new();
        for _ in 0..2000 { spans.extend(template.iter().cloned()); }
        std::fs::write("/tmp/jsonmem/body.json", otlp::to_json(&spans).to_string()).unwrap();
        return;
    }
    let json = std::fs::read("/tmp/jsonmem/body.json").unwrap();
    eprintln!("json bytes {}", json.len());
    if mode == "decode" {
        let d = otlp::decode_json(&json).unwrap();
        eprintln!("spans {}", d.spans.len());
    }
    if mode == "value" {
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        eprintln!("{}", v.is_object());
    }
}
