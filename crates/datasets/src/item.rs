//! Dataset items from recorded calls: the input, the expected output (the correction if there is
//! one, else the recorded output), provenance, a stable id, the input fingerprint, the split, and
//! merging of items with the same input.

use std::collections::{BTreeMap, HashMap};

use model::{
    DatasetItem, ExpectedSource, Feedback, ItemInput, ItemSource, Message, Part, SpanId, Split,
    StoredSpan, TraceId,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How items are spread over the splits, in percent; the test split gets the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitConfig {
    pub train_percent: u8,
    pub validation_percent: u8,
}

impl Default for SplitConfig {
    fn default() -> SplitConfig {
        SplitConfig { train_percent: 80, validation_percent: 10 }
    }
}

/// The split of an item, from a hash of its id: the same id always lands in the same split,
/// whatever else is in the dataset, so a version never moves an item between splits.
pub fn assign_split(item_id: &str, config: SplitConfig) -> Split {
    let digest = Sha256::digest(item_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let bucket = u64::from_be_bytes(first) % 100;
    let train = u64::from(config.train_percent);
    let validation = train + u64::from(config.validation_percent);
    if bucket < train {
        Split::Train
    } else if bucket < validation {
        Split::Validation
    } else {
        Split::Test
    }
}

/// The id of the item made from one span: the same span always gives the same id.
pub fn span_item_id(trace_id: TraceId, span_id: SpanId) -> String {
    short_id(&[b"span\0", trace_id.as_bytes(), span_id.as_bytes()])
}

/// The id of an imported item, from its content.
pub fn import_item_id(input: &ItemInput, expected: &[Message]) -> String {
    let input = canonical_json(&to_value(input));
    let expected = canonical_json(&to_value(&expected));
    short_id(&[b"import\0", input.as_bytes(), b"\0", expected.as_bytes()])
}

fn short_id(chunks: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for chunk in chunks {
        hasher.update(chunk);
    }
    let digest = hasher.finalize();
    let mut res = String::from("itm_");
    for byte in &digest[..12] {
        res.push_str(&format!("{byte:02x}"));
    }
    res
}

/// SHA-256 hex of the canonical JSON (object keys sorted, no spaces) of the input's system
/// instructions, messages and tools. Variables are not part of it: the same prompt with other
/// template values is the same input for dedup only when it renders the same messages.
pub fn input_fingerprint(input: &ItemInput) -> String {
    let value = serde_json::json!({
        "system": to_value(&input.system),
        "messages": to_value(&input.messages),
        "tools": to_value(&input.tools),
    });
    let digest = Sha256::digest(canonical_json(&value).as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    // Serializing model types to a `Value` cannot fail: they have string keys only and no
    // fallible `Serialize` impls.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// JSON with object keys sorted at every level, so equal values give equal text whatever order
/// their keys arrived in.
fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
            }
            Value::Array(values) => Value::Array(values.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// The item made from one recorded span, with the correction of `feedback` when it has one.
/// `None` when the span has no recorded input (content recording was off, or it is not an LLM
/// call).
pub fn item_from_span(
    span: &StoredSpan,
    feedback: Option<&Feedback>,
    split_config: SplitConfig,
) -> Option<DatasetItem> {
    let view = &span.view;
    let mut messages = view.input_messages.clone();
    if messages.is_empty()
        && let Some(text) = &view.input_text
    {
        messages.push(Message::text("user", text.clone()));
    }
    if messages.is_empty() && view.system_instructions.is_empty() {
        return None;
    }
    let input = ItemInput {
        system: view.system_instructions.clone(),
        messages,
        tools: view.request.tools.clone(),
        variables: BTreeMap::new(),
    };
    let mut recorded = view.output_messages.clone();
    if recorded.is_empty()
        && let Some(text) = &view.output_text
    {
        recorded.push(Message::text("assistant", text.clone()));
    }
    let correction = feedback.and_then(|feedback| {
        feedback.content.correction.as_ref().map(|correction| (feedback.id.clone(), correction))
    });
    let (expected, expected_source, recorded, feedback_id) = match correction {
        Some((feedback_id, correction)) => {
            (correction.clone(), ExpectedSource::Correction, recorded, Some(feedback_id))
        }
        None => (recorded, ExpectedSource::Recorded, Vec::new(), None),
    };
    let mut metadata = BTreeMap::new();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(value) = value {
            metadata.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    };
    put("span_name", Some(&span.raw.name));
    put("service", Some(span.raw.service_name()));
    put("operation", view.operation_id.as_deref());
    put("model", view.model());
    put("provider", view.provider.as_deref());
    if let Some(feedback) = feedback {
        if let Some(rating) = feedback.content.rating {
            metadata.insert("rating".to_owned(), Value::from(rating.value()));
        }
        if !feedback.content.tags.is_empty() {
            metadata.insert("tags".to_owned(), to_value(&feedback.content.tags));
        }
    }
    let id = span_item_id(span.raw.trace_id, span.raw.span_id);
    let split = assign_split(&id, split_config);
    Some(DatasetItem {
        id,
        input_fingerprint: input_fingerprint(&input),
        input,
        expected,
        expected_source,
        recorded,
        metadata,
        source: Some(ItemSource {
            trace_id: span.raw.trace_id,
            span_id: span.raw.span_id,
            feedback_id,
        }),
        merged_from: Vec::new(),
        split,
    })
}

/// Merges items with the same input fingerprint, keeping the first one's position. A duplicate
/// that has a correction replaces a kept item that has none (a human's answer beats a recorded
/// one); the other item's source is listed in `merged_from` either way.
#[derive(Debug, Default)]
pub struct Deduper {
    by_fingerprint: HashMap<String, usize>,
    items: Vec<DatasetItem>,
    n_merged: u64,
}

impl Deduper {
    pub fn new() -> Deduper {
        Deduper::default()
    }

    pub fn push(&mut self, item: DatasetItem) {
        let Some(&index) = self.by_fingerprint.get(&item.input_fingerprint) else {
            self.by_fingerprint.insert(item.input_fingerprint.clone(), self.items.len());
            self.items.push(item);
            return;
        };
        self.n_merged += 1;
        let kept = &mut self.items[index];
        let replaces = item.expected_source == ExpectedSource::Correction
            && kept.expected_source != ExpectedSource::Correction;
        if replaces {
            let mut merged_from = std::mem::take(&mut kept.merged_from);
            merged_from.extend(kept.source.take());
            merged_from.extend(item.merged_from.iter().cloned());
            *kept = DatasetItem { merged_from, ..item };
        } else {
            kept.merged_from.extend(item.source);
            kept.merged_from.extend(item.merged_from);
        }
    }

    /// How many items were merged into others.
    pub fn n_merged(&self) -> u64 {
        self.n_merged
    }

    pub fn into_items(self) -> Vec<DatasetItem> {
        self.items
    }
}

/// [`Deduper`] over a whole list.
pub fn dedup(items: impl IntoIterator<Item = DatasetItem>) -> (Vec<DatasetItem>, u64) {
    let mut deduper = Deduper::new();
    for item in items {
        deduper.push(item);
    }
    let n_merged = deduper.n_merged();
    (deduper.into_items(), n_merged)
}

/// The plain text of the parts, text parts joined by newlines.
pub(crate) fn parts_text(parts: &[Part]) -> String {
    let mut res = String::new();
    for part in parts {
        if let Part::Text { content } = part {
            if !res.is_empty() {
                res.push('\n');
            }
            res.push_str(content);
        }
    }
    res
}

#[cfg(test)]
mod tests;
