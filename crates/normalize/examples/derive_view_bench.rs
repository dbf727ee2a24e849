//! A throughput check for the ingest CPU path (not a timed test): decodes a protobuf request of
//! fixture-shaped traces, then derives the view of every span, and prints spans per second for
//! each step on one core.
//!
//! Run: `cargo run --release -p normalize --example derive_view_bench [FIXTURE_JSON]`.

use std::time::Instant;

use anyhow::Context;
use prost::Message;

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/fixture_trace_48f.json").to_owned()
    });
    let body = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
    let template = otlp::decode_json(&body).context("decoding the fixture")?.spans;
    anyhow::ensure!(!template.is_empty(), "the fixture has no spans");

    // 1,000 traces shaped like the fixture, each with its own trace id.
    let mut spans = Vec::with_capacity(template.len() * 1000);
    for i in 0..1000u64 {
        let mut trace_id = *template[0].trace_id.as_bytes();
        trace_id[..8].copy_from_slice(&(i + 1).to_be_bytes());
        let trace_id = model::TraceId::from_bytes(&trace_id).context("trace id")?;
        spans.extend(template.iter().cloned().map(|mut span| {
            span.trace_id = trace_id;
            span
        }));
    }
    let request = otlp::to_request(&spans).encode_to_vec();

    let rounds = 20;
    let started = Instant::now();
    let mut n_spans = 0usize;
    for _ in 0..rounds {
        n_spans += otlp::decode_protobuf(&request).context("decoding")?.spans.len();
    }
    let decode_rate = n_spans as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut n_views = 0usize;
    for _ in 0..rounds {
        for span in &spans {
            let view = normalize::derive_view(span);
            n_views += usize::from(view.span_type != model::SpanType::Other);
        }
    }
    let view_rate = (rounds * spans.len()) as f64 / started.elapsed().as_secs_f64();

    println!(
        "{} bytes per request of {} spans; decode_protobuf: {decode_rate:.0} spans/s; \
         derive_view: {view_rate:.0} spans/s ({n_views} typed views)",
        request.len(),
        spans.len()
    );
    Ok(())
}
