//! The write queue and group commit. Requests enqueue processed spans (or span events that
//! arrived apart from their spans) and wait on a oneshot; a single writer task drains everything
//! queued into one store write and answers all of them. The queue is bounded in spans (an event
//! counts as a span) by a semaphore, so memory stays bounded under any load.
//!
//! After each write the writer merges saved span events into their stored spans (see
//! `merge.rs`) before it answers, so an acknowledged span or event is visible merged. Being the
//! one task that writes spans and events is what makes that merge race-free: whichever of a span
//! and its events is written second finds the other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use model::{ProjectId, SpanEvent, SpanId, StoredSpan, TraceId};
use store::{Store, WriteStats};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::sample::SampleConfig;
use crate::{Error, PipelineConfig, ProcessorChain};

/// What a job writes.
enum Work {
    /// Spans, with their records when the store encoded them ahead (`Store::encode_records`).
    Spans(Vec<StoredSpan>, Option<Vec<Vec<u8>>>),
    Events {
        project: ProjectId,
        events: Vec<SpanEvent>,
    },
    /// Merge saved events into these spans, stored by the sampler when it kept their trace.
    Merge(Keys),
}

impl Work {
    fn len(&self) -> usize {
        match self {
            Work::Spans(spans, _) => spans.len(),
            Work::Events { events, .. } => events.len(),
            Work::Merge(keys) => keys.values().map(BTreeSet::len).sum(),
        }
    }
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<WriteStats, Error>>,
    /// Returned to the semaphore when the job is answered.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    pub queued_spans: u64,
    pub capacity_spans: u64,
    pub written_spans: u64,
    pub duplicate_spans: u64,
    pub rejected_overload: u64,
    pub store_writes: u64,
    pub store_errors: u64,
    /// Span events saved apart from their spans (OTLP log records).
    pub saved_events: u64,
    /// Stored spans rewritten with saved events merged in.
    pub merged_spans: u64,
    /// Seconds the writer spent writing groups: its busy share is the rate of this, and near
    /// 1 it is the ingest bottleneck (the queue fills, then 429/503).
    pub busy_seconds: f64,
}

#[derive(Default)]
struct Counters {
    written_spans: AtomicU64,
    duplicate_spans: AtomicU64,
    rejected_overload: AtomicU64,
    store_writes: AtomicU64,
    store_errors: AtomicU64,
    saved_events: AtomicU64,
    merged_spans: AtomicU64,
    busy_nanos: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::UnboundedSender<Job>,
    permits: Arc<Semaphore>,
    capacity: usize,
    retry_after_secs: u32,
    counters: Arc<Counters>,
    done: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl WriterHandle {
    pub(crate) fn start(
        config: &PipelineConfig,
        store: Arc<dyn Store>,
        processors: Arc<ProcessorChain>,
    ) -> WriterHandle {
        // The channel is unbounded in jobs but every job holds permits for its spans, so the
        // total queued is bounded by `max_queued_spans`.
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(
            rx,
            store,
            processors,
            (config.max_batch_spans, config.sampling.clone()),
            counters.clone(),
        ));
        WriterHandle {
            tx,
            permits: Arc::new(Semaphore::new(config.max_queued_spans)),
            capacity: config.max_queued_spans,
            retry_after_secs: config.retry_after_secs,
            counters,
            done: Arc::new(tokio::sync::Mutex::new(Some(task))),
        }
    }

    /// `records`: the spans' records when the store encoded them ahead.
    pub(crate) async fn write(
        &self,
        spans: Vec<StoredSpan>,
        records: Option<Vec<Vec<u8>>>,
    ) -> Result<WriteStats, Error> {
        self.enqueue(Work::Spans(spans, records)).await
    }

    /// Merges saved events into these spans (stored by tail sampling, outside the writer),
    /// in the writer so that it cannot race a merge of the writer's own.
    pub(crate) async fn merge_events(&self, keys: Keys) -> Result<(), Error> {
        if keys.values().all(BTreeSet::is_empty) {
            return Ok(());
        }
        self.enqueue(Work::Merge(keys)).await.map(|_| ())
    }

    /// Saves span events durably, merged into their span when it is stored.
    pub(crate) async fn write_events(
        &self,
        project: ProjectId,
        events: Vec<SpanEvent>,
    ) -> Result<WriteStats, Error> {
        self.enqueue(Work::Events { project, events }).await
    }

    async fn enqueue(&self, work: Work) -> Result<WriteStats, Error> {
        let n_spans = work.len();
        if n_spans > self.capacity {
            return Err(Error::BatchTooLarge { n_spans, capacity: self.capacity });
        }
        let n_permits = u32::try_from(n_spans).unwrap_or(u32::MAX);
        let permit = match self.permits.clone().try_acquire_many_owned(n_permits) {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                self.counters.rejected_overload.fetch_add(n_spans as u64, Ordering::Relaxed);
                return Err(Error::Overloaded {
                    queued_spans: (self.capacity - self.permits.available_permits()) as u64,
                    retry_after_secs: self.retry_after_secs,
                });
            }
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Error::ShuttingDown),
        };
        let (reply, answer) = oneshot::channel();
        self.tx.send(Job { work, reply, _permit: permit }).map_err(|_| Error::ShuttingDown)?;
        answer.await.unwrap_or(Err(Error::ShuttingDown))
    }

    pub(crate) fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            queued_spans: (self.capacity - self.permits.available_permits()) as u64,
            capacity_spans: self.capacity as u64,
            written_spans: c.written_spans.load(Ordering::Relaxed),
            duplicate_spans: c.duplicate_spans.load(Ordering::Relaxed),
            rejected_overload: c.rejected_overload.load(Ordering::Relaxed),
            store_writes: c.store_writes.load(Ordering::Relaxed),
            store_errors: c.store_errors.load(Ordering::Relaxed),
            saved_events: c.saved_events.load(Ordering::Relaxed),
            merged_spans: c.merged_spans.load(Ordering::Relaxed),
            busy_seconds: c.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }

    pub(crate) async fn shutdown(&self) {
        self.permits.close();
        let task = self.done.lock().await.take();
        if let Some(task) = task {
            // Dropping our sender is not enough (clones exist); the writer exits when the
            // semaphore is closed and the channel is drained.
            let _ = self.tx.send(Job::stop());
            let _ = task.await;
        }
    }
}

impl Job {
    /// A sentinel job with no spans that tells the writer to stop after draining.
    fn stop() -> Job {
        let (reply, _) = oneshot::channel();
        let permit = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a fresh semaphore with one permit has one permit");
        Job { work: Work::Spans(Vec::new(), None), reply, _permit: permit }
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Job>,
    store: Arc<dyn Store>,
    processors: Arc<ProcessorChain>,
    (max_batch_spans, sampling): (usize, Option<SampleConfig>),
    counters: Arc<Counters>,
) {
    let mut stopping = false;
    while !stopping {
        let Some(first) = rx.recv().await else { break };
        let mut jobs = vec![first];
        let mut n_spans = jobs[0].work.len();
        while n_spans < max_batch_spans {
            match rx.try_recv() {
                Ok(job) => {
                    n_spans += job.work.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        stopping = jobs.iter().any(|job| job.work.len() == 0);
        let jobs: Vec<Job> = jobs.into_iter().filter(|job| job.work.len() > 0).collect();
        if jobs.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        write_group(&*store, &processors, jobs, sampling.as_ref(), &counters).await;
        let busy = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        counters.busy_nanos.fetch_add(busy, Ordering::Relaxed);
    }
}

/// The spans a job wrote, by project.
pub(crate) type Keys = BTreeMap<ProjectId, BTreeSet<(TraceId, SpanId)>>;

fn add_keys(keys: &mut Keys, work: &Work) {
    match work {
        Work::Spans(spans, _) => {
            for span in spans {
                keys.entry(span.project.clone())
                    .or_default()
                    .insert((span.raw.trace_id, span.raw.span_id));
            }
        }
        Work::Events { project, events } => {
            let entry = keys.entry(project.clone()).or_default();
            entry.extend(events.iter().map(|it| (it.trace_id, it.span_id)));
        }
        Work::Merge(merge) => {
            for (project, spans) in merge {
                keys.entry(project.clone()).or_default().extend(spans.iter().copied());
            }
        }
    }
}

/// Writes a group of jobs: the spans of all span jobs in one store call, the events of each
/// event job, then merges saved events into stored spans, and answers each job.
async fn write_group(
    store: &dyn Store,
    processors: &ProcessorChain,
    jobs: Vec<Job>,
    sampling: Option<&SampleConfig>,
    counters: &Counters,
) {
    let (span_jobs, other_jobs): (Vec<Job>, Vec<Job>) =
        jobs.into_iter().partition(|job| matches!(job.work, Work::Spans(..)));
    let (merge_jobs, event_jobs): (Vec<Job>, Vec<Job>) =
        other_jobs.into_iter().partition(|job| matches!(job.work, Work::Merge(_)));
    let mut done: Vec<(Job, Result<WriteStats, Error>)> = Vec::new();
    let mut keys = Keys::new();
    if !span_jobs.is_empty() {
        done.extend(write_span_jobs(store, span_jobs, sampling, counters, &mut keys).await);
    }
    for job in merge_jobs {
        add_keys(&mut keys, &job.work);
        done.push((job, Ok(WriteStats::default())));
    }
    for job in event_jobs {
        let Work::Events { project, events } = &job.work else { continue };
        let res = match store.put_span_events(project, events).await {
            Ok(()) => {
                counters.saved_events.fetch_add(events.len() as u64, Ordering::Relaxed);
                Ok(WriteStats { n_written: events.len() as u64, n_duplicates: 0 })
            }
            Err(error) => {
                counters.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %error, n_events = events.len(), "saving span events failed");
                Err(Error::Store(error))
            }
        };
        done.push((job, res));
    }
    for (job, res) in &done {
        if res.is_ok() && matches!(job.work, Work::Events { .. }) {
            add_keys(&mut keys, &job.work);
        }
    }
    // A failed merge fails the jobs that took part in it: what they wrote is durable, and the
    // client's retry (a duplicate write) runs the merge again.
    let merge_error = match crate::merge::merge_saved_events(store, processors, keys).await {
        Ok(n_merged) => {
            counters.merged_spans.fetch_add(n_merged, Ordering::Relaxed);
            None
        }
        Err(error) => {
            counters.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %error, "merging span events into their spans failed");
            Some(error)
        }
    };
    for (job, res) in done {
        let res = match (&merge_error, res) {
            (Some(error), Ok(_)) => Err(Error::Store(copy_error(error))),
            (_, res) => res,
        };
        let _ = job.reply.send(res);
        drop(job._permit);
    }
}

fn copy_error(error: &store::Error) -> store::Error {
    match error.code() {
        model::ErrorCode::Unavailable => store::Error::Unavailable(error.to_string()),
        _ => store::Error::Internal(error.to_string()),
    }
}

/// Writes the spans of many jobs in one store call; returns each job with its outcome and
/// adds the written spans to `keys`.
async fn write_span_jobs(
    store: &dyn Store,
    mut jobs: Vec<Job>,
    sampling: Option<&SampleConfig>,
    counters: &Counters,
    keys: &mut Keys,
) -> Vec<(Job, Result<WriteStats, Error>)> {
    let n_spans = jobs.iter().map(|j| j.work.len()).sum();
    let mut all: Vec<StoredSpan> = Vec::with_capacity(n_spans);
    // The records encoded ahead, when every job has them.
    let mut records: Option<Vec<Vec<u8>>> = Some(Vec::with_capacity(n_spans));
    let mut lens = Vec::with_capacity(jobs.len());
    for job in &mut jobs {
        if let Work::Spans(spans, job_records) = &mut job.work {
            lens.push(spans.len() as u64);
            all.append(spans);
            match (&mut records, job_records.take()) {
                (Some(records), Some(mut job_records)) => records.append(&mut job_records),
                _ => records = None,
            }
        }
    }
    counters.store_writes.fetch_add(1, Ordering::Relaxed);
    let written = match sampling {
        Some(sampling) => {
            let kept: Vec<bool> =
                all.iter().map(|span| sampling.kept_at_once(span.raw.trace_id)).collect();
            store.stage_spans(&all, &kept, records.as_deref()).await
        }
        None => match &records {
            Some(records) => store.write_spans_encoded(&all, records).await,
            None => store.write_spans(&all).await,
        },
    };
    match written {
        Ok(stats) => {
            counters.written_spans.fetch_add(stats.n_written, Ordering::Relaxed);
            counters.duplicate_spans.fetch_add(stats.n_duplicates, Ordering::Relaxed);
            let work = Work::Spans(all, records);
            add_keys(keys, &work);
            // Freeing a group (every attribute and message is its own allocation) takes a few
            // milliseconds: the blocking pool does it, and the writer goes on.
            tokio::task::spawn_blocking(move || drop(work));
            // Per-job stats are not tracked by the store; each job gets its own span count as
            // written, and the duplicate total is reported on the group.
            jobs.into_iter()
                .zip(lens)
                .map(|(job, n_written)| (job, Ok(WriteStats { n_written, n_duplicates: 0 })))
                .collect()
        }
        Err(error) => {
            counters.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %error, n_spans = all.len(), "store write failed");
            jobs.into_iter().map(|job| (job, Err(Error::Store(copy_error(&error))))).collect()
        }
    }
}
