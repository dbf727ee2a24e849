//! Recorded eval runs in ClickHouse (schema version 4): `eval_runs`, a `ReplacingMergeTree`
//! keyed by (project, id) with the run's summary and whole results document as JSON strings.
//! A second put of an id is a newer row version; reads use `FINAL`.

use model::ProjectId;
use serde::Deserialize;
use store::{EvalRunRecord, EvalRunRow};

use crate::client::{quote, quote_str};
use crate::{Error, Inner, now_ns};

#[derive(Deserialize)]
struct Row {
    id: String,
    recorded_ns: u64,
    summary: String,
    #[serde(default)]
    document: String,
}

impl Inner {
    pub(crate) async fn put_eval_run(&self, run: &EvalRunRecord) -> Result<(), Error> {
        let row = serde_json::json!({
            "project": run.project.as_str(),
            "id": run.id,
            "recorded_ns": run.recorded_ns,
            "summary": run.summary,
            "document": run.document,
            "version": now_ns(),
        });
        let body = format!("{row}\n").into_bytes();
        self.retrying(|| self.client.insert("eval_runs", body.clone())).await
    }

    pub(crate) async fn list_eval_runs(
        &self,
        project: &ProjectId,
        limit: u32,
    ) -> Result<Vec<EvalRunRow>, Error> {
        let rows: Vec<Row> = self
            .client
            .select(&format!(
                "SELECT id, recorded_ns, summary FROM eval_runs FINAL WHERE project = {}
                 ORDER BY recorded_ns DESC, id DESC LIMIT {}",
                quote(project),
                limit
            ))
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| EvalRunRow {
                id: row.id,
                recorded_ns: row.recorded_ns,
                summary: row.summary,
            })
            .collect())
    }

    pub(crate) async fn get_eval_run(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> Result<Option<EvalRunRecord>, Error> {
        let rows: Vec<Row> = self
            .client
            .select(&format!(
                "SELECT id, recorded_ns, summary, document FROM eval_runs FINAL
                 WHERE project = {} AND id = {}",
                quote(project),
                quote_str(id)
            ))
            .await?;
        Ok(rows.into_iter().next().map(|row| EvalRunRecord {
            project: project.clone(),
            id: row.id,
            recorded_ns: row.recorded_ns,
            summary: row.summary,
            document: row.document,
        }))
    }
}
