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

use std::collections::BTreeSet;

use model::{Feedback, ProjectId, StoredSpan, TraceId, UnixNanos};
use rusqlite::{Connection, OptionalExtension, params};

use crate::write::to_i64;
use crate::{Error, Inner, SqliteStore};

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

/// Spans noted per read of `spans`.
const NOTE_BATCH: i64 = 10_000;
/// Batches noted per [`SqliteStore::sampling_undecided`] call; the rest waits for the next.
const MAX_NOTE_BATCHES: usize = 20;

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
    ) -> store::Result<Vec<(Vec<StoredSpan>, Vec<Feedback>)>> {
        let project = project.clone();
        let trace_ids = trace_ids.to_vec();
        self.with_reader(move |conn| {
            trace_ids
                .into_iter()
                .map(|trace_id| {
                    let spans = crate::read::get_trace(conn, &project, trace_id)?;
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
        self.with_writer(move |conn| {
            let now = now_ns();
            let tx = conn.transaction()?;
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
            Ok(())
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
            // Ready when the root was noted; until a root is noted, when the last span was.
            let mut pend = tx.prepare_cached(
                "INSERT INTO sampling_pending (project, trace_id, ready_ns, has_root)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (project, trace_id) DO UPDATE SET
                     ready_ns = CASE
                         WHEN has_root = 1 THEN ready_ns
                         WHEN excluded.has_root = 1 THEN excluded.ready_ns
                         ELSE MAX(ready_ns, excluded.ready_ns) END,
                     has_root = MAX(has_root, excluded.has_root)",
            )?;
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
        tx.execute("UPDATE sampling_cursor SET upto = ?1 WHERE id = 0", [upto])?;
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
        for (project, trace_id) in keys {
            let id = &trace_id[..];
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

/// Deletes the full-text entries of deleted spans from `search.db`.
pub(crate) fn delete_index_entries(inner: &Inner, rowids: &[i64]) -> Result<(), Error> {
    let _guard = inner.indexer.shared().index_lock.lock().unwrap_or_else(|e| e.into_inner());
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
