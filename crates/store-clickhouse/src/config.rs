//! Configuration of the ClickHouse backend: the user-facing [`RawClickHouseConfig`] (the
//! `[store.clickhouse]` table of `loupe.toml`) and the validated [`ClickHouseConfig`].

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::Error;

/// The ClickHouse store as configured by the user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClickHouseConfig {
    /// Where ClickHouse is. Either `clickhouse://[user[:password]@]host[:port]/database`
    /// (the HTTP interface, port 8123 by default; `clickhouses://` for HTTPS, port 8443), or an
    /// HTTP URL such as `http://host:8123/?database=loupe&user=loupe&password=...`. The database
    /// is created when missing; it defaults to `loupe`.
    pub url: String,
    /// Directory of the local durable spill: batches that cannot reach ClickHouse are written
    /// here (fsync'd) and replayed when it is back. Each Loupe node needs its own. Without it, a
    /// write fails at once while ClickHouse is unreachable.
    #[serde(default)]
    pub spill_dir: Option<PathBuf>,
    /// The spill's maximum size in bytes; past it, writes fail with a retryable "unavailable"
    /// (503 with `Retry-After` to OTLP clients). Default: 1 GiB.
    #[serde(default)]
    pub spill_max_bytes: Option<u64>,
    /// Attempts per insert before a batch is spilled. Default: 3.
    #[serde(default)]
    pub insert_attempts: Option<u32>,
    /// Timeout of one HTTP request to ClickHouse, in seconds. Default: 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// The HTTP endpoint, without query string (`http://host:8123/`).
    pub endpoint: Url,
    /// Invariant: a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`), safe to put in SQL unquoted.
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub spill_dir: Option<PathBuf>,
    pub spill_max_bytes: u64,
    /// At least 1.
    pub insert_attempts: u32,
    /// Backoff before the second attempt; each further attempt waits four times longer.
    pub retry_base: Duration,
    pub timeout: Duration,
    /// How often the spill is retried while it is not empty.
    pub replay_interval: Duration,
}

const DEFAULT_SPILL_MAX_BYTES: u64 = 1 << 30;

impl ClickHouseConfig {
    /// A configuration with defaults from a URL alone (no spill).
    pub fn from_url(url: &str) -> Result<ClickHouseConfig, Error> {
        ClickHouseConfig::from_raw(RawClickHouseConfig {
            url: url.to_owned(),
            ..Default::default()
        })
    }

    pub fn from_raw(raw: RawClickHouseConfig) -> Result<ClickHouseConfig, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: redact_url(&raw.url),
            reason: reason.to_owned(),
        };
        let parsed = Url::parse(raw.url.trim()).map_err(|e| invalid(&e.to_string()))?;
        let (scheme, default_port) = match parsed.scheme() {
            "clickhouse" | "http" => ("http", 8123),
            "clickhouses" | "https" => ("https", 8443),
            other => return Err(invalid(&format!("unknown scheme {other:?}"))),
        };
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid("no host"))?;
        let port = parsed.port().unwrap_or(default_port);
        let mut user = (!parsed.username().is_empty()).then(|| decode(parsed.username()));
        let mut password = parsed.password().map(decode);
        let mut database = None;
        let path = parsed.path().trim_matches('/');
        if !path.is_empty() {
            database = Some(path.to_owned());
        }
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "database" => database = Some(value.into_owned()),
                "user" => user = Some(value.into_owned()),
                "password" => password = Some(value.into_owned()),
                other => return Err(invalid(&format!("unknown parameter {other:?}"))),
            }
        }
        let database = database.unwrap_or_else(|| "loupe".to_owned());
        if !is_identifier(&database) {
            return Err(invalid(&format!(
                "database name {database:?} must be letters, digits and '_', not starting with a digit"
            )));
        }
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let endpoint = Url::parse(&format!("{scheme}://{host}:{port}/"))
            .map_err(|e| invalid(&e.to_string()))?;
        let insert_attempts = raw.insert_attempts.unwrap_or(3);
        if insert_attempts == 0 {
            return Err(Error::InvalidConfig("insert_attempts must be at least 1".to_owned()));
        }
        let timeout_secs = raw.timeout_secs.unwrap_or(30);
        if timeout_secs == 0 {
            return Err(Error::InvalidConfig("timeout_secs must be at least 1".to_owned()));
        }
        Ok(ClickHouseConfig {
            endpoint,
            database,
            user,
            password,
            spill_dir: raw.spill_dir,
            spill_max_bytes: raw.spill_max_bytes.unwrap_or(DEFAULT_SPILL_MAX_BYTES),
            insert_attempts,
            retry_base: Duration::from_millis(100),
            timeout: Duration::from_secs(timeout_secs),
            replay_interval: Duration::from_secs(1),
        })
    }

    /// Sets the spill directory (the app puts it under the data dir).
    pub fn with_spill_dir(mut self, spill_dir: impl Into<PathBuf>) -> ClickHouseConfig {
        self.spill_dir = Some(spill_dir.into());
        self
    }
}

pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

fn decode(text: &str) -> String {
    // Percent-decoding of the userinfo part; invalid sequences are kept as written.
    let bytes = text.as_bytes();
    let mut res = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            res.push(byte);
            i += 3;
            continue;
        }
        res.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&res).into_owned()
}

/// The URL with its password replaced, for error messages.
fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) if parsed.query_pairs().any(|(k, _)| k == "password") => {
            let mut res = parsed.clone();
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" { "***".to_owned() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            res.query_pairs_mut().clear().extend_pairs(pairs);
            res.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check(url: &str, expect: Expect) {
        let res = match ClickHouseConfig::from_url(url) {
            Ok(c) => format!(
                "endpoint={} database={} user={:?} password={:?}",
                c.endpoint, c.database, c.user, c.password
            ),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&res);
    }

    #[test]
    fn urls() {
        check(
            "clickhouse://localhost/traces",
            expect![[r#"endpoint=http://localhost:8123/ database=traces user=None password=None"#]],
        );
        check(
            "clickhouse://loupe:s%40cret@ch.internal:9123/db",
            expect![[
                r#"endpoint=http://ch.internal:9123/ database=db user=Some("loupe") password=Some("s@cret")"#
            ]],
        );
        check(
            "http://127.0.0.1:18123/?database=x_1&user=u&password=p",
            expect![[
                r#"endpoint=http://127.0.0.1:18123/ database=x_1 user=Some("u") password=Some("p")"#
            ]],
        );
        check(
            "clickhouses://h",
            expect![[r#"endpoint=https://h:8443/ database=loupe user=None password=None"#]],
        );
        check(
            "http://127.0.0.1:18123/",
            expect![[r#"endpoint=http://127.0.0.1:18123/ database=loupe user=None password=None"#]],
        );
        check(
            "clickhouse://h/bad-name",
            expect![[
                r#"error: invalid clickhouse url "clickhouse://h/bad-name": database name "bad-name" must be letters, digits and '_', not starting with a digit"#
            ]],
        );
        check(
            "clickhouse://u:pw@h/db?x=1",
            expect![[
                r#"error: invalid clickhouse url "clickhouse://u:***@h/db?x=1": unknown parameter "x""#
            ]],
        );
        check(
            "postgres://h/db",
            expect![[
                r#"error: invalid clickhouse url "postgres://h/db": unknown scheme "postgres""#
            ]],
        );
    }

    #[test]
    fn raw_config_rejects_unknown_fields() {
        let err = serde_json::from_str::<RawClickHouseConfig>(r#"{"url":"x","spill":"y"}"#)
            .map(|_| ())
            .map_err(|e| e.to_string());
        expect![[r#"Err("unknown field `spill`, expected one of `url`, `spill_dir`, `spill_max_bytes`, `insert_attempts`, `timeout_secs` at line 1 column 18")"#]]
            .assert_eq(&format!("{err:?}"));
    }
}
