//! The `sample` component: tail sampling, "write first, decide after".
//!
//! Spans are stored at once, as when sampling is off, so an acknowledged span survives a crash
//! during the decision wait. The [`Sampler`] (a background task the app starts beside the
//! pipeline, not a step of the processor chain) decides each trace once it is complete, with
//! [`decide`] (a pure function of the trace, its feedback and the running p99 of its root name),
//! and deletes dropped traces from the store. See `docs/pipeline.md`.

mod config;
mod latency;
#[allow(clippy::module_inception, reason = "the component folder layout names the file after it")]
mod sample;
mod sampler;
#[cfg(test)]
mod sampler_tests;
#[cfg(test)]
mod tests;

pub use config::{Policy, RawPolicy, RawPolicyKind, RawSampleConfig, SampleConfig};
pub use latency::LatencyEstimator;
pub use sample::{
    Decision, DecisionInputs, Feedback, decide, feedback_from_record, feedback_from_spans,
};
pub use sampler::{PassReport, PolicyStats, Sampler, SamplerCore, SamplingStats};
