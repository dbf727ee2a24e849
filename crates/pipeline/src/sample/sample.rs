//! The tail-sampling decision: a pure function of a complete trace, its feedback and the
//! running latency of its root name, and the feedback a trace carries in its own spans. The
//! background sampler that calls it is in `sampler.rs`.

use model::{AnyValue, KeyValue, SpanType, StatusCode, StoredSpan, attr_get};

use super::config::{Policy, PolicyKind};
use crate::content::trace_sampled;

/// A feedback record on a trace: a named score and/or a label (e.g. `csat` = 2).
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub name: String,
    pub score: Option<f64>,
    pub label: Option<String>,
}

/// What the decision may know besides the spans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionInputs {
    /// Feedback recorded on the trace so far.
    pub feedback: Vec<Feedback>,
    /// The running p99 duration (ns) of traces with this trace's root span name, when enough
    /// have been seen.
    pub root_name_p99_ns: Option<u64>,
}

/// The decision on one trace: kept when any policy matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    /// The names of the policies that matched, in config order.
    pub matched: Vec<String>,
}

/// Decides one complete trace (all its spans, any order, at least one).
pub fn decide(policies: &[Policy], spans: &[StoredSpan], inputs: &DecisionInputs) -> Decision {
    let matched: Vec<String> = policies
        .iter()
        .filter(|policy| matches(policy, spans, inputs))
        .map(|policy| policy.name.clone())
        .collect();
    Decision { keep: !matched.is_empty(), matched }
}

/// The attribute `key` of any span or resource in the trace.
fn attr_values<'a>(spans: &'a [StoredSpan], key: &'a str) -> impl Iterator<Item = &'a AnyValue> {
    spans.iter().flat_map(move |span| {
        let own = attr_get(&span.raw.attributes, key);
        let resource = attr_get(&span.raw.resource.attributes, key);
        own.into_iter().chain(resource)
    })
}

fn matches(policy: &Policy, spans: &[StoredSpan], inputs: &DecisionInputs) -> bool {
    match &policy.kind {
        PolicyKind::AlwaysSample => true,
        PolicyKind::StatusCode(codes) => spans.iter().any(|s| codes.contains(&s.raw.status.code)),
        PolicyKind::Latency { min_ns, max_ns, root_p99 } => {
            let start = spans.iter().map(|s| s.raw.start_time_unix_nano).min().unwrap_or(0);
            let end = spans.iter().map(|s| s.raw.end_time_unix_nano).max().unwrap_or(0);
            let duration = end.saturating_sub(start);
            let fixed = (min_ns.is_some() || max_ns.is_some())
                && min_ns.is_none_or(|min| duration >= min)
                && max_ns.is_none_or(|max| duration < max);
            let p99 = *root_p99 && inputs.root_name_p99_ns.is_some_and(|p99| duration > p99);
            fixed || p99
        }
        PolicyKind::NumericAttribute { key, min, max } => {
            attr_values(spans, key).filter_map(AnyValue::as_f64).any(|n| (*min..=*max).contains(&n))
        }
        PolicyKind::StringAttribute { key, values, regexes, invert } => {
            let found = attr_values(spans, key).filter_map(AnyValue::as_str).any(|text| {
                values.iter().any(|v| v == text) || regexes.iter().any(|r| r.is_match(text))
            });
            found != *invert
        }
        PolicyKind::BooleanAttribute { key, value } => {
            attr_values(spans, key).filter_map(AnyValue::as_bool).any(|b| b == *value)
        }
        PolicyKind::SpanCount { min, max } => (*min..=*max).contains(&spans.len()),
        PolicyKind::Probabilistic { basis_points } => {
            spans.first().is_some_and(|s| trace_sampled(s.raw.trace_id, *basis_points))
        }
        PolicyKind::Evaluation { fail_labels } => {
            let failed_label =
                |label: &str| fail_labels.iter().any(|f| label.eq_ignore_ascii_case(f));
            let span_says_fail = spans.iter().any(|span| {
                let evaluator = span.view.span_type == SpanType::Evaluator;
                let label = eval_label(&span.raw.attributes)
                    .or_else(|| span.raw.events.iter().find_map(|e| eval_label(&e.attributes)));
                (evaluator && span.raw.status.code == StatusCode::Error)
                    || label.is_some_and(failed_label)
            });
            span_says_fail
                || inputs.feedback.iter().any(|f| f.label.as_deref().is_some_and(failed_label))
        }
        PolicyKind::FeedbackScore { score, max_score } => inputs.feedback.iter().any(|f| {
            score.as_ref().is_none_or(|name| *name == f.name)
                && f.score.is_some_and(|s| s <= *max_score)
        }),
    }
}

/// The GenAI evaluation label (`gen_ai.evaluation.score.label`), on a span or on its
/// `gen_ai.evaluation.result` event.
fn eval_label(attributes: &[KeyValue]) -> Option<&str> {
    attr_get(attributes, "gen_ai.evaluation.score.label").and_then(AnyValue::as_str)
}

/// Feedback carried by the trace itself, until people or evaluators send stored feedback: GenAI
/// evaluation results (`gen_ai.evaluation.name` with `gen_ai.evaluation.score.value` and/or
/// `gen_ai.evaluation.score.label`) on spans or on their `gen_ai.evaluation.result` events.
pub fn feedback_from_spans(spans: &[StoredSpan]) -> Vec<Feedback> {
    let mut res = Vec::new();
    for span in spans {
        let events = span.raw.events.iter().map(|event| &event.attributes[..]);
        for attributes in std::iter::once(&span.raw.attributes[..]).chain(events) {
            let Some(name) =
                attr_get(attributes, "gen_ai.evaluation.name").and_then(AnyValue::as_str)
            else {
                continue;
            };
            let score =
                attr_get(attributes, "gen_ai.evaluation.score.value").and_then(AnyValue::as_f64);
            let label = eval_label(attributes).map(str::to_owned);
            if score.is_some() || label.is_some() {
                res.push(Feedback { name: name.to_owned(), score, label });
            }
        }
    }
    res
}

/// A stored feedback entry as the decision sees it: each named score (categories as labels)
/// and the rating as the score `rating` on the 1 to 5 scale.
pub fn feedback_from_record(record: &model::Feedback) -> Vec<Feedback> {
    let mut res: Vec<Feedback> = record
        .content
        .scores
        .iter()
        .map(|(name, value)| Feedback {
            name: name.clone(),
            score: value.as_f64(),
            label: match value {
                model::ScoreValue::Category(label) => Some(label.clone()),
                _ => None,
            },
        })
        .collect();
    if let Some(rating) = record.content.rating {
        res.push(Feedback {
            name: "rating".to_owned(),
            score: Some(f64::from(rating.value())),
            label: None,
        });
    }
    res
}
