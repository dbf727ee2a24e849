//! Recording off the request path. A call hands a description of itself to a bounded queue and
//! returns at once; a dedicated recording thread (its own single-threaded runtime, so recording
//! never takes a turn on the workers serving calls) builds the spans and drains the queue into
//! the pipeline in batches, letting a batch fill for a few milliseconds so the store writes
//! fewer, larger transactions. When the queue is full
//! or the pipeline fails, spans go to a local spill file (written by a dedicated thread, so no
//! request ever waits on disk) and are replayed when the pipeline accepts them again. Only when
//! the spill file is full too are spans dropped: counted on `/metrics` and logged.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use model::{ProjectId, RawSpan};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::config::RecordingConfig;
use crate::metrics::GatewayMetrics;

/// Where recorded spans go: the pipeline in production, a capturing sink in tests.
pub trait RecordSink: Send + Sync + 'static {
    /// Submits one batch; `Ok` once it is durably written.
    fn submit(
        &self,
        batch: pipeline::Batch,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

impl RecordSink for pipeline::Pipeline {
    fn submit(
        &self,
        batch: pipeline::Batch,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            pipeline::Pipeline::submit(self, batch).await.map(|_| ()).map_err(|e| e.to_string())
        })
    }
}

/// An ended call waiting to be described as spans (on the recording thread).
pub(crate) type PendingRecord = Box<dyn FnOnce() -> Record + Send>;

/// The spans of one call, in one project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub project: ProjectId,
    pub spans: Vec<RawSpan>,
}

enum SpillMsg {
    Write(Vec<Record>),
    /// Close the open segment and answer with every closed segment, oldest first.
    Seal(oneshot::Sender<Vec<PathBuf>>),
    Stop,
}

pub(crate) struct Recorder {
    tx: mpsc::Sender<PendingRecord>,
    spill_tx: std::sync::mpsc::SyncSender<SpillMsg>,
    metrics: GatewayMetrics,
    stop: Arc<Notify>,
    /// Answered when the recording thread has written what was queued and stopped.
    stopped: parking_lot::Mutex<Option<oneshot::Receiver<()>>>,
    warned_at: Arc<AtomicU64>,
}

/// The most spans the worker hands the pipeline in one batch (spilled segments), and the most
/// calls it collects into one batch.
const MAX_BATCH_SPANS: usize = 4096;

/// How long the worker lets a batch fill after its first call. At 1,000 calls a second this
/// turns 1,000 store transactions into about 200, which is most of the recording's CPU cost.
/// Longer batches cost less CPU but process in longer bursts that delay the calls sharing the
/// core: measured at 1,000 calls a second, 20 ms gave an added p99 of 1.5–1.75 ms, 5 ms
/// 0.85–1.24 ms, 1 ms 0.6–0.8 ms but a p50 0.05 ms higher (BENCHMARKS.md).
const BATCH_LINGER: Duration = Duration::from_millis(5);

impl Recorder {
    pub(crate) fn start(
        config: &RecordingConfig,
        sink: Arc<dyn RecordSink>,
        spill_dir: PathBuf,
        metrics: GatewayMetrics,
    ) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(&spill_dir)?;
        let spilled_bytes = Arc::new(AtomicU64::new(existing_spill_bytes(&spill_dir)?));
        let (tx, rx) = mpsc::channel(config.queue_calls);
        // The spill thread's own queue is generous: it only fills when the disk cannot keep up.
        let (spill_tx, spill_rx) = std::sync::mpsc::sync_channel(config.queue_calls.max(1024));
        let warned_at = Arc::new(AtomicU64::new(0));
        let spill = SpillWriter {
            dir: spill_dir,
            max_bytes: config.spill_max_bytes,
            total_bytes: spilled_bytes.clone(),
            metrics: metrics.clone(),
            warned_at: warned_at.clone(),
            current: None,
            seq: 0,
        };
        std::thread::Builder::new()
            .name("loupe-gateway-spill".to_owned())
            .spawn(move || spill.run(spill_rx))?;
        let stop = Arc::new(Notify::new());
        let worker = Worker {
            sink,
            spill_tx: spill_tx.clone(),
            metrics: metrics.clone(),
            spilled_bytes,
            warned_at: warned_at.clone(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stopped_tx, stopped) = oneshot::channel();
        let worker_stop = stop.clone();
        let replay_interval = config.replay_interval;
        std::thread::Builder::new().name("loupe-gateway-rec".to_owned()).spawn(move || {
            runtime.block_on(worker.run(rx, worker_stop, replay_interval));
            let _ = stopped_tx.send(());
        })?;
        Ok(Recorder {
            tx,
            spill_tx,
            metrics,
            stop,
            stopped: parking_lot::Mutex::new(Some(stopped)),
            warned_at,
        })
    }

    /// Queues an ended call. Never blocks and never fails the call: when the queue is full, the
    /// call is described here and spilled.
    pub(crate) fn record(&self, pending: PendingRecord) {
        match self.tx.try_send(pending) {
            Ok(()) => {
                self.metrics.queue_depth.inc();
            }
            Err(mpsc::error::TrySendError::Full(pending))
            | Err(mpsc::error::TrySendError::Closed(pending)) => {
                spill(&self.spill_tx, vec![pending()], &self.metrics, &self.warned_at);
            }
        }
    }

    /// Writes what is queued (spilling what the pipeline refuses) and stops the worker.
    pub(crate) async fn shutdown(&self) {
        let stopped = self.stopped.lock().take();
        if let Some(stopped) = stopped {
            self.stop.notify_one();
            let _ = stopped.await;
        }
    }
}

fn spill(
    spill_tx: &std::sync::mpsc::SyncSender<SpillMsg>,
    records: Vec<Record>,
    metrics: &GatewayMetrics,
    warned_at: &AtomicU64,
) {
    let n_spans: usize = records.iter().map(|r| r.spans.len()).sum();
    if let Err(
        std::sync::mpsc::TrySendError::Full(_) | std::sync::mpsc::TrySendError::Disconnected(_),
    ) = spill_tx.try_send(SpillMsg::Write(records))
    {
        metrics.dropped_spans.inc_by(n_spans as u64);
        warn_limited(warned_at, || {
            tracing::warn!(n_spans, "recording queue and spill queue are full; dropped spans")
        });
    }
}

/// Logs at most once a second, so an overload does not flood the log.
fn warn_limited(warned_at: &AtomicU64, log: impl FnOnce()) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = warned_at.load(Ordering::Relaxed);
    if now > last
        && warned_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        log();
    }
}

struct Worker {
    sink: Arc<dyn RecordSink>,
    spill_tx: std::sync::mpsc::SyncSender<SpillMsg>,
    metrics: GatewayMetrics,
    spilled_bytes: Arc<AtomicU64>,
    warned_at: Arc<AtomicU64>,
}

impl Worker {
    async fn run(
        self,
        mut rx: mpsc::Receiver<PendingRecord>,
        stop: Arc<Notify>,
        replay_interval: Duration,
    ) {
        let mut tick = tokio::time::interval(replay_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.notified() => {
                    loop {
                        let batch = self.drain(&mut rx);
                        if batch.is_empty() {
                            break;
                        }
                        self.submit(batch).await;
                    }
                    break;
                }
                first = rx.recv() => {
                    let Some(first) = first else { break };
                    let mut pending = vec![first];
                    let linger = tokio::time::sleep(BATCH_LINGER);
                    tokio::pin!(linger);
                    while pending.len() < MAX_BATCH_SPANS {
                        tokio::select! {
                            biased;
                            next = rx.recv() => match next {
                                Some(next) => pending.push(next),
                                None => break,
                            },
                            _ = &mut linger => break,
                        }
                    }
                    let batch = self.build(pending);
                    self.submit(batch).await;
                }
                _ = tick.tick() => {
                    if self.spilled_bytes.load(Ordering::Relaxed) > 0 {
                        self.replay().await;
                    }
                }
            }
        }
        let _ = self.spill_tx.send(SpillMsg::Stop);
    }

    /// What is queued now, described, up to a batch.
    fn drain(&self, rx: &mut mpsc::Receiver<PendingRecord>) -> Vec<Record> {
        let mut pending = Vec::new();
        while pending.len() < MAX_BATCH_SPANS {
            match rx.try_recv() {
                Ok(next) => pending.push(next),
                Err(_) => break,
            }
        }
        self.build(pending)
    }

    fn build(&self, pending: Vec<PendingRecord>) -> Vec<Record> {
        self.metrics.queue_depth.dec_by(pending.len() as i64);
        pending.into_iter().map(|pending| pending()).collect()
    }

    /// Submits records grouped by project; what fails is spilled.
    async fn submit(&self, records: Vec<Record>) {
        let mut by_project: BTreeMap<ProjectId, Vec<RawSpan>> = BTreeMap::new();
        for record in records {
            by_project.entry(record.project).or_default().extend(record.spans);
        }
        for (project, spans) in by_project {
            let n_spans = spans.len() as u64;
            let batch = pipeline::Batch { project: project.clone(), spans };
            let kept = batch.spans.clone();
            match self.sink.submit(batch).await {
                Ok(()) => {
                    self.metrics.recorded_spans.inc_by(n_spans);
                }
                Err(error) => {
                    warn_limited(
                        &self.warned_at,
                        || tracing::warn!(%error, n_spans, "pipeline refused gateway spans; spilling them"),
                    );
                    spill(
                        &self.spill_tx,
                        vec![Record { project, spans: kept }],
                        &self.metrics,
                        &self.warned_at,
                    );
                }
            }
        }
    }

    /// Replays sealed spill segments, oldest first, until one fails.
    async fn replay(&self) {
        let (reply, answer) = oneshot::channel();
        if self.spill_tx.send(SpillMsg::Seal(reply)).is_err() {
            return;
        }
        let Ok(segments) = answer.await else { return };
        for path in segments {
            let read_path = path.clone();
            let loaded = tokio::task::spawn_blocking(move || read_segment(&read_path)).await;
            let (records, n_bytes) = match loaded {
                Ok(Ok(loaded)) => loaded,
                Ok(Err(error)) => {
                    tracing::warn!(%error, path = %path.display(), "cannot read spill segment");
                    return;
                }
                Err(_) => return,
            };
            let mut by_project: BTreeMap<ProjectId, Vec<RawSpan>> = BTreeMap::new();
            for record in records {
                by_project.entry(record.project).or_default().extend(record.spans);
            }
            for (project, spans) in by_project {
                for chunk in spans.chunks(MAX_BATCH_SPANS) {
                    let batch = pipeline::Batch { project: project.clone(), spans: chunk.to_vec() };
                    if let Err(error) = self.sink.submit(batch).await {
                        warn_limited(
                            &self.warned_at,
                            || tracing::warn!(%error, "replaying spilled spans failed; will retry"),
                        );
                        return;
                    }
                    self.metrics.replayed_spans.inc_by(chunk.len() as u64);
                    self.metrics.recorded_spans.inc_by(chunk.len() as u64);
                }
            }
            // Spans already written are skipped by the store, so a segment replayed twice after
            // a crash between the write and this removal does no harm.
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::warn!(%error, path = %path.display(), "cannot remove replayed spill segment");
                return;
            }
            self.spilled_bytes.fetch_sub(
                n_bytes.min(self.spilled_bytes.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
        }
    }
}

fn read_segment(path: &Path) -> std::io::Result<(Vec<Record>, u64)> {
    let file = std::fs::File::open(path)?;
    let n_bytes = file.metadata()?.len();
    let mut res = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(record) => res.push(record),
            // A torn last line after a crash; the rest of the segment is still good.
            Err(error) => {
                tracing::warn!(%error, line = n + 1, path = %path.display(), "skipping unreadable spill line")
            }
        }
    }
    Ok((res, n_bytes))
}

fn existing_spill_bytes(dir: &Path) -> std::io::Result<u64> {
    Ok(segments(dir)?.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum())
}

fn segments(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut res: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("spill-") && n.ends_with(".jsonl"))
        })
        .collect();
    res.sort();
    Ok(res)
}

struct SpillWriter {
    dir: PathBuf,
    max_bytes: u64,
    total_bytes: Arc<AtomicU64>,
    metrics: GatewayMetrics,
    warned_at: Arc<AtomicU64>,
    current: Option<(PathBuf, std::io::BufWriter<std::fs::File>)>,
    seq: u64,
}

impl SpillWriter {
    fn run(mut self, rx: std::sync::mpsc::Receiver<SpillMsg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                SpillMsg::Write(records) => self.write(records),
                SpillMsg::Seal(reply) => {
                    self.close();
                    let _ = reply.send(segments(&self.dir).unwrap_or_default());
                }
                SpillMsg::Stop => break,
            }
        }
        self.close();
    }

    fn write(&mut self, records: Vec<Record>) {
        for record in records {
            let n_spans = record.spans.len() as u64;
            let mut line = match serde_json::to_vec(&record) {
                Ok(line) => line,
                Err(error) => {
                    tracing::error!(%error, "cannot serialize spans for the spill file");
                    self.metrics.dropped_spans.inc_by(n_spans);
                    continue;
                }
            };
            line.push(b'\n');
            let total = self.total_bytes.load(Ordering::Relaxed);
            if total + line.len() as u64 > self.max_bytes {
                self.metrics.dropped_spans.inc_by(n_spans);
                warn_limited(&self.warned_at, || {
                    tracing::warn!(
                        n_spans,
                        max_bytes = self.max_bytes,
                        "spill file is full; dropped spans"
                    )
                });
                continue;
            }
            match self.append(&line) {
                Ok(()) => {
                    self.total_bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
                    self.metrics.spilled_spans.inc_by(n_spans);
                }
                Err(error) => {
                    self.metrics.dropped_spans.inc_by(n_spans);
                    warn_limited(
                        &self.warned_at,
                        || tracing::warn!(%error, n_spans, "cannot write the spill file; dropped spans"),
                    );
                }
            }
        }
        if let Some((_, file)) = &mut self.current {
            let _ = file.flush();
        }
    }

    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.current.is_none() {
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            self.seq += 1;
            let path = self.dir.join(format!("spill-{millis:015}-{:06}.jsonl", self.seq));
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            self.current = Some((path, std::io::BufWriter::new(file)));
        }
        match &mut self.current {
            Some((_, file)) => file.write_all(line),
            None => Ok(()),
        }
    }

    fn close(&mut self) {
        if let Some((path, mut file)) = self.current.take()
            && let Err(error) = file.flush()
        {
            tracing::warn!(%error, path = %path.display(), "cannot flush the spill file");
        }
    }
}
