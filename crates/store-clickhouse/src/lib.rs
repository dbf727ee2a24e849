//! The scale store: [`ClickHouseStore`] implements [`store::Store`] over ClickHouse's HTTP
//! interface, with batched inserts, retries with backoff, a durable local spill and versioned
//! migrations. `docs/clickhouse.md` is the user-facing guide.
//!
//! # Schema (see [`schema`] for the DDL)
//!
//! - `spans`: one row per span, a `ReplacingMergeTree(version)` partitioned by UTC day (retention
//!   drops whole partitions) and ordered by `(project, start_ns, trace_id, span_id)`, so project +
//!   time ranges read only their granules and newest-first lists read the end of the range. The
//!   filterable facts (type, model, provider, service, status, tokens, cost, session, user, tags)
//!   are denormalized into columns; attributes are parallel `attr_keys`/`attr_values` arrays
//!   (a filter reads two array columns, not the span JSON); the raw span, the view and the
//!   lowercased search text are separate columns that lists never read: searches select keys
//!   first and fetch the JSON of the one page only.
//! - `trace_index`: `(project, trace_id) -> min/max start`, ordered by `(project, trace_id)`. A
//!   trace lookup reads a granule of it and then one narrow time range of `spans`: no scan.
//! - `api_keys`: a small `ReplacingMergeTree` keyed by hash; updates and deletes (tombstones) are
//!   new versions.
//! - Feedback, score configs and datasets: see [`records`].
//! - Retention tiers (the `tier` column of `spans`), retention by day partitions, erasure and
//!   per-project state (`project_state`): see [`retention`].
//! - Recorded eval runs (`eval_runs`): see [`evals`].
//! - `span_events`: span events waiting for their span (GenAI events sent as OTLP log
//!   records): see [`span_events`].
//!
//! # Duplicates
//!
//! A write first asks which of the batch's spans are already stored (one query per project,
//! bounded by the batch's time range and trace ids) and inserts only the new ones, so SDK retries
//! are not stored twice and `WriteStats` counts them. Two nodes racing on the same span, and
//! re-derived views (`update_views` inserts a higher version), can leave two versions of a key
//! until ClickHouse merges them; every read uses `FINAL`, so roll-ups never count a span twice.
//!
//! # Durability
//!
//! `write_spans` returns `Ok` once the batch is in ClickHouse (the HTTP insert answered 200, which
//! ClickHouse sends after writing the part) or, when ClickHouse is unreachable after the
//! configured retries, once it is fsync'd into the local spill ([`spill`]), which a background
//! task replays when ClickHouse is back. While the spill is not empty, new batches go straight
//! to it, so an unreachable server is not waited for once per batch. A full spill is
//! `store::Error::Unavailable`.

mod client;
mod config;
mod evals;
mod records;
mod retention;
mod row;
mod schema;
mod span_events;
mod spill;
mod sql;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use model::{
    Dataset, DatasetItem, DatasetVersion, ErrorCode, Feedback, FeedbackTarget, ProjectId,
    ScoreConfig, SpanEvent, SpanId, StoredSpan, TraceId, UnixNanos,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use store::{
    AggregateQuery, AggregateRow, ApiKeyRecord, Cursor, DatasetRef, FacetQuery, Facets, Metric,
    NewDatasetVersion, Page, RetentionTier, SpanQuery, Store, TraceQuery, TraceSummary, WriteStats,
};
use tokio::sync::{Mutex, OnceCell};

use crate::client::{Client, quote, quote_str, with_retries};
pub use crate::config::{ClickHouseConfig, RawClickHouseConfig};
use crate::row::{FULL_COLUMNS, FullRow};
use crate::spill::Spill;
use crate::sql::Needs;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid clickhouse url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid clickhouse config: {0}")]
    InvalidConfig(String),
    #[error("clickhouse unreachable: {0}")]
    Unreachable(String),
    #[error("clickhouse error {code}: {message}")]
    Server { code: u32, message: String, retryable: bool },
    #[error("unexpected clickhouse response: {0}")]
    BadResponse(String),
    #[error("cannot encode a span: {0}")]
    Encode(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("spill io failed")]
    Spill(#[source] std::io::Error),
    #[error("clickhouse is unreachable and the spill is full ({n_bytes} of {max_bytes} bytes)")]
    SpillFull { n_bytes: u64, max_bytes: u64 },
    #[error("clickhouse schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: u32, known: u32 },
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidUrl { .. } | Error::InvalidConfig(_) | Error::InvalidQuery(_) => {
                ErrorCode::BadRequest
            }
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::Unreachable(_) | Error::SpillFull { .. } => ErrorCode::Unavailable,
            Error::Server { retryable: true, .. } => ErrorCode::Unavailable,
            Error::Server { .. }
            | Error::BadResponse(_)
            | Error::Encode(_)
            | Error::Corrupt(_)
            | Error::Spill(_)
            | Error::SchemaTooNew { .. } => ErrorCode::Internal,
        }
    }

    /// Whether trying the same request again later may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Unreachable(_) => true,
            Error::Server { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

impl From<Error> for store::Error {
    fn from(e: Error) -> store::Error {
        let message = error_text(&e);
        match e {
            Error::InvalidQuery(m) => store::Error::InvalidQuery(m),
            Error::NotFound(m) => store::Error::NotFound(m),
            Error::Conflict(m) => store::Error::Conflict(m),
            Error::Corrupt(m) => store::Error::Corrupt(m),
            e if e.code() == ErrorCode::Unavailable => store::Error::Unavailable(message),
            _ => store::Error::Internal(message),
        }
    }
}

fn error_text(e: &dyn std::error::Error) -> String {
    let mut res = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        res.push_str(": ");
        res.push_str(&inner.to_string());
        source = inner.source();
    }
    res
}

/// Nanoseconds since the epoch, strictly increasing within the process (row versions).
pub(crate) fn now_ns() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

const MAX_LIMIT: u32 = 1000;
const DEFAULT_LIMIT: u32 = 50;

fn page_size(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// The ClickHouse store. Cheap to share behind an `Arc<dyn Store>`.
pub struct ClickHouseStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClickHouseConfig,
    client: Client,
    schema: OnceCell<schema::Dialect>,
    /// Serializes the check-then-insert of writes and replays in this process.
    write_lock: Mutex<()>,
    spill: Option<Arc<Spill>>,
    /// Set when a batch was spilled, cleared when the replay has emptied the spill. While set,
    /// writes go straight to the spill: an unreachable server is not waited for (connect
    /// timeouts, retries) once per batch, which would stall ingestion behind it.
    degraded: AtomicBool,
}

impl ClickHouseStore {
    /// Connects, creates the database when missing and runs the migrations; fails when
    /// ClickHouse cannot be reached. Starts the spill replay task on the current runtime.
    pub async fn open(config: ClickHouseConfig) -> Result<ClickHouseStore, Error> {
        let res = ClickHouseStore::open_lazy(config)?;
        res.inner.ensure_schema().await?;
        Ok(res)
    }

    /// Like [`ClickHouseStore::open`] but without contacting ClickHouse: the schema is checked
    /// on first use, and writes go to the spill until the server answers.
    pub fn open_lazy(config: ClickHouseConfig) -> Result<ClickHouseStore, Error> {
        let client = Client::new(&config)?;
        let spill = match &config.spill_dir {
            Some(dir) => Some(Arc::new(Spill::open(dir, config.spill_max_bytes)?)),
            None => None,
        };
        let inner = Arc::new(Inner {
            config,
            client,
            schema: OnceCell::new(),
            write_lock: Mutex::new(()),
            degraded: AtomicBool::new(false),
            spill,
        });
        if inner.spill.is_some() {
            let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
                Error::InvalidConfig("the store must be opened inside a tokio runtime".to_owned())
            })?;
            // The task holds only a weak reference and ends when the store is dropped; a replay
            // interrupted by shutdown is simply done again at the next start.
            runtime.spawn(replay_loop(Arc::downgrade(&inner)));
        }
        Ok(ClickHouseStore { inner })
    }

    /// Bytes waiting in the spill.
    pub fn spill_bytes(&self) -> u64 {
        self.inner.spill.as_ref().map_or(0, |spill| spill.n_bytes())
    }

    /// Replays the spill now, oldest batch first, until it is empty or ClickHouse fails.
    /// Returns the number of spans replayed.
    pub async fn replay_spill(&self) -> Result<u64, Error> {
        self.inner.replay().await
    }

    /// Drops the store's database with everything in it (for tests and benchmarks).
    pub async fn drop_database(&self) -> Result<(), Error> {
        let sql = format!("DROP DATABASE IF EXISTS {}", self.inner.config.database);
        self.inner.client.execute_without_database(&sql).await.map(|_| ())
    }
}

async fn replay_loop(inner: Weak<Inner>) {
    loop {
        let interval = match inner.upgrade() {
            Some(inner) => {
                if inner.spill.as_ref().is_some_and(|spill| spill.n_bytes() > 0)
                    && let Err(e) = inner.replay().await
                {
                    tracing::debug!(error = %e, "spill replay postponed");
                }
                inner.config.replay_interval
            }
            None => return,
        };
        tokio::time::sleep(interval).await;
    }
}

#[derive(Deserialize)]
struct KeyRow {
    trace_id: String,
    span_id: String,
}

#[derive(Deserialize)]
struct PageKey {
    project: String,
    start_ns: u64,
    trace_id: String,
    span_id: String,
}

impl PageKey {
    /// The key of a stored span's row.
    fn of(span: &StoredSpan) -> PageKey {
        PageKey {
            project: span.project.as_str().to_owned(),
            start_ns: span.raw.start_time_unix_nano,
            trace_id: span.raw.trace_id.to_hex(),
            span_id: span.raw.span_id.to_hex(),
        }
    }
}

impl Inner {
    async fn ensure_schema(&self) -> Result<schema::Dialect, Error> {
        self.schema
            .get_or_try_init(|| schema::migrate(&self.client, &self.config.database))
            .await
            .copied()
    }

    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        with_retries(self.config.insert_attempts, self.config.retry_base, op).await
    }

    /// Inserts the spans not stored yet. Caller holds `write_lock`.
    async fn insert_spans(&self, spans: &[StoredSpan]) -> Result<WriteStats, Error> {
        self.retrying(|| self.ensure_schema()).await?;
        // Duplicates within the batch: the first one wins.
        let mut seen = HashSet::new();
        let mut unique: Vec<&StoredSpan> = Vec::with_capacity(spans.len());
        for span in spans {
            if seen.insert((&span.project, span.raw.trace_id, span.raw.span_id)) {
                unique.push(span);
            }
        }
        // Spans already stored, per project.
        let mut by_project: BTreeMap<&ProjectId, Vec<&StoredSpan>> = BTreeMap::new();
        for span in &unique {
            by_project.entry(&span.project).or_default().push(span);
        }
        let mut existing = HashSet::new();
        for (project, group) in &by_project {
            let min = group.iter().map(|s| s.raw.start_time_unix_nano).min().unwrap_or(0);
            let max = group.iter().map(|s| s.raw.start_time_unix_nano).max().unwrap_or(0);
            let trace_ids: HashSet<TraceId> = group.iter().map(|s| s.raw.trace_id).collect();
            let list: Vec<String> = trace_ids.iter().map(|t| quote(t.to_hex())).collect();
            let sql = format!(
                "SELECT trace_id, span_id FROM spans WHERE project = {} AND start_ns >= {min} \
                 AND start_ns <= {max} AND trace_id IN ({})",
                quote(project),
                list.join(", ")
            );
            let rows: Vec<KeyRow> = self.retrying(|| self.client.select(&sql)).await?;
            for row in rows {
                existing.insert(((*project).clone(), row.trace_id, row.span_id));
            }
        }
        let new: Vec<&StoredSpan> = unique
            .iter()
            .copied()
            .filter(|s| {
                !existing.contains(&(
                    s.project.clone(),
                    s.raw.trace_id.to_hex(),
                    s.raw.span_id.to_hex(),
                ))
            })
            .collect();
        let stats = WriteStats {
            n_written: new.len() as u64,
            n_duplicates: (spans.len() - new.len()) as u64,
        };
        // The index first (for every span of the batch, so that a batch replayed after a
        // partial insert still indexes its traces): a span is never stored without its entry.
        let index_rows = index_rows(&unique, now_ns())?;
        if !index_rows.is_empty() {
            self.retrying(|| self.client.insert("trace_index", index_rows.clone())).await?;
        }
        if !new.is_empty() {
            let version = now_ns();
            let mut rows = Vec::new();
            for span in &new {
                row::write_span_row(span, version, 0, &mut rows)?;
            }
            self.retrying(|| self.client.insert("spans", rows.clone())).await?;
        }
        Ok(stats)
    }

    async fn replay(&self) -> Result<u64, Error> {
        let Some(spill) = &self.spill else { return Ok(0) };
        let mut n_spans = 0;
        loop {
            let _guard = self.write_lock.lock().await;
            let Some((path, spans)) = spill.oldest().await? else {
                self.degraded.store(false, Ordering::SeqCst);
                return Ok(n_spans);
            };
            let spans = match spans {
                Ok(spans) => spans,
                Err(message) => {
                    tracing::error!(%message, "unreadable spill file set aside");
                    spill.quarantine(&path)?;
                    continue;
                }
            };
            self.insert_spans(&spans).await?;
            spill.remove(&path)?;
            n_spans += spans.len() as u64;
            tracing::info!(n_spans = spans.len(), "replayed spilled spans into clickhouse");
        }
    }

    /// Fetches full spans by key, in the order of `keys`.
    async fn fetch_spans(&self, keys: &[PageKey]) -> Result<Vec<StoredSpan>, Error> {
        Ok(self.fetch_stored(keys).await?.into_iter().map(|(span, _tier)| span).collect())
    }

    /// Fetches full spans by key with the retention tier each is stored at, in the order of
    /// `keys`; keys not stored are left out.
    async fn fetch_stored(&self, keys: &[PageKey]) -> Result<Vec<(StoredSpan, u8)>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let min = keys.iter().map(|k| k.start_ns).min().unwrap_or(0);
        let max = keys.iter().map(|k| k.start_ns).max().unwrap_or(0);
        let projects: HashSet<&str> = keys.iter().map(|k| k.project.as_str()).collect();
        let tuples: Vec<String> = keys
            .iter()
            .map(|k| {
                format!(
                    "({}, {}, {})",
                    quote_str(&k.project),
                    quote_str(&k.trace_id),
                    quote_str(&k.span_id)
                )
            })
            .collect();
        let sql = format!(
            "SELECT trace_id, span_id, {FULL_COLUMNS} FROM spans FINAL \
             WHERE project IN ({}) AND start_ns >= {min} AND start_ns <= {max} \
             AND (project, trace_id, span_id) IN ({})",
            projects.iter().map(|p| quote_str(p)).collect::<Vec<_>>().join(", "),
            tuples.join(", ")
        );
        #[derive(Deserialize)]
        struct Row {
            trace_id: String,
            span_id: String,
            #[serde(flatten)]
            full: FullRow,
        }
        let rows: Vec<Row> = self.client.select(&sql).await?;
        let mut by_key: HashMap<(String, String, String), (StoredSpan, u8)> = HashMap::new();
        for row in rows {
            let key = (row.full.project.clone(), row.trace_id, row.span_id);
            let tier = row.full.tier;
            by_key.insert(key, (row.full.into_span()?, tier));
        }
        Ok(keys
            .iter()
            .filter_map(|k| {
                by_key.remove(&(k.project.clone(), k.trace_id.clone(), k.span_id.clone()))
            })
            .collect())
    }

    /// The rows a filtered query reads: `spans FINAL` of one project, joined with per-trace
    /// facts when the filter needs them.
    fn source(&self, project: &ProjectId, needs: &Needs) -> String {
        if needs.trace_facts {
            format!(
                "(SELECT * FROM spans FINAL WHERE project = {}) ANY LEFT JOIN ({}) USING trace_id",
                quote(project),
                trace_facts_sql(project, "1")
            )
        } else {
            "spans FINAL".to_owned()
        }
    }

    /// Gives spans without their own operation id their trace root's (once the root is
    /// stored), as every read but the maintenance scan reports them.
    async fn fill_operations(
        &self,
        project: &ProjectId,
        spans: &mut [StoredSpan],
    ) -> Result<(), Error> {
        let trace_ids: HashSet<TraceId> = spans
            .iter()
            .filter(|s| s.view.operation_id.is_none())
            .map(|s| s.raw.trace_id)
            .collect();
        if trace_ids.is_empty() {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Row {
            trace_id: String,
            t_root_operation: String,
        }
        let list: Vec<String> = trace_ids.iter().map(|t| quote(t.to_hex())).collect();
        let rows: Vec<Row> = self
            .client
            .select(&trace_facts_sql(project, &format!("trace_id IN ({})", list.join(", "))))
            .await?;
        let by_trace: HashMap<String, String> = rows
            .into_iter()
            .filter(|r| !r.t_root_operation.is_empty())
            .map(|r| (r.trace_id, r.t_root_operation))
            .collect();
        for span in spans.iter_mut().filter(|s| s.view.operation_id.is_none()) {
            if let Some(operation) = by_trace.get(&span.raw.trace_id.to_hex()) {
                span.view.operation_id = Some(operation.clone());
            }
        }
        Ok(())
    }

    /// The `WHERE` condition of a query: project, time range and filter.
    fn condition(
        &self,
        project: &ProjectId,
        query_time: &store::TimeRange,
        filter: Option<&store::Expr>,
        needs: &mut Needs,
    ) -> Result<String, Error> {
        let filter = match filter {
            Some(expr) => sql::compile(expr, needs).map_err(Error::InvalidQuery)?,
            None => "1".to_owned(),
        };
        Ok(format!(
            "project = {} AND {} AND ({filter})",
            quote(project),
            sql::time_condition(query_time)
        ))
    }

    /// Trace summaries: the page of traces is chosen in `trace_index` (newest or oldest first
    /// by `order`, after the cursor condition `having`, among `matching` trace ids when given),
    /// then only those traces' spans are rolled up, reading their time range alone.
    async fn summaries(
        &self,
        project: &ProjectId,
        matching: Option<&str>,
        having: &str,
        order: &str,
        limit: u32,
    ) -> Result<Vec<TraceSummary>, Error> {
        #[derive(Deserialize)]
        struct PageRow {
            trace_id: String,
            t_start: u64,
            t_last: u64,
        }
        let p = quote(project);
        let restrict = matching.map_or(String::new(), |m| format!(" AND trace_id IN ({m})"));
        let page: Vec<PageRow> = self
            .client
            .select(&format!(
                "SELECT trace_id, min(min_start_ns) AS t_start, max(max_start_ns) AS t_last \
                 FROM trace_index WHERE project = {p}{restrict} GROUP BY trace_id \
                 HAVING {having} ORDER BY {order} LIMIT {limit}"
            ))
            .await?;
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let lo = page.iter().map(|r| r.t_start).min().unwrap_or(0);
        let hi = page.iter().map(|r| r.t_last).max().unwrap_or(u64::MAX);
        let ids: Vec<String> = page.iter().map(|r| quote_str(&r.trace_id)).collect();
        let sql = format!(
            "SELECT trace_id, min(start_ns) AS t_start, max(end_ns) AS t_end, count() AS n_spans, \
             countIf(span_type = 'llm') AS n_llm, countIf(status = 'error') AS n_errors, \
             sum(ifNull(input_tokens, 0)) AS in_tokens, sum(ifNull(output_tokens, 0)) AS out_tokens, \
             toString(sum(ifNull(cost, toDecimal128(0, 12)))) AS cost_sum, countIf(isNotNull(cost)) AS n_cost, \
             countIf(parent_span_id = '') AS n_roots, anyIf(name, parent_span_id = '') AS root_name, \
             anyIf(service, parent_span_id = '') AS root_service, argMin(service, start_ns) AS first_service, \
             anyIf(operation, parent_span_id = '' AND operation != '') AS root_operation, \
             argMinIf(operation, start_ns, operation != '') AS any_operation, \
             argMinIf(session_id, start_ns, session_id != '') AS session, \
             argMinIf(user_id, start_ns, user_id != '') AS user \
             FROM spans FINAL WHERE project = {p} AND start_ns >= {lo} AND start_ns <= {hi} \
             AND trace_id IN ({}) GROUP BY trace_id",
            ids.join(", ")
        );
        #[derive(Deserialize)]
        struct Row {
            trace_id: String,
            t_start: u64,
            t_end: u64,
            n_spans: u64,
            n_llm: u64,
            n_errors: u64,
            in_tokens: u64,
            out_tokens: u64,
            cost_sum: String,
            n_cost: u64,
            n_roots: u64,
            root_name: String,
            root_service: String,
            first_service: String,
            root_operation: String,
            any_operation: String,
            session: String,
            user: String,
        }
        let mut by_trace: HashMap<String, Row> = self
            .client
            .select::<Row>(&sql)
            .await?
            .into_iter()
            .map(|row| (row.trace_id.clone(), row))
            .collect();
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        // In page order; a trace indexed but whose spans are still being replayed is left out.
        page.iter()
            .filter_map(|p| by_trace.remove(&p.trace_id))
            .map(|row| {
                let trace_id = TraceId::from_hex(&row.trace_id)
                    .map_err(|e| Error::Corrupt(format!("trace id: {e}")))?;
                let has_root = row.n_roots > 0;
                let root_name = if has_root { Some(row.root_name) } else { None };
                let cost = if row.n_cost > 0 {
                    Some(parse_decimal(&row.cost_sum)?.normalize())
                } else {
                    None
                };
                Ok(TraceSummary {
                    project: project.clone(),
                    trace_id,
                    service: non_empty(if has_root { row.root_service } else { row.first_service }),
                    // The root's operation id, else its name; without a root, any span's.
                    operation_id: if has_root {
                        non_empty(row.root_operation).or_else(|| root_name.clone())
                    } else {
                        non_empty(row.any_operation)
                    },
                    root_name,
                    start_ns: row.t_start,
                    end_ns: row.t_end,
                    n_spans: row.n_spans,
                    n_llm_spans: row.n_llm,
                    n_errors: row.n_errors,
                    input_tokens: row.in_tokens,
                    output_tokens: row.out_tokens,
                    cost,
                    session_id: non_empty(row.session),
                    user_id: non_empty(row.user),
                })
            })
            .collect()
    }
}

/// `trace_index` rows for a batch: one per (project, trace).
fn index_rows(spans: &[&StoredSpan], version: u64) -> Result<Vec<u8>, Error> {
    struct Facts<'a> {
        min_start: u64,
        max_start: u64,
        max_end: u64,
        root: Option<&'a StoredSpan>,
    }
    let mut by_trace: BTreeMap<(&ProjectId, TraceId), Facts> = BTreeMap::new();
    for span in spans {
        let (start, end) = (span.raw.start_time_unix_nano, span.raw.end_time_unix_nano);
        let facts = by_trace.entry((&span.project, span.raw.trace_id)).or_insert(Facts {
            min_start: start,
            max_start: start,
            max_end: end,
            root: None,
        });
        facts.min_start = facts.min_start.min(start);
        facts.max_start = facts.max_start.max(start);
        facts.max_end = facts.max_end.max(end);
        if span.raw.parent_span_id.is_none() {
            facts.root = Some(span);
        }
    }
    let mut res = Vec::new();
    for ((project, trace_id), facts) in by_trace {
        let root = facts.root;
        let line = serde_json::json!({
            "project": project.as_str(),
            "trace_id": trace_id.to_hex(),
            "min_start_ns": facts.min_start,
            "max_start_ns": facts.max_start,
            "max_end_ns": facts.max_end,
            "has_root": u8::from(root.is_some()),
            "root_name": root.map_or("", |r| r.raw.name.as_str()),
            "root_operation": root.and_then(|r| r.view.operation_id.as_deref()).unwrap_or(""),
            "version": version,
        });
        serde_json::to_writer(&mut res, &line).map_err(|e| Error::Encode(e.to_string()))?;
        res.push(b'\n');
    }
    Ok(res)
}

/// Per-trace facts of one project from `trace_index`, for joins; `extra` narrows the rows.
fn trace_facts_sql(project: &ProjectId, extra: &str) -> String {
    format!(
        "SELECT trace_id, argMaxIf(root_name, version, has_root = 1) AS t_root_name, \
         max(max_end_ns) - min(min_start_ns) AS t_duration, \
         argMaxIf(if(root_operation != '', root_operation, root_name), version, has_root = 1) \
         AS t_root_operation FROM trace_index WHERE project = {} AND {extra} GROUP BY trace_id",
        quote(project)
    )
}

fn parse_decimal(text: &str) -> Result<Decimal, Error> {
    text.trim().parse::<Decimal>().map_err(|e| Error::BadResponse(format!("decimal {text:?}: {e}")))
}

/// Cursor of a newest-first span list: `start.trace.span`.
fn span_cursor(start_ns: u64, trace_id: &str, span_id: &str) -> Cursor {
    Cursor(format!("{start_ns}.{trace_id}.{span_id}"))
}

fn parse_span_cursor(cursor: &Cursor) -> Result<(u64, TraceId, model::SpanId), Error> {
    let bad = || Error::InvalidQuery(format!("bad cursor {:?}", cursor.0));
    let mut parts = cursor.0.split('.');
    let start = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let trace = parts.next().and_then(|s| TraceId::from_hex(s).ok()).ok_or_else(bad)?;
    let span = parts.next().and_then(|s| model::SpanId::from_hex(s).ok()).ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((start, trace, span))
}

fn parse_trace_cursor(cursor: &Cursor) -> Result<(u64, TraceId), Error> {
    let bad = || Error::InvalidQuery(format!("bad cursor {:?}", cursor.0));
    let (start, trace) = cursor.0.split_once('.').ok_or_else(bad)?;
    let start = start.parse().map_err(|_| bad())?;
    let trace = TraceId::from_hex(trace).map_err(|_| bad())?;
    Ok((start, trace))
}

/// A `count() AS n` row.
#[derive(Deserialize)]
pub(crate) struct CountRow {
    pub(crate) n: u64,
}

#[async_trait]
impl Store for ClickHouseStore {
    fn backend_name(&self) -> &'static str {
        "clickhouse"
    }

    async fn write_spans(&self, spans: &[StoredSpan]) -> store::Result<WriteStats> {
        if spans.is_empty() {
            return Ok(WriteStats::default());
        }
        let inner = &self.inner;
        let _guard = inner.write_lock.lock().await;
        let spilled = WriteStats { n_written: spans.len() as u64, n_duplicates: 0 };
        if let Some(spill) = &inner.spill
            && inner.degraded.load(Ordering::SeqCst)
        {
            spill.append(spans).await?;
            return Ok(spilled);
        }
        match inner.insert_spans(spans).await {
            Ok(stats) => Ok(stats),
            Err(e) if e.is_retryable() => match &inner.spill {
                Some(spill) => {
                    spill.append(spans).await?;
                    inner.degraded.store(true, Ordering::SeqCst);
                    tracing::warn!(n_spans = spans.len(), error = %e, "clickhouse unavailable; batch spilled");
                    Ok(spilled)
                }
                None => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    async fn get_trace(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Vec<StoredSpan>> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        #[derive(Deserialize)]
        struct Bounds {
            n: u64,
            lo: u64,
            hi: u64,
        }
        let p = quote(project);
        let t = quote(trace_id.to_hex());
        let bounds: Vec<Bounds> = inner
            .client
            .select(&format!(
                "SELECT count() AS n, min(min_start_ns) AS lo, max(max_start_ns) AS hi \
                 FROM trace_index WHERE project = {p} AND trace_id = {t}"
            ))
            .await?;
        let Some(bounds) = bounds.into_iter().find(|b| b.n > 0) else { return Ok(Vec::new()) };
        let rows: Vec<FullRow> = inner
            .client
            .select(&format!(
                "SELECT {FULL_COLUMNS} FROM spans FINAL WHERE project = {p} \
                 AND start_ns >= {} AND start_ns <= {} AND trace_id = {t} \
                 ORDER BY start_ns, span_id",
                bounds.lo, bounds.hi
            ))
            .await?;
        let mut spans: Vec<StoredSpan> =
            rows.into_iter().map(FullRow::into_span).collect::<Result<_, _>>()?;
        // The root, when stored, is among the trace's spans: fill from it without a query.
        let root_operation = spans
            .iter()
            .find(|s| s.raw.parent_span_id.is_none())
            .map(|root| root.view.operation_id.clone().unwrap_or_else(|| root.raw.name.clone()));
        if let Some(operation) = root_operation {
            for span in spans.iter_mut().filter(|s| s.view.operation_id.is_none()) {
                span.view.operation_id = Some(operation.clone());
            }
        }
        Ok(spans)
    }

    async fn search_spans(
        &self,
        project: &ProjectId,
        query: &SpanQuery,
    ) -> store::Result<Page<StoredSpan>> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        let limit = page_size(query.limit);
        let mut needs = Needs::for_project(project);
        let condition = inner.condition(project, &query.time, query.filter.as_ref(), &mut needs)?;
        let source = inner.source(project, &needs);
        let after = match &query.cursor {
            Some(cursor) => {
                let (s, t, sp) = parse_span_cursor(cursor)?;
                let (t, sp) = (quote(t.to_hex()), quote(sp.to_hex()));
                format!(
                    "(start_ns < {s} OR (start_ns = {s} AND (trace_id < {t} OR (trace_id = {t} AND span_id < {sp}))))"
                )
            }
            None => "1".to_owned(),
        };
        let keys: Vec<PageKey> = inner
            .client
            .select(&format!(
                "SELECT project, start_ns, trace_id, span_id FROM {source} WHERE {condition} AND {after} \
                 ORDER BY start_ns DESC, trace_id DESC, span_id DESC LIMIT {}",
                limit + 1
            ))
            .await?;
        let next_cursor = (keys.len() > limit as usize).then(|| {
            let last = &keys[limit as usize - 1];
            span_cursor(last.start_ns, &last.trace_id, &last.span_id)
        });
        let keys = &keys[..keys.len().min(limit as usize)];
        let mut items = inner.fetch_spans(keys).await?;
        inner.fill_operations(project, &mut items).await?;
        let total = if query.with_total {
            let rows: Vec<CountRow> = inner
                .client
                .select(&format!("SELECT count() AS n FROM {source} WHERE {condition}"))
                .await?;
            Some(rows.first().map_or(0, |r| r.n))
        } else {
            None
        };
        Ok(Page { items, next_cursor, total })
    }

    async fn search_traces(
        &self,
        project: &ProjectId,
        query: &TraceQuery,
    ) -> store::Result<Page<TraceSummary>> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        let limit = page_size(query.limit);
        let mut needs = Needs::for_project(project);
        let condition = inner.condition(project, &query.time, query.filter.as_ref(), &mut needs)?;
        let source = inner.source(project, &needs);
        let unfiltered = query.filter.is_none() && query.time == store::TimeRange::default();
        let matching = format!("SELECT trace_id FROM {source} WHERE {condition}");
        let matching = (!unfiltered).then_some(matching.as_str());
        let having = match &query.cursor {
            Some(cursor) => {
                let (s, t) = parse_trace_cursor(cursor)?;
                let t = quote(t.to_hex());
                format!("(t_start < {s} OR (t_start = {s} AND trace_id < {t}))")
            }
            None => "1".to_owned(),
        };
        let order = "t_start DESC, trace_id DESC";
        let mut items = match matching {
            None => inner.summaries(project, None, &having, order, limit + 1).await?,
            Some(matching) => {
                // Newest first: look for matching spans in a recent window, widened until it
                // holds a full page. A trace not found in `[from, ...)` has all its matching
                // spans, hence its start, before `from`; so once a full page of found traces
                // starts at or after `from`, no other trace can belong on the page.
                #[derive(Deserialize)]
                struct Bounds {
                    n: u64,
                    lo: u64,
                    hi: u64,
                }
                let bounds: Vec<Bounds> = inner
                    .client
                    .select(&format!(
                        "SELECT count() AS n, min(min_start_ns) AS lo, max(max_start_ns) AS hi \
                         FROM trace_index WHERE project = {}",
                        quote(project)
                    ))
                    .await?;
                let (lo, hi) = match bounds.first() {
                    Some(b) if b.n > 0 => (b.lo, b.hi),
                    _ => (0, 0),
                };
                let floor = lo.max(query.time.from_ns.unwrap_or(0));
                let upper = query.time.to_ns.map_or(hi, |to| hi.min(to));
                let mut width: u64 = 3_600_000_000_000;
                loop {
                    let from = upper.saturating_sub(width);
                    if from <= floor {
                        break inner
                            .summaries(project, Some(matching), &having, order, limit + 1)
                            .await?;
                    }
                    let windowed = format!("{matching} AND start_ns >= {from}");
                    let found = inner
                        .summaries(project, Some(&windowed), &having, order, limit + 1)
                        .await?;
                    if found.len() > limit as usize && found.iter().all(|t| t.start_ns >= from) {
                        break found;
                    }
                    width = width.saturating_mul(4);
                }
            }
        };
        let next_cursor = (items.len() > limit as usize).then(|| {
            let last = &items[limit as usize - 1];
            Cursor(format!("{}.{}", last.start_ns, last.trace_id.to_hex()))
        });
        items.truncate(limit as usize);
        let total = if query.with_total {
            let rows: Vec<CountRow> = inner
                .client
                .select(&format!("SELECT uniqExact(trace_id) AS n FROM {source} WHERE {condition}"))
                .await?;
            Some(rows.first().map_or(0, |r| r.n))
        } else {
            None
        };
        Ok(Page { items, next_cursor, total })
    }

    async fn session_traces(
        &self,
        project: &ProjectId,
        session_id: &str,
        limit: u32,
    ) -> store::Result<Vec<TraceSummary>> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        let matching = format!(
            "SELECT trace_id FROM spans FINAL WHERE project = {} AND session_id = {}",
            quote(project),
            quote_str(session_id)
        );
        Ok(inner
            .summaries(project, Some(&matching), "1", "t_start ASC, trace_id ASC", page_size(limit))
            .await?)
    }

    async fn facets(&self, project: &ProjectId, query: &FacetQuery) -> store::Result<Facets> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        let limit = page_size(query.limit);
        let base = format!("project = {} AND {}", quote(project), sql::time_condition(&query.time));
        let joined =
            inner.source(project, &Needs { trace_facts: true, ..Needs::for_project(project) });
        let facets: [(&str, &str); 8] = [
            ("services", "service"),
            ("span_names", "name"),
            ("models", "model"),
            ("providers", "provider"),
            ("operations", sql::EFFECTIVE_OPERATION),
            ("span_types", "span_type"),
            ("environments", "environment"),
            ("tags", "arrayJoin(tags)"),
        ];
        let parts: Vec<String> = facets
            .iter()
            .map(|(facet, expr)| {
                let source = if *facet == "operations" { joined.as_str() } else { "spans FINAL" };
                format!(
                    "SELECT * FROM (SELECT '{facet}' AS facet, {expr} AS value, count() AS n \
                     FROM {source} WHERE {base} GROUP BY value HAVING value != '' \
                     ORDER BY n DESC, value ASC LIMIT {limit})"
                )
            })
            .collect();
        #[derive(Deserialize)]
        struct Row {
            facet: String,
            value: String,
            n: u64,
        }
        let rows: Vec<Row> = inner.client.select(&parts.join(" UNION ALL ")).await?;
        let mut res = Facets::default();
        for row in rows {
            let list = match row.facet.as_str() {
                "services" => &mut res.services,
                "span_names" => &mut res.span_names,
                "models" => &mut res.models,
                "providers" => &mut res.providers,
                "operations" => &mut res.operations,
                "span_types" => &mut res.span_types,
                "environments" => &mut res.environments,
                _ => &mut res.tags,
            };
            list.push((row.value, row.n));
        }
        // UNION ALL does not keep the order of its parts' rows.
        for list in [
            &mut res.services,
            &mut res.span_names,
            &mut res.models,
            &mut res.providers,
            &mut res.operations,
            &mut res.span_types,
            &mut res.environments,
            &mut res.tags,
        ] {
            list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        Ok(res)
    }

    async fn aggregate(
        &self,
        project: &ProjectId,
        query: &AggregateQuery,
    ) -> store::Result<Vec<AggregateRow>> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        let mut needs = Needs::for_project(project);
        let condition = inner.condition(project, &query.time, query.filter.as_ref(), &mut needs)?;
        let groups: Vec<String> =
            query.group_by.iter().map(|g| sql::group_expr(g, &mut needs)).collect();
        let source = inner.source(project, &needs);
        let limit = page_size(query.limit);
        let mut select: Vec<String> =
            groups.iter().enumerate().map(|(i, g)| format!("{g} AS g{i}")).collect();
        let bucket = query.bucket_ns.filter(|b| *b > 0);
        if let Some(b) = bucket {
            select.push(format!("intDiv(start_ns, {b}) * {b} AS bucket"));
        }
        for (i, metric) in query.metrics.iter().enumerate() {
            let expr = match metric {
                Metric::Count => "toString(count())",
                Metric::Errors => "toString(countIf(status = 'error'))",
                Metric::P50 => "toString(quantileExact(0.5)(duration_ns))",
                Metric::P95 => "toString(quantileExact(0.95)(duration_ns))",
                Metric::P99 => "toString(quantileExact(0.99)(duration_ns))",
                Metric::InputTokens => "toString(sum(ifNull(input_tokens, 0)))",
                Metric::OutputTokens => "toString(sum(ifNull(output_tokens, 0)))",
                Metric::Cost => {
                    "if(countIf(isNotNull(cost)) = 0, NULL, toString(sum(ifNull(cost, toDecimal128(0, 12)))))"
                }
            };
            select.push(format!("{expr} AS m{i}"));
        }
        select.push("count() AS n_rows".to_owned());
        let group_names: Vec<String> = (0..groups.len()).map(|i| format!("g{i}")).collect();
        let mut group_by = group_names.clone();
        if bucket.is_some() {
            group_by.push("bucket".to_owned());
        }
        // With buckets, `limit` bounds the number of groups: keep the largest groups' rows.
        let mut condition = condition;
        if bucket.is_some() && !groups.is_empty() {
            let tuple = format!("({})", groups.join(", "));
            let top = format!(
                "SELECT {} FROM {source} WHERE {condition} GROUP BY {} ORDER BY count() DESC LIMIT {limit}",
                groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| format!("{g} AS g{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                group_names.join(", ")
            );
            condition = format!("{condition} AND {tuple} IN ({top})");
        }
        let order = if bucket.is_some() {
            let mut order = vec!["bucket ASC".to_owned(), "n_rows DESC".to_owned()];
            order.extend(group_names.iter().map(|g| format!("{g} ASC")));
            order.join(", ")
        } else {
            let mut order = vec!["n_rows DESC".to_owned()];
            order.extend(group_names.iter().map(|g| format!("{g} ASC")));
            order.join(", ")
        };
        let group_clause = if group_by.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", group_by.join(", "))
        };
        let limit_clause = if bucket.is_some() { String::new() } else { format!(" LIMIT {limit}") };
        let sql = format!(
            "SELECT {} FROM {source} WHERE {condition}{group_clause} ORDER BY {order}{limit_clause}",
            select.join(", ")
        );
        let rows: Vec<serde_json::Map<String, serde_json::Value>> =
            inner.client.select(&sql).await?;
        let mut res = Vec::with_capacity(rows.len());
        for row in rows {
            // An ungrouped aggregate over no rows is one row of zeros; report no rows instead.
            if row.get("n_rows").and_then(serde_json::Value::as_u64) == Some(0) && groups.is_empty()
            {
                continue;
            }
            let group = (0..groups.len())
                .map(|i| row.get(&format!("g{i}")).and_then(|v| v.as_str()).map(str::to_owned))
                .collect();
            let bucket_start_ns =
                bucket.and_then(|_| row.get("bucket").and_then(serde_json::Value::as_u64));
            let values = (0..query.metrics.len())
                .map(|i| match row.get(&format!("m{i}")).and_then(|v| v.as_str()) {
                    Some(text) => parse_decimal(text).map(|d| Some(d.normalize())),
                    None => Ok(None),
                })
                .collect::<Result<_, Error>>()?;
            res.push(AggregateRow { group, bucket_start_ns, values });
        }
        Ok(res)
    }

    async fn scan_spans(
        &self,
        after: Option<&Cursor>,
        limit: u32,
    ) -> store::Result<Page<StoredSpan>> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        let limit = page_size(limit);
        let condition = match after {
            Some(cursor) => {
                let bad = || Error::InvalidQuery(format!("bad cursor {:?}", cursor.0));
                let (project, rest) = cursor.0.split_once('/').ok_or_else(bad)?;
                let (s, t, sp) = parse_span_cursor(&Cursor(rest.to_owned()))?;
                let p = quote_str(project);
                let (t, sp) = (quote(t.to_hex()), quote(sp.to_hex()));
                format!(
                    "(project > {p} OR (project = {p} AND (start_ns > {s} OR (start_ns = {s} AND \
                     (trace_id > {t} OR (trace_id = {t} AND span_id > {sp}))))))"
                )
            }
            None => "1".to_owned(),
        };
        let keys: Vec<PageKey> = inner
            .client
            .select(&format!(
                "SELECT project, start_ns, trace_id, span_id FROM spans FINAL WHERE {condition} \
                 ORDER BY project, start_ns, trace_id, span_id LIMIT {}",
                limit + 1
            ))
            .await?;
        let next_cursor = (keys.len() > limit as usize).then(|| {
            let last = &keys[limit as usize - 1];
            Cursor(format!(
                "{}/{}",
                last.project,
                span_cursor(last.start_ns, &last.trace_id, &last.span_id).0
            ))
        });
        let keys = &keys[..keys.len().min(limit as usize)];
        let items = inner.fetch_spans(keys).await?;
        Ok(Page { items, next_cursor, total: None })
    }

    async fn update_views(&self, spans: &[StoredSpan]) -> store::Result<u64> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        if spans.is_empty() {
            return Ok(0);
        }
        let _guard = inner.write_lock.lock().await;
        let keys: Vec<PageKey> = spans.iter().map(PageKey::of).collect();
        let stored = inner.fetch_stored(&keys).await?;
        let mut by_key: HashMap<(ProjectId, TraceId, model::SpanId), (StoredSpan, u8)> = stored
            .into_iter()
            .map(|(s, tier)| ((s.project.clone(), s.raw.trace_id, s.raw.span_id), (s, tier)))
            .collect();
        let version = now_ns();
        let mut rows = Vec::new();
        let mut updated = Vec::new();
        for span in spans {
            if let Some((mut current, tier)) =
                by_key.remove(&(span.project.clone(), span.raw.trace_id, span.raw.span_id))
            {
                current.view = span.view.clone();
                // The span stays at its retention tier.
                row::write_span_row(&current, version, tier, &mut rows)?;
                updated.push(current);
            }
        }
        let n_updated = updated.len() as u64;
        // A root's operation id is also a fact of its trace.
        let roots: Vec<&StoredSpan> =
            updated.iter().filter(|s| s.raw.parent_span_id.is_none()).collect();
        if !roots.is_empty() {
            let index = index_rows(&roots, version)?;
            inner.retrying(|| inner.client.insert("trace_index", index.clone())).await?;
        }
        if !rows.is_empty() {
            inner.retrying(|| inner.client.insert("spans", rows.clone())).await?;
        }
        Ok(n_updated)
    }

    async fn put_api_key(&self, record: &ApiKeyRecord) -> store::Result<()> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        let labels_json =
            serde_json::to_string(&record.labels).map_err(|e| Error::Encode(e.to_string()))?;
        let row = serde_json::json!({
            "key_hash": record.key_hash,
            "id": record.id,
            "project": record.project.as_str(),
            "name": record.name,
            "prefix": record.prefix,
            "created_ns": record.created_ns,
            "labels_json": labels_json,
            "deleted": 0,
            "version": now_ns(),
        });
        let body = format!("{row}\n").into_bytes();
        inner.retrying(|| inner.client.insert("api_keys", body.clone())).await?;
        Ok(())
    }

    async fn find_api_key(&self, key_hash: &str) -> store::Result<Option<ApiKeyRecord>> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        let rows = select_api_keys(inner, &format!("key_hash = {}", quote_str(key_hash))).await?;
        Ok(rows.into_iter().next())
    }

    async fn list_api_keys(&self, project: &ProjectId) -> store::Result<Vec<ApiKeyRecord>> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        Ok(select_api_keys(inner, &format!("project = {}", quote(project))).await?)
    }

    async fn delete_api_key(&self, project: &ProjectId, key_id: &str) -> store::Result<bool> {
        let inner = &self.inner;
        inner.ensure_schema().await?;
        let condition = format!("project = {} AND id = {}", quote(project), quote_str(key_id));
        let records = select_api_keys(inner, &condition).await?;
        if records.is_empty() {
            return Ok(false);
        }
        let version = now_ns();
        let mut body = String::new();
        for record in &records {
            let row = serde_json::json!({
                "key_hash": record.key_hash,
                "id": record.id,
                "project": record.project.as_str(),
                "name": record.name,
                "prefix": record.prefix,
                "created_ns": record.created_ns,
                "labels_json": "{}",
                "deleted": 1,
                "version": version,
            });
            body.push_str(&format!("{row}\n"));
        }
        let body = body.into_bytes();
        inner.retrying(|| inner.client.insert("api_keys", body.clone())).await?;
        Ok(true)
    }

    async fn delete_traces(
        &self,
        project: &ProjectId,
        trace_ids: &[TraceId],
    ) -> store::Result<u64> {
        self.inner.ensure_schema().await?;
        let _guard = self.inner.write_lock.lock().await;
        Ok(self.inner.delete_traces(project, trace_ids).await?)
    }

    async fn put_span_events(
        &self,
        project: &ProjectId,
        events: &[SpanEvent],
    ) -> store::Result<()> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.put_span_events(project, events).await?)
    }

    async fn span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> store::Result<Vec<SpanEvent>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.span_events(project, spans).await?)
    }

    async fn delete_span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> store::Result<u64> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.delete_span_events(project, spans).await?)
    }

    async fn span_projects(&self) -> store::Result<Vec<ProjectId>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.span_projects().await?)
    }

    async fn spans_below_tier(
        &self,
        project: &ProjectId,
        tier: RetentionTier,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<StoredSpan>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.spans_below_tier(project, tier, started_before_ns, limit).await?)
    }

    async fn rewrite_spans(&self, spans: &[StoredSpan], tier: RetentionTier) -> store::Result<u64> {
        self.inner.ensure_schema().await?;
        let _guard = self.inner.write_lock.lock().await;
        Ok(self.inner.rewrite_spans(spans, tier).await?)
    }

    async fn delete_traces_before(
        &self,
        project: &ProjectId,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<u64> {
        self.inner.ensure_schema().await?;
        let _guard = self.inner.write_lock.lock().await;
        Ok(self.inner.delete_traces_before(project, started_before_ns, limit).await?)
    }

    async fn user_traces(
        &self,
        project: &ProjectId,
        users: &[String],
        after: Option<TraceId>,
        limit: u32,
    ) -> store::Result<Vec<TraceId>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.user_traces(project, users, after, limit).await?)
    }

    async fn purge_deleted(&self) -> store::Result<()> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.purge_deleted().await?)
    }

    async fn get_state(&self, project: &ProjectId, key: &str) -> store::Result<Option<String>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.get_state(project, key).await?)
    }

    async fn put_state(&self, project: &ProjectId, key: &str, value: &str) -> store::Result<()> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.put_state(project, key, value).await?)
    }

    async fn put_eval_run(&self, run: &store::EvalRunRecord) -> store::Result<()> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.put_eval_run(run).await?)
    }

    async fn list_eval_runs(
        &self,
        project: &ProjectId,
        limit: u32,
    ) -> store::Result<Vec<store::EvalRunRow>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.list_eval_runs(project, limit).await?)
    }

    async fn get_eval_run(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> store::Result<Option<store::EvalRunRecord>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.get_eval_run(project, id).await?)
    }

    async fn put_feedback(&self, feedback: &Feedback) -> store::Result<()> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.put_feedback(feedback).await?)
    }

    async fn put_feedback_batch(&self, entries: &[Feedback]) -> store::Result<()> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.put_feedback_batch(entries).await?)
    }

    async fn get_feedback(&self, project: &ProjectId, id: &str) -> store::Result<Option<Feedback>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.get_feedback(project, id).await?)
    }

    async fn list_feedback(
        &self,
        project: &ProjectId,
        target: &FeedbackTarget,
    ) -> store::Result<Vec<Feedback>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.list_feedback(project, target).await?)
    }

    async fn trace_feedback(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Vec<Feedback>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.trace_feedback(project, trace_id).await?)
    }

    async fn pending_feedback(
        &self,
        project: &ProjectId,
        created_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<Feedback>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.pending_feedback(project, created_before_ns, limit).await?)
    }

    async fn delete_feedback(&self, project: &ProjectId, id: &str) -> store::Result<bool> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.delete_feedback(project, id).await?)
    }

    async fn put_score_config(
        &self,
        project: &ProjectId,
        config: &ScoreConfig,
    ) -> store::Result<()> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.put_score_config(project, config).await?)
    }

    async fn list_score_configs(&self, project: &ProjectId) -> store::Result<Vec<ScoreConfig>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.list_score_configs(project).await?)
    }

    async fn delete_score_config(&self, project: &ProjectId, name: &str) -> store::Result<bool> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.delete_score_config(project, name).await?)
    }

    async fn create_dataset(&self, dataset: &Dataset) -> store::Result<()> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.create_dataset(dataset).await?)
    }

    async fn get_dataset(&self, project: &ProjectId, name: &str) -> store::Result<Option<Dataset>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.get_dataset(project, name).await?)
    }

    async fn list_datasets(&self, project: &ProjectId) -> store::Result<Vec<Dataset>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.list_datasets(project).await?)
    }

    async fn create_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        changes: &NewDatasetVersion,
    ) -> store::Result<DatasetVersion> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.create_dataset_version(project, dataset, changes).await?)
    }

    async fn get_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
    ) -> store::Result<Option<DatasetVersion>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.get_dataset_version(project, dataset, version).await?)
    }

    async fn list_dataset_versions(
        &self,
        project: &ProjectId,
        dataset: &str,
    ) -> store::Result<Vec<DatasetVersion>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.list_dataset_versions(project, dataset).await?)
    }

    async fn dataset_items(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
        after: Option<&Cursor>,
        limit: u32,
    ) -> store::Result<Page<DatasetItem>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.dataset_items(project, dataset, version, after, limit).await?)
    }

    async fn span_datasets(
        &self,
        project: &ProjectId,
        span_id: model::SpanId,
    ) -> store::Result<Vec<DatasetRef>> {
        self.inner.ensure_schema().await?;
        Ok(self.inner.span_datasets(project, span_id).await?)
    }
}

async fn select_api_keys(inner: &Inner, condition: &str) -> Result<Vec<ApiKeyRecord>, Error> {
    #[derive(Deserialize)]
    struct Row {
        key_hash: String,
        id: String,
        project: String,
        name: String,
        prefix: String,
        created_ns: UnixNanos,
        labels_json: String,
    }
    let rows: Vec<Row> = inner
        .client
        .select(&format!(
            "SELECT key_hash, id, project, name, prefix, created_ns, labels_json \
             FROM (SELECT * FROM api_keys FINAL WHERE {condition}) WHERE deleted = 0 \
             ORDER BY created_ns, id"
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ApiKeyRecord {
                id: row.id,
                project: ProjectId::new(&row.project).map_err(Error::Corrupt)?,
                name: row.name,
                key_hash: row.key_hash,
                prefix: row.prefix,
                created_ns: row.created_ns,
                labels: serde_json::from_str(&row.labels_json)
                    .map_err(|e| Error::Corrupt(format!("api key labels: {e}")))?,
            })
        })
        .collect()
}
