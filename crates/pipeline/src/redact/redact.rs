//! The redaction processor: walks every string of a span (raw and view), replaces detector
//! matches by keyed-hash placeholders, hashes user ids, and records what it did.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use model::{AnyValue, KeyValue, LlmView, Part, RawSpan, StoredSpan};
use serde::Serialize;
use sha2::Sha256;

use super::config::RedactConfig;
use super::detectors::Features;
use crate::Processor;

/// The attribute holding the number of redactions made on a span.
pub const REDACTIONS_COUNT_ATTR: &str = "loupe.redactions.count";
/// The attribute listing the kinds redacted on a span, comma-separated.
pub const REDACTIONS_KINDS_ATTR: &str = "loupe.redactions.kinds";
/// The kind under which hashed user ids are counted.
const USER_KIND: &str = "user_id";

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedactCounters {
    /// Spans seen.
    pub spans: u64,
    /// Spans with at least one redaction or hashed user id.
    pub spans_redacted: u64,
    /// Redactions made, by kind (`email`, `card`, ..., `user_id` for hashed user ids).
    pub by_kind: BTreeMap<String, u64>,
}

/// The `redact` processor.
pub struct RedactProcessor {
    config: RedactConfig,
    spans: AtomicU64,
    spans_redacted: AtomicU64,
    /// One counter per detector, then one for hashed user ids.
    by_kind: Vec<AtomicU64>,
}

/// The state of redacting one span.
struct SpanRedactor<'a> {
    config: &'a RedactConfig,
    mac: &'a Hmac<Sha256>,
    /// Redactions per detector (and, last, user ids) in the part being walked.
    counts: Vec<u32>,
    /// Scratch list of candidate matches `(start, end, detector)`.
    candidates: Vec<(usize, usize, usize)>,
    /// Scratch list of the detectors whose regex matches the text being redacted.
    matched: Vec<usize>,
    /// The span's user ids as sent, each with its placeholder: they are replaced wherever they
    /// occur in the span's text too (e.g. OpenAI's `user` field in a recorded request body).
    known_users: Vec<(String, String)>,
}

impl RedactProcessor {
    pub fn new(config: RedactConfig) -> RedactProcessor {
        let by_kind = (0..=config.detectors.len()).map(|_| AtomicU64::new(0)).collect();
        RedactProcessor {
            config,
            spans: AtomicU64::new(0),
            spans_redacted: AtomicU64::new(0),
            by_kind,
        }
    }

    pub fn counters(&self) -> RedactCounters {
        let mut by_kind = BTreeMap::new();
        let kinds = self.config.detectors.iter().map(|d| d.kind.as_str()).chain([USER_KIND]);
        for (kind, counter) in kinds.zip(&self.by_kind) {
            *by_kind.entry(kind.to_owned()).or_insert(0) += counter.load(Ordering::Relaxed);
        }
        RedactCounters {
            spans: self.spans.load(Ordering::Relaxed),
            spans_redacted: self.spans_redacted.load(Ordering::Relaxed),
            by_kind,
        }
    }

    /// The keyed hash a project gives `value`, as it appears in placeholders and hashed user
    /// ids: e.g. `hash_user_id("default", "alice")` is the `<user:u_…>` that `user.id = alice`
    /// is stored as, so the API can find (and erase) a user's records by the id they know.
    pub fn hash_user_id(&self, project: &str, user_id: &str) -> String {
        let mac = self.config.project_key(project);
        placeholder("user", &mac, user_id, self.config.hash_chars)
    }
}

impl Processor for RedactProcessor {
    fn name(&self) -> &'static str {
        "redact"
    }

    fn process(&self, spans: &mut Vec<StoredSpan>) {
        let n_counters = self.config.detectors.len() + 1;
        let mut totals = vec![0u64; n_counters];
        let mut n_redacted = 0u64;
        // A batch is one request, nearly always one project: derive its key once.
        let mut cached: Option<(String, Hmac<Sha256>)> = None;
        for span in spans.iter_mut() {
            let project = span.project.as_str();
            if cached.as_ref().is_none_or(|(p, _)| p != project) {
                cached = Some((project.to_owned(), self.config.project_key(project)));
            }
            let Some((_, mac)) = &cached else { continue };
            let mut redactor = SpanRedactor {
                config: &self.config,
                mac,
                counts: vec![0; n_counters],
                candidates: Vec::new(),
                matched: Vec::new(),
                known_users: Vec::new(),
            };
            redactor.collect_users(span);
            redactor.raw_span(&mut span.raw);
            let raw_counts = std::mem::replace(&mut redactor.counts, vec![0; n_counters]);
            redactor.view(&mut span.view);
            // The view repeats the raw span's content, so a value found in both is one
            // redaction: count the larger of the two per kind.
            let counts: Vec<u32> =
                raw_counts.iter().zip(&redactor.counts).map(|(a, b)| *a.max(b)).collect();
            if counts.iter().any(|n| *n > 0) {
                n_redacted += 1;
                record(span, &self.config, &counts);
                for (total, n) in totals.iter_mut().zip(&counts) {
                    *total += u64::from(*n);
                }
            }
        }
        self.spans.fetch_add(spans.len() as u64, Ordering::Relaxed);
        self.spans_redacted.fetch_add(n_redacted, Ordering::Relaxed);
        for (counter, n) in self.by_kind.iter().zip(totals) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// Writes the counts onto the span: `view.flags.redactions` and the two attributes.
fn record(span: &mut StoredSpan, config: &RedactConfig, counts: &[u32]) {
    let kinds = config.detectors.iter().map(|d| d.kind.as_str()).chain([USER_KIND]);
    let mut total = 0i64;
    for (kind, n) in kinds.zip(counts) {
        if *n > 0 {
            *span.view.flags.redactions.entry(kind.to_owned()).or_insert(0) += n;
            total += i64::from(*n);
        }
    }
    let kinds: Vec<&str> = span.view.flags.redactions.keys().map(String::as_str).collect();
    let kinds = kinds.join(",");
    let attributes = &mut span.raw.attributes;
    attributes.retain(|kv| kv.key != REDACTIONS_COUNT_ATTR && kv.key != REDACTIONS_KINDS_ATTR);
    attributes.push(KeyValue::int(REDACTIONS_COUNT_ATTR, total));
    attributes.push(KeyValue::string(REDACTIONS_KINDS_ATTR, kinds));
}

/// `<kind:k_hash>`: the kind, its first letter and the keyed hash of `value`.
fn placeholder(kind: &str, mac: &Hmac<Sha256>, value: &str, hash_chars: usize) -> String {
    let mut mac = mac.clone();
    mac.update(value.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut res = String::with_capacity(kind.len() + hash_chars + 6);
    res.push('<');
    res.push_str(kind);
    res.push(':');
    res.push(kind.chars().next().unwrap_or('x'));
    res.push('_');
    for byte in digest.iter().take(hash_chars.div_ceil(2)) {
        // Writing to a String cannot fail.
        let _ = write!(res, "{byte:02x}");
    }
    res.truncate(res.len() - (hash_chars % 2));
    res.push('>');
    res
}

/// Whether `value` is already a hashed user id (spans processed twice, e.g. by `loupe reindex`).
fn is_user_placeholder(value: &str) -> bool {
    value
        .strip_prefix("<user:u_")
        .and_then(|rest| rest.strip_suffix('>'))
        .is_some_and(|hash| !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// From this length on, a text is checked against each detector's [`Needs`] before its regexes
/// run; shorter ones go through the regex set at once, which is cheaper for them.
const LONG_TEXT: usize = 128;

/// User ids shorter than this are hashed where they are an attribute but not searched for in
/// text, where they would match too much.
const MIN_USER_ID_IN_TEXT: usize = 4;

/// Replaces each whole-word occurrence of `id` in `text` by `placeholder`; returns how many.
/// A word boundary is any character that cannot be part of an id (not alphanumeric, `_`, `-`,
/// nor a `.` or `@` inside a word), so `alice` is not replaced inside `malice` or
/// `alice.smith`, but is at the end of a sentence.
fn replace_word(text: &mut String, id: &str, placeholder: &str) -> u32 {
    let is_id_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-');
    let joins = |c: Option<char>, next: Option<char>| {
        c.is_some_and(is_id_char)
            || (matches!(c, Some('.' | '@')) && next.is_some_and(char::is_alphanumeric))
    };
    let mut res = String::new();
    let mut pos = 0;
    let mut n = 0;
    for (start, _) in text.match_indices(id) {
        let end = start + id.len();
        let mut before = text[..start].chars().rev();
        let mut after = text[end..].chars();
        let (b1, b2) = (before.next(), before.next());
        let (a1, a2) = (after.next(), after.next());
        if start < pos || joins(b1, b2) || joins(a1, a2) {
            continue;
        }
        res.push_str(&text[pos..start]);
        res.push_str(placeholder);
        pos = end;
        n += 1;
    }
    if n > 0 {
        res.push_str(&text[pos..]);
        *text = res;
    }
    n
}

impl SpanRedactor<'_> {
    /// Notes the span's user ids (the view's and the hashed attributes') before they are hashed.
    fn collect_users(&mut self, span: &StoredSpan) {
        let attributes = span.raw.attributes.iter().chain(&span.raw.resource.attributes);
        let from_attributes = attributes
            .filter(|kv| self.config.hash_keys.contains(&kv.key))
            .filter_map(|kv| match &kv.value {
                AnyValue::String(value) => Some(value.clone()),
                AnyValue::Int(_) | AnyValue::Double(_) => Some(kv.value.to_text()),
                _ => None,
            });
        for id in span.view.user_id.iter().cloned().chain(from_attributes) {
            if id.len() < MIN_USER_ID_IN_TEXT
                || is_user_placeholder(&id)
                || self.known_users.iter().any(|(known, _)| *known == id)
            {
                continue;
            }
            let hashed = placeholder("user", self.mac, &id, self.config.hash_chars);
            self.known_users.push((id, hashed));
        }
        // The longest first, so an id containing another is replaced whole.
        self.known_users.sort_by_key(|(id, _)| std::cmp::Reverse(id.len()));
    }

    fn raw_span(&mut self, raw: &mut RawSpan) {
        self.string(&mut raw.name);
        self.string(&mut raw.status.message);
        self.attributes(&mut raw.attributes);
        for event in &mut raw.events {
            self.attributes(&mut event.attributes);
        }
        for link in &mut raw.links {
            self.attributes(&mut link.attributes);
        }
        self.attributes(&mut raw.resource.attributes);
        self.attributes(&mut raw.scope.attributes);
    }

    fn view(&mut self, view: &mut LlmView) {
        if let Some(user_id) = &mut view.user_id {
            self.hash_user(user_id);
        }
        for text in [&mut view.session_id, &mut view.operation_id, &mut view.environment]
            .into_iter()
            .flatten()
        {
            self.string(text);
        }
        for text in view.tags.iter_mut().chain(&mut view.request.stop_sequences) {
            self.string(text);
        }
        if let Some(tool_name) = &mut view.tool_name {
            self.string(tool_name);
        }
        for value in view.metadata.values_mut() {
            self.json(value);
        }
        for value in view.request.other.values_mut() {
            self.json(value);
        }
        self.parts(&mut view.system_instructions);
        for message in view.input_messages.iter_mut().chain(&mut view.output_messages) {
            if let Some(name) = &mut message.name {
                self.string(name);
            }
            self.parts(&mut message.parts);
        }
        for text in [&mut view.input_text, &mut view.output_text].into_iter().flatten() {
            self.string(text);
        }
        for document in &mut view.documents {
            for text in [&mut document.id, &mut document.content].into_iter().flatten() {
                self.string(text);
            }
            if let Some(metadata) = &mut document.metadata {
                self.json(metadata);
            }
        }
    }

    fn parts(&mut self, parts: &mut [Part]) {
        for part in parts {
            match part {
                Part::Text { content } | Part::Reasoning { content } => self.string(content),
                Part::ToolCall { arguments, .. } => self.json(arguments),
                Part::ToolCallResponse { response, .. } => self.json(response),
                Part::Media { uri, .. } => {
                    // Inline media (base64) is not text and is not scanned.
                    if let Some(uri) = uri {
                        self.string(uri);
                    }
                }
                Part::Other { value } => self.json(value),
            }
        }
    }

    fn attributes(&mut self, attributes: &mut [KeyValue]) {
        for kv in attributes {
            if self.config.allow_keys.contains(&kv.key) {
                continue;
            }
            if self.config.hash_keys.contains(&kv.key) {
                match &mut kv.value {
                    AnyValue::String(value) => self.hash_user(value),
                    AnyValue::Int(_) | AnyValue::Double(_) => {
                        let mut value = kv.value.to_text();
                        self.hash_user(&mut value);
                        kv.value = AnyValue::String(value);
                    }
                    other => self.any(other),
                }
                continue;
            }
            self.any(&mut kv.value);
        }
    }

    fn any(&mut self, value: &mut AnyValue) {
        match value {
            AnyValue::String(text) => self.string(text),
            AnyValue::Array(values) => values.iter_mut().for_each(|v| self.any(v)),
            AnyValue::KvList(kvs) => kvs.iter_mut().for_each(|kv| self.any(&mut kv.value)),
            _ => {}
        }
    }

    fn json(&mut self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => self.string(text),
            serde_json::Value::Array(values) => values.iter_mut().for_each(|v| self.json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.json(v)),
            _ => {}
        }
    }

    fn hash_user(&mut self, value: &mut String) {
        if value.is_empty() || is_user_placeholder(value) {
            return;
        }
        // The span's user ids were hashed once already, by `collect_users`.
        let known = self.known_users.iter().find(|(id, _)| id == value);
        *value = match known {
            Some((_, hashed)) => hashed.clone(),
            None => placeholder("user", self.mac, value, self.config.hash_chars),
        };
        if let Some(n) = self.counts.last_mut() {
            *n += 1;
        }
    }

    /// Redacts one string in place. The common case, no match, is one pass of the regex set
    /// (short texts) or of [`Features::of`] and the detectors' regexes that start with a
    /// literal (long texts), and no allocation.
    fn string(&mut self, text: &mut String) {
        let config = self.config;
        if text.len() < 4 {
            return;
        }
        for (id, hashed) in &self.known_users {
            if text.contains(id.as_str()) && !is_user_placeholder(text) {
                let n = replace_word(text, id, hashed);
                if let Some(count) = self.counts.last_mut() {
                    *count += n;
                }
            }
        }
        self.matched.clear();
        if text.len() < LONG_TEXT {
            if !config.set.is_match(text) {
                return;
            }
            self.matched.extend(config.set.matches(text).iter());
        } else {
            // One pass for what each detector needs, then only the regexes that may match.
            let features = Features::of(text);
            for (index, detector) in config.detectors.iter().enumerate() {
                if features.allow(detector.needs) && detector.regex.is_match(text) {
                    self.matched.push(index);
                }
            }
        }
        if self.matched.is_empty() {
            return;
        }
        self.candidates.clear();
        for &index in &self.matched {
            let detector = &config.detectors[index];
            if detector.secret_group {
                for captures in detector.regex.captures_iter(text) {
                    if let Some(secret) = captures.name("secret") {
                        let (start, end) = (secret.start(), secret.end());
                        if detector.check.accepts(text, start, end) {
                            self.candidates.push((start, end, index));
                        }
                    }
                }
            } else {
                for found in detector.regex.find_iter(text) {
                    let (start, end) = (found.start(), found.end());
                    if start < end && detector.check.accepts(text, start, end) {
                        self.candidates.push((start, end, index));
                    }
                }
            }
        }
        if self.candidates.is_empty() {
            return;
        }
        // Earliest first; at one start, the longest; at one length, the detector listed first.
        self.candidates.sort_by_key(|&(start, end, index)| (start, std::cmp::Reverse(end), index));
        let mut res = String::with_capacity(text.len());
        let mut pos = 0;
        for &(start, end, index) in &self.candidates {
            if start < pos {
                continue;
            }
            res.push_str(&text[pos..start]);
            let detector = &config.detectors[index];
            let found = &text[start..end];
            let hashed = if detector.fold_case { found.to_lowercase() } else { found.to_owned() };
            res.push_str(&placeholder(&detector.kind, self.mac, &hashed, config.hash_chars));
            self.counts[index] += 1;
            pos = end;
        }
        res.push_str(&text[pos..]);
        *text = res;
    }
}
