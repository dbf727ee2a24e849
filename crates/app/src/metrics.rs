//! `/metrics` in the Prometheus text format: the receivers' counters (from `ingest`), the write
//! queue and store counters (read from the pipeline at scrape time), the processors' counters,
//! the tail sampler's decisions per policy, the fan-out exporters' counters and buffer depth,
//! and the latency of every HTTP request by route. Also `GET /api/v1/sampling`, the sampler's
//! counts as JSON.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Everything `/metrics` reports. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    pub(crate) ingest: Arc<ingest::IngestMetrics>,
    http: Family<RouteLabels, Histogram, fn() -> Histogram>,
    sampler: Option<Arc<pipeline::sample::Sampler>>,
}

impl Metrics {
    pub(crate) fn new(
        pipeline: pipeline::Pipeline,
        processors: Arc<pipeline::processors::Processors>,
        backend: &'static str,
        gateway: &gateway::GatewayMetrics,
        sampler: Option<Arc<pipeline::sample::Sampler>>,
        fanout: Option<Arc<pipeline::fanout::Fanout>>,
        retention: Option<Arc<pipeline::retention::Retention>>,
    ) -> Metrics {
        let mut registry = Registry::default();
        let ingest = Arc::new(ingest::IngestMetrics::default());
        ingest.register(&mut registry);
        gateway.register(&mut registry);
        let http: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "loupe_http_request_duration_seconds",
            "HTTP request latency by route and status",
            http.clone(),
        );
        registry.register_collector(Box::new(PipelineCollector {
            pipeline,
            processors,
            backend,
            sampler: sampler.clone(),
            fanout,
            retention,
        }));
        Metrics { registry: Arc::new(registry), ingest, http, sampler }
    }

    /// `GET /api/v1/sampling`: the tail sampler's counts since the process started, for every
    /// project together; any valid API key may read them (none when keys are not required).
    pub(crate) fn sampling_router(&self, auth: auth::Auth) -> Router {
        Router::new()
            .route("/api/v1/sampling", get(sampling))
            .with_state((self.sampler.clone(), auth))
    }

    pub(crate) fn router(&self) -> Router {
        Router::new().route("/metrics", get(scrape)).with_state(self.clone())
    }
}

async fn scrape(State(metrics): State<Metrics>) -> Response {
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        tracing::error!(error = %error, "encoding metrics failed");
        return http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn sampling(
    State((sampler, auth)): State<(Option<Arc<pipeline::sample::Sampler>>, auth::Auth)>,
    headers: http::HeaderMap,
) -> Response {
    if let Err(error) = auth.resolve_headers(&headers).await {
        let status = http::StatusCode::from_u16(error.code().http_status())
            .unwrap_or(http::StatusCode::UNAUTHORIZED);
        let body = serde_json::json!({ "error": { "message": error.to_string() } });
        return (status, axum::Json(body)).into_response();
    }
    let Some(sampler) = sampler else {
        return axum::Json(serde_json::json!({ "enabled": false })).into_response();
    };
    let stats = sampler.stats();
    let policies: Vec<serde_json::Value> = stats
        .policies
        .iter()
        .map(|p| serde_json::json!({ "name": p.name, "kept": p.kept, "dropped": p.dropped }))
        .collect();
    axum::Json(serde_json::json!({
        "enabled": true,
        "traces_kept": stats.traces_kept,
        "traces_dropped": stats.traces_dropped,
        "spans_deleted": stats.spans_deleted,
        "passes": stats.passes,
        "errors": stats.errors,
        "policies": policies,
    }))
    .into_response()
}

/// Middleware: request latency by matched route (not raw path, to keep labels few).
pub(crate) async fn track(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let labels = RouteLabels { method, route, status: response.status().as_u16().to_string() };
    metrics.http.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

/// One labelled series of a processor counter: its labels and value.
type Series = (Vec<(String, String)>, u64);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

struct PipelineCollector {
    pipeline: pipeline::Pipeline,
    processors: Arc<pipeline::processors::Processors>,
    backend: &'static str,
    /// The tail sampler, when `[pipeline.sample]` is enabled.
    sampler: Option<Arc<pipeline::sample::Sampler>>,
    /// The `[[pipeline.fanout]]` exporters, when any are configured.
    fanout: Option<Arc<pipeline::fanout::Fanout>>,
    /// The background retention runner, when `[retention]` is enabled.
    retention: Option<Arc<pipeline::retention::Retention>>,
}

/// Processor series that are levels (they go up and down), not counters.
const GAUGES: &[&str] = &["loupe_processor_fanout_buffered_spans"];

impl std::fmt::Debug for PipelineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineCollector").finish_non_exhaustive()
    }
}

impl Collector for PipelineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.pipeline.stats();
        let gauges = [
            ("loupe_queue_spans", "Spans waiting in the write queue", stats.queued_spans),
            ("loupe_queue_capacity_spans", "Capacity of the write queue", stats.capacity_spans),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let labels = BackendLabels { backend: self.backend.to_owned() };
        let counters = [
            ("loupe_store_spans_written", "Spans written to the store", stats.written_spans),
            (
                "loupe_store_spans_duplicate",
                "Spans skipped by the store because they were already stored",
                stats.duplicate_spans,
            ),
            ("loupe_store_writes", "Store write transactions (group commits)", stats.store_writes),
            ("loupe_store_write_errors", "Store writes that failed", stats.store_errors),
            (
                "loupe_store_span_events_saved",
                "Span events saved apart from their spans (GenAI events from OTLP logs)",
                stats.saved_events,
            ),
            (
                "loupe_store_spans_merged",
                "Stored spans rewritten with span events that arrived apart from them",
                stats.merged_spans,
            ),
            (
                "loupe_queue_rejected_spans",
                "Spans refused because the write queue was full",
                stats.rejected_overload,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let mut descriptor =
                encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(descriptor.encode_family(&labels)?)?;
        }
        for metric in self.pipeline.store().backend_metrics() {
            if metric.counter {
                let counter = ConstCounter::new(metric.value);
                counter.encode(encoder.encode_descriptor(
                    metric.name,
                    metric.help,
                    None,
                    counter.metric_type(),
                )?)?;
            } else {
                let gauge = ConstGauge::new(i64::try_from(metric.value).unwrap_or(i64::MAX));
                gauge.encode(encoder.encode_descriptor(
                    metric.name,
                    metric.help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        let busy = ConstCounter::new(stats.busy_seconds);
        busy.encode(encoder.encode_descriptor(
            "loupe_writer_busy_seconds",
            "Seconds the single writer spent writing; its rate near 1 means the writer limits ingest",
            None,
            busy.metric_type(),
        )?)?;
        // One family per counter name; a counter with labels (e.g. redactions by kind) has
        // several series under one name.
        let mut families: std::collections::BTreeMap<String, Vec<Series>> = Default::default();
        let sampled = self.sampler.iter().flat_map(|sampler| sampler.stats().counters());
        let forwarded = self.fanout.iter().flat_map(|fanout| fanout.counters());
        for counter in self.processors.counters().into_iter().chain(sampled).chain(forwarded) {
            let name = format!("loupe_processor_{}_{}", counter.processor, counter.name);
            let labels = counter.labels.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
            families.entry(name).or_default().push((labels, counter.value));
        }
        for (name, series) in families {
            if GAUGES.contains(&name.as_str()) {
                let mut descriptor = encoder.encode_descriptor(
                    &name,
                    "A pipeline processor level",
                    None,
                    prometheus_client::metrics::MetricType::Gauge,
                )?;
                for (labels, value) in series {
                    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                    gauge.encode(descriptor.encode_family(&labels)?)?;
                }
                continue;
            }
            let mut descriptor = encoder.encode_descriptor(
                &name,
                "A pipeline processor counter",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (labels, value) in series {
                ConstCounter::new(value).encode(descriptor.encode_family(&labels)?)?;
            }
        }
        if let Some(retention) = &self.retention {
            let r = retention.stats();
            let counters = [
                ("loupe_retention_passes", "Retention passes completed", r.passes),
                ("loupe_retention_pass_errors", "Retention passes that failed", r.pass_errors),
                (
                    "loupe_retention_spans_to_structure",
                    "Spans whose content retention removed (structure tier)",
                    r.spans_to_structure,
                ),
                (
                    "loupe_retention_spans_to_fingerprints",
                    "Spans retention reduced to skeleton and fingerprints",
                    r.spans_to_fingerprints,
                ),
                (
                    "loupe_retention_spans_deleted",
                    "Spans retention deleted with traces past delete_after",
                    r.spans_deleted,
                ),
                (
                    "loupe_retention_traces_decided",
                    "Traces decided by retention-time downsampling",
                    r.traces_decided,
                ),
                (
                    "loupe_retention_traces_downsampled",
                    "Traces deleted by retention-time downsampling",
                    r.traces_downsampled,
                ),
                (
                    "loupe_retention_spans_downsampled",
                    "Spans deleted by retention-time downsampling",
                    r.spans_downsampled,
                ),
            ];
            for (name, help, value) in counters {
                let counter = ConstCounter::new(value);
                let kind = counter.metric_type();
                counter.encode(encoder.encode_descriptor(name, help, None, kind)?)?;
            }
        }
        Ok(())
    }
}
