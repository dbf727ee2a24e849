//! Building OTLP requests with the `opentelemetry-proto` types, for tests and benchmarks.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

pub fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.to_owned())) }),
        ..KeyValue::default()
    }
}

pub fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(Value::IntValue(value)) }),
        ..KeyValue::default()
    }
}

/// A span of `trace_id` with the given ids and times; attributes and status added by the caller.
pub fn span(
    trace_id: [u8; 16],
    span_id: u64,
    parent: Option<u64>,
    name: &str,
    start_ns: u64,
    end_ns: u64,
) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.to_owned(),
        kind: 1,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: end_ns,
        ..Span::default()
    }
}

pub fn error_status(message: &str) -> Option<Status> {
    Some(Status { message: message.to_owned(), code: 2 })
}

/// One resource (with `service.name`) and one scope holding `spans`.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", service)],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "loupe-tests".to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

pub fn encode(request: &ExportTraceServiceRequest) -> Vec<u8> {
    request.encode_to_vec()
}

/// A small agent trace: a root, an LLM call with tokens and messages, and a tool call.
pub fn agent_trace(trace_id: [u8; 16], base_ns: u64) -> Vec<Span> {
    let mut root = span(trace_id, 1, None, "agent.run", base_ns, base_ns + 900_000_000);
    root.attributes.push(string("session.id", "sess-1"));
    let mut llm =
        span(trace_id, 2, Some(1), "chat gpt-4o", base_ns + 10_000_000, base_ns + 610_000_000);
    llm.kind = 3;
    llm.attributes.extend([
        string("gen_ai.operation.name", "chat"),
        string("gen_ai.provider.name", "openai"),
        string("gen_ai.request.model", "gpt-4o"),
        int("gen_ai.usage.input_tokens", 120),
        int("gen_ai.usage.output_tokens", 40),
        string(
            "gen_ai.input.messages",
            r#"[{"role":"user","parts":[{"type":"text","content":"what is the refund window?"}]}]"#,
        ),
        string(
            "gen_ai.output.messages",
            r#"[{"role":"assistant","parts":[{"type":"text","content":"thirty days"}],"finish_reason":"stop"}]"#,
        ),
    ]);
    let mut tool = span(
        trace_id,
        3,
        Some(1),
        "execute_tool lookup",
        base_ns + 620_000_000,
        base_ns + 880_000_000,
    );
    tool.attributes.extend([
        string("gen_ai.operation.name", "execute_tool"),
        string("gen_ai.tool.name", "lookup"),
    ]);
    vec![root, llm, tool]
}
