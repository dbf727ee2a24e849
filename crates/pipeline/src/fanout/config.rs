//! The `[[pipeline.fanout]]` sections of `loupe.toml`: OTLP/HTTP exporters that forward
//! processed spans to other backends.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// One OTLP/HTTP (protobuf) exporter. Spans are forwarded after they are written, redacted and
/// priced, in batches, retried with backoff, from a bounded buffer that never slows ingestion.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFanoutConfig {
    /// A name for logs and `/metrics`. Default: the endpoint.
    pub name: Option<String>,
    /// The full OTLP/HTTP traces URL, e.g. `http://tempo:4318/v1/traces`.
    pub endpoint: String,
    /// Extra request headers, e.g. `{ authorization = "Bearer …" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Spans per request. Default: `512`.
    pub batch_size: Option<usize>,
    /// The longest a span waits for its batch to fill, in milliseconds. Default: `1000`.
    pub flush_interval_ms: Option<u64>,
    /// The most spans waiting to be sent; past it new spans are dropped (and counted).
    /// Default: `20000`.
    pub max_buffered_spans: Option<usize>,
    /// Timeout of one request, in seconds. Default: `10`.
    pub timeout_secs: Option<u64>,
    /// How long a batch is retried before it is given up (and counted as failed), in seconds.
    /// Default: `60`.
    pub max_retry_secs: Option<u64>,
}

/// A validated exporter config.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    pub name: String,
    pub endpoint: reqwest::Url,
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub max_buffered_spans: usize,
    pub timeout: Duration,
    pub max_retry: Duration,
}

impl FanoutConfig {
    pub fn from_raw(raw: &RawFanoutConfig) -> Result<FanoutConfig, Error> {
        let name = raw.name.clone().unwrap_or_else(|| raw.endpoint.clone());
        let place = format!("fanout ({name})");
        let endpoint = reqwest::Url::parse(&raw.endpoint)
            .map_err(|e| Error::Config(format!("{place}: endpoint: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(Error::Config(format!("{place}: endpoint must be http or https")));
        }
        let headers = raw
            .headers
            .iter()
            .map(|(key, value)| {
                let key = reqwest::header::HeaderName::try_from(key.as_str())
                    .map_err(|e| Error::Config(format!("{place}: header {key:?}: {e}")))?;
                let value = reqwest::header::HeaderValue::try_from(value.as_str())
                    .map_err(|e| Error::Config(format!("{place}: header {key}: {e}")))?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let batch_size = raw.batch_size.unwrap_or(512);
        let max_buffered_spans = raw.max_buffered_spans.unwrap_or(20_000);
        if batch_size == 0 || max_buffered_spans < batch_size {
            return Err(Error::Config(format!(
                "{place}: batch_size must be at least 1 and at most max_buffered_spans"
            )));
        }
        Ok(FanoutConfig {
            name,
            endpoint,
            headers,
            batch_size,
            flush_interval: Duration::from_millis(raw.flush_interval_ms.unwrap_or(1000).max(1)),
            max_buffered_spans,
            timeout: Duration::from_secs(raw.timeout_secs.unwrap_or(10).max(1)),
            max_retry: Duration::from_secs(raw.max_retry_secs.unwrap_or(60)),
        })
    }
}
