//! Feedback, datasets and exports end to end: the shared fixture over OTLP, rated and corrected
//! over the API, a dataset built from a query, exported as fine-tuning JSONL and as an eval
//! suite; bad input answered with clear errors and nothing half-written.

use expect_test::{expect, expect_file};
use serde_json::{Value, json};
use test_support::{App, otlp, spawn_app};

use crate::{ZERO_CONFIG, hex};

const TRACE: &str = "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f";
const REWRITE: &str = "48f0000000000002";
const GENERATE: &str = "48f0000000000006";

async fn post_json(app: &App, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .post(path, &[("content-type", "application/json")], serde_json::to_vec(&body).unwrap())
        .await;
    let json = if response.body.is_empty() { Value::Null } else { response.json() };
    (response.status, json)
}

async fn put_json(app: &App, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .request(
            reqwest::Method::PUT,
            path,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    (response.status, response.json())
}

/// `STATUS message` of an error answer.
fn error(answer: &(u16, Value)) -> String {
    format!("{} {}", answer.0, answer.1["error"]["message"].as_str().unwrap_or("?"))
}

async fn n_feedback(app: &App, trace: &str) -> usize {
    let list = app.get_json(&format!("/api/v1/traces/{trace}/feedback")).await;
    list["feedback"].as_array().map_or(0, Vec::len)
}

/// The fixture, a score config, and feedback on its two chat calls.
async fn rated_app() -> App {
    let app = spawn_app(ZERO_CONFIG).await;
    app.post_otlp_json(&test_support::fixture("trace-48f.otlp.json")).await.assert_status(200);
    let config = json!({"type": "numeric", "min": 0, "max": 1, "description": "helped the user"});
    let answer = put_json(&app, "/api/v1/score-configs/helpfulness", config).await;
    assert_eq!(answer.0, 200, "{answer:?}");
    let batch = json!({"feedback": [
        {
            "span_id": GENERATE,
            "rating": "down",
            "scores": {"helpfulness": 0.2},
            "correction": "Refunds are accepted within 30 days of delivery [pol_refund_v7]. \
                           Order 4481 was delivered 14 days late, so it qualifies for a full \
                           refund under [pol_late_delivery_v3].",
            "tags": ["refund", "wrong_policy"],
            "source": "human",
            "author": "ana"
        },
        {"span_id": REWRITE, "rating": "up", "source": "human", "author": "ana"}
    ]});
    let answer = post_json(&app, "/api/v1/feedback", batch).await;
    assert_eq!(answer.0, 201, "{answer:?}");
    let statuses: Vec<&str> = answer.1["feedback"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["attached", "attached"]);
    app
}

#[tokio::test]
async fn rate_correct_build_a_dataset_and_export_it() {
    let app = rated_app().await;
    assert_eq!(n_feedback(&app, TRACE).await, 2);
    // Reading the trace shows its feedback too.
    let tree = app.get_json(&format!("/api/v1/traces/{TRACE}")).await;
    let ratings: Vec<&Value> =
        tree["feedback"].as_array().unwrap().iter().map(|f| &f["rating"]).collect();
    assert_eq!(ratings, [&json!("down"), &json!("up")]);

    // Feedback is searchable with the shared filter syntax.
    let spans = app.get_json("/api/v1/spans?q=rating%20%3C%3D%202%20and%20has%20correction").await;
    let names: Vec<&str> =
        spans["spans"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["llm.generate"]);

    let create = json!({
        "name": "refunds",
        "description": "refund answers people corrected",
        "q": "operation ~ \"refund_chat*\" and has correction"
    });
    let answer = post_json(&app, "/api/v1/datasets", create).await;
    assert_eq!(answer.0, 201, "{answer:?}");
    assert_eq!(answer.1["version"]["version"], 1);
    assert_eq!(answer.1["version"]["n_items"], 1);

    // The span knows which dataset it is in.
    let span = app.get_json(&format!("/api/v1/spans/{GENERATE}/feedback")).await;
    assert_eq!(span["datasets"][0]["dataset"], "refunds");
    assert_eq!(span["feedback"][0]["rating"], "down");

    let export = app.get("/api/v1/datasets/refunds/export?format=openai&version=1", &[]).await;
    export.assert_status(200);
    assert_eq!(export.header("content-type"), Some("application/jsonl"));
    expect_file!["golden/feedback_refunds.openai.jsonl"].assert_eq(&export.text());

    let preference = app.get("/api/v1/datasets/refunds/export?format=preference", &[]).await;
    preference.assert_status(200);
    let line: Value = serde_json::from_str(preference.text().trim()).unwrap();
    assert!(
        line["non_preferred_output"][0]["content"].as_str().unwrap().contains("courtesy clause")
    );
}

#[tokio::test]
async fn export_trace_writes_two_cases() {
    let app = rated_app().await;
    let out_dir = app.dir().join("suites");
    let output = app.cli(&["export-trace", TRACE, "--output", out_dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let yaml = std::fs::read_to_string(out_dir.join("trace-48f9c3e1.eval.yaml")).unwrap();
    // The export time is the only volatile value.
    let yaml: String = yaml
        .lines()
        .map(|line| match line.split_once("exported_at: ") {
            Some((indent, _)) => format!("{indent}exported_at: EXPORTED_AT\n"),
            None => format!("{line}\n"),
        })
        .collect();
    expect_file!["golden/feedback_trace-48f.eval.yaml"].assert_eq(&yaml);
    assert_eq!(yaml.matches("  - id: production-case-").count(), 2);

    let output = app.cli(&["export-trace", "0123456789abcdef0123456789abcdef"]);
    assert!(!output.status.success());
    expect![[r#"
        error: 404 Not Found: trace 0123456789abcdef0123456789abcdef not found
    "#]]
    .assert_eq(&String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn bad_input_is_rejected_whole() {
    let app = rated_app().await;

    let out_of_range = json!({"span_id": GENERATE, "scores": {"helpfulness": 1.5}});
    expect![[r#"400 invalid value 1.5 for score "helpfulness": must be between 0 and 1"#]]
        .assert_eq(&error(&post_json(&app, "/api/v1/feedback", out_of_range).await));

    // One malformed entry rejects the whole batch: the good entry is not written either.
    let batch = json!([
        {"span_id": REWRITE, "rating": 4},
        {"span_id": GENERATE, "correction": [{"role": "user", "parts": [{"type": "text", "content": "x"}]}]}
    ]);
    expect![[r#"400 entry 1: malformed correction: message 0 has role "user"; a correction is the call's output, so its messages are assistant (or tool) messages"#]]
        .assert_eq(&error(&post_json(&app, "/api/v1/feedback", batch).await));
    let not_json = json!({"span_id": GENERATE, "correction": {"text": 1}});
    let answer = post_json(&app, "/api/v1/feedback", not_json).await;
    assert_eq!(answer.0, 400, "{answer:?}");
    assert_eq!(n_feedback(&app, TRACE).await, 2, "nothing half-written");

    expect![[r#"404 trace 0123456789abcdef0123456789abcdef not found: feedback on a whole trace needs the trace to be recorded first (right after a call, target its span_id, which may arrive later)"#]]
        .assert_eq(&error(
            &post_json(&app, "/api/v1/feedback", json!({"trace_id": "0123456789abcdef0123456789abcdef", "rating": 1})).await,
        ));

    // A span that has not arrived yet: accepted, pending until it lands.
    let early = post_json(
        &app,
        "/api/v1/feedback",
        json!({"span_id": "00000000000000ff", "rating": "down"}),
    )
    .await;
    assert_eq!(early.0, 202, "{early:?}");
    assert_eq!(early.1["feedback"][0]["status"], "pending");
    let id = early.1["feedback"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get_json(&format!("/api/v1/feedback/{id}")).await["status"], "pending");

    let create = json!({"name": "refunds", "q": "has correction"});
    assert_eq!(post_json(&app, "/api/v1/datasets", create.clone()).await.0, 201);
    expect![[r#"409 conflict: dataset "refunds" already exists"#]]
        .assert_eq(&error(&post_json(&app, "/api/v1/datasets", create).await));
    let bad_query = json!({"name": "broken", "q": "modle = x"});
    let answer = post_json(&app, "/api/v1/datasets", bad_query).await;
    assert_eq!(answer.0, 400, "{answer:?}");
    let datasets = app.get_json("/api/v1/datasets").await;
    assert_eq!(datasets["datasets"].as_array().unwrap().len(), 1, "a bad query creates nothing");

    let unknown_version =
        app.get("/api/v1/datasets/refunds/export?format=openai&version=9", &[]).await;
    expect![[r#"404 dataset "refunds" has no version 9 (latest: 1)"#]].assert_eq(&format!(
        "{} {}",
        unknown_version.status,
        unknown_version.json()["error"]["message"].as_str().unwrap()
    ));
    let unknown_format = app.get("/api/v1/datasets/refunds/export?format=parquet", &[]).await;
    unknown_format.assert_status(400);

    let output = app.cli(&["feedback", "add", GENERATE, "--rating", "meh"]);
    assert!(!output.status.success());
    expect![[r#"
        error: invalid rating "meh": use up, down or a number from 1 to 5
    "#]]
    .assert_eq(&String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn cli_feedback_and_dataset_round_trip() {
    let app = rated_app().await;
    let better = app.dir().join("better.md");
    std::fs::write(&better, "refund window late delivery order 4481\n").unwrap();
    let output = app.cli(&[
        "feedback",
        "add",
        REWRITE,
        "--rating",
        "2",
        "--score",
        "helpfulness=0.5",
        "--correction-file",
        better.to_str().unwrap(),
        "--tag",
        "rewrite",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("attached"));

    let output = app.cli(&["dataset", "create", "rewrites", "--from", "feedback.tag = rewrite"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out_file = app.dir().join("rewrites.jsonl");
    let output = app.cli(&[
        "dataset",
        "export",
        "rewrites",
        "--format",
        "openai",
        "--output",
        out_file.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let exported = std::fs::read_to_string(&out_file).unwrap();
    let line: Value = serde_json::from_str(exported.trim()).unwrap();
    let messages = line["messages"].as_array().unwrap();
    assert_eq!(messages.last().unwrap()["content"], "refund window late delivery order 4481");

    // The export imports back as a new version; its input is the recorded call's input, so the
    // imported item replaces the item it came from instead of duplicating it.
    let output = app.cli(&["dataset", "import", "rewrites", out_file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dataset = app.get_json("/api/v1/datasets/rewrites").await;
    assert_eq!(dataset["latest_version"], 2);
    assert_eq!(dataset["versions"][1]["n_items"], 1);
    let items = app.get_json("/api/v1/datasets/rewrites/versions/2/items").await;
    assert_eq!(items["items"][0]["expected_source"], "imported");
    let items = app.get_json("/api/v1/datasets/rewrites/versions/1/items").await;
    assert_eq!(items["items"][0]["expected_source"], "correction", "version 1 is unchanged");
}

/// Feedback sent right after a call, racing the call's span to the server, is never lost: each
/// entry is accepted whichever arrives first and ends up attached to its span.
#[tokio::test]
async fn feedback_racing_its_span_attaches_under_load() {
    let app = spawn_app(ZERO_CONFIG).await;
    let n_calls: u64 = 200;
    let base_ns = 1_767_225_600_000_000_000;
    let calls = (0..n_calls).map(|i| {
        let app = &app;
        async move {
            let trace = crate::trace_id(5000 + i);
            let span_id = i + 1;
            let span = otlp::span(trace, span_id, None, "call", base_ns + i, base_ns + i + 1000);
            let body = otlp::encode(&otlp::request("load", vec![span]));
            let feedback =
                json!({"span_id": format!("{span_id:016x}"), "rating": "down", "tags": ["load"]});
            let (answer, written) = tokio::join!(
                post_json(app, "/api/v1/feedback", feedback),
                app.post_otlp_protobuf(body)
            );
            written.assert_status(200);
            assert!(matches!(answer.0, 201 | 202), "{answer:?}");
            hex(&trace)
        }
    });
    let traces = futures::future::join_all(calls).await;

    let pending = app.get_json("/api/v1/feedback/pending").await;
    assert_eq!(pending["feedback"].as_array().unwrap().len(), 0, "every entry found its span");
    let found =
        app.get_json("/api/v1/spans?q=feedback.tag%20%3D%20load&limit=1000&total=true").await;
    assert_eq!(found["total"], n_calls);
    let one = app.get_json(&format!("/api/v1/traces/{}/feedback", traces[7])).await;
    assert_eq!(one["feedback"].as_array().unwrap().len(), 1);
}

/// Feedback on a span id that never arrives is reported as `orphaned` once the configured grace
/// period (`[feedback] grace_period`) has passed, and still attaches if the span turns up later.
#[tokio::test]
async fn feedback_without_its_span_is_orphaned_after_the_grace_period() {
    let app = spawn_app("[feedback]\ngrace_period = \"1s\"\n").await;
    let answer = post_json(
        &app,
        "/api/v1/feedback",
        json!({"span_id": "00000000000000ee", "rating": "down", "tags": ["late"]}),
    )
    .await;
    assert_eq!(answer.0, 202, "{answer:?}");
    assert_eq!(answer.1["feedback"][0]["status"], "pending");
    let id = answer.1["feedback"][0]["id"].as_str().unwrap().to_owned();

    let entry = test_support::eventually(
        std::time::Duration::from_secs(20),
        "the entry to be reported as orphaned",
        || async {
            let entry = app.get_json(&format!("/api/v1/feedback/{id}")).await;
            (entry["status"] == "orphaned").then_some(entry)
        },
    )
    .await;
    expect![[r#"no span with id 00000000000000ee was recorded within 1s of this feedback (the grace period); check the id"#]]
        .assert_eq(entry["message"].as_str().unwrap_or("?"));
    let pending = app.get_json("/api/v1/feedback/pending").await;
    let statuses: Vec<&Value> =
        pending["feedback"].as_array().unwrap().iter().map(|f| &f["status"]).collect();
    assert_eq!(statuses, [&json!("orphaned")], "{pending}");

    // A span that arrives after all still gets its feedback.
    let span = otlp::span(crate::trace_id(7700), 0xee, None, "late_call", 1_000, 2_000);
    app.post_otlp_protobuf(otlp::encode(&otlp::request("late", vec![span])))
        .await
        .assert_status(200);
    let entry = app.get_json(&format!("/api/v1/feedback/{id}")).await;
    assert_eq!(entry["status"], "attached", "{entry}");
    let found = app.get_json("/api/v1/spans?q=feedback.tag%20%3D%20late").await;
    assert_eq!(found["spans"][0]["name"], "late_call", "{found}");
}

/// A grace period without a unit (here from `LOUPE_FEEDBACK__GRACE_PERIOD`) stops `loupe serve`
/// with a message saying what to write.
#[tokio::test]
async fn a_grace_period_without_a_unit_is_refused() {
    /// Kills the server if it started after all, so a failing test leaves nothing running.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let app = spawn_app(ZERO_CONFIG).await;
    let child = app
        .command()
        .args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
        .env("LOUPE_FEEDBACK__GRACE_PERIOD", "10")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let status = test_support::eventually(
        std::time::Duration::from_secs(30),
        "loupe serve to refuse the config",
        || {
            let res = child.0.try_wait().unwrap();
            async move { res }
        },
    )
    .await;
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(
            "feedback.grace_period: 10 has no unit; use a duration with a unit, e.g. \"30s\", \"10m\" or \"1h\""
        ),
        "{stderr}"
    );
}
