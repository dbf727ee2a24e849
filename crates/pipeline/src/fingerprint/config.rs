//! The `[pipeline.fingerprint]` section of `loupe.toml`.

use serde::Deserialize;

/// Fingerprints of the input messages and the system instructions (SHA-256, lowercase hex), on
/// every span with messages. They are computed after redaction and before the content policy,
/// so they exist even where content is not recorded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFingerprintConfig {
    /// Compute fingerprints. Default: `true`.
    pub enabled: Option<bool>,
}
