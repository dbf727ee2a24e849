//! `loupe.toml`: the raw file format (every field optional; the doc comments are the user docs,
//! see `docs/configuration.md`), `LOUPE_*` environment overrides, and validation into [`Config`].
//!
//! Environment variables override the file: `LOUPE_<KEY>` sets a top-level key and
//! `LOUPE_<SECTION>__<KEY>` a key in a section (double underscore between levels), e.g.
//! `LOUPE_DATA_DIR=/var/lib/loupe` or `LOUPE_SERVER__HTTP_ADDR=0.0.0.0:4318`. Values are read as
//! TOML when they parse (`LOUPE_INGEST__MAX_BODY_BYTES=1048576`), else as strings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model::ProjectId;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where Loupe keeps its data (the SQLite database). Default: `./loupe-data`.
    pub data_dir: Option<PathBuf>,
    /// Listeners.
    #[serde(default)]
    pub server: RawServerConfig,
    /// OTLP receivers.
    #[serde(default)]
    pub ingest: RawIngestConfig,
    /// The write queue and the processors every span passes.
    #[serde(default)]
    pub pipeline: RawPipelineSection,
    /// Where spans are stored.
    #[serde(default)]
    pub store: RawStoreConfig,
    /// API keys and projects.
    #[serde(default)]
    pub auth: RawAuthConfig,
    /// The recording gateway: routes to LLM providers (see `docs/gateway.md`).
    #[serde(default)]
    pub gateway: gateway::RawGatewayConfig,
    /// Feedback on the record (see `docs/feedback.md`).
    #[serde(default)]
    pub feedback: api::feedback::RawFeedbackConfig,
    /// Per-user erasure: sealing users' content with per-user keys (see `docs/erasure.md`).
    #[serde(default)]
    pub erasure: RawErasureConfig,
    /// Tiered retention and retention-time downsampling (see `docs/pipeline.md`).
    #[serde(default)]
    pub retention: pipeline::retention::RawRetentionConfig,
}

/// `[erasure]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawErasureConfig {
    /// Seal the content of spans that name a user with that user's own key (in `keys.db` in the
    /// data dir), so erasing the user makes it unreadable everywhere. Default `true`.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerConfig {
    /// Address of the HTTP listener: OTLP/HTTP (`/v1/traces`), the API (`/api/v1`), `/metrics`
    /// and the console. Default `127.0.0.1:4318`; port 0 picks a free port.
    pub http_addr: Option<String>,
    /// Address of the OTLP/gRPC listener. Default `127.0.0.1:4317`; port 0 picks a free port.
    pub grpc_addr: Option<String>,
    /// Serve OTLP/gRPC at all. Default `true`.
    pub grpc_enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngestConfig {
    /// Largest OTLP request accepted, in bytes, both as sent and after gzip decompression
    /// (HTTP 413 / gRPC `RESOURCE_EXHAUSTED` past it). Default 67108864 (64 MiB).
    pub max_body_bytes: Option<usize>,
    /// Most request bytes being read and decoded at once over all requests; past it requests get
    /// a retryable 503. Default 4 × `max_body_bytes`.
    pub max_inflight_bytes: Option<usize>,
}

/// `[pipeline]`: the write queue, and one table per processor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipelineSection {
    /// Most spans waiting to be written. When the queue is full, exports get a retryable
    /// 503 / `UNAVAILABLE` with `Retry-After`. Default 200000.
    pub max_queued_spans: Option<usize>,
    /// Most spans written in one transaction (group commit). Default 20000.
    pub max_batch_spans: Option<usize>,
    /// Seconds clients are told to wait (`Retry-After`) when the queue is full. Default 1.
    pub retry_after_secs: Option<u32>,
    /// Content policy (see `docs/configuration.md`).
    #[serde(default)]
    pub content: pipeline::content::RawContentConfig,
    /// Redaction of personal data and secrets.
    #[serde(default)]
    pub redact: pipeline::redact::RawRedactConfig,
    /// Cost from the price table.
    #[serde(default)]
    pub price: pipeline::price::RawPriceConfig,
    /// Fingerprints of inputs and system instructions.
    #[serde(default)]
    pub fingerprint: pipeline::fingerprint::RawFingerprintConfig,
    /// Tail-sampling policies.
    #[serde(default)]
    pub sample: pipeline::sample::RawSampleConfig,
    /// OTLP exporters forwarding processed spans to other backends (`[[pipeline.fanout]]`).
    #[serde(default)]
    pub fanout: Vec<pipeline::fanout::RawFanoutConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStoreConfig {
    /// `sqlite` (default, embedded) or `clickhouse`. Implied by `url`.
    pub backend: Option<String>,
    /// A store URL: `sqlite` (the data dir), or `clickhouse://host:8123/db` (also set by
    /// `loupe serve --store URL` and `LOUPE_STORE`).
    pub url: Option<String>,
    /// Settings of the SQLite backend.
    #[serde(default)]
    pub sqlite: store_sqlite::RawSqliteConfig,
    /// Settings of the ClickHouse backend (`[store.clickhouse]`); its `url` may be left out when
    /// `store.url` names the server.
    pub clickhouse: Option<store_clickhouse::RawClickHouseConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthConfig {
    /// Refuse requests without an API key. Default: `true` when any key is configured here,
    /// else `false` (requests without a key go to the `default` project).
    pub require_key: Option<bool>,
    /// API keys and the project each one writes to and reads from.
    #[serde(default)]
    pub keys: Vec<RawApiKey>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    /// The project (1 to 64 lowercase letters, digits, `-`, `_`).
    pub project: String,
    /// Lowercase hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`). Preferred: the file
    /// then holds no secret.
    pub key_sha256: Option<String>,
    /// The key itself, for development; hashed when the file is read.
    pub key: Option<String>,
}

/// Validated settings of `loupe serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub grpc_addr: Option<SocketAddr>,
    pub ingest: ingest::IngestConfig,
    pub queue: pipeline::PipelineConfig,
    pub processors: pipeline::processors::RawPipelineConfig,
    pub fanout: Vec<pipeline::fanout::FanoutConfig>,
    pub sqlite: store_sqlite::SqliteConfig,
    /// Set when the store is ClickHouse; SQLite otherwise.
    pub clickhouse: Option<store_clickhouse::ClickHouseConfig>,
    pub auth: auth::AuthConfig,
    pub gateway: gateway::GatewayConfig,
    /// `[feedback]`: the grace period of feedback sent before its span.
    pub feedback: api::feedback::FeedbackConfig,
    /// Seal users' content with per-user keys (`[erasure] enabled`).
    pub erasure_enabled: bool,
    /// `[retention]`.
    pub retention: pipeline::retention::RetentionConfig,
}

/// Reads the config file (when given or when `./loupe.toml` exists) and applies `LOUPE_*`
/// overrides from `env`.
pub fn load(path: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<RawConfig> {
    let default_path = Path::new("loupe.toml");
    let path = match path {
        Some(path) => Some(path),
        None if default_path.exists() => Some(default_path),
        None => None,
    };
    let mut table = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str::<toml::Table>(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    apply_env(&mut table, env)?;
    let what = path.map_or("the configuration".to_owned(), |p| p.display().to_string());
    RawConfig::deserialize(toml::Value::Table(table)).with_context(|| format!("reading {what}"))
}

/// Top-level keys that `LOUPE_*` variables may set; other `LOUPE_*` variables (`LOUPE_URL`,
/// `LOUPE_API_KEY`, ...) belong to the command line.
const ENV_KEYS: &[&str] = &[
    "data_dir",
    "server",
    "ingest",
    "pipeline",
    "store",
    "auth",
    "gateway",
    "erasure",
    "feedback",
    "retention",
];

fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> anyhow::Result<()> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("LOUPE_") else { continue };
        let path: Vec<String> = rest.split("__").map(|part| part.to_ascii_lowercase()).collect();
        if !ENV_KEYS.contains(&path[0].as_str()) || path.iter().any(String::is_empty) {
            continue;
        }
        // A section needs a key (`LOUPE_STORE__URL`); `LOUPE_STORE` alone is the `--store` flag.
        if path.len() == 1 && path[0] != "data_dir" {
            continue;
        }
        let parsed = (path[0] != "data_dir")
            .then(|| toml::from_str::<toml::Table>(&format!("v = {value}")).ok())
            .flatten()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let mut at = &mut *table;
        for key in &path[..path.len() - 1] {
            let entry =
                at.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            at = match entry {
                toml::Value::Table(inner) => inner,
                _ => bail!("{name}: {key} is not a section"),
            };
        }
        at.insert(path[path.len() - 1].clone(), parsed);
    }
    Ok(())
}

fn socket_addr(name: &str, text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    let text = text.strip_prefix("http://").unwrap_or(text);
    let text = text.replace("localhost", "127.0.0.1");
    text.parse().with_context(|| format!("{name}: {text:?} is not an address like 127.0.0.1:4318"))
}

impl Config {
    pub fn from_raw(raw: RawConfig) -> anyhow::Result<Config> {
        let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("loupe-data"));
        let http_addr = socket_addr(
            "server.http_addr",
            raw.server.http_addr.as_deref().unwrap_or("127.0.0.1:4318"),
        )?;
        let grpc_addr = match raw.server.grpc_enabled.unwrap_or(true) {
            true => Some(socket_addr(
                "server.grpc_addr",
                raw.server.grpc_addr.as_deref().unwrap_or("127.0.0.1:4317"),
            )?),
            false => None,
        };

        let max_body_bytes = raw.ingest.max_body_bytes.unwrap_or(ingest::DEFAULT_MAX_BODY_BYTES);
        if !(1024..=1024 * 1024 * 1024).contains(&max_body_bytes) {
            bail!(
                "ingest.max_body_bytes must be between 1024 and 1073741824, got {max_body_bytes}"
            );
        }
        let max_inflight_bytes = raw.ingest.max_inflight_bytes.unwrap_or(4 * max_body_bytes);
        if max_inflight_bytes < max_body_bytes || max_inflight_bytes > u32::MAX as usize {
            bail!(
                "ingest.max_inflight_bytes must be at least max_body_bytes ({max_body_bytes}) and \
                 at most 4294967295, got {max_inflight_bytes}"
            );
        }

        let defaults = pipeline::PipelineConfig::default();
        let p = &raw.pipeline;
        let queue = pipeline::PipelineConfig {
            max_queued_spans: p.max_queued_spans.unwrap_or(defaults.max_queued_spans),
            max_batch_spans: p.max_batch_spans.unwrap_or(defaults.max_batch_spans),
            retry_after_secs: p.retry_after_secs.unwrap_or(defaults.retry_after_secs),
            // Set from the sampling settings when the pipeline starts.
            sampling: None,
        };
        if queue.max_queued_spans == 0 || queue.max_batch_spans == 0 {
            bail!("pipeline.max_queued_spans and pipeline.max_batch_spans must be at least 1");
        }
        if queue.max_queued_spans > u32::MAX as usize {
            bail!("pipeline.max_queued_spans must be at most 4294967295");
        }
        let processors = pipeline::processors::RawPipelineConfig {
            content: raw.pipeline.content,
            redact: raw.pipeline.redact,
            price: raw.pipeline.price,
            fingerprint: raw.pipeline.fingerprint,
            sample: raw.pipeline.sample,
        };
        let fanout = raw
            .pipeline
            .fanout
            .iter()
            .map(pipeline::fanout::FanoutConfig::from_raw)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| anyhow::anyhow!("pipeline.fanout: {error}"))?;

        let url = raw.store.url.as_deref().map(str::trim).filter(|url| !url.is_empty());
        let implied = match url {
            Some(url) if url.starts_with("clickhouse") || url.starts_with("http") => "clickhouse",
            Some("sqlite") | None => "sqlite",
            Some(other) => bail!(
                "store.url: {other:?} is not a store URL; use `sqlite` or \
                 `clickhouse://host:8123/database`"
            ),
        };
        let clickhouse = match raw.store.backend.as_deref().unwrap_or(implied) {
            "sqlite" => None,
            "clickhouse" => {
                let mut clickhouse = raw.store.clickhouse.clone().unwrap_or_default();
                if let Some(url) = url.filter(|_| implied == "clickhouse") {
                    clickhouse.url = url.to_owned();
                }
                if clickhouse.url.trim().is_empty() {
                    bail!("store: the clickhouse backend needs a URL (store.url or --store)");
                }
                if clickhouse.spill_dir.is_none() {
                    clickhouse.spill_dir = Some(data_dir.join("clickhouse-spill"));
                }
                Some(
                    store_clickhouse::ClickHouseConfig::from_raw(clickhouse)
                        .map_err(|error| anyhow::anyhow!("store.clickhouse: {error}"))?,
                )
            }
            other => {
                bail!("store.backend: unknown backend {other:?}; use \"sqlite\" or \"clickhouse\"")
            }
        };
        let sqlite = store_sqlite::SqliteConfig::from_raw(raw.store.sqlite, &data_dir)
            .map_err(anyhow::Error::msg)?;

        let mut keys = Vec::new();
        for (i, key) in raw.auth.keys.iter().enumerate() {
            let project = ProjectId::new(&key.project)
                .map_err(|error| anyhow::anyhow!("auth.keys[{i}].project: {error}"))?;
            let key_sha256 = match (&key.key_sha256, &key.key) {
                (Some(hash), None) => {
                    let hash = hash.trim().to_ascii_lowercase();
                    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        bail!("auth.keys[{i}].key_sha256 must be 64 hex characters");
                    }
                    hash
                }
                (None, Some(key)) if !key.trim().is_empty() => auth::hash_key(key.trim()),
                _ => bail!("auth.keys[{i}]: give exactly one of key_sha256 or key"),
            };
            keys.push(auth::ConfiguredKey { project, key_sha256 });
        }
        let require_key = raw.auth.require_key.unwrap_or(!keys.is_empty());
        // Route API keys come from the environment variables the routes name.
        let gateway =
            gateway::GatewayConfig::from_raw(raw.gateway, &|name| std::env::var(name).ok())
                .context("reading [gateway]")?;

        Ok(Config {
            data_dir,
            http_addr,
            grpc_addr,
            ingest: ingest::IngestConfig { max_body_bytes, max_inflight_bytes },
            queue,
            processors,
            fanout,
            sqlite,
            clickhouse,
            auth: auth::AuthConfig { keys, require_key },
            gateway,
            feedback: api::feedback::FeedbackConfig::from_raw(&raw.feedback)
                .map_err(anyhow::Error::msg)?,
            erasure_enabled: raw.erasure.enabled.unwrap_or(true),
            retention: pipeline::retention::RetentionConfig::from_raw(&raw.retention)
                .map_err(|error| anyhow::anyhow!("{error}"))?,
        })
    }
}

#[cfg(test)]
mod tests;
