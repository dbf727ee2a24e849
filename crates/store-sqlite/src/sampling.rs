//! Tail sampling in SQLite: which traces wait for a decision, the decisions, and deleting
//! traces (spans, records, roll-ups and full-text entries).
//!
//! # Layout (schema version 5, see [`MIGRATION`])
//!
//! - `sampling_cursor`: one row, the highest span rowid already noted. Spans are written as
//!   usual; each [`SqliteStore::sampling_undecided`] call first notes the spans stored since
//!   (indexed range reads of `spans`, in batches, each its own transaction, so span writes run
//!   between them), so the write path pays nothing for sampling and a crash loses no pending
//!   trace. The cursor starts at the highest rowid of the first call:
//!   traces stored before sampling was first used are never decided.
//! - `sampling_pending`: the traces without a decision, with `ready_ns`, the time their root
//!   span was noted or, while no root was, the time their last span was.
//! - `sampling_decisions`: one row per decided trace (`keep` 0 or 1). A span noted for a trace
//!   decided `drop` is a late span: its trace is deleted again.
//! - `sampling_deferred`: traces whose deletion is postponed (below).
//! - `sampling_staged` (schema version 9, [`STAGING_MIGRATION`]): spans of undecided traces
//!   written by [`SqliteStore::sampling_stage`] (`Store::stage_spans`, what the pipeline
//!   calls while sampling is on): the `spans` columns and the encoded record, with one unique
//!   index, in the transaction that makes the trace pending. Recording a decision copies the
//!   staged rows of a kept trace into `spans` and `span_docs` and adds them to its roll-up (the
//!   full-text indexer then picks them up as it does new spans), and deletes those of a
//!   dropped one, in one transaction, with no record decoded or encoded again. A dropped trace
//!   so costs one insert per span and one range delete, where writing it to `spans` first cost
//!   the indexes, the roll-up, the full-text entries and then deleting all of them. Staged
//!   spans are not read by queries: a trace appears when it is kept. The sampler reads staged
//!   spans from their columns alone (a skeleton) when its policies need no content.
//!
//! # Deleting and rowids
//!
//! Span rowids are the keys of `span_docs` and of the full-text index in `search.db`, and the
//! indexer relies on them never being reused. SQLite gives a new row the highest rowid plus one,
//! so deleting the span with the highest rowid would hand its rowid (and those below it down to
//! the next survivor) to the next spans. So a trace holding the highest rowid is not deleted at
//! once but recorded in `sampling_deferred` and deleted by a later call, once newer spans exist.
//!
//! Spans, records, roll-ups and the deferral are deleted in one transaction of `loupe.db`; the
//! full-text entries live in `search.db` and are deleted right after, under the index lock.
//! A crash in between leaves entries whose rowids match no span and are never reused.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use model::{
    Feedback, LlmView, ProjectId, RawSpan, SpanId, SpanType, StatusCode, StoredSpan, TraceId,
    UnixNanos,
};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};
use store::WriteStats;

use crate::write::to_i64;
use crate::{Error, Inner, SqliteStore, codec};

/// Tables of schema version 5.
pub(crate) const MIGRATION: &str = "
CREATE TABLE sampling_cursor (id INTEGER PRIMARY KEY CHECK (id = 0), upto INTEGER NOT NULL);
CREATE TABLE sampling_pending (
    project TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    ready_ns INTEGER NOT NULL,
    has_root INTEGER NOT NULL,
    PRIMARY KEY (project, trace_id)
) WITHOUT ROWID;
CREATE INDEX sampling_pending_by_ready ON sampling_pending (ready_ns);
CREATE TABLE sampling_decisions (
    project TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    keep INTEGER NOT NULL,
    decided_ns INTEGER NOT NULL,
    PRIMARY KEY (project, trace_id)
) WITHOUT ROWID;
CREATE TABLE sampling_deferred (
    project TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    PRIMARY KEY (project, trace_id)
) WITHOUT ROWID;
";

/// The table of schema version 9.
pub(crate) const STAGING_MIGRATION: &str = "
CREATE TABLE sampling_staged (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    parent_span_id BLOB,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    status TEXT NOT NULL,
    span_type TEXT NOT NULL,
    operation TEXT,
    model TEXT,
    provider TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER,
    cost TEXT,
    session TEXT,
    user TEXT,
    env TEXT,
    tags TEXT,
    doc BLOB NOT NULL
);
CREATE UNIQUE INDEX sampling_staged_by_span ON sampling_staged (project, trace_id, span_id);
";

/// Makes a trace pending: ready when its root was noted; until a root is, when its last span
/// was.
const PEND: &str = "INSERT INTO sampling_pending (project, trace_id, ready_ns, has_root)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (project, trace_id) DO UPDATE SET
         ready_ns = CASE
             WHEN has_root = 1 THEN ready_ns
             WHEN excluded.has_root = 1 THEN excluded.ready_ns
             ELSE MAX(ready_ns, excluded.ready_ns) END,
         has_root = MAX(has_root, excluded.has_root)";

const INSERT_STAGED: &str = concat!(
    "INSERT OR IGNORE INTO sampling_staged (",
    crate::write::span_columns!(),
    ", doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
    ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
);

const SELECT_STAGED: &str = concat!(
    "SELECT ",
    crate::write::span_columns!(),
    ", doc FROM sampling_staged WHERE project = ?1 AND trace_id = ?2 ORDER BY id"
);

/// Traces per skeleton query (one bound parameter each).
const SKELETON_BATCH: usize = 500;

/// Staged traces kept per transaction by [`SqliteStore::sampling_release`].
const RELEASE_BATCH: u32 = 500;

/// Spans noted per read of `spans`.
const NOTE_BATCH: i64 = 10_000;
/// Batches noted per [`SqliteStore::sampling_undecided`] call; the rest waits for the next.
const MAX_NOTE_BATCHES: usize = 20;

/// A trace's spans and feedback, as `Store::traces_for_decision` gives them.
type TraceForDecision = (Vec<StoredSpan>, Vec<Feedback>);

/// A trace key as stored: project and trace id bytes.
type TraceKey = (String, [u8; 16]);

fn key(project: &ProjectId, trace_id: TraceId) -> TraceKey {
    (project.as_str().to_owned(), *trace_id.as_bytes())
}

fn now_ns() -> i64 {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

impl SqliteStore {
    pub(crate) async fn sampling_undecided(
        &self,
        settled_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<(ProjectId, TraceId)>> {
        // One batch per call, so span writes get the writer between batches.
        for _ in 0..MAX_NOTE_BATCHES {
            let caught_up = self
                .with_writer_and_state(move |conn, inner| note_new_spans(conn, inner, now_ns()))
                .await?;
            if caught_up {
                break;
            }
        }
        self.with_reader(move |conn| {
            let mut select = conn.prepare_cached(
                "SELECT project, trace_id FROM sampling_pending WHERE ready_ns <= ?1
                 ORDER BY ready_ns LIMIT ?2",
            )?;
            let rows = select
                .query_map(params![to_i64(settled_before_ns), limit], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(|(project, trace_id)| parse_key(&project, &trace_id)).collect()
        })
        .await
    }

    /// The sampler's batch read: every trace and its feedback with one read connection, in
    /// one trip to the blocking pool (a trip per trace cost more in thread hand-offs than the
    /// reads themselves).
    pub(crate) async fn sampling_traces(
        &self,
        project: &ProjectId,
        trace_ids: &[TraceId],
        with_content: bool,
    ) -> store::Result<Vec<(Vec<StoredSpan>, Vec<Feedback>)>> {
        let project = project.clone();
        let trace_ids = trace_ids.to_vec();
        self.with_reader(move |conn| {
            if !with_content {
                let mut res = Vec::with_capacity(trace_ids.len());
                for chunk in trace_ids.chunks(SKELETON_BATCH) {
                    res.extend(skeletons(conn, &project, chunk)?);
                }
                return Ok(res);
            }
            trace_ids
                .into_iter()
                .map(|trace_id| {
                    let mut spans = crate::read::get_trace(conn, &project, trace_id)?;
                    let staged = staged_spans(conn, &project, trace_id)?;
                    if spans.is_empty() {
                        spans = staged;
                    } else {
                        let stored: HashSet<SpanId> = spans.iter().map(|s| s.raw.span_id).collect();
                        spans.extend(
                            staged.into_iter().filter(|s| !stored.contains(&s.raw.span_id)),
                        );
                    }
                    Ok((spans, crate::feedback::trace_feedback(conn, &project, trace_id)?))
                })
                .collect()
        })
        .await
    }

    pub(crate) async fn sampling_record(
        &self,
        decisions: &[(ProjectId, TraceId, bool)],
    ) -> store::Result<()> {
        let decisions = decisions.to_vec();
        self.with_writer_and_state(move |conn, inner| {
            let now = now_ns();
            let tx = conn.transaction()?;
            let max_rowid = settle_staged(&tx, &decisions)?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO sampling_decisions (project, trace_id, keep, decided_ns)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut unpend = tx.prepare_cached(
                    "DELETE FROM sampling_pending WHERE project = ?1 AND trace_id = ?2",
                )?;
                for (project, trace_id, keep) in &decisions {
                    let id = &trace_id.as_bytes()[..];
                    insert.execute(params![project.as_str(), id, i64::from(*keep), now])?;
                    unpend.execute(params![project.as_str(), id])?;
                }
            }
            tx.commit()?;
            inner.indexer.shared().written_upto(max_rowid);
            Ok(())
        })
        .await
    }

    pub(crate) async fn sampling_stage(
        &self,
        spans: &[StoredSpan],
        kept: &[bool],
        records: Option<&[Vec<u8>]>,
    ) -> store::Result<WriteStats> {
        if let Some(records) = records {
            crate::write::check_records(spans, records)?;
        }
        if kept.len() != spans.len() {
            return Err(store::Error::Internal(format!(
                "stage_spans: {} kept flags for {} spans",
                kept.len(),
                spans.len()
            )));
        }
        // As `write_spans`: in place on a multi-threaded runtime, else on the blocking pool.
        let flavor = tokio::runtime::Handle::current().runtime_flavor();
        if flavor == tokio::runtime::RuntimeFlavor::MultiThread {
            let inner = &self.inner;
            let res = tokio::task::block_in_place(|| {
                // See `with_writer_and_state` on poisoning.
                let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
                let (stats, max_rowid, handoff) = stage(&mut conn, spans, kept, records, now_ns())?;
                inner.indexer.shared().written(max_rowid, handoff);
                Ok::<_, Error>(stats)
            });
            return res.map_err(store::Error::from);
        }
        let (spans, kept) = (spans.to_vec(), kept.to_vec());
        let records = records.map(<[Vec<u8>]>::to_vec);
        self.with_writer_and_state(move |conn, inner| {
            let (stats, max_rowid, handoff) =
                stage(conn, &spans, &kept, records.as_deref(), now_ns())?;
            inner.indexer.shared().written(max_rowid, handoff);
            Ok(stats)
        })
        .await
    }

    /// Keeps every staged trace, a batch per transaction, and forgets the noting cursor, so
    /// spans stored while sampling is off are not sampled when it is turned on again.
    pub(crate) async fn sampling_release(&self) -> store::Result<u64> {
        let mut n_kept = 0;
        loop {
            let n = self
                .with_writer_and_state(|conn, inner| {
                    let tx = conn.transaction()?;
                    let keys: Vec<(String, Vec<u8>)> = {
                        let mut select = tx.prepare_cached(
                            "SELECT DISTINCT project, trace_id FROM sampling_staged LIMIT ?1",
                        )?;
                        select
                            .query_map([RELEASE_BATCH], |row| Ok((row.get(0)?, row.get(1)?)))?
                            .collect::<rusqlite::Result<Vec<_>>>()?
                    };
                    let mut decisions = Vec::with_capacity(keys.len());
                    for (project, trace_id) in &keys {
                        let (project, trace_id) = parse_key(project, trace_id)?;
                        decisions.push((project, trace_id, true));
                    }
                    let max_rowid = settle_staged(&tx, &decisions)?;
                    {
                        let mut unpend = tx.prepare_cached(
                            "DELETE FROM sampling_pending WHERE project = ?1 AND trace_id = ?2",
                        )?;
                        for (project, trace_id) in &keys {
                            unpend.execute(params![project, trace_id])?;
                        }
                    }
                    tx.execute("DELETE FROM sampling_cursor", [])?;
                    tx.commit()?;
                    inner.indexer.shared().written_upto(max_rowid);
                    Ok(keys.len() as u64)
                })
                .await?;
            n_kept += n;
            if n < u64::from(RELEASE_BATCH) {
                break;
            }
        }
        if n_kept > 0 {
            tracing::info!(n_traces = n_kept, "tail sampling is off: kept the staged traces");
        }
        Ok(n_kept)
    }

    pub(crate) async fn sampling_discard_users(
        &self,
        project: &ProjectId,
        users: &[String],
    ) -> store::Result<u64> {
        let (project, users) = (project.clone(), users.to_vec());
        self.with_writer(move |conn| {
            let tx = conn.transaction()?;
            let mut n_deleted = 0;
            {
                // The staged table holds seconds of spans: a scan is fine for a rare call.
                let mut select = tx.prepare_cached(
                    "SELECT DISTINCT trace_id FROM sampling_staged WHERE project = ?1 AND user = ?2",
                )?;
                let mut delete = tx.prepare_cached(
                    "DELETE FROM sampling_staged WHERE project = ?1 AND trace_id = ?2",
                )?;
                let mut trace_ids: BTreeSet<Vec<u8>> = BTreeSet::new();
                for user in &users {
                    let found =
                        select.query_map(params![project.as_str(), user], |row| row.get(0))?;
                    for id in found {
                        trace_ids.insert(id?);
                    }
                }
                for trace_id in &trace_ids {
                    n_deleted += delete.execute(params![project.as_str(), trace_id])? as u64;
                }
            }
            tx.commit()?;
            Ok(n_deleted)
        })
        .await
    }

    pub(crate) async fn sampling_decision_of(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Option<bool>> {
        let project = project.clone();
        self.with_reader(move |conn| {
            let keep: Option<i64> = conn
                .query_row(
                    "SELECT keep FROM sampling_decisions WHERE project = ?1 AND trace_id = ?2",
                    params![project.as_str(), &trace_id.as_bytes()[..]],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(keep.map(|keep| keep != 0))
        })
        .await
    }

    pub(crate) async fn traces_delete(
        &self,
        project: &ProjectId,
        trace_ids: &[TraceId],
    ) -> store::Result<u64> {
        let keys: Vec<TraceKey> = trace_ids.iter().map(|id| key(project, *id)).collect();
        // Traces whose spans are all staged (the sampler's usual case) have nothing stored:
        // their staged spans go when the decision is recorded. Found with a read, so that a
        // batch of them costs no write transaction.
        let (keys, any_deferred) = self
            .with_reader(move |conn| {
                let mut stored = conn.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM spans WHERE project = ?1 AND trace_id = ?2)
                         OR EXISTS (SELECT 1 FROM span_events WHERE project = ?1 AND trace_id = ?2)",
                )?;
                let mut res = Vec::with_capacity(keys.len());
                for key in keys {
                    if stored.query_row(params![key.0, &key.1[..]], |row| row.get::<_, bool>(0))? {
                        res.push(key);
                    }
                }
                let any_deferred: bool = conn
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM sampling_deferred)")?
                    .query_row([], |row| row.get(0))?;
                Ok((res, any_deferred))
            })
            .await?;
        if keys.is_empty() && !any_deferred {
            return Ok(0);
        }
        self.with_writer_and_state(move |conn, inner| {
            let mut keys: BTreeSet<TraceKey> = keys.into_iter().collect();
            keys.extend(deferred(conn)?);
            delete(conn, inner, &keys)
        })
        .await
    }
}

fn parse_key(project: &str, trace_id: &[u8]) -> Result<(ProjectId, TraceId), Error> {
    let project = ProjectId::new(project).map_err(Error::Corrupt)?;
    let trace_id = TraceId::from_bytes(trace_id).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok((project, trace_id))
}

fn deferred(conn: &Connection) -> Result<Vec<TraceKey>, Error> {
    let mut select = conn.prepare_cached("SELECT project, trace_id FROM sampling_deferred")?;
    let rows = select
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(project, id)| {
            let id: [u8; 16] =
                id.try_into().map_err(|_| Error::Corrupt("trace id is not 16 bytes".to_owned()))?;
            Ok((project, id))
        })
        .collect()
}

/// Notes up to [`NOTE_BATCH`] spans stored since the cursor: their traces become pending (or,
/// for traces decided `drop`, are deleted again); then retries deferred deletions. Returns
/// whether it caught up with the spans stored.
fn note_new_spans(conn: &mut Connection, inner: &Inner, now: i64) -> Result<bool, Error> {
    let mut late: BTreeSet<TraceKey> = deferred(conn)?.into_iter().collect();
    let caught_up = 'batch: {
        let tx = conn.transaction()?;
        let cursor: Option<i64> = tx
            .query_row("SELECT upto FROM sampling_cursor WHERE id = 0", [], |row| row.get(0))
            .optional()?;
        let Some(cursor) = cursor else {
            // First use: track spans stored from now on.
            tx.execute(
                "INSERT INTO sampling_cursor (id, upto) SELECT 0, COALESCE(MAX(id), 0) FROM spans",
                [],
            )?;
            tx.commit()?;
            break 'batch true;
        };
        let mut n_rows = 0;
        let mut upto = cursor;
        {
            let mut select = tx.prepare_cached(
                "SELECT id, project, trace_id, parent_span_id IS NULL FROM spans
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut decision = tx.prepare_cached(
                "SELECT keep FROM sampling_decisions WHERE project = ?1 AND trace_id = ?2",
            )?;
            let mut pend = tx.prepare_cached(PEND)?;
            let rows = select
                .query_map(params![cursor, NOTE_BATCH], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                        row.get::<_, bool>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // One lookup and one upsert per trace, not per span.
            let mut traces: std::collections::BTreeMap<(String, Vec<u8>), bool> =
                std::collections::BTreeMap::new();
            for (id, project, trace_id, is_root) in rows {
                n_rows += 1;
                upto = id;
                *traces.entry((project, trace_id)).or_default() |= is_root;
            }
            for ((project, trace_id), has_root) in traces {
                let keep: Option<i64> =
                    decision.query_row(params![project, trace_id], |row| row.get(0)).optional()?;
                match keep {
                    Some(0) => {
                        let trace_id: [u8; 16] = trace_id
                            .try_into()
                            .map_err(|_| Error::Corrupt("trace id is not 16 bytes".to_owned()))?;
                        late.insert((project, trace_id));
                    }
                    Some(_) => {}
                    None => {
                        pend.execute(params![project, trace_id, now, i64::from(has_root)])?;
                    }
                }
            }
        }
        if upto != cursor {
            // Nothing noted, nothing written: the commit then writes nothing either.
            tx.execute("UPDATE sampling_cursor SET upto = ?1 WHERE id = 0", [upto])?;
        }
        tx.commit()?;
        n_rows < NOTE_BATCH
    };
    if !late.is_empty() {
        let n_deleted = delete(conn, inner, &late)?;
        tracing::debug!(n_traces = late.len(), n_deleted, "deleted late spans of dropped traces");
    }
    Ok(caught_up)
}

/// Deletes the traces (see the module docs on the trace holding the highest rowid); returns
/// how many spans were deleted.
fn delete(conn: &mut Connection, inner: &Inner, keys: &BTreeSet<TraceKey>) -> Result<u64, Error> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut rowids: Vec<i64> = Vec::new();
    let tx = conn.transaction()?;
    {
        let max_rowid: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) FROM spans", [], |row| row.get(0))?;
        let mut select =
            tx.prepare_cached("SELECT id FROM spans WHERE project = ?1 AND trace_id = ?2")?;
        let mut defer = tx.prepare_cached(
            "INSERT OR IGNORE INTO sampling_deferred (project, trace_id) VALUES (?1, ?2)",
        )?;
        let mut undefer = tx
            .prepare_cached("DELETE FROM sampling_deferred WHERE project = ?1 AND trace_id = ?2")?;
        let mut delete_doc = tx.prepare_cached("DELETE FROM span_docs WHERE id = ?1")?;
        let mut delete_spans =
            tx.prepare_cached("DELETE FROM spans WHERE project = ?1 AND trace_id = ?2")?;
        let mut delete_rollup =
            tx.prepare_cached("DELETE FROM traces WHERE project = ?1 AND trace_id = ?2")?;
        let mut delete_events =
            tx.prepare_cached("DELETE FROM span_events WHERE project = ?1 AND trace_id = ?2")?;
        let mut delete_staged =
            tx.prepare_cached("DELETE FROM sampling_staged WHERE project = ?1 AND trace_id = ?2")?;
        for (project, trace_id) in keys {
            let id = &trace_id[..];
            // Staged spans have no full-text entries: nothing to defer.
            delete_staged.execute(params![project, id])?;
            let ids = select
                .query_map(params![project, id], |row| row.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if ids.contains(&max_rowid) {
                defer.execute(params![project, id])?;
                continue;
            }
            for rowid in &ids {
                delete_doc.execute([rowid])?;
            }
            delete_spans.execute(params![project, id])?;
            delete_rollup.execute(params![project, id])?;
            delete_events.execute(params![project, id])?;
            undefer.execute(params![project, id])?;
            rowids.extend(ids);
        }
    }
    tx.commit()?;
    if !rowids.is_empty() {
        delete_index_entries(inner, &rowids)?;
    }
    Ok(rowids.len() as u64)
}

/// Deletes the index rows of deleted spans from `search.db`.
pub(crate) fn delete_index_entries(inner: &Inner, rowids: &[i64]) -> Result<(), Error> {
    let _guard = inner.indexer.shared().lock_index();
    let conn = crate::search::open_writer(&inner.search_path)?;
    let tx = conn.unchecked_transaction()?;
    {
        let mut delete = tx.prepare_cached("DELETE FROM spans_fts WHERE rowid = ?1")?;
        for rowid in rowids {
            delete.execute([rowid])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The staged spans of one trace, in staging order.
fn staged_spans(
    conn: &Connection,
    project: &ProjectId,
    trace_id: TraceId,
) -> Result<Vec<StoredSpan>, Error> {
    let mut select = conn.prepare_cached(
        "SELECT doc FROM sampling_staged WHERE project = ?1 AND trace_id = ?2 ORDER BY id",
    )?;
    let docs = select
        .query_map(params![project.as_str(), &trace_id.as_bytes()[..]], |row| {
            row.get::<_, Vec<u8>>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    docs.iter()
        .map(|doc| {
            let doc = codec::decode(doc)?;
            Ok(StoredSpan { project: project.clone(), raw: doc.raw, view: doc.view })
        })
        .collect()
}

/// The highest span rowid.
fn max_span_rowid(tx: &Transaction<'_>) -> Result<i64, Error> {
    Ok(tx.query_row("SELECT COALESCE(MAX(id), 0) FROM spans", [], |row| row.get(0))?)
}

/// After spans of decided traces were written in `tx` (rowids above `before`): when the noting
/// cursor had noted every span before them, it skips them too (noting them would find their
/// traces decided and do nothing).
fn skip_noting(tx: &Transaction<'_>, before: i64, max_rowid: i64) -> Result<(), Error> {
    if max_rowid > before {
        tx.execute(
            "UPDATE sampling_cursor SET upto = ?2 WHERE id = 0 AND upto >= ?1",
            params![before, max_rowid],
        )?;
    }
    Ok(())
}

/// Stores the staged spans of kept traces and deletes those of dropped ones. Returns the
/// highest span rowid written (0 when none was), for the full-text indexer.
fn settle_staged(
    tx: &Transaction<'_>,
    decisions: &[(ProjectId, TraceId, bool)],
) -> Result<i64, Error> {
    let mut kept: Vec<Vec<SqlValue>> = Vec::new();
    {
        let mut select = tx.prepare_cached(SELECT_STAGED)?;
        let mut delete =
            tx.prepare_cached("DELETE FROM sampling_staged WHERE project = ?1 AND trace_id = ?2")?;
        for (project, trace_id, keep) in decisions {
            let key = params![project.as_str(), &trace_id.as_bytes()[..]];
            if *keep {
                let rows = select.query_map(key, |row| {
                    (0..=crate::write::N_SPAN_COLUMNS)
                        .map(|i| row.get::<_, SqlValue>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })?;
                for row in rows {
                    kept.push(row?);
                }
            }
            delete.execute(key)?;
        }
    }
    if kept.is_empty() {
        return Ok(0);
    }
    let before = max_span_rowid(tx)?;
    let max_rowid = crate::write::insert_span_rows(tx, &kept)?;
    skip_noting(tx, before, max_rowid)?;
    Ok(max_rowid)
}

/// The spans of these traces, stored and staged, as skeletons read from their columns alone
/// (ids, parent, name, times, status and span type; no attributes, events or other view
/// fields), with no feedback: what policies without content decide on. Two queries per batch.
fn skeletons(
    conn: &Connection,
    project: &ProjectId,
    trace_ids: &[TraceId],
) -> Result<Vec<TraceForDecision>, Error> {
    let mut by_trace: HashMap<TraceId, Vec<StoredSpan>> = HashMap::new();
    // Spans both stored and staged (an SDK retry around a restart) count once.
    let mut stored: HashSet<(TraceId, SpanId)> = HashSet::new();
    let placeholders = vec!["?"; trace_ids.len()].join(", ");
    for table in ["spans", "sampling_staged"] {
        let mut select = conn.prepare(&format!(
            "SELECT trace_id, span_id, parent_span_id, start_ns, end_ns, name, status, span_type
             FROM {table} WHERE project = ? AND trace_id IN ({placeholders})"
        ))?;
        let params =
            std::iter::once(ToSqlOutput::Borrowed(ValueRef::Text(project.as_str().as_bytes())))
                .chain(
                    trace_ids
                        .iter()
                        .map(|id| ToSqlOutput::Borrowed(ValueRef::Blob(&id.as_bytes()[..]))),
                );
        let mut rows = select.query(params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let corrupt = |what: &str| Error::Corrupt(format!("{table}: bad {what}"));
            let trace_id =
                TraceId::from_bytes(&row.get::<_, Vec<u8>>(0)?).map_err(|_| corrupt("trace id"))?;
            let id = |bytes: &[u8]| SpanId::from_bytes(bytes).map_err(|_| corrupt("span id"));
            let span_id = id(&row.get::<_, Vec<u8>>(1)?)?;
            if table == "spans" {
                stored.insert((trace_id, span_id));
            } else if stored.contains(&(trace_id, span_id)) {
                continue;
            }
            let time = |ns: i64| u64::try_from(ns).unwrap_or(0);
            let (start, end) = (time(row.get(3)?), time(row.get(4)?));
            let mut raw = RawSpan::new(trace_id, span_id, row.get::<_, String>(5)?, start, end);
            raw.parent_span_id =
                row.get::<_, Option<Vec<u8>>>(2)?.as_deref().map(id).transpose()?;
            let status: String = row.get(6)?;
            raw.status.code = [StatusCode::Error, StatusCode::Ok]
                .into_iter()
                .find(|code| code.as_str() == status)
                .unwrap_or_default();
            let span_type = SpanType::parse(&row.get::<_, String>(7)?).unwrap_or_default();
            let view = LlmView { span_type, ..LlmView::default() };
            let span = StoredSpan { project: project.clone(), raw, view };
            by_trace.entry(trace_id).or_default().push(span);
        }
    }
    Ok(trace_ids.iter().map(|id| (by_trace.remove(id).unwrap_or_default(), Vec::new())).collect())
}

/// Stages spans (see `Store::stage_spans`) in one transaction: spans of traces decided `keep`
/// are written, those of traces decided `drop` discarded (counted as written: they were
/// accepted), those of undecided traces written when `kept_at_once`, else staged, and their
/// traces made pending. Returns the stats and the
/// highest span rowid written (0 when none was).
fn stage(
    conn: &mut Connection,
    spans: &[StoredSpan],
    kept_at_once: &[bool],
    records: Option<&[Vec<u8>]>,
    now: i64,
) -> Result<(WriteStats, i64, Option<crate::search::Handoff>), Error> {
    let tx = conn.transaction()?;
    let mut res = WriteStats::default();
    let mut kept: Vec<(&StoredSpan, Option<&[u8]>)> = Vec::new();
    {
        let mut decision = tx.prepare_cached(
            "SELECT keep FROM sampling_decisions WHERE project = ?1 AND trace_id = ?2",
        )?;
        let mut insert = tx.prepare_cached(INSERT_STAGED)?;
        let mut pend = tx.prepare_cached(PEND)?;
        let mut decisions: HashMap<(&str, TraceId), Option<bool>> = HashMap::new();
        // Undecided traces of the batch, and whether a root span came.
        let mut pending: BTreeMap<(&str, TraceId), bool> = BTreeMap::new();
        let mut encoder = codec::Encoder::default();
        for (i, (span, &kept_at_once)) in spans.iter().zip(kept_at_once).enumerate() {
            let record = records.map(|records| records[i].as_slice());
            let (project, trace_id) = (span.project.as_str(), span.raw.trace_id);
            let keep = match decisions.get(&(project, trace_id)) {
                Some(keep) => *keep,
                None => {
                    let keep: Option<i64> = decision
                        .query_row(params![project, &trace_id.as_bytes()[..]], |row| row.get(0))
                        .optional()?;
                    let keep = keep.map(|keep| keep != 0);
                    decisions.insert((project, trace_id), keep);
                    keep
                }
            };
            match keep {
                Some(true) => kept.push((span, record)),
                Some(false) => res.n_written += 1,
                None if kept_at_once => {
                    kept.push((span, record));
                    *pending.entry((project, trace_id)).or_default() |=
                        span.raw.parent_span_id.is_none();
                }
                None => {
                    let doc = match record {
                        Some(record) => record,
                        None => encoder.encode(&span.raw, &span.view)?,
                    };
                    let doc = ToSqlOutput::Borrowed(ValueRef::Blob(doc));
                    let values = crate::write::span_values(span).chain(std::iter::once(doc));
                    let n = insert.execute(params_from_iter(values))?;
                    match n {
                        1 => res.n_written += 1,
                        _ => res.n_duplicates += 1,
                    }
                    *pending.entry((project, trace_id)).or_default() |=
                        span.raw.parent_span_id.is_none();
                }
            }
        }
        for ((project, trace_id), has_root) in pending {
            pend.execute(params![project, &trace_id.as_bytes()[..], now, i64::from(has_root)])?;
        }
    }
    let mut max_rowid = 0;
    let mut handoff = None;
    if !kept.is_empty() {
        let before = max_span_rowid(&tx)?;
        let (stats, max, texts) = crate::write::write_spans_tx(&tx, kept.into_iter())?;
        res.n_written += stats.n_written;
        res.n_duplicates += stats.n_duplicates;
        skip_noting(&tx, before, max)?;
        max_rowid = max;
        handoff = Some(texts);
    }
    tx.commit()?;
    Ok((res, max_rowid, handoff))
}
