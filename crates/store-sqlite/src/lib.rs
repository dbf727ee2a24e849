//! The embedded store: SQLite in WAL mode, one file (`loupe.db`) inside the data dir.
//!
//! # Layout
//!
//! - `spans`: one row per span. The columns filters and sorts use are denormalized (project,
//!   trace and span ids as blobs, start, duration, name, kind, service, type, status, own
//!   operation id, model, provider, tokens, cost, session, user, environment, tags), so its rows
//!   stay small and filters scan many per page. Each row also has its retention tier (see
//!   `retention`).
//! - `span_docs`: the raw span and its view, together as one blob per span (keyed by the span's
//!   rowid): MessagePack compressed with LZ4 (see `codec`; records written before are JSON).
//!   Raw and view repeat the prompt and completion, and LZ4 removes that repeat, so a typical
//!   LLM span takes well under half its JSON size. `(project, trace_id, span_id)` is unique, so a
//!   span that arrives twice is stored once (`INSERT OR IGNORE`).
//! - `traces`: the roll-up of each trace (start, end, counts, tokens, cost, root name, service,
//!   operation, session, user), updated in the same transaction as the spans, from the newly
//!   inserted spans only. A span without its own operation id takes its trace's
//!   `root_operation` at read time, so it does not matter whether the root arrived first.
//! - `api_keys`, the feedback and dataset tables (see `feedback`, `datasets`), the tail-sampling
//!   tables (see `sampling`), per-project `state` records (see `state`), recorded eval runs
//!   (see `evals`), span events waiting for their span (see `span_events`) and
//!   `schema_migrations` (see `schema`).
//! - `search.db`, a second file: the full-text index (FTS5, contentless, no positions) of each
//!   span's searchable text (messages, free-form input/output, documents), keyed by the span's
//!   rowid. It is derived data, maintained by a background thread (see `search`), so indexing
//!   runs beside span writes instead of inside them; a full-text query waits (at most 2 s) for
//!   the index to cover every span stored when it started, so searches see acknowledged spans.
//!
//! # Concurrency and durability
//!
//! One writer connection (behind a mutex) and a small pool of read connections (with
//! `search.db` attached). Calls run on tokio's blocking pool, or in place with
//! `block_in_place` for span writes on a multi-threaded runtime, never blocking the async
//! runtime. WAL lets reads proceed while a write is in progress, and the background thread
//! checkpoints the WAL so commits rarely pay for it. Each `write_spans` call is one
//! transaction with prepared statements: the pipeline's group commit turns many requests into
//! one call, so the cost of the commit's fsync is shared. With the default [`Durability::Full`]
//! (`synchronous=FULL`) a returned write survives a crash of the process or of the machine.
//!
//! # Deleted means gone
//!
//! Both files are written with `PRAGMA secure_delete = ON` and the full-text table has FTS5's
//! `secure-delete` option; `purge_deleted` merges the index and checkpoints and truncates both
//! write-ahead logs, after which no file holds deleted or replaced content (see `retention`).

mod codec;
mod datasets;
mod evals;
mod feedback;
mod filter;
mod read;
mod retention;
mod sampling;
mod schema;
mod search;
mod span_events;
mod state;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use model::{
    Dataset, DatasetItem, DatasetVersion, ErrorCode, Feedback, FeedbackTarget, ProjectId,
    ScoreConfig, SpanEvent, SpanId, StoredSpan, TraceId, UnixNanos,
};
use rusqlite::Connection;
use serde::Deserialize;
use store::{
    AggregateQuery, AggregateRow, ApiKeyRecord, Cursor, DatasetRef, FacetQuery, Facets,
    NewDatasetVersion, Page, RetentionTier, SpanQuery, Store, TraceQuery, TraceSummary, WriteStats,
};

/// The database file's name inside the data dir.
pub const DB_FILE_NAME: &str = "loupe.db";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create data dir {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("migration to schema version {version} failed")]
    Migration {
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database schema version {found} is newer than this build supports ({supported}); \
         upgrade loupe"
    )]
    FutureSchema { found: i64, supported: i64 },
    #[error("sqlite error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("background task failed: {0}")]
    Task(String),
    #[error("{0}")]
    Busy(String),
    /// A caller broke an API contract (a bug, not bad data).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidQuery(_) => ErrorCode::BadRequest,
            Error::Busy(_) => ErrorCode::Unavailable,
            Error::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
                if matches!(
                    failure.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                ErrorCode::Unavailable
            }
            _ => ErrorCode::Internal,
        }
    }
}

impl From<Error> for store::Error {
    fn from(error: Error) -> store::Error {
        let message = model::error_chain(&error);
        match error {
            Error::InvalidQuery(message) => store::Error::InvalidQuery(message),
            Error::Corrupt(message) => store::Error::Corrupt(message),
            other if other.code() == ErrorCode::Unavailable => store::Error::Unavailable(message),
            _ => store::Error::Internal(message),
        }
    }
}

/// The page size of a new `loupe.db`. Span inserts dirty pages all over the per-trace and
/// per-span-id indexes; with larger pages the trees are shallower, the records (about 1.4 KB
/// each) pack densely, and each group commit writes fewer, larger frames to the WAL.
pub const PAGE_SIZE: u32 = 32 * 1024;

/// How hard a write waits for the disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `synchronous=FULL`: a returned write survives a crash of the process and of the machine
    /// (power loss).
    #[default]
    Full,
    /// `synchronous=NORMAL`: a returned write survives a crash of the process; a power loss may
    /// lose the last writes (never corrupting the database). Faster on slow disks.
    Normal,
}

/// The `[store.sqlite]` section of `loupe.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSqliteConfig {
    /// Directory holding the database (`loupe.db` and its WAL files); created if missing.
    /// Default: the server's data dir (`./loupe-data`).
    pub data_dir: Option<PathBuf>,
    /// `full` (default) or `normal`. With `full`, a span acknowledged to a client survives a
    /// power loss; with `normal`, it survives a crash of the process.
    pub durability: Option<Durability>,
    /// Read connections kept open for queries (default 4).
    pub read_connections: Option<usize>,
}

/// Validated SQLite store settings.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub read_connections: usize,
}

impl SqliteConfig {
    /// Defaults for a data dir.
    pub fn new(data_dir: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig {
            data_dir: data_dir.into(),
            durability: Durability::Full,
            read_connections: 4,
        }
    }

    /// Validates the raw config; `default_data_dir` applies when the file names none.
    pub fn from_raw(raw: RawSqliteConfig, default_data_dir: &Path) -> Result<SqliteConfig, String> {
        let read_connections = raw.read_connections.unwrap_or(4);
        if !(1..=64).contains(&read_connections) {
            return Err(format!(
                "store.sqlite.read_connections must be between 1 and 64, got {read_connections}"
            ));
        }
        Ok(SqliteConfig {
            data_dir: raw.data_dir.unwrap_or_else(|| default_data_dir.to_owned()),
            durability: raw.durability.unwrap_or_default(),
            read_connections,
        })
    }
}

/// The SQLite store. Cheap to clone (shared connections).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Keeps the full-text index up to date and checkpoints the WAL; declared first so it
    /// stops before the connections close.
    indexer: search::Indexer,
    path: PathBuf,
    search_path: PathBuf,
    writer: Mutex<Connection>,
    /// Idle read connections; a query takes one and gives it back.
    readers: Mutex<Vec<Connection>>,
    max_idle_readers: usize,
    /// Whether `span_events` can hold rows (see `span_events`).
    events: span_events::EventsHint,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `config.data_dir` and runs pending
    /// migrations. Blocking: call it before starting the server or in `spawn_blocking`.
    pub fn open(config: SqliteConfig) -> Result<SqliteStore, Error> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| Error::CreateDir { path: config.data_dir.clone(), source })?;
        let path = config.data_dir.join(DB_FILE_NAME);
        let mut writer =
            Connection::open(&path).map_err(|source| Error::Open { path: path.clone(), source })?;
        let synchronous = match config.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        // `page_size` applies when the file is created (before WAL mode is set); an existing
        // database keeps its own. 32 KiB pages: ingest 1.10× the default 4 KiB (BENCHMARKS.md).
        writer.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {synchronous};
             PRAGMA busy_timeout = 10000;
             PRAGMA cache_size = -32768;
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 8192;
             PRAGMA journal_size_limit = 67108864;
             PRAGMA secure_delete = ON;"
        ))?;
        codec::register_functions(&writer)?;
        search::register_functions(&writer)?;
        schema::migrate(&mut writer)?;
        let search_path = config.data_dir.join(search::SEARCH_FILE_NAME);
        let indexer = search::Indexer::start(path.clone(), search_path.clone())?;
        let inner = Inner {
            indexer,
            search_path,
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            max_idle_readers: config.read_connections,
            events: span_events::EventsHint::default(),
        };
        Ok(SqliteStore { inner: Arc::new(inner) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with the writer connection on the blocking pool.
    async fn with_writer<T, F>(&self, f: F) -> Result<T, store::Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        self.with_writer_and_state(move |conn, _| f(conn)).await
    }

    /// Runs `f` with a read connection on the blocking pool.
    async fn with_reader<T, F>(&self, f: F) -> Result<T, store::Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        self.with_reader_and_state(move |conn, _| f(conn)).await
    }

    /// Runs `f` with the writer connection and the store's state on the blocking pool.
    async fn with_writer_and_state<T, F>(&self, f: F) -> Result<T, store::Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Inner) -> Result<T, Error> + Send + 'static,
    {
        let inner = self.inner.clone();
        let res = tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic mid-call; SQLite rolled the transaction back when
            // it was dropped, so the connection is still usable.
            let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn, &inner)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        res.map_err(store::Error::from)
    }

    /// Runs `f` with a read connection and the store's state on the blocking pool.
    async fn with_reader_and_state<T, F>(&self, f: F) -> Result<T, store::Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Inner) -> Result<T, Error> + Send + 'static,
    {
        let inner = self.inner.clone();
        let res = tokio::task::spawn_blocking(move || {
            let idle = inner.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => open_reader(&inner.path, &inner.search_path)?,
            };
            let res = f(&conn, &inner);
            let mut readers = inner.readers.lock().unwrap_or_else(|e| e.into_inner());
            if readers.len() < inner.max_idle_readers {
                readers.push(conn);
            }
            res
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        res.map_err(store::Error::from)
    }
}

fn open_reader(path: &Path, search_path: &Path) -> Result<Connection, Error> {
    let conn =
        Connection::open(path).map_err(|source| Error::Open { path: path.to_owned(), source })?;
    conn.execute_batch(
        "PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -16384;
         PRAGMA temp_store = MEMORY;
         PRAGMA query_only = 1;",
    )?;
    conn.execute("ATTACH DATABASE ?1 AS search", [search_path.to_string_lossy()])?;
    codec::register_functions(&conn)?;
    search::register_functions(&conn)?;
    Ok(conn)
}

/// Before a full-text query, waits (boundedly) until the index covers every span stored now.
fn wait_for_index(
    conn: &Connection,
    inner: &Inner,
    filter: Option<&store::Expr>,
) -> Result<(), Error> {
    if filter.is_some_and(filter::has_text) {
        let max_rowid: i64 =
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM spans", [], |row| row.get(0))?;
        inner.indexer.shared().wait_indexed(max_rowid);
    }
    Ok(())
}

impl SqliteStore {
    /// `write_spans`, with the records encoded ahead when given.
    async fn write_with_records(
        &self,
        spans: &[StoredSpan],
        records: Option<&[Vec<u8>]>,
    ) -> store::Result<WriteStats> {
        if spans.is_empty() {
            return Ok(WriteStats::default());
        }
        // Encoding (MessagePack + LZ4) and the inserts take tens of milliseconds for a
        // group-committed batch. On a multi-threaded runtime they run in place, with this worker handed over
        // to the blocking pool (no copy of the batch); elsewhere on the blocking pool.
        let flavor = tokio::runtime::Handle::current().runtime_flavor();
        if flavor == tokio::runtime::RuntimeFlavor::MultiThread {
            let inner = &self.inner;
            let res = tokio::task::block_in_place(|| {
                // See `with_writer_and_state` on poisoning.
                let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
                let (stats, max_rowid, handoff) = write::write_spans(&mut conn, spans, records)?;
                inner.indexer.shared().written(max_rowid, Some(handoff));
                Ok::<_, Error>(stats)
            });
            return res.map_err(store::Error::from);
        }
        let spans = spans.to_vec();
        let records = records.map(<[Vec<u8>]>::to_vec);
        self.with_writer_and_state(move |conn, inner| {
            let (stats, max_rowid, handoff) = write::write_spans(conn, &spans, records.as_deref())?;
            inner.indexer.shared().written(max_rowid, Some(handoff));
            Ok(stats)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn backend_metrics(&self) -> Vec<store::BackendMetric> {
        let (behind, dropped) = self.inner.indexer.shared().lag();
        vec![
            store::BackendMetric {
                name: "loupe_sqlite_index_lag_spans",
                help: "Spans stored but not in the full-text index yet (search waits up to 2 s for them)",
                value: behind,
                counter: false,
            },
            store::BackendMetric {
                name: "loupe_sqlite_index_handoffs_dropped",
                help: "Batches whose text did not fit the indexer's queue and were read back from the database",
                value: dropped,
                counter: true,
            },
        ]
    }

    async fn write_spans(&self, spans: &[StoredSpan]) -> store::Result<WriteStats> {
        self.write_with_records(spans, None).await
    }

    fn encode_records(&self, spans: &[StoredSpan]) -> store::Result<Option<Vec<Vec<u8>>>> {
        // One encoder for the batch: its JSON and output buffers are allocated once.
        let mut encoder = codec::Encoder::default();
        let records = spans
            .iter()
            .map(|span| encoder.encode(&span.raw, &span.view).map(<[u8]>::to_vec))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Some(records))
    }

    async fn write_spans_encoded(
        &self,
        spans: &[StoredSpan],
        records: &[Vec<u8>],
    ) -> store::Result<WriteStats> {
        self.write_with_records(spans, Some(records)).await
    }

    async fn get_trace(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Vec<StoredSpan>> {
        let project = project.clone();
        self.with_reader(move |conn| read::get_trace(conn, &project, trace_id)).await
    }

    async fn search_spans(
        &self,
        project: &ProjectId,
        query: &SpanQuery,
    ) -> store::Result<Page<StoredSpan>> {
        let (project, query) = (project.clone(), query.clone());
        self.with_reader_and_state(move |conn, inner| {
            wait_for_index(conn, inner, query.filter.as_ref())?;
            read::search_spans(conn, &project, &query, inner.indexer.shared().indexed_upto())
        })
        .await
    }

    async fn search_traces(
        &self,
        project: &ProjectId,
        query: &TraceQuery,
    ) -> store::Result<Page<TraceSummary>> {
        let (project, query) = (project.clone(), query.clone());
        self.with_reader_and_state(move |conn, inner| {
            wait_for_index(conn, inner, query.filter.as_ref())?;
            read::search_traces(conn, &project, &query, inner.indexer.shared().indexed_upto())
        })
        .await
    }

    async fn session_traces(
        &self,
        project: &ProjectId,
        session_id: &str,
        limit: u32,
    ) -> store::Result<Vec<TraceSummary>> {
        let (project, session_id) = (project.clone(), session_id.to_owned());
        self.with_reader(move |conn| read::session_traces(conn, &project, &session_id, limit)).await
    }

    async fn facets(&self, project: &ProjectId, query: &FacetQuery) -> store::Result<Facets> {
        let (project, query) = (project.clone(), query.clone());
        self.with_reader(move |conn| read::facets(conn, &project, &query)).await
    }

    async fn aggregate(
        &self,
        project: &ProjectId,
        query: &AggregateQuery,
    ) -> store::Result<Vec<AggregateRow>> {
        let (project, query) = (project.clone(), query.clone());
        self.with_reader_and_state(move |conn, inner| {
            wait_for_index(conn, inner, query.filter.as_ref())?;
            read::aggregate(conn, &project, &query)
        })
        .await
    }

    async fn scan_spans(
        &self,
        after: Option<&Cursor>,
        limit: u32,
    ) -> store::Result<Page<StoredSpan>> {
        let after = after.cloned();
        self.with_reader(move |conn| read::scan_spans(conn, after.as_ref(), limit)).await
    }

    async fn update_views(&self, spans: &[StoredSpan]) -> store::Result<u64> {
        let spans = spans.to_vec();
        self.with_writer_and_state(move |conn, inner| {
            let texts = write::update_views(conn, &spans)?;
            search::reindex(inner.indexer.shared(), &inner.search_path, &texts)?;
            Ok(texts.len() as u64)
        })
        .await
    }

    async fn put_api_key(&self, record: &ApiKeyRecord) -> store::Result<()> {
        let record = record.clone();
        self.with_writer(move |conn| write::put_api_key(conn, &record)).await
    }

    async fn find_api_key(&self, key_hash: &str) -> store::Result<Option<ApiKeyRecord>> {
        let key_hash = key_hash.to_owned();
        self.with_reader(move |conn| read::find_api_key(conn, &key_hash)).await
    }

    async fn list_api_keys(&self, project: &ProjectId) -> store::Result<Vec<ApiKeyRecord>> {
        let project = project.clone();
        self.with_reader(move |conn| read::list_api_keys(conn, &project)).await
    }

    async fn delete_api_key(&self, project: &ProjectId, key_id: &str) -> store::Result<bool> {
        let (project, key_id) = (project.clone(), key_id.to_owned());
        self.with_writer(move |conn| write::delete_api_key(conn, &project, &key_id)).await
    }

    // Feedback, score configs and datasets: implemented in `feedback.rs` and `datasets.rs`.

    async fn put_feedback(&self, feedback: &Feedback) -> store::Result<()> {
        self.feedback_put(feedback).await
    }

    async fn put_feedback_batch(&self, entries: &[Feedback]) -> store::Result<()> {
        self.feedback_put_batch(entries).await
    }

    async fn get_feedback(&self, project: &ProjectId, id: &str) -> store::Result<Option<Feedback>> {
        self.feedback_get(project, id).await
    }

    async fn list_feedback(
        &self,
        project: &ProjectId,
        target: &FeedbackTarget,
    ) -> store::Result<Vec<Feedback>> {
        self.feedback_list(project, target).await
    }

    async fn trace_feedback(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Vec<Feedback>> {
        self.feedback_of_trace(project, trace_id).await
    }

    async fn pending_feedback(
        &self,
        project: &ProjectId,
        created_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<Feedback>> {
        self.feedback_pending(project, created_before_ns, limit).await
    }

    async fn delete_feedback(&self, project: &ProjectId, id: &str) -> store::Result<bool> {
        self.feedback_delete(project, id).await
    }

    async fn put_score_config(
        &self,
        project: &ProjectId,
        config: &ScoreConfig,
    ) -> store::Result<()> {
        self.score_config_put(project, config).await
    }

    async fn list_score_configs(&self, project: &ProjectId) -> store::Result<Vec<ScoreConfig>> {
        self.score_config_list(project).await
    }

    async fn delete_score_config(&self, project: &ProjectId, name: &str) -> store::Result<bool> {
        self.score_config_delete(project, name).await
    }

    async fn create_dataset(&self, dataset: &Dataset) -> store::Result<()> {
        self.dataset_create(dataset).await
    }

    async fn get_dataset(&self, project: &ProjectId, name: &str) -> store::Result<Option<Dataset>> {
        self.dataset_get(project, name).await
    }

    async fn list_datasets(&self, project: &ProjectId) -> store::Result<Vec<Dataset>> {
        self.dataset_list(project).await
    }

    async fn create_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        changes: &NewDatasetVersion,
    ) -> store::Result<DatasetVersion> {
        self.dataset_version_create(project, dataset, changes).await
    }

    async fn get_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
    ) -> store::Result<Option<DatasetVersion>> {
        self.dataset_version_get(project, dataset, version).await
    }

    async fn list_dataset_versions(
        &self,
        project: &ProjectId,
        dataset: &str,
    ) -> store::Result<Vec<DatasetVersion>> {
        self.dataset_version_list(project, dataset).await
    }

    async fn dataset_items(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
        after: Option<&Cursor>,
        limit: u32,
    ) -> store::Result<Page<DatasetItem>> {
        self.dataset_items_page(project, dataset, version, after, limit).await
    }

    async fn span_datasets(
        &self,
        project: &ProjectId,
        span_id: SpanId,
    ) -> store::Result<Vec<DatasetRef>> {
        self.datasets_of_span(project, span_id).await
    }

    // Tail sampling and deleting traces: implemented in `sampling.rs`.

    async fn delete_traces(
        &self,
        project: &ProjectId,
        trace_ids: &[TraceId],
    ) -> store::Result<u64> {
        self.traces_delete(project, trace_ids).await
    }

    async fn stage_spans(
        &self,
        spans: &[StoredSpan],
        kept: &[bool],
        records: Option<&[Vec<u8>]>,
    ) -> store::Result<WriteStats> {
        if spans.is_empty() {
            return Ok(WriteStats::default());
        }
        self.sampling_stage(spans, kept, records).await
    }

    async fn release_staged(&self) -> store::Result<u64> {
        self.sampling_release().await
    }

    async fn discard_staged_user_traces(
        &self,
        project: &ProjectId,
        users: &[String],
    ) -> store::Result<u64> {
        self.sampling_discard_users(project, users).await
    }

    async fn undecided_traces(
        &self,
        settled_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<(ProjectId, TraceId)>> {
        self.sampling_undecided(settled_before_ns, limit).await
    }

    async fn record_sampling_decisions(
        &self,
        decisions: &[(ProjectId, TraceId, bool)],
    ) -> store::Result<()> {
        self.sampling_record(decisions).await
    }

    async fn sampling_decision(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Option<bool>> {
        self.sampling_decision_of(project, trace_id).await
    }

    async fn traces_for_decision(
        &self,
        project: &ProjectId,
        trace_ids: &[TraceId],
        with_content: bool,
    ) -> store::Result<Vec<(Vec<StoredSpan>, Vec<Feedback>)>> {
        self.sampling_traces(project, trace_ids, with_content).await
    }

    // Retention and erasure: implemented in `retention.rs` and `state.rs`.

    async fn span_projects(&self) -> store::Result<Vec<ProjectId>> {
        self.retention_span_projects().await
    }

    async fn spans_below_tier(
        &self,
        project: &ProjectId,
        tier: RetentionTier,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<StoredSpan>> {
        self.retention_spans_below_tier(project, tier, started_before_ns, limit).await
    }

    async fn put_span_events(
        &self,
        project: &ProjectId,
        events: &[SpanEvent],
    ) -> store::Result<()> {
        self.span_events_put(project, events).await
    }

    async fn span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> store::Result<Vec<SpanEvent>> {
        self.span_events_get(project, spans).await
    }

    async fn delete_span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> store::Result<u64> {
        self.span_events_delete(project, spans).await
    }

    async fn rewrite_spans(&self, spans: &[StoredSpan], tier: RetentionTier) -> store::Result<u64> {
        self.retention_rewrite(spans, tier).await
    }

    async fn delete_traces_before(
        &self,
        project: &ProjectId,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<u64> {
        self.retention_delete_before(project, started_before_ns, limit).await
    }

    async fn user_traces(
        &self,
        project: &ProjectId,
        users: &[String],
        after: Option<TraceId>,
        limit: u32,
    ) -> store::Result<Vec<TraceId>> {
        self.retention_user_traces(project, users, after, limit).await
    }

    async fn purge_deleted(&self) -> store::Result<()> {
        self.purge().await
    }

    async fn get_state(&self, project: &ProjectId, key: &str) -> store::Result<Option<String>> {
        self.state_get(project, key).await
    }

    async fn put_state(&self, project: &ProjectId, key: &str, value: &str) -> store::Result<()> {
        self.state_put(project, key, value).await
    }

    // Eval runs: implemented in `evals.rs`.

    async fn put_eval_run(&self, run: &store::EvalRunRecord) -> store::Result<()> {
        self.eval_run_put(run).await
    }

    async fn list_eval_runs(
        &self,
        project: &ProjectId,
        limit: u32,
    ) -> store::Result<Vec<store::EvalRunRow>> {
        self.eval_run_list(project, limit).await
    }

    async fn get_eval_run(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> store::Result<Option<store::EvalRunRecord>> {
        self.eval_run_get(project, id).await
    }
}

#[cfg(test)]
mod tests;
