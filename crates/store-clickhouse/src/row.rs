//! The row of the `spans` table: a stored span with its filterable fields denormalized into
//! columns, attributes as parallel key/value arrays, and the raw span and view as JSON.

use std::collections::HashSet;

use model::{AnyValue, KeyValue, ProjectId, StoredSpan};
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Serialize)]
struct SpanRow<'a> {
    project: &'a str,
    start_ns: u64,
    end_ns: u64,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    duration_ns: u64,
    name: &'a str,
    kind: &'static str,
    status: &'static str,
    service: &'a str,
    span_type: &'static str,
    operation: &'a str,
    model: &'a str,
    provider: &'a str,
    session_id: &'a str,
    user_id: &'a str,
    environment: &'a str,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
    tags: &'a [String],
    attr_keys: Vec<&'a str>,
    attr_values: Vec<String>,
    res_keys: Vec<&'a str>,
    res_values: Vec<String>,
    search_text: String,
    raw_json: String,
    view_json: String,
    /// The retention tier (schema version 3).
    tier: u8,
    version: u64,
    // `cost` is appended by hand: ClickHouse reads a Decimal from a JSON number only, and
    // serde_json (without arbitrary precision) cannot write an exact decimal number.
}

/// Appends one `JSONEachRow` line for `span`, stored at retention tier `tier`
/// ([`store::RetentionTier::as_u8`]), to `out`.
pub(crate) fn write_span_row(
    span: &StoredSpan,
    version: u64,
    tier: u8,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let raw = &span.raw;
    let view = &span.view;
    let (attr_keys, attr_values) = attribute_columns(&raw.attributes);
    let (res_keys, res_values) = attribute_columns(&raw.resource.attributes);
    let row = SpanRow {
        project: span.project.as_str(),
        start_ns: raw.start_time_unix_nano,
        end_ns: raw.end_time_unix_nano,
        trace_id: raw.trace_id.to_hex(),
        span_id: raw.span_id.to_hex(),
        parent_span_id: raw.parent_span_id.map(|id| id.to_hex()).unwrap_or_default(),
        duration_ns: raw.duration_ns(),
        name: &raw.name,
        kind: raw.kind.as_str(),
        status: raw.status.code.as_str(),
        service: raw.service_name(),
        span_type: view.span_type.as_str(),
        operation: view.operation_id.as_deref().unwrap_or(""),
        model: view.model().unwrap_or(""),
        provider: view.provider.as_deref().unwrap_or(""),
        session_id: view.session_id.as_deref().unwrap_or(""),
        user_id: view.user_id.as_deref().unwrap_or(""),
        environment: view.environment.as_deref().unwrap_or(""),
        input_tokens: view.usage.input,
        output_tokens: view.usage.output,
        total_tokens: view.usage.total(),
        tags: &view.tags,
        attr_keys,
        attr_values,
        res_keys,
        res_values,
        search_text: view.searchable_text().to_lowercase(),
        raw_json: serde_json::to_string(raw).map_err(|e| Error::Encode(e.to_string()))?,
        view_json: serde_json::to_string(view).map_err(|e| Error::Encode(e.to_string()))?,
        tier,
        version,
    };
    let mut line = serde_json::to_vec(&row).map_err(|e| Error::Encode(e.to_string()))?;
    // The object ends with `}`; put the cost before it.
    line.pop();
    line.extend_from_slice(b",\"cost\":");
    match view.cost {
        // Decimal(38, 12) holds 12 decimal places; `Display` never uses an exponent.
        Some(cost) => line.extend_from_slice(cost.round_dp(12).normalize().to_string().as_bytes()),
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b"}\n");
    out.extend_from_slice(&line);
    Ok(())
}

/// Attributes as parallel arrays of keys and text values. When a key repeats, the last value
/// wins (as `model::attr_get` reads it), so `indexOf(keys, k)` finds the right value.
fn attribute_columns(attributes: &[KeyValue]) -> (Vec<&str>, Vec<String>) {
    let mut seen = HashSet::new();
    let mut res: Vec<(&str, String)> = Vec::with_capacity(attributes.len());
    for kv in attributes.iter().rev() {
        if seen.insert(kv.key.as_str()) {
            res.push((kv.key.as_str(), attribute_text(&kv.value)));
        }
    }
    res.reverse();
    res.into_iter().unzip()
}

fn attribute_text(value: &AnyValue) -> String {
    match value {
        AnyValue::Empty => String::new(),
        other => other.to_text(),
    }
}

/// The columns needed to rebuild a [`StoredSpan`].
#[derive(Deserialize)]
pub(crate) struct FullRow {
    pub(crate) project: String,
    pub(crate) raw_json: String,
    pub(crate) view_json: String,
    /// The retention tier the span is stored at.
    pub(crate) tier: u8,
}

pub(crate) const FULL_COLUMNS: &str = "project, raw_json, view_json, tier";

impl FullRow {
    pub(crate) fn into_span(self) -> Result<StoredSpan, Error> {
        let project = ProjectId::new(&self.project).map_err(Error::Corrupt)?;
        let raw = serde_json::from_str(&self.raw_json)
            .map_err(|e| Error::Corrupt(format!("raw span json: {e}")))?;
        let view = serde_json::from_str(&self.view_json)
            .map_err(|e| Error::Corrupt(format!("view json: {e}")))?;
        Ok(StoredSpan { project, raw, view })
    }
}
