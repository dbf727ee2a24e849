//! The `redact` processor: personal data and secrets never reach disk. Built-in detectors
//! (email, phone, payment cards, IBAN, IP addresses, provider API keys and tokens, SSNs), user
//! regexes and exact-value lists find sensitive text in every string of the raw span and of the
//! normalized view; each match becomes a typed placeholder with a keyed hash (`<email:e_…>`),
//! stable within a project and not reversible. User-id attributes are hashed whole. Counts per
//! kind go to `view.flags.redactions` and the attribute `loupe.redactions.count`.

mod config;
mod detectors;
#[allow(clippy::module_inception, reason = "the component folder layout names the file after it")]
mod redact;
#[cfg(test)]
mod tests;

pub use config::{
    DEFAULT_ALLOW_KEYS, DEFAULT_HASH_KEYS, RawRedactConfig, RawRedactPattern,
    RawRedactProjectConfig, RawRedactValues, RedactConfig,
};
pub use redact::{REDACTIONS_COUNT_ATTR, RedactCounters, RedactProcessor};
