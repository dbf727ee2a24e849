//! `FakeLlm`: a local stand-in for the OpenAI and Anthropic APIs, for gateway tests. It answers
//! with realistic, deterministic responses and SSE streams in each provider's exact wire
//! format, and it can misbehave on request. The request's `model` picks the behaviour:
//!
//! | model                | behaviour                                                      |
//! |----------------------|----------------------------------------------------------------|
//! | anything else        | a normal answer (streamed when `stream: true`)                 |
//! | `fake-tools`         | a tool call (`get_weather`)                                    |
//! | `fake-error-429`     | 429 rate limit error with `retry-after`                        |
//! | `fake-error-500`     | 500 server error                                               |
//! | `fake-error-529`     | 529 overloaded (Anthropic)                                     |
//! | `fake-flaky`         | 503 on the first call, a normal answer afterwards              |
//! | `fake-broken`        | the stream (or body) is cut off midway                         |
//! | `fake-slow`          | 40 ms between stream events                                    |
//! | `fake-stall`         | two stream events, then silence                                |
//! | `fake-hang`          | no response headers for a minute                               |
//! | `fake-bad-json`      | 200 with a body that is not JSON                               |
//!
//! Like OpenAI, chat streams carry a usage chunk (and `"usage":null` on every other chunk) only
//! when the request sets `stream_options.include_usage`. Every request is kept for inspection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

/// A request the fake upstream received.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    pub method: String,
    pub path: String,
    /// Header names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` when there was none or it was not JSON).
    pub body: Value,
}

impl FakeRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct FakeState {
    requests: parking_lot_free::Mutex<Vec<FakeRequest>>,
    flaky_calls: AtomicU64,
}

/// A std mutex that shrugs off poisoning (a panicking test must not hide its own failure).
mod parking_lot_free {
    #[derive(Default)]
    pub struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// The running fake upstream; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    /// Serves on a free port on 127.0.0.1.
    pub async fn start() -> FakeLlm {
        let state = Arc::new(FakeState::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/responses", post(responses))
            .route("/v1/messages", post(messages))
            .route("/v1/models", get(models))
            .with_state(state.clone());
        // Binding port 0 on loopback only fails when the machine is out of sockets.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake llm");
        let addr = listener.local_addr().expect("fake llm address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLlm { addr, state, task }
    }

    /// The base URL, as a route's `base_url` (`http://127.0.0.1:PORT/v1`).
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.state.requests.lock().clone()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn keep(state: &FakeState, method: &str, path: &str, headers: &HeaderMap, body: &Bytes) -> Value {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let headers = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    state.requests.lock().push(FakeRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: body.clone(),
    });
    body
}

const CREATED: u64 = 1_741_570_283;
const ANSWER: [&str; 6] =
    ["The capital", " of France", " is Paris", ". It has been", " since 987", "."];
const TOOL_ARGS: [&str; 4] = ["{\"location\"", ": \"Paris", ", France\"", "}"];

fn model_of(body: &Value) -> String {
    body.get("model").and_then(Value::as_str).unwrap_or("gpt-4o").to_owned()
}

fn response_model(model: &str) -> String {
    match model {
        "gpt-4o" => "gpt-4o-2024-08-06".to_owned(),
        "gpt-4o-mini" => "gpt-4o-mini-2024-07-18".to_owned(),
        other => other.to_owned(),
    }
}

fn json_response(status: StatusCode, body: &Value, extra: &[(&str, &str)]) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "req_fake_0001")
        .header("openai-processing-ms", "3");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body.to_string())).unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamEnd {
    Complete,
    Break,
    Stall,
}

fn sse_response(events: Vec<String>, delay: Duration, end: StreamEnd) -> Response {
    let stream = futures::stream::unfold(
        (events.into_iter(), false, end),
        move |(mut events, started, end)| async move {
            if started && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match events.next() {
                Some(event) => Some((Ok(Bytes::from(event)), (events, true, end))),
                None => match end {
                    StreamEnd::Complete => None,
                    StreamEnd::Break => {
                        // Let what was sent reach the client before the connection drops.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some((
                            Err(std::io::Error::other("fake upstream cut the stream")),
                            (events, true, StreamEnd::Complete),
                        ))
                    }
                    StreamEnd::Stall => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        None
                    }
                },
            }
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-request-id", "req_fake_stream_0001")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// Shared misbehaviours; `None` means answer normally.
async fn misbehave(state: &FakeState, model: &str, anthropic: bool) -> Option<Response> {
    let error = |status: StatusCode, kind: &str, message: &str| {
        let body = if anthropic {
            json!({"type": "error", "error": {"type": kind, "message": message}})
        } else {
            json!({"error": {"message": message, "type": kind, "param": null, "code": kind}})
        };
        json_response(status, &body, &[("retry-after", "0")])
    };
    match model {
        "fake-error-429" => Some(error(
            StatusCode::TOO_MANY_REQUESTS,
            if anthropic { "rate_limit_error" } else { "rate_limit_exceeded" },
            "Rate limit reached for requests",
        )),
        "fake-error-500" => Some(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            if anthropic { "api_error" } else { "server_error" },
            "The server had an error while processing your request.",
        )),
        "fake-error-529" => Some(error(
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error",
            "Overloaded",
        )),
        "fake-flaky" if state.flaky_calls.fetch_add(1, Ordering::SeqCst) == 0 => Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            if anthropic { "api_error" } else { "server_error" },
            "The engine is currently overloaded, please try again later.",
        )),
        "fake-hang" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Some(error(StatusCode::GATEWAY_TIMEOUT, "timeout", "hung"))
        }
        "fake-bad-json" => Some(
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"id\": \"chatcmpl-broken\", \"choices\": [tru"))
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

fn stream_shape(model: &str) -> (Duration, StreamEnd, Option<usize>) {
    match model {
        "fake-slow" => (Duration::from_millis(40), StreamEnd::Complete, None),
        "fake-broken" => (Duration::ZERO, StreamEnd::Break, Some(4)),
        "fake-stall" => (Duration::ZERO, StreamEnd::Stall, Some(2)),
        _ => (Duration::ZERO, StreamEnd::Complete, None),
    }
}

fn openai_usage(model: &str) -> Value {
    let reasoning = if model.starts_with('o') { 64 } else { 0 };
    json!({
        "prompt_tokens": 23,
        "completion_tokens": 14 + reasoning,
        "total_tokens": 37 + reasoning,
        "prompt_tokens_details": {"cached_tokens": 12, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

async fn chat_completions(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = keep(&state, "POST", "/v1/chat/completions", &headers, &body);
    let model = model_of(&body);
    if let Some(res) = misbehave(&state, &model, false).await {
        return res;
    }
    let tools = model == "fake-tools";
    let id = if tools { "chatcmpl-fakeTools0001" } else { "chatcmpl-fake0001" };
    let answered_model = response_model(&model);
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        if model == "fake-broken" {
            let whole = json!({"id": id, "object": "chat.completion"}).to_string();
            let half = whole[..whole.len() / 2].to_owned();
            return sse_like_broken_json(half);
        }
        let message = if tools {
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": "call_fake0001",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": TOOL_ARGS.concat()}
                }],
                "refusal": null,
                "annotations": []
            })
        } else {
            json!({"role": "assistant", "content": ANSWER.concat(), "refusal": null, "annotations": []})
        };
        let res = json!({
            "id": id,
            "object": "chat.completion",
            "created": CREATED,
            "model": answered_model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": if tools { "tool_calls" } else { "stop" }
            }],
            "usage": openai_usage(&model),
            "service_tier": "default",
            "system_fingerprint": "fp_fake0001"
        });
        return json_response(StatusCode::OK, &res, &[]);
    }
    let include_usage =
        body.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool)
            == Some(true);
    let chunk = |delta: Value, finish: Value| {
        let mut res = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": answered_model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake0001",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage {
            res["usage"] = Value::Null;
        }
        format!("data: {res}\n\n")
    };
    let mut events = Vec::new();
    if tools {
        events.push(chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "index": 0, "id": "call_fake0001", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}
            }], "refusal": null}),
            Value::Null,
        ));
        for piece in TOOL_ARGS {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
        events.push(chunk(json!({}), json!("tool_calls")));
    } else {
        events
            .push(chunk(json!({"role": "assistant", "content": "", "refusal": null}), Value::Null));
        for piece in ANSWER {
            events.push(chunk(json!({"content": piece}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
    }
    if include_usage {
        let usage = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": answered_model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake0001",
            "choices": [],
            "usage": openai_usage(&model)
        });
        events.push(format!("data: {usage}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_owned());
    let (delay, end, cut) = stream_shape(&model);
    if let Some(cut) = cut {
        events.truncate(cut);
    }
    sse_response(events, delay, end)
}

/// A JSON response whose body breaks off midway.
fn sse_like_broken_json(half: String) -> Response {
    let stream = futures::stream::unfold(0, move |step| {
        let half = half.clone();
        async move {
            match step {
                0 => Some((Ok(Bytes::from(half)), 1)),
                1 => {
                    // Let the first half reach the client before the connection drops.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Err(std::io::Error::other("fake upstream cut the body")), 2))
                }
                _ => None,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

async fn embeddings(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = keep(&state, "POST", "/v1/embeddings", &headers, &body);
    let model = model_of(&body);
    if let Some(res) = misbehave(&state, &model, false).await {
        return res;
    }
    let inputs = match body.get("input") {
        Some(Value::Array(items)) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| {
            let vector: Vec<f64> =
                (0..8).map(|j| ((i * 8 + j) as f64 * 0.37).sin() / 10.0).collect();
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    let res = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 5 * inputs, "total_tokens": 5 * inputs}
    });
    json_response(StatusCode::OK, &res, &[])
}

fn responses_object(model: &str, status: &str, with_output: bool) -> Value {
    let output = if with_output {
        json!([{
            "type": "message",
            "id": "msg_fake0001",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": ANSWER.concat(), "annotations": []}]
        }])
    } else {
        json!([])
    };
    let mut res = json!({
        "id": "resp_fake0001",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "model": response_model(model),
        "output": output,
        "parallel_tool_calls": true,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "usage": null
    });
    if with_output {
        res["usage"] = json!({
            "input_tokens": 23,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 14,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 37
        });
    }
    res
}

async fn responses(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = keep(&state, "POST", "/v1/responses", &headers, &body);
    let model = model_of(&body);
    if let Some(res) = misbehave(&state, &model, false).await {
        return res;
    }
    if !body.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        return json_response(StatusCode::OK, &responses_object(&model, "completed", true), &[]);
    }
    let mut events = Vec::new();
    let mut seq = 0;
    let mut push = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        events.push(format!("event: {kind}\ndata: {data}\n\n"));
    };
    push("response.created", json!({"response": responses_object(&model, "in_progress", false)}));
    for piece in ANSWER {
        push(
            "response.output_text.delta",
            json!({"item_id": "msg_fake0001", "output_index": 0, "content_index": 0, "delta": piece}),
        );
    }
    push("response.completed", json!({"response": responses_object(&model, "completed", true)}));
    let (delay, end, cut) = stream_shape(&model);
    if let Some(cut) = cut {
        events.truncate(cut);
    }
    sse_response(events, delay, end)
}

async fn messages(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = keep(&state, "POST", "/v1/messages", &headers, &body);
    let model = body.get("model").and_then(Value::as_str).unwrap_or("claude-sonnet-4-5").to_owned();
    if let Some(res) = misbehave(&state, &model, true).await {
        return res;
    }
    let tools = model == "fake-tools";
    let id = if tools { "msg_fakeTools0001" } else { "msg_fake0001" };
    let usage = json!({
        "input_tokens": 21,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 10,
        "output_tokens": 15,
        "service_tier": "standard"
    });
    let stop_reason = if tools { "tool_use" } else { "end_turn" };
    if !body.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let content = if tools {
            json!([
                {"type": "text", "text": "Let me check the weather."},
                {"type": "tool_use", "id": "toolu_fake0001", "name": "get_weather",
                 "input": {"location": "Paris, France"}}
            ])
        } else {
            json!([{"type": "text", "text": ANSWER.concat()}])
        };
        let res = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage
        });
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header("request-id", "req_fake_anthropic_0001")
            .body(Body::from(res.to_string()))
            .unwrap_or_default();
    }
    let mut events = Vec::new();
    let mut push =
        |kind: &str, data: Value| events.push(format!("event: {kind}\ndata: {data}\n\n"));
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    push(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": start_usage
        }}),
    );
    push(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    push("ping", json!({"type": "ping"}));
    let text: Vec<&str> =
        if tools { vec!["Let me check", " the weather."] } else { ANSWER.to_vec() };
    for piece in text {
        push(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
        );
    }
    push("content_block_stop", json!({"type": "content_block_stop", "index": 0}));
    if tools {
        push(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_fake0001", "name": "get_weather", "input": {}
            }}),
        );
        for piece in TOOL_ARGS {
            push(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                       "delta": {"type": "input_json_delta", "partial_json": piece}}),
            );
        }
        push("content_block_stop", json!({"type": "content_block_stop", "index": 1}));
    }
    push(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": 15}}),
    );
    push("message_stop", json!({"type": "message_stop"}));
    let (delay, end, cut) = stream_shape(&model);
    if let Some(cut) = cut {
        events.truncate(cut);
    }
    sse_response(events, delay, end)
}

async fn models(State(state): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    keep(&state, "GET", "/v1/models", &headers, &Bytes::new());
    let res = json!({
        "object": "list",
        "data": [
            {"id": "gpt-4o", "object": "model", "created": 1_715_367_049, "owned_by": "system"},
            {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system"},
            {"id": "text-embedding-3-small", "object": "model", "created": 1_705_948_997, "owned_by": "system"}
        ]
    });
    json_response(StatusCode::OK, &res, &[])
}
