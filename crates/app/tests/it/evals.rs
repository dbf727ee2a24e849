//! Eval runs end to end: the real `loupe eval run` against the fake upstream (which always
//! answers "The capital of France is Paris. …"), its exit codes, results JSON and JUnit file,
//! a baseline regression, recording on the server, the `/api/v1/evals` answers, the
//! `loupe eval list/show/compare` commands, and the console's runs table and compare view.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use test_support::fake_llm::FakeLlm;
use test_support::{App, spawn_app};

use crate::ZERO_CONFIG;
use crate::console::{Browser, url};

/// Two cases: the first passes on the fake answer, the second fails.
const SUITE: &str = r#"name: capitals
source: loupe-dataset
metadata:
  model: fake-model
cases:
  - id: france
    variables:
      input: "What is the capital of France?"
      system: "Answer in one sentence."
    assertions:
      - type: contains
        value: paris
      - type: max_length
        value: 200
      - type: not_contains
        value: i cannot
    metadata:
      split: test
      trace_id: 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f
      span_id: 48f0000000000006
  - id: germany
    variables:
      input: "What is the capital of Germany?"
    assertions:
      - type: contains
        value: Berlin
"#;

/// The same cases where `france` now fails (its assertion changed): a regression.
fn regressed_suite() -> String {
    SUITE.replace("value: paris", "value: London")
}

/// Runs `loupe ARGS` for `app` off the async workers, with a fixed commit and no OpenAI key.
async fn loupe(app: &App, args: &[&str]) -> Output {
    let mut command = app.command();
    command
        .args(args)
        .env("LOUPE_EVAL_COMMIT", "abc123")
        .env_remove("GITHUB_SHA")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    tokio::task::spawn_blocking(move || command.output().expect("running loupe"))
        .await
        .expect("join")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read results")).expect("json")
}

/// Runs the suite text through `loupe eval run --record`, returning the output and results.
async fn run_suite(
    app: &App,
    upstream: &FakeLlm,
    name: &str,
    suite: &str,
    extra: &[&str],
) -> (Output, Value) {
    let dir = app.dir();
    let suite_path = dir.join(format!("{name}.eval.yaml"));
    std::fs::write(&suite_path, suite).expect("write suite");
    let results = dir.join(format!("{name}.results.json"));
    let junit = dir.join(format!("{name}.junit.xml"));
    let base_url = upstream.url();
    let mut args = vec![
        "eval",
        "run",
        suite_path.to_str().expect("utf-8 path"),
        "--base-url",
        &base_url,
        "--output",
        results.to_str().expect("utf-8 path"),
        "--junit",
        junit.to_str().expect("utf-8 path"),
        "--record",
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    let output = loupe(app, &args).await;
    let results = if results.exists() { read_json(&results) } else { Value::Null };
    (output, results)
}

/// Two recorded runs, the second regressing on `france`: `(app, upstream, first id, second id)`.
async fn two_recorded_runs() -> (App, FakeLlm, String, String) {
    let upstream = FakeLlm::start().await;
    let app = spawn_app(ZERO_CONFIG).await;
    let (output, first) = run_suite(&app, &upstream, "first", SUITE, &[]).await;
    assert_eq!(output.status.code(), Some(100), "stderr: {}", text(&output.stderr));
    let baseline = app.dir().join("first.results.json");
    let (output, second) = run_suite(
        &app,
        &upstream,
        "second",
        &regressed_suite(),
        &["--baseline", baseline.to_str().expect("utf-8 path")],
    )
    .await;
    assert_eq!(output.status.code(), Some(100), "stderr: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("1 regressed, 0 improved, 1 unchanged"), "{stdout}");
    assert!(stdout.contains("regressed france  (pass -> fail)"), "{stdout}");
    assert!(stdout.contains("baseline gate failed: 1 regressed case(s)"), "{stdout}");
    let id = |run: &Value| run["id"].as_str().expect("run id").to_owned();
    (app, upstream, id(&first), id(&second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_run_writes_results_and_junit_and_exits_100_on_a_failed_case() {
    let upstream = FakeLlm::start().await;
    let app = spawn_app(ZERO_CONFIG).await;
    let (output, results) = run_suite(&app, &upstream, "first", SUITE, &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(100),
        "stdout: {stdout}\nstderr: {}",
        text(&output.stderr)
    );
    assert!(stdout.contains("FAIL  germany"), "{stdout}");
    assert!(stdout.contains("first: 1/2 passed (50.0%), 1 failed, 0 errors"), "{stdout}");
    assert!(stdout.contains("recorded run "), "{stdout}");

    // The results document.
    assert_eq!(results["name"], "first");
    assert_eq!(results["suite"], "capitals");
    assert_eq!(results["model"], "fake-model", "the model comes from the suite's metadata");
    assert_eq!(results["base_url"], upstream.url());
    assert_eq!(results["metadata"]["commit"], "abc123");
    assert_eq!(results["metadata"]["suite_sha256"].as_str().map(str::len), Some(64));
    let stats = &results["stats"];
    assert_eq!(
        (
            &stats["total"],
            &stats["passed"],
            &stats["failed"],
            &stats["errors"],
            &stats["pass_rate"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(0), &json!(0.5))
    );
    assert_eq!(stats["total_tokens"], 74, "37 tokens per fake answer");
    let france = &results["cases"][0];
    assert_eq!(france["id"], "france");
    assert_eq!(france["passed"], true);
    assert!(france["output"].as_str().unwrap_or("").contains("Paris"));
    assert_eq!(
        france["source"],
        json!({"trace_id": "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f", "span_id": "48f0000000000006"})
    );
    let germany = &results["cases"][1];
    assert_eq!(germany["passed"], false);
    assert_eq!(
        germany["assertions"][0]["reason"],
        "expected the output to contain \"Berlin\" (ignoring case)"
    );

    // The calls: the system message only where the case has one.
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    let mut shapes: Vec<String> = requests
        .iter()
        .map(|r| {
            let roles: Vec<&str> = r.body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["role"].as_str())
                .collect();
            format!("{} {}", r.body["model"], roles.join("+"))
        })
        .collect();
    shapes.sort();
    assert_eq!(shapes, ["\"fake-model\" system+user", "\"fake-model\" user"]);

    // JUnit.
    let junit = std::fs::read_to_string(app.dir().join("first.junit.xml")).expect("junit");
    assert!(
        junit.contains("<testsuite name=\"capitals\" tests=\"2\" failures=\"1\" errors=\"0\""),
        "{junit}"
    );
    assert!(junit.contains("<testcase name=\"germany\""), "{junit}");
    assert!(junit.contains("<failure message=\"1 of 1 assertions failed\""), "{junit}");

    // A suite where every case passes exits 0; a missing template variable is a config error.
    let passing = SUITE.split("  - id: germany").next().unwrap_or(SUITE).to_owned();
    let (output, _) = run_suite(&app, &upstream, "passing", &passing, &[]).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", text(&output.stderr));
    let template = app.dir().join("prompt.txt");
    std::fs::write(&template, "Question: {{question}}").expect("write template");
    let (output, _) = run_suite(
        &app,
        &upstream,
        "templated",
        SUITE,
        &["--template", template.to_str().expect("utf-8 path")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr)
            .contains("the template uses {{question}} but the case has no variable"),
        "{}",
        text(&output.stderr)
    );
    // Failed calls are errors (after retries), not failures, and still exit 100.
    let n_before = upstream.requests().len();
    let (output, errored) =
        run_suite(&app, &upstream, "errored", SUITE, &["--model", "fake-error-500"]).await;
    assert_eq!(output.status.code(), Some(100), "stderr: {}", text(&output.stderr));
    assert_eq!((&errored["stats"]["errors"], &errored["stats"]["failed"]), (&json!(2), &json!(0)));
    let error = errored["cases"][0]["error"].as_str().unwrap_or("");
    assert!(error.starts_with("HTTP 500: The server had an error"), "{error}");
    assert_eq!(errored["cases"][0]["assertions"][0]["reason"], "not evaluated: the call failed");
    assert_eq!(upstream.requests().len() - n_before, 6, "three attempts per case");
    let junit = std::fs::read_to_string(app.dir().join("errored.junit.xml")).expect("junit");
    assert!(junit.contains("<error message=\"HTTP 500:"), "{junit}");

    let bad = SUITE.replace("type: max_length", "type: llm_judge");
    let (output, _) = run_suite(&app, &upstream, "bad", &bad, &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("unknown assertion type \"llm_judge\""),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_runs_are_listed_shown_and_compared() {
    let (app, _upstream, first, second) = two_recorded_runs().await;

    let list = app.get_json("/api/v1/evals/runs").await;
    let runs = list["runs"].as_array().expect("runs");
    let ids: Vec<&str> = runs.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "newest first");
    assert_eq!(runs[0]["stats"]["pass_rate"], 0.0);
    assert!(runs[0].get("cases").is_none(), "lists carry no cases");
    let limited = app.get_json("/api/v1/evals/runs?limit=1").await;
    assert_eq!(limited["runs"].as_array().map(Vec::len), Some(1));

    let run = app.get_json(&format!("/api/v1/evals/runs/{first}")).await;
    assert_eq!(run["cases"].as_array().map(Vec::len), Some(2));
    assert_eq!(run["cases"][0]["output"].as_str().map(|o| o.contains("Paris")), Some(true));
    app.get("/api/v1/evals/runs/nope", &[]).await.assert_status(404);

    let comparison =
        app.get_json(&format!("/api/v1/evals/compare?base={first}&head={second}")).await;
    assert_eq!(
        comparison["counts"],
        json!({"regressed": 1, "improved": 0, "unchanged": 1, "added": 0, "removed": 0})
    );
    assert_eq!(comparison["cases"][0]["id"], "france");
    assert_eq!(comparison["cases"][0]["change"], "regressed");
    assert_eq!(comparison["cases"][0]["base"]["passed"], true);
    assert_eq!(comparison["cases"][0]["head"]["failed_assertions"][0]["value"], "London");
    app.get("/api/v1/evals/compare?base=x", &[]).await.assert_status(400);

    // Bad documents are refused with a reason; a recorded id cannot be recorded again.
    let post = |body: Vec<u8>| {
        app.post("/api/v1/evals/runs", &[("content-type", "application/json")], body)
    };
    let response = post(b"{\"id\": 1}".to_vec()).await;
    response.assert_status(400);
    assert!(response.json()["error"]["message"].as_str().unwrap_or("").contains("loupe eval run"));
    let mut doc = run.clone();
    doc["stats"]["passed"] = json!(2);
    let response = post(serde_json::to_vec(&doc).expect("json")).await;
    response.assert_status(400);
    assert!(response.text().contains("stats do not match the cases"), "{}", response.text());
    post(serde_json::to_vec(&run).expect("json")).await.assert_status(409);
    let mut copy = run.clone();
    copy["id"] = json!("copy-1");
    let response = post(serde_json::to_vec(&copy).expect("json")).await;
    response.assert_status(201);
    assert_eq!(response.json()["id"], "copy-1");

    // The command line reads the same answers.
    let output = loupe(&app, &["eval", "list"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    assert!(table.starts_with("RECORDED (UTC)"), "{table}");
    assert!(table.contains(&second) && table.contains("50.0%"), "{table}");
    let output = loupe(&app, &["eval", "show", &first]).await;
    assert!(text(&output.stdout).contains("FAIL  germany"), "{}", text(&output.stdout));
    let output = loupe(&app, &["eval", "compare", &first, &second]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("regressed france"), "{}", text(&output.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lists_runs_and_compares_two() {
    let Some(browser) = Browser::start().await else { return };
    let (app, _upstream, first, second) = two_recorded_runs().await;

    browser.goto(&url(&app, "/evals")).await;
    let row = browser.text(&format!("table[aria-label='Eval runs'] tr[data-run='{first}']")).await;
    assert!(row.contains("first") && row.contains("fake-model") && row.contains("50%"), "{row}");
    browser.screenshot("evals-runs").await;
    browser.click(&format!("tr[data-run='{first}'] input[type='checkbox']")).await;
    browser.click(&format!("tr[data-run='{second}'] input[type='checkbox']")).await;
    browser.click("button.compare-runs").await;
    browser.wait_js("the compare view", "return location.pathname === '/evals/compare'").await;
    let first_row = browser.text("table[aria-label='Case comparison'] tbody tr").await;
    assert!(first_row.contains("france") && first_row.contains("regressed"), "{first_row}");
    let summary = browser.text(".compare-summary").await;
    assert!(summary.contains("1 regressed"), "{summary}");
    browser.screenshot("evals-compare").await;

    // A run's page: cases with outcomes, failed assertions and the source span link.
    browser.goto(&url(&app, &format!("/evals/runs/{first}"))).await;
    let germany = browser.text("table[aria-label='Cases'] tr[data-case='germany']").await;
    assert!(germany.contains("fail") && germany.contains("Berlin"), "{germany}");
    let href = browser
        .wait_js(
            "the source link",
            "return document.querySelector(\"tr[data-case='france'] a.source\")?.getAttribute('href')",
        )
        .await;
    assert_eq!(href, "/traces/48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f/spans/48f0000000000006");
    browser.screenshot("evals-run").await;
    browser.close().await;
}

#[test]
fn eval_run_help_has_examples_and_exit_codes() {
    let output = std::process::Command::new(test_support::spawn::binary())
        .args(["eval", "run", "--help"])
        .output()
        .expect("running loupe");
    let help = text(&output.stdout);
    for needle in ["Examples:", "--baseline", "--max-drop", "--record", "Exit codes:", "100"] {
        assert!(help.contains(needle), "{needle} missing from `loupe eval run --help`:\n{help}");
    }
}

/// Through the Loupe gateway, eval calls are recorded as traces like production traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_calls_through_the_gateway_are_recorded() {
    let upstream = FakeLlm::start().await;
    let config =
        format!("[gateway.routes.openai]\nkind = \"openai\"\nbase_url = \"{}\"\n", upstream.url());
    let app = spawn_app(&config).await;
    let suite_path = app.dir().join("capitals.eval.yaml");
    std::fs::write(&suite_path, SUITE).expect("write suite");
    let base_url = format!("{}/v1", app.http_url);
    let output = loupe(
        &app,
        &["eval", "run", suite_path.to_str().expect("utf-8 path"), "--base-url", &base_url],
    )
    .await;
    assert_eq!(output.status.code(), Some(100), "stderr: {}", text(&output.stderr));
    assert!(text(&output.stdout).contains("1/2 passed"), "{}", text(&output.stdout));
    assert_eq!(upstream.requests().len(), 2, "both calls went through the gateway");
    let traces =
        test_support::eventually(crate::console::WAIT, "the eval calls as traces", || async {
            let list = app.get_json("/api/v1/traces?q=model%20%3D%20fake-model").await;
            let n = list["traces"].as_array().map_or(0, Vec::len);
            (n == 2).then_some(list)
        })
        .await;
    assert_eq!(traces["traces"][0]["n_llm_spans"], 1);
}
