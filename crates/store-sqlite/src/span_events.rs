//! Span events that arrived apart from their spans (GenAI events sent as OTLP log records),
//! kept in `span_events` (schema version 8, see [`MIGRATION`]) until the pipeline merges them
//! into their stored span and deletes them.
//!
//! One row per event: the span's key, and the event as JSON. Rows are read back in insertion
//! order (`id`), which is the order the events were received. A trace's rows go with the trace
//! when it is deleted (tail sampling, retention; see `sampling.rs` and `retention.rs`), and
//! retention also deletes the rows older than its cutoff whose span never arrived
//! ([`delete_before`]).
//!
//! The pipeline asks for the saved events of every batch it writes, and the table is nearly
//! always empty; [`EventsHint`] answers those asks without a read while no event was saved
//! since the table was last seen empty.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use model::{ProjectId, SpanEvent, SpanId, TraceId};
use rusqlite::params;

use crate::write::to_i64;
use crate::{Error, SqliteStore};

/// Schema version 8.
pub(crate) const MIGRATION: &str = "
CREATE TABLE span_events (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    time_ns INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX span_events_by_span ON span_events (project, trace_id, span_id);
CREATE INDEX span_events_by_time ON span_events (project, time_ns);
";

/// Whether `span_events` can hold rows. Every save counts itself in `puts` (and in `in_flight`
/// while it runs); a read that finds the table empty with no save running and none started
/// since it looked records the count in `empty_at`. While `empty_at == puts` the table is
/// empty, so a read can be skipped. It starts as "maybe": rows may exist from before.
#[derive(Debug)]
pub(crate) struct EventsHint {
    puts: AtomicU64,
    in_flight: AtomicU64,
    empty_at: AtomicU64,
}

impl Default for EventsHint {
    fn default() -> EventsHint {
        EventsHint {
            puts: AtomicU64::new(1),
            in_flight: AtomicU64::new(0),
            empty_at: AtomicU64::new(0),
        }
    }
}

/// A save in progress; ends on drop.
struct Put<'a>(&'a EventsHint);

impl Drop for Put<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}

impl EventsHint {
    fn known_empty(&self) -> bool {
        self.empty_at.load(SeqCst) == self.puts.load(SeqCst)
    }

    fn start_put(&self) -> Put<'_> {
        self.in_flight.fetch_add(1, SeqCst);
        self.puts.fetch_add(1, SeqCst);
        Put(self)
    }

    /// Taken before a read that may find the table empty: `(puts, in_flight)`.
    fn look(&self) -> (u64, u64) {
        (self.puts.load(SeqCst), self.in_flight.load(SeqCst))
    }

    /// The read that began with `look` found the table empty.
    fn saw_empty(&self, (puts, in_flight): (u64, u64)) {
        if in_flight == 0 && self.puts.load(SeqCst) == puts {
            self.empty_at.store(puts, SeqCst);
        }
    }
}

impl SqliteStore {
    pub(crate) async fn span_events_put(
        &self,
        project: &ProjectId,
        events: &[SpanEvent],
    ) -> store::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let project = project.clone();
        let events = events.to_vec();
        self.with_writer_and_state(move |conn, inner| {
            let _put = inner.events.start_put();
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO span_events (project, trace_id, span_id, time_ns, event)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for it in &events {
                    let event = serde_json::to_string(&it.event)
                        .map_err(|e| Error::Corrupt(format!("span event: {e}")))?;
                    insert.execute(params![
                        project.as_str(),
                        &it.trace_id.as_bytes()[..],
                        &it.span_id.as_bytes()[..],
                        to_i64(it.event.time_unix_nano),
                        event
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn span_events_get(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> store::Result<Vec<SpanEvent>> {
        if spans.is_empty() {
            return Ok(Vec::new());
        }
        if self.inner.events.known_empty() {
            return Ok(Vec::new());
        }
        let project = project.clone();
        let spans = spans.to_vec();
        self.with_reader_and_state(move |conn, inner| {
            // The pipeline asks after every span write; the table is usually empty.
            let look = inner.events.look();
            let any: bool =
                conn.query_row("SELECT EXISTS (SELECT 1 FROM span_events)", [], |row| row.get(0))?;
            if !any {
                inner.events.saw_empty(look);
                return Ok(Vec::new());
            }
            let mut select = conn.prepare_cached(
                "SELECT id, event FROM span_events
                 WHERE project = ?1 AND trace_id = ?2 AND span_id = ?3",
            )?;
            let mut res: Vec<(i64, SpanEvent)> = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for (trace_id, span_id) in spans {
                if !seen.insert((trace_id, span_id)) {
                    continue;
                }
                let rows = select
                    .query_map(
                        params![
                            project.as_str(),
                            &trace_id.as_bytes()[..],
                            &span_id.as_bytes()[..]
                        ],
                        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (id, event) in rows {
                    let event = serde_json::from_str(&event)
                        .map_err(|e| Error::Corrupt(format!("span event {id}: {e}")))?;
                    res.push((id, SpanEvent { trace_id, span_id, event }));
                }
            }
            res.sort_by_key(|(id, _)| *id);
            Ok(res.into_iter().map(|(_, event)| event).collect())
        })
        .await
    }

    pub(crate) async fn span_events_delete(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> store::Result<u64> {
        if spans.is_empty() {
            return Ok(0);
        }
        let project = project.clone();
        let spans = spans.to_vec();
        self.with_writer(move |conn| {
            let tx = conn.transaction()?;
            let mut res = 0;
            {
                let mut delete = tx.prepare_cached(
                    "DELETE FROM span_events WHERE project = ?1 AND trace_id = ?2 AND span_id = ?3",
                )?;
                for (trace_id, span_id) in &spans {
                    res += delete.execute(params![
                        project.as_str(),
                        &trace_id.as_bytes()[..],
                        &span_id.as_bytes()[..]
                    ])?;
                }
            }
            tx.commit()?;
            Ok(res as u64)
        })
        .await
    }
}

/// Deletes the saved events of a project older than the cutoff (their span never arrived, or
/// they would have been merged and deleted). Part of `delete_traces_before`.
pub(crate) fn delete_before(
    conn: &mut rusqlite::Connection,
    project: &ProjectId,
    before_ns: i64,
) -> Result<usize, Error> {
    let n = conn
        .prepare_cached("DELETE FROM span_events WHERE project = ?1 AND time_ns < ?2")?
        .execute(params![project.as_str(), before_ns])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::EventsHint;

    #[test]
    fn the_hint_says_empty_only_after_an_empty_read_with_no_save_around_it() {
        let hint = EventsHint::default();
        assert!(!hint.known_empty(), "rows may exist from before");
        hint.saw_empty(hint.look());
        assert!(hint.known_empty());

        let put = hint.start_put();
        assert!(!hint.known_empty(), "a save makes it unknown");
        let look = hint.look();
        hint.saw_empty(look);
        assert!(!hint.known_empty(), "a save was running: its row may not be visible yet");
        drop(put);

        let look = hint.look();
        drop(hint.start_put());
        hint.saw_empty(look);
        assert!(!hint.known_empty(), "a save started after the read began");

        hint.saw_empty(hint.look());
        assert!(hint.known_empty());
    }
}
