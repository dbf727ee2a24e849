//! Projects and keys: each key sees only its project; a wrong key gets 401 and stores nothing.

use expect_test::expect;
use test_support::{otlp, spawn_app};

use crate::{hex, trace_id};

const TWO_PROJECTS: &str = r#"
[[auth.keys]]
project = "alpha"
key = "key-alpha"

[[auth.keys]]
project = "beta"
key_sha256 = "ad50c6b9e9b77c6e3d05bd6ea0adb85c4fbb6fc7ef5a7d1f8cb81c4d1c5c8f93"
"#;

#[tokio::test]
async fn one_project_never_reads_another() {
    // `beta`'s key is given by hash only; find its preimage from the test's own constant.
    let beta_key = "key-beta";
    let config = TWO_PROJECTS.replace(
        "ad50c6b9e9b77c6e3d05bd6ea0adb85c4fbb6fc7ef5a7d1f8cb81c4d1c5c8f93",
        &auth::hash_key(beta_key),
    );
    let app = spawn_app(&config).await;
    let alpha = [("authorization", "Bearer key-alpha"), ("content-type", "application/x-protobuf")];
    let beta = [("x-loupe-api-key", beta_key), ("content-type", "application/x-protobuf")];
    let id = trace_id(500);
    let body =
        otlp::encode(&otlp::request("svc", otlp::agent_trace(id, 1_700_000_000_000_000_000)));
    app.post("/v1/traces", &alpha, body.clone()).await.assert_status(200);

    let path = format!("/api/v1/traces/{}", hex(&id));
    app.get(&path, &alpha[..1]).await.assert_status(200);
    let response = app.get(&path, &beta[..1]).await;
    expect![[r#"404 {"error":{"code":"not_found","message":"trace 4c6f75706554657300000000000001f4 not found"}}"#]].assert_eq(&format!("{} {}", response.status, response.text()));
    let list = app.get("/api/v1/traces", &beta[..1]).await.json();
    assert_eq!(list["traces"].as_array().unwrap().len(), 0);
    let spans = app.get("/api/v1/spans", &beta[..1]).await.json();
    assert_eq!(spans["spans"].as_array().unwrap().len(), 0);
    let list = app.get("/api/v1/traces", &alpha[..1]).await.json();
    assert_eq!(list["traces"].as_array().unwrap().len(), 1);

    // The same trace id sent by beta is beta's own trace, not a merge into alpha's.
    app.post("/v1/traces", &beta, body).await.assert_status(200);
    assert_eq!(app.get(&path, &beta[..1]).await.json()["rollup"]["n_spans"], 3);
    assert_eq!(app.get(&path, &alpha[..1]).await.json()["rollup"]["n_spans"], 3);
}

#[tokio::test]
async fn wrong_or_missing_keys_get_401_and_store_nothing() {
    let app = spawn_app(TWO_PROJECTS).await;
    let id = trace_id(501);
    let body =
        otlp::encode(&otlp::request("svc", otlp::agent_trace(id, 1_700_000_000_000_000_000)));
    let response = app
        .post(
            "/v1/traces",
            &[("authorization", "Bearer wrong"), ("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
    expect![[r#"401 {"code":16,"message":"the api key is not valid"}"#]].assert_eq(&format!(
        "{} {}",
        response.status,
        response.text()
    ));
    let response =
        app.post("/v1/traces", &[("content-type", "application/x-protobuf")], body.clone()).await;
    assert_eq!(response.status, 401);
    let response = app
        .post(
            "/v1/traces",
            &[("x-loupe-api-key", "wrong"), ("content-type", "application/x-protobuf")],
            body,
        )
        .await;
    assert_eq!(response.status, 401);

    let response = app.get("/api/v1/traces", &[]).await;
    expect![[r#"401 {"error":{"code":"unauthorized","message":"an api key is required: send `Authorization: Bearer <key>` or `x-loupe-api-key`"}}"#]].assert_eq(&format!("{} {}", response.status, response.text()));
    let list =
        app.get("/api/v1/traces?total=true", &[("authorization", "Bearer key-alpha")]).await.json();
    assert_eq!(list["traces"].as_array().unwrap().len(), 0);
    let metrics = app.get("/metrics", &[]).await.text();
    assert!(
        metrics
            .contains("loupe_ingest_requests_total{transport=\"http\",outcome=\"unauthorized\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn keys_created_on_the_command_line_work_at_once() {
    let app = spawn_app("[auth]\nrequire_key = true\n").await;
    let output = app.cli(&["keys", "create", "--project", "gamma", "--name", "ci"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("lp_"), "{key}");

    let id = trace_id(502);
    let body =
        otlp::encode(&otlp::request("svc", otlp::agent_trace(id, 1_700_000_000_000_000_000)));
    let bearer = format!("Bearer {key}");
    app.post(
        "/v1/traces",
        &[("authorization", &bearer), ("content-type", "application/x-protobuf")],
        body,
    )
    .await
    .assert_status(200);
    let list = app.get("/api/v1/traces", &[("authorization", &bearer)]).await.json();
    assert_eq!(list["traces"].as_array().unwrap().len(), 1);

    let listed =
        String::from_utf8(app.cli(&["keys", "list", "--project", "gamma"]).stdout).unwrap();
    let key_id = listed.split_whitespace().next().unwrap().to_owned();
    assert!(listed.contains("ci") && !listed.contains(&key), "{listed}");
    let output = app.cli(&["keys", "revoke", "--project", "gamma", &key_id]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = app.cli(&["keys", "revoke", "--project", "gamma", &key_id]);
    assert!(!output.status.success());
}
