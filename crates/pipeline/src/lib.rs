//! The processing pipeline. Receivers (`ingest`'s OTLP endpoints, the `gateway`) hand it batches
//! of raw spans; it derives each span's normalized view, runs the configured processors in order
//! (redact, price, fingerprint, ...), and writes the result through [`store::Store`] with group
//! commit: one store write for many requests, each request acknowledged only when its spans are
//! durable. Span events that arrive apart from their spans (OTLP log records) take the same
//! path ([`Pipeline::submit_events`]) and are merged into their stored span by the writer (see
//! `merge.rs`).
//!
//! **Architecture Invariant:** this is the only path by which spans reach a store, so nothing
//! can skip redaction.
//!
//! **Architecture Invariant:** memory is bounded. The queue is measured in spans; when it is
//! full, [`Pipeline::submit`] fails at once with [`Error::Overloaded`] (a retryable 503 / gRPC
//! `UNAVAILABLE` at the boundary) instead of waiting.

mod config;
mod merge;
#[cfg(test)]
mod merge_tests;
mod processor;
mod writer;

pub mod content;
pub mod fanout;
pub mod fingerprint;
#[cfg(test)]
mod golden;
pub mod price;
pub mod processors;
pub mod redact;
pub mod retention;
pub mod sample;

use std::sync::Arc;

use model::{ErrorCode, ProjectId, RawSpan, SpanEvent, SpanId, StoredSpan, TraceId};
use store::{Store, WriteStats};

pub use config::PipelineConfig;
pub use processor::{Processor, ProcessorChain};
pub use writer::WriterStats;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The write queue is full; retry after `retry_after_secs`.
    #[error("write queue is full ({queued_spans} spans waiting); retry after {retry_after_secs}s")]
    Overloaded { queued_spans: u64, retry_after_secs: u32 },
    /// One batch is larger than the whole queue can ever hold.
    #[error("batch of {n_spans} spans exceeds the write queue capacity of {capacity} spans")]
    BatchTooLarge { n_spans: usize, capacity: usize },
    /// The store failed the write; nothing of the batch is acknowledged.
    #[error("store write failed")]
    Store(#[source] store::Error),
    /// The pipeline is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// A processor section of the config is invalid (bad regex, unknown detector, bad price).
    #[error("invalid pipeline config: {0}")]
    Config(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Overloaded { .. } | Error::ShuttingDown => ErrorCode::Unavailable,
            Error::BatchTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::Config(_) => ErrorCode::BadRequest,
            Error::Store(e) => match e.code() {
                ErrorCode::BadRequest => ErrorCode::Internal,
                code => code,
            },
        }
    }

    /// Seconds a client should wait before retrying, for retryable errors.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Error::Overloaded { retry_after_secs, .. } => Some(*retry_after_secs),
            Error::Store(e) if e.code().is_retryable() => Some(5),
            Error::ShuttingDown => Some(5),
            _ => None,
        }
    }
}

/// Batches up to this many spans are processed on the calling task.
const INLINE_PROCESS_SPANS: usize = 64;

/// A batch of raw spans from one receiver request, all in one project.
#[derive(Debug, Clone)]
pub struct Batch {
    pub project: ProjectId,
    pub spans: Vec<RawSpan>,
}

/// Span events from one receiver request (OTLP log records holding GenAI events), all in one
/// project.
#[derive(Debug, Clone)]
pub struct EventBatch {
    pub project: ProjectId,
    pub events: Vec<SpanEvent>,
}

/// A batch ready for the write queue.
struct Prepared {
    stored: Vec<StoredSpan>,
    /// Records the store encoded ahead, one per span.
    records: Option<Vec<Vec<u8>>>,
    /// The fanout's copy.
    forwarded: Option<Vec<RawSpan>>,
}

/// The handle receivers hold. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    processors: Arc<ProcessorChain>,
    writer: writer::WriterHandle,
    store: Arc<dyn Store>,
    /// Forwards written spans to other backends (see [`fanout`]), when configured.
    fanout: Option<Arc<fanout::Fanout>>,
    /// Runs on each processed batch just before it is queued (see [`PreWrite`]).
    pre_write: Option<PreWrite>,
}

/// The last step of a batch before the write queue, after fanout has taken its copy: `loupe
/// serve` seals users' content there (`vault::SealingStore::seal_spans`). It runs where the
/// batch was processed, so concurrent requests do it in parallel instead of the one writer doing
/// it for every group commit. An error fails that batch's submit.
pub type PreWrite = Arc<dyn Fn(&mut [StoredSpan]) -> Result<(), store::Error> + Send + Sync>;

impl Pipeline {
    /// Starts the writer task on the current tokio runtime. Call [`Pipeline::shutdown`] to
    /// flush and stop it.
    pub fn start(
        config: PipelineConfig,
        processors: ProcessorChain,
        store: Arc<dyn Store>,
    ) -> Pipeline {
        let processors = Arc::new(processors);
        let writer = writer::WriterHandle::start(&config, store.clone(), processors.clone());
        Pipeline { processors, writer, store, fanout: None, pre_write: None }
    }

    /// Forwards every written batch to these exporters; [`Pipeline::shutdown`] stops them.
    pub fn with_fanout(mut self, fanout: Arc<fanout::Fanout>) -> Pipeline {
        self.fanout = Some(fanout);
        self
    }

    /// Normalizes and processes a batch, then waits until it is durably written. Fails at once
    /// with [`Error::Overloaded`] when the queue is full.
    pub async fn submit(&self, batch: Batch) -> Result<WriteStats, Error> {
        // Normalizing and processing is CPU work; a large batch runs on the blocking pool so it
        // does not stall the async workers serving other requests.
        let Prepared { stored, records, forwarded } = if batch.spans.len() > INLINE_PROCESS_SPANS {
            let pipeline = self.clone();
            tokio::task::spawn_blocking(move || pipeline.prepare(batch))
                .await
                .map_err(|_| Error::ShuttingDown)??
        } else {
            self.prepare(batch)?
        };
        if stored.is_empty() {
            return Ok(WriteStats::default());
        }
        let res = self.writer.write(stored, records).await;
        if let (Some(fanout), Some(forwarded), true) = (&self.fanout, forwarded, res.is_ok()) {
            fanout.enqueue(forwarded);
        }
        res
    }

    /// Processes span events that arrived apart from their spans (GenAI events sent as OTLP log
    /// records) like the events of a span, saves them durably and merges them into their spans
    /// (now for spans already stored, else when the span is written). Fails at once with
    /// [`Error::Overloaded`] when the queue is full (an event counts as a span).
    pub async fn submit_events(&self, batch: EventBatch) -> Result<WriteStats, Error> {
        let EventBatch { project, events } = batch;
        if events.is_empty() {
            return Ok(WriteStats::default());
        }
        let events = if events.len() > INLINE_PROCESS_SPANS {
            let processors = self.processors.clone();
            let project = project.clone();
            tokio::task::spawn_blocking(move || {
                merge::process_events(&processors, &project, events)
            })
            .await
            .map_err(|_| Error::ShuttingDown)?
        } else {
            merge::process_events(&self.processors, &project, events)
        };
        self.writer.write_events(project, events).await
    }

    /// Merges saved span events into these spans (see [`merge`]): for spans stored outside
    /// the writer, by tail sampling when it keeps a staged trace. Runs in the writer task.
    pub async fn merge_events(
        &self,
        spans: impl IntoIterator<Item = (ProjectId, TraceId, SpanId)>,
    ) -> Result<(), Error> {
        let mut keys = writer::Keys::new();
        for (project, trace_id, span_id) in spans {
            keys.entry(project).or_default().insert((trace_id, span_id));
        }
        self.writer.merge_events(keys).await
    }

    /// Sets the step run on each processed batch just before it is queued for the write.
    pub fn with_pre_write(mut self, pre_write: PreWrite) -> Pipeline {
        self.pre_write = Some(pre_write);
        self
    }

    /// Processes a batch, takes the fanout's copy, runs the pre-write step, then has the store
    /// encode the records (`Store::encode_records`), so the one writer does not.
    fn prepare(&self, batch: Batch) -> Result<Prepared, Error> {
        let mut stored = self.process(batch);
        if stored.is_empty() {
            return Ok(Prepared { stored, records: None, forwarded: None });
        }
        let forwarded = self.fanout.as_ref().map(|fanout| fanout.prepare(&stored));
        if let Some(pre_write) = &self.pre_write {
            pre_write(&mut stored).map_err(Error::Store)?;
        }
        // A batch the store cannot encode ahead is encoded by the writer, which reports errors.
        let records = self.store.encode_records(&stored).ok().flatten();
        Ok(Prepared { stored, records, forwarded })
    }

    /// Normalizes and processes a batch without writing it (CPU only; also used by tests and by
    /// `loupe reindex`).
    pub fn process(&self, batch: Batch) -> Vec<StoredSpan> {
        let Batch { project, spans } = batch;
        let mut stored: Vec<StoredSpan> = spans
            .into_iter()
            .map(|raw| {
                let view = normalize::derive_view(&raw);
                StoredSpan { project: project.clone(), raw, view }
            })
            .collect();
        self.processors.process(&mut stored);
        stored
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Stops accepting batches, writes what is queued, and waits for the writer to finish.
    pub async fn shutdown(&self) {
        self.writer.shutdown().await;
        if let Some(fanout) = &self.fanout {
            fanout.shutdown().await;
        }
    }
}

/// For tests: a pipeline with the default processors (and a fixed redaction key) writing to a
/// real SQLite store in `dir`.
#[cfg(test)]
pub(crate) fn sqlite_test_pipeline(dir: &std::path::Path) -> Pipeline {
    let store =
        store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(dir)).expect("store opens");
    let mut raw: processors::RawPipelineConfig = toml::from_str("").expect("config parses");
    raw.redact.key = Some("test-key-0123456789abcdef".to_owned());
    let processors = processors::Processors::from_raw(&raw).expect("config is valid");
    Pipeline::start(PipelineConfig::default(), processors.chain(), Arc::new(store))
}
