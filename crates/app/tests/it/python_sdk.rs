//! The real OpenTelemetry Python SDK, with its OTLP/HTTP and OTLP/gRPC exporters, exporting a
//! small nested trace (interpreter from `LOUPE_TEST_PYTHON`, see scripts/test).

use expect_test::{Expect, expect};
use test_support::{App, eventually, spawn_app};

use crate::render_tree;

async fn export_and_read(app: &App, protocol: &str, endpoint: &str, expect: Expect) {
    let trace_id = crate::run_python("export_trace.py", &[protocol, endpoint]);
    // The exporter returns after the server's 2xx, so the trace is already stored.
    let tree = eventually(std::time::Duration::from_secs(10), "the exported trace", || async {
        let response = app.get(&format!("/api/v1/traces/{trace_id}"), &[]).await;
        (response.status == 200).then(|| response.json())
    })
    .await;
    expect.assert_eq(&render_tree(&tree));
    assert_eq!(tree["spans"][0]["service"], "python-sdk-test");
}

#[tokio::test]
async fn python_sdk_over_http() {
    let app = spawn_app("").await;
    export_and_read(
        &app,
        "http",
        &format!("{}/v1/traces", app.http_url),
        expect![[r#"
        answer_question type=other llm=false status=unset
          chat gpt-4o-mini type=llm llm=true status=unset
          execute_tool search type=tool llm=false status=error
    "#]],
    )
    .await;
}

#[tokio::test]
async fn python_sdk_over_grpc() {
    let app = spawn_app("").await;
    export_and_read(
        &app,
        "grpc",
        &app.grpc_url,
        expect![[r#"
        answer_question type=other llm=false status=unset
          chat gpt-4o-mini type=llm llm=true status=unset
          execute_tool search type=tool llm=false status=error
    "#]],
    )
    .await;
}
