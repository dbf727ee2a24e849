//! The request path: resolve the route, forward the call upstream (with retries and fallbacks),
//! hand the response back to the client unchanged (streams chunk by chunk as they arrive), and
//! describe the call as a span for the recorder.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use model::{AnyValue, Event, KeyValue, ProjectId, RawSpan, Resource, Scope, SpanId, SpanKind};
use serde_json::Value;

use crate::config::{GatewayConfig, RouteConfig, RouteKind};
use crate::context::{CallerMetadata, TraceContext, new_span_id};
use crate::genai::{RequestInfo, ResponseInfo};
use crate::metrics::GatewayMetrics;
use crate::recorder::{Record, Recorder};
use crate::sse::{Accumulator, SseTap};
use crate::{Error, anthropic, openai};

pub(crate) struct Inner {
    pub config: GatewayConfig,
    /// `config.routes`, shared, so a call names its route without copying it.
    pub routes: BTreeMap<String, Arc<RouteConfig>>,
    pub auth: auth::Auth,
    pub client: reqwest::Client,
    pub recorder: Recorder,
    pub metrics: GatewayMetrics,
}

/// The endpoints the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
    Responses,
    Messages,
}

impl Endpoint {
    fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Responses => "/responses",
            Endpoint::Messages => "/messages",
        }
    }

    fn kind(self) -> RouteKind {
        match self {
            Endpoint::Messages => RouteKind::Anthropic,
            _ => RouteKind::OpenAi,
        }
    }

    fn request_info(self, body: &Value) -> RequestInfo {
        match self {
            Endpoint::ChatCompletions => openai::chat_request(body),
            Endpoint::Embeddings => openai::embeddings_request(body),
            Endpoint::Responses => openai::responses_request(body),
            Endpoint::Messages => anthropic::messages_request(body),
        }
    }

    fn response_info(self, body: &Value) -> ResponseInfo {
        match self {
            Endpoint::ChatCompletions => openai::chat_response(body),
            Endpoint::Embeddings => openai::embeddings_response(body),
            Endpoint::Responses => openai::responses_response(body),
            Endpoint::Messages => anthropic::messages_response(body),
        }
    }

    fn accumulator(self) -> Accumulator {
        match self {
            Endpoint::Messages => Accumulator::Messages(Default::default()),
            Endpoint::Responses => Accumulator::Responses(Default::default()),
            _ => Accumulator::Chat(Default::default()),
        }
    }
}

/// Picks the route for a request's `model`: `"ROUTE/model"`, `"ROUTE"`, or the endpoint's
/// default route. Returns the route and the model to send upstream.
pub(crate) fn resolve<'a>(
    config: &'a GatewayConfig,
    endpoint: Endpoint,
    model: &str,
) -> Result<(&'a RouteConfig, String), Error> {
    let default = match endpoint.kind() {
        RouteKind::OpenAi => &config.default_route,
        RouteKind::Anthropic => &config.default_anthropic_route,
    };
    let (route, upstream_model) = if let Some((prefix, rest)) = model.split_once('/') {
        match config.routes.get(prefix) {
            Some(route) => (route, rest.to_owned()),
            None => {
                return Err(Error::UnknownRoute {
                    name: prefix.to_owned(),
                    routes: config.route_names().join(", "),
                });
            }
        }
    } else if let Some(route) = config.routes.get(model) {
        (route, route.model.clone().unwrap_or_default())
    } else {
        match config.routes.get(default) {
            Some(route) => (route, model.to_owned()),
            None => {
                return Err(Error::UnknownRoute {
                    name: default.clone(),
                    routes: config.route_names().join(", "),
                });
            }
        }
    };
    if route.kind != endpoint.kind() {
        return Err(Error::WrongRouteKind {
            route: route.name.clone(),
            kind: route.kind.as_str(),
            needed: endpoint.kind().as_str(),
        });
    }
    let upstream_model = route.model.clone().unwrap_or(upstream_model);
    if upstream_model.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "route {:?} has no model of its own; name one as \"{}/MODEL\"",
            route.name, route.name
        )));
    }
    Ok((route, upstream_model))
}

/// An error answered by the gateway itself, shaped like the provider's own errors.
pub(crate) fn error_response(
    kind: RouteKind,
    error: &Error,
    ids: Option<(&TraceContext, SpanId)>,
) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let error_type = error.error_type();
    let message = error.to_string();
    let body = match kind {
        RouteKind::OpenAi => serde_json::json!({
            "error": {"message": message, "type": error_type, "param": null, "code": null}
        }),
        RouteKind::Anthropic => serde_json::json!({
            "type": "error",
            "error": {"type": error_type, "message": message}
        }),
    };
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some((trace, span_id)) = ids {
        add_id_headers(res.headers_mut(), trace, span_id);
    }
    res
}

fn add_id_headers(headers: &mut HeaderMap, trace: &TraceContext, span_id: SpanId) {
    if let Ok(value) = HeaderValue::from_str(&trace.trace_id.to_hex()) {
        headers.insert("x-loupe-trace-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(&span_id.to_hex()) {
        headers.insert("x-loupe-span-id", value);
    }
}

/// Request headers never forwarded upstream: hop-by-hop headers, ones the HTTP client sets, and
/// the gateway's own.
fn forward_request_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    !matches!(
        name,
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "accept-encoding"
            | "traceparent"
            | "tracestate"
    ) && !name.starts_with("x-loupe-")
}

/// Response headers never forwarded to the client.
fn forward_response_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "content-encoding"
    )
}

/// One attempt at the upstream, for the child spans of retried or fallen-back calls.
struct Attempt {
    route: String,
    start_ns: u64,
    end_ns: u64,
    status: Option<u16>,
    error: Option<String>,
}

/// Everything needed to describe the call once it ends.
struct Call {
    inner: Arc<Inner>,
    endpoint: Endpoint,
    trace: TraceContext,
    span_id: SpanId,
    project: ProjectId,
    started: Instant,
    start_ns: u64,
    /// Attributes known only at the end (stream outcome, time to first chunk).
    extra: Vec<KeyValue>,
    /// When the call ended for the client, if recorded later: (unix nanos, since start).
    ended: Option<(u64, Duration)>,
    meta: CallerMetadata,
    /// The final route's name, provider, host and port.
    route: Arc<RouteConfig>,
    /// The request body as sent upstream (to the final route). Parsed for the recording only
    /// on the recording thread, so reading it costs the caller no latency.
    upstream_body: Bytes,
    attempts: Vec<Attempt>,
    status: Option<u16>,
    /// Set once the call is recorded; a call dropped unrecorded was abandoned by its client
    /// (which also cancelled the upstream request).
    recorded: bool,
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let call = Call {
            inner: self.inner.clone(),
            endpoint: self.endpoint,
            trace: self.trace.clone(),
            span_id: self.span_id,
            project: self.project.clone(),
            started: self.started,
            start_ns: self.start_ns,
            extra: std::mem::take(&mut self.extra),
            ended: self.ended,
            meta: std::mem::take(&mut self.meta),
            route: self.route.clone(),
            upstream_body: self.upstream_body.clone(),
            attempts: std::mem::take(&mut self.attempts),
            status: self.status,
            recorded: false,
        };
        let info = ResponseInfo {
            error: Some((
                Outcome::ClientDisconnected.as_str().to_owned(),
                "client disconnected before the response".to_owned(),
            )),
            ..ResponseInfo::default()
        };
        finish(call, Reply::Info(info), Outcome::ClientDisconnected, None, Vec::new());
    }
}

/// How a call ended, beyond its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    ClientDisconnected,
    UpstreamDisconnected,
    Timeout,
    ConnectFailed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientDisconnected => "client_disconnected",
            Outcome::UpstreamDisconnected => "upstream_disconnected",
            Outcome::Timeout => "timeout",
            Outcome::ConnectFailed => "connect_failed",
        }
    }
}

pub(crate) fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The few request fields the request path needs; the rest of the body is skipped unparsed
/// (the recording thread reads it in full later).
#[derive(serde::Deserialize)]
struct RequestHead {
    model: Option<Value>,
    stream: Option<Value>,
    stream_options: Option<Value>,
}

/// Where the caller's Loupe key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySource {
    /// `x-loupe-api-key`.
    LoupeHeader,
    /// `Authorization: Bearer lp_...` or `x-api-key: lp_...`, the provider's headers.
    ProviderHeader(&'static str),
}

/// Whether a request header carries a Loupe key (`lp_...`) in a provider's credential header:
/// such a header is the caller's Loupe key and is never forwarded upstream.
fn carries_loupe_key(name: &HeaderName, value: &HeaderValue) -> bool {
    let token = if name == http::header::AUTHORIZATION {
        value.to_str().ok().and_then(|v| auth::parse_authorization(v).ok())
    } else if name == "x-api-key" {
        value.to_str().ok().map(str::trim)
    } else {
        None
    };
    token.is_some_and(|t| t.starts_with(auth::KEY_PREFIX))
}

/// The caller's Loupe key: `x-loupe-api-key`, else an `lp_` key in `Authorization` (bearer) or
/// `x-api-key`.
fn loupe_key(headers: &HeaderMap) -> Result<Option<(&str, KeySource)>, Error> {
    if let Some(value) = headers.get(auth::API_KEY_HEADER) {
        let key = value
            .to_str()
            .map_err(|_| Error::Auth(auth::Error::MalformedHeader("not ascii")))?
            .trim();
        return Ok(Some((key, KeySource::LoupeHeader)));
    }
    for name in [http::header::AUTHORIZATION.as_str(), "x-api-key"] {
        if let Some(value) = headers.get(name)
            && carries_loupe_key(&HeaderName::from_static(name), value)
        {
            let value = value.to_str().unwrap_or_default();
            let key = if name == "x-api-key" {
                value.trim()
            } else {
                // `carries_loupe_key` parsed it already, so this cannot fail.
                auth::parse_authorization(value).unwrap_or_default()
            };
            return Ok(Some((key, KeySource::ProviderHeader(name))));
        }
    }
    Ok(None)
}

/// The call's project: the Loupe key's project (which `x-loupe-project` may only repeat), else
/// `x-loupe-project` or the default project when the server takes calls without keys.
async fn project(
    inner: &Inner,
    headers: &HeaderMap,
    route: &RouteConfig,
    meta: &CallerMetadata,
) -> Result<ProjectId, Error> {
    let Some((key, source)) = loupe_key(headers)? else {
        let project = match inner.auth.resolve(None).await {
            Err(auth::Error::MissingKey) => return Err(Error::MissingLoupeKey),
            res => res?,
        };
        return Ok(meta.project.clone().unwrap_or(project));
    };
    if let KeySource::ProviderHeader(header) = source
        && route.api_key.is_none()
    {
        return Err(Error::LoupeKeyInProviderHeader { route: route.name.clone(), header });
    }
    let key_project = inner.auth.resolve(Some(key)).await?;
    match &meta.project {
        Some(requested) if *requested != key_project => Err(Error::WrongProject {
            key_project: key_project.as_str().to_owned(),
            requested: requested.as_str().to_owned(),
        }),
        _ => Ok(key_project),
    }
}

/// Handles one LLM call end to end.
pub(crate) async fn handle(
    inner: Arc<Inner>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let start_ns = unix_nanos();
    let trace = TraceContext::from_headers(&headers);
    let span_id = new_span_id();
    let kind = endpoint.kind();
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let head: RequestHead = match serde_json::from_slice(&body) {
        Ok(head) if is_object => head,
        Ok(_) => {
            let error = Error::InvalidRequest("request body must be a JSON object".to_owned());
            return error_response(kind, &error, Some((&trace, span_id)));
        }
        Err(e) if is_object || e.is_syntax() || e.is_eof() => {
            let error = Error::InvalidRequest(format!("request body is not valid JSON: {e}"));
            return error_response(kind, &error, Some((&trace, span_id)));
        }
        Err(_) => {
            let error = Error::InvalidRequest("request body must be a JSON object".to_owned());
            return error_response(kind, &error, Some((&trace, span_id)));
        }
    };
    let Some(Value::String(requested_model)) = head.model else {
        let error = Error::InvalidRequest("request body has no \"model\"".to_owned());
        return error_response(kind, &error, Some((&trace, span_id)));
    };
    let (route, upstream_model) = match resolve(&inner.config, endpoint, &requested_model) {
        Ok(it) => it,
        Err(error) => return error_response(kind, &error, Some((&trace, span_id))),
    };
    let meta = CallerMetadata::from_headers(&headers);
    let project = match project(&inner, &headers, route, &meta).await {
        Ok(project) => project,
        Err(error) => return error_response(kind, &error, Some((&trace, span_id))),
    };
    let stream = head.stream.as_ref().and_then(Value::as_bool).unwrap_or(false);
    // Ask for usage the client did not ask for, and remove it from what the client receives.
    let strip_usage = endpoint == Endpoint::ChatCompletions
        && stream
        && head
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            != Some(true);
    // The client's bytes go upstream unchanged unless the model or stream options change; only
    // then is the whole body parsed on the request path.
    let upstream_body = if upstream_model != requested_model || strip_usage {
        let mut body_json: Value = match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(e) => {
                let error = Error::InvalidRequest(format!("request body is not valid JSON: {e}"));
                return error_response(kind, &error, Some((&trace, span_id)));
            }
        };
        body_json["model"] = Value::String(upstream_model);
        if strip_usage {
            match body_json.get_mut("stream_options") {
                Some(Value::Object(options)) => {
                    options.insert("include_usage".to_owned(), Value::Bool(true));
                }
                _ => {
                    body_json["stream_options"] = serde_json::json!({"include_usage": true});
                }
            }
        }
        Bytes::from(body_json.to_string())
    } else {
        body
    };

    // The plan: the route with its retries, then each fallback with its retries.
    let mut plan: Vec<(Arc<RouteConfig>, u32)> = Vec::new();
    let routes = std::iter::once(&route.name)
        .chain(route.fallbacks.iter())
        .filter_map(|name| inner.routes.get(name).cloned());
    for candidate in routes {
        for attempt in 0..=candidate.retries {
            plan.push((candidate.clone(), attempt));
        }
    }

    let mut call = Call {
        inner: inner.clone(),
        endpoint,
        trace,
        span_id,
        project,
        started,
        start_ns,
        extra: Vec::new(),
        ended: None,
        meta,
        route: plan[0].0.clone(),
        upstream_body: upstream_body.clone(),
        attempts: Vec::new(),
        status: None,
        recorded: false,
    };
    let deadline = started + inner.config.request_timeout;
    let n_steps = plan.len();
    let mut last_error: Option<(Outcome, Error)> = None;
    for (step, (candidate, attempt)) in plan.into_iter().enumerate() {
        let last = step + 1 == n_steps;
        if attempt > 0 {
            let backoff = candidate.retry_backoff * 2u32.saturating_pow(attempt - 1);
            tokio::time::sleep(backoff).await;
        }
        let body = match &candidate.model {
            Some(model) if step > 0 => {
                let mut rewritten: Value =
                    serde_json::from_slice(&upstream_body).unwrap_or(Value::Null);
                rewritten["model"] = Value::String(model.clone());
                Bytes::from(rewritten.to_string())
            }
            _ => upstream_body.clone(),
        };
        call.route = candidate.clone();
        call.upstream_body = body.clone();
        let attempt_start_ns = unix_nanos();
        let upstream_started = Instant::now();
        let sent =
            send(&inner, &candidate, endpoint, &headers, body, &call.trace, span_id, deadline)
                .await;
        match sent {
            Ok(response) if is_retryable(response.status()) && !last => {
                call.attempts.push(Attempt {
                    route: candidate.name.clone(),
                    start_ns: attempt_start_ns,
                    end_ns: unix_nanos(),
                    status: Some(response.status().as_u16()),
                    error: None,
                });
                drop(response);
            }
            Ok(response) => {
                if !call.attempts.is_empty() {
                    call.attempts.push(Attempt {
                        route: candidate.name.clone(),
                        start_ns: attempt_start_ns,
                        end_ns: unix_nanos(),
                        status: Some(response.status().as_u16()),
                        error: None,
                    });
                }
                return respond(call, response, upstream_started, strip_usage, deadline).await;
            }
            Err((outcome, error)) => {
                call.attempts.push(Attempt {
                    route: candidate.name.clone(),
                    start_ns: attempt_start_ns,
                    end_ns: unix_nanos(),
                    status: None,
                    error: Some(error.to_string()),
                });
                last_error = Some((outcome, error));
                if outcome == Outcome::Timeout {
                    break;
                }
            }
        }
    }
    let (outcome, error) = last_error.unwrap_or((
        Outcome::ConnectFailed,
        Error::Upstream("no upstream attempt was made".to_owned()),
    ));
    if call.attempts.len() == 1 {
        call.attempts.clear();
    }
    let response = error_response(kind, &error, Some((&call.trace, call.span_id)));
    call.status = None;
    let info = ResponseInfo {
        error: Some((outcome.as_str().to_owned(), error.to_string())),
        ..ResponseInfo::default()
    };
    finish(call, Reply::Info(info), outcome, None, Vec::new());
    response
}

#[allow(clippy::too_many_arguments)]
async fn send(
    inner: &Inner,
    route: &RouteConfig,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Bytes,
    trace: &TraceContext,
    span_id: SpanId,
    deadline: Instant,
) -> Result<reqwest::Response, (Outcome, Error)> {
    let url = format!("{}{}", route.base_url, endpoint.upstream_path());
    let mut upstream_headers = HeaderMap::with_capacity(headers.len() + 2);
    for (name, value) in headers {
        if !forward_request_header(name) {
            continue;
        }
        if route.api_key.is_some() && (name == http::header::AUTHORIZATION || name == "x-api-key") {
            continue;
        }
        if carries_loupe_key(name, value) {
            continue;
        }
        upstream_headers.append(name.clone(), value.clone());
    }
    if let Some(key) = &route.api_key {
        let (name, value) = match route.kind {
            RouteKind::OpenAi => (http::header::AUTHORIZATION, format!("Bearer {key}")),
            RouteKind::Anthropic => (HeaderName::from_static("x-api-key"), key.clone()),
        };
        if let Ok(mut value) = HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            upstream_headers.insert(name, value);
        }
    }
    if route.kind == RouteKind::Anthropic && !upstream_headers.contains_key("anthropic-version") {
        upstream_headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    }
    if let Ok(value) = HeaderValue::from_str(&trace.child_traceparent(span_id)) {
        upstream_headers.insert("traceparent", value);
    }
    if !trace.trace_state.is_empty()
        && let Ok(value) = HeaderValue::from_str(&trace.trace_state)
    {
        upstream_headers.insert("tracestate", value);
    }
    upstream_headers
        .entry(http::header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/json"));
    let request = inner.client.post(url).headers(upstream_headers).body(body);
    let remaining = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(remaining, request.send()).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) if error.is_timeout() => {
            Err((Outcome::Timeout, Error::Timeout(route.name.clone())))
        }
        Ok(Err(error)) => Err((
            Outcome::ConnectFailed,
            Error::Upstream(format!("route {:?}: {}", route.name, error_chain(&error))),
        )),
        Err(_) => Err((Outcome::Timeout, Error::Timeout(route.name.clone()))),
    }
}

/// The error and its sources, without the URL (which could carry a key in its query).
fn error_chain(error: &reqwest::Error) -> String {
    let mut res = error.without_url_ref();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        res.push_str(": ");
        res.push_str(&cause.to_string());
        source = cause.source();
    }
    res
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        if self.is_connect() {
            "cannot connect to upstream".to_owned()
        } else if self.is_body() || self.is_decode() {
            "upstream response body failed".to_owned()
        } else {
            "upstream request failed".to_owned()
        }
    }
}

async fn respond(
    mut call: Call,
    response: reqwest::Response,
    upstream_started: Instant,
    strip_usage: bool,
    deadline: Instant,
) -> Response {
    let status = response.status();
    call.status = Some(status.as_u16());
    let is_stream = status.is_success()
        && response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut builder = Response::builder().status(status);
    if let Some(headers) = builder.headers_mut() {
        for (name, value) in response.headers() {
            if forward_response_header(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        add_id_headers(headers, &call.trace, call.span_id);
    }
    if is_stream {
        let tap = SseTap::new(call.endpoint.accumulator(), strip_usage);
        let idle_timeout = call.inner.config.stream_idle_timeout;
        let stream = RecordingStream {
            upstream: Box::pin(response.bytes_stream()),
            tap,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
            first_content: None,
            upstream_started,
            call: Some(call),
        };
        return builder.body(Body::from_stream(stream)).unwrap_or_else(|_| {
            // Only reachable with an invalid header, and every header comes from a parsed
            // response, so this never happens in practice.
            Response::new(Body::empty())
        });
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let bytes = match tokio::time::timeout(remaining, response.bytes()).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => {
            let error =
                Error::Upstream(format!("route {:?}: {}", call.route.name, error_chain(&error)));
            let response =
                error_response(call.endpoint.kind(), &error, Some((&call.trace, call.span_id)));
            let info = ResponseInfo {
                error: Some(("upstream_disconnected".to_owned(), error.to_string())),
                ..ResponseInfo::default()
            };
            let upstream_time = Some(upstream_started.elapsed());
            finish(
                call,
                Reply::Info(info),
                Outcome::UpstreamDisconnected,
                upstream_time,
                Vec::new(),
            );
            return response;
        }
        Err(_) => {
            let error = Error::Timeout(call.route.name.clone());
            let response =
                error_response(call.endpoint.kind(), &error, Some((&call.trace, call.span_id)));
            let info = ResponseInfo {
                error: Some(("timeout".to_owned(), error.to_string())),
                ..ResponseInfo::default()
            };
            let upstream_time = Some(upstream_started.elapsed());
            finish(call, Reply::Info(info), Outcome::Timeout, upstream_time, Vec::new());
            return response;
        }
    };
    let upstream_time = upstream_started.elapsed();
    call.ended = Some((unix_nanos(), call.started.elapsed()));
    let response =
        builder.body(Body::from(bytes.clone())).unwrap_or_else(|_| Response::new(Body::empty()));
    // Reading the response for the recording happens on the recording thread, after the client
    // has its answer.
    finish(
        call,
        Reply::Body { status, bytes },
        Outcome::Completed,
        Some(upstream_time),
        Vec::new(),
    );
    response
}

/// What the call's response said, read on the recording thread.
enum Reply {
    /// Known already (the gateway's own errors, a disconnected client).
    Info(ResponseInfo),
    /// A complete response body.
    Body { status: StatusCode, bytes: Bytes },
    /// What a stream's events said; `message` says why it ended early.
    Stream { accumulator: Accumulator, saw_end: bool, message: Option<String> },
}

impl Reply {
    /// The response's description, and its body to record (complete responses only).
    fn read(self, call: &Call, outcome: Outcome) -> (ResponseInfo, Option<String>) {
        match self {
            Reply::Info(info) => (info, None),
            Reply::Body { status, bytes } => {
                let info = match serde_json::from_slice::<Value>(&bytes) {
                    Ok(value) if status.is_success() => call.endpoint.response_info(&value),
                    Ok(value) => ResponseInfo {
                        error: crate::genai::error_from_body(&value),
                        ..ResponseInfo::default()
                    },
                    Err(_) if status.is_success() => ResponseInfo {
                        error: Some((
                            "malformed_response".to_owned(),
                            "upstream response is not valid JSON".to_owned(),
                        )),
                        ..ResponseInfo::default()
                    },
                    Err(_) => ResponseInfo::default(),
                };
                let max_body = call.inner.config.max_recorded_body_bytes;
                let body = (max_body > 0).then(|| truncated(&bytes, max_body));
                (info, body)
            }
            Reply::Stream { accumulator, saw_end, message } => {
                let mut info = accumulator.finish();
                if let Some(message) = message
                    && info.error.is_none()
                {
                    info.error = Some((outcome.as_str().to_owned(), message));
                }
                if outcome == Outcome::Completed && !saw_end {
                    info.attributes.push(KeyValue::string(
                        "loupe.gateway.warning",
                        "stream ended without its final event",
                    ));
                }
                (info, None)
            }
        }
    }
}

fn truncated(bytes: &[u8], max: usize) -> String {
    let cut = if bytes.len() > max { &bytes[..max] } else { bytes };
    String::from_utf8_lossy(cut).into_owned()
}

/// The client's view of a streamed response: upstream bytes passed on as they arrive, read
/// on the way for the recording. Dropped early means the client went away, which also drops
/// (and so cancels) the upstream request.
struct RecordingStream {
    upstream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    tap: SseTap,
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_timeout: Duration,
    first_content: Option<Instant>,
    upstream_started: Instant,
    /// `None` once recorded.
    call: Option<Call>,
}

impl RecordingStream {
    fn end(&mut self, outcome: Outcome, message: Option<String>) {
        let Some(mut call) = self.call.take() else { return };
        // A cheap placeholder: the stream is over, and the accumulator is read off the path.
        let accumulator =
            std::mem::replace(&mut self.tap.accumulator, Accumulator::Chat(Default::default()));
        let ttft = self.first_content.map(|t| t.saturating_duration_since(call.started));
        let upstream_time = self.upstream_started.elapsed();
        let mut events = Vec::new();
        call.extra.push(KeyValue::string("loupe.gateway.stream.outcome", outcome.as_str()));
        if let Some(ttft) = ttft {
            call.extra.push(KeyValue::new(
                "gen_ai.response.time_to_first_chunk",
                AnyValue::Double(ttft.as_secs_f64()),
            ));
            events.push(Event {
                time_unix_nano: call.start_ns + ttft.as_nanos() as u64,
                name: "gen_ai.first_token".to_owned(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
            });
        }
        let reply = Reply::Stream { accumulator, saw_end: self.tap.saw_end, message };
        finish(call, reply, outcome, Some(upstream_time), events);
    }
}

impl Stream for RecordingStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.call.is_none() {
            return Poll::Ready(None);
        }
        loop {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let deadline = tokio::time::Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                    let (out, has_content) = this.tap.push(chunk);
                    if has_content && this.first_content.is_none() {
                        this.first_content = Some(Instant::now());
                    }
                    if out.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(out)));
                }
                Poll::Ready(Some(Err(error))) => {
                    let rest = this.tap.finish();
                    let message = format!("upstream stream broke: {}", error_chain(&error));
                    this.end(Outcome::UpstreamDisconnected, Some(message.clone()));
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(rest)));
                    }
                    return Poll::Ready(Some(Err(std::io::Error::other(message))));
                }
                Poll::Ready(None) => {
                    let rest = this.tap.finish();
                    this.end(Outcome::Completed, None);
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(rest)));
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let message = format!(
                            "no data from upstream for {:.1}s",
                            this.idle_timeout.as_secs_f64()
                        );
                        this.end(Outcome::Timeout, Some(message.clone()));
                        return Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            message,
                        ))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Drop for RecordingStream {
    fn drop(&mut self) {
        if self.call.is_some() {
            self.end(
                Outcome::ClientDisconnected,
                Some("client disconnected before the stream ended".to_owned()),
            );
        }
    }
}

/// Hands the ended call to the recorder; the span is built on the recording thread.
fn finish(
    mut call: Call,
    reply: Reply,
    outcome: Outcome,
    upstream_time: Option<Duration>,
    events: Vec<Event>,
) {
    call.recorded = true;
    if call.ended.is_none() {
        call.ended = Some((unix_nanos(), call.started.elapsed()));
    }
    let inner = call.inner.clone();
    inner.recorder.record(Box::new(move || build(call, reply, outcome, upstream_time, events)));
}

/// Describes an ended call as its spans (the call, then one per attempt when there were
/// several), and counts it on `/metrics`.
fn build(
    mut call: Call,
    reply: Reply,
    outcome: Outcome,
    upstream_time: Option<Duration>,
    events: Vec<Event>,
) -> Record {
    let (info, response_body) = reply.read(&call, outcome);
    let info = &info;
    let (end_ns, total) = call.ended.unwrap_or_else(|| (unix_nanos(), call.started.elapsed()));
    let end_ns = end_ns.max(call.start_ns);
    let metrics = &call.inner.metrics;
    let labels = metrics.route(&call.route.name);
    metrics.requests.get_or_create(&labels).inc();
    let http_error = call.status.is_none_or(|s| s >= 400);
    let failed = http_error || outcome != Outcome::Completed || info.error.is_some();
    if failed {
        metrics.errors.get_or_create(&labels).inc();
    }
    if let Some(upstream_time) = upstream_time {
        metrics.upstream_latency.get_or_create(&labels).observe(upstream_time.as_secs_f64());
        if outcome == Outcome::Completed {
            metrics.overhead.observe(total.saturating_sub(upstream_time).as_secs_f64());
        }
    }

    let request_body: Value = serde_json::from_slice(&call.upstream_body).unwrap_or(Value::Null);
    if call.endpoint.kind() == RouteKind::OpenAi {
        call.meta.merge_body(&request_body);
    }
    let request = call.endpoint.request_info(&request_body);
    let mut attributes = Vec::with_capacity(40);
    request.push_attributes(&mut attributes);
    attributes.extend(call.extra.iter().cloned());
    attributes.push(KeyValue::string("gen_ai.provider.name", &call.route.provider));
    attributes.push(KeyValue::string("server.address", &call.route.host));
    attributes.push(KeyValue::int("server.port", i64::from(call.route.port)));
    attributes.push(KeyValue::string("loupe.gateway.route", &call.route.name));
    if let Some(status) = call.status {
        attributes.push(KeyValue::int("http.response.status_code", i64::from(status)));
    }
    info.push_attributes(&mut attributes);
    let mut status = model::Status::default();
    if failed {
        let error_type = match (call.status, outcome) {
            (_, Outcome::ClientDisconnected) => "client_disconnected".to_owned(),
            (_, Outcome::UpstreamDisconnected) => "upstream_disconnected".to_owned(),
            (_, Outcome::Timeout) => "timeout".to_owned(),
            (_, Outcome::ConnectFailed) => "connect_failed".to_owned(),
            (Some(code), Outcome::Completed) if code >= 400 => code.to_string(),
            _ => info.error.as_ref().map(|e| e.0.clone()).unwrap_or_else(|| "error".to_owned()),
        };
        attributes.push(KeyValue::string("error.type", error_type));
        if let Some((kind, _)) = &info.error
            && call.status.is_some_and(|s| s >= 400)
        {
            attributes.push(KeyValue::string("loupe.gateway.upstream_error.type", kind));
        }
        status = model::Status {
            code: model::StatusCode::Error,
            message: info.error.as_ref().map(|e| e.1.clone()).unwrap_or_else(|| {
                format!("upstream answered {}", call.status.unwrap_or_default())
            }),
        };
    }
    call.meta.attributes(&mut attributes);
    // A limit of 0 turns the raw bodies off; messages, parameters and usage stay.
    let max_body = call.inner.config.max_recorded_body_bytes;
    if max_body > 0 {
        attributes.push(KeyValue::string(
            "loupe.gateway.request.body",
            truncated(&call.upstream_body, max_body),
        ));
        if let Some(body) = response_body {
            attributes.push(KeyValue::string("loupe.gateway.response.body", body));
        }
    }
    let name = match &request.model {
        Some(model) => format!("{} {model}", request.operation),
        None => request.operation.to_owned(),
    };
    let resource = Resource {
        attributes: vec![KeyValue::string("service.name", "loupe-gateway")],
        dropped_attributes_count: 0,
    };
    let scope = Scope {
        name: "loupe.gateway".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    };
    let mut spans = Vec::with_capacity(1 + call.attempts.len());
    for (n, attempt) in call.attempts.iter().enumerate() {
        let mut attempt_attributes = vec![
            KeyValue::string("loupe.gateway.route", &attempt.route),
            KeyValue::int("loupe.gateway.attempt", n as i64 + 1),
        ];
        let mut attempt_status = model::Status::default();
        if let Some(code) = attempt.status {
            attempt_attributes.push(KeyValue::int("http.response.status_code", i64::from(code)));
            if code >= 400 {
                attempt_attributes.push(KeyValue::string("error.type", code.to_string()));
                attempt_status = model::Status {
                    code: model::StatusCode::Error,
                    message: format!("upstream answered {code}"),
                };
            }
        }
        if let Some(error) = &attempt.error {
            attempt_attributes.push(KeyValue::string("error.type", "connect_failed"));
            attempt_status =
                model::Status { code: model::StatusCode::Error, message: error.clone() };
        }
        spans.push(RawSpan {
            trace_id: call.trace.trace_id,
            span_id: new_span_id(),
            parent_span_id: Some(call.span_id),
            trace_state: call.trace.trace_state.clone(),
            flags: call.trace.flags,
            name: format!("attempt {} {}", n + 1, attempt.route),
            kind: SpanKind::Client,
            start_time_unix_nano: attempt.start_ns,
            end_time_unix_nano: attempt.end_ns.max(attempt.start_ns),
            attributes: attempt_attributes,
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: attempt_status,
            resource: resource.clone(),
            scope: scope.clone(),
            schema_url: String::new(),
        });
    }
    spans.insert(
        0,
        RawSpan {
            trace_id: call.trace.trace_id,
            span_id: call.span_id,
            parent_span_id: call.trace.parent_span_id,
            trace_state: call.trace.trace_state.clone(),
            flags: call.trace.flags,
            name,
            kind: SpanKind::Client,
            start_time_unix_nano: call.start_ns,
            end_time_unix_nano: end_ns,
            attributes,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status,
            resource,
            scope,
            schema_url: String::new(),
        },
    );
    Record { project: call.project.clone(), spans }
}

/// `GET /v1/models`: the default route's model list, passed through.
pub(crate) async fn models(inner: Arc<Inner>, headers: HeaderMap) -> Response {
    let Some(route) = inner.config.routes.get(&inner.config.default_route) else {
        let error = Error::UnknownRoute {
            name: inner.config.default_route.clone(),
            routes: inner.config.route_names().join(", "),
        };
        return error_response(RouteKind::OpenAi, &error, None);
    };
    let meta = CallerMetadata::from_headers(&headers);
    if let Err(error) = project(&inner, &headers, route, &meta).await {
        return error_response(RouteKind::OpenAi, &error, None);
    }
    let mut request = inner.client.get(format!("{}/models", route.base_url));
    for (name, value) in &headers {
        if forward_request_header(name)
            && !(route.api_key.is_some() && name == http::header::AUTHORIZATION)
            && !carries_loupe_key(name, value)
        {
            request = request.header(name, value);
        }
    }
    if let Some(key) = &route.api_key {
        request = request.bearer_auth(key);
    }
    let sent = tokio::time::timeout(inner.config.request_timeout, async {
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    })
    .await;
    match sent {
        Ok(Ok((status, upstream_headers, bytes))) => {
            let mut builder = Response::builder().status(status);
            if let Some(headers) = builder.headers_mut() {
                for (name, value) in &upstream_headers {
                    if forward_response_header(name) {
                        headers.append(name.clone(), value.clone());
                    }
                }
            }
            builder.body(Body::from(bytes)).unwrap_or_else(|_| Response::new(Body::empty()))
        }
        Ok(Err(error)) => {
            let error = Error::Upstream(format!("route {:?}: {}", route.name, error_chain(&error)));
            error_response(RouteKind::OpenAi, &error, None)
        }
        Err(_) => error_response(RouteKind::OpenAi, &Error::Timeout(route.name.clone()), None),
    }
}
