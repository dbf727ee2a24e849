//! The gateway's self-telemetry for `/metrics`: per-route requests, errors and upstream latency,
//! the gateway's own overhead, and the recording queue (depth, spills, drops).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Handles to the gateway's metrics. Cheap to clone; all clones share the same values.
#[derive(Clone)]
pub struct GatewayMetrics {
    pub requests: Family<RouteLabels, Counter>,
    pub errors: Family<RouteLabels, Counter>,
    pub upstream_latency: HistogramFamily,
    pub overhead: Histogram,
    pub queue_depth: Gauge,
    pub recorded_spans: Counter,
    pub spilled_spans: Counter,
    pub replayed_spans: Counter,
    pub dropped_spans: Counter,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 2 minutes.
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

impl Default for GatewayMetrics {
    fn default() -> GatewayMetrics {
        GatewayMetrics {
            requests: Family::default(),
            errors: Family::default(),
            upstream_latency: Family::new_with_constructor(latency_histogram),
            // 10 µs to about 80 ms.
            overhead: Histogram::new(exponential_buckets(0.000_01, 2.0, 14)),
            queue_depth: Gauge::default(),
            recorded_spans: Counter::default(),
            spilled_spans: Counter::default(),
            replayed_spans: Counter::default(),
            dropped_spans: Counter::default(),
        }
    }
}

impl GatewayMetrics {
    /// Adds every gateway metric to `registry` (names get the `loupe_gateway_` prefix).
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("loupe_gateway");
        registry.register("requests", "Calls received, by route", self.requests.clone());
        registry.register(
            "errors",
            "Calls that failed (upstream error status, connection error, timeout, broken stream), by route",
            self.errors.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Time from sending a call upstream to the end of its response, by route",
            self.upstream_latency.clone(),
        );
        registry.register(
            "overhead_seconds",
            "Time the gateway added to a call: total time minus upstream time",
            self.overhead.clone(),
        );
        registry.register(
            "recording_queue_depth",
            "Recorded calls waiting to be written",
            self.queue_depth.clone(),
        );
        registry.register(
            "recorded_spans",
            "Spans handed to the pipeline",
            self.recorded_spans.clone(),
        );
        registry.register(
            "spilled_spans",
            "Spans written to the local spill file because the queue was full or the store failed",
            self.spilled_spans.clone(),
        );
        registry.register(
            "replayed_spans",
            "Spans replayed from the spill file into the pipeline",
            self.replayed_spans.clone(),
        );
        registry.register(
            "dropped_spans",
            "Spans lost because both the queue and the spill file were full",
            self.dropped_spans.clone(),
        );
    }

    pub(crate) fn route(&self, route: &str) -> RouteLabels {
        RouteLabels { route: route.to_owned() }
    }
}
