//! The fingerprint processor: SHA-256 of the normalized input messages and of the system
//! instructions, into the view and as attributes.
//!
//! It runs after `redact` and before `content` (see the module docs for why), so fingerprints
//! are computed on redacted but not yet removed or truncated content.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use model::{KeyValue, LlmView, Message, Part, StoredSpan};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Processor;

/// The attribute holding the input fingerprint.
pub const INPUT_FINGERPRINT_ATTR: &str = "loupe.fingerprint.input";
/// The attribute holding the system-instructions fingerprint.
pub const SYSTEM_FINGERPRINT_ATTR: &str = "loupe.fingerprint.system";

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FingerprintCounters {
    /// Spans seen.
    pub spans: u64,
    /// Spans given an input fingerprint.
    pub spans_input: u64,
    /// Spans given a system fingerprint.
    pub spans_system: u64,
}

/// The `fingerprint` processor.
#[derive(Default)]
pub struct FingerprintProcessor {
    spans: AtomicU64,
    spans_input: AtomicU64,
    spans_system: AtomicU64,
}

impl FingerprintProcessor {
    pub fn new() -> FingerprintProcessor {
        FingerprintProcessor::default()
    }

    pub fn counters(&self) -> FingerprintCounters {
        FingerprintCounters {
            spans: self.spans.load(Ordering::Relaxed),
            spans_input: self.spans_input.load(Ordering::Relaxed),
            spans_system: self.spans_system.load(Ordering::Relaxed),
        }
    }
}

impl Processor for FingerprintProcessor {
    fn name(&self) -> &'static str {
        "fingerprint"
    }

    fn process(&self, spans: &mut Vec<StoredSpan>) {
        let (mut n_input, mut n_system) = (0, 0);
        for span in spans.iter_mut() {
            let (input, system) = fingerprints(&span.view);
            let attributes = &mut span.raw.attributes;
            if let Some(input) = input {
                set_attr(attributes, INPUT_FINGERPRINT_ATTR, &input);
                span.view.input_fingerprint = Some(input);
                n_input += 1;
            }
            if let Some(system) = system {
                set_attr(attributes, SYSTEM_FINGERPRINT_ATTR, &system);
                span.view.system_fingerprint = Some(system);
                n_system += 1;
            }
        }
        self.spans.fetch_add(spans.len() as u64, Ordering::Relaxed);
        self.spans_input.fetch_add(n_input, Ordering::Relaxed);
        self.spans_system.fetch_add(n_system, Ordering::Relaxed);
    }
}

fn set_attr(attributes: &mut Vec<KeyValue>, key: &str, value: &str) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = model::AnyValue::String(value.to_owned()),
        None => attributes.push(KeyValue::string(key, value)),
    }
}

/// The input and system fingerprints of a view (lowercase hex SHA-256), `None` where the view
/// has nothing to fingerprint.
///
/// - Input: every input message (role, name, and each part), in order; a view without input
///   messages but with free-form input text fingerprints that text.
/// - System: the system instructions; when there are none, the parts of the input messages
///   whose role is `system` or `developer` (how OpenAI-style requests carry them).
///
/// Each item is written with a type tag and a length prefix, so different message lists can
/// never encode to the same bytes. JSON values (tool arguments and results) are hashed as sent.
pub fn fingerprints(view: &LlmView) -> (Option<String>, Option<String>) {
    let input = if !view.input_messages.is_empty() {
        let mut hasher = Hasher::new();
        for message in &view.input_messages {
            hasher.message(message);
        }
        Some(hasher.finish())
    } else {
        view.input_text.as_deref().map(|text| {
            let mut hasher = Hasher::new();
            hasher.field(b'T', text.as_bytes());
            hasher.finish()
        })
    };
    let system = if !view.system_instructions.is_empty() {
        let mut hasher = Hasher::new();
        hasher.parts(&view.system_instructions);
        Some(hasher.finish())
    } else {
        let mut system_messages = view
            .input_messages
            .iter()
            .filter(|m| {
                m.role.eq_ignore_ascii_case("system") || m.role.eq_ignore_ascii_case("developer")
            })
            .peekable();
        system_messages.peek().is_some().then(|| {
            let mut hasher = Hasher::new();
            for message in system_messages {
                hasher.parts(&message.parts);
            }
            hasher.finish()
        })
    };
    (input, system)
}

/// A SHA-256 over tagged, length-prefixed fields.
struct Hasher(Sha256);

impl Hasher {
    fn new() -> Hasher {
        Hasher(Sha256::new())
    }

    fn field(&mut self, tag: u8, bytes: &[u8]) {
        self.0.update([tag]);
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn json(&mut self, tag: u8, value: &serde_json::Value) {
        let mut buffer = Vec::new();
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut buffer, value);
        self.field(tag, &buffer);
    }

    fn message(&mut self, message: &Message) {
        self.field(b'M', message.role.as_bytes());
        if let Some(name) = &message.name {
            self.field(b'N', name.as_bytes());
        }
        self.parts(&message.parts);
    }

    fn parts(&mut self, parts: &[Part]) {
        self.field(b'P', &(parts.len() as u64).to_le_bytes());
        for part in parts {
            match part {
                Part::Text { content } => self.field(b't', content.as_bytes()),
                Part::Reasoning { content } => self.field(b'r', content.as_bytes()),
                Part::ToolCall { id: _, name, arguments } => {
                    // The call id differs on every call and is not part of the prompt's meaning.
                    self.field(b'c', name.as_bytes());
                    self.json(b'a', arguments);
                }
                Part::ToolCallResponse { id: _, response } => self.json(b'R', response),
                Part::Media { modality, mime_type, uri, file_id, content } => {
                    self.field(b'm', modality.as_bytes());
                    for (tag, value) in
                        [(b'y', mime_type), (b'u', uri), (b'f', file_id), (b'b', content)]
                    {
                        if let Some(value) = value {
                            self.field(tag, value.as_bytes());
                        }
                    }
                }
                Part::Other { value } => self.json(b'o', value),
            }
        }
    }

    fn finish(self) -> String {
        let digest = self.0.finalize();
        let mut res = Vec::with_capacity(64);
        for byte in digest {
            // Writing to a Vec cannot fail.
            let _ = write!(res, "{byte:02x}");
        }
        String::from_utf8(res).unwrap_or_default()
    }
}
