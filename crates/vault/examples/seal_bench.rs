//! What sealing costs on the write path: the same LLM spans (about 2 KB of content each, 500
//! users) written in batches of 1000 to a fresh SQLite store, directly and through
//! `SealingStore`, plus the cost of sealing and unsealing alone.
//!
//! ```sh
//! cargo run --release -p vault --example seal_bench -- 50000
//! ```

use std::sync::Arc;
use std::time::Instant;

use model::{KeyValue, Message, StoredSpan};
use store::Store;
use store::suite::{llm, span};

fn spans(n: u64) -> Vec<StoredSpan> {
    let prompt = "Summarize the customer's refund request and propose next steps. ".repeat(12);
    (0..n)
        .map(|i| {
            let mut res = llm(
                span("default", i / 4 + 1, i + 1, None, "chat", 0, 10),
                "gpt-4o",
                500,
                80,
                &prompt,
            );
            res.view.user_id = Some(format!("<user:u_{:012x}>", i % 500));
            res.view.output_messages = vec![Message::text("assistant", &prompt[..400])];
            res.raw.attributes.push(KeyValue::string("gen_ai.input.messages", prompt.clone()));
            res.raw.attributes.push(KeyValue::string("gen_ai.request.model", "gpt-4o"));
            res
        })
        .collect()
}

async fn write_all(store: &dyn Store, spans: &[StoredSpan]) -> f64 {
    let started = Instant::now();
    for batch in spans.chunks(1000) {
        store.write_spans(batch).await.unwrap_or_else(|e| panic!("{e}"));
    }
    spans.len() as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let spans = spans(n);

    let plain_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sealed_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let open = |dir: &std::path::Path| {
        store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(dir))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let plain = open(plain_dir.path());
    let key_vault =
        Arc::new(vault::Vault::open(sealed_dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let sealed = vault::SealingStore::new(Arc::new(open(sealed_dir.path())), key_vault.clone());

    let plain_rate = write_all(&plain, &spans).await;
    let sealed_rate = write_all(&sealed, &spans).await;
    // The same users again, in new traces: their keys exist now.
    let mut again = spans.clone();
    for span in &mut again {
        span.raw.trace_id =
            store::suite::trace_id(n + 1 + u64::from_be_bytes(*span.raw.span_id.as_bytes()) % n);
    }
    let plain_again = write_all(&plain, &again).await;
    let sealed_again = write_all(&sealed, &again).await;

    let mut copies = spans.clone();
    let started = Instant::now();
    for span in &mut copies {
        vault::seal(&key_vault, span).unwrap_or_else(|e| panic!("{e}"));
    }
    let seal_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let started = Instant::now();
    for span in &mut copies {
        vault::unseal(&key_vault, span).unwrap_or_else(|e| panic!("{e}"));
    }
    let unseal_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;

    println!("{n} spans, batches of 1000");
    println!("store writes, plain:  {plain_rate:>9.0} spans/s");
    println!(
        "store writes, sealed: {sealed_rate:>9.0} spans/s ({:+.1}%), 500 new users' keys made",
        (sealed_rate / plain_rate - 1.0) * 100.0
    );
    println!("again, plain:         {plain_again:>9.0} spans/s");
    println!(
        "again, sealed:        {sealed_again:>9.0} spans/s ({:+.1}%), keys cached",
        (sealed_again / plain_again - 1.0) * 100.0
    );
    println!("seal:   {seal_us:.2} µs/span");
    println!("unseal: {unseal_us:.2} µs/span");
}
