//! The `[pipeline.redact]` section of `loupe.toml` and its validated form: compiled detectors,
//! key lists, and the per-project hash keys.

use std::collections::{BTreeMap, HashMap, HashSet};

use hmac::{Hmac, Mac};
use model::ProjectId;
use regex::{Regex, RegexSet};
use serde::Deserialize;
use sha2::Sha256;

use super::detectors::{BUILTINS, Check, Needs};
use crate::Error;

/// Redaction of personal data and secrets before anything is written. Every string value of a
/// span (attributes, event attributes, resource attributes, span name, status message, and in
/// the normalized view the messages, input/output text, documents, tags and metadata) is checked
/// by the detectors; a match becomes a typed placeholder with a keyed hash, e.g.
/// `<email:e_4f81a2c96b1d>`. The hash is HMAC-SHA256 with the project's key, so one value gives
/// the same placeholder everywhere in a project (it still joins across spans and traces) but
/// cannot be reversed or recomputed without the key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedactConfig {
    /// Run redaction. Default: `true`. Turning it off means personal data and secrets in spans
    /// are stored as sent.
    pub enabled: Option<bool>,
    /// The secret the placeholder hashes are keyed with (at least 16 bytes). Each project's key
    /// is derived from it unless `projects.<p>.key` sets one. Keep it secret and keep it stable:
    /// changing it changes every placeholder and hashed user id from then on. When unset, `loupe`
    /// generates one on first start and keeps it in the data directory.
    pub key: Option<String>,
    /// The built-in detectors to run. Default: all of them: `email`, `phone`, `card` (Luhn
    /// checked), `iban` (checksum), `ipv4`, `ipv6`, `openai_key`, `anthropic_key`, `aws_key`,
    /// `github_token`, `slack_token`, `google_key`, `jwt`, `bearer`, `ssn`.
    pub detectors: Option<Vec<String>>,
    /// Extra detectors: regular expressions (Rust `regex` syntax) with the kind used in their
    /// placeholder.
    #[serde(default)]
    pub patterns: Vec<RawRedactPattern>,
    /// Exact values to redact wherever they appear (names of customers, internal hostnames).
    #[serde(default)]
    pub values: Vec<RawRedactValues>,
    /// Attribute keys whose values are passed through untouched, added to the built-in list
    /// (model, provider and operation names, token counts, `service.*`, `telemetry.sdk.*`, ...).
    #[serde(default)]
    pub allow_keys: Vec<String>,
    /// Attribute keys whose whole value is replaced by its keyed hash, added to the built-in
    /// list (`user.id`, `enduser.id`, `enduser.pseudo.id`, `langfuse.user.id`,
    /// `traceloop.association.properties.user_id`, `llm.user`). The view's user id is hashed the
    /// same way.
    #[serde(default)]
    pub hash_keys: Vec<String>,
    /// How many hex characters of the hash a placeholder shows (4 to 64). Default: `12`.
    pub hash_chars: Option<usize>,
    /// Settings for one project (key: project id).
    #[serde(default)]
    pub projects: BTreeMap<String, RawRedactProjectConfig>,
}

/// A user-defined detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedactPattern {
    /// The placeholder's type, e.g. `order_id` gives `<order_id:o_…>`. Letters, digits and `_`.
    pub kind: String,
    /// The regular expression. A group named `secret` limits the replacement to that group.
    pub regex: String,
}

/// A list of exact values to redact.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedactValues {
    /// The placeholder's type. Letters, digits and `_`.
    pub kind: String,
    /// The values, matched as plain text.
    pub values: Vec<String>,
    /// Match regardless of letter case. Default: `false`.
    #[serde(default)]
    pub ignore_case: bool,
}

/// Redaction settings for one project.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedactProjectConfig {
    /// This project's hash key (at least 16 bytes), instead of the one derived from `key`.
    pub key: Option<String>,
}

/// One compiled detector.
pub(crate) struct Detector {
    pub(crate) kind: String,
    pub(crate) regex: Regex,
    pub(crate) check: Check,
    /// What a text must contain for this detector to redact anything in it.
    pub(crate) needs: Needs,
    /// The regex has a `secret` group and only that group is replaced.
    pub(crate) secret_group: bool,
    /// Matches are hashed in lowercase, so spellings that differ only in case join.
    pub(crate) fold_case: bool,
}

/// The validated redaction settings.
pub struct RedactConfig {
    pub(crate) detectors: Vec<Detector>,
    /// The same patterns as `detectors`, in the same order, to find which match in one pass
    /// (for short texts; long ones go through [`Needs`] first).
    pub(crate) set: RegexSet,
    pub(crate) allow_keys: HashSet<String>,
    pub(crate) hash_keys: HashSet<String>,
    pub(crate) hash_chars: usize,
    /// The keyed hash state for projects with their own key.
    pub(crate) project_keys: HashMap<String, Hmac<Sha256>>,
    /// The master key projects without their own key derive theirs from.
    pub(crate) master: Hmac<Sha256>,
}

impl std::fmt::Debug for RedactConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("RedactConfig")
            .field("detectors", &self.detectors.iter().map(|d| &d.kind).collect::<Vec<_>>())
            .field("n_allow_keys", &self.allow_keys.len())
            .field("hash_keys", &self.hash_keys)
            .finish_non_exhaustive()
    }
}

/// Keys whose values are structure, never personal data.
pub const DEFAULT_ALLOW_KEYS: &[&str] = &[
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.output.type",
    "gen_ai.tool.name",
    "gen_ai.tool.type",
    "gen_ai.tool.call.id",
    "gen_ai.agent.name",
    "gen_ai.agent.id",
    "gen_ai.workflow.name",
    "gen_ai.data_source.id",
    "gen_ai.prompt.name",
    "gen_ai.prompt.version",
    "llm.model_name",
    "llm.provider",
    "llm.system",
    "llm.request.type",
    "openinference.span.kind",
    "traceloop.span.kind",
    "langfuse.observation.type",
    "service.name",
    "service.namespace",
    "service.version",
    "service.instance.id",
    "telemetry.sdk.name",
    "telemetry.sdk.language",
    "telemetry.sdk.version",
    "telemetry.distro.name",
    "telemetry.distro.version",
    "deployment.environment",
    "deployment.environment.name",
    "http.request.method",
    "http.response.status_code",
    "http.route",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "db.system",
    "db.system.name",
    "error.type",
    "otel.status_code",
];

/// Keys holding a user's id, hashed whole.
pub const DEFAULT_HASH_KEYS: &[&str] = &[
    "user.id",
    "enduser.id",
    "enduser.pseudo.id",
    "langfuse.user.id",
    "traceloop.association.properties.user_id",
    "llm.user",
];

const MIN_KEY_BYTES: usize = 16;
const DEFAULT_HASH_CHARS: usize = 12;

fn check_kind(kind: &str) -> Result<(), Error> {
    let valid = !kind.is_empty()
        && kind.len() <= 32
        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::Config(format!("redact: kind {kind:?} must be 1 to 32 letters, digits or '_'")))
    }
}

fn hmac_key(key: &str, place: &str) -> Result<Hmac<Sha256>, Error> {
    if key.len() < MIN_KEY_BYTES {
        return Err(Error::Config(format!("{place} must be at least {MIN_KEY_BYTES} bytes long")));
    }
    // HMAC accepts keys of any length, so this cannot fail.
    Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|e| Error::Config(format!("{place}: {e}")))
}

impl RedactConfig {
    pub fn from_raw(raw: &RawRedactConfig) -> Result<RedactConfig, Error> {
        let key = raw.key.as_deref().ok_or_else(|| {
            Error::Config("redact.key is not set (the app sets a generated one by default)".into())
        })?;
        let master = hmac_key(key, "redact.key")?;
        let mut project_keys = HashMap::new();
        for (id, project) in &raw.projects {
            ProjectId::new(id).map_err(|e| Error::Config(format!("redact.projects: {e}")))?;
            if let Some(key) = &project.key {
                project_keys
                    .insert(id.clone(), hmac_key(key, &format!("redact.projects.{id}.key"))?);
            }
        }

        let mut detectors = Vec::new();
        let wanted: Vec<String> = match &raw.detectors {
            Some(names) => names.clone(),
            None => BUILTINS.iter().map(|b| b.kind.to_owned()).collect(),
        };
        for name in &wanted {
            if !BUILTINS.iter().any(|b| b.kind == name) {
                let known: Vec<&str> = BUILTINS.iter().map(|b| b.kind).collect();
                return Err(Error::Config(format!(
                    "redact.detectors: unknown detector {name:?}; known: {}",
                    known.join(", ")
                )));
            }
        }
        for builtin in BUILTINS.iter().filter(|b| wanted.iter().any(|w| w == b.kind)) {
            let regex = Regex::new(builtin.pattern)
                .map_err(|e| Error::Config(format!("built-in detector {}: {e}", builtin.kind)))?;
            detectors.push(Detector {
                kind: builtin.kind.to_owned(),
                secret_group: regex.capture_names().any(|n| n == Some("secret")),
                regex,
                check: builtin.check,
                needs: builtin.needs,
                fold_case: builtin.fold_case(),
            });
        }
        for pattern in &raw.patterns {
            check_kind(&pattern.kind)?;
            let regex = Regex::new(&pattern.regex)
                .map_err(|e| Error::Config(format!("redact.patterns ({}): {e}", pattern.kind)))?;
            if regex.is_match("") {
                return Err(Error::Config(format!(
                    "redact.patterns ({}): the pattern matches empty text",
                    pattern.kind
                )));
            }
            detectors.push(Detector {
                kind: pattern.kind.clone(),
                secret_group: regex.capture_names().any(|n| n == Some("secret")),
                regex,
                check: Check::None,
                needs: Needs::Nothing,
                fold_case: false,
            });
        }
        for values in &raw.values {
            check_kind(&values.kind)?;
            let alternatives: Vec<String> =
                values.values.iter().filter(|v| !v.is_empty()).map(|v| regex::escape(v)).collect();
            if alternatives.is_empty() {
                continue;
            }
            let flags = if values.ignore_case { "(?i)" } else { "" };
            let regex = Regex::new(&format!("{flags}(?:{})", alternatives.join("|")))
                .map_err(|e| Error::Config(format!("redact.values ({}): {e}", values.kind)))?;
            detectors.push(Detector {
                kind: values.kind.clone(),
                regex,
                check: Check::None,
                needs: Needs::Nothing,
                secret_group: false,
                fold_case: values.ignore_case,
            });
        }
        let set = RegexSet::new(detectors.iter().map(|d| d.regex.as_str()))
            .map_err(|e| Error::Config(format!("redact: {e}")))?;

        let hash_chars = raw.hash_chars.unwrap_or(DEFAULT_HASH_CHARS);
        if !(4..=64).contains(&hash_chars) {
            return Err(Error::Config(format!(
                "redact.hash_chars must be between 4 and 64, got {hash_chars}"
            )));
        }
        let hash_keys: HashSet<String> = DEFAULT_HASH_KEYS
            .iter()
            .map(|k| (*k).to_owned())
            .chain(raw.hash_keys.iter().cloned())
            .collect();
        let allow_keys = DEFAULT_ALLOW_KEYS
            .iter()
            .map(|k| (*k).to_owned())
            .chain(raw.allow_keys.iter().cloned())
            .filter(|k| !hash_keys.contains(k))
            .collect();
        Ok(RedactConfig { detectors, set, allow_keys, hash_keys, hash_chars, project_keys, master })
    }

    /// The keyed hash state of a project: its own key, else one derived from the master key.
    pub(crate) fn project_key(&self, project: &str) -> Hmac<Sha256> {
        if let Some(key) = self.project_keys.get(project) {
            return key.clone();
        }
        let mut mac = self.master.clone();
        mac.update(b"loupe project key\0");
        mac.update(project.as_bytes());
        let derived = mac.finalize().into_bytes();
        // HMAC accepts keys of any length, so this cannot fail.
        Hmac::<Sha256>::new_from_slice(&derived).unwrap_or_else(|_| self.master.clone())
    }
}
