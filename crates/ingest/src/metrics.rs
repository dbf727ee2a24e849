//! The receivers' self-telemetry for `/metrics`: requests by outcome, spans accepted and
//! rejected by reason, log events accepted and log records dropped by reason, and request
//! latency. `app` registers these in its Prometheus registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    transport: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    transport: String,
    reason: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Counters shared by both receivers.
#[derive(Debug)]
pub struct IngestMetrics {
    requests: Family<RequestLabels, Counter>,
    spans_accepted: Family<TransportLabels, Counter>,
    spans_rejected: Family<RejectLabels, Counter>,
    events_accepted: Family<TransportLabels, Counter>,
    logs_dropped: Family<RejectLabels, Counter>,
    busy: Counter,
    inflight_bytes: Gauge,
    latency: Family<TransportLabels, Histogram, fn() -> Histogram>,
}

impl Default for IngestMetrics {
    fn default() -> IngestMetrics {
        IngestMetrics {
            requests: Family::default(),
            spans_accepted: Family::default(),
            spans_rejected: Family::default(),
            events_accepted: Family::default(),
            logs_dropped: Family::default(),
            busy: Counter::default(),
            inflight_bytes: Gauge::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl IngestMetrics {
    /// Adds the metrics to a registry (under `loupe_ingest_*`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "loupe_ingest_requests",
            "OTLP export requests, by transport and outcome",
            self.requests.clone(),
        );
        registry.register(
            "loupe_ingest_spans_accepted",
            "Spans acknowledged as durably stored",
            self.spans_accepted.clone(),
        );
        registry.register(
            "loupe_ingest_spans_rejected",
            "Spans not stored, by reason (invalid_span, overloaded, too_large, store_error)",
            self.spans_rejected.clone(),
        );
        registry.register(
            "loupe_ingest_log_events_accepted",
            "GenAI events received as OTLP log records and durably saved for their spans",
            self.events_accepted.clone(),
        );
        registry.register(
            "loupe_ingest_log_records_dropped",
            "OTLP log records not kept, by reason (not_genai_event, no_span_context, \
             invalid_record, overloaded, too_large, store_error)",
            self.logs_dropped.clone(),
        );
        registry.register(
            "loupe_ingest_inflight_budget_exhausted",
            "Requests refused because too many request bytes were being processed",
            self.busy.clone(),
        );
        registry.register(
            "loupe_ingest_inflight_bytes",
            "Request bytes being read, decompressed, decoded or written now, over both transports \
             (bounded by ingest.max_inflight_bytes)",
            self.inflight_bytes.clone(),
        );
        registry.register(
            "loupe_ingest_request_duration_seconds",
            "OTLP export request latency, from the first byte read to the answer",
            self.latency.clone(),
        );
    }

    pub(crate) fn request(&self, transport: &'static str, outcome: &'static str, seconds: f64) {
        let labels = RequestLabels { transport: transport.to_owned(), outcome: outcome.to_owned() };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&TransportLabels { transport: transport.to_owned() })
            .observe(seconds);
    }

    pub(crate) fn spans_accepted(&self, transport: &'static str, n_spans: usize) {
        if n_spans > 0 {
            let labels = TransportLabels { transport: transport.to_owned() };
            self.spans_accepted.get_or_create(&labels).inc_by(n_spans as u64);
        }
    }

    pub(crate) fn spans_rejected(
        &self,
        transport: &'static str,
        reason: &'static str,
        n_spans: usize,
    ) {
        if n_spans > 0 {
            let labels =
                RejectLabels { transport: transport.to_owned(), reason: reason.to_owned() };
            self.spans_rejected.get_or_create(&labels).inc_by(n_spans as u64);
        }
    }

    pub(crate) fn events_accepted(&self, transport: &'static str, n_events: usize) {
        if n_events > 0 {
            let labels = TransportLabels { transport: transport.to_owned() };
            self.events_accepted.get_or_create(&labels).inc_by(n_events as u64);
        }
    }

    pub(crate) fn logs_dropped(&self, transport: &'static str, reason: &'static str, n: usize) {
        if n > 0 {
            let labels =
                RejectLabels { transport: transport.to_owned(), reason: reason.to_owned() };
            self.logs_dropped.get_or_create(&labels).inc_by(n as u64);
        }
    }

    pub(crate) fn inflight_bytes_add(&self, n_bytes: i64) {
        self.inflight_bytes.inc_by(n_bytes);
    }

    pub(crate) fn busy(&self) {
        self.busy.inc();
    }
}
