//! OTLP log requests to span events. Loupe keeps one kind of log record: a GenAI event
//! (`gen_ai.user.message`, `gen_ai.choice`, `gen_ai.client.inference.operation.details`,
//! `gen_ai.evaluation.result`, ...) that names its span. Such a record becomes a
//! [`model::SpanEvent`]: an [`model::Event`] named after the event, at the record's time, whose
//! attributes are the record's attributes followed by the fields of its body, the same shape
//! the span-event form of these events has, so `normalize` reads both alike.
//!
//! - The event name is `LogRecord.event_name`, else the `event.name` attribute (older SDKs);
//!   that attribute is not copied into the event.
//! - A body that is a map gives one attribute per entry; any other body (a string, say) becomes
//!   the `content` attribute; an empty body gives nothing.
//! - The time is `time_unix_nano`, else `observed_time_unix_nano`.
//!
//! Every other record is dropped with a [`DropReason`]: not a GenAI event, no valid trace and
//! span id, or unreadable values. Dropping is not an error: the request succeeds and the answer's
//! `partial_success` counts and explains the dropped records.

use std::fmt::Write;

use model::{AnyValue, Event, KeyValue, SpanEvent, SpanId, TraceId};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1 as pb_logs;
use prost::Message;
use serde_json::json;

use crate::{Encoding, Error};

/// The prefix of the event names kept.
pub const GENAI_EVENT_PREFIX: &str = "gen_ai.";

/// The GenAI events of one logs request, and the records dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedLogs {
    pub events: Vec<SpanEvent>,
    pub dropped: Vec<DroppedLog>,
}

impl DecodedLogs {
    /// Log records in the request, kept or not.
    pub fn n_total(&self) -> usize {
        self.events.len() + self.dropped.len()
    }
}

/// Why a log record was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// No event name starting with `gen_ai.`.
    NotGenAi,
    /// A GenAI event without a valid trace id and span id: there is no span to attach it to.
    NoSpanContext,
    /// A GenAI event whose attributes or body could not be read.
    Invalid,
}

impl DropReason {
    /// A short, stable name for `/metrics` labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotGenAi => "not_genai_event",
            DropReason::NoSpanContext => "no_span_context",
            DropReason::Invalid => "invalid_record",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            DropReason::NotGenAi => {
                "not GenAI events (only log records whose event name starts with gen_ai. are kept)"
            }
            DropReason::NoSpanContext => {
                "GenAI events without a trace id and span id (they are kept as events of their span)"
            }
            DropReason::Invalid => "unreadable",
        }
    }
}

/// A log record that was not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedLog {
    pub reason: DropReason,
    /// The event name, if any.
    pub name: String,
    /// What was wrong, for [`DropReason::Invalid`].
    pub detail: String,
}

/// The fields of a log record that matter here, from either encoding.
pub(crate) struct LogFields {
    pub(crate) event_name: String,
    pub(crate) time_unix_nano: u64,
    pub(crate) observed_time_unix_nano: u64,
    pub(crate) trace_id: Vec<u8>,
    pub(crate) span_id: Vec<u8>,
    pub(crate) attributes: Result<Vec<KeyValue>, String>,
    pub(crate) body: Result<AnyValue, String>,
    pub(crate) dropped_attributes_count: u32,
}

/// Keeps or drops one record.
pub(crate) fn to_span_event(fields: LogFields) -> Result<SpanEvent, DroppedLog> {
    let attributes = fields.attributes.as_ref().ok();
    let name = if !fields.event_name.is_empty() {
        fields.event_name.clone()
    } else {
        attributes
            .and_then(|attributes| model::attr_str(attributes, "event.name"))
            .unwrap_or_default()
            .to_owned()
    };
    let drop = |reason, detail: String| DroppedLog { reason, name: name.clone(), detail };
    if !name.starts_with(GENAI_EVENT_PREFIX) {
        return Err(drop(DropReason::NotGenAi, String::new()));
    }
    let (Ok(trace_id), Ok(span_id)) =
        (TraceId::from_bytes(&fields.trace_id), SpanId::from_bytes(&fields.span_id))
    else {
        return Err(drop(DropReason::NoSpanContext, String::new()));
    };
    let mut attributes = fields.attributes.map_err(|reason| drop(DropReason::Invalid, reason))?;
    attributes.retain(|kv| kv.key != "event.name");
    match fields.body.map_err(|reason| drop(DropReason::Invalid, format!("body: {reason}")))? {
        AnyValue::KvList(entries) => attributes.extend(entries),
        AnyValue::Empty => {}
        other => attributes.push(KeyValue::new("content", other)),
    }
    let time_unix_nano = match fields.time_unix_nano {
        0 => fields.observed_time_unix_nano,
        time => time,
    };
    Ok(SpanEvent {
        trace_id,
        span_id,
        event: Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count: fields.dropped_attributes_count,
        },
    })
}

/// Decodes a logs request body in the given encoding.
pub fn decode_logs(encoding: Encoding, body: &[u8]) -> Result<DecodedLogs, Error> {
    match encoding {
        Encoding::Protobuf => {
            let request = ExportLogsServiceRequest::decode(body).map_err(Error::LogsProtobuf)?;
            Ok(logs_from_request(request))
        }
        Encoding::Json => crate::json::decode_logs_json(body),
    }
}

/// Converts a decoded logs request (the gRPC path) into span events.
pub fn logs_from_request(request: ExportLogsServiceRequest) -> DecodedLogs {
    let mut res = DecodedLogs::default();
    for resource_logs in request.resource_logs {
        for scope_logs in resource_logs.scope_logs {
            for record in scope_logs.log_records {
                push(&mut res, to_span_event(fields_of(record)));
            }
        }
    }
    res
}

pub(crate) fn push(res: &mut DecodedLogs, outcome: Result<SpanEvent, DroppedLog>) {
    match outcome {
        Ok(event) => res.events.push(event),
        Err(dropped) => res.dropped.push(dropped),
    }
}

fn fields_of(record: pb_logs::LogRecord) -> LogFields {
    LogFields {
        event_name: record.event_name,
        time_unix_nano: record.time_unix_nano,
        observed_time_unix_nano: record.observed_time_unix_nano,
        trace_id: record.trace_id,
        span_id: record.span_id,
        attributes: crate::proto::convert_attributes(record.attributes),
        body: match record.body {
            Some(body) => crate::proto::convert_value(body, 0),
            None => Ok(AnyValue::Empty),
        },
        dropped_attributes_count: record.dropped_attributes_count,
    }
}

/// A readable summary of the dropped records, by reason, bounded in length. Empty when none
/// was dropped.
pub fn logs_partial_success_message(n_total: usize, dropped: &[DroppedLog]) -> String {
    if dropped.is_empty() {
        return String::new();
    }
    let mut by_reason: Vec<(DropReason, usize, Option<&DroppedLog>)> = Vec::new();
    for it in dropped {
        match by_reason.iter_mut().find(|(reason, _, _)| *reason == it.reason) {
            Some((_, n, _)) => *n += 1,
            None => by_reason.push((it.reason, 1, Some(it))),
        }
    }
    by_reason.sort_by_key(|(reason, _, _)| *reason);
    let plural = if n_total == 1 { "" } else { "s" };
    let mut res = format!("dropped {} of {n_total} log record{plural}: ", dropped.len());
    for (i, (reason, n, first)) in by_reason.iter().enumerate() {
        if i > 0 {
            res.push_str("; ");
        }
        // Writing to a String cannot fail.
        let _ = write!(res, "{n} {}", reason.explain());
        if let Some(first) = first.filter(|first| !first.detail.is_empty()) {
            let detail: String = first.detail.chars().take(200).collect();
            let _ = write!(res, " (first: event '{}': {detail})", first.name);
        }
    }
    res
}

/// The body of a 200 answer to a logs request: `partial_success` is set only when some records
/// were dropped.
pub fn encode_logs_response(encoding: Encoding, n_total: usize, dropped: &[DroppedLog]) -> Vec<u8> {
    let partial_success = logs_partial_success(n_total, dropped);
    match encoding {
        Encoding::Protobuf => ExportLogsServiceResponse { partial_success }.encode_to_vec(),
        Encoding::Json => {
            let body = match partial_success {
                Some(it) => json!({"partialSuccess": {
                    "rejectedLogRecords": it.rejected_log_records.to_string(),
                    "errorMessage": it.error_message,
                }}),
                None => json!({}),
            };
            body.to_string().into_bytes()
        }
    }
}

/// The `partial_success` of a logs answer, `None` when nothing was dropped.
pub fn logs_partial_success(
    n_total: usize,
    dropped: &[DroppedLog],
) -> Option<ExportLogsPartialSuccess> {
    (!dropped.is_empty()).then(|| ExportLogsPartialSuccess {
        rejected_log_records: dropped.len() as i64,
        error_message: logs_partial_success_message(n_total, dropped),
    })
}
