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
    /// Tail sampling, when on: spans are written with `Store::stage_spans` (they wait apart
    /// for their trace's decision, unless [`crate::sample::SampleConfig::kept_at_once`])
    /// instead of `Store::write_spans`.
    pub sampling: Option<crate::sample::SampleConfig>,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig {
            max_queued_spans: 200_000,
            max_batch_spans: 20_000,
            retry_after_secs: 1,
            sampling: None,
        }
    }
}
