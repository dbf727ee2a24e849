//! Pipeline settings, already validated by `app`.

/// How the write queue and group commit behave.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The most spans waiting to be written; past this, submits fail with `Overloaded`.
    pub max_queued_spans: usize,
    /// The most spans written in one store call (one transaction).
    pub max_batch_spans: usize,
    /// What `Retry-After` says when the queue is full.
    pub retry_after_secs: u32,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig { max_queued_spans: 200_000, max_batch_spans: 20_000, retry_after_secs: 1 }
    }
}
