//! What a call carries besides its body: the W3C trace context it joins (`traceparent`,
//! `tracestate`) and the caller's metadata headers (`x-loupe-*`), turned into span attributes.

use http::HeaderMap;
use model::{AnyValue, KeyValue, ProjectId, SpanId, TraceId};

/// Where the call span sits: a child of the caller's span, or the root of a new trace.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: TraceId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    /// W3C trace flags (the sampled bit).
    pub flags: u32,
}

impl TraceContext {
    /// Joins a valid `traceparent`; anything else starts a new trace.
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        let parsed =
            headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(parse_traceparent);
        match parsed {
            Some((trace_id, parent, flags)) => TraceContext {
                trace_id,
                parent_span_id: Some(parent),
                trace_state: headers
                    .get("tracestate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                flags,
            },
            None => TraceContext {
                trace_id: new_trace_id(),
                parent_span_id: None,
                trace_state: String::new(),
                flags: 1,
            },
        }
    }

    /// The `traceparent` to send upstream, naming `span_id` as the parent.
    pub fn child_traceparent(&self, span_id: SpanId) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, span_id, self.flags & 0xff)
    }
}

/// Parses `version-traceid-parentid-flags` per W3C Trace Context level 1: lowercase hex, no
/// all-zero ids, version `ff` invalid, and a version-00 header has exactly four fields.
fn parse_traceparent(text: &str) -> Option<(TraceId, SpanId, u32)> {
    let text = text.trim();
    let mut fields = text.split('-');
    let version = fields.next()?;
    let trace = fields.next()?;
    let parent = fields.next()?;
    let flags = fields.next()?;
    let rest = fields.next();
    let lower_hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if version.len() != 2 || !lower_hex(version) || version == "ff" {
        return None;
    }
    if version == "00" && rest.is_some() {
        return None;
    }
    if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !lower_hex(trace) || !lower_hex(parent) || !lower_hex(flags) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(parent).ok()?;
    let flags = u32::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, flags))
}

/// What the caller said about the call in `x-loupe-*` headers and OpenAI's `user` and
/// `metadata` body fields.
#[derive(Debug, Clone, Default)]
pub struct CallerMetadata {
    pub operation: Option<String>,
    pub session: Option<String>,
    pub user: Option<String>,
    pub tags: Vec<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub variant: Option<String>,
    pub project: Option<ProjectId>,
    /// Header values that could not be used, with the reason (recorded, never fatal).
    pub warnings: Vec<String>,
}

impl CallerMetadata {
    pub fn from_headers(headers: &HeaderMap) -> CallerMetadata {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let mut res = CallerMetadata {
            operation: text("x-loupe-operation"),
            session: text("x-loupe-session"),
            user: text("x-loupe-user"),
            variant: text("x-loupe-variant"),
            ..CallerMetadata::default()
        };
        if let Some(tags) = text("x-loupe-tags") {
            res.tags = tags
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(metadata) = text("x-loupe-metadata") {
            match serde_json::from_str::<serde_json::Value>(&metadata) {
                Ok(serde_json::Value::Object(map)) => res.metadata = map,
                _ => res.warnings.push("x-loupe-metadata is not a JSON object".to_owned()),
            }
        }
        if let Some(project) = text("x-loupe-project") {
            match ProjectId::new(&project) {
                Ok(project) => res.project = Some(project),
                Err(message) => res.warnings.push(format!("x-loupe-project: {message}")),
            }
        }
        res
    }

    /// Fills what the headers left open from OpenAI's `user` and `metadata` body fields.
    /// Headers win over body fields with the same meaning.
    pub fn merge_body(&mut self, body: &serde_json::Value) {
        if self.user.is_none()
            && let Some(user) = body.get("user").and_then(|v| v.as_str())
            && !user.is_empty()
        {
            self.user = Some(user.to_owned());
        }
        if let Some(serde_json::Value::Object(metadata)) = body.get("metadata") {
            for (key, value) in metadata {
                self.metadata.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }

    pub fn attributes(&self, res: &mut Vec<KeyValue>) {
        if let Some(operation) = &self.operation {
            res.push(KeyValue::string("loupe.operation", operation));
        }
        if let Some(session) = &self.session {
            res.push(KeyValue::string("session.id", session));
        }
        if let Some(user) = &self.user {
            res.push(KeyValue::string("user.id", user));
        }
        if !self.tags.is_empty() {
            let tags = self.tags.iter().map(|t| AnyValue::String(t.clone())).collect();
            res.push(KeyValue::new("loupe.tags", AnyValue::Array(tags)));
        }
        if !self.metadata.is_empty() {
            let json = serde_json::Value::Object(self.metadata.clone()).to_string();
            res.push(KeyValue::string("loupe.metadata", json));
        }
        if let Some(variant) = &self.variant {
            res.push(KeyValue::string("loupe.variant", variant));
        }
        if !self.warnings.is_empty() {
            let warnings = self.warnings.iter().map(|w| AnyValue::String(w.clone())).collect();
            res.push(KeyValue::new("loupe.gateway.warnings", AnyValue::Array(warnings)));
        }
    }
}

/// A random trace id (never all zero).
pub fn new_trace_id() -> TraceId {
    loop {
        let mut bytes = [0u8; 16];
        fill_random(&mut bytes);
        if let Ok(id) = TraceId::from_bytes(&bytes) {
            return id;
        }
    }
}

/// A random span id (never all zero).
pub fn new_span_id() -> SpanId {
    loop {
        let mut bytes = [0u8; 8];
        fill_random(&mut bytes);
        if let Ok(id) = SpanId::from_bytes(&bytes) {
            return id;
        }
    }
}

fn fill_random(bytes: &mut [u8]) {
    if getrandom::fill(bytes).is_err() {
        // The OS generator is unavailable (practically never): fall back to the clock and a
        // counter, which still gives unique ids within this process.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed.rotate_left((i as u32 * 8) % 64) & 0xff) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_rules() {
        let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert!(parse_traceparent(ok).is_some());
        for bad in [
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            "garbage",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        assert!(
            parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future")
                .is_some()
        );
    }
}
