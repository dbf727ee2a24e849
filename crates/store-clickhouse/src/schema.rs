//! The schema and its versioned migrations.
//!
//! Every statement of every migration is idempotent (`CREATE ... IF NOT EXISTS`), and a
//! migration is recorded in `loupe_migrations` only after all its statements succeeded. So
//! several Loupe nodes may start at once: they may run the same statements concurrently, which is
//! harmless, and each records the version (duplicate rows are harmless too; versions are read
//! with `DISTINCT`). A migration that changes existing tables must keep this property (e.g.
//! `ADD COLUMN IF NOT EXISTS` on releases that have it), and a released migration is never
//! edited, only followed by a new one.
//!
//! Version-specific choices: the DDL is rendered for the server's release. ClickHouse 18.x (the
//! Debian package) has no column codecs, no `LowCardinality` outside an experimental flag and no
//! data-skipping indexes; from 20.1 on, [`Dialect::modern`] adds `CODEC(ZSTD(3))` to the bulky
//! content columns and `LowCardinality(String)` to the low-cardinality ones. On 18.x the content
//! columns get the server-wide default codec (LZ4, or ZSTD when set in the server's
//! `<compression>` config).

use crate::Error;
use crate::client::{Client, quote};

/// What the connected server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// `CODEC(...)`, `LowCardinality` without flags (ClickHouse 20.1 and later).
    pub(crate) modern: bool,
}

impl Dialect {
    pub(crate) fn from_version(version: &str) -> Dialect {
        let major: u32 =
            version.split('.').next().and_then(|major| major.trim().parse().ok()).unwrap_or(0);
        Dialect { modern: major >= 20 }
    }

    fn zstd(self) -> &'static str {
        if self.modern { " CODEC(ZSTD(3))" } else { "" }
    }

    /// Rows per granule of `spans`. A trace lookup decompresses whole granules of the JSON
    /// columns, so granules must stay small in bytes: releases since 19.x size them adaptively
    /// (`index_granularity_bytes`, here 1 MiB); 18.x only counts rows, so it gets 1024 rows
    /// (a few MB of span JSON) instead of 8192.
    fn span_granularity(self) -> &'static str {
        if self.modern {
            "index_granularity = 8192, index_granularity_bytes = 1048576"
        } else {
            "index_granularity = 1024"
        }
    }

    fn low_cardinality(self) -> &'static str {
        if self.modern { "LowCardinality(String)" } else { "String" }
    }
}

/// One migration: a version, a name, and idempotent statements.
struct Migration {
    version: u32,
    name: &'static str,
    statements: fn(Dialect) -> Vec<String>,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "spans, trace index, api keys", statements: v1 },
    Migration { version: 2, name: "feedback, score configs, datasets", statements: v2 },
    Migration { version: 3, name: "retention tiers, project state", statements: v3 },
    Migration { version: 4, name: "eval runs", statements: v4 },
    Migration { version: 5, name: "span events waiting for their span", statements: v5 },
];

/// The newest schema version this build knows.
pub(crate) const SCHEMA_VERSION: u32 = 5;

/// ClickHouse's `DUPLICATE_COLUMN`: 18.x has no `ADD COLUMN IF NOT EXISTS`, so a second run of
/// an `ADD COLUMN` (another node, or a migration interrupted before it was recorded) fails with
/// this code, which means the statement's work is done.
const DUPLICATE_COLUMN: u32 = 44;

/// The partition key of a nanosecond timestamp column: its UTC day.
pub(crate) fn day_of(column: &str) -> String {
    format!("toYYYYMMDD(toDateTime(intDiv({column}, 1000000000), 'UTC'))")
}

fn v1(dialect: Dialect) -> Vec<String> {
    let lc = dialect.low_cardinality();
    let zstd = dialect.zstd();
    vec![
        // Spans: one row per span version. ReplacingMergeTree keeps the highest `version` of a
        // (project, start, trace, span) key once parts merge; reads use FINAL so that a retried
        // span or a re-derived view is never seen twice before that.
        format!(
            "CREATE TABLE IF NOT EXISTS spans (
                project {lc},
                start_ns UInt64,
                end_ns UInt64,
                trace_id String,
                span_id String,
                parent_span_id String,
                duration_ns UInt64,
                name String,
                kind {lc},
                status {lc},
                service {lc},
                span_type {lc},
                operation String,
                model {lc},
                provider {lc},
                session_id String,
                user_id String,
                environment {lc},
                input_tokens Nullable(UInt64),
                output_tokens Nullable(UInt64),
                total_tokens Nullable(UInt64),
                cost Nullable(Decimal(38, 12)),
                tags Array(String),
                attr_keys Array(String),
                attr_values Array(String),
                res_keys Array(String),
                res_values Array(String),
                search_text String{zstd},
                raw_json String{zstd},
                view_json String{zstd},
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            PARTITION BY {day}
            ORDER BY (project, start_ns, trace_id, span_id)
            SETTINGS {granularity}",
            day = day_of("start_ns"),
            granularity = dialect.span_granularity(),
        ),
        // Per-trace facts, one row per (batch, trace), ordered by (project, trace_id): where the
        // trace is in time (a trace lookup reads a granule here and then one narrow time range
        // of `spans`, never a scan), its extent, and its root's name and operation id once the
        // root has arrived (for `root_name`, `trace.duration` and the operation fallback, which
        // then join this small table instead of aggregating `spans`). Aggregates over
        // duplicated rows (min, max, the root row of the highest version) stay right; merges
        // keep the table small.
        format!(
            "CREATE TABLE IF NOT EXISTS trace_index (
                project {lc},
                trace_id String,
                min_start_ns UInt64,
                max_start_ns UInt64,
                max_end_ns UInt64,
                has_root UInt8,
                root_name String,
                root_operation String,
                version UInt64
            ) ENGINE = MergeTree
            PARTITION BY toYYYYMM(toDateTime(intDiv(min_start_ns, 1000000000), 'UTC'))
            ORDER BY (project, trace_id)"
        ),
        // API keys: few rows, read by hash on every authenticated request, changed rarely. Each
        // change (including a delete, as a tombstone) is a new row with a higher version.
        "CREATE TABLE IF NOT EXISTS api_keys (
            key_hash String,
            id String,
            project String,
            name String,
            prefix String,
            created_ns UInt64,
            labels_json String,
            deleted UInt8,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY key_hash"
            .to_owned(),
    ]
}

fn v2(dialect: Dialect) -> Vec<String> {
    let zstd = dialect.zstd();
    vec![
        // Feedback: edited in place (same id) and deleted by users, so each change is a new row
        // version (deletes are tombstones). The facts span filters use (rating, scores, tags,
        // correction, comment) are columns; the whole entry is `body_json`.
        format!(
            "CREATE TABLE IF NOT EXISTS feedback (
                project String,
                id String,
                target_kind String,
                trace_id String,
                span_id String,
                session_id String,
                created_ns UInt64,
                rating_value UInt8,
                rating_text String,
                score_keys Array(String),
                score_is_num Array(UInt8),
                score_num Array(Float64),
                score_text Array(String),
                tags Array(String),
                has_correction UInt8,
                correction_text String,
                comment String,
                body_json String{zstd},
                deleted UInt8,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (project, id)"
        ),
        "CREATE TABLE IF NOT EXISTS score_configs (
            project String,
            name String,
            body_json String,
            deleted UInt8,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (project, name)"
            .to_owned(),
        "CREATE TABLE IF NOT EXISTS datasets (
            project String,
            name String,
            body_json String,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (project, name)"
            .to_owned(),
        // Versions are immutable: insert-only. A version exists once its row does; its items
        // are the rows of `dataset_items` with the same `attempt`, so items left by a failed
        // attempt at the same number are never read.
        "CREATE TABLE IF NOT EXISTS dataset_versions (
            project String,
            dataset String,
            version UInt32,
            attempt String,
            body_json String
        ) ENGINE = MergeTree
        ORDER BY (project, dataset, version)"
            .to_owned(),
        format!(
            "CREATE TABLE IF NOT EXISTS dataset_items (
                project String,
                dataset String,
                version UInt32,
                attempt String,
                item_id String,
                source_span_id String,
                merged_span_ids Array(String),
                item_json String{zstd}
            ) ENGINE = MergeTree
            ORDER BY (project, dataset, version, item_id)"
        ),
    ]
}

fn v3(dialect: Dialect) -> Vec<String> {
    let if_not_exists = if dialect.modern { "IF NOT EXISTS " } else { "" };
    vec![
        // The retention tier of each span version (`RetentionTier::as_u8`): 0 = as ingested.
        // Adding a column with a default only changes metadata; existing parts read the default.
        format!("ALTER TABLE spans ADD COLUMN {if_not_exists}tier UInt8 DEFAULT 0"),
        // Small named values per project (retention watermarks), replaced by newer versions.
        "CREATE TABLE IF NOT EXISTS project_state (
            project String,
            key String,
            value String,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (project, key)"
            .to_owned(),
    ]
}

fn v4(_dialect: Dialect) -> Vec<String> {
    vec![
        // Recorded eval runs: the summary and the whole results document as JSON; a second put
        // of an id is a newer version.
        "CREATE TABLE IF NOT EXISTS eval_runs (
            project String,
            id String,
            recorded_ns UInt64,
            summary String,
            document String,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (project, id)"
            .to_owned(),
    ]
}

/// See `span_events.rs`.
fn v5(_dialect: Dialect) -> Vec<String> {
    crate::span_events::migration()
}

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS loupe_migrations (
    version UInt32,
    name String,
    applied_ns UInt64
) ENGINE = MergeTree ORDER BY version";

/// Creates the database at schema version `version` (and no further), as an older build left
/// it: for tests of the upgrade path.
#[cfg(test)]
pub(crate) async fn migrate_up_to(
    client: &Client,
    database: &str,
    dialect: Dialect,
    version: u32,
) -> Result<(), Error> {
    client.execute_without_database(&format!("CREATE DATABASE IF NOT EXISTS {database}")).await?;
    client.execute(MIGRATIONS_TABLE).await?;
    for migration in MIGRATIONS.iter().filter(|m| m.version <= version) {
        for statement in (migration.statements)(dialect) {
            client.execute(&statement).await?;
        }
        client
            .execute(&format!(
                "INSERT INTO loupe_migrations (version, name, applied_ns) VALUES ({}, {}, 0)",
                migration.version,
                quote(migration.name),
            ))
            .await?;
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct VersionRow {
    version: u32,
}

#[derive(serde::Deserialize)]
struct ServerVersion {
    version: String,
}

/// Creates the database when missing and applies the migrations it has not seen yet. Returns
/// the server's dialect.
pub(crate) async fn migrate(client: &Client, database: &str) -> Result<Dialect, Error> {
    let server: Vec<ServerVersion> = {
        let text = client
            .execute_without_database("SELECT version() AS version FORMAT JSONEachRow")
            .await?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| Error::BadResponse(e.to_string())))
            .collect::<Result<_, _>>()?
    };
    let dialect = Dialect::from_version(server.first().map_or("", |s| s.version.as_str()));
    // `database` is an identifier by the config's invariant.
    client.execute_without_database(&format!("CREATE DATABASE IF NOT EXISTS {database}")).await?;
    client.execute(MIGRATIONS_TABLE).await?;
    let applied: Vec<VersionRow> =
        client.select("SELECT DISTINCT version FROM loupe_migrations ORDER BY version").await?;
    if let Some(newest) = applied.iter().map(|row| row.version).max()
        && newest > SCHEMA_VERSION
    {
        return Err(Error::SchemaTooNew { found: newest, known: SCHEMA_VERSION });
    }
    for migration in MIGRATIONS {
        if applied.iter().any(|row| row.version == migration.version) {
            continue;
        }
        for statement in (migration.statements)(dialect) {
            match client.execute(&statement).await {
                Ok(_) => {}
                Err(Error::Server { code: DUPLICATE_COLUMN, .. })
                    if statement.starts_with("ALTER TABLE") =>
                {
                    tracing::debug!(%statement, "column already added");
                }
                Err(e) => return Err(e),
            }
        }
        client
            .execute(&format!(
                "INSERT INTO loupe_migrations (version, name, applied_ns) VALUES ({}, {}, {})",
                migration.version,
                quote(migration.name),
                crate::now_ns(),
            ))
            .await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied clickhouse migration"
        );
    }
    Ok(dialect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_follows_the_server_release() {
        assert!(!Dialect::from_version("18.16.1").modern);
        assert!(Dialect::from_version("24.8.4.13").modern);
        assert!(!Dialect::from_version("").modern);
        assert!(v1(Dialect { modern: true })[0].contains("search_text String CODEC(ZSTD(3))"));
        assert!(v1(Dialect { modern: false })[0].contains("search_text String,"));
    }
}
