//! Durability: a 2xx means the spans are on disk. `kill -9` right after the answers loses
//! nothing; overload answers 503 with `Retry-After` and never loses an acknowledged span.

use test_support::{otlp, spawn_app};

use crate::{hex, trace_id};

#[tokio::test]
async fn acknowledged_spans_survive_kill_9() {
    let mut app = spawn_app("").await;
    let base = 1_700_000_000_000_000_000u64;
    let mut sends = Vec::new();
    for n in 0..40u64 {
        let request = otlp::request("svc", otlp::agent_trace(trace_id(100 + n), base + n));
        sends.push(app.post_otlp_protobuf(otlp::encode(&request)));
    }
    for response in futures::future::join_all(sends).await {
        response.assert_status(200);
    }
    app.kill9();
    app.restart();
    for n in 0..40u64 {
        let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&trace_id(100 + n)))).await;
        assert_eq!(tree["rollup"]["n_spans"], 3, "trace {n}");
    }
    let list = app.get_json("/api/v1/traces?limit=1000&total=true").await;
    assert_eq!(list["traces"].as_array().unwrap().len(), 40);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_keeps_what_it_acknowledged() {
    let app = spawn_app("[pipeline]\nmax_queued_spans = 8\nretry_after_secs = 3\n").await;
    let base = 1_700_000_000_000_000_000u64;
    let mut sends = Vec::new();
    for n in 0..60u64 {
        let request = otlp::request("svc", otlp::agent_trace(trace_id(200 + n), base + n));
        sends.push(app.post_otlp_protobuf(otlp::encode(&request)));
    }
    let responses = futures::future::join_all(sends).await;
    let mut n_ok = 0;
    let mut n_overloaded = 0;
    for (n, response) in responses.iter().enumerate() {
        match response.status {
            200 => {
                n_ok += 1;
                let tree = app
                    .get_json(&format!("/api/v1/traces/{}", hex(&trace_id(200 + n as u64))))
                    .await;
                assert_eq!(tree["rollup"]["n_spans"], 3);
            }
            503 => {
                n_overloaded += 1;
                assert_eq!(response.header("retry-after"), Some("3"));
            }
            other => panic!("unexpected status {other}: {}", response.text()),
        }
    }
    assert!(n_ok > 0 && n_overloaded > 0, "ok={n_ok} overloaded={n_overloaded}");

    // A batch larger than the whole queue can never fit: 413, not a retry loop.
    let spans: Vec<_> = (1..=9).map(|i| otlp::span(trace_id(299), i, None, "s", 1, 2)).collect();
    let response = app.post_otlp_protobuf(otlp::encode(&otlp::request("svc", spans))).await;
    assert_eq!(response.status, 413, "{}", response.text());
}

#[tokio::test]
async fn sigterm_flushes_and_exits_cleanly() {
    let mut app = spawn_app("").await;
    let request = otlp::request("svc", otlp::agent_trace(trace_id(300), 1_700_000_000_000_000_000));
    app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
    assert!(app.terminate(), "loupe did not exit cleanly on SIGTERM:\n{}", app.logs());
    app.restart();
    let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&trace_id(300)))).await;
    assert_eq!(tree["rollup"]["n_spans"], 3);
}
