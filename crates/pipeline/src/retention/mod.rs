//! Tiered retention and retention-time downsampling: per project, spans keep their full
//! content for a while (`structure_after`, default 24 hours), then their message content is
//! removed with the structure kept ([`RetentionTier::Structure`]), then only the skeleton and
//! the content fingerprints are kept ([`RetentionTier::Fingerprints`], after
//! `fingerprints_after`, default 30 days), and whole traces are deleted after `delete_after`
//! (default 365 days). Optionally, traces older than `downsample.after` are decided with the
//! tail-sampling policies ([`crate::sample::decide`]) on what is stored, and the uninteresting
//! ones are deleted; the progress is a watermark kept in the store, so any of several nodes
//! writing one store can run it and a restart resumes.
//!
//! [`reduce`] is the pure transform of one span to a tier; [`Retention`] is the runner (one
//! pass with [`Retention::run_pass`], or in the background with [`Retention::start`]), which
//! works in bounded batches and yields between them so ingestion is not stalled. A dry run
//! reports what a pass would do and changes nothing. See `docs/pipeline.md`.
//!
//! [`RetentionTier::Structure`]: store::RetentionTier::Structure
//! [`RetentionTier::Fingerprints`]: store::RetentionTier::Fingerprints

mod config;
mod reduce;
mod runner;
#[cfg(test)]
mod tests;

pub use config::{
    Ages, DownsampleConfig, RawDownsampleConfig, RawRetentionConfig, RawRetentionProject,
    RetentionConfig, parse_age,
};
pub use reduce::reduce;
pub use runner::{
    Clock, DOWNSAMPLE_WATERMARK_KEY, PassReport, ProjectReport, Retention, RetentionStats,
    SystemClock,
};
