//! Measures the processor chain's cost: spans per second through normalize alone and through
//! normalize plus every processor (default config), on copies of the shared fixture trace with
//! distinct trace ids. Run with
//! `cargo run --release -p pipeline --example processors_bench [path/to/trace.otlp.json]`.

use std::time::Instant;

use model::{ProjectId, RawSpan, StoredSpan, TraceId};
use pipeline::processors::{Processors, RawPipelineConfig};

/// One way of processing a batch.
type Run<'a> = Box<dyn Fn(&mut Vec<StoredSpan>) + 'a>;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/fixtures/trace-48f.otlp.json".to_owned());
    let body = std::fs::read(&path)?;
    let decoded = otlp::decode_json(&body)?;
    let n_traces = 25_000u32;
    let mut raws: Vec<RawSpan> = Vec::with_capacity(decoded.spans.len() * n_traces as usize);
    for i in 0..n_traces {
        for span in &decoded.spans {
            let mut span = span.clone();
            let mut id = *span.trace_id.as_bytes();
            id[..4].copy_from_slice(&i.to_be_bytes());
            span.trace_id = TraceId::from_bytes(&id)?;
            raws.push(span);
        }
    }
    let mut raw_config = RawPipelineConfig::default();
    raw_config.redact.key = Some("bench-key-0123456789abcdef".to_owned());
    let processors = Processors::from_raw(&raw_config)?;
    let chain = processors.chain();
    let project = ProjectId::default_project();
    let started = Instant::now();
    let stored: Vec<StoredSpan> = raws
        .into_iter()
        .map(|raw| StoredSpan { project: project.clone(), view: normalize::derive_view(&raw), raw })
        .collect();
    let n = stored.len() as f64;
    println!(
        "{} spans; normalize: {:.2} us/span",
        stored.len(),
        started.elapsed().as_secs_f64() * 1e6 / n
    );
    let batches: Vec<Vec<StoredSpan>> = stored.chunks(100).map(<[StoredSpan]>::to_vec).collect();
    for round in 0..2 {
        // Each processor alone, then the whole chain, on fresh copies of the batches.
        let mut runs: Vec<(&str, Run)> = Vec::new();
        if let Some(p) = &processors.redact {
            let p = p.clone();
            runs.push(("redact", Box::new(move |b| pipeline::Processor::process(&*p, b))));
        }
        if let Some(p) = &processors.fingerprint {
            let p = p.clone();
            runs.push(("fingerprint", Box::new(move |b| pipeline::Processor::process(&*p, b))));
        }
        let content = processors.content.clone();
        runs.push(("content", Box::new(move |b| pipeline::Processor::process(&*content, b))));
        if let Some(p) = &processors.price {
            let p = p.clone();
            runs.push(("price", Box::new(move |b| pipeline::Processor::process(&*p, b))));
        }
        runs.push(("chain", Box::new(|b| chain.process(b))));
        for (name, run) in &runs {
            // Each batch is copied just before it is processed, so it is as warm in the cache
            // as a batch the pipeline has just decoded and normalized.
            let mut elapsed = std::time::Duration::ZERO;
            for batch in &batches {
                let mut copy = batch.clone();
                let started = Instant::now();
                run(&mut copy);
                elapsed += started.elapsed();
            }
            println!("round {round}: {name:<12} {:.2} us/span", elapsed.as_secs_f64() * 1e6 / n);
        }
    }
    Ok(())
}
