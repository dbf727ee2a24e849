//! The recording gateway in the real binary: the official `openai` and `anthropic` Python
//! clients and an OTel-instrumented Python app call LLMs through `loupe serve` (upstream: the
//! fake LLM), and the calls are read back through the API as traces.

use std::time::Duration;

use expect_test::expect;
use serde_json::Value;
use test_support::fake_llm::FakeLlm;
use test_support::{App, eventually, spawn_app};

use crate::render_tree;

/// A config whose `openai` and `anthropic` routes point at the fake upstream.
fn config(upstream: &FakeLlm) -> String {
    format!(
        "[gateway.routes.openai]\nkind = \"openai\"\nbase_url = \"{url}\"\n\n\
         [gateway.routes.anthropic]\nkind = \"anthropic\"\nbase_url = \"{url}\"\n",
        url = upstream.url()
    )
}

/// Runs a script of `python/` with the gateway's and the upstream's URLs; returns its JSON line.
async fn run_python(script: &str, app: &App, upstream: &FakeLlm, otlp: bool) -> Value {
    let path = format!("{}/tests/it/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = tokio::process::Command::new(test_support::python());
    command
        .arg(&path)
        .env("LOUPE_GATEWAY_URL", &app.http_url)
        .env("LOUPE_UPSTREAM_URL", upstream.url());
    if otlp {
        command.env("LOUPE_OTLP_ENDPOINT", &app.http_url);
    } else {
        command.env_remove("LOUPE_OTLP_ENDPOINT");
    }
    let output = command.output().await.expect("running python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        app.logs()
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The trace, once it has `n_spans` spans.
async fn trace(app: &App, trace_id: &str, n_spans: u64) -> Value {
    eventually(Duration::from_secs(10), "the recorded trace", || async {
        let response = app.get(&format!("/api/v1/traces/{trace_id}"), &[]).await;
        if response.status != 200 {
            return None;
        }
        let tree = response.json();
        (tree["rollup"]["n_spans"] == n_spans).then_some(tree)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_are_recorded_without_credentials() {
    let upstream = FakeLlm::start().await;
    let app = spawn_app(&config(&upstream)).await;
    let out = run_python("gateway_clients.py", &app, &upstream, false).await;
    let calls = out["calls"].as_array().unwrap();
    let mut rendered = String::new();
    for call in calls {
        let tree = trace(&app, call["trace_id"].as_str().unwrap(), 1).await;
        let span = &tree["spans"][0];
        rendered.push_str(&format!(
            "{}: {} service={} model={} in={} out={} session={}",
            call["call"].as_str().unwrap(),
            render_tree(&tree).trim_end(),
            span["service"].as_str().unwrap_or("-"),
            span["model"].as_str().unwrap_or("-"),
            span["rollup"]["input_tokens"],
            span["rollup"]["output_tokens"],
            tree["session_id"].as_str().unwrap_or("-"),
        ));
        rendered.push('\n');
    }
    expect![[r#"
        chat: chat gpt-4o type=llm llm=true status=unset service=loupe-gateway model=gpt-4o-2024-08-06 in=23 out=14 session=py-session
        chat_stream: chat gpt-4o type=llm llm=true status=unset service=loupe-gateway model=gpt-4o-2024-08-06 in=23 out=14 session=-
        chat_stream_parsed: chat gpt-4o type=llm llm=true status=unset service=loupe-gateway model=gpt-4o-2024-08-06 in=23 out=14 session=-
        chat_stream_usage: chat gpt-4o type=llm llm=true status=unset service=loupe-gateway model=gpt-4o-2024-08-06 in=23 out=14 session=-
        tools: chat fake-tools type=llm llm=true status=unset service=loupe-gateway model=fake-tools in=23 out=14 session=-
        error_429: chat fake-error-429 type=llm llm=true status=error service=loupe-gateway model=fake-error-429 in=0 out=0 session=-
        embeddings: embeddings text-embedding-3-small type=embedding llm=false status=unset service=loupe-gateway model=text-embedding-3-small in=10 out=0 session=-
        responses: chat gpt-4o type=llm llm=true status=unset service=loupe-gateway model=gpt-4o-2024-08-06 in=23 out=14 session=-
        anthropic: chat claude-sonnet-4-5 type=llm llm=true status=unset service=loupe-gateway model=claude-sonnet-4-5 in=36 out=15 session=-
        anthropic_stream: chat claude-sonnet-4-5 type=llm llm=true status=unset service=loupe-gateway model=claude-sonnet-4-5 in=36 out=15 session=-
        anthropic_stream_raw: chat claude-sonnet-4-5 type=llm llm=true status=unset service=loupe-gateway model=claude-sonnet-4-5 in=36 out=15 session=-
    "#]]
    .assert_eq(&rendered);

    let metrics = app.get("/metrics", &[]).await.text();
    assert!(metrics.contains("loupe_gateway_requests_total{route=\"openai\"}"), "{metrics}");
    assert!(metrics.contains("loupe_gateway_dropped_spans_total 0"), "{metrics}");

    // No credential reaches any file of the data dir (database, WAL, spill files).
    let mut n_files = 0;
    let mut stack = vec![app.data_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            n_files += 1;
            let bytes = std::fs::read(&path).unwrap();
            for secret in ["sk-py-caller-0001", "sk-ant-py-caller-0001"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} found in {}",
                    path.display()
                );
            }
        }
    }
    assert!(n_files > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_app_span_is_the_parent_of_the_gateway_span() {
    let upstream = FakeLlm::start().await;
    let app = spawn_app(&config(&upstream)).await;
    let out = run_python("gateway_otel.py", &app, &upstream, true).await;
    assert_eq!(out["gateway_trace_id"], out["app_trace_id"]);
    let tree = trace(&app, out["app_trace_id"].as_str().unwrap(), 2).await;
    expect![[r#"
        answer_question type=other llm=false status=unset
          chat gpt-4o type=llm llm=true status=unset
    "#]]
    .assert_eq(&render_tree(&tree));
}

#[tokio::test]
async fn unknown_route_lists_the_configured_routes() {
    let upstream = FakeLlm::start().await;
    let app = spawn_app(&config(&upstream)).await;
    let body = br#"{"model": "nope/gpt-4o", "messages": []}"#.to_vec();
    let response =
        app.post("/v1/chat/completions", &[("content-type", "application/json")], body).await;
    response.assert_status(400);
    assert_eq!(
        response.json()["error"]["message"],
        "unknown route \"nope\"; configured routes: anthropic, openai"
    );
}

const ALPHA_KEY: &str = "lp_alpha_gateway_test_0001";
const BETA_KEY: &str = "lp_beta_gateway_test_0001";

/// Keys required; projects `alpha` and `beta`; route `openai` passes the caller's provider key
/// through, route `keyed` has its own (taken from `HOME`, an environment variable every process
/// has, so the test needs no variable of its own).
fn keys_config(upstream: &FakeLlm) -> String {
    format!(
        "[auth]\nrequire_key = true\n\n\
         [[auth.keys]]\nproject = \"alpha\"\nkey = \"{ALPHA_KEY}\"\n\n\
         [[auth.keys]]\nproject = \"beta\"\nkey = \"{BETA_KEY}\"\n\n\
         [gateway.routes.openai]\nkind = \"openai\"\nbase_url = \"{url}\"\n\n\
         [gateway.routes.keyed]\nkind = \"openai\"\nbase_url = \"{url}\"\napi_key_env = \"HOME\"\n",
        url = upstream.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loupe_api_keys_choose_the_project() {
    let upstream = FakeLlm::start().await;
    let app = spawn_app(&keys_config(&upstream)).await;
    let path = format!("{}/tests/it/python/gateway_keys.py", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(test_support::python())
        .arg(&path)
        .env("LOUPE_GATEWAY_URL", &app.http_url)
        .env("LOUPE_ALPHA_KEY", ALPHA_KEY)
        .env("LOUPE_BETA_KEY", BETA_KEY)
        .output()
        .await
        .expect("running python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "gateway_keys.py failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        app.logs()
    );
    let out: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let mut rendered = String::new();
    for (name, result) in out.as_object().unwrap() {
        let detail = match result["message"].as_str() {
            Some(message) => message.to_owned(),
            None => format!("trace_id={}", result["trace_id"].as_str().map_or(0, str::len)),
        };
        rendered.push_str(&format!("{name}: {} {detail}\n", result["status"]));
    }
    expect![[r#"
        loupe_header: 200 trace_id=32
        loupe_key_as_api_key: 200 trace_id=32
        same_project: 200 trace_id=32
        other_project: 403 the api key belongs to project "alpha" but x-loupe-project names "beta"; use a key of project "beta" or drop the x-loupe-project header
        no_loupe_key: 401 a Loupe api key is required: send it in `x-loupe-api-key` (the provider key stays in `Authorization` / `x-api-key`), or as the client's api key on a route with a provider key of its own
        wrong_loupe_key: 401 the api key is not valid
        loupe_key_on_passthrough_route: 401 route "openai" has no provider key of its own, so the provider key must be sent in `authorization`; send the Loupe key (lp_...) in `x-loupe-api-key` instead
    "#]]
    .assert_eq(&rendered);

    // Each recorded call is in its key's project and only there.
    let alpha = [("x-loupe-api-key", ALPHA_KEY)];
    let beta = [("x-loupe-api-key", BETA_KEY)];
    for (call, owner, other) in [
        ("loupe_header", &alpha, &beta),
        ("same_project", &alpha, &beta),
        ("loupe_key_as_api_key", &beta, &alpha),
    ] {
        let trace_id = out[call]["trace_id"].as_str().unwrap();
        let path = format!("/api/v1/traces/{trace_id}");
        let tree = eventually(Duration::from_secs(10), "the recorded trace", || async {
            let response = app.get(&path, owner).await;
            (response.status == 200).then(|| response.json())
        })
        .await;
        assert_eq!(tree["rollup"]["n_spans"], 1, "{call}");
        assert_eq!(app.get(&path, other).await.status, 404, "{call}");
    }

    // Only the three accepted calls reached the upstream, with the provider key each route
    // uses; no Loupe key ever left the gateway.
    let requests = upstream.requests();
    let authorizations: Vec<String> = requests
        .iter()
        .map(|r| {
            r.header("authorization")
                .unwrap_or("-")
                .replace(&std::env::var("HOME").unwrap(), "$HOME")
        })
        .collect();
    assert_eq!(
        authorizations,
        ["Bearer sk-py-caller-0001", "Bearer $HOME", "Bearer sk-py-caller-0001"]
    );
    for request in &requests {
        for (name, value) in &request.headers {
            assert!(!value.contains("lp_"), "{name}: {value} reached the upstream");
        }
    }
}
