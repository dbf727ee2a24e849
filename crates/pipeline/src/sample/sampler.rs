//! The background sampler: "write first, decide after".
//!
//! Spans are written at once by the pipeline, as when sampling is off, so an acknowledged span
//! survives a crash while its trace waits. This task asks the store, every tick, for traces that
//! are ready (root span stored `decision_wait_secs` ago, or, with no root, no new span for that
//! long) and not decided yet ([`store::Store::undecided_traces`]); it reads them back with
//! their feedback, a batch per project ([`store::Store::traces_for_decision`]),
//! decides each with [`decide`], deletes the dropped ones ([`store::Store::delete_traces`]) and
//! records every decision ([`store::Store::record_sampling_decisions`]). The store remembers
//! what is pending and what was decided, so a restart decides nothing twice, and it deletes late
//! spans of a dropped trace as they arrive.
//!
//! Dropped traces are deleted before their decisions are recorded: after a crash in between,
//! the trace is still pending, is read back empty and is recorded as dropped.
//!
//! With a backend that stages spans (`Store::stage_spans`, which the pipeline calls while
//! sampling is on), recording a decision is also what stores a kept trace's spans, so span
//! events saved for them (OTLP log records that arrived first) are merged afterwards, by the
//! pipeline's writer ([`crate::Pipeline::merge_events`]) when the sampler has the pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::{Feedback, ProjectId, SpanId, StoredSpan, TraceId, UnixNanos};
use store::Store;

use super::config::SampleConfig;
use super::latency::LatencyEstimator;
use super::sample::{Decision, DecisionInputs, decide, feedback_from_record, feedback_from_spans};
use crate::Error;
use crate::processors::ProcessorCounter;

/// Traces asked for per store call.
const PASS_BATCH: u32 = 256;
/// Root names whose latency is tracked for the p99.
const MAX_ROOT_NAMES: usize = 1000;

/// Kept and dropped counts, for `/metrics` and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SamplingStats {
    pub traces_kept: u64,
    pub traces_dropped: u64,
    /// Spans deleted with dropped traces (late spans are deleted by the store and not counted).
    pub spans_deleted: u64,
    /// Passes that failed (a store error); the traces are retried on the next pass.
    pub errors: u64,
    /// Passes that finished (whether or not a trace was ready).
    pub passes: u64,
    /// Per policy, in config order.
    pub policies: Vec<PolicyStats>,
}

/// How one policy judged the decided traces: `kept` counts the traces it matched (it alone
/// would have kept them), `dropped` the others, like the Collector's
/// `count_traces_sampled{policy, sampled}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyStats {
    pub name: String,
    pub kept: u64,
    pub dropped: u64,
}

impl SamplingStats {
    /// The counters in the shape of the other processors' (`loupe_processor_sample_*`).
    pub fn counters(&self) -> Vec<ProcessorCounter> {
        let plain =
            |name, value| ProcessorCounter { processor: "sample", name, labels: Vec::new(), value };
        let mut res = vec![
            plain("traces_kept", self.traces_kept),
            plain("traces_dropped", self.traces_dropped),
            plain("spans_deleted", self.spans_deleted),
            plain("errors", self.errors),
            plain("passes", self.passes),
        ];
        for policy in &self.policies {
            for (decision, value) in [("kept", policy.kept), ("dropped", policy.dropped)] {
                res.push(ProcessorCounter {
                    processor: "sample",
                    name: "policy_traces",
                    labels: vec![
                        ("policy", policy.name.clone()),
                        ("decision", decision.to_owned()),
                    ],
                    value,
                });
            }
        }
        res
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub n_kept: u64,
    pub n_dropped: u64,
    pub n_spans_deleted: u64,
}

#[derive(Default)]
struct Counters {
    traces_kept: AtomicU64,
    traces_dropped: AtomicU64,
    spans_deleted: AtomicU64,
    errors: AtomicU64,
    passes: AtomicU64,
    /// `(kept, dropped)` per policy, in config order.
    policies: Vec<(AtomicU64, AtomicU64)>,
}

/// The decision logic with its state (latency estimator, counters); [`Sampler`] runs it on a
/// timer. Tests and maintenance commands call [`SamplerCore::run_pass`] directly.
pub struct SamplerCore {
    config: SampleConfig,
    store: Arc<dyn Store>,
    latency: Mutex<LatencyEstimator>,
    counters: Counters,
    /// Merges saved span events into the spans of kept traces.
    events: Option<crate::Pipeline>,
}

impl SamplerCore {
    pub fn new(config: SampleConfig, store: Arc<dyn Store>) -> SamplerCore {
        let counters = Counters {
            policies: config.policies.iter().map(|_| Default::default()).collect(),
            ..Default::default()
        };
        SamplerCore {
            config,
            store,
            latency: Mutex::new(LatencyEstimator::new(MAX_ROOT_NAMES)),
            counters,
            events: None,
        }
    }

    /// Has the pipeline merge saved span events into the spans of kept traces.
    pub fn with_events_merge(mut self, pipeline: crate::Pipeline) -> SamplerCore {
        self.events = Some(pipeline);
        self
    }

    pub fn stats(&self) -> SamplingStats {
        let c = &self.counters;
        SamplingStats {
            traces_kept: c.traces_kept.load(Ordering::Relaxed),
            traces_dropped: c.traces_dropped.load(Ordering::Relaxed),
            spans_deleted: c.spans_deleted.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            passes: c.passes.load(Ordering::Relaxed),
            policies: self
                .config
                .policies
                .iter()
                .zip(&c.policies)
                .map(|(policy, (kept, dropped))| PolicyStats {
                    name: policy.name.clone(),
                    kept: kept.load(Ordering::Relaxed),
                    dropped: dropped.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }

    /// Decides every trace that is ready at `now_ns` (wall clock), in batches.
    pub async fn run_pass(&self, now_ns: UnixNanos) -> Result<PassReport, Error> {
        let wait_ns = self.config.decision_wait_secs.saturating_mul(1_000_000_000);
        let settled_before_ns = now_ns.saturating_sub(wait_ns);
        let mut res = PassReport::default();
        loop {
            let ready = self
                .store
                .undecided_traces(settled_before_ns, PASS_BATCH)
                .await
                .map_err(Error::Store)?;
            let n_ready = ready.len();
            let mut decisions: Vec<(ProjectId, TraceId, bool)> = Vec::with_capacity(n_ready);
            // The spans of kept traces, for the events merge.
            let mut kept_spans: Vec<(ProjectId, TraceId, SpanId)> = Vec::new();
            // The stored traces dropped in this batch, by project: one delete (one write
            // transaction) per project and batch rather than one per trace.
            let mut to_delete: Vec<(ProjectId, Vec<TraceId>)> = Vec::new();
            // Counted once recorded, so `/metrics` never shows a decision the store lacks.
            let mut to_count: Vec<Decision> = Vec::new();
            // One read per project and batch, not two per trace.
            for (project, trace_ids) in by_project(ready) {
                let traces = self
                    .store
                    .traces_for_decision(&project, &trace_ids, self.config.needs_content())
                    .await
                    .map_err(Error::Store)?;
                let mut dropped = Vec::new();
                for (trace_id, (spans, feedback)) in trace_ids.into_iter().zip(traces) {
                    let decision = (!spans.is_empty()).then(|| self.decide_one(&spans, feedback));
                    let keep = decision.as_ref().is_some_and(|it| it.keep);
                    to_count.extend(decision);
                    if !spans.is_empty() && !keep {
                        dropped.push(trace_id);
                    }
                    if keep && self.events.is_some() {
                        let ids = spans.iter().map(|s| (project.clone(), trace_id, s.raw.span_id));
                        kept_spans.extend(ids);
                    }
                    match keep {
                        true => res.n_kept += 1,
                        false => res.n_dropped += 1,
                    }
                    decisions.push((project.clone(), trace_id, keep));
                }
                if !dropped.is_empty() {
                    to_delete.push((project, dropped));
                }
            }
            // Deleted before the decisions are recorded (see the module docs).
            for (project, trace_ids) in &to_delete {
                let n_deleted =
                    self.store.delete_traces(project, trace_ids).await.map_err(Error::Store)?;
                res.n_spans_deleted += n_deleted;
                self.counters.spans_deleted.fetch_add(n_deleted, Ordering::Relaxed);
            }
            self.store.record_sampling_decisions(&decisions).await.map_err(Error::Store)?;
            to_count.iter().for_each(|decision| self.count(decision));
            if let Some(pipeline) = &self.events {
                pipeline.merge_events(kept_spans).await?;
            }
            if n_ready < PASS_BATCH as usize {
                break;
            }
        }
        self.counters.passes.fetch_add(1, Ordering::Relaxed);
        Ok(res)
    }

    /// Decides one stored trace, given its stored feedback records (people, evaluators over
    /// the API).
    fn decide_one(&self, spans: &[StoredSpan], records: Vec<Feedback>) -> Decision {
        let mut feedback = feedback_from_spans(spans);
        feedback.extend(records.iter().flat_map(feedback_from_record));
        let root = spans
            .iter()
            .filter(|span| span.raw.parent_span_id.is_none())
            .min_by_key(|span| span.raw.start_time_unix_nano);
        let start = spans.iter().map(|s| s.raw.start_time_unix_nano).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.raw.end_time_unix_nano).max().unwrap_or(0);
        let root_name = root.map(|span| span.raw.name.as_str());
        let root_name_p99_ns = {
            // A poisoned lock only means a panic mid-update of plain numbers.
            let latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
            root_name.and_then(|name| latency.p99(name))
        };
        let inputs = DecisionInputs { feedback, root_name_p99_ns };
        let decision = decide(&self.config.policies, spans, &inputs);
        if let Some(name) = root_name {
            let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
            latency.observe(name, end.saturating_sub(start));
        }
        decision
    }

    /// Counts a recorded decision.
    fn count(&self, decision: &Decision) {
        let c = &self.counters;
        match decision.keep {
            true => c.traces_kept.fetch_add(1, Ordering::Relaxed),
            false => c.traces_dropped.fetch_add(1, Ordering::Relaxed),
        };
        for (policy, (kept, dropped)) in self.config.policies.iter().zip(&c.policies) {
            match decision.matched.contains(&policy.name) {
                true => kept.fetch_add(1, Ordering::Relaxed),
                false => dropped.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
}

/// Groups ready traces by project, keeping their order within each.
fn by_project(ready: Vec<(ProjectId, TraceId)>) -> Vec<(ProjectId, Vec<TraceId>)> {
    let mut res: Vec<(ProjectId, Vec<TraceId>)> = Vec::new();
    for (project, trace_id) in ready {
        match res.iter_mut().find(|(p, _)| *p == project) {
            Some((_, ids)) => ids.push(trace_id),
            None => res.push((project, vec![trace_id])),
        }
    }
    res
}

/// The background task running [`SamplerCore::run_pass`] every tick. Start it only when
/// sampling is enabled; [`Sampler::shutdown`] stops it after the pass in progress.
pub struct Sampler {
    core: Arc<SamplerCore>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Sampler {
    /// Starts the task on the current tokio runtime. `events`: the pipeline that merges saved
    /// span events into kept traces (see the module docs).
    pub fn start(
        config: SampleConfig,
        store: Arc<dyn Store>,
        events: Option<crate::Pipeline>,
    ) -> Sampler {
        // Deciding up to a tenth of the wait late is fine; more often costs store calls.
        let tick = Duration::from_secs(config.decision_wait_secs)
            .checked_div(10)
            .unwrap_or_default()
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut core = SamplerCore::new(config, store);
        if let Some(pipeline) = events {
            core = core.with_events_merge(pipeline);
        }
        let core = Arc::new(core);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task_core = core.clone();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stopped.changed() => break,
                }
                if let Err(error) = task_core.run_pass(wall_clock_ns()).await {
                    task_core.counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %error, "tail sampling pass failed");
                }
            }
        });
        Sampler { core, stop, task: tokio::sync::Mutex::new(Some(task)) }
    }

    pub fn core(&self) -> &Arc<SamplerCore> {
        &self.core
    }

    pub fn stats(&self) -> SamplingStats {
        self.core.stats()
    }

    /// Stops the task and waits for it (the pass in progress finishes first).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

pub(crate) fn wall_clock_ns() -> UnixNanos {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}
