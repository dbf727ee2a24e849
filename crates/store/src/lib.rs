//! The store boundary. Every backend (`store-sqlite`, `store-clickhouse`) implements [`Store`];
//! everything above it (pipeline, api, app) holds an `Arc<dyn Store>` and speaks only the
//! structured query types of [`query`], never SQL.
//!
//! **API Boundary:** the trait and the types in [`query`] are the whole contract. A backend is
//! correct when it passes [`suite`], the backend-neutral test suite, which every backend's own
//! tests call with a fresh, empty store.
//!
//! **Architecture Invariant:** writes reach a store only through `pipeline` (so redaction and
//! pricing cannot be bypassed); `api` only reads, apart from the feedback, dataset and settings
//! records that users write directly.

pub mod query;
pub mod suite;
pub mod syntax;

use async_trait::async_trait;
use model::{
    Dataset, DatasetItem, DatasetVersion, ErrorCode, Feedback, FeedbackTarget, ProjectId,
    ScoreConfig, SpanEvent, SpanId, StoredSpan, TraceId, UnixNanos,
};

pub use query::{
    AggregateQuery, AggregateRow, ApiKeyRecord, CmpOp, Cursor, DatasetRef, EvalRunRecord,
    EvalRunRow, Expr, FacetQuery, Facets, Field, GroupBy, Metric, NewDatasetVersion, Page,
    RetentionTier, SpanQuery, TimeRange, TraceQuery, TraceSummary, Value, WriteStats,
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query cannot be run as asked (unknown field for this backend, bad cursor, ...).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend cannot be reached or is overloaded; the caller may retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (e.g. a record written by an unknown future version).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("store error: {0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidQuery(_) => ErrorCode::BadRequest,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Corrupt(_) | Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// One of a backend's own figures for `/metrics`, e.g. how far a background index lags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendMetric {
    /// The series name, without the `_total` a counter gets.
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
    /// A counter (only goes up) rather than a gauge.
    pub counter: bool,
}

/// A trace store. All methods are project-scoped: no call can read or change another project's
/// records.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and `/metrics` (`sqlite`, `clickhouse`).
    fn backend_name(&self) -> &'static str;

    /// The backend's own figures for `/metrics`; none by default. Cheap: called on every scrape.
    fn backend_metrics(&self) -> Vec<BackendMetric> {
        Vec::new()
    }

    /// Writes a batch durably: when this returns `Ok`, every span in it survives a crash of the
    /// process. Spans already stored (same project, trace id and span id) are skipped, not
    /// duplicated, and not counted twice in trace roll-ups. Spans may belong to many projects
    /// and traces, and may arrive in any order (children before parents).
    async fn write_spans(&self, spans: &[StoredSpan]) -> Result<WriteStats>;

    /// Encodes each span the way the backend stores it (SQLite: its compressed record), so the
    /// pipeline can do that CPU work on the requests' threads, in parallel, and hand the result
    /// to [`Store::write_spans_encoded`] instead of leaving it to the one writer. `None` when the
    /// backend has nothing to encode ahead (the default) or cannot use it for these spans.
    fn encode_records(&self, spans: &[StoredSpan]) -> Result<Option<Vec<Vec<u8>>>> {
        let _ = spans;
        Ok(None)
    }

    /// [`Store::write_spans`] with each span's record from [`Store::encode_records`] (same
    /// order and length). The default ignores the records.
    async fn write_spans_encoded(
        &self,
        spans: &[StoredSpan],
        records: &[Vec<u8>],
    ) -> Result<WriteStats> {
        let _ = records;
        self.write_spans(spans).await
    }

    /// Writes spans while tail sampling is on: as durably as [`Store::write_spans`], but a
    /// backend may hold the spans of undecided traces apart ("staged": not read, searched or
    /// rolled up) until [`Store::record_sampling_decisions`] keeps their trace (then they are
    /// stored as by `write_spans`) or drops it (then they are discarded), so a dropped trace
    /// costs no indexing and no deletion. Spans of traces already decided are stored or
    /// discarded at once. Spans whose `kept` flag (same index) is set belong to traces the
    /// sampler will keep whatever they hold (a probabilistic policy's share): they are stored
    /// at once and their traces still wait for a decision (for the per-policy counts). Staged
    /// traces are undecided (see [`Store::undecided_traces`]) and
    /// [`Store::traces_for_decision`] reads their staged spans. This default stores every span
    /// at once; the sampler then deletes dropped traces after the fact.
    /// `records`: as for [`Store::write_spans_encoded`], when the pipeline encoded them.
    async fn stage_spans(
        &self,
        spans: &[StoredSpan],
        kept: &[bool],
        records: Option<&[Vec<u8>]>,
    ) -> Result<WriteStats> {
        let _ = kept;
        match records {
            Some(records) => self.write_spans_encoded(spans, records).await,
            None => self.write_spans(spans).await,
        }
    }

    /// Tail sampling is off: keeps every staged trace (see [`Store::stage_spans`]), storing its
    /// spans as [`Store::record_sampling_decisions`] does for a kept trace, so nothing staged
    /// while it was on stays hidden. Returns how many traces were kept.
    async fn release_staged(&self) -> Result<u64> {
        Ok(0)
    }

    /// Discards every staged span (see [`Store::stage_spans`]) of the traces that have a
    /// staged span with one of these user ids (erasure: they must never be stored). Returns how
    /// many spans were discarded. Backends that stage nothing have nothing to do.
    async fn discard_staged_user_traces(
        &self,
        project: &ProjectId,
        users: &[String],
    ) -> Result<u64> {
        let _ = (project, users);
        Ok(0)
    }

    /// Every span of one trace, in start-time order; empty when the trace is unknown.
    async fn get_trace(&self, project: &ProjectId, trace_id: TraceId) -> Result<Vec<StoredSpan>>;

    /// Spans matching a query, newest first.
    async fn search_spans(
        &self,
        project: &ProjectId,
        query: &SpanQuery,
    ) -> Result<Page<StoredSpan>>;

    /// Traces with at least one span matching the query's filter, newest first.
    async fn search_traces(
        &self,
        project: &ProjectId,
        query: &TraceQuery,
    ) -> Result<Page<TraceSummary>>;

    /// The traces of one session (conversation), oldest first.
    async fn session_traces(
        &self,
        project: &ProjectId,
        session_id: &str,
        limit: u32,
    ) -> Result<Vec<TraceSummary>>;

    /// Distinct values for pick lists, most frequent first.
    async fn facets(&self, project: &ProjectId, query: &FacetQuery) -> Result<Facets>;

    /// Grouped, optionally time-bucketed statistics over spans (for dashboards).
    async fn aggregate(
        &self,
        project: &ProjectId,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>>;

    /// All spans of all projects in a stable order, a page at a time (for `loupe reindex` and
    /// other maintenance). `after` is the `next_cursor` of the previous page.
    async fn scan_spans(&self, after: Option<&Cursor>, limit: u32) -> Result<Page<StoredSpan>>;

    /// Replaces the derived views of stored spans (matched by project, trace id and span id);
    /// the raw spans are left as they are. Returns how many spans were updated.
    async fn update_views(&self, spans: &[StoredSpan]) -> Result<u64>;

    /// Saves (inserts or replaces by `key_hash`) an API key record.
    async fn put_api_key(&self, record: &ApiKeyRecord) -> Result<()>;

    /// The API key with this SHA-256 hash (hex), if any.
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;

    /// The API keys of a project, without their hashes' preimages (which are never stored).
    async fn list_api_keys(&self, project: &ProjectId) -> Result<Vec<ApiKeyRecord>>;

    /// Deletes an API key by its id; `Ok(false)` when there was none.
    async fn delete_api_key(&self, project: &ProjectId, key_id: &str) -> Result<bool>;

    // Feedback, score configs and datasets. Backends that do not keep these records yet get
    // these default bodies, which fail with `Error::Internal`.

    /// Saves a feedback entry: inserts it, or replaces the entry with the same id (the caller
    /// has already moved the old content into `history`). Feedback on a span that is not
    /// stored yet is accepted as is: it is found by the span's id once the span is written.
    async fn put_feedback(&self, feedback: &Feedback) -> Result<()> {
        let _ = feedback;
        Err(unsupported("feedback"))
    }

    /// One feedback entry by id.
    async fn get_feedback(&self, project: &ProjectId, id: &str) -> Result<Option<Feedback>> {
        let _ = (project, id);
        Err(unsupported("feedback"))
    }

    /// The feedback on exactly this target, oldest first. A span target matches by span id,
    /// whatever trace id the entry was given.
    async fn list_feedback(
        &self,
        project: &ProjectId,
        target: &FeedbackTarget,
    ) -> Result<Vec<Feedback>> {
        let _ = (project, target);
        Err(unsupported("feedback"))
    }

    /// All feedback on a trace: on the trace itself and on any of its stored spans, oldest
    /// first.
    async fn trace_feedback(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> Result<Vec<Feedback>> {
        let _ = (project, trace_id);
        Err(unsupported("feedback"))
    }

    /// Feedback on spans that are not stored (yet), created before `created_before_ns`, oldest
    /// first: what is still waiting for its span after a grace period.
    async fn pending_feedback(
        &self,
        project: &ProjectId,
        created_before_ns: UnixNanos,
        limit: u32,
    ) -> Result<Vec<Feedback>> {
        let _ = (project, created_before_ns, limit);
        Err(unsupported("feedback"))
    }

    /// Deletes a feedback entry; `Ok(false)` when there was none.
    async fn delete_feedback(&self, project: &ProjectId, id: &str) -> Result<bool> {
        let _ = (project, id);
        Err(unsupported("feedback"))
    }

    /// Saves (inserts or replaces by name) a score config.
    async fn put_score_config(&self, project: &ProjectId, config: &ScoreConfig) -> Result<()> {
        let _ = (project, config);
        Err(unsupported("score configs"))
    }

    /// The project's score configs, by name.
    async fn list_score_configs(&self, project: &ProjectId) -> Result<Vec<ScoreConfig>> {
        let _ = project;
        Err(unsupported("score configs"))
    }

    /// Deletes a score config; `Ok(false)` when there was none. Scores already given stay.
    async fn delete_score_config(&self, project: &ProjectId, name: &str) -> Result<bool> {
        let _ = (project, name);
        Err(unsupported("score configs"))
    }

    /// Creates a dataset without versions; `Error::Conflict` when the name is taken.
    async fn create_dataset(&self, dataset: &Dataset) -> Result<()> {
        let _ = dataset;
        Err(unsupported("datasets"))
    }

    async fn get_dataset(&self, project: &ProjectId, name: &str) -> Result<Option<Dataset>> {
        let _ = (project, name);
        Err(unsupported("datasets"))
    }

    /// The project's datasets, by name.
    async fn list_datasets(&self, project: &ProjectId) -> Result<Vec<Dataset>> {
        let _ = project;
        Err(unsupported("datasets"))
    }

    /// Makes the next version of a dataset from its base version and the changes, atomically:
    /// on error nothing is written. `Error::NotFound` for an unknown dataset or base version.
    async fn create_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        changes: &NewDatasetVersion,
    ) -> Result<DatasetVersion> {
        let _ = (project, dataset, changes);
        Err(unsupported("datasets"))
    }

    async fn get_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
    ) -> Result<Option<DatasetVersion>> {
        let _ = (project, dataset, version);
        Err(unsupported("datasets"))
    }

    /// A dataset's versions, oldest first.
    async fn list_dataset_versions(
        &self,
        project: &ProjectId,
        dataset: &str,
    ) -> Result<Vec<DatasetVersion>> {
        let _ = (project, dataset);
        Err(unsupported("datasets"))
    }

    /// The items of one version in a stable order (by item id), a page at a time; `after` is
    /// the previous page's `next_cursor`. `Error::NotFound` for an unknown version.
    async fn dataset_items(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Page<DatasetItem>> {
        let _ = (project, dataset, version, after, limit);
        Err(unsupported("datasets"))
    }

    /// The dataset versions holding an item made from this span (or merged from it).
    async fn span_datasets(&self, project: &ProjectId, span_id: SpanId) -> Result<Vec<DatasetRef>> {
        let _ = (project, span_id);
        Err(unsupported("datasets"))
    }

    /// Deletes every stored span of these traces, with their roll-ups and search entries
    /// (staged spans go when the trace's decision is recorded), durably
    /// (for tail sampling and retention downsampling). Unknown traces are skipped. Returns how
    /// many spans were deleted.
    async fn delete_traces(&self, project: &ProjectId, trace_ids: &[TraceId]) -> Result<u64> {
        let _ = (project, trace_ids);
        Err(unsupported("deleting traces"))
    }

    /// Traces waiting for a tail-sampling decision that are ready for one: stored with no
    /// decision yet, and whose root span was stored at or before `settled_before_ns` or, when no
    /// root was stored, whose last span was. Oldest first. The backend notes when it stores each
    /// trace's spans (so the sampler needs no memory of its own and survives restarts); it may
    /// also delete late spans of traces already decided `drop` while doing so. Only traces
    /// stored after the backend began tracking (the first call) are returned.
    async fn undecided_traces(
        &self,
        settled_before_ns: UnixNanos,
        limit: u32,
    ) -> Result<Vec<(ProjectId, TraceId)>> {
        let _ = (settled_before_ns, limit);
        Err(unsupported("tail sampling"))
    }

    /// Records tail-sampling decisions (`true` = keep), durably, replacing earlier ones; the
    /// traces stop being undecided. In the same transaction the staged spans of kept traces are
    /// stored and those of dropped traces discarded (see [`Store::stage_spans`]). Late spans of
    /// a trace decided `false` are deleted when they are stored (see
    /// [`Store::undecided_traces`]).
    async fn record_sampling_decisions(
        &self,
        decisions: &[(ProjectId, TraceId, bool)],
    ) -> Result<()> {
        let _ = decisions;
        Err(unsupported("tail sampling"))
    }

    /// Saves several feedback entries atomically: all of them or, on error, none (a batch from
    /// one API call). Same rules per entry as [`Store::put_feedback`].
    async fn put_feedback_batch(&self, entries: &[Feedback]) -> Result<()> {
        let _ = entries;
        Err(unsupported("feedback batches"))
    }

    // Span events that arrived apart from their spans (GenAI events sent as OTLP log records).
    // The pipeline saves them, then merges them into their span once it is stored (see
    // `pipeline`'s writer) and deletes them. Deleting a trace (`delete_traces`,
    // `delete_traces_before`) deletes its saved events too, and `delete_traces_before` also
    // deletes the project's saved events older than its cutoff (events whose span never came).

    /// Saves span events durably, whether or not their spans are stored.
    async fn put_span_events(&self, project: &ProjectId, events: &[SpanEvent]) -> Result<()> {
        let _ = (project, events);
        Err(unsupported("span events"))
    }

    /// The saved span events of these spans (trace id, span id), in the order they were saved.
    async fn span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> Result<Vec<SpanEvent>> {
        let _ = (project, spans);
        Err(unsupported("span events"))
    }

    /// Deletes the saved span events of these spans. Returns how many were deleted (backends
    /// that delete asynchronously may return 0).
    async fn delete_span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> Result<u64> {
        let _ = (project, spans);
        Err(unsupported("span events"))
    }

    // Retention and erasure (see `pipeline::retention` and the `vault` crate).

    /// The projects that have stored spans, for maintenance that runs per project.
    async fn span_projects(&self) -> Result<Vec<ProjectId>> {
        Err(unsupported("retention"))
    }

    /// Spans of `project` that started before `started_before_ns` and are stored at a retention
    /// tier below `tier`, oldest first, at most `limit`: the next retention work.
    async fn spans_below_tier(
        &self,
        project: &ProjectId,
        tier: RetentionTier,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> Result<Vec<StoredSpan>> {
        let _ = (project, tier, started_before_ns, limit);
        Err(unsupported("retention"))
    }

    /// Replaces stored spans (raw span and view, matched by project, trace id and span id) by
    /// these reduced copies and records that they are now at `tier`; roll-ups, filter columns
    /// and the full-text index follow, and nothing of the replaced content stays readable
    /// through the store. Spans not stored are skipped. Returns how many were replaced.
    async fn rewrite_spans(&self, spans: &[StoredSpan], tier: RetentionTier) -> Result<u64> {
        let _ = (spans, tier);
        Err(unsupported("retention"))
    }

    /// Deletes the traces of `project` whose every span started before `started_before_ns`
    /// (whole traces, with roll-ups, search entries and sampling state), at most about `limit`
    /// spans per call so a large backlog does not stall writers. Returns spans deleted; 0 when
    /// nothing is left to delete.
    async fn delete_traces_before(
        &self,
        project: &ProjectId,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> Result<u64> {
        let _ = (project, started_before_ns, limit);
        Err(unsupported("retention"))
    }

    /// The traces of `project` with at least one span whose user id (`user` filter field) is one
    /// of `users`, at most `limit`, in a stable order after `after` (a trace id). For erasure.
    async fn user_traces(
        &self,
        project: &ProjectId,
        users: &[String],
        after: Option<TraceId>,
        limit: u32,
    ) -> Result<Vec<TraceId>> {
        let _ = (project, users, after, limit);
        Err(unsupported("erasure"))
    }

    /// Makes content that was deleted or replaced unrecoverable from the backend's files, as
    /// far as the backend can (SQLite: pages are zeroed on delete and the write-ahead log is
    /// checkpointed and truncated; ClickHouse: parts are merged). Called after erasure.
    async fn purge_deleted(&self) -> Result<()> {
        Ok(())
    }

    /// A small named value kept per project (e.g. a retention watermark), or `None`.
    async fn get_state(&self, project: &ProjectId, key: &str) -> Result<Option<String>> {
        let _ = (project, key);
        Err(unsupported("state records"))
    }

    /// Saves a small named value per project, durably (inserts or replaces).
    async fn put_state(&self, project: &ProjectId, key: &str, value: &str) -> Result<()> {
        let _ = (project, key, value);
        Err(unsupported("state records"))
    }

    /// Records an eval run (inserts, or replaces a run with the same project and id).
    async fn put_eval_run(&self, run: &EvalRunRecord) -> Result<()> {
        let _ = run;
        Err(unsupported("eval runs"))
    }

    /// A project's recorded eval runs, newest first (by `recorded_ns`, then id), at most
    /// `limit`.
    async fn list_eval_runs(&self, project: &ProjectId, limit: u32) -> Result<Vec<EvalRunRow>> {
        let _ = (project, limit);
        Err(unsupported("eval runs"))
    }

    /// One recorded eval run, or `None`.
    async fn get_eval_run(&self, project: &ProjectId, id: &str) -> Result<Option<EvalRunRecord>> {
        let _ = (project, id);
        Err(unsupported("eval runs"))
    }

    /// The recorded decision on a trace, if any.
    async fn sampling_decision(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> Result<Option<bool>> {
        let _ = (project, trace_id);
        Err(unsupported("tail sampling"))
    }

    /// What tail sampling decides a batch of traces of one project on: for each id, in order,
    /// its spans as [`Store::get_trace`] gives them plus its staged ones (see
    /// [`Store::stage_spans`]), and its feedback as
    /// [`Store::trace_feedback`] does (none where the backend keeps no feedback). Without
    /// `with_content` (policies that look only at status, times, span count and ids), a
    /// backend may give each span's skeleton only: ids, parent, name, start and end, status
    /// and span type, no attributes, events or other view fields, and no feedback. Backends override it to read
    /// the batch in one go; this default asks for each trace in turn, with content.
    async fn traces_for_decision(
        &self,
        project: &ProjectId,
        trace_ids: &[TraceId],
        with_content: bool,
    ) -> Result<Vec<(Vec<StoredSpan>, Vec<Feedback>)>> {
        let _ = with_content;
        let mut res = Vec::with_capacity(trace_ids.len());
        for &trace_id in trace_ids {
            let spans = self.get_trace(project, trace_id).await?;
            let feedback = self.trace_feedback(project, trace_id).await.unwrap_or_default();
            res.push((spans, feedback));
        }
        Ok(res)
    }
}

fn unsupported(what: &str) -> Error {
    Error::Internal(format!("{what} not supported by this backend"))
}
