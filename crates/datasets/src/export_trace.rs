//! `export-trace`: one trace's LLM calls as a regression suite, in the toad-eye export format
//! (`name`, `source`, `metadata{trace_id, exported_at, model, provider}`,
//! `cases[{id, variables{input}, assertions}]`), written to `trace-<first 8 hex>.eval.yaml`.
//!
//! Rules, matching toad-eye's where it has one:
//! - A span is a case when it is an LLM call (span type `llm`, a chat or completion operation,
//!   or it carries chat messages) and
//!   has recorded input. Case ids are `production-case-N`, N the span's 1-based position among
//!   *all* spans of the trace in start-time order, so ids are not contiguous.
//! - `variables.input` is the text of every input message joined by newlines (roles dropped;
//!   system instructions given apart from the messages are not included).
//! - The output is the text of the first output message. Assertions are generated from it (see
//!   [`crate::assertions`]); when the span has a correction, from the correction instead, plus
//!   an `equals` or `contains` of it.
//! - Each case also carries `metadata{trace_id, span_id, model, provider, exported_at}`.
//! - The suite's `model` and `provider` are those of the first span with a request model, else
//!   `unknown`.

use std::collections::HashMap;

use model::{Feedback, FeedbackTarget, Message, SpanId, SpanType, StoredSpan, TraceId, UnixNanos};

use crate::assertions::baseline;
use crate::export::messages_text;
use crate::{Error, yaml};

/// The suite for one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceExport {
    /// `trace-<first 8 hex of the trace id>.eval.yaml`.
    pub file_name: String,
    pub yaml: String,
    pub n_cases: usize,
    /// Things the user should know, e.g. that some content was hashed or redacted.
    pub warnings: Vec<String>,
}

/// How to get content recorded, for the error when a trace has none.
const HOW_TO_RECORD_CONTENT: &str = "to record it, set OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true \
     (or your instrumentation's record-content option) in the application, or send the calls \
     through the Loupe gateway with content recording on, then record the calls again";

/// Builds the eval suite for the spans of `trace_id` (as the store returns them). `feedback` may
/// hold any feedback on the trace; the newest correction on each span is used.
pub fn export_trace(
    trace_id: TraceId,
    spans: &[StoredSpan],
    feedback: &[Feedback],
    exported_at_ns: UnixNanos,
) -> Result<TraceExport, Error> {
    if spans.is_empty() {
        return Err(Error::TraceNotFound(trace_id));
    }
    let mut spans: Vec<&StoredSpan> = spans.iter().collect();
    spans.sort_by_key(|span| span.raw.start_time_unix_nano);
    let corrections = newest_corrections(feedback);
    let exported_at = crate::format_rfc3339_millis(exported_at_ns);
    let trace_hex = trace_id.to_hex();

    let first_with_model = spans.iter().find(|span| span.view.request_model.is_some());
    let model = first_with_model.and_then(|span| span.view.request_model.as_deref());
    let provider = first_with_model.and_then(|span| span.view.provider.as_deref());

    let mut cases = String::new();
    let mut n_cases = 0;
    let mut n_llm_spans = 0;
    let mut n_content_removed = 0;
    let mut warnings = Vec::new();
    for (index, span) in spans.iter().enumerate() {
        let view = &span.view;
        let is_llm = view.span_type == SpanType::Llm
            || matches!(
                view.operation_name.as_deref(),
                Some("chat" | "text_completion" | "generate_content")
            )
            || !view.input_messages.is_empty()
            || !view.output_messages.is_empty();
        if !is_llm {
            continue;
        }
        n_llm_spans += 1;
        let mut input = messages_text(&view.input_messages);
        if input.is_empty() {
            input = view.input_text.clone().unwrap_or_default();
        }
        if input.is_empty() {
            if view.flags.content_removed {
                n_content_removed += 1;
            }
            continue;
        }
        let output = match view.output_messages.first() {
            Some(message) => Some(message.text_content()),
            None => view.output_text.clone(),
        };
        let correction = corrections.get(&span.raw.span_id).map(|messages| messages_text(messages));
        let expected = correction.as_deref().or(output.as_deref());
        let assertions = baseline(expected, correction.as_deref());
        warnings.extend(content_warnings(span, &input, output.as_deref()));

        n_cases += 1;
        let span_model = view.request_model.as_deref().or(view.response_model.as_deref());
        cases.push_str(&format!(
            "  - id: production-case-{}\n    variables:\n      input: {}\n",
            index + 1,
            yaml::string(&input)
        ));
        if assertions.is_empty() {
            cases.push_str("    assertions: []\n");
        } else {
            cases.push_str("    assertions:\n");
            for assertion in &assertions {
                assertion.write_yaml(&mut cases, 6);
            }
        }
        cases.push_str(&format!(
            "    metadata:\n      trace_id: {}\n      span_id: {}\n      model: {}\n      \
             provider: {}\n      exported_at: {exported_at}\n",
            yaml::string(&trace_hex),
            yaml::string(&span.raw.span_id.to_hex()),
            yaml::string(span_model.unwrap_or("unknown")),
            yaml::string(view.provider.as_deref().unwrap_or("unknown")),
        ));
    }

    if n_cases == 0 {
        let reason = if n_llm_spans == 0 {
            "it has no LLM calls".to_owned()
        } else if n_content_removed == n_llm_spans {
            format!(
                "the content of its {n_llm_spans} LLM call(s) was removed by this server's content \
                 policy; record content for these calls to export them"
            )
        } else {
            format!(
                "content recording was off for its {n_llm_spans} LLM call(s), so no prompt was \
                 recorded; {HOW_TO_RECORD_CONTENT}"
            )
        };
        return Err(Error::NothingToExport { trace_id, reason });
    }

    let short = &trace_hex[..8];
    let yaml = format!(
        "name: exported-trace-{short}\nsource: loupe-export\nmetadata:\n  trace_id: {}\n  \
         exported_at: {exported_at}\n  model: {}\n  provider: {}\ncases:\n{cases}",
        yaml::string(&trace_hex),
        yaml::string(model.unwrap_or("unknown")),
        yaml::string(provider.unwrap_or("unknown")),
    );
    Ok(TraceExport { file_name: format!("trace-{short}.eval.yaml"), yaml, n_cases, warnings })
}

/// The newest correction on each span.
fn newest_corrections(feedback: &[Feedback]) -> HashMap<SpanId, &[Message]> {
    let mut newest: HashMap<SpanId, (UnixNanos, &[Message])> = HashMap::new();
    for entry in feedback {
        let (FeedbackTarget::Span { span_id, .. }, Some(correction)) =
            (&entry.target, &entry.content.correction)
        else {
            continue;
        };
        let is_newer = newest.get(span_id).is_none_or(|(time, _)| entry.updated_ns >= *time);
        if is_newer {
            newest.insert(*span_id, (entry.updated_ns, correction.as_slice()));
        }
    }
    newest.into_iter().map(|(span_id, (_, correction))| (span_id, correction)).collect()
}

/// Warnings for content that will not reproduce the original call: hashed, redacted or cut.
fn content_warnings(span: &StoredSpan, input: &str, output: Option<&str>) -> Vec<String> {
    let span_id = span.raw.span_id;
    let texts = [input, output.unwrap_or("")];
    let mut res = Vec::new();
    if texts.iter().any(|text| looks_hashed(text)) {
        res.push(format!(
            "span {span_id}: content is hashed (sha256:...), so the case's input is a hash, not \
             the original prompt"
        ));
    }
    let flags = &span.view.flags;
    if !flags.redactions.is_empty() || texts.iter().any(|text| text.contains("[REDACTED]")) {
        res.push(format!(
            "span {span_id}: content was redacted, so the case's input differs from the original \
             prompt"
        ));
    }
    if flags.content_truncated {
        res.push(format!("span {span_id}: content was truncated at recording"));
    }
    res
}

fn looks_hashed(text: &str) -> bool {
    text.match_indices("sha256:").any(|(at, _)| {
        let rest = &text[at + "sha256:".len()..];
        rest.len() >= 64 && rest.as_bytes()[..64].iter().all(u8::is_ascii_hexdigit)
    })
}

#[cfg(test)]
mod tests;
