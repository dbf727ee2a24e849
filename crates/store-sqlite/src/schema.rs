//! Versioned schema migrations, run in order at open. Each migration runs in its own
//! transaction together with its row in `schema_migrations`, so a crash mid-migration leaves the
//! previous version intact.
//!
//! **Invariant:** a released migration is never edited; changes are new migrations. The golden
//! test in `tests.rs` opens a database written by schema version 1 (`test_data/schema_v1.sql`).

use rusqlite::Connection;

use crate::Error;

/// `(version, SQL)`, in order.
/// Version 2 adds feedback, score configs and datasets (see `feedback.rs`, `datasets.rs`).
/// Version 3 moves the full-text index out to `search.db` (see `search.rs`).
/// Version 4 moves the span records (`doc`) out of `spans` into `span_docs`.
/// Version 5 adds the tail-sampling tables (see `sampling.rs`).
/// Version 6 adds retention tiers, the user index and state records (see `retention.rs`).
/// Version 7 adds recorded eval runs (see `evals.rs`).
/// Version 8 adds span events waiting for their span (see `span_events.rs`).
/// Version 9 adds spans staged for a tail-sampling decision (see `sampling.rs`).
/// Version 10 drops the span-id and user indexes of `spans`: they are kept in `search.db`
/// (see `search.rs`).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, V1),
    (2, crate::feedback::MIGRATION),
    (3, V3),
    (4, V4),
    (5, crate::sampling::MIGRATION),
    (6, crate::retention::MIGRATION),
    (7, crate::evals::MIGRATION),
    (8, crate::span_events::MIGRATION),
    (9, crate::sampling::STAGING_MIGRATION),
    (10, V10),
];

/// The schema version this build writes.
pub(crate) const LATEST_VERSION: i64 = 10;

/// The full-text index is rebuilt in `search.db` from the stored spans at open.
const V3: &str = "DROP TABLE IF EXISTS spans_fts;";

/// Their keys are random, so every commit rewrote pages all over them; `search.db` has them
/// now, maintained off the acknowledged path (its index version 2 rebuilds them at open).
const V10: &str = "
DROP INDEX IF EXISTS spans_by_span_id;
DROP INDEX IF EXISTS spans_by_user;
";

/// Filters and roll-ups scan `spans`; without the records (about 2 KB each for an LLM call)
/// its rows are small and many fit in a page. `span_docs.id` is the span's rowid.
const V4: &str = "
CREATE TABLE span_docs (id INTEGER PRIMARY KEY, doc BLOB NOT NULL);
INSERT INTO span_docs (id, doc) SELECT id, doc FROM spans;
ALTER TABLE spans DROP COLUMN doc;
";

const V1: &str = "
CREATE TABLE spans (
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
    span_type TEXT NOT NULL,
    status TEXT NOT NULL,
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
CREATE UNIQUE INDEX spans_by_id ON spans (project, trace_id, span_id);
CREATE INDEX spans_by_start ON spans (project, start_ns);

CREATE TABLE traces (
    project TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    n_spans INTEGER NOT NULL,
    n_llm_spans INTEGER NOT NULL,
    n_errors INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost TEXT,
    root_start_ns INTEGER,
    root_name TEXT,
    root_service TEXT,
    root_operation TEXT,
    first_start_ns INTEGER NOT NULL,
    first_service TEXT,
    first_operation TEXT,
    session TEXT,
    user TEXT,
    PRIMARY KEY (project, trace_id)
) WITHOUT ROWID;
CREATE INDEX traces_by_start ON traces (project, start_ns);
CREATE INDEX traces_by_session ON traces (project, session, start_ns) WHERE session IS NOT NULL;

CREATE VIRTUAL TABLE spans_fts USING fts5 (
    text,
    content = '',
    contentless_delete = 1,
    detail = none,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    labels TEXT NOT NULL
);
CREATE INDEX api_keys_by_project ON api_keys (project);
";

/// Brings the database to [`LATEST_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), Error> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TEXT NOT NULL DEFAULT (datetime('now'))
        );",
    )?;
    let current: i64 =
        conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |row| {
            row.get(0)
        })?;
    if current > LATEST_VERSION {
        return Err(Error::FutureSchema { found: current, supported: LATEST_VERSION });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.execute("INSERT INTO schema_migrations (version) VALUES (?1)", [version])?;
            tx.commit()
        };
        run(conn).map_err(|source| Error::Migration { version, source })?;
        tracing::info!(version, "applied sqlite schema migration");
    }
    Ok(())
}
