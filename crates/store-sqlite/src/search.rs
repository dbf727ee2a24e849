//! The span indexes kept apart from the spans, and the background thread that maintains them
//! (and checkpoints the WAL).
//!
//! They live in their own file, `search.db`: `spans_fts`, an FTS5 table (contentless, no
//! positions) keyed by the span's rowid in `loupe.db`, and `indexed_upto`, the highest rowid
//! indexed, updated in the same transaction. Each span's row holds its searchable text and two
//! key tokens: its span id ([`span_id_token`]) and its user ([`user_token`]). Those make the
//! index of spans by span id (feedback waiting for its span, `span_id = …` lookups) and by user
//! (the `user = "x"` filter, erasure). The key tokens start with U+E000, a private-use
//! character the tokenizer keeps inside tokens and a full-text query never has (its words are
//! alphanumeric), so searches cannot match them; and every lookup checks the `spans` columns,
//! so text that forges a key token finds nothing.
//!
//! All of it is derived data: a write is acknowledged once its spans are in `loupe.db`, and the
//! indexer thread catches up behind it, writing to a different file, so indexing runs in
//! parallel with span writes instead of inside them. The span-id and user lookups are here for
//! that reason: as B-tree indexes of `spans` their keys were random, so every commit rewrote
//! pages all over them on the path every acknowledgement waits for, while FTS5 writes in
//! sorted segments that it merges in the background (BENCHMARKS.md). After a crash (or if the
//! file is deleted or from another index version) the indexer catches up or rebuilds from the
//! stored spans at open.
//!
//! **Deletes leave nothing behind:** every connection that writes the file runs with
//! `PRAGMA secure_delete = ON` (freed space and pages are zeroed), and the table has FTS5's
//! `secure-delete` option, so deleting a row removes its tokens from the index (instead of
//! adding a delete marker beside them). Retention and erasure rely on both (see `retention`).
//!
//! **Handoff:** the writer hands the indexer the searchable text of the spans it just committed
//! (a [`Handoff`], built from the views in memory), so on the live path the indexer does not
//! read their records back, decompress and parse them. Handoffs wait in a queue bounded by
//! [`MAX_HANDOFF_BYTES`]; one that does not fit is dropped, and the indexer then reads those
//! spans from `loupe.db` as it does after a restart. Whatever changes the index besides the
//! indexer (view updates, deletes, purges) takes the index lock with [`Shared::lock_index`],
//! which drops the waiting handoffs, so a handoff never carries text older than its span's.
//!
//! **Lag:** a full-text query first waits until the index covers every span stored when the
//! query started (at most [`MAX_WAIT`]), so a search sees all spans acknowledged before it;
//! under sustained overload it may miss the newest spans after that wait. Key lookups do not
//! wait and miss nothing: they read the index up to `indexed_upto` and scan the spans after it
//! in `loupe.db` (a short range of rowids), in one statement.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, codec};

pub(crate) const SEARCH_FILE_NAME: &str = "search.db";

/// Bumped when the index's content or tokenizer changes; a different version is rebuilt.
const INDEX_VERSION: i64 = 2;

/// The longest a full-text query waits for the index to catch up.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(2);

/// Spans indexed per transaction.
const INDEX_BATCH: i64 = 2000;

/// The most text waiting in handoffs; past it, handoffs are dropped (see the module docs).
const MAX_HANDOFF_BYTES: usize = 16 << 20;

/// The first character of key tokens (see the module docs).
const KEY_MARK: char = '\u{E000}';

/// The token that indexes a span by its span id.
pub(crate) fn span_id_token(span_id: &[u8]) -> String {
    format!("{KEY_MARK}s{}", hex::encode(span_id))
}

/// The token that indexes a span by its user (hex, so any user id is one token, exactly).
pub(crate) fn user_token(user: &str) -> String {
    format!("{KEY_MARK}u{}", hex::encode(user))
}

/// A `MATCH` query for exactly `token`.
pub(crate) fn token_query(token: &str) -> String {
    format!("\"{token}\"")
}

/// Registers `loupe_span_id_query(span_id)`, the `MATCH` query for a span id's key token, for
/// queries that look spans up by a column's span id.
pub(crate) fn register_functions(conn: &Connection) -> Result<(), Error> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("loupe_span_id_query", 1, flags, |ctx| {
        let span_id: Vec<u8> = ctx.get(0)?;
        Ok(token_query(&span_id_token(&span_id)))
    })?;
    Ok(())
}

/// What the index holds of one span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The span's rowid in `loupe.db`.
    pub(crate) id: i64,
    pub(crate) span_id: [u8; 8],
    pub(crate) user: Option<String>,
    /// Its searchable text; empty for none.
    pub(crate) text: String,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.text.len() + self.user.as_ref().map_or(0, String::len) + 48
    }

    /// The indexed text, written into `buf`: the searchable text and the key tokens.
    fn indexed<'a>(&self, buf: &'a mut String) -> &'a str {
        buf.clear();
        buf.push_str(&self.text);
        buf.push(' ');
        buf.push_str(&span_id_token(&self.span_id));
        if let Some(user) = &self.user {
            buf.push(' ');
            buf.push_str(&user_token(user));
        }
        buf
    }
}

/// The index entries of the spans one transaction inserted, which got the consecutive rowids
/// `first..=last`.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) entries: Vec<Entry>,
}

impl Handoff {
    /// Adds the span just inserted.
    pub(crate) fn push(&mut self, entry: Entry) {
        if self.first == 0 {
            self.first = entry.id;
        }
        self.last = entry.id;
        self.entries.push(entry);
    }

    fn bytes(&self) -> usize {
        self.entries.iter().map(Entry::bytes).sum()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Highest span rowid written to `loupe.db` that the indexer knows of.
    target: i64,
    /// Highest span rowid in the index.
    indexed_upto: i64,
    stop: bool,
    /// Handoffs not indexed yet, in commit order, and the bytes of text they hold.
    handoffs: VecDeque<Handoff>,
    handoff_bytes: usize,
    /// Handoffs dropped because the queue was full (their spans were read back instead).
    handoffs_dropped: u64,
}

impl State {
    /// The handoff that continues the index right after `indexed_upto`, if one is waiting;
    /// drops those the index has already passed.
    fn next_handoff(&mut self) -> Option<Handoff> {
        while let Some(front) = self.handoffs.front_mut() {
            if front.first > self.indexed_upto + 1 {
                return None;
            }
            let mut handoff = self.handoffs.pop_front()?;
            self.handoff_bytes -= handoff.bytes();
            if handoff.last > self.indexed_upto {
                let upto = self.indexed_upto;
                handoff.entries.retain(|entry| entry.id > upto);
                handoff.first = upto + 1;
                return Some(handoff);
            }
        }
        None
    }
}

#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Held while the index is written, so view updates and the indexer do not interleave.
    /// Others take it with [`Shared::lock_index`].
    index_lock: Mutex<()>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain numbers, valid even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by the writer after a commit.
    pub(crate) fn written_upto(&self, max_rowid: i64) {
        self.written(max_rowid, None);
    }

    /// Called by the writer after a commit, with the index entries of the spans it inserted.
    pub(crate) fn written(&self, max_rowid: i64, handoff: Option<Handoff>) {
        let mut state = self.lock();
        if let Some(handoff) = handoff.filter(|it| it.last > 0) {
            let bytes = handoff.bytes();
            if state.handoff_bytes + bytes <= MAX_HANDOFF_BYTES {
                state.handoff_bytes += bytes;
                state.handoffs.push_back(handoff);
            } else {
                state.handoffs_dropped += 1;
            }
        }
        if max_rowid > state.target {
            state.target = max_rowid;
            self.changed.notify_all();
        }
    }

    /// Waits until spans up to `rowid` are indexed, at most [`MAX_WAIT`].
    pub(crate) fn wait_indexed(&self, rowid: i64) {
        let deadline = Instant::now() + MAX_WAIT;
        let mut state = self.lock();
        if rowid > state.target {
            state.target = rowid;
            self.changed.notify_all();
        }
        while state.indexed_upto < rowid && !state.stop {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    rowid,
                    indexed_upto = state.indexed_upto,
                    "full-text index is behind"
                );
                return;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The highest span rowid in the indexes: a statement that starts after this call sees
    /// `search.db` at least up to it (it is published after the index's commit).
    pub(crate) fn indexed_upto(&self) -> i64 {
        self.lock().indexed_upto
    }

    /// `(spans written but not indexed yet, handoffs dropped)`. Rowids are handed out in order,
    /// so the first is the distance between the two high-water marks.
    pub(crate) fn lag(&self) -> (u64, u64) {
        let state = self.lock();
        let behind = u64::try_from(state.target - state.indexed_upto).unwrap_or(0);
        (behind, state.handoffs_dropped)
    }

    /// Takes the index lock to change the index besides the indexer, dropping the waiting
    /// handoffs: their text may be older than what the caller is about to write or delete.
    pub(crate) fn lock_index(&self) -> MutexGuard<'_, ()> {
        let guard = self.index_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.lock();
        state.handoffs.clear();
        state.handoff_bytes = 0;
        guard
    }
}

/// Opens (creating or rebuilding as needed) the index file and returns its `indexed_upto`.
pub(crate) fn open_index(path: &Path) -> Result<(Connection, i64), Error> {
    let conn =
        Connection::open(path).map_err(|source| Error::Open { path: path.to_owned(), source })?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -16384;
         PRAGMA secure_delete = ON;
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    )?;
    let version: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |row| row.get(0))
        .optional()?;
    if version != Some(INDEX_VERSION) {
        reset_index(&conn)?;
    }
    // Persistent in the table; set at every open so indexes made before it get it too.
    conn.execute("INSERT INTO spans_fts (spans_fts, rank) VALUES ('secure-delete', 1)", [])?;
    let indexed_upto: i64 =
        conn.query_row("SELECT value FROM meta WHERE key = 'indexed_upto'", [], |row| row.get(0))?;
    Ok((conn, indexed_upto))
}

/// Empties the indexes (they are then rebuilt from the stored spans).
fn reset_index(conn: &Connection) -> Result<(), Error> {
    conn.execute_batch(&format!(
        "BEGIN;
             DROP TABLE IF EXISTS spans_fts;
             CREATE VIRTUAL TABLE spans_fts USING fts5 (
                 text,
                 content = '',
                 contentless_delete = 1,
                 detail = none,
                 tokenize = 'unicode61 remove_diacritics 2'
             );
             INSERT OR REPLACE INTO meta (key, value) VALUES ('version', {INDEX_VERSION});
             INSERT OR REPLACE INTO meta (key, value) VALUES ('indexed_upto', 0);
             COMMIT;"
    ))?;
    Ok(())
}

/// The background thread; stopped and joined on drop.
pub(crate) struct Indexer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    pub(crate) fn start(db_path: PathBuf, search_path: PathBuf) -> Result<Indexer, Error> {
        let (index, mut indexed_upto) = open_index(&search_path)?;
        let source = Connection::open(&db_path)
            .map_err(|source| Error::Open { path: db_path.clone(), source })?;
        source.execute_batch("PRAGMA busy_timeout = 10000; PRAGMA cache_size = -8192;")?;
        let target: i64 =
            source.query_row("SELECT COALESCE(MAX(id), 0) FROM spans", [], |row| row.get(0))?;
        if indexed_upto > target {
            // The index is ahead of the spans: it belongs to another database (a data dir
            // whose `loupe.db` was replaced). Its rowids mean nothing here.
            tracing::warn!(indexed_upto, max_rowid = target, "rebuilding a stale full-text index");
            reset_index(&index)?;
            indexed_upto = 0;
        }
        let shared = Arc::new(Shared::default());
        {
            let mut state = shared.lock();
            state.indexed_upto = indexed_upto;
            state.target = target;
        }
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("loupe-sqlite-indexer".to_owned())
            .spawn(move || run(&thread_shared, &source, &index))
            .map_err(|e| Error::Task(format!("cannot start the indexer thread: {e}")))?;
        Ok(Indexer { shared, thread: Some(thread) })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The least time between two checkpoints of the indexer: each copies the pages written since
/// the last into the database file and syncs it, so checkpointing after every small batch would
/// copy and sync the same hot pages (indexes, roll-ups) many times over. Short enough that the
/// log stays well below `wal_autocheckpoint`, which would make the writer checkpoint itself.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

fn run(shared: &Shared, source: &Connection, index: &Connection) {
    let mut last_checkpoint: Option<Instant> = None;
    loop {
        let (target, indexed_upto) = {
            let mut state = shared.lock();
            while state.target <= state.indexed_upto && !state.stop {
                state = shared
                    .changed
                    .wait_timeout(state, Duration::from_secs(1))
                    .map(|(s, _)| s)
                    .unwrap_or_else(|e| e.into_inner().0);
                if state.target <= state.indexed_upto {
                    break;
                }
            }
            if state.stop {
                return;
            }
            (state.target, state.indexed_upto)
        };
        if target > indexed_upto {
            match index_batch(shared, source, index, indexed_upto) {
                Ok(upto) => {
                    if upto == indexed_upto {
                        // Nothing to index after all (the target came from a rolled-back
                        // write): forget it, so waiting readers are not held up.
                        let mut state = shared.lock();
                        state.target = state.target.min(upto);
                        shared.changed.notify_all();
                    }
                }
                Err(error) => {
                    tracing::error!(error = %model::error_chain(&error), "full-text indexing failed");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        if last_checkpoint.is_none_or(|at| at.elapsed() >= CHECKPOINT_INTERVAL) {
            checkpoint(source);
            last_checkpoint = Some(Instant::now());
        }
    }
}

/// Indexes the next spans after `after`; returns the new `indexed_upto`.
fn index_batch(
    shared: &Shared,
    source: &Connection,
    index: &Connection,
    after: i64,
) -> Result<i64, Error> {
    let _guard = shared.index_lock.lock().unwrap_or_else(|e| e.into_inner());
    let handoff = shared.lock().next_handoff();
    let (entries, last) = match handoff {
        Some(handoff) => (handoff.entries, handoff.last),
        None => {
            let entries = stored_entries(source, after)?;
            let Some(last) = entries.last().map(|entry| entry.id) else { return Ok(after) };
            (entries, last)
        }
    };
    let tx = index.unchecked_transaction()?;
    {
        let mut insert =
            tx.prepare_cached("INSERT OR REPLACE INTO spans_fts (rowid, text) VALUES (?1, ?2)")?;
        let mut buf = String::new();
        for entry in &entries {
            insert.execute(params![entry.id, entry.indexed(&mut buf)])?;
        }
        tx.execute("UPDATE meta SET value = ?1 WHERE key = 'indexed_upto'", [last])?;
    }
    tx.commit()?;
    // Published while the index lock is held, so a view update that follows sees it.
    let mut state = shared.lock();
    state.indexed_upto = last;
    shared.changed.notify_all();
    Ok(last)
}

/// The index entries of the next [`INDEX_BATCH`] stored spans after rowid `after`, read back
/// from `loupe.db` (when no handoff has them).
fn stored_entries(source: &Connection, after: i64) -> Result<Vec<Entry>, Error> {
    let mut select = source.prepare_cached(
        "SELECT s.id, s.span_id, s.user, d.doc FROM spans s JOIN span_docs d ON d.id = s.id
         WHERE s.id > ?1 ORDER BY s.id LIMIT ?2",
    )?;
    let mut rows = select.query(params![after, INDEX_BATCH])?;
    let mut entries = Vec::new();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let span_id: Vec<u8> = row.get(1)?;
        let doc: Vec<u8> = row.get(3)?;
        entries.push(Entry {
            id,
            span_id: span_id
                .try_into()
                .map_err(|_| Error::Corrupt(format!("span {id}: bad span id")))?,
            user: row.get(2)?,
            text: codec::decode_view(&doc)?.searchable_text(),
        });
    }
    Ok(entries)
}

/// Moves WAL pages into the database file without blocking readers or the writer, so the
/// writer's commits do not pay for checkpoints.
fn checkpoint(source: &Connection) {
    if let Err(error) = source.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(%error, "wal checkpoint failed");
    }
}

/// Opens `search.db` for a write beside the indexer's (deletes, re-indexing, merging).
pub(crate) fn open_writer(search_path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(search_path)
        .map_err(|source| Error::Open { path: search_path.to_owned(), source })?;
    conn.execute_batch("PRAGMA busy_timeout = 10000; PRAGMA secure_delete = ON;")?;
    Ok(conn)
}

/// Replaces the index rows of spans already indexed (view updates); spans not indexed yet are
/// indexed from their new view by the thread.
pub(crate) fn reindex(shared: &Shared, search_path: &Path, changed: &[Entry]) -> Result<(), Error> {
    let _guard = shared.lock_index();
    let indexed_upto = shared.indexed_upto();
    let conn = open_writer(search_path)?;
    let tx = conn.unchecked_transaction()?;
    {
        let mut delete = tx.prepare_cached("DELETE FROM spans_fts WHERE rowid = ?1")?;
        let mut insert =
            tx.prepare_cached("INSERT INTO spans_fts (rowid, text) VALUES (?1, ?2)")?;
        let mut buf = String::new();
        for entry in changed.iter().filter(|entry| entry.id <= indexed_upto) {
            delete.execute([entry.id])?;
            insert.execute(params![entry.id, entry.indexed(&mut buf)])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, text: &str) -> Entry {
        Entry { id, span_id: [2; 8], user: None, text: text.to_owned() }
    }

    fn handoff(first: i64, last: i64, with_text: &[i64]) -> Handoff {
        let mut res = Handoff::default();
        for rowid in first..=last {
            let text =
                if with_text.contains(&rowid) { format!("span {rowid}") } else { String::new() };
            res.push(entry(rowid, &text));
        }
        res
    }

    fn queued(state: &State) -> Vec<(i64, i64)> {
        state.handoffs.iter().map(|it| (it.first, it.last)).collect()
    }

    #[test]
    fn a_handoff_continues_the_index_or_waits() {
        let shared = Shared::default();
        shared.lock().indexed_upto = 10;
        shared.written(8, Some(handoff(5, 8, &[5, 6])));
        shared.written(12, Some(handoff(9, 12, &[9, 11, 12])));
        shared.written(15, Some(handoff(13, 15, &[14])));
        shared.written(30, Some(handoff(20, 30, &[25])));
        let mut state = shared.lock();
        assert_eq!(state.target, 30);
        // 5..=8 is behind the index and dropped; 9..=12 is cut to what the index lacks.
        let next = state.next_handoff().expect("9..=12 overlaps the index's end");
        assert_eq!((next.first, next.last), (11, 12));
        assert_eq!(next.entries, [entry(11, "span 11"), entry(12, "span 12")]);
        state.indexed_upto = next.last;
        let next = state.next_handoff().expect("13..=15 follows 12");
        assert_eq!((next.first, next.last, next.entries.len()), (13, 15, 3));
        state.indexed_upto = next.last;
        // Rowids 16..=19 were written by another path: they are read from the database first.
        assert!(state.next_handoff().is_none());
        assert_eq!(queued(&state), [(20, 30)]);
        assert_eq!(state.handoff_bytes, state.handoffs[0].bytes());
        state.indexed_upto = 19;
        assert!(state.next_handoff().is_some());
        assert_eq!(state.handoff_bytes, 0);
    }

    #[test]
    fn handoffs_are_bounded_and_dropped_by_other_index_writers() {
        let shared = Shared::default();
        let mut big = Handoff::default();
        big.push(entry(1, &"x".repeat(MAX_HANDOFF_BYTES)));
        shared.written(1, Some(big));
        assert!(shared.lock().handoffs.is_empty(), "over the bound: left to the database");
        assert_eq!(shared.lag(), (1, 1), "the write still counts, and the drop is counted");
        shared.written(2, Some(handoff(2, 2, &[2])));
        shared.written(3, None);
        assert_eq!(queued(&shared.lock()), [(2, 2)]);
        let guard = shared.lock_index();
        assert!(shared.lock().handoffs.is_empty(), "a view update or delete drops them");
        assert_eq!(shared.lock().handoff_bytes, 0);
        drop(guard);
    }
}
