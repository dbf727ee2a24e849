//! Tests of eval runs: each assertion type on sample outputs, templates, suite errors, and
//! golden files for the results document and its JUnit XML, plus a comparison of two runs.

use expect_test::{expect, expect_file};
use serde_json::{Value, json};

use super::*;

#[track_caller]
fn check(kind: &str, value: Value, output: &str) -> String {
    let spec = AssertionSpec { kind: kind.to_owned(), value };
    match Check::compile(&spec) {
        Err(error) => format!("error: {error}"),
        Ok(check) => {
            let res = check.evaluate(output);
            match res.reason {
                None => "pass".to_owned(),
                Some(reason) => format!("fail: {reason}"),
            }
        }
    }
}

#[test]
fn assertion_types() {
    let out = "The capital of France is Paris.";
    let lines = [
        check("contains", json!("paris"), out),
        check("icontains", json!("PARIS"), out),
        check("contains", json!("Berlin"), out),
        check("not_contains", json!("i cannot"), out),
        check("not_contains", json!("FRANCE"), out),
        check("not-contains", json!("berlin"), out),
        check("equals", json!(" The capital of France is Paris. "), out),
        check("equals", json!({"a": 1}), "{ \"a\" : 1 }"),
        check("not-equals", json!("x"), out),
        check("matches_regex", json!("^The .* Paris\\.$"), out),
        check("regex", json!("[0-9]+"), out),
        check("max_length", json!(31), out),
        check("max_length", json!("30"), out),
        // "😀" is two UTF-16 units, as JavaScript counts.
        check("max_length", json!(1), "😀"),
        check("is_json", json!(true), "4"),
        check("is-json", Value::Null, " {\"ok\": true} "),
        check("is_json", json!(true), out),
        check("not-is-json", Value::Null, out),
        check("starts-with", json!("The"), out),
        check("starts_with", json!("the"), out),
        check("not-starts-with", json!("The"), out),
    ];
    expect![[r#"
        pass
        pass
        fail: expected the output to contain "Berlin" (ignoring case)
        pass
        fail: expected the output not to contain "FRANCE" (ignoring case)
        pass
        pass
        pass
        pass
        pass
        fail: expected the output to match /[0-9]+/
        pass
        fail: expected the output to be at most 30 long (it is 31)
        fail: expected the output to be at most 1 long (it is 2)
        pass
        pass
        fail: expected the output to be JSON
        pass
        pass
        fail: expected the output to start with "the"
        fail: expected the output not to start with "The"
    "#]]
    .assert_eq(&(lines.join("\n") + "\n"));
}

#[test]
fn bad_assertions_are_config_errors() {
    let lines = [
        check("llm_judge", json!("be nice"), ""),
        check("contains", Value::Null, ""),
        check("regex", json!("(unclosed"), "").lines().next().unwrap_or("").to_owned(),
        check("max_length", json!(0), ""),
        check("max_length", json!("many"), ""),
    ];
    expect![[r#"
        error: unknown assertion type "llm_judge": use contains, icontains, not_contains, equals, matches_regex (or regex), max_length, is_json, starts-with, each also negated with a not- prefix
        error: invalid assertion "contains": needs a value
        error: invalid assertion "regex": invalid regular expression: regex parse error:
        error: invalid assertion "max_length": needs a positive whole number
        error: invalid assertion "max_length": needs a positive whole number
    "#]]
    .assert_eq(&(lines.join("\n") + "\n"));
}

#[test]
fn templates_fill_variables_and_name_missing_ones() {
    let vars: Map<String, Value> =
        serde_json::from_value(json!({"input": "2+2?", "lang": "fr", "n": 3})).unwrap_or_default();
    let render = |t: &str| match render_template(t, &vars, "c1") {
        Ok(text) => text,
        Err(error) => format!("error: {error}"),
    };
    expect![[r#"
        Answer in fr (3 words): 2+2?
        {{ not a var }} and {{ unclosed
        error: case "c1": the template uses {{question}} but the case has no variable "question" (it has: input, lang, n)
    "#]]
    .assert_eq(&format!(
        "{}\n{}\n{}\n",
        render("Answer in {{lang}} ({{ n }} words): {{input}}"),
        render("{{ not a var }} and {{ unclosed"),
        render("{{question}}"),
    ));
}

#[test]
fn suite_errors() {
    let error = |yaml: &str| match parse_suite(yaml) {
        Ok(_) => "ok".to_owned(),
        Err(error) => error.to_string(),
    };
    expect![[r#"
        invalid eval suite: the suite has no cases
        invalid eval suite: case id "a" appears twice
        unknown assertion type "similar": use contains, icontains, not_contains, equals, matches_regex (or regex), max_length, is_json, starts-with, each also negated with a not- prefix
        ok
    "#]]
    .assert_eq(&format!(
        "{}\n{}\n{}\n{}\n",
        error("name: x\ncases: []\n"),
        error("name: x\ncases:\n  - id: a\n  - id: a\n"),
        error("name: x\ncases:\n  - id: a\n    assertions:\n      - type: similar\n        value: y\n"),
        error("name: x\ncases:\n  - id: 7\n    variables: {input: hi}\n"),
    ));
    let suite = parse_suite("name: x\ncases:\n  - id: a\n    variables: {question: q}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let error = prepare(&suite, &PromptConfig::default()).err().map(|e| e.to_string());
    expect![[
        r#"Some("case \"a\" has no `input` variable: give a --template that uses its variables")"#
    ]]
    .assert_eq(&format!("{error:?}"));
}

/// A suite as `loupe dataset export --format eval` writes it.
const SUITE: &str = r#"name: refunds-v2
source: loupe-dataset
metadata:
  dataset: refunds
  version: 2
  model: gpt-4o
cases:
  - id: item-1
    variables:
      input: "What is the capital of France?"
      system: "Answer in one sentence."
    assertions:
      - type: contains
        value: Paris
      - type: not_contains
        value: i cannot
    metadata:
      split: test
      expected_source: output
      trace_id: 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f
      span_id: 48f0000000000006
  - id: item-2
    variables:
      input: "And of Germany?"
    assertions:
      - type: contains
        value: Berlin
      - type: max_length
        value: 80
  - id: item-3
    variables:
      input: "Reply with JSON"
    assertions:
      - type: is_json
        value: true
  - id: item-4
    variables:
      input: "Say hi"
"#;

fn run(outputs: &[Result<&str, &str>], id: &str) -> RunResults {
    let suite = parse_suite(SUITE).unwrap_or_else(|e| panic!("{e}"));
    let cases = prepare(&suite, &PromptConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let results: Vec<CaseResult> = cases
        .iter()
        .zip(outputs)
        .enumerate()
        .map(|(i, (case, output))| {
            let outcome = CallOutcome {
                output: output.map(str::to_owned).map_err(str::to_owned),
                latency_ms: 100 + 10 * i as u64,
                tokens: if output.is_ok() { 37 } else { 0 },
            };
            case_result(case, outcome)
        })
        .collect();
    RunResults {
        id: id.to_owned(),
        name: "refunds-v2 @ gpt-4o".to_owned(),
        suite: suite.name.clone(),
        model: "gpt-4o".to_owned(),
        base_url: "http://127.0.0.1:9/v1".to_owned(),
        started_at: "2026-01-01T00:00:00.000Z".to_owned(),
        duration_ms: 420,
        metadata: RunMetadata {
            commit: Some("abc123".to_owned()),
            suite_sha256: suite_sha256(SUITE.as_bytes()),
        },
        stats: RunStats::of(&results),
        cases: results,
    }
}

#[test]
fn results_document_and_junit_are_golden() {
    let head = run(
        &[
            Ok("The capital of France is Paris."),
            Ok("The capital of France is Paris."),
            Ok("not json <at all> & \"quoted\""),
            Err("upstream answered 500: server_error"),
        ],
        "run-head",
    );
    assert_eq!(head.validate(), Ok(()));
    let json = serde_json::to_string_pretty(&head).unwrap_or_default() + "\n";
    expect_file!["../../test_data/eval_run/results.json"].assert_eq(&json);
    let back: RunResults = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, head, "the document reads back as written");
    expect_file!["../../test_data/eval_run/results.junit.xml"].assert_eq(&junit_xml(&head));
}

#[test]
fn comparison_puts_regressions_first_and_gates() {
    let base = run(&[Ok("Paris."), Ok("Berlin."), Ok("{}"), Ok("hi")], "run-base");
    let mut head = run(&[Ok("Paris."), Ok("Munich."), Ok("{}"), Ok("hi")], "run-head");
    head.cases.retain(|c| c.id != "item-3");
    head.stats = RunStats::of(&head.cases);
    let comparison = compare(&base, &head);
    expect![[r#"
        compared with run-base (refunds-v2 @ gpt-4o): pass rate 100.0% -> 66.7% (-33.3 points)
        1 regressed, 0 improved, 2 unchanged, 0 added, 1 removed
          regressed item-2  (pass -> fail)
                    contains: expected the output to contain "Berlin" (ignoring case)
          removed   item-3  (pass -> -)
    "#]]
    .assert_eq(&render_comparison(&comparison));
    let gate = Gate::of(&comparison, 0.05);
    assert!(gate.failed());
    assert_eq!(gate.regressions, vec!["item-2".to_owned()]);
    // The same run against itself passes the gate.
    assert!(!Gate::of(&compare(&base, &base), 0.05).failed());
    // A stats mismatch is refused.
    let mut bad = base.clone();
    bad.stats.passed = 1;
    assert!(bad.validate().unwrap_err().starts_with("stats do not match"));
}
