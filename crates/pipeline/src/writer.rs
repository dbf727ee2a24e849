//! The write queue and group commit. Requests enqueue processed spans and wait on a oneshot; a
//! single writer task drains everything queued into one store write and answers all of them.
//! The queue is bounded in spans by a semaphore, so memory stays bounded under any load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use model::StoredSpan;
use store::{Store, WriteStats};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{Error, PipelineConfig};

struct Job {
    spans: Vec<StoredSpan>,
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
}

#[derive(Default)]
struct Counters {
    written_spans: AtomicU64,
    duplicate_spans: AtomicU64,
    rejected_overload: AtomicU64,
    store_writes: AtomicU64,
    store_errors: AtomicU64,
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
    pub(crate) fn start(config: &PipelineConfig, store: Arc<dyn Store>) -> WriterHandle {
        // The channel is unbounded in jobs but every job holds permits for its spans, so the
        // total queued is bounded by `max_queued_spans`.
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(rx, store, config.max_batch_spans, counters.clone()));
        WriterHandle {
            tx,
            permits: Arc::new(Semaphore::new(config.max_queued_spans)),
            capacity: config.max_queued_spans,
            retry_after_secs: config.retry_after_secs,
            counters,
            done: Arc::new(tokio::sync::Mutex::new(Some(task))),
        }
    }

    pub(crate) async fn write(&self, spans: Vec<StoredSpan>) -> Result<WriteStats, Error> {
        let n_spans = spans.len();
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
        self.tx.send(Job { spans, reply, _permit: permit }).map_err(|_| Error::ShuttingDown)?;
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
        Job { spans: Vec::new(), reply, _permit: permit }
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Job>,
    store: Arc<dyn Store>,
    max_batch_spans: usize,
    counters: Arc<Counters>,
) {
    let mut stopping = false;
    while !stopping {
        let Some(first) = rx.recv().await else { break };
        let mut jobs = vec![first];
        let mut n_spans = jobs[0].spans.len();
        while n_spans < max_batch_spans {
            match rx.try_recv() {
                Ok(job) => {
                    n_spans += job.spans.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        stopping = jobs.iter().any(|job| job.spans.is_empty());
        let jobs: Vec<Job> = jobs.into_iter().filter(|job| !job.spans.is_empty()).collect();
        if jobs.is_empty() {
            continue;
        }
        write_group(&*store, jobs, &counters).await;
    }
}

/// Writes the spans of many jobs in one store call and answers each job.
async fn write_group(store: &dyn Store, jobs: Vec<Job>, counters: &Counters) {
    let mut all: Vec<StoredSpan> = Vec::with_capacity(jobs.iter().map(|j| j.spans.len()).sum());
    let mut lens = Vec::with_capacity(jobs.len());
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        lens.push(job.spans.len());
        all.extend(job.spans);
        replies.push((job.reply, job._permit));
    }
    counters.store_writes.fetch_add(1, Ordering::Relaxed);
    match store.write_spans(&all).await {
        Ok(stats) => {
            counters.written_spans.fetch_add(stats.n_written, Ordering::Relaxed);
            counters.duplicate_spans.fetch_add(stats.n_duplicates, Ordering::Relaxed);
            // Per-job stats are not tracked by the store; each job gets its own span count as
            // written, and the duplicate total is reported on the group.
            for ((reply, permit), len) in replies.into_iter().zip(lens) {
                let _ = reply.send(Ok(WriteStats { n_written: len as u64, n_duplicates: 0 }));
                drop(permit);
            }
        }
        Err(error) => {
            counters.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %error, n_spans = all.len(), "store write failed");
            let message = error.to_string();
            let code = error.code();
            for (reply, permit) in replies {
                let error = match code {
                    model::ErrorCode::Unavailable => store::Error::Unavailable(message.clone()),
                    _ => store::Error::Internal(message.clone()),
                };
                let _ = reply.send(Err(Error::Store(error)));
                drop(permit);
            }
        }
    }
}
