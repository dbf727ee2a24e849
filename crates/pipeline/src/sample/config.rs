//! The `[pipeline.sample]` section of `loupe.toml`: tail-sampling policies, named and shaped
//! like the OpenTelemetry Collector's `tail_sampling` processor, plus Loupe's evaluation and
//! feedback policies.

use regex::Regex;
use serde::Deserialize;

use crate::Error;

/// Tail sampling: once a trace is complete (its root span ended and `decision_wait_secs`
/// passed), it is kept when any policy matches and deleted otherwise. Spans are written at once
/// and decided after, so an acknowledged span survives a crash during the wait.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSampleConfig {
    /// Run tail sampling. Default: `false` (every trace is kept).
    pub enabled: Option<bool>,
    /// Seconds to wait after the root span ends (or after the first span, when no root
    /// arrives) before deciding. Default: `30`.
    pub decision_wait_secs: Option<u64>,
    /// The Collector's cap on traces held in memory: accepted for compatibility, no effect
    /// (waiting spans are staged on disk, not held in memory). Default: `50000`.
    pub num_traces: Option<usize>,
    /// The policies; a trace is kept when any of them matches.
    #[serde(default)]
    pub policies: Vec<RawPolicy>,
}

/// One policy: a `name` (for `/metrics` and the API), its `type` and that type's settings.
/// (Unknown fields are rejected by the type's settings; serde cannot reject them here because
/// of the flattening.)
#[derive(Debug, Clone, Deserialize)]
pub struct RawPolicy {
    pub name: String,
    #[serde(flatten)]
    pub kind: RawPolicyKind,
}

/// The policy types.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawPolicyKind {
    /// Keep every trace.
    AlwaysSample,
    /// Keep traces with a span whose status is one of `status_codes` (`OK`, `ERROR`, `UNSET`).
    StatusCode { status_codes: Vec<String> },
    /// Keep traces whose duration (earliest start to latest end) is at least `threshold_ms`
    /// (and below `upper_threshold_ms` when set), or, with `percentile = 99`, above the running
    /// p99 of traces with the same root span name.
    Latency {
        #[serde(default)]
        threshold_ms: Option<u64>,
        #[serde(default)]
        upper_threshold_ms: Option<u64>,
        #[serde(default)]
        percentile: Option<u8>,
    },
    /// Keep traces with a span or resource attribute `key` whose number is in
    /// `[min_value, max_value]` (either bound may be left out).
    NumericAttribute {
        key: String,
        #[serde(default)]
        min_value: Option<f64>,
        #[serde(default)]
        max_value: Option<f64>,
    },
    /// Keep traces with a span or resource attribute `key` equal to one of `values` (regexes
    /// when `enabled_regex_matching`); `invert_match` keeps the traces that have none.
    StringAttribute {
        key: String,
        values: Vec<String>,
        #[serde(default)]
        enabled_regex_matching: bool,
        #[serde(default)]
        invert_match: bool,
    },
    /// Keep traces with a span or resource attribute `key` equal to `value`.
    BooleanAttribute { key: String, value: bool },
    /// Keep traces with at least `min_spans` and at most `max_spans` spans.
    SpanCount {
        #[serde(default)]
        min_spans: Option<usize>,
        #[serde(default)]
        max_spans: Option<usize>,
    },
    /// Keep `sampling_percentage` percent of traces, chosen by trace id hash (the same hash as
    /// content sampling, so the two agree).
    Probabilistic { sampling_percentage: f64 },
    /// Keep traces where an evaluator or judge says fail: an evaluator span with status error, a
    /// `gen_ai.evaluation.score.label` in `fail_labels`, or a feedback record with one of them.
    Evaluation {
        #[serde(default = "default_fail_labels")]
        fail_labels: Vec<String>,
    },
    /// Keep traces with a feedback score (named `score`, or any when unset) at or below
    /// `max_score`, e.g. CSAT ≤ 2.
    FeedbackScore {
        #[serde(default)]
        score: Option<String>,
        max_score: f64,
    },
}

fn default_fail_labels() -> Vec<String> {
    ["fail", "failed", "incorrect", "false"].map(str::to_owned).to_vec()
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub(crate) kind: PolicyKind,
}

#[derive(Debug, Clone)]
pub(crate) enum PolicyKind {
    AlwaysSample,
    StatusCode(Vec<model::StatusCode>),
    Latency { min_ns: Option<u64>, max_ns: Option<u64>, root_p99: bool },
    NumericAttribute { key: String, min: f64, max: f64 },
    StringAttribute { key: String, values: Vec<String>, regexes: Vec<Regex>, invert: bool },
    BooleanAttribute { key: String, value: bool },
    SpanCount { min: usize, max: usize },
    Probabilistic { basis_points: u32 },
    Evaluation { fail_labels: Vec<String> },
    FeedbackScore { score: Option<String>, max_score: f64 },
}

/// The validated sampling settings.
#[derive(Debug, Clone)]
pub struct SampleConfig {
    pub enabled: bool,
    pub decision_wait_secs: u64,
    pub num_traces: usize,
    pub policies: Vec<Policy>,
}

impl SampleConfig {
    /// Whether a policy looks at span content (attributes, events, evaluation results,
    /// feedback); when none does, the sampler reads only each span's skeleton (ids, times,
    /// status, name, span type: see `Store::traces_for_decision`).
    pub fn needs_content(&self) -> bool {
        self.policies.iter().any(|policy| match policy.kind {
            PolicyKind::AlwaysSample
            | PolicyKind::StatusCode(_)
            | PolicyKind::Latency { .. }
            | PolicyKind::SpanCount { .. }
            | PolicyKind::Probabilistic { .. } => false,
            PolicyKind::NumericAttribute { .. }
            | PolicyKind::StringAttribute { .. }
            | PolicyKind::BooleanAttribute { .. }
            | PolicyKind::Evaluation { .. }
            | PolicyKind::FeedbackScore { .. } => true,
        })
    }

    /// Whether the trace is kept whatever its spans hold: a policy keeps every trace, or the
    /// trace id falls in a probabilistic policy's share. Policies are alternatives, so such a
    /// trace needs no wait: the pipeline stores its spans at once (`Store::stage_spans`).
    pub fn kept_at_once(&self, trace_id: model::TraceId) -> bool {
        self.policies.iter().any(|policy| match policy.kind {
            PolicyKind::AlwaysSample => true,
            PolicyKind::Probabilistic { basis_points } => {
                crate::content::trace_sampled(trace_id, basis_points)
            }
            _ => false,
        })
    }

    pub fn from_raw(raw: &RawSampleConfig) -> Result<SampleConfig, Error> {
        let mut policies = Vec::new();
        for policy in &raw.policies {
            let place = format!("sample.policies ({})", policy.name);
            if policy.name.is_empty() || policies.iter().any(|p: &Policy| p.name == policy.name) {
                return Err(Error::Config(format!("{place}: names must be non-empty and unique")));
            }
            let kind = match &policy.kind {
                RawPolicyKind::AlwaysSample => PolicyKind::AlwaysSample,
                RawPolicyKind::StatusCode { status_codes } => {
                    let codes = status_codes
                        .iter()
                        .map(|code| match code.to_ascii_uppercase().as_str() {
                            "OK" => Ok(model::StatusCode::Ok),
                            "ERROR" => Ok(model::StatusCode::Error),
                            "UNSET" => Ok(model::StatusCode::Unset),
                            _ => Err(Error::Config(format!(
                                "{place}: status code {code:?} is not OK, ERROR or UNSET"
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    PolicyKind::StatusCode(codes)
                }
                RawPolicyKind::Latency { threshold_ms, upper_threshold_ms, percentile } => {
                    let root_p99 = match percentile {
                        None => false,
                        Some(99) => true,
                        Some(other) => {
                            return Err(Error::Config(format!(
                                "{place}: percentile {other} is not supported (use 99)"
                            )));
                        }
                    };
                    if threshold_ms.is_none() && upper_threshold_ms.is_none() && !root_p99 {
                        return Err(Error::Config(format!(
                            "{place}: set threshold_ms, upper_threshold_ms or percentile"
                        )));
                    }
                    let ns = |ms: &Option<u64>| ms.map(|ms| ms.saturating_mul(1_000_000));
                    PolicyKind::Latency {
                        min_ns: ns(threshold_ms),
                        max_ns: ns(upper_threshold_ms),
                        root_p99,
                    }
                }
                RawPolicyKind::NumericAttribute { key, min_value, max_value } => {
                    if min_value.is_none() && max_value.is_none() {
                        return Err(Error::Config(format!("{place}: set min_value or max_value")));
                    }
                    PolicyKind::NumericAttribute {
                        key: key.clone(),
                        min: min_value.unwrap_or(f64::NEG_INFINITY),
                        max: max_value.unwrap_or(f64::INFINITY),
                    }
                }
                RawPolicyKind::StringAttribute {
                    key,
                    values,
                    enabled_regex_matching,
                    invert_match,
                } => {
                    let regexes = if *enabled_regex_matching {
                        values
                            .iter()
                            .map(|v| {
                                Regex::new(v).map_err(|e| Error::Config(format!("{place}: {e}")))
                            })
                            .collect::<Result<Vec<_>, _>>()?
                    } else {
                        Vec::new()
                    };
                    PolicyKind::StringAttribute {
                        key: key.clone(),
                        values: if *enabled_regex_matching { Vec::new() } else { values.clone() },
                        regexes,
                        invert: *invert_match,
                    }
                }
                RawPolicyKind::BooleanAttribute { key, value } => {
                    PolicyKind::BooleanAttribute { key: key.clone(), value: *value }
                }
                RawPolicyKind::SpanCount { min_spans, max_spans } => PolicyKind::SpanCount {
                    min: min_spans.unwrap_or(0),
                    max: max_spans.unwrap_or(usize::MAX),
                },
                RawPolicyKind::Probabilistic { sampling_percentage } => {
                    if !(0.0..=100.0).contains(sampling_percentage) {
                        return Err(Error::Config(format!(
                            "{place}: sampling_percentage must be between 0 and 100"
                        )));
                    }
                    PolicyKind::Probabilistic {
                        basis_points: (sampling_percentage * 100.0).round() as u32,
                    }
                }
                RawPolicyKind::Evaluation { fail_labels } => PolicyKind::Evaluation {
                    fail_labels: fail_labels.iter().map(|l| l.to_lowercase()).collect(),
                },
                RawPolicyKind::FeedbackScore { score, max_score } => {
                    PolicyKind::FeedbackScore { score: score.clone(), max_score: *max_score }
                }
            };
            policies.push(Policy { name: policy.name.clone(), kind });
        }
        Ok(SampleConfig {
            enabled: raw.enabled.unwrap_or(false),
            decision_wait_secs: raw.decision_wait_secs.unwrap_or(30),
            num_traces: raw.num_traces.unwrap_or(50_000),
            policies,
        })
    }
}
