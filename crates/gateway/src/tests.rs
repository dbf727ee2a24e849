//! Gateway tests: real HTTP calls through the gateway's router to the fake upstream
//! (`test_support::fake_llm`), checking what the client receives against what the upstream sent,
//! and the recorded spans against golden files in `test_data/` (`UPDATE_EXPECT=1` to update).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use expect_test::{ExpectFile, expect_file};
use model::{AnyValue, RawSpan};
use serde_json::{Value, json};
use test_support::fake_llm::FakeLlm;

use crate::{Gateway, GatewayConfig, RawGatewayConfig, RecordSink};

/// Captures what the recorder submits; can be told to fail, like a store that is down.
#[derive(Default)]
struct Capture {
    batches: parking_lot::Mutex<Vec<pipeline::Batch>>,
    failing: std::sync::atomic::AtomicBool,
}

impl RecordSink for Capture {
    fn submit(
        &self,
        batch: pipeline::Batch,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("store unavailable".to_owned());
            }
            self.batches.lock().push(batch);
            Ok(())
        })
    }
}

impl Capture {
    fn spans(&self) -> Vec<RawSpan> {
        self.batches.lock().iter().flat_map(|b| b.spans.clone()).collect()
    }
}

struct Harness {
    upstream: FakeLlm,
    gateway: Gateway,
    capture: Arc<Capture>,
    url: String,
    spill_dir: tempfile::TempDir,
    client: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// A gateway whose `openai` and `anthropic` routes point at a fresh fake upstream, plus
    /// `extra_toml` (more of the `[gateway]` section, top-level keys first; `UPSTREAM` is replaced
    /// by its URL).
    async fn start(extra_toml: &str) -> Harness {
        Harness::start_with(extra_toml, Arc::new(Capture::default())).await
    }

    async fn start_with(extra_toml: &str, capture: Arc<Capture>) -> Harness {
        let upstream = FakeLlm::start().await;
        let toml_text = format!(
            "{extra_toml}\n\n[routes.openai]\nkind = \"openai\"\nbase_url = \"UPSTREAM\"\n\n\
             [routes.anthropic]\nkind = \"anthropic\"\nbase_url = \"UPSTREAM\"\n"
        )
        .replace("UPSTREAM", &upstream.url());
        let raw: RawGatewayConfig = toml::from_str(&toml_text).unwrap();
        let env = |name: &str| match name {
            "FAKE_ROUTE_KEY" => Some("sk-route-secret-0001".to_owned()),
            _ => None,
        };
        let config = GatewayConfig::from_raw(raw, &env).unwrap();
        let spill_dir = tempfile::tempdir().unwrap();
        let gateway = Gateway::with_sink(
            config,
            auth::Auth::open(),
            capture.clone(),
            spill_dir.path().to_path_buf(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = gateway.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Harness {
            upstream,
            gateway,
            capture,
            url,
            spill_dir,
            client: reqwest::Client::new(),
            _server: server,
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let mut request = self.client.post(format!("{}{path}", self.url)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    /// The same request sent straight to the upstream.
    async fn post_direct(&self, path: &str, body: &Value) -> Reply {
        let url = format!("{}{}", self.upstream.url(), path.trim_start_matches("/v1"));
        Reply::read(self.client.post(url).json(body).send().await.unwrap()).await
    }

    /// Waits until `n` spans were recorded.
    async fn spans(&self, n: usize) -> Vec<RawSpan> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.capture.spans();
            if spans.len() >= n || Instant::now() > deadline {
                assert_eq!(spans.len(), n, "recorded spans");
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    /// Reads the body chunk by chunk, so a body that breaks off keeps what arrived.
    async fn read(mut response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        let mut broke = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(error) => {
                    broke = Some(error);
                    break;
                }
            }
        }
        let mut body = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(error) = broke {
            body.push_str(&format!("<body error: {}>", error.is_body() || error.is_decode()));
        }
        Reply { status, headers, body }
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// Stable text for recorded spans: volatile values (ids, times, ports) replaced.
fn render(spans: &[RawSpan], caller_trace: Option<&str>) -> String {
    let mut res = String::new();
    for span in spans {
        let parent = match (&span.parent_span_id, caller_trace) {
            (None, _) => "none".to_owned(),
            (Some(parent), _) if spans.iter().any(|s| s.span_id == *parent) => "call".to_owned(),
            (Some(parent), Some(_)) => format!("caller {parent}"),
            (Some(_), None) => "other".to_owned(),
        };
        let trace = match caller_trace {
            Some(trace) if span.trace_id.to_hex() == trace => "caller",
            Some(_) => "NEW",
            None => "new",
        };
        writeln!(
            res,
            "span {:?} kind={} trace={trace} parent={parent} status={}{}",
            span.name,
            span.kind.as_str(),
            span.status.code.as_str(),
            if span.status.message.is_empty() {
                String::new()
            } else {
                format!(" ({})", span.status.message)
            }
        )
        .unwrap();
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        for kv in &span.attributes {
            let value = match kv.key.as_str() {
                "server.port" => "<port>".to_owned(),
                "gen_ai.response.time_to_first_chunk" => {
                    assert!(matches!(kv.value, AnyValue::Double(d) if d > 0.0));
                    "<seconds>".to_owned()
                }
                "loupe.gateway.request.body" | "loupe.gateway.response.body" => {
                    let text = kv.value.as_str().unwrap_or("");
                    if text.len() > 200 {
                        format!("<{} bytes>", text.len())
                    } else {
                        text.to_owned()
                    }
                }
                _ => render_value(&kv.value),
            };
            writeln!(res, "  {} = {value}", kv.key).unwrap();
        }
        for event in &span.events {
            assert!(event.time_unix_nano >= span.start_time_unix_nano);
            writeln!(res, "  event {}", event.name).unwrap();
        }
    }
    res
}

fn render_value(value: &AnyValue) -> String {
    match value {
        AnyValue::String(s) => {
            // JSON strings (messages) are pretty-printed for readable diffs.
            match serde_json::from_str::<Value>(s) {
                Ok(json @ (Value::Array(_) | Value::Object(_))) => {
                    serde_json::to_string_pretty(&json).unwrap().replace('\n', "\n    ")
                }
                _ => format!("{s:?}"),
            }
        }
        other => other.to_json().to_string(),
    }
}

fn check_spans(spans: &[RawSpan], caller_trace: Option<&str>, expect: ExpectFile) {
    expect.assert_eq(&render(spans, caller_trace));
}

fn chat_body(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a terse geography tutor."},
            {"role": "user", "content": "What is the capital of France?"}
        ],
        "temperature": 0.2,
        "max_tokens": 64
    })
}

#[tokio::test]
async fn chat_completion_is_forwarded_and_recorded() {
    let h = Harness::start("").await;
    let body = chat_body("gpt-4o");
    let reply =
        h.post("/v1/chat/completions", &[("authorization", "Bearer sk-caller-0001")], &body).await;
    let direct = h.post_direct("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, direct.body);
    assert_eq!(reply.header("x-request-id"), "req_fake_0001");
    assert_eq!(reply.header("x-loupe-trace-id").len(), 32);
    assert_eq!(reply.header("x-loupe-span-id").len(), 16);
    let upstream = &h.upstream.requests()[0];
    assert_eq!(upstream.header("authorization"), Some("Bearer sk-caller-0001"));
    let spans = h.spans(1).await;
    assert_eq!(spans[0].trace_id.to_hex(), reply.header("x-loupe-trace-id"));
    assert_eq!(spans[0].span_id.to_hex(), reply.header("x-loupe-span-id"));
    check_spans(&spans, None, expect_file!["../test_data/chat_basic.txt"]);
}

#[tokio::test]
async fn chat_stream_gets_usage_without_the_client_seeing_it() {
    let h = Harness::start("").await;
    let mut body = chat_body("gpt-4o");
    body["stream"] = json!(true);
    let reply = h.post("/v1/chat/completions", &[], &body).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").starts_with("text/event-stream"));
    let upstream = &h.upstream.requests()[0];
    assert_eq!(upstream.body["stream_options"], json!({"include_usage": true}));
    // What the upstream sends a client that did not ask for usage.
    let direct = h.post_direct("/v1/chat/completions", &body).await;
    assert!(!direct.body.contains("usage"));
    assert_eq!(reply.body, direct.body);
    let spans = h.spans(1).await;
    check_spans(&spans, None, expect_file!["../test_data/chat_stream.txt"]);
}

#[tokio::test]
async fn chat_stream_with_usage_is_passed_through_unchanged() {
    let h = Harness::start("").await;
    let mut body = chat_body("fake-tools");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]);
    let reply = h.post("/v1/chat/completions", &[], &body).await;
    let direct = h.post_direct("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200);
    assert!(direct.body.contains("\"usage\":{"));
    assert_eq!(reply.body, direct.body);
    let spans = h.spans(1).await;
    check_spans(&spans, None, expect_file!["../test_data/chat_stream_tools.txt"]);
}

#[tokio::test]
async fn anthropic_messages_stream_and_not() {
    let h = Harness::start("").await;
    let body = json!({
        "model": "anthropic/fake-tools",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "You are a weather assistant."}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "Weather in Paris?"}]
    });
    let reply = h.post("/v1/messages", &[("x-api-key", "sk-ant-caller-0001")], &body).await;
    assert_eq!(reply.status, 200);
    let upstream = &h.upstream.requests()[0];
    assert_eq!(upstream.body["model"], "fake-tools");
    assert_eq!(upstream.header("x-api-key"), Some("sk-ant-caller-0001"));
    assert_eq!(upstream.header("anthropic-version"), Some("2023-06-01"));
    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let reply = h.post("/v1/messages", &[], &stream_body).await;
    stream_body["model"] = json!("fake-tools");
    let direct = h.post_direct("/v1/messages", &stream_body).await;
    assert_eq!(reply.body, direct.body);
    let spans = h.spans(2).await;
    check_spans(&spans, None, expect_file!["../test_data/anthropic_messages.txt"]);
}

#[tokio::test]
async fn routing_rewrites_and_keys() {
    let h = Harness::start(
        "[routes.fast]\nkind = \"openai\"\nbase_url = \"UPSTREAM\"\nmodel = \"gpt-4o-mini\"\n\
         api_key_env = \"FAKE_ROUTE_KEY\"\nprovider = \"groq\"\n",
    )
    .await;
    let caller = [("authorization", "Bearer sk-caller-0001")];
    let reply = h.post("/v1/chat/completions", &caller, &chat_body("fast")).await;
    assert_eq!(reply.status, 200);
    let reply = h.post("/v1/chat/completions", &caller, &chat_body("openai/gpt-4o")).await;
    assert_eq!(reply.status, 200);
    let reply = h.post("/v1/chat/completions", &caller, &chat_body("nope/gpt-4o")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body,
        r#"{"error":{"message":"unknown route \"nope\"; configured routes: anthropic, fast, openai","type":"invalid_request_error","param":null,"code":null}}"#
    );
    let reply = h.post("/v1/messages", &caller, &chat_body("openai/gpt-4o")).await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.starts_with(r#"{"type":"error","error":{"type":"invalid_request_error""#));
    let requests = h.upstream.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body["model"], "gpt-4o-mini");
    assert_eq!(requests[0].header("authorization"), Some("Bearer sk-route-secret-0001"));
    assert_eq!(requests[1].body["model"], "gpt-4o");
    assert_eq!(requests[1].header("authorization"), Some("Bearer sk-caller-0001"));
    let spans = h.spans(2).await;
    let text = render(&spans, None);
    assert!(text.contains("gen_ai.provider.name = \"groq\""));
    assert!(text.contains("loupe.gateway.route = \"fast\""));
    h.gateway.shutdown().await;
    assert_no_secrets(h.spill_dir.path(), &spans);
}

/// Neither the recorded spans nor any file the gateway wrote contain a credential.
fn assert_no_secrets(dir: &std::path::Path, spans: &[RawSpan]) {
    let recorded = serde_json::to_string(spans).unwrap();
    for secret in ["sk-caller-0001", "sk-route-secret-0001", "sk-ant-caller-0001"] {
        assert!(!recorded.contains(secret), "{secret} recorded");
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            assert!(!text.contains(secret), "{secret} in spill file");
        }
    }
}

#[tokio::test]
async fn joins_caller_trace_and_records_metadata() {
    let h = Harness::start("").await;
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{caller_trace}-00f067aa0ba902b7-01");
    let mut body = chat_body("gpt-4o");
    body["user"] = json!("user-from-body");
    body["metadata"] = json!({"ticket": "T-42", "tier": "body"});
    let reply = h
        .post(
            "/v1/chat/completions",
            &[
                ("traceparent", traceparent.as_str()),
                ("tracestate", "vendor=abc"),
                ("x-loupe-operation", "answer-question"),
                ("x-loupe-session", "sess-7"),
                ("x-loupe-user", "user-42"),
                ("x-loupe-tags", "geo, tutor ,,beta"),
                ("x-loupe-metadata", r#"{"tier":"gold","n":3}"#),
                ("x-loupe-variant", "prompt-b"),
                ("x-loupe-project", "acme"),
            ],
            &body,
        )
        .await;
    assert_eq!(reply.header("x-loupe-trace-id"), caller_trace);
    let upstream = &h.upstream.requests()[0];
    let forwarded = upstream.header("traceparent").unwrap();
    assert!(forwarded.starts_with(&format!("00-{caller_trace}-")));
    assert!(forwarded.contains(reply.header("x-loupe-span-id")));
    assert!(upstream.headers.iter().all(|(name, _)| !name.starts_with("x-loupe")));
    // An invalid traceparent starts a new trace.
    h.post(
        "/v1/chat/completions",
        &[("traceparent", "00-zzzz-00f067aa0ba902b7-01")],
        &chat_body("gpt-4o"),
    )
    .await;
    let spans = h.spans(2).await;
    assert_eq!(h.capture.batches.lock()[0].project.as_str(), "acme");
    check_spans(&spans, Some(caller_trace), expect_file!["../test_data/trace_and_metadata.txt"]);
}

#[tokio::test]
async fn upstream_errors_are_forwarded_and_recorded() {
    let h = Harness::start("").await;
    let body = chat_body("fake-error-429");
    let reply = h.post("/v1/chat/completions", &[], &body).await;
    let direct = h.post_direct("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.body, direct.body);
    assert_eq!(reply.header("retry-after"), "0");
    let body = json!({"model": "fake-error-529", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let reply = h.post("/v1/messages", &[], &body).await;
    assert_eq!(reply.status, 529);
    let reply = h.post("/v1/chat/completions", &[], &chat_body("fake-bad-json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "{\"id\": \"chatcmpl-broken\", \"choices\": [tru");
    let spans = h.spans(3).await;
    check_spans(&spans, None, expect_file!["../test_data/upstream_errors.txt"]);
}

#[tokio::test]
async fn retries_and_fallbacks_are_child_spans() {
    let h = Harness::start(
        "[routes.flaky]\nkind = \"openai\"\nbase_url = \"UPSTREAM\"\nretries = 1\nretry_backoff_ms = 1\n\n\
         [routes.down]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nfallbacks = [\"openai\"]\n",
    )
    .await;
    let reply = h.post("/v1/chat/completions", &[], &chat_body("flaky/fake-flaky")).await;
    assert_eq!(reply.status, 200);
    let reply = h.post("/v1/chat/completions", &[], &chat_body("down/gpt-4o")).await;
    assert_eq!(reply.status, 200);
    let spans = h.spans(6).await;
    check_spans(&spans, None, expect_file!["../test_data/retries_fallbacks.txt"]);
}

#[tokio::test]
async fn interrupted_streams_are_recorded() {
    let h = Harness::start("stream_idle_timeout_secs = 0.3\nrequest_timeout_secs = 0.5\n").await;
    let mut body = chat_body("fake-broken");
    body["stream"] = json!(true);
    let reply = h.post("/v1/chat/completions", &[], &body).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("Paris"), "{}", reply.body);
    assert!(reply.body.contains("<body error"), "{}", reply.body);
    let spans = h.spans(1).await;
    check_spans(&spans, None, expect_file!["../test_data/stream_upstream_broke.txt"]);

    body["model"] = json!("fake-stall");
    let reply = h.post("/v1/chat/completions", &[], &body).await;
    assert!(reply.body.contains("<body error"), "{}", reply.body);
    let spans = h.spans(2).await;
    check_spans(&spans[1..], None, expect_file!["../test_data/stream_idle_timeout.txt"]);

    let reply = h.post("/v1/chat/completions", &[], &chat_body("fake-hang")).await;
    assert_eq!(reply.status, 503);
    let spans = h.spans(3).await;
    check_spans(&spans[2..], None, expect_file!["../test_data/request_timeout.txt"]);

    // The client gives up before the upstream answers.
    let abandoned = h
        .client
        .post(format!("{}/v1/chat/completions", h.url))
        .timeout(Duration::from_millis(100))
        .json(&chat_body("fake-hang"))
        .send()
        .await;
    assert!(abandoned.is_err());
    let spans = h.spans(4).await;
    check_spans(&spans[3..], None, expect_file!["../test_data/client_gave_up.txt"]);

    // The client reads the first chunk of a slow stream, then goes away.
    body["model"] = json!("fake-slow");
    let mut response =
        h.client.post(format!("{}/v1/chat/completions", h.url)).json(&body).send().await.unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(response);
    let spans = h.spans(5).await;
    check_spans(&spans[4..], None, expect_file!["../test_data/stream_client_disconnected.txt"]);
}

#[tokio::test]
async fn embeddings_responses_and_models() {
    let h = Harness::start("").await;
    let body = json!({"model": "text-embedding-3-small", "input": ["hello", "world"], "encoding_format": "float"});
    let reply = h.post("/v1/embeddings", &[], &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, h.post_direct("/v1/embeddings", &body).await.body);
    let body = json!({"model": "gpt-4o", "instructions": "Be brief.", "input": "Capital of France?", "max_output_tokens": 50});
    let reply = h.post("/v1/responses", &[], &body).await;
    assert_eq!(reply.body, h.post_direct("/v1/responses", &body).await.body);
    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let reply = h.post("/v1/responses", &[], &stream_body).await;
    assert_eq!(reply.body, h.post_direct("/v1/responses", &stream_body).await.body);
    let models = h.client.get(format!("{}/v1/models", h.url)).send().await.unwrap();
    assert_eq!(models.status(), 200);
    let models: Value = models.json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "gpt-4o");
    let spans = h.spans(3).await;
    check_spans(&spans, None, expect_file!["../test_data/embeddings_responses.txt"]);
}

#[tokio::test]
async fn failed_store_spills_and_replays() {
    let capture = Arc::new(Capture::default());
    capture.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let h = Harness::start_with(
        "[recording]\nqueue_calls = 1\nreplay_interval_secs = 0.05\n",
        capture.clone(),
    )
    .await;
    let started = Instant::now();
    for _ in 0..20 {
        let reply = h
            .post(
                "/v1/chat/completions",
                &[("authorization", "Bearer sk-caller-0001")],
                &chat_body("gpt-4o"),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    // Calls are not slowed by the failing store.
    assert!(started.elapsed() < Duration::from_secs(5));
    let metrics = h.gateway.metrics();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.spilled_spans.get() < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(metrics.spilled_spans.get(), 20);
    assert_eq!(metrics.dropped_spans.get(), 0);
    assert!(h.capture.spans().is_empty());
    assert_no_secrets(h.spill_dir.path(), &[]);
    capture.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let spans = h.spans(20).await;
    assert_eq!(metrics.replayed_spans.get(), 20);
    let mut ids: Vec<_> = spans.iter().map(|s| s.span_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    // Replayed segments are removed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(h.spill_dir.path()).unwrap().count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(std::fs::read_dir(h.spill_dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn metrics_are_registered() {
    let h = Harness::start("").await;
    h.post("/v1/chat/completions", &[], &chat_body("gpt-4o")).await;
    h.post("/v1/chat/completions", &[], &chat_body("fake-error-500")).await;
    h.spans(2).await;
    let mut registry = prometheus_client::registry::Registry::default();
    h.gateway.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("loupe_gateway_requests_total{route=\"openai\"} 2"), "{text}");
    assert!(text.contains("loupe_gateway_errors_total{route=\"openai\"} 1"), "{text}");
    assert!(text.contains("loupe_gateway_overhead_seconds_count 2"), "{text}");
    assert!(text.contains("loupe_gateway_recording_queue_depth 0"), "{text}");
}

#[test]
fn config_errors() {
    let check = |toml_text: &str| -> String {
        let raw: RawGatewayConfig = match toml::from_str(toml_text) {
            Ok(raw) => raw,
            Err(error) => return error.message().to_owned(),
        };
        match GatewayConfig::from_raw(raw, &|_| None) {
            Ok(config) => format!("ok: {}", config.route_names().join(",")),
            Err(error) => error.to_string(),
        }
    };
    let cases = [
        "",
        "[routes.x]\nkind = \"gemini\"\nbase_url = \"http://h/v1\"",
        "[routes.x]\nkind = \"openai\"\nbase_url = \"http://h/v1\"\napi_key_env = \"NOPE\"",
        "[routes.x]\nkind = \"openai\"\nbase_url = \"http://h/v1\"\nfallbacks = [\"anthropic\"]",
        "[routes.x]\nkind = \"openai\"\nbase_url = \"http://h/v1\"\nfallbacks = [\"y\"]",
        "[routes.x]\nkind = \"openai\"\nbase_url = \"ftp://h/v1\"",
        "default_route = \"anthropic\"",
        "request_timeout_secs = 0",
        "unknown = 1",
    ];
    let out: Vec<String> = cases.iter().map(|c| check(c)).collect();
    expect_test::expect![[r#"
        ok: anthropic,openai
        invalid gateway config: route "x": unknown kind "gemini" (expected "openai" or "anthropic")
        invalid gateway config: route "x": environment variable NOPE is not set
        invalid gateway config: route "x" (openai) cannot fall back to "anthropic" (anthropic)
        invalid gateway config: route "x": fallback "y" is not a configured route
        invalid gateway config: route "x": base_url must be http or https
        invalid gateway config: default_route: route "anthropic" must be of kind openai
        invalid gateway config: request_timeout_secs must be a positive number of seconds
        unknown field `unknown`, expected one of `enabled`, `default_route`, `default_anthropic_route`, `connect_timeout_secs`, `request_timeout_secs`, `stream_idle_timeout_secs`, `max_request_bytes`, `max_recorded_body_bytes`, `recording`, `routes`
    "#]]
    .assert_eq(&(out.join("\n") + "\n"));
}

/// Runs one of the Python client scripts (shared with the end-to-end tests of `app`) against
/// this gateway. The interpreter is `$LOUPE_TEST_PYTHON` (a venv with `openai`, `anthropic`
/// and the OTel SDK), else `python3`.
async fn run_python(script: &str, h: &Harness) -> Value {
    let path = format!("{}/../app/tests/it/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("LOUPE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = tokio::process::Command::new(&python)
        .arg(&path)
        .env("LOUPE_GATEWAY_URL", &h.url)
        .env("LOUPE_UPSTREAM_URL", h.upstream.url())
        .env_remove("LOUPE_OTLP_ENDPOINT")
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A one-line summary per recorded call, for the client tests.
fn summarize(spans: &[RawSpan]) -> String {
    let mut res = String::new();
    for span in spans {
        let attr =
            |key: &str| span.attr(key).map(|v| v.to_text()).unwrap_or_else(|| "-".to_owned());
        writeln!(
            res,
            "{:<28} {:<6} status={} in={} out={} finish={} stream={} user={} session={}",
            span.name,
            span.status.code.as_str(),
            attr("http.response.status_code"),
            attr("gen_ai.usage.input_tokens"),
            attr("gen_ai.usage.output_tokens"),
            attr("gen_ai.response.finish_reasons"),
            attr("loupe.gateway.stream.outcome"),
            attr("user.id"),
            attr("session.id"),
        )
        .unwrap();
    }
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_clients() {
    let h = Harness::start("").await;
    let out = run_python("gateway_clients.py", &h).await;
    let calls = out["calls"].as_array().unwrap();
    let spans = h.spans(calls.len()).await;
    // Every call the clients saw was recorded under the ids it was told.
    for call in calls {
        let span = spans
            .iter()
            .find(|s| s.span_id.to_hex() == call["span_id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("no span for {call}"));
        assert_eq!(span.trace_id.to_hex(), call["trace_id"].as_str().unwrap());
    }
    let mut spans = spans;
    spans.sort_by_key(|s| s.start_time_unix_nano);
    expect_file!["../test_data/python_clients.txt"].assert_eq(&summarize(&spans));
    h.gateway.shutdown().await;
    let recorded = serde_json::to_string(&spans).unwrap();
    assert!(!recorded.contains("sk-py-caller-0001") && !recorded.contains("sk-ant-py-caller-0001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_python_app_span_is_the_parent() {
    let h = Harness::start("").await;
    let out = run_python("gateway_otel.py", &h).await;
    let spans = h.spans(1).await;
    assert_eq!(out["gateway_trace_id"], out["app_trace_id"]);
    assert_eq!(spans[0].trace_id.to_hex(), out["app_trace_id"].as_str().unwrap());
    assert_eq!(
        spans[0].parent_span_id.map(|id| id.to_hex()).as_deref(),
        out["app_span_id"].as_str()
    );
    assert_eq!(spans[0].span_id.to_hex(), out["gateway_span_id"].as_str().unwrap());
}

/// The example configuration in the user docs is valid.
#[test]
fn docs_example_config_is_valid() {
    let docs = include_str!("../../../docs/gateway.md");
    let start = docs.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + docs[start..].find("```").unwrap();
    #[derive(serde::Deserialize)]
    struct File {
        gateway: RawGatewayConfig,
    }
    let file: File = toml::from_str(&docs[start..end]).unwrap();
    let config =
        GatewayConfig::from_raw(file.gateway, &|name| Some(format!("key-of-{name}"))).unwrap();
    assert_eq!(config.route_names(), ["anthropic", "azure", "fast", "local", "openai", "primary"]);
    assert_eq!(config.routes["fast"].model.as_deref(), Some("llama-3.3-70b-versatile"));
}

/// Request bodies with every kind of content become OTel messages.
#[test]
fn request_content_becomes_otel_messages() {
    let render = |info: crate::genai::RequestInfo| {
        let mut attributes = Vec::new();
        info.push_attributes(&mut attributes);
        attributes
            .iter()
            .map(|kv| format!("{} = {}\n", kv.key, render_value(&kv.value)))
            .collect::<String>()
    };
    let openai = json!({
        "model": "gpt-4o",
        "stop": "END",
        "n": 2,
        "seed": 7,
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "developer", "content": "Answer in JSON."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is on this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
        ]
    });
    let anthropic = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "top_k": 5,
        "stop_sequences": ["\n\nHuman:"],
        "system": "Be brief.",
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                {"type": "text", "text": "Describe it."}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Looks like a cat.", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a cat"}]}
            ]}
        ]
    });
    let text = render(crate::openai::chat_request(&openai))
        + "---\n"
        + &render(crate::anthropic::messages_request(&anthropic));
    expect_file!["../test_data/request_content.txt"].assert_eq(&text);
}
