//! The `sample` component: tail-sampling policies and the decision on a complete trace.
//!
//! Only the decision is implemented here. The sampler around it is "write first, decide after":
//! spans are stored at once (so an acknowledged span survives a crash during the decision
//! wait); a background task decides each trace when its root has ended and the decision wait
//! has passed, and deletes dropped traces from the store. That task needs store methods that do
//! not exist yet (`delete_traces` and friends; see `docs/pipeline.md`), so `sample` is not part
//! of the processor chain.

mod config;
#[allow(clippy::module_inception, reason = "the component folder layout names the file after it")]
mod sample;
#[cfg(test)]
mod tests;

pub use config::{Policy, RawPolicy, RawPolicyKind, RawSampleConfig, SampleConfig};
pub use sample::{Decision, DecisionInputs, Feedback, decide};
