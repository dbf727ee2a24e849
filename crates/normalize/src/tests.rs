//! Golden tests: `test_data/NAME.json` (an OTLP JSON request) -> `NAME.txt`, the view of each
//! span as pretty JSON.

use std::fmt::Write;
use std::path::Path;

use expect_test::{expect, expect_file};

fn render(body: &[u8]) -> String {
    let decoded = match otlp::decode_json(body) {
        Ok(decoded) => decoded,
        Err(e) => return format!("error: {e}\n"),
    };
    let mut out = String::new();
    for rejected in &decoded.rejected {
        let _ = writeln!(out, "rejected {:?}: {}", rejected.name, rejected.reason);
    }
    for span in &decoded.spans {
        let view = crate::derive_view(span);
        let json = serde_json::to_string_pretty(&view).unwrap_or_default();
        let _ =
            writeln!(out, "=== {} {} ({})\n{json}", span.span_id, span.name, span.kind.as_str());
    }
    out
}

#[test]
fn golden() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 12, "{} golden inputs", paths.len());
    for path in paths {
        let body = std::fs::read(&path).unwrap();
        expect_file![path.with_extension("txt")].assert_eq(&render(&body));
    }
}

/// One line per span: the fields a reader scans first.
fn summary(body: &str) -> String {
    let decoded = otlp::decode_json(body.as_bytes()).unwrap();
    let mut out = String::new();
    for span in &decoded.spans {
        let view = crate::derive_view(span);
        let _ = writeln!(
            out,
            "{} type={} provider={} model={} in={:?} out={:?} ttft={:?}",
            span.name,
            view.span_type.as_str(),
            view.provider.as_deref().unwrap_or("-"),
            view.model().unwrap_or("-"),
            view.usage.input,
            view.usage.output,
            view.time_to_first_token_ns,
        );
    }
    out
}

/// A request with one span per attribute set: `(name, [(key, string value)])`.
fn request(spans: &[(&str, &[(&str, &str)])]) -> String {
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .enumerate()
        .map(|(i, (name, attributes))| {
            let attributes: Vec<serde_json::Value> = attributes
                .iter()
                .map(
                    |(key, value)| serde_json::json!({"key": key, "value": {"stringValue": value}}),
                )
                .collect();
            serde_json::json!({
                "traceId": "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f",
                "spanId": format!("{:016x}", i + 1),
                "name": name,
                "kind": 3,
                "startTimeUnixNano": "1716370863120000000",
                "endTimeUnixNano": "1716370864120000000",
                "attributes": attributes,
            })
        })
        .collect();
    serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string()
}

#[test]
fn provider_names_map_to_current_values() {
    let systems = [
        "az.ai.inference",
        "az.ai.openai",
        "vertex_ai",
        "gemini",
        "xai",
        "Anthropic",
        "MistralAI",
        "AWS",
        "Google",
        "Cohere",
        "together_ai",
    ];
    let spans: Vec<(&str, Vec<(&str, &str)>)> =
        systems.iter().map(|s| (*s, vec![("gen_ai.system", *s)])).collect();
    let spans: Vec<(&str, &[(&str, &str)])> =
        spans.iter().map(|(name, attrs)| (*name, attrs.as_slice())).collect();
    expect![[r#"
        az.ai.inference type=other provider=azure.ai.inference model=- in=None out=None ttft=None
        az.ai.openai type=other provider=azure.ai.openai model=- in=None out=None ttft=None
        vertex_ai type=other provider=gcp.vertex_ai model=- in=None out=None ttft=None
        gemini type=other provider=gcp.gemini model=- in=None out=None ttft=None
        xai type=other provider=x_ai model=- in=None out=None ttft=None
        Anthropic type=other provider=anthropic model=- in=None out=None ttft=None
        MistralAI type=other provider=mistral_ai model=- in=None out=None ttft=None
        AWS type=other provider=aws.bedrock model=- in=None out=None ttft=None
        Google type=other provider=gcp.gen_ai model=- in=None out=None ttft=None
        Cohere type=other provider=cohere model=- in=None out=None ttft=None
        together_ai type=other provider=together_ai model=- in=None out=None ttft=None
    "#]]
    .assert_eq(&summary(&request(&spans)));
}

#[test]
fn odd_values_do_not_break_the_view() {
    let body = request(&[
        ("negative tokens", &[("gen_ai.usage.input_tokens", "-5"), ("gen_ai.request.model", "m")]),
        (
            "text tokens",
            &[("gen_ai.usage.output_tokens", "many"), ("gen_ai.operation.name", "chat")],
        ),
        ("ttft seconds as text", &[("gen_ai.response.time_to_first_chunk", "0.25")]),
        ("negative ttft", &[("gen_ai.response.time_to_first_chunk", "-1")]),
        (
            "start before epoch",
            &[("langfuse.observation.completion_start_time", "1969-12-31T23:59:59Z")],
        ),
        (
            "bad timestamp",
            &[("langfuse.observation.completion_start_time", "2024-13-45T99:00:00Z")],
        ),
        (
            "huge index",
            &[
                ("gen_ai.prompt.99999999999999999999999.content", "x"),
                ("gen_ai.prompt.7.content", "y"),
            ],
        ),
        (
            "unknown kinds",
            &[
                ("openinference.span.kind", "UNKNOWN"),
                ("traceloop.span.kind", "unknown"),
                ("llm.request.type", "chat"),
            ],
        ),
    ]);
    expect![[r#"
        negative tokens type=llm provider=- model=m in=None out=None ttft=None
        text tokens type=llm provider=- model=- in=None out=None ttft=None
        ttft seconds as text type=other provider=- model=- in=None out=None ttft=Some(250000000)
        negative ttft type=other provider=- model=- in=None out=None ttft=None
        start before epoch type=other provider=- model=- in=None out=None ttft=None
        bad timestamp type=other provider=- model=- in=None out=None ttft=None
        huge index type=other provider=- model=- in=None out=None ttft=None
        unknown kinds type=llm provider=- model=- in=None out=None ttft=None
    "#]]
    .assert_eq(&summary(&body));
    let decoded = otlp::decode_json(body.as_bytes()).unwrap();
    let view = crate::derive_view(&decoded.spans[6]);
    assert_eq!(view.input_messages.len(), 1, "only the parseable index is read");
}

/// The view can be rebuilt from the stored raw span (`loupe reindex`): a raw span that went
/// through its stored JSON form gives the same view, and deriving twice gives the same view.
#[test]
fn views_rebuild_from_stored_raw_spans() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let mut n_spans = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let decoded = otlp::decode_json(&std::fs::read(&path).unwrap()).unwrap();
        for span in &decoded.spans {
            let stored = serde_json::to_string(span).unwrap();
            let reloaded: model::RawSpan = serde_json::from_str(&stored).unwrap();
            let view = crate::derive_view(span);
            assert_eq!(view, crate::derive_view(&reloaded), "{} {}", path.display(), span.name);
            assert_eq!(view, crate::derive_view(span));
            n_spans += 1;
        }
    }
    assert!(n_spans >= 50, "{n_spans} spans");
}

/// GenAI events sent as OTLP log records (payload in the body, decoded by `otlp::decode_logs`)
/// and added to their span give the same view as the same events sent as span events.
#[test]
fn log_events_give_the_view_of_span_events() {
    let ids = r#""traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174""#;
    let text = |s: &str| format!(r#"{{"stringValue":"{s}"}}"#);
    let kv = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{v}}}"#);
    let choice_message = format!(
        r#"{{"kvlistValue":{{"values":[{},{}]}}}}"#,
        kv("role", &text("assistant")),
        kv("content", &text("Paris."))
    );
    let payloads = [
        ("gen_ai.system.message", vec![kv("content", &text("Answer in one word."))]),
        ("gen_ai.user.message", vec![kv("content", &text("Capital of France?"))]),
        (
            "gen_ai.choice",
            vec![
                kv("index", r#"{"intValue":"0"}"#),
                kv("finish_reason", &text("stop")),
                kv("message", &choice_message),
            ],
        ),
    ];
    let span_events: Vec<String> = payloads
        .iter()
        .enumerate()
        .map(|(i, (name, fields))| {
            format!(
                r#"{{"timeUnixNano":"{}","name":"{name}","attributes":[{}]}}"#,
                1000 + i,
                fields.join(",")
            )
        })
        .collect();
    let span = |events: &str| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{{ids},"name":"chat gpt-4o",
            "startTimeUnixNano":"1000","endTimeUnixNano":"2000",
            "attributes":[{}],"events":[{events}]}}]}}]}}]}}"#,
            kv("gen_ai.operation.name", &text("chat"))
        )
    };
    let records: Vec<String> = payloads
        .iter()
        .enumerate()
        .map(|(i, (name, fields))| {
            format!(
                r#"{{"timeUnixNano":"{}","eventName":"{name}",{ids},"body":{{"kvlistValue":{{"values":[{}]}}}}}}"#,
                1000 + i,
                fields.join(",")
            )
        })
        .collect();
    let logs = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    );

    let with_span_events = otlp::decode_json(span(&span_events.join(",")).as_bytes()).unwrap();
    let mut with_log_events = otlp::decode_json(span("").as_bytes()).unwrap();
    let decoded_logs = otlp::decode_logs(otlp::Encoding::Json, logs.as_bytes()).unwrap();
    assert!(decoded_logs.dropped.is_empty(), "{:?}", decoded_logs.dropped);
    with_log_events.spans[0].events = decoded_logs.events.into_iter().map(|it| it.event).collect();
    let expected = crate::derive_view(&with_span_events.spans[0]);
    let view = crate::derive_view(&with_log_events.spans[0]);
    assert_eq!(view, expected);
    let messages: Vec<String> = view
        .input_messages
        .iter()
        .chain(&view.output_messages)
        .map(|message| format!("{}: {}", message.role, message.text_content()))
        .collect();
    expect![[
        r#"["system: Answer in one word.", "user: Capital of France?", "assistant: Paris."]"#
    ]]
    .assert_eq(&format!("{messages:?}"));
}
