//! Eval runs as pure functions: reading an eval suite (the YAML `loupe dataset export --format
//! eval` and `loupe export-trace` write, or a hand-written one), turning its cases into prompts
//! (`{{var}}` templates), evaluating assertions on an output, the results document of a run,
//! comparing two runs case by case, the CI gate on a baseline, and JUnit XML.
//!
//! The calls to the model are the caller's (`loupe eval run` in `app`); everything here is
//! deterministic, so a run's document follows from the suite and the outputs alone.
//!
//! # Assertions
//!
//! Type names are read with `_` and `-` alike, and any type takes a `not-` (or `not_`) prefix
//! that negates it, as in promptfoo:
//!
//! | type | passes when |
//! |---|---|
//! | `contains`, `icontains` | the output contains the value, ignoring case (the toad-eye suite semantics) |
//! | `not_contains` | the negation of `contains` (so also case-insensitive) |
//! | `equals` | the output equals the value, ignoring surrounding whitespace; or both parse as the same JSON |
//! | `matches_regex`, `regex` | the regular expression (Rust `regex` syntax) matches somewhere in the output |
//! | `max_length` | the output is at most the value long, in UTF-16 code units (JavaScript's `length`) |
//! | `is_json` | the output parses as JSON, bare scalars included (`JSON.parse` semantics) |
//! | `starts-with` | the output starts with the value (case-sensitive) |
//!
//! A case passes iff its call succeeded and every assertion passes.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::Error;

/// The assertion types `compile` knows, for error messages and docs.
pub const KNOWN_ASSERTIONS: &str = "contains, icontains, not_contains, equals, matches_regex \
    (or regex), max_length, is_json, starts-with, each also negated with a not- prefix";

/// The most cases a suite (and a recorded run) may have.
pub const MAX_CASES: usize = 100_000;

// ------------------------------------------------------------------------------------------
// Suites
// ------------------------------------------------------------------------------------------

/// An eval suite as read from YAML. Unknown keys are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Suite {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default)]
    pub cases: Vec<SuiteCase>,
}

/// One case of a suite.
#[derive(Debug, Clone, Deserialize)]
pub struct SuiteCase {
    /// A string or a number; see [`SuiteCase::id_text`].
    pub id: Value,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub variables: Map<String, Value>,
    #[serde(default)]
    pub assertions: Vec<AssertionSpec>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl SuiteCase {
    /// The id as text (`7` for a numeric id).
    pub fn id_text(&self) -> String {
        value_text(&self.id)
    }
}

/// An assertion as written in a suite: `{type, value}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: Value,
}

/// Reads a suite from YAML (or JSON, a subset of YAML) and checks its shape: at least one case,
/// unique case ids, every assertion of a known type with a usable value.
pub fn parse_suite(text: &str) -> Result<Suite, Error> {
    let suite: Suite =
        serde_norway::from_str(text).map_err(|error| Error::InvalidSuite(error.to_string()))?;
    if suite.cases.is_empty() {
        return Err(Error::InvalidSuite("the suite has no cases".to_owned()));
    }
    if suite.cases.len() > MAX_CASES {
        return Err(Error::InvalidSuite(format!(
            "the suite has {} cases, at most {MAX_CASES} are supported",
            suite.cases.len()
        )));
    }
    let mut seen = HashSet::new();
    for case in &suite.cases {
        let id = case.id_text();
        if id.is_empty() {
            return Err(Error::InvalidSuite("a case has an empty id".to_owned()));
        }
        if !seen.insert(id.clone()) {
            return Err(Error::InvalidSuite(format!("case id {id:?} appears twice")));
        }
        for spec in &case.assertions {
            Check::compile(spec)?;
        }
    }
    Ok(suite)
}

/// SHA-256 of the suite file as lowercase hex, recorded with each run.
pub fn suite_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// How cases become prompts.
#[derive(Debug, Clone, Default)]
pub struct PromptConfig {
    /// The system message for every case (a `{{var}}` template); else the case's `system`
    /// variable, if any.
    pub system: Option<String>,
    /// The user message (a `{{var}}` template); else the case's `input` variable.
    pub template: Option<String>,
}

/// A case ready to be sent: its messages and compiled assertions.
#[derive(Debug, Clone)]
pub struct PreparedCase {
    pub id: String,
    pub system: Option<String>,
    pub input: String,
    pub checks: Vec<Check>,
    pub source: Option<CaseSource>,
}

/// Where a case came from: the recorded span its input was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseSource {
    pub trace_id: String,
    pub span_id: String,
}

/// Every case of `suite` as messages; fails on the first case that cannot be built (a missing
/// variable, no input), before anything is sent.
pub fn prepare(suite: &Suite, prompt: &PromptConfig) -> Result<Vec<PreparedCase>, Error> {
    suite
        .cases
        .iter()
        .map(|case| {
            let id = case.id_text();
            let input = match &prompt.template {
                Some(template) => render_template(template, &case.variables, &id)?,
                None => match case.variables.get("input") {
                    Some(value) if !value.is_null() => value_text(value),
                    _ => return Err(Error::MissingInput { case: id }),
                },
            };
            let system = match &prompt.system {
                Some(template) => Some(render_template(template, &case.variables, &id)?),
                None => case.variables.get("system").filter(|v| !v.is_null()).map(value_text),
            };
            let checks = case.assertions.iter().map(Check::compile).collect::<Result<_, _>>()?;
            // YAML reads an all-digit id as a number; its text is still the id.
            let id_of = |key: &str| case.metadata.get(key).filter(|v| !v.is_null()).map(value_text);
            let source = match (id_of("trace_id"), id_of("span_id")) {
                (Some(trace_id), Some(span_id)) => Some(CaseSource { trace_id, span_id }),
                _ => None,
            };
            Ok(PreparedCase { id, system, input, checks, source })
        })
        .collect()
}

/// Fills `{{name}}` placeholders (spaces inside the braces allowed) from `variables`; a
/// placeholder without a variable is an error. Anything else is copied as is.
pub fn render_template(
    template: &str,
    variables: &Map<String, Value>,
    case_id: &str,
) -> Result<String, Error> {
    let mut res = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        res.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            res.push_str(&rest[start..]);
            return Ok(res);
        };
        let name = after[..end].trim();
        if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            match variables.get(name) {
                Some(value) => res.push_str(&value_text(value)),
                None => {
                    let mut known: Vec<&str> = variables.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    return Err(Error::MissingVariable {
                        case: case_id.to_owned(),
                        name: name.to_owned(),
                        known: known.join(", "),
                    });
                }
            }
        } else {
            res.push_str(&rest[start..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    res.push_str(rest);
    Ok(res)
}

/// A variable's text: strings as they are, anything else as JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

// ------------------------------------------------------------------------------------------
// Assertions
// ------------------------------------------------------------------------------------------

/// An assertion ready to evaluate.
#[derive(Debug, Clone)]
pub struct Check {
    spec: AssertionSpec,
    negate: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// The needle as written, and lower-cased.
    Contains(String, String),
    Equals(String),
    Regex(regex::Regex),
    MaxLength(u64),
    IsJson,
    StartsWith(String),
}

impl Check {
    /// Compiles an assertion; an unknown type or an unusable value is an error naming it.
    pub fn compile(spec: &AssertionSpec) -> Result<Check, Error> {
        let normalized = spec.kind.trim().to_ascii_lowercase().replace('_', "-");
        let (negate, base) = match normalized.strip_prefix("not-") {
            Some(base) => (true, base),
            None => (false, normalized.as_str()),
        };
        let invalid = |reason: &str| Error::InvalidAssertion {
            kind: spec.kind.clone(),
            reason: reason.to_owned(),
        };
        let text = || match &spec.value {
            Value::Null => Err(invalid("needs a value")),
            Value::Object(_) | Value::Array(_) if base != "equals" => {
                Err(invalid("needs a string value"))
            }
            value => Ok(value_text(value)),
        };
        let (negate, kind) = match base {
            "contains" | "icontains" => {
                let needle = text()?;
                let lower = needle.to_lowercase();
                (negate, Kind::Contains(needle, lower))
            }
            "equals" => (negate, Kind::Equals(text()?)),
            "matches-regex" | "regex" => {
                let pattern = text()?;
                let regex = regex::Regex::new(&pattern)
                    .map_err(|error| invalid(&format!("invalid regular expression: {error}")))?;
                (negate, Kind::Regex(regex))
            }
            "max-length" => {
                let n = match &spec.value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                match n {
                    Some(n) if n > 0 => (negate, Kind::MaxLength(n)),
                    _ => return Err(invalid("needs a positive whole number")),
                }
            }
            // `is_json: false` asks for output that is not JSON.
            "is-json" => (negate ^ (spec.value == Value::Bool(false)), Kind::IsJson),
            "starts-with" => (negate, Kind::StartsWith(text()?)),
            _ => {
                return Err(Error::UnknownAssertion {
                    kind: spec.kind.clone(),
                    known: KNOWN_ASSERTIONS.to_owned(),
                });
            }
        };
        Ok(Check { spec: spec.clone(), negate, kind })
    }

    /// Evaluates the assertion on `output`.
    pub fn evaluate(&self, output: &str) -> AssertionResult {
        let (holds, detail) = match &self.kind {
            Kind::Contains(needle, lower) => {
                let holds = output.to_lowercase().contains(lower.as_str());
                (holds, format!("contain {needle:?} (ignoring case)"))
            }
            Kind::Equals(expected) => {
                let holds = output.trim() == expected.trim() || same_json(output, expected);
                (holds, format!("equal {expected:?}"))
            }
            Kind::Regex(regex) => (regex.is_match(output), format!("match /{}/", regex.as_str())),
            Kind::MaxLength(max) => {
                let length = output.encode_utf16().count() as u64;
                (length <= *max, format!("be at most {max} long (it is {length})"))
            }
            Kind::IsJson => (is_json(output), "be JSON".to_owned()),
            Kind::StartsWith(prefix) => {
                (output.starts_with(prefix.as_str()), format!("start with {prefix:?}"))
            }
        };
        let passed = holds != self.negate;
        let reason = (!passed).then(|| {
            if self.negate {
                format!("expected the output not to {detail}")
            } else {
                format!("expected the output to {detail}")
            }
        });
        AssertionResult {
            kind: self.spec.kind.clone(),
            value: self.spec.value.clone(),
            passed,
            reason,
        }
    }

    /// The result of an assertion that could not be evaluated (the call failed).
    fn not_evaluated(&self) -> AssertionResult {
        AssertionResult {
            kind: self.spec.kind.clone(),
            value: self.spec.value.clone(),
            passed: false,
            reason: Some("not evaluated: the call failed".to_owned()),
        }
    }
}

/// `JSON.parse` semantics: any JSON value, surrounding whitespace allowed.
fn is_json(text: &str) -> bool {
    serde_json::from_str::<Value>(text.trim()).is_ok()
}

fn same_json(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<Value>(a.trim()), serde_json::from_str::<Value>(b.trim())) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

// ------------------------------------------------------------------------------------------
// Results
// ------------------------------------------------------------------------------------------

/// The results document of one run: what `loupe eval run --output` writes and
/// `POST /api/v1/evals/runs` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub id: String,
    pub name: String,
    /// The suite's name.
    pub suite: String,
    pub model: String,
    pub base_url: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
    pub metadata: RunMetadata,
    pub stats: RunStats,
    pub cases: Vec<CaseResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetadata {
    /// The source commit the run tested (`GITHUB_SHA` or `LOUPE_EVAL_COMMIT`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub suite_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    pub total: u64,
    pub passed: u64,
    /// Cases whose call succeeded and an assertion failed.
    pub failed: u64,
    /// Cases whose call failed.
    pub errors: u64,
    /// `passed / total` (0 for an empty run).
    pub pass_rate: f64,
    /// Mean latency of the cases whose call succeeded, in whole milliseconds.
    pub avg_latency_ms: u64,
    pub total_tokens: u64,
}

impl RunStats {
    pub fn of(cases: &[CaseResult]) -> RunStats {
        let total = cases.len() as u64;
        let passed = cases.iter().filter(|c| c.passed).count() as u64;
        let errors = cases.iter().filter(|c| c.error.is_some()).count() as u64;
        let answered: Vec<&CaseResult> = cases.iter().filter(|c| c.error.is_none()).collect();
        let avg_latency_ms = if answered.is_empty() {
            0
        } else {
            let sum: u64 = answered.iter().map(|c| c.latency_ms).sum();
            (sum + answered.len() as u64 / 2) / answered.len() as u64
        };
        RunStats {
            total,
            passed,
            failed: total - passed - errors,
            errors,
            pass_rate: if total == 0 { 0.0 } else { passed as f64 / total as f64 },
            avg_latency_ms,
            total_tokens: cases.iter().map(|c| c.tokens).sum(),
        }
    }
}

/// One case's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub id: String,
    pub input: String,
    /// Empty when the call failed.
    pub output: String,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: u64,
    /// Total tokens the endpoint reported (0 when it reported none).
    pub tokens: u64,
    pub assertions: Vec<AssertionResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<CaseSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionResult {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: Value,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the model call of a case gave.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The assistant's text, or why the call failed.
    pub output: Result<String, String>,
    pub latency_ms: u64,
    pub tokens: u64,
}

/// A case's result from its call: assertions evaluated on the output; every assertion fails
/// (not evaluated) when the call did.
pub fn case_result(case: &PreparedCase, outcome: CallOutcome) -> CaseResult {
    let (output, error, assertions) = match outcome.output {
        Ok(output) => {
            let assertions: Vec<AssertionResult> =
                case.checks.iter().map(|check| check.evaluate(&output)).collect();
            (output, None, assertions)
        }
        Err(error) => {
            (String::new(), Some(error), case.checks.iter().map(Check::not_evaluated).collect())
        }
    };
    CaseResult {
        id: case.id.clone(),
        input: case.input.clone(),
        passed: error.is_none() && assertions.iter().all(|a| a.passed),
        output,
        error,
        latency_ms: outcome.latency_ms,
        tokens: outcome.tokens,
        assertions,
        source: case.source.clone(),
    }
}

impl RunResults {
    /// Checks a document received from elsewhere (e.g. over the API); the message says what
    /// is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_id(&self.id) {
            return Err(format!(
                "invalid run id {:?}: use 1 to 64 letters, digits, '.', '_' or '-'",
                self.id
            ));
        }
        for (field, value) in [("name", &self.name), ("suite", &self.suite), ("model", &self.model)]
        {
            if value.trim().is_empty() || value.chars().count() > 200 {
                return Err(format!("{field} must have 1 to 200 characters"));
            }
        }
        if self.started_at.trim().is_empty() {
            return Err("started_at is required (RFC 3339)".to_owned());
        }
        if self.cases.len() > MAX_CASES {
            return Err(format!("{} cases, at most {MAX_CASES} allowed", self.cases.len()));
        }
        let mut seen = HashSet::new();
        for case in &self.cases {
            if case.id.is_empty() || !seen.insert(case.id.as_str()) {
                return Err(format!("case id {:?} is empty or appears twice", case.id));
            }
        }
        let expected = RunStats::of(&self.cases);
        if (self.stats.total, self.stats.passed, self.stats.errors)
            != (expected.total, expected.passed, expected.errors)
        {
            return Err(format!(
                "stats do not match the cases: total {}, passed {}, errors {} (the cases give {}, \
                 {}, {})",
                self.stats.total,
                self.stats.passed,
                self.stats.errors,
                expected.total,
                expected.passed,
                expected.errors
            ));
        }
        if !(0.0..=1.0).contains(&self.stats.pass_rate) {
            return Err("stats.pass_rate must be between 0 and 1".to_owned());
        }
        Ok(())
    }

    /// The run without its cases, for lists.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            suite: self.suite.clone(),
            model: self.model.clone(),
            started_at: self.started_at.clone(),
            duration_ms: self.duration_ms,
            metadata: self.metadata.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// A run without its cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub name: String,
    pub suite: String,
    pub model: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub metadata: RunMetadata,
    pub stats: RunStats,
}

/// Run ids: 1 to 64 of `[A-Za-z0-9._-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

// ------------------------------------------------------------------------------------------
// Comparing runs
// ------------------------------------------------------------------------------------------

/// How a case changed from the base run to the head run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Passed in the base, fails in the head.
    Regressed,
    /// Failed in the base, passes in the head.
    Improved,
    /// Only in the head.
    Added,
    /// Only in the base.
    Removed,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Regressed => "regressed",
            Change::Improved => "improved",
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// One side of a compared case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseSide {
    pub passed: bool,
    pub output: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: u64,
    pub tokens: u64,
    /// The assertions that failed.
    pub failed_assertions: Vec<AssertionResult>,
}

impl CaseSide {
    fn of(case: &CaseResult) -> CaseSide {
        CaseSide {
            passed: case.passed,
            output: case.output.clone(),
            error: case.error.clone(),
            latency_ms: case.latency_ms,
            tokens: case.tokens,
            failed_assertions: case.assertions.iter().filter(|a| !a.passed).cloned().collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseDiff {
    pub id: String,
    pub change: Change,
    pub input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<CaseSource>,
    pub base: Option<CaseSide>,
    pub head: Option<CaseSide>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompareCounts {
    pub regressed: u64,
    pub improved: u64,
    pub unchanged: u64,
    pub added: u64,
    pub removed: u64,
}

/// Two runs joined by case id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub base: RunSummary,
    pub head: RunSummary,
    pub counts: CompareCounts,
    /// `head.pass_rate - base.pass_rate`.
    pub pass_rate_delta: f64,
    /// Regressions first, then improvements, added, removed and unchanged cases; within each,
    /// in the head's order (removed cases in the base's).
    pub cases: Vec<CaseDiff>,
}

/// Joins `base` and `head` by case id.
pub fn compare(base: &RunResults, head: &RunResults) -> Comparison {
    let base_cases: BTreeMap<&str, (usize, &CaseResult)> =
        base.cases.iter().enumerate().map(|(i, c)| (c.id.as_str(), (i, c))).collect();
    let head_ids: HashSet<&str> = head.cases.iter().map(|c| c.id.as_str()).collect();
    let mut diffs: Vec<(usize, CaseDiff)> = Vec::new();
    for (i, case) in head.cases.iter().enumerate() {
        let before = base_cases.get(case.id.as_str()).map(|(_, c)| *c);
        let change = match before {
            None => Change::Added,
            Some(b) if b.passed && !case.passed => Change::Regressed,
            Some(b) if !b.passed && case.passed => Change::Improved,
            Some(_) => Change::Unchanged,
        };
        diffs.push((
            i,
            CaseDiff {
                id: case.id.clone(),
                change,
                input: case.input.clone(),
                source: case.source.clone(),
                base: before.map(CaseSide::of),
                head: Some(CaseSide::of(case)),
            },
        ));
    }
    for case in base.cases.iter().filter(|c| !head_ids.contains(c.id.as_str())) {
        let i = base_cases.get(case.id.as_str()).map_or(0, |(i, _)| *i);
        diffs.push((
            i,
            CaseDiff {
                id: case.id.clone(),
                change: Change::Removed,
                input: case.input.clone(),
                source: case.source.clone(),
                base: Some(CaseSide::of(case)),
                head: None,
            },
        ));
    }
    diffs.sort_by_key(|(i, diff)| (diff.change, *i));
    let mut counts = CompareCounts::default();
    for (_, diff) in &diffs {
        let n = match diff.change {
            Change::Regressed => &mut counts.regressed,
            Change::Improved => &mut counts.improved,
            Change::Added => &mut counts.added,
            Change::Removed => &mut counts.removed,
            Change::Unchanged => &mut counts.unchanged,
        };
        *n += 1;
    }
    Comparison {
        base: base.summary(),
        head: head.summary(),
        counts,
        pass_rate_delta: head.stats.pass_rate - base.stats.pass_rate,
        cases: diffs.into_iter().map(|(_, diff)| diff).collect(),
    }
}

/// The CI gate on a comparison with a baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Ids of the cases that passed in the baseline and fail now.
    pub regressions: Vec<String>,
    /// How much the pass rate fell (negative when it rose).
    pub pass_rate_drop: f64,
    pub max_drop: f64,
}

impl Gate {
    pub fn of(comparison: &Comparison, max_drop: f64) -> Gate {
        Gate {
            regressions: comparison
                .cases
                .iter()
                .filter(|c| c.change == Change::Regressed)
                .map(|c| c.id.clone())
                .collect(),
            pass_rate_drop: -comparison.pass_rate_delta,
            max_drop,
        }
    }

    /// Whether the gate fails: a regressed case, or a pass-rate drop beyond `max_drop`.
    pub fn failed(&self) -> bool {
        // A small tolerance keeps 0.6 - 0.55 from counting as more than 0.05.
        !self.regressions.is_empty() || self.pass_rate_drop > self.max_drop + 1e-9
    }
}

/// A comparison for people: the counts, the pass rates, then one line per changed case
/// (regressions first) with the failed assertions of the failing side.
pub fn render_comparison(comparison: &Comparison) -> String {
    let c = &comparison.counts;
    let mut res = format!(
        "compared with {} ({}): pass rate {} -> {} ({:+.1} points)\n\
         {} regressed, {} improved, {} unchanged, {} added, {} removed\n",
        comparison.base.id,
        comparison.base.name,
        percent(comparison.base.stats.pass_rate),
        percent(comparison.head.stats.pass_rate),
        comparison.pass_rate_delta * 100.0,
        c.regressed,
        c.improved,
        c.unchanged,
        c.added,
        c.removed,
    );
    for diff in comparison.cases.iter().filter(|d| d.change != Change::Unchanged) {
        let side = |side: &Option<CaseSide>| match side {
            None => "-".to_owned(),
            Some(s) if s.passed => "pass".to_owned(),
            Some(s) if s.error.is_some() => "error".to_owned(),
            Some(_) => "fail".to_owned(),
        };
        let _ = writeln!(
            res,
            "  {:<9} {}  ({} -> {})",
            diff.change.as_str(),
            diff.id,
            side(&diff.base),
            side(&diff.head)
        );
        if diff.change == Change::Regressed
            && let Some(head) = &diff.head
        {
            if let Some(error) = &head.error {
                let _ = writeln!(res, "            error: {error}");
            }
            for assertion in &head.failed_assertions {
                let _ = writeln!(
                    res,
                    "            {}: {}",
                    assertion.kind,
                    assertion.reason.as_deref().unwrap_or("failed")
                );
            }
        }
    }
    res
}

/// `66.7%`.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

// ------------------------------------------------------------------------------------------
// JUnit XML
// ------------------------------------------------------------------------------------------

/// The run as JUnit XML: one `testsuite` named after the suite, one `testcase` per case with a
/// `failure` (assertions failed) or `error` (the call failed), and the output as `system-out`.
pub fn junit_xml(run: &RunResults) -> String {
    let seconds = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    let mut res = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        res,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\">",
        xml(&run.name),
        run.stats.total,
        run.stats.failed,
        run.stats.errors,
        seconds(run.duration_ms)
    );
    let _ = writeln!(
        res,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\" \
         timestamp=\"{}\">",
        xml(&run.suite),
        run.stats.total,
        run.stats.failed,
        run.stats.errors,
        seconds(run.duration_ms),
        xml(&run.started_at)
    );
    let _ = writeln!(
        res,
        "    <properties>\n      <property name=\"model\" value=\"{}\"/>\n      <property \
         name=\"run_id\" value=\"{}\"/>\n    </properties>",
        xml(&run.model),
        xml(&run.id)
    );
    for case in &run.cases {
        let _ = writeln!(
            res,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\">",
            xml(&case.id),
            xml(&run.suite),
            seconds(case.latency_ms)
        );
        if let Some(error) = &case.error {
            let _ = writeln!(
                res,
                "      <error message=\"{}\" type=\"call\">{}</error>",
                xml(error),
                xml_text(error)
            );
        } else if !case.passed {
            let failed: Vec<String> = case
                .assertions
                .iter()
                .filter(|a| !a.passed)
                .map(|a| format!("{}: {}", a.kind, a.reason.as_deref().unwrap_or("failed")))
                .collect();
            let _ = writeln!(
                res,
                "      <failure message=\"{} of {} assertions failed\" type=\"assertion\">{}</failure>",
                failed.len(),
                case.assertions.len(),
                xml_text(&failed.join("\n"))
            );
        }
        if !case.output.is_empty() {
            let _ = writeln!(res, "      <system-out>{}</system-out>", xml_text(&case.output));
        }
        res.push_str("    </testcase>\n");
    }
    res.push_str("  </testsuite>\n</testsuites>\n");
    res
}

/// Escapes text for XML attributes (line breaks kept as `&#10;`).
fn xml(text: &str) -> String {
    xml_text(text).replace('\n', "&#10;")
}

/// Escapes text for XML content; characters XML 1.0 cannot hold become U+FFFD.
fn xml_text(text: &str) -> String {
    let mut res = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => res.push_str("&amp;"),
            '<' => res.push_str("&lt;"),
            '>' => res.push_str("&gt;"),
            '"' => res.push_str("&quot;"),
            '\'' => res.push_str("&apos;"),
            '\n' | '\t' | '\r' => res.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => res.push('\u{FFFD}'),
            c => res.push(c),
        }
    }
    res
}

#[cfg(test)]
mod tests;
