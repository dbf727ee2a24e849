//! The `fanout` component: optional OTLP/HTTP exporters that forward processed spans (redacted,
//! priced) to other backends (Jaeger, Tempo, another collector).
//!
//! **Where it hooks in:** [`crate::Pipeline::submit`] hands a copy of a batch to
//! [`Fanout::enqueue`] after the store write succeeded, so only acknowledged spans are forwarded
//! and a span is never forwarded twice because a client retried a failed write. Enqueueing
//! only appends to bounded buffers: a slow or down backend costs dropped spans (counted), never
//! ingestion latency. Spans are forwarded before tail sampling decides their trace; the other
//! backend sees every span Loupe stored.
//!
//! Forwarded spans are the raw spans as stored (after redaction and the content policy) plus
//! the attribute `loupe.cost.usd` (a decimal string) when the span was priced.

mod config;
mod exporter;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use model::{AnyValue, KeyValue, RawSpan, StoredSpan};
use tokio::sync::watch;

pub use config::{FanoutConfig, RawFanoutConfig};
pub use exporter::FanoutStats;

use crate::Error;
use crate::processors::ProcessorCounter;
use exporter::Exporter;

/// The configured exporters and their tasks. Share it with `Arc`.
pub struct Fanout {
    exporters: Vec<Arc<Exporter>>,
    stop: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Fanout {
    /// Starts one task per exporter on the current tokio runtime.
    pub fn start(configs: Vec<FanoutConfig>) -> Result<Fanout, Error> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Config(format!("fanout: cannot build the http client: {e}")))?;
        let (stop, stopped) = watch::channel(false);
        let exporters: Vec<Arc<Exporter>> =
            configs.into_iter().map(|config| Arc::new(Exporter::new(config))).collect();
        let tasks = exporters
            .iter()
            .map(|exporter| {
                let (exporter, client, stopped) =
                    (exporter.clone(), client.clone(), stopped.clone());
                tokio::spawn(async move { exporter.run(client, stopped).await })
            })
            .collect();
        Ok(Fanout { exporters, stop, tasks: tokio::sync::Mutex::new(tasks) })
    }

    /// Validates the `[[pipeline.fanout]]` sections and starts their exporters.
    pub fn from_raw(raw: &[RawFanoutConfig]) -> Result<Fanout, Error> {
        Fanout::start(raw.iter().map(FanoutConfig::from_raw).collect::<Result<_, _>>()?)
    }

    /// The copies to forward, made before the spans are handed to the writer.
    pub fn prepare(&self, spans: &[StoredSpan]) -> Vec<RawSpan> {
        spans
            .iter()
            .map(|span| {
                let mut raw = span.raw.clone();
                if let Some(cost) = span.view.cost {
                    raw.attributes
                        .push(KeyValue::new("loupe.cost.usd", AnyValue::String(cost.to_string())));
                }
                raw
            })
            .collect()
    }

    /// Adds spans to every exporter's buffer without waiting.
    pub fn enqueue(&self, spans: Vec<RawSpan>) {
        let Some((last, others)) = self.exporters.split_last() else { return };
        for exporter in others {
            exporter.enqueue(spans.clone());
        }
        last.enqueue(spans);
    }

    pub fn stats(&self) -> Vec<FanoutStats> {
        self.exporters.iter().map(|exporter| exporter.stats()).collect()
    }

    /// The counters in the shape of the processors' (`loupe_processor_fanout_*{exporter=…}`).
    pub fn counters(&self) -> Vec<ProcessorCounter> {
        let mut res = Vec::new();
        for stats in self.stats() {
            for (name, value) in [
                ("buffered_spans", stats.buffered_spans),
                ("sent_spans", stats.sent_spans),
                ("dropped_spans", stats.dropped_spans),
                ("failed_spans", stats.failed_spans),
                ("requests", stats.requests),
                ("retries", stats.retries),
            ] {
                res.push(ProcessorCounter {
                    processor: "fanout",
                    name,
                    labels: vec![("exporter", stats.name.clone())],
                    value,
                });
            }
        }
        res
    }

    /// Stops the tasks after one last attempt to send what is buffered, and waits for them.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for task in tasks {
            let _ = task.await;
        }
    }
}
