//! The `[gateway]` section of `loupe.toml`: routes to upstream providers, timeouts and the
//! recording queue. `RawGatewayConfig` mirrors the file (its doc comments are the user docs);
//! `GatewayConfig` is the validated form the gateway runs with.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// The `[gateway]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayConfig {
    /// Serve the gateway endpoints (`/v1/chat/completions`, `/v1/messages`, ...). Default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The route used by OpenAI-style endpoints when the model names no route
    /// (`"gpt-4o"` rather than `"openai/gpt-4o"`). Default `"openai"`.
    #[serde(default)]
    pub default_route: Option<String>,
    /// The route used by `/v1/messages` when the model names no route. Default `"anthropic"`.
    #[serde(default)]
    pub default_anthropic_route: Option<String>,
    /// Seconds to wait for a TCP/TLS connection to an upstream. Default 10.
    #[serde(default)]
    pub connect_timeout_secs: Option<f64>,
    /// Seconds an upstream may take to answer a non-streaming call in full, or to send the
    /// response headers of a streaming call. Default 600.
    #[serde(default)]
    pub request_timeout_secs: Option<f64>,
    /// Seconds a stream may stay silent between two chunks before the gateway gives up on it.
    /// Default 300.
    #[serde(default)]
    pub stream_idle_timeout_secs: Option<f64>,
    /// Largest request body accepted from a client, in bytes. Default 32 MiB.
    #[serde(default)]
    pub max_request_bytes: Option<usize>,
    /// Request and response bodies longer than this are recorded truncated, in bytes; 0 records
    /// no raw bodies (messages, parameters and usage are still recorded). Default 1 MiB.
    #[serde(default)]
    pub max_recorded_body_bytes: Option<usize>,
    /// The recording queue between the gateway and the store.
    #[serde(default)]
    pub recording: RawRecordingConfig,
    /// Named routes: `[gateway.routes.NAME]`. A request selects one with `model: "NAME/model"`
    /// or `model: "NAME"`. The routes `openai` and `anthropic` exist unless configured
    /// otherwise, pointing at the public APIs with the caller's own key.
    #[serde(default)]
    pub routes: BTreeMap<String, RawRouteConfig>,
}

/// `[gateway.recording]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecordingConfig {
    /// Calls waiting to be written. When full, recordings spill to a local file. Default 10000.
    #[serde(default)]
    pub queue_calls: Option<usize>,
    /// Most bytes of spilled recordings kept on disk; past this, recordings are dropped
    /// (counted on `/metrics` and logged). Default 256 MiB.
    #[serde(default)]
    pub spill_max_bytes: Option<u64>,
    /// Seconds between attempts to replay spilled recordings into the store. Default 1.
    #[serde(default)]
    pub replay_interval_secs: Option<f64>,
}

/// `[gateway.routes.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteConfig {
    /// The API the upstream speaks: `openai` (also vLLM, Ollama, llama.cpp, Together, Groq and
    /// any OpenAI-compatible server) or `anthropic`.
    pub kind: String,
    /// The upstream's base URL including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Name of the environment variable holding this route's API key. Without one, the caller's
    /// `Authorization` / `x-api-key` header is passed through.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Send this model upstream whatever the request named.
    #[serde(default)]
    pub model: Option<String>,
    /// The `gen_ai.provider.name` recorded for calls on this route. Defaults to the kind.
    #[serde(default)]
    pub provider: Option<String>,
    /// Routes to try in order when this one fails with a connection error, 429 or 5xx.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Extra attempts on this route after a connection error, 429 or 5xx. Default 0.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Wait before the first retry, doubled for each next one, in milliseconds. Default 200.
    #[serde(default)]
    pub retry_backoff_ms: Option<u64>,
}

/// The API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    OpenAi,
    Anthropic,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::OpenAi => "openai",
            RouteKind::Anthropic => "anthropic",
        }
    }
}

/// A validated route.
#[derive(Clone)]
pub struct RouteConfig {
    pub name: String,
    pub kind: RouteKind,
    /// Without a trailing slash.
    pub base_url: String,
    /// Invariant: never logged, recorded or printed (`Debug` hides it).
    pub api_key: Option<String>,
    pub model: Option<String>,
    pub provider: String,
    pub fallbacks: Vec<String>,
    pub retries: u32,
    pub retry_backoff: Duration,
    /// Host and port of `base_url`, for `server.address` / `server.port`.
    pub host: String,
    pub port: u16,
}

impl std::fmt::Debug for RouteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .field("model", &self.model)
            .field("provider", &self.provider)
            .field("fallbacks", &self.fallbacks)
            .field("retries", &self.retries)
            .finish()
    }
}

/// The recording queue, validated.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    pub queue_calls: usize,
    pub spill_max_bytes: u64,
    pub replay_interval: Duration,
}

/// The validated `[gateway]` section.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub enabled: bool,
    pub default_route: String,
    pub default_anthropic_route: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub max_request_bytes: usize,
    pub max_recorded_body_bytes: usize,
    pub recording: RecordingConfig,
    /// Invariant: every fallback names a route here, of the same kind.
    pub routes: BTreeMap<String, RouteConfig>,
}

impl GatewayConfig {
    /// Validates the section. `env` looks up environment variables for `api_key_env` (only the
    /// `app` crate reads the real environment; tests pass a map).
    pub fn from_raw(
        raw: RawGatewayConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GatewayConfig, Error> {
        let mut raw_routes = raw.routes;
        raw_routes.entry("openai".to_owned()).or_insert_with(|| RawRouteConfig {
            kind: "openai".to_owned(),
            base_url: "https://api.openai.com/v1".to_owned(),
            api_key_env: None,
            model: None,
            provider: None,
            fallbacks: Vec::new(),
            retries: None,
            retry_backoff_ms: None,
        });
        raw_routes.entry("anthropic".to_owned()).or_insert_with(|| RawRouteConfig {
            kind: "anthropic".to_owned(),
            base_url: "https://api.anthropic.com/v1".to_owned(),
            api_key_env: None,
            model: None,
            provider: None,
            fallbacks: Vec::new(),
            retries: None,
            retry_backoff_ms: None,
        });
        let mut routes = BTreeMap::new();
        for (name, raw_route) in raw_routes {
            let route = route_from_raw(&name, raw_route, env)?;
            routes.insert(name, route);
        }
        for route in routes.values() {
            for fallback in &route.fallbacks {
                let Some(target) = routes.get(fallback) else {
                    return Err(Error::Config(format!(
                        "route {:?}: fallback {fallback:?} is not a configured route",
                        route.name
                    )));
                };
                if target.kind != route.kind {
                    return Err(Error::Config(format!(
                        "route {:?} ({}) cannot fall back to {fallback:?} ({})",
                        route.name,
                        route.kind.as_str(),
                        target.kind.as_str()
                    )));
                }
                if *fallback == route.name {
                    return Err(Error::Config(format!(
                        "route {:?} lists itself as a fallback",
                        route.name
                    )));
                }
            }
        }
        let default_route = raw.default_route.unwrap_or_else(|| "openai".to_owned());
        let default_anthropic_route =
            raw.default_anthropic_route.unwrap_or_else(|| "anthropic".to_owned());
        for (what, name, kind) in [
            ("default_route", &default_route, RouteKind::OpenAi),
            ("default_anthropic_route", &default_anthropic_route, RouteKind::Anthropic),
        ] {
            match routes.get(name) {
                Some(route) if route.kind == kind => {}
                Some(_) => {
                    return Err(Error::Config(format!(
                        "{what}: route {name:?} must be of kind {}",
                        kind.as_str()
                    )));
                }
                None => {
                    return Err(Error::Config(format!("{what}: no route named {name:?}")));
                }
            }
        }
        let recording = RecordingConfig {
            queue_calls: positive(raw.recording.queue_calls, 10_000, "recording.queue_calls")?,
            spill_max_bytes: raw.recording.spill_max_bytes.unwrap_or(256 << 20),
            replay_interval: secs(
                raw.recording.replay_interval_secs,
                1.0,
                "recording.replay_interval_secs",
            )?,
        };
        Ok(GatewayConfig {
            enabled: raw.enabled.unwrap_or(true),
            default_route,
            default_anthropic_route,
            connect_timeout: secs(raw.connect_timeout_secs, 10.0, "connect_timeout_secs")?,
            request_timeout: secs(raw.request_timeout_secs, 600.0, "request_timeout_secs")?,
            stream_idle_timeout: secs(
                raw.stream_idle_timeout_secs,
                300.0,
                "stream_idle_timeout_secs",
            )?,
            max_request_bytes: positive(raw.max_request_bytes, 32 << 20, "max_request_bytes")?,
            max_recorded_body_bytes: raw.max_recorded_body_bytes.unwrap_or(1 << 20),
            recording,
            routes,
        })
    }

    /// Route names, for error messages.
    pub fn route_names(&self) -> Vec<&str> {
        self.routes.keys().map(String::as_str).collect()
    }
}

fn route_from_raw(
    name: &str,
    raw: RawRouteConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RouteConfig, Error> {
    let valid_name = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid_name {
        return Err(Error::Config(format!(
            "route name {name:?}: use letters, digits, '-', '_' or '.'"
        )));
    }
    let kind = match raw.kind.as_str() {
        "openai" => RouteKind::OpenAi,
        "anthropic" => RouteKind::Anthropic,
        other => {
            return Err(Error::Config(format!(
                "route {name:?}: unknown kind {other:?} (expected \"openai\" or \"anthropic\")"
            )));
        }
    };
    let base_url = raw.base_url.trim_end_matches('/').to_owned();
    let url = reqwest::Url::parse(&base_url)
        .map_err(|e| Error::Config(format!("route {name:?}: invalid base_url: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::Config(format!("route {name:?}: base_url must be http or https")));
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let api_key = match raw.api_key_env {
        None => None,
        Some(var) => match env(&var) {
            Some(key) if !key.is_empty() => Some(key),
            _ => {
                return Err(Error::Config(format!(
                    "route {name:?}: environment variable {var} is not set"
                )));
            }
        },
    };
    Ok(RouteConfig {
        name: name.to_owned(),
        kind,
        base_url,
        api_key,
        model: raw.model,
        provider: raw.provider.unwrap_or_else(|| kind.as_str().to_owned()),
        fallbacks: raw.fallbacks,
        retries: raw.retries.unwrap_or(0),
        retry_backoff: Duration::from_millis(raw.retry_backoff_ms.unwrap_or(200)),
        host,
        port,
    })
}

fn secs(value: Option<f64>, default: f64, what: &str) -> Result<Duration, Error> {
    let value = value.unwrap_or(default);
    if !(value.is_finite() && value > 0.0) {
        return Err(Error::Config(format!("{what} must be a positive number of seconds")));
    }
    Ok(Duration::from_secs_f64(value))
}

fn positive(value: Option<usize>, default: usize, what: &str) -> Result<usize, Error> {
    match value.unwrap_or(default) {
        0 => Err(Error::Config(format!("{what} must be at least 1"))),
        n => Ok(n),
    }
}
