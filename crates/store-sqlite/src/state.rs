//! State records: small named values kept per project (e.g. a retention watermark), in the
//! `state` table of schema version 6 (see `retention`).

use model::ProjectId;
use rusqlite::{OptionalExtension, params};

use crate::SqliteStore;

fn now_ns() -> i64 {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

impl SqliteStore {
    pub(crate) async fn state_get(
        &self,
        project: &ProjectId,
        key: &str,
    ) -> store::Result<Option<String>> {
        let (project, key) = (project.clone(), key.to_owned());
        self.with_reader(move |conn| {
            let value = conn
                .prepare_cached("SELECT value FROM state WHERE project = ?1 AND key = ?2")?
                .query_row(params![project.as_str(), key], |row| row.get(0))
                .optional()?;
            Ok(value)
        })
        .await
    }

    pub(crate) async fn state_put(
        &self,
        project: &ProjectId,
        key: &str,
        value: &str,
    ) -> store::Result<()> {
        let (project, key, value) = (project.clone(), key.to_owned(), value.to_owned());
        self.with_writer(move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO state (project, key, value, updated_ns)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![project.as_str(), key, value, now_ns()])?;
            Ok(())
        })
        .await
    }
}
