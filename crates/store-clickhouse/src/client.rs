//! A small client for ClickHouse's HTTP interface: statements, `JSONEachRow` selects and
//! inserts, with error classification (what is worth retrying) and SQL literal quoting.
//!
//! ClickHouse 18.x has no query parameters over HTTP (`{name:Type}` came in 19.x), so every value
//! reaches SQL through [`quote`] / [`quote_str`], which escape it as a string literal.

use std::time::Duration;

use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::{ClickHouseConfig, Error};

#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    endpoint: Url,
    database: String,
    user: Option<String>,
    password: Option<String>,
}

impl Client {
    pub(crate) fn new(config: &ClickHouseConfig) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5).min(config.timeout))
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("http client: {e}")))?;
        Ok(Client {
            http,
            endpoint: config.endpoint.clone(),
            database: config.database.clone(),
            user: config.user.clone(),
            password: config.password.clone(),
        })
    }

    fn url(&self, with_database: bool, query: Option<&str>) -> Url {
        let mut url = self.endpoint.clone();
        {
            let mut pairs = url.query_pairs_mut();
            if with_database {
                pairs.append_pair("database", &self.database);
            }
            // Return UInt64 as JSON numbers (serde reads them exactly), buffer the whole result
            // so that an error is an HTTP error and never half a body, and allow long IN lists.
            pairs.append_pair("output_format_json_quote_64bit_integers", "0");
            pairs.append_pair("wait_end_of_query", "1");
            pairs.append_pair("max_query_size", "104857600");
            // Reads use FINAL; a condition moved to PREWHERE would run before FINAL picks the
            // newest version of a row and could resurrect an older one. Releases since 21.x
            // never move conditions of FINAL queries; 18.x must be told.
            pairs.append_pair("optimize_move_to_prewhere", "0");
            if let Some(query) = query {
                pairs.append_pair("query", query);
            }
        }
        url
    }

    async fn post(&self, url: Url, body: Vec<u8>) -> Result<String, Error> {
        let mut request = self.http.post(url).body(body);
        if let Some(user) = &self.user {
            request = request.basic_auth(user, self.password.as_deref());
        }
        let response =
            request.send().await.map_err(|e| Error::Unreachable(model::error_chain(&e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| Error::Unreachable(model::error_chain(&e)))?;
        if status.is_success() { Ok(text) } else { Err(server_error(status.as_u16(), &text)) }
    }

    /// Runs a statement (DDL, `OPTIMIZE`, ...) in the configured database.
    pub(crate) async fn execute(&self, sql: &str) -> Result<String, Error> {
        self.post(self.url(true, None), sql.as_bytes().to_vec()).await
    }

    /// Runs a statement with extra query settings (e.g. `optimize_throw_if_noop`).
    pub(crate) async fn execute_with_settings(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<String, Error> {
        let mut url = self.url(true, None);
        url.query_pairs_mut().extend_pairs(settings);
        self.post(url, sql.as_bytes().to_vec()).await
    }

    /// Runs a statement outside any database (`CREATE DATABASE`).
    pub(crate) async fn execute_without_database(&self, sql: &str) -> Result<String, Error> {
        self.post(self.url(false, None), sql.as_bytes().to_vec()).await
    }

    /// Runs a select and decodes each row.
    pub(crate) async fn select<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, Error> {
        let text = self.execute(&format!("{sql}\nFORMAT JSONEachRow")).await?;
        let mut res = Vec::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let row = serde_json::from_str(line)
                .map_err(|e| Error::BadResponse(format!("{e} in row {}", truncate(line, 200))))?;
            res.push(row);
        }
        Ok(res)
    }

    /// Inserts `JSONEachRow` lines into a table.
    pub(crate) async fn insert(&self, table: &str, rows: Vec<u8>) -> Result<(), Error> {
        let query = format!("INSERT INTO {table} FORMAT JSONEachRow");
        self.post(self.url(true, Some(&query)), rows).await.map(|_| ())
    }
}

/// Retries `op` on retryable errors, `attempts` times in all, waiting `base`, `4 * base`, ...
pub(crate) async fn with_retries<T, F, Fut>(
    attempts: u32,
    base: Duration,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut delay = base;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_retryable() && attempt < attempts => {
                tracing::debug!(attempt, error = %e, "clickhouse request failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
            res => return res,
        }
    }
}

/// ClickHouse error codes that say "try again later" rather than "this request is wrong".
const RETRYABLE_CODES: &[u32] = &[
    159, // TIMEOUT_EXCEEDED
    164, // READONLY (e.g. a replica that lost its coordination service)
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS
    319, // UNKNOWN_STATUS_OF_INSERT
    425, // SYSTEM_ERROR
    999, // KEEPER_EXCEPTION
];

fn server_error(status: u16, body: &str) -> Error {
    // Old releases answer `Code: 62, e.displayText() = DB::Exception: ...`, newer ones
    // `Code: 62. DB::Exception: ...`.
    let code = body
        .trim_start()
        .strip_prefix("Code: ")
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>())
        .and_then(|digits| digits.parse::<u32>().ok())
        .unwrap_or(0);
    let retryable = RETRYABLE_CODES.contains(&code) || status == 503 || status == 502;
    Error::Server { code, message: truncate(body.trim(), 2000).to_owned(), retryable }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A ClickHouse string literal for `value`: quoted, with `\` and `'` escaped (ClickHouse reads
/// backslash escapes in literals, so both must be), and NUL written as `\0`.
pub(crate) fn quote_str(value: &str) -> String {
    let mut res = String::with_capacity(value.len() + 2);
    res.push('\'');
    for c in value.chars() {
        match c {
            '\\' => res.push_str("\\\\"),
            '\'' => res.push_str("\\'"),
            '\0' => res.push_str("\\0"),
            c => res.push(c),
        }
    }
    res.push('\'');
    res
}

/// A string literal for anything displayable (ids, numbers rendered as text).
pub(crate) fn quote(value: impl std::fmt::Display) -> String {
    quote_str(&value.to_string())
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn literals_are_escaped() {
        expect![[r#"'it\'s a \\\' trap\0'"#]].assert_eq(&quote_str("it's a \\' trap\0"));
    }

    #[test]
    fn server_errors_are_classified() {
        let render = |e: Error| format!("{} retryable={}", e, e.is_retryable());
        expect![[r#"clickhouse error 252: Code: 252, e.displayText() = DB::Exception: Too many parts retryable=true"#]]
            .assert_eq(&render(server_error(500, "Code: 252, e.displayText() = DB::Exception: Too many parts\n")));
        expect![[r#"clickhouse error 62: Code: 62. DB::Exception: Syntax error retryable=false"#]]
            .assert_eq(&render(server_error(400, "Code: 62. DB::Exception: Syntax error")));
    }
}
