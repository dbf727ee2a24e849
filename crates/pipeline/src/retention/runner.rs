//! The retention runner: one pass over every project (or one), in bounded batches, and the
//! background task that repeats it.
//!
//! A pass does, per project, in this order (each step sees what the previous one left):
//!
//! 1. **Downsampling** (when enabled): the traces that started in `[watermark, now - after)`
//!    are decided with [`decide`] on their stored spans and feedback, a page of `batch_size` at
//!    a time; dropped ones are deleted with `delete_traces`. When the window is done the
//!    watermark moves to its end (`put_state`). An interrupted window is decided again on the
//!    next pass, with the same result, since decisions depend only on what is stored.
//! 2. **Deletion**: traces whose every span is older than `delete_after`, with
//!    `delete_traces_before` and a limit of `batch_size` spans per call.
//! 3. **Fingerprints**: spans older than `fingerprints_after` and below that tier are reduced
//!    with [`reduce`] and rewritten, `batch_size` at a time.
//! 4. **Structure**: the same for spans older than `structure_after`.
//!
//! The runner yields to the scheduler between store calls, so the write path keeps its turn.
//! A dry run reads the same work and reports the same counts without changing anything.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use model::{ProjectId, StoredSpan, TraceId};
use serde::Serialize;
use store::{RetentionTier, Store, TimeRange, TraceQuery};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{Ages, RetentionConfig};
use super::reduce::reduce;
use crate::sample::{DecisionInputs, decide, feedback_from_record, feedback_from_spans};

/// The state key of a project's downsampling watermark (unix nanoseconds as text): traces that
/// started before it have been decided.
pub const DOWNSAMPLE_WATERMARK_KEY: &str = "retention.downsample.watermark_ns";

/// The most spans a dry run reads per project and tier; past it the report says `capped`.
const DRY_RUN_SPAN_LIMIT: u32 = 1_000_000;

/// Where the runner reads the time; tests pass a fixed clock.
pub trait Clock: Send + Sync + 'static {
    fn now_ns(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}

/// What a pass did (or, in a dry run, would do) to one project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectReport {
    pub project: String,
    /// Traces decided by downsampling.
    pub traces_decided: u64,
    /// Traces deleted by downsampling, and their spans.
    pub traces_downsampled: u64,
    pub spans_downsampled: u64,
    /// Spans deleted because their trace was older than `delete_after`.
    pub spans_deleted: u64,
    /// Spans reduced to the fingerprints tier.
    pub spans_to_fingerprints: u64,
    /// Spans reduced to the structure tier.
    pub spans_to_structure: u64,
    /// A dry run stopped counting at its limit; the real numbers are larger.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub capped: bool,
}

impl ProjectReport {
    fn is_empty(&self) -> bool {
        self.traces_decided == 0
            && self.spans_downsampled == 0
            && self.spans_deleted == 0
            && self.spans_to_fingerprints == 0
            && self.spans_to_structure == 0
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    pub dry_run: bool,
    /// The pass's notion of now (unix nanoseconds), from which ages are counted.
    pub now_ns: u64,
    /// Projects with work, in store order.
    pub projects: Vec<ProjectReport>,
}

impl PassReport {
    /// The sum over projects.
    pub fn total(&self) -> ProjectReport {
        let mut total = ProjectReport { project: "total".into(), ..ProjectReport::default() };
        for p in &self.projects {
            total.traces_decided += p.traces_decided;
            total.traces_downsampled += p.traces_downsampled;
            total.spans_downsampled += p.spans_downsampled;
            total.spans_deleted += p.spans_deleted;
            total.spans_to_fingerprints += p.spans_to_fingerprints;
            total.spans_to_structure += p.spans_to_structure;
            total.capped |= p.capped;
        }
        total
    }
}

/// Running totals of the background runner, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStats {
    pub passes: u64,
    pub pass_errors: u64,
    pub spans_to_structure: u64,
    pub spans_to_fingerprints: u64,
    pub spans_deleted: u64,
    pub traces_decided: u64,
    pub traces_downsampled: u64,
    pub spans_downsampled: u64,
}

#[derive(Default)]
struct Counters {
    passes: AtomicU64,
    pass_errors: AtomicU64,
    spans_to_structure: AtomicU64,
    spans_to_fingerprints: AtomicU64,
    spans_deleted: AtomicU64,
    traces_decided: AtomicU64,
    traces_downsampled: AtomicU64,
    spans_downsampled: AtomicU64,
}

/// The retention runner over one store.
pub struct Retention {
    store: Arc<dyn Store>,
    config: RetentionConfig,
    clock: Arc<dyn Clock>,
    counters: Counters,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Retention {
    pub fn new(config: RetentionConfig, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Retention {
        Retention {
            store,
            config,
            clock,
            counters: Counters::default(),
            stop: watch::channel(false).0,
            task: std::sync::Mutex::new(None),
        }
    }

    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    pub fn stats(&self) -> RetentionStats {
        let counters = &self.counters;
        RetentionStats {
            passes: counters.passes.load(Ordering::Relaxed),
            pass_errors: counters.pass_errors.load(Ordering::Relaxed),
            spans_to_structure: counters.spans_to_structure.load(Ordering::Relaxed),
            spans_to_fingerprints: counters.spans_to_fingerprints.load(Ordering::Relaxed),
            spans_deleted: counters.spans_deleted.load(Ordering::Relaxed),
            traces_decided: counters.traces_decided.load(Ordering::Relaxed),
            traces_downsampled: counters.traces_downsampled.load(Ordering::Relaxed),
            spans_downsampled: counters.spans_downsampled.load(Ordering::Relaxed),
        }
    }

    /// Runs a pass every `interval` on the current tokio runtime (the first one at once) until
    /// [`Retention::shutdown`]. A failed pass is logged and counted; the next one retries.
    pub fn start(self: &Arc<Self>) {
        let this = self.clone();
        let mut stop = self.stop.subscribe();
        let task = tokio::spawn(async move {
            loop {
                match this.run_pass(false, None, &|_| {}).await {
                    Ok(report) => {
                        let total = report.total();
                        if !total.is_empty() {
                            tracing::info!(?total, "retention pass");
                        }
                    }
                    Err(error) => {
                        this.counters.pass_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "retention pass failed; retrying next interval");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(this.config.interval) => {}
                    _ = stop.changed() => break,
                }
                if *stop.borrow() {
                    break;
                }
            }
        });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Stops the background task, letting the store call in flight finish.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// One pass over every project with stored spans, or over `only`. `progress` is called
    /// with the number of spans (or traces, for downsampling) handled after each batch.
    pub async fn run_pass(
        &self,
        dry_run: bool,
        only: Option<&ProjectId>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> store::Result<PassReport> {
        let now_ns = self.clock.now_ns();
        let projects = match only {
            Some(project) => vec![project.clone()],
            None => self.store.span_projects().await?,
        };
        let mut report = PassReport { dry_run, now_ns, projects: Vec::new() };
        for project in projects {
            let ages = self.config.ages(project.as_str());
            let mut project_report =
                ProjectReport { project: project.as_str().to_owned(), ..Default::default() };
            if dry_run {
                self.dry_project(&project, ages, now_ns, &mut project_report, progress).await?;
            } else {
                self.run_project(&project, ages, now_ns, &mut project_report, progress).await?;
            }
            if !project_report.is_empty() {
                report.projects.push(project_report);
            }
        }
        if !dry_run {
            let counters = &self.counters;
            let total = report.total();
            counters.passes.fetch_add(1, Ordering::Relaxed);
            counters.spans_to_structure.fetch_add(total.spans_to_structure, Ordering::Relaxed);
            counters
                .spans_to_fingerprints
                .fetch_add(total.spans_to_fingerprints, Ordering::Relaxed);
            counters.spans_deleted.fetch_add(total.spans_deleted, Ordering::Relaxed);
            counters.traces_decided.fetch_add(total.traces_decided, Ordering::Relaxed);
            counters.traces_downsampled.fetch_add(total.traces_downsampled, Ordering::Relaxed);
            counters.spans_downsampled.fetch_add(total.spans_downsampled, Ordering::Relaxed);
        }
        Ok(report)
    }

    async fn run_project(
        &self,
        project: &ProjectId,
        ages: Ages,
        now_ns: u64,
        project_report: &mut ProjectReport,
        progress: &(dyn Fn(u64) + Sync),
    ) -> store::Result<()> {
        let batch = self.config.batch_size;
        self.downsample(project, ages, now_ns, false, project_report, progress).await?;

        let cutoff = now_ns.saturating_sub(ages.delete_after_ns);
        loop {
            let n = self.store.delete_traces_before(project, cutoff, batch).await?;
            if n == 0 {
                break;
            }
            project_report.spans_deleted += n;
            progress(n);
            tokio::task::yield_now().await;
        }

        for (tier, age_ns) in [
            (RetentionTier::Fingerprints, ages.fingerprints_after_ns),
            (RetentionTier::Structure, ages.structure_after_ns),
        ] {
            let cutoff = now_ns.saturating_sub(age_ns);
            loop {
                let spans = self.store.spans_below_tier(project, tier, cutoff, batch).await?;
                if spans.is_empty() {
                    break;
                }
                let reduced: Vec<StoredSpan> = spans.iter().map(|s| reduce(s, tier)).collect();
                let n = self.store.rewrite_spans(&reduced, tier).await?;
                match tier {
                    RetentionTier::Fingerprints => project_report.spans_to_fingerprints += n,
                    _ => project_report.spans_to_structure += n,
                }
                progress(n);
                // Spans that vanished between the read and the rewrite (a concurrent delete)
                // are skipped by the store; a batch with nothing rewritten would loop forever.
                if n == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    async fn dry_project(
        &self,
        project: &ProjectId,
        ages: Ages,
        now_ns: u64,
        project_report: &mut ProjectReport,
        progress: &(dyn Fn(u64) + Sync),
    ) -> store::Result<()> {
        // The traces the real pass would delete, so later steps do not count their spans.
        let mut gone: HashSet<TraceId> =
            self.downsample(project, ages, now_ns, true, project_report, progress).await?;

        let cutoff = now_ns.saturating_sub(ages.delete_after_ns);
        let mut cursor = None;
        loop {
            let query = TraceQuery {
                time: TimeRange { from_ns: None, to_ns: Some(cutoff) },
                limit: 1000,
                cursor: cursor.take(),
                ..TraceQuery::default()
            };
            let page = self.store.search_traces(project, &query).await?;
            for summary in &page.items {
                if summary.start_ns >= cutoff || gone.contains(&summary.trace_id) {
                    continue;
                }
                let spans = self.store.get_trace(project, summary.trace_id).await?;
                if !spans.is_empty() && spans.iter().all(|s| s.raw.start_time_unix_nano < cutoff) {
                    project_report.spans_deleted += spans.len() as u64;
                    progress(spans.len() as u64);
                    gone.insert(summary.trace_id);
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
            tokio::task::yield_now().await;
        }

        let fp_cutoff = now_ns.saturating_sub(ages.fingerprints_after_ns);
        for (tier, age_ns) in [
            (RetentionTier::Fingerprints, ages.fingerprints_after_ns),
            (RetentionTier::Structure, ages.structure_after_ns),
        ] {
            let cutoff = now_ns.saturating_sub(age_ns);
            let spans =
                self.store.spans_below_tier(project, tier, cutoff, DRY_RUN_SPAN_LIMIT).await?;
            project_report.capped |= spans.len() as u64 >= u64::from(DRY_RUN_SPAN_LIMIT);
            let n = spans
                .iter()
                .filter(|s| !gone.contains(&s.raw.trace_id))
                // Spans the fingerprints step takes are not rewritten again to structure.
                .filter(|s| {
                    tier == RetentionTier::Fingerprints || s.raw.start_time_unix_nano >= fp_cutoff
                })
                .count() as u64;
            match tier {
                RetentionTier::Fingerprints => project_report.spans_to_fingerprints += n,
                _ => project_report.spans_to_structure += n,
            }
            progress(n);
        }
        Ok(())
    }

    /// The downsampling step; returns the traces it dropped (deleted, or in a dry run, would
    /// delete).
    async fn downsample(
        &self,
        project: &ProjectId,
        ages: Ages,
        now_ns: u64,
        dry_run: bool,
        project_report: &mut ProjectReport,
        progress: &(dyn Fn(u64) + Sync),
    ) -> store::Result<HashSet<TraceId>> {
        let mut dropped_all = HashSet::new();
        let Some(downsample) = self.config.downsample.as_ref().filter(|_| ages.downsample) else {
            return Ok(dropped_all);
        };
        let watermark = self
            .store
            .get_state(project, DOWNSAMPLE_WATERMARK_KEY)
            .await?
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0);
        let end = now_ns.saturating_sub(downsample.after_ns);
        if watermark >= end {
            return Ok(dropped_all);
        }
        let mut cursor = None;
        loop {
            let query = TraceQuery {
                time: TimeRange { from_ns: Some(watermark), to_ns: Some(end) },
                limit: self.config.batch_size.min(1000),
                cursor: cursor.take(),
                ..TraceQuery::default()
            };
            let page = self.store.search_traces(project, &query).await?;
            let mut dropped = Vec::new();
            let mut dropped_spans = 0u64;
            for summary in &page.items {
                if summary.start_ns < watermark || summary.start_ns >= end {
                    continue;
                }
                let spans = self.store.get_trace(project, summary.trace_id).await?;
                if spans.is_empty() {
                    continue;
                }
                let mut feedback = feedback_from_spans(&spans);
                match self.store.trace_feedback(project, summary.trace_id).await {
                    Ok(records) => feedback.extend(records.iter().flat_map(feedback_from_record)),
                    Err(error) => tracing::debug!(%error, "no stored feedback for downsampling"),
                }
                // No running p99 at retention time: `percentile` latency policies do not match.
                let inputs = DecisionInputs { feedback, root_name_p99_ns: None };
                project_report.traces_decided += 1;
                if !decide(&downsample.policies, &spans, &inputs).keep {
                    dropped.push(summary.trace_id);
                    dropped_spans += spans.len() as u64;
                }
            }
            if !dropped.is_empty() {
                project_report.traces_downsampled += dropped.len() as u64;
                // Counted from what was read: a backend may defer part of a deletion (SQLite
                // keeps the trace holding the newest row until a later delete), but it is
                // recorded and done.
                project_report.spans_downsampled += dropped_spans;
                if !dry_run {
                    self.store.delete_traces(project, &dropped).await?;
                }
                dropped_all.extend(dropped);
            }
            progress(page.items.len() as u64);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
            tokio::task::yield_now().await;
        }
        if !dry_run {
            self.store.put_state(project, DOWNSAMPLE_WATERMARK_KEY, &end.to_string()).await?;
        }
        Ok(dropped_all)
    }
}
