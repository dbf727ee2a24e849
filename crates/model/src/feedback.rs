//! Feedback on the record: the ratings, named scores, corrections, tags and comments that people,
//! API clients and evaluators attach to a span, a trace or a session, with the history of edits,
//! and the score configs (the annotation schema) that named scores are checked against.
//!
//! These are plain records; validation lives in the `datasets` crate.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Message, ProjectId, SpanId, TraceId, UnixNanos};

/// What a feedback entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeedbackTarget {
    Trace {
        trace_id: TraceId,
    },
    /// One span. `trace_id` is `None` when the sender only knew the span id (e.g. the gateway's
    /// `x-loupe-span-id`); the store fills it in once the span is written.
    Span {
        span_id: SpanId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_id: Option<TraceId>,
    },
    Session {
        session_id: String,
    },
}

impl fmt::Display for FeedbackTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedbackTarget::Trace { trace_id } => write!(f, "trace {trace_id}"),
            FeedbackTarget::Span { span_id, .. } => write!(f, "span {span_id}"),
            FeedbackTarget::Session { session_id } => write!(f, "session {session_id:?}"),
        }
    }
}

/// A rating: thumbs up/down, or 1 to 5 stars. Written as `"up"`, `"down"` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rating {
    Up,
    Down,
    /// Invariant: 1 to 5 (checked by `datasets::validate_feedback`).
    Stars(u8),
}

impl Rating {
    /// The rating on the 1 to 5 scale that filters compare against (`rating <= 2`): thumbs down
    /// is 1, thumbs up is 5.
    pub fn value(self) -> u8 {
        match self {
            Rating::Down => 1,
            Rating::Up => 5,
            Rating::Stars(n) => n,
        }
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rating::Up => f.write_str("up"),
            Rating::Down => f.write_str("down"),
            Rating::Stars(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Rating {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Rating::Up => serializer.serialize_str("up"),
            Rating::Down => serializer.serialize_str("down"),
            Rating::Stars(n) => serializer.serialize_u8(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Rating {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rating, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let invalid = |what: &str| {
            serde::de::Error::custom(format!(
                "invalid rating {what}: use \"up\", \"down\" or a number from 1 to 5"
            ))
        };
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) if (1..=5).contains(&n) => Ok(Rating::Stars(n as u8)),
            Raw::Number(n) => Err(invalid(&n.to_string())),
            Raw::Text(text) => match text.as_str() {
                "up" | "thumbs_up" => Ok(Rating::Up),
                "down" | "thumbs_down" => Ok(Rating::Down),
                other => match other.parse::<i64>() {
                    Ok(n) if (1..=5).contains(&n) => Ok(Rating::Stars(n as u8)),
                    _ => Err(invalid(&format!("{other:?}"))),
                },
            },
        }
    }
}

/// The value of a named score; which variant is allowed is set by the score's [`ScoreConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScoreValue {
    Bool(bool),
    Number(f64),
    Category(String),
}

impl ScoreValue {
    /// The value as a number for filters (`score.helpfulness >= 0.8`): booleans are 0 and 1,
    /// categories have none.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ScoreValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            ScoreValue::Number(n) => Some(*n),
            ScoreValue::Category(_) => None,
        }
    }
}

impl fmt::Display for ScoreValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScoreValue::Bool(b) => write!(f, "{b}"),
            ScoreValue::Number(n) => write!(f, "{n}"),
            ScoreValue::Category(c) => write!(f, "{c:?}"),
        }
    }
}

/// What a feedback entry says. Every part is optional, but an entry says at least one thing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FeedbackContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scores: BTreeMap<String, ScoreValue>,
    /// An improved output in the normalized message shape, so it can replace the recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<Vec<Message>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl FeedbackContent {
    pub fn is_empty(&self) -> bool {
        *self == FeedbackContent::default()
    }
}

/// Who or what gave the feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackSource {
    Human,
    #[default]
    Api,
    Evaluator,
}

impl FeedbackSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackSource::Human => "human",
            FeedbackSource::Api => "api",
            FeedbackSource::Evaluator => "evaluator",
        }
    }
}

/// A feedback entry as it was before one edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRevision {
    pub content: FeedbackContent,
    pub source: FeedbackSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// When this revision was written (it was replaced later).
    pub time_ns: UnixNanos,
}

/// One feedback entry on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// `fb_` and 32 lowercase hex characters (a UUIDv7); unique within a project.
    pub id: String,
    pub project: ProjectId,
    pub target: FeedbackTarget,
    #[serde(flatten)]
    pub content: FeedbackContent,
    pub source: FeedbackSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub created_ns: UnixNanos,
    pub updated_ns: UnixNanos,
    /// Earlier versions of this entry, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<FeedbackRevision>,
}

/// A named score in the annotation schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreConfig {
    /// Letters, digits, `_` and `-`, 1 to 64 characters (it appears in filters as `score.NAME`).
    pub name: String,
    #[serde(flatten)]
    pub kind: ScoreKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The values a score may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScoreKind {
    /// A number in `[min, max]`.
    Numeric {
        min: f64,
        max: f64,
    },
    /// One of `values`.
    Categorical {
        values: Vec<String>,
    },
    Boolean,
}
