//! Datasets: named, versioned collections of items built from recorded calls (or imported), each
//! holding an input, an expected output and a link back to where it came from.
//!
//! Versions are immutable: adding, editing or removing items makes a new version. These are
//! plain records; building, splitting, exporting and importing live in the `datasets` crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Message, Part, ProjectId, SpanId, TraceId, UnixNanos};

/// A dataset: a name and the facts shared by all its versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub project: ProjectId,
    /// Lowercase letters, digits, `-`, `_` and `.`, 1 to 64 characters; unique in a project.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_ns: UnixNanos,
    /// The newest version, `None` before the first one is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<u32>,
}

/// One immutable version of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetVersion {
    pub dataset: String,
    /// 1, 2, 3, ... in creation order.
    pub version: u32,
    pub created_ns: UnixNanos,
    pub n_items: u64,
    /// The query the items were selected with, when they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What an item's model is given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ItemInput {
    /// System instructions given apart from the messages (Anthropic `system`, OTel
    /// `gen_ai.system_instructions`). System messages inside `messages` stay there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<Part>,
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Tool definitions, as recorded (OpenAI, OTel or Anthropic shape).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    /// Template variables, for prompt-template evals.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, serde_json::Value>,
}

/// Where an item's expected output comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedSource {
    /// A correction written on the source call.
    Correction,
    /// The output the source call actually produced.
    Recorded,
    /// Given by an imported file.
    Imported,
}

impl ExpectedSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedSource::Correction => "correction",
            ExpectedSource::Recorded => "recorded",
            ExpectedSource::Imported => "imported",
        }
    }
}

/// The call an item was made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItemSource {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The feedback entry whose correction became the expected output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_id: Option<String>,
}

/// Which part of a dataset an item belongs to when training or evaluating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// One dataset item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetItem {
    /// `itm_` and 24 hex characters, derived from the source (or the content when imported), so
    /// the same call always gives the same id.
    pub id: String,
    pub input: ItemInput,
    /// The correction if there is one, else the recorded output.
    pub expected: Vec<Message>,
    pub expected_source: ExpectedSource,
    /// The recorded output, kept when `expected` is a correction (the rejected side of a
    /// preference pair).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorded: Vec<Message>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ItemSource>,
    /// Other calls with the same input that were merged into this item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<ItemSource>,
    /// SHA-256 hex of the canonical JSON of the input's system, messages and tools.
    pub input_fingerprint: String,
    /// Assigned from a hash of `id`, so it never changes between versions.
    pub split: Split,
}
