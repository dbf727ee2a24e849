//! Retention and erasure in SQLite: retention tiers, rewriting spans by reduced copies,
//! deleting old traces, finding a user's traces, and purging deleted content from the files.
//!
//! # Layout (schema version 6, see [`MIGRATION`])
//!
//! - `spans.tier`: the span's [`RetentionTier`] number (0 full, 1 structure, 2 fingerprints),
//!   indexed by `spans_by_tier (project, tier, start_ns)`, so the next retention work of a tier
//!   is one short index range per lower tier, oldest first.
//! - A user's spans are found by their user token in the index in `search.db` (see
//!   `search.rs`; schema version 6 had `spans_by_user` in `loupe.db`, version 10 dropped it),
//!   so erasure finds a user's traces without scanning the project.
//! - `state`: small named values per project (see `state.rs`).
//!
//! # Bounded work
//!
//! Both rewriting and deleting take the single writer for at most [`REWRITE_BATCH`] spans or
//! about [`DELETE_BATCH`] spans at a time, each its own transaction, and give it back between
//! batches, so span writes (ingest) go on meanwhile.
//!
//! # Nothing readable left
//!
//! Both files run with `PRAGMA secure_delete = ON` (every connection that writes them), so
//! deleted or overwritten records are zeroed in their pages, and the full-text table has FTS5's
//! `secure-delete` option, so a deleted row's tokens leave the index instead of being hidden
//! behind a delete marker. [`SqliteStore::purge`] then merges the index into one segment and
//! checkpoints both write-ahead logs with `TRUNCATE`, so no old page image stays in a `-wal`
//! file either. After that no file of the data dir holds the replaced content.
//!
//! # Deleting and rowids
//!
//! As in `sampling.rs`: the trace holding the highest span rowid is not deleted (SQLite would
//! hand its rowid to the next span, which the full-text indexer would then skip); it is left
//! for a later call, once newer spans exist.

use std::collections::BTreeSet;

use model::{ProjectId, StoredSpan, TraceId, UnixNanos};
use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use store::RetentionTier;

use crate::filter::{SpanKey, Sql};
use crate::read::key_spans;
use crate::search::Entry;
use crate::write::{
    RAW_COLUMNS, VIEW_COLUMNS, index_entry, raw_values, rebuild_rollup, set_clause, to_i64,
    view_values,
};
use crate::{Error, Inner, SqliteStore, codec, sampling, search};

/// Schema version 6.
pub(crate) const MIGRATION: &str = "
ALTER TABLE spans ADD COLUMN tier INTEGER NOT NULL DEFAULT 0;
CREATE INDEX spans_by_tier ON spans (project, tier, start_ns);
CREATE INDEX spans_by_user ON spans (project, user, trace_id) WHERE user IS NOT NULL;
CREATE TABLE state (
    project TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_ns INTEGER NOT NULL,
    PRIMARY KEY (project, key)
) WITHOUT ROWID;
";

/// A position in the candidate traces of a deletion: the trace's start and id.
type Candidate = (i64, Vec<u8>);

/// Spans rewritten per transaction.
const REWRITE_BATCH: usize = 256;
/// Spans deleted per transaction (whole traces, so a batch may end up a little larger).
const DELETE_BATCH: u64 = 512;
/// Candidate traces read per query while looking for deletable ones.
const CANDIDATE_BATCH: i64 = 256;
/// The most spans one `spans_below_tier` call returns.
const MAX_BELOW_TIER: u32 = 100_000;

impl SqliteStore {
    pub(crate) async fn retention_span_projects(&self) -> store::Result<Vec<ProjectId>> {
        self.with_reader(|conn| {
            // One index seek per project (a skip scan of an index led by `project`).
            let mut select = conn.prepare_cached(
                "WITH RECURSIVE p(project) AS (
                     SELECT MIN(project) FROM spans
                     UNION ALL
                     SELECT (SELECT MIN(project) FROM spans WHERE project > p.project)
                     FROM p WHERE p.project IS NOT NULL
                 )
                 SELECT project FROM p WHERE project IS NOT NULL",
            )?;
            let rows = select
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(|p| ProjectId::new(&p).map_err(Error::Corrupt)).collect()
        })
        .await
    }

    pub(crate) async fn retention_spans_below_tier(
        &self,
        project: &ProjectId,
        tier: RetentionTier,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<StoredSpan>> {
        let project = project.clone();
        let limit = limit.min(MAX_BELOW_TIER);
        self.with_reader(move |conn| {
            // One ordered range of `spans_by_tier` per lower tier, merged here.
            let mut select = conn.prepare_cached(
                "SELECT s.start_ns, s.id, d.doc FROM spans s JOIN span_docs d ON d.id = s.id
                 WHERE s.project = ?1 AND s.tier = ?2 AND s.start_ns < ?3
                 ORDER BY s.start_ns, s.id LIMIT ?4",
            )?;
            let mut rows: Vec<(i64, i64, Vec<u8>)> = Vec::new();
            for lower in 0..tier.as_u8() {
                let found = select.query_map(
                    params![project.as_str(), lower, to_i64(started_before_ns), limit],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )?;
                for row in found {
                    rows.push(row?);
                }
            }
            rows.sort_by_key(|(start, id, _)| (*start, *id));
            rows.truncate(limit as usize);
            rows.into_iter()
                .map(|(_, _, doc)| {
                    // Returned as stored (no operation filled in from the root), so a reduced
                    // copy written back is the span's own record.
                    let doc = codec::decode(&doc)?;
                    Ok(StoredSpan { project: project.clone(), raw: doc.raw, view: doc.view })
                })
                .collect()
        })
        .await
    }

    pub(crate) async fn retention_rewrite(
        &self,
        spans: &[StoredSpan],
        tier: RetentionTier,
    ) -> store::Result<u64> {
        let mut res = 0;
        for chunk in spans.chunks(REWRITE_BATCH) {
            let chunk = chunk.to_vec();
            res += self
                .with_writer_and_state(move |conn, inner| {
                    let texts = rewrite_batch(conn, &chunk, tier)?;
                    search::reindex(inner.indexer.shared(), &inner.search_path, &texts)?;
                    Ok(texts.len() as u64)
                })
                .await?;
        }
        Ok(res)
    }

    pub(crate) async fn retention_delete_before(
        &self,
        project: &ProjectId,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<u64> {
        let limit = u64::from(limit.max(1));
        {
            let project = project.clone();
            let before_ns = to_i64(started_before_ns);
            self.with_writer(move |conn| {
                crate::span_events::delete_before(conn, &project, before_ns)
            })
            .await?;
        }
        let mut res = 0;
        // Candidates already looked at in this call (traces with a later span, or holding the
        // highest rowid), so each batch goes on after them.
        let mut after: Option<Candidate> = None;
        while res < limit {
            let budget = (limit - res).min(DELETE_BATCH);
            let project = project.clone();
            let from = after.clone();
            let (n_deleted, next) = self
                .with_writer_and_state(move |conn, inner| {
                    delete_batch(conn, inner, &project, started_before_ns, budget, from)
                })
                .await?;
            res += n_deleted;
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
            if n_deleted == 0 {
                break;
            }
        }
        Ok(res)
    }

    pub(crate) async fn retention_user_traces(
        &self,
        project: &ProjectId,
        users: &[String],
        after: Option<TraceId>,
        limit: u32,
    ) -> store::Result<Vec<TraceId>> {
        let (project, users) = (project.clone(), users.to_vec());
        self.with_reader_and_state(move |conn, inner| {
            let indexed_upto = inner.indexer.shared().indexed_upto();
            let after: Vec<u8> = after.map(|id| id.as_bytes().to_vec()).unwrap_or_default();
            // Per user: the spans the index finds by the user's key (see `read::key_spans`),
            // rechecked against their column; merged here.
            let mut ids: BTreeSet<Vec<u8>> = BTreeSet::new();
            for user in &users {
                let mut sql = Sql::default();
                sql.push("SELECT DISTINCT s.trace_id FROM spans s WHERE s.id IN (");
                let key = SpanKey::User(user.clone());
                key_spans(&mut sql, "id", &project, &key, indexed_upto);
                sql.push(") AND +s.user = ");
                sql.param(SqlValue::Text(user.clone()));
                sql.push(" AND +s.trace_id > ");
                sql.param(SqlValue::Blob(after.clone()));
                sql.push(&format!(" ORDER BY s.trace_id LIMIT {limit}"));
                let mut select = conn.prepare_cached(&sql.text)?;
                for id in select.query_map(params_from_iter(&sql.params), |row| row.get(0))? {
                    ids.insert(id?);
                }
            }
            ids.into_iter()
                .take(limit as usize)
                .map(|id| TraceId::from_bytes(&id).map_err(|e| Error::Corrupt(e.to_string())))
                .collect()
        })
        .await
    }

    /// Makes deleted and replaced content unrecoverable from the files (see the module docs).
    pub(crate) async fn purge(&self) -> store::Result<()> {
        self.with_writer_and_state(|conn, inner| {
            truncate_wal(conn, &inner.path)?;
            let _guard = inner.indexer.shared().lock_index();
            let index = search::open_writer(&inner.search_path)?;
            index.execute("INSERT INTO spans_fts (spans_fts) VALUES ('optimize')", [])?;
            truncate_wal(&index, &inner.search_path)
        })
        .await
    }
}

/// Checkpoints the whole write-ahead log into the database and truncates it to zero bytes.
fn truncate_wal(conn: &Connection, path: &std::path::Path) -> Result<(), Error> {
    let (busy, log, checkpointed): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    if busy != 0 {
        return Err(Error::Busy(format!(
            "cannot checkpoint {} ({checkpointed} of {log} pages): readers kept it busy; \
             retry the purge",
            path.display()
        )));
    }
    Ok(())
}

/// Rewrites one batch in one transaction; returns the spans rewritten with their new
/// searchable text and user, for the indexes in `search.db`.
fn rewrite_batch(
    conn: &mut Connection,
    spans: &[StoredSpan],
    tier: RetentionTier,
) -> Result<Vec<Entry>, Error> {
    let tx = conn.transaction()?;
    let mut texts = Vec::new();
    let mut touched: BTreeSet<(ProjectId, [u8; 16])> = BTreeSet::new();
    {
        let mut select = tx.prepare_cached(
            "SELECT id, tier FROM spans WHERE project = ?1 AND trace_id = ?2 AND span_id = ?3",
        )?;
        let mut update = tx.prepare_cached(&format!(
            "UPDATE spans {}, {}, tier = ?{} WHERE id = ?1",
            set_clause(&RAW_COLUMNS, 2),
            set_clause(&VIEW_COLUMNS, 2 + RAW_COLUMNS.len()).trim_start_matches("SET "),
            2 + RAW_COLUMNS.len() + VIEW_COLUMNS.len()
        ))?;
        let mut update_doc = tx.prepare_cached("UPDATE span_docs SET doc = ?2 WHERE id = ?1")?;
        for span in spans {
            let raw = &span.raw;
            let found: Option<(i64, u8)> = select
                .query_row(
                    params![
                        span.project.as_str(),
                        &raw.trace_id.as_bytes()[..],
                        &raw.span_id.as_bytes()[..]
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((id, stored_tier)) = found else { continue };
            if stored_tier > tier.as_u8() {
                // A lower tier never brings back what a higher one removed.
                continue;
            }
            let view = &span.view;
            let values = std::iter::once(ToSqlOutput::from(id))
                .chain(raw_values(raw))
                .chain(view_values(view))
                .chain([ToSqlOutput::from(i64::from(tier.as_u8()))]);
            update.execute(params_from_iter(values))?;
            update_doc.execute(params![id, codec::encode(raw, view)?])?;
            texts.push(index_entry(id, span));
            touched.insert((span.project.clone(), *raw.trace_id.as_bytes()));
        }
    }
    for (project, trace_id) in &touched {
        rebuild_rollup(&tx, project, trace_id)?;
    }
    tx.commit()?;
    Ok(texts)
}

/// Deletes whole traces of `project` all of whose spans started before `before_ns`, looking at
/// candidates (by trace start) after `after`, until about `budget` spans are deleted. Returns
/// the spans deleted and the last candidate looked at (`None` when there are no more).
fn delete_batch(
    conn: &mut Connection,
    inner: &Inner,
    project: &ProjectId,
    before_ns: UnixNanos,
    budget: u64,
    mut after: Option<Candidate>,
) -> Result<(u64, Option<Candidate>), Error> {
    let before_ns = to_i64(before_ns);
    let mut rowids: Vec<i64> = Vec::new();
    let tx = conn.transaction()?;
    let mut exhausted = false;
    {
        let max_rowid: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) FROM spans", [], |row| row.get(0))?;
        let mut candidates = tx.prepare_cached(
            "SELECT start_ns, trace_id FROM traces
             WHERE project = ?1 AND start_ns < ?2 AND (start_ns, trace_id) > (?3, ?4)
             ORDER BY start_ns, trace_id LIMIT ?5",
        )?;
        let mut spans_of = tx.prepare_cached(
            "SELECT id, start_ns FROM spans WHERE project = ?1 AND trace_id = ?2",
        )?;
        let mut delete_doc = tx.prepare_cached("DELETE FROM span_docs WHERE id = ?1")?;
        let mut deletes = Vec::new();
        for table in [
            "spans",
            "traces",
            "sampling_pending",
            "sampling_decisions",
            "sampling_deferred",
            "span_events",
        ] {
            deletes.push(tx.prepare_cached(&format!(
                "DELETE FROM {table} WHERE project = ?1 AND trace_id = ?2"
            ))?);
        }
        'pages: loop {
            let (from_start, from_id) = after.clone().unwrap_or((i64::MIN, Vec::new()));
            let page: Vec<Candidate> = candidates
                .query_map(
                    params![project.as_str(), before_ns, from_start, from_id, CANDIDATE_BATCH],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?
                .collect::<rusqlite::Result<_>>()?;
            if page.is_empty() {
                exhausted = true;
                break;
            }
            for (start_ns, trace_id) in page {
                let spans: Vec<(i64, i64)> = spans_of
                    .query_map(params![project.as_str(), trace_id], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let deletable =
                    spans.iter().all(|(id, start)| *start < before_ns && *id != max_rowid);
                if deletable && !rowids.is_empty() && (rowids.len() + spans.len()) as u64 > budget {
                    // Left for the next batch; always at least one trace per batch.
                    break 'pages;
                }
                after = Some((start_ns, trace_id.clone()));
                if !deletable {
                    continue;
                }
                for (id, _) in &spans {
                    delete_doc.execute([id])?;
                }
                for delete in &mut deletes {
                    delete.execute(params![project.as_str(), trace_id])?;
                }
                rowids.extend(spans.iter().map(|(id, _)| *id));
                if rowids.len() as u64 >= budget {
                    break 'pages;
                }
            }
        }
    }
    tx.commit()?;
    if !rowids.is_empty() {
        sampling::delete_index_entries(inner, &rowids)?;
    }
    Ok((rowids.len() as u64, if exhausted { None } else { after }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use model::{KeyValue, ProjectId};
    use store::suite::retention::without_content;
    use store::suite::{llm, span, trace_id};
    use store::{RetentionTier, SpanQuery, Store};

    use super::{DELETE_BATCH, REWRITE_BATCH};
    use crate::{SqliteConfig, SqliteStore};

    fn open(dir: &Path) -> SqliteStore {
        SqliteStore::open(SqliteConfig::new(dir)).expect("open store")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_suite() {
        let parent = tempfile::tempdir().expect("temp dir");
        let n_stores = AtomicUsize::new(0);
        store::suite::retention::run_all(|| {
            let dir = parent.path().join(n_stores.fetch_add(1, Ordering::Relaxed).to_string());
            async move { Box::new(open(&dir)) as Box<dyn Store> }
        })
        .await;
    }

    /// Work larger than one batch is done in several transactions and completely; deleting a
    /// trace also removes its sampling decision.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_rewrites_and_deletes_run_in_batches() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        let project = ProjectId::default_project();
        let n_traces = 700u64;
        let mut spans = Vec::new();
        for trace in 1..=n_traces {
            spans.push(span("default", trace, 1, None, "root", trace, 1));
            spans.push(llm(span("default", trace, 2, Some(1), "call", trace, 1), "m", 1, 1, "x"));
        }
        spans.push(span("default", 10_000, 1, None, "newest", 1_000_000, 1));
        store.write_spans(&spans).await.expect("write");
        store
            .record_sampling_decisions(&[(project.clone(), trace_id(1), true)])
            .await
            .expect("decide");

        let ms = |n: u64| store::suite::T0 + n * 1_000_000;
        let old = store
            .spans_below_tier(&project, RetentionTier::Structure, ms(100_000), 10_000)
            .await
            .expect("below tier");
        assert_eq!(old.len() as u64, 2 * n_traces);
        assert!(old.len() > 4 * REWRITE_BATCH);
        let reduced: Vec<_> = old.iter().map(without_content).collect();
        let n = store.rewrite_spans(&reduced, RetentionTier::Structure).await.expect("rewrite");
        assert_eq!(n, 2 * n_traces);
        let left = store
            .spans_below_tier(&project, RetentionTier::Structure, ms(100_000), 10_000)
            .await
            .expect("below tier");
        assert!(left.is_empty());

        let n = store.delete_traces_before(&project, ms(100_000), 600).await.expect("delete");
        assert!((600..=601).contains(&n), "about the limit: {n}");
        let rest = store.delete_traces_before(&project, ms(100_000), 10_000).await.expect("delete");
        assert_eq!(n + rest, 2 * n_traces);
        assert!(rest > DELETE_BATCH, "more than one batch in one call");
        assert_eq!(store.delete_traces_before(&project, ms(100_000), 10_000).await.ok(), Some(0));
        assert_eq!(store.sampling_decision(&project, trace_id(1)).await.ok(), Some(None));
        let remaining = store
            .spans_below_tier(&project, RetentionTier::Fingerprints, ms(2_000_000), 10_000)
            .await
            .expect("below tier");
        assert_eq!(remaining.len(), 1, "the newest trace");
    }

    /// Which files of `dir` (recursively) contain `needle`.
    fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
        let mut res = Vec::new();
        for entry in std::fs::read_dir(dir).expect("read data dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                res.extend(files_containing(&path, needle));
                continue;
            }
            let bytes = std::fs::read(&path).expect("read file");
            if bytes.windows(needle.len()).any(|window| window == needle) {
                res.push(path.file_name().unwrap_or_default().to_string_lossy().into_owned());
            }
        }
        res.sort();
        res
    }

    /// Files holding the marker as written or as the full-text index keeps it (lowercase).
    fn files_with_marker(dir: &Path, marker: &str) -> Vec<String> {
        let mut res = files_containing(dir, marker.as_bytes());
        res.extend(files_containing(dir, marker.to_lowercase().as_bytes()));
        res.sort();
        res.dedup();
        res
    }

    async fn n_found(store: &SqliteStore, text: &str) -> usize {
        let query = SpanQuery {
            filter: store::syntax::parse(text).expect("filter"),
            ..SpanQuery::default()
        };
        let page = store.search_spans(&ProjectId::default_project(), &query).await.expect("search");
        page.items.len()
    }

    /// What erasure relies on: once spans are rewritten without their content (or deleted)
    /// and `purge_deleted` has run, no file of the data dir holds that content, in any form
    /// the store wrote it (span records, full-text index, write-ahead logs).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_replaced_or_deleted_content_is_left_in_any_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        let rewritten = "Qx7mZarnelWhisk42Vp";
        let deleted = "Jb3kTorvalQuill58Ns";
        let with_marker = |trace: u64, marker: &str| {
            let mut call = llm(
                span("default", trace, 2, Some(1), "llm.generate", trace * 10 + 1, 5),
                "gpt-4o",
                100,
                20,
                &format!("please look up {marker} for me"),
            );
            call.raw.attributes =
                vec![KeyValue::string("content.prompt", format!("look up {marker} now"))];
            call.view.output_text = Some(format!("{marker} is fine"));
            vec![span("default", trace, 1, None, "turn", trace * 10, 10), call]
        };
        store.write_spans(&with_marker(1, deleted)).await.expect("write");
        store.write_spans(&with_marker(2, rewritten)).await.expect("write");
        // A newer trace without the markers (the trace of the newest span is kept).
        store.write_spans(&with_marker(100, "ordinary")).await.expect("write");
        for marker in [rewritten, deleted] {
            assert_eq!(n_found(&store, &marker.to_lowercase()).await, 1);
            assert!(!files_with_marker(dir.path(), marker).is_empty(), "{marker} is on disk");
        }

        let project = ProjectId::default_project();
        let ms = |n: u64| store::suite::T0 + n * 1_000_000;
        let n = store.delete_traces_before(&project, ms(15), 100).await.expect("delete");
        assert_eq!(n, 2, "trace 1");
        let old = store
            .spans_below_tier(&project, RetentionTier::Structure, ms(25), 10)
            .await
            .expect("spans below tier");
        assert_eq!(old.len(), 2);
        assert!(old.iter().all(|s| s.raw.trace_id == trace_id(2)));
        let reduced: Vec<_> = old.iter().map(without_content).collect();
        let n = store.rewrite_spans(&reduced, RetentionTier::Structure).await.expect("rewrite");
        assert_eq!(n, 2);
        store.purge_deleted().await.expect("purge");

        for marker in [rewritten, deleted] {
            assert_eq!(n_found(&store, &marker.to_lowercase()).await, 0);
            assert_eq!(files_with_marker(dir.path(), marker), Vec::<String>::new(), "{marker}");
        }
        assert_eq!(n_found(&store, "ordinary").await, 1, "other content is kept");
        assert!(!files_with_marker(dir.path(), "ordinary").is_empty());
        drop(store);
        for marker in [rewritten, deleted] {
            assert_eq!(files_with_marker(dir.path(), marker), Vec::<String>::new(), "{marker}");
        }
    }
}
