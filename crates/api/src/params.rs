//! Query-string parameters shared by the search endpoints, and their validation into store
//! query types: `q` (the shared filter syntax), `from`/`to`, `limit`, `cursor`, `total`.

use model::UnixNanos;
use serde::Deserialize;
use store::{Cursor, Expr, SpanQuery, TimeRange};

use crate::ApiError;
use crate::time::{parse_duration, parse_time};

pub(crate) const DEFAULT_LIMIT: u32 = 50;
pub(crate) const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchParams {
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub total: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RangeParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AggregateParams {
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Comma-separated: `name`, `type`, `service`, `operation`, `model`, `provider`, `user`,
    /// `attr.KEY`.
    pub group_by: Option<String>,
    /// Comma-separated: `count`, `errors`, `p50`, `p95`, `p99`, `input_tokens`, `output_tokens`,
    /// `cost`.
    pub metrics: Option<String>,
    /// Bucket width for a time series (`1m`, `1h`, ...).
    pub bucket: Option<String>,
    pub limit: Option<u32>,
}

pub(crate) fn now_ns() -> UnixNanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub(crate) fn filter(q: Option<&str>) -> Result<Option<Expr>, ApiError> {
    match q {
        None => Ok(None),
        Some(text) => {
            store::syntax::parse(text).map_err(|error| ApiError::bad_request(format!("q: {error}")))
        }
    }
}

pub(crate) fn time_range(from: Option<&str>, to: Option<&str>) -> Result<TimeRange, ApiError> {
    let now = now_ns();
    let parse = |name: &str, text: Option<&str>| -> Result<Option<UnixNanos>, ApiError> {
        match text {
            None => Ok(None),
            Some(text) if text.trim().is_empty() => Ok(None),
            Some(text) => parse_time(text, now)
                .map(Some)
                .map_err(|error| ApiError::bad_request(format!("{name}: {error}"))),
        }
    };
    let range = TimeRange { from_ns: parse("from", from)?, to_ns: parse("to", to)? };
    if let (Some(from), Some(to)) = (range.from_ns, range.to_ns)
        && from > to
    {
        return Err(ApiError::bad_request("from is after to"));
    }
    Ok(range)
}

pub(crate) fn limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) if n > MAX_LIMIT => {
            Err(ApiError::bad_request(format!("limit must be at most {MAX_LIMIT}")))
        }
        Some(n) => Ok(n),
    }
}

impl SearchParams {
    pub(crate) fn to_query(&self) -> Result<SpanQuery, ApiError> {
        Ok(SpanQuery {
            filter: filter(self.q.as_deref())?,
            time: time_range(self.from.as_deref(), self.to.as_deref())?,
            limit: limit(self.limit)?,
            cursor: self.cursor.clone().filter(|c| !c.is_empty()).map(Cursor),
            with_total: self.total.unwrap_or(false),
        })
    }
}

pub(crate) fn bucket(text: Option<&str>) -> Result<Option<u64>, ApiError> {
    match text {
        None => Ok(None),
        Some(text) => match parse_duration(text) {
            Ok(0) => Err(ApiError::bad_request("bucket must be longer than zero")),
            Ok(ns) if ns < 1_000_000_000 => {
                Err(ApiError::bad_request("bucket must be at least 1s"))
            }
            Ok(ns) => Ok(Some(ns)),
            Err(error) => Err(ApiError::bad_request(format!("bucket: {error}"))),
        },
    }
}

pub(crate) fn group_by(text: Option<&str>) -> Result<Vec<(String, store::GroupBy)>, ApiError> {
    let mut res = Vec::new();
    for name in text.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let group = match name {
            "name" => store::GroupBy::Name,
            "type" | "span_type" => store::GroupBy::SpanType,
            "service" => store::GroupBy::Service,
            "operation" => store::GroupBy::Operation,
            "model" => store::GroupBy::Model,
            "provider" => store::GroupBy::Provider,
            "user" => store::GroupBy::User,
            _ => match name.strip_prefix("attr.") {
                Some(key) if !key.is_empty() => store::GroupBy::Attr(key.to_owned()),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "group_by: unknown key {name:?}: use name, type, service, operation, \
                         model, provider, user or attr.KEY"
                    )));
                }
            },
        };
        res.push((name.to_owned(), group));
    }
    Ok(res)
}

pub(crate) fn metrics(text: Option<&str>) -> Result<Vec<(String, store::Metric)>, ApiError> {
    let text = text.unwrap_or("count,errors,p50,p95,p99,input_tokens,output_tokens,cost");
    let mut res = Vec::new();
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let metric = match name {
            "count" => store::Metric::Count,
            "errors" => store::Metric::Errors,
            "p50" => store::Metric::P50,
            "p95" => store::Metric::P95,
            "p99" => store::Metric::P99,
            "input_tokens" => store::Metric::InputTokens,
            "output_tokens" => store::Metric::OutputTokens,
            "cost" => store::Metric::Cost,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "metrics: unknown metric {name:?}: use count, errors, p50, p95, p99, \
                     input_tokens, output_tokens or cost"
                )));
            }
        };
        res.push((name.to_owned(), metric));
    }
    if res.is_empty() {
        return Err(ApiError::bad_request("metrics: name at least one metric"));
    }
    Ok(res)
}
