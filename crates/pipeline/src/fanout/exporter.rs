//! One exporter: a bounded buffer of spans and the task that sends them in batches over
//! OTLP/HTTP (protobuf), with retries.
//!
//! **Buffer:** when it holds `max_buffered_spans`, new spans are dropped (and counted), so the
//! oldest spans, already waiting, go out first and ingestion never waits for a slow backend.
//!
//! **Retries:** a batch is retried on a connection error or timeout and on 429, 502, 503 and
//! 504, after the server's `Retry-After` (seconds) when it sends one, else after an
//! exponential backoff (200 ms doubling up to 10 s), until `max_retry` has passed; then it is
//! counted as failed. Other answers fail the batch at once. At shutdown what is buffered gets
//! one attempt per batch, until one fails; the rest is then counted as failed.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use model::RawSpan;
use prost::Message as _;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::config::FanoutConfig;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Counters of one exporter, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanoutStats {
    pub name: String,
    /// Spans waiting in the buffer now.
    pub buffered_spans: u64,
    pub sent_spans: u64,
    /// Spans dropped because the buffer was full.
    pub dropped_spans: u64,
    /// Spans given up after retries, or refused by the backend.
    pub failed_spans: u64,
    /// Requests sent, retries included.
    pub requests: u64,
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    sent_spans: AtomicU64,
    dropped_spans: AtomicU64,
    failed_spans: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

pub(crate) struct Exporter {
    pub(crate) config: FanoutConfig,
    /// Invariant: at most `config.max_buffered_spans` spans.
    buffer: Mutex<VecDeque<RawSpan>>,
    filled: Notify,
    counters: Counters,
}

impl Exporter {
    pub(crate) fn new(config: FanoutConfig) -> Exporter {
        Exporter {
            config,
            buffer: Mutex::new(VecDeque::new()),
            filled: Notify::new(),
            counters: Counters::default(),
        }
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, VecDeque<RawSpan>> {
        // The buffer is a plain queue, valid even if a holder panicked.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds spans without waiting; what does not fit is dropped and counted.
    pub(crate) fn enqueue(&self, spans: Vec<RawSpan>) {
        let n_spans = spans.len();
        let n_dropped = {
            let mut buffer = self.buffer();
            let room = self.config.max_buffered_spans.saturating_sub(buffer.len());
            buffer.extend(spans.into_iter().take(room));
            n_spans.saturating_sub(room)
        };
        if n_dropped > 0 {
            self.counters.dropped_spans.fetch_add(n_dropped as u64, Ordering::Relaxed);
        }
        self.filled.notify_one();
    }

    pub(crate) fn stats(&self) -> FanoutStats {
        let c = &self.counters;
        FanoutStats {
            name: self.config.name.clone(),
            buffered_spans: self.buffer().len() as u64,
            sent_spans: c.sent_spans.load(Ordering::Relaxed),
            dropped_spans: c.dropped_spans.load(Ordering::Relaxed),
            failed_spans: c.failed_spans.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    fn take_batch(&self) -> Vec<RawSpan> {
        let mut buffer = self.buffer();
        let n = buffer.len().min(self.config.batch_size);
        buffer.drain(..n).collect()
    }

    /// Waits until a batch is full, the flush interval has passed, or shutdown; `true` on
    /// shutdown.
    async fn wait_for_batch(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let deadline = Instant::now() + self.config.flush_interval;
        loop {
            if *stop.borrow() {
                return true;
            }
            if self.buffer().len() >= self.config.batch_size {
                return false;
            }
            tokio::select! {
                _ = self.filled.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return false,
                _ = stop.changed() => return true,
            }
        }
    }

    /// The exporter's task: batches until shutdown, then one attempt for what is left.
    pub(crate) async fn run(&self, client: reqwest::Client, mut stop: watch::Receiver<bool>) {
        loop {
            let stopping = self.wait_for_batch(&mut stop).await;
            loop {
                let batch = self.take_batch();
                if batch.is_empty() {
                    break;
                }
                let sent = self.send(&client, &batch, &mut stop).await;
                if stopping && !sent {
                    // The backend is failing: do not hold up shutdown with one attempt per batch.
                    let n_left = std::mem::take(&mut *self.buffer()).len() as u64;
                    self.counters.failed_spans.fetch_add(n_left, Ordering::Relaxed);
                    break;
                }
                if !stopping && self.buffer().len() < self.config.batch_size {
                    break;
                }
            }
            if stopping {
                break;
            }
        }
    }

    /// Sends one batch, retrying as described in the module docs; `false` when it failed.
    async fn send(
        &self,
        client: &reqwest::Client,
        batch: &[RawSpan],
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let n_spans = batch.len() as u64;
        let body = bytes_of(batch);
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = client
                .post(self.config.endpoint.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .timeout(self.config.timeout)
                .body(body.clone());
            for (key, value) in &self.config.headers {
                request = request.header(key.clone(), value.clone());
            }
            let retry_after = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    self.counters.sent_spans.fetch_add(n_spans, Ordering::Relaxed);
                    return true;
                }
                Ok(response) if is_retryable(response.status()) => {
                    tracing::debug!(exporter = %self.config.name, status = %response.status(), "fan-out batch will be retried");
                    retry_after(response.headers())
                }
                Ok(response) => {
                    self.counters.failed_spans.fetch_add(n_spans, Ordering::Relaxed);
                    tracing::warn!(exporter = %self.config.name, status = %response.status(), n_spans, "fan-out backend refused a batch");
                    return false;
                }
                Err(error) => {
                    tracing::debug!(exporter = %self.config.name, %error, "fan-out request failed");
                    None
                }
            };
            attempt += 1;
            let delay = retry_after.unwrap_or_else(|| backoff(attempt));
            if *stop.borrow() || started.elapsed() + delay > self.config.max_retry {
                self.counters.failed_spans.fetch_add(n_spans, Ordering::Relaxed);
                tracing::warn!(exporter = %self.config.name, n_spans, attempts = attempt, "fan-out gave up a batch");
                return false;
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                // At shutdown the batch gets this one last attempt.
                _ = stop.changed() => {}
            }
        }
    }
}

fn bytes_of(batch: &[RawSpan]) -> Vec<u8> {
    otlp::to_request(batch).encode_to_vec()
}

fn is_retryable(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// `Retry-After` in seconds (the HTTP-date form is not used by OTLP backends), capped at 5
/// minutes.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 =
        headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(300)))
}

fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}
