//! Recorded eval runs in SQLite (schema version 7, see [`MIGRATION`]): one `eval_runs` row per
//! run with its summary and whole results document as JSON text, listed newest first through
//! `eval_runs_by_time`.

use model::ProjectId;
use rusqlite::{OptionalExtension, params};
use store::{EvalRunRecord, EvalRunRow};

use crate::SqliteStore;
use crate::write::to_i64;

/// Schema version 7.
pub(crate) const MIGRATION: &str = "
CREATE TABLE eval_runs (
    project TEXT NOT NULL,
    id TEXT NOT NULL,
    recorded_ns INTEGER NOT NULL,
    summary TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (project, id)
);
CREATE INDEX eval_runs_by_time ON eval_runs (project, recorded_ns, id);
";

fn from_i64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl SqliteStore {
    pub(crate) async fn eval_run_put(&self, run: &EvalRunRecord) -> store::Result<()> {
        let run = run.clone();
        self.with_writer(move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO eval_runs (project, id, recorded_ns, summary, document)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                run.project.as_str(),
                run.id,
                to_i64(run.recorded_ns),
                run.summary,
                run.document
            ])?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn eval_run_list(
        &self,
        project: &ProjectId,
        limit: u32,
    ) -> store::Result<Vec<EvalRunRow>> {
        let project = project.clone();
        self.with_reader(move |conn| {
            let mut select = conn.prepare_cached(
                "SELECT id, recorded_ns, summary FROM eval_runs WHERE project = ?1
                 ORDER BY recorded_ns DESC, id DESC LIMIT ?2",
            )?;
            let rows = select
                .query_map(params![project.as_str(), i64::from(limit)], |row| {
                    Ok(EvalRunRow {
                        id: row.get(0)?,
                        recorded_ns: from_i64(row.get(1)?),
                        summary: row.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    pub(crate) async fn eval_run_get(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> store::Result<Option<EvalRunRecord>> {
        let (project, id) = (project.clone(), id.to_owned());
        self.with_reader(move |conn| {
            let record = conn
                .prepare_cached(
                    "SELECT recorded_ns, summary, document FROM eval_runs
                     WHERE project = ?1 AND id = ?2",
                )?
                .query_row(params![project.as_str(), id], |row| {
                    Ok(EvalRunRecord {
                        project: project.clone(),
                        id: id.clone(),
                        recorded_ns: from_i64(row.get(0)?),
                        summary: row.get(1)?,
                        document: row.get(2)?,
                    })
                })
                .optional()?;
            Ok(record)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use store::Store;

    use crate::{SqliteConfig, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn eval_runs_suite() {
        let parent = tempfile::tempdir().expect("temp dir");
        let n = std::sync::atomic::AtomicUsize::new(0);
        store::suite::evals::run_all(|| {
            let dir = parent
                .path()
                .join(n.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string());
            async move {
                Box::new(SqliteStore::open(SqliteConfig::new(dir)).expect("open")) as Box<dyn Store>
            }
        })
        .await;
    }
}
