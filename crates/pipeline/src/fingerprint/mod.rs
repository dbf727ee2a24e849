//! The `fingerprint` processor: SHA-256 of the normalized input messages and of the system
//! instructions, as `view.input_fingerprint` / `view.system_fingerprint` and the attributes
//! `loupe.fingerprint.input` / `loupe.fingerprint.system`, so a retry storm (one input sent
//! again and again) and a prompt-template change (a new system fingerprint for an operation)
//! are each one query.
//!
//! **Order:** fingerprints are computed on content *after* redaction and *before* the content
//! policy removes or cuts it. After redaction, because a fingerprint of raw text could be
//! reversed by guessing (an input that is a template plus an SSN has only 10^9 candidates);
//! redaction placeholders are keyed hashes that are stable within a project, so equal inputs
//! still give equal fingerprints and inputs that differ only in a personal value still differ.
//! Before removal, because a project that records no content (or samples it) still needs retry
//! storms and template changes to be visible, and a fingerprint outlives its content under
//! tiered retention. Before truncation, so long prompts differing only past the size cap still
//! differ. The chain built by `processors` therefore runs `redact`, then `fingerprint`, then
//! `content`.

mod config;
#[allow(clippy::module_inception, reason = "the component folder layout names the file after it")]
mod fingerprint;
#[cfg(test)]
mod tests;

pub use config::RawFingerprintConfig;
pub use fingerprint::{
    FingerprintCounters, FingerprintProcessor, INPUT_FINGERPRINT_ATTR, SYSTEM_FINGERPRINT_ATTR,
    fingerprints,
};
