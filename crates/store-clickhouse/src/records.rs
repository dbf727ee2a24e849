//! The records users write directly: feedback, score configs and datasets (schema version 2).
//!
//! Feedback and score configs change in place, so each change is a new row version of a
//! `ReplacingMergeTree` keyed by (project, id / name), deletes are tombstones, and reads use
//! `FINAL`. Dataset versions are immutable and insert-only; each version stores its whole item
//! set (datasets are small next to traces, and reading a version is then one key range), tagged
//! with the attempt that wrote it, so a version whose write failed halfway is never seen.

use std::collections::{BTreeMap, HashSet};

use model::{
    Dataset, DatasetItem, DatasetVersion, Feedback, FeedbackTarget, ProjectId, ScoreConfig,
    ScoreValue, SpanId, TraceId, UnixNanos,
};
use serde::Deserialize;
use store::{Cursor, DatasetRef, NewDatasetVersion, Page};

use crate::client::{quote, quote_str};
use crate::{CountRow, Error, Inner, now_ns};

#[derive(Deserialize)]
struct Body {
    body_json: String,
}

fn decode<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Encode(e.to_string()))
}

fn line(value: serde_json::Value) -> Vec<u8> {
    format!("{value}\n").into_bytes()
}

/// The `feedback` row of an entry: the columns filters use beside the entry as JSON.
fn feedback_row(feedback: &Feedback) -> Result<serde_json::Value, Error> {
    let (kind, trace_id, span_id, session_id) = match &feedback.target {
        FeedbackTarget::Trace { trace_id } => ("trace", trace_id.to_hex(), String::new(), ""),
        FeedbackTarget::Span { span_id, trace_id } => {
            ("span", trace_id.map(|t| t.to_hex()).unwrap_or_default(), span_id.to_hex(), "")
        }
        FeedbackTarget::Session { session_id } => {
            ("session", String::new(), String::new(), session_id.as_str())
        }
    };
    let content = &feedback.content;
    // `up` / `down` keep their word (and count as 5 / 1); stars are their number.
    let (rating_value, rating_text) = match content.rating {
        Some(rating) => (rating.value(), rating.to_string()),
        None => (0, String::new()),
    };
    let mut score_keys = Vec::new();
    let mut score_is_num = Vec::new();
    let mut score_num = Vec::new();
    let mut score_text = Vec::new();
    for (name, value) in &content.scores {
        score_keys.push(name.clone());
        score_is_num.push(u8::from(value.as_f64().is_some()));
        score_num.push(value.as_f64().filter(|f| f.is_finite()).unwrap_or(0.0));
        score_text.push(match value {
            ScoreValue::Category(c) => c.clone(),
            other => other.to_string(),
        });
    }
    let correction_text = content
        .correction
        .as_ref()
        .map(|messages| messages.iter().map(|m| m.text_content()).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    let row = serde_json::json!({
        "project": feedback.project.as_str(),
        "id": feedback.id,
        "target_kind": kind,
        "trace_id": trace_id,
        "span_id": span_id,
        "session_id": session_id,
        "created_ns": feedback.created_ns,
        "rating_value": rating_value,
        "rating_text": rating_text,
        "score_keys": score_keys,
        "score_is_num": score_is_num,
        "score_num": score_num,
        "score_text": score_text,
        "tags": content.tags,
        "has_correction": u8::from(content.correction.is_some()),
        "correction_text": correction_text,
        "comment": content.comment.clone().unwrap_or_default(),
        "body_json": encode(feedback)?,
        "deleted": 0,
        "version": now_ns(),
    });
    Ok(row)
}

impl Inner {
    /// Deletes traces with one mutation per table (ClickHouse rewrites the affected parts in the
    /// background; many small deletes would rewrite them many times, so callers batch), then
    /// waits until the mutations are applied so the spans are gone from every read.
    pub(crate) async fn delete_traces(
        &self,
        project: &ProjectId,
        trace_ids: &[TraceId],
    ) -> Result<u64, Error> {
        if trace_ids.is_empty() {
            return Ok(0);
        }
        let p = quote(project);
        let list: Vec<String> = trace_ids.iter().map(|t| quote(t.to_hex())).collect();
        let list = list.join(", ");
        let counted: Vec<CountRow> = self
            .client
            .select(&format!(
                "SELECT count() AS n FROM spans FINAL WHERE project = {p} AND trace_id IN ({list}) \
                 AND start_ns >= (SELECT min(min_start_ns) FROM trace_index \
                 WHERE project = {p} AND trace_id IN ({list})) \
                 AND start_ns <= (SELECT max(max_start_ns) FROM trace_index \
                 WHERE project = {p} AND trace_id IN ({list}))"
            ))
            .await?;
        let n_spans = counted.first().map_or(0, |c| c.n);
        if n_spans == 0 {
            return Ok(0);
        }
        // Spans first: an index entry without spans is harmless, the reverse would hide spans.
        // Span events waiting for a span of these traces go with them.
        for table in ["spans", "trace_index", "span_events"] {
            self.client
                .execute(&format!(
                    "ALTER TABLE {table} DELETE WHERE project = {p} AND trace_id IN ({list})"
                ))
                .await?;
        }
        // The mutations are recorded durably when ALTER returns; wait until they are applied.
        self.wait_for_mutations(&["spans", "trace_index", "span_events"]).await?;
        Ok(n_spans)
    }

    /// Waits until the mutations of `tables` are applied (18.x has no `mutations_sync`), at
    /// most the configured timeout.
    pub(crate) async fn wait_for_mutations(&self, tables: &[&str]) -> Result<(), Error> {
        let tables: Vec<String> = tables.iter().map(|t| quote_str(t)).collect();
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        loop {
            let pending: Vec<CountRow> = self
                .client
                .select(&format!(
                    "SELECT count() AS n FROM system.mutations WHERE database = {} \
                     AND table IN ({}) AND is_done = 0",
                    quote_str(&self.config.database),
                    tables.join(", ")
                ))
                .await?;
            if pending.first().is_none_or(|c| c.n == 0) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unreachable(
                    "the deletion is recorded but not applied yet; it completes in the \
                     background, call again later"
                        .to_owned(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn insert_rows(&self, table: &str, rows: Vec<u8>) -> Result<(), Error> {
        self.retrying(|| self.client.insert(table, rows.clone())).await
    }

    /// Live feedback rows of a project matching `condition`, oldest first.
    async fn select_feedback(
        &self,
        project: &ProjectId,
        condition: &str,
    ) -> Result<Vec<Feedback>, Error> {
        let rows: Vec<Body> = self
            .client
            .select(&format!(
                "SELECT body_json FROM (SELECT * FROM feedback FINAL WHERE project = {}) \
                 WHERE deleted = 0 AND ({condition}) ORDER BY created_ns, id",
                quote(project)
            ))
            .await?;
        rows.iter().map(|row| decode(&row.body_json, "feedback")).collect()
    }

    pub(crate) async fn put_feedback(&self, feedback: &Feedback) -> Result<(), Error> {
        self.insert_rows("feedback", line(feedback_row(feedback)?)).await
    }

    /// Writes every entry with one `INSERT`, which ClickHouse applies as one block: all rows
    /// or none.
    pub(crate) async fn put_feedback_batch(&self, entries: &[Feedback]) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::new();
        for feedback in entries {
            rows.extend(line(feedback_row(feedback)?));
        }
        self.insert_rows("feedback", rows).await
    }

    pub(crate) async fn get_feedback(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> Result<Option<Feedback>, Error> {
        let mut res = self.select_feedback(project, &format!("id = {}", quote_str(id))).await?;
        Ok(res.pop())
    }

    pub(crate) async fn list_feedback(
        &self,
        project: &ProjectId,
        target: &FeedbackTarget,
    ) -> Result<Vec<Feedback>, Error> {
        let condition = match target {
            FeedbackTarget::Trace { trace_id } => {
                format!("target_kind = 'trace' AND trace_id = {}", quote(trace_id.to_hex()))
            }
            FeedbackTarget::Span { span_id, .. } => {
                format!("target_kind = 'span' AND span_id = {}", quote(span_id.to_hex()))
            }
            FeedbackTarget::Session { session_id } => {
                format!("target_kind = 'session' AND session_id = {}", quote_str(session_id))
            }
        };
        self.select_feedback(project, &condition).await
    }

    /// The span ids stored for a trace.
    async fn trace_span_ids(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> Result<Vec<String>, Error> {
        #[derive(Deserialize)]
        struct Row {
            span_id: String,
        }
        let p = quote(project);
        let t = quote(trace_id.to_hex());
        let rows: Vec<Row> = self
            .client
            .select(&format!(
                "SELECT DISTINCT span_id FROM spans WHERE project = {p} AND trace_id = {t} \
                 AND start_ns >= (SELECT min(min_start_ns) FROM trace_index \
                 WHERE project = {p} AND trace_id = {t}) \
                 AND start_ns <= (SELECT max(max_start_ns) FROM trace_index \
                 WHERE project = {p} AND trace_id = {t})"
            ))
            .await?;
        Ok(rows.into_iter().map(|r| r.span_id).collect())
    }

    pub(crate) async fn trace_feedback(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> Result<Vec<Feedback>, Error> {
        let span_ids = self.trace_span_ids(project, trace_id).await?;
        let mut condition =
            format!("(target_kind = 'trace' AND trace_id = {})", quote(trace_id.to_hex()));
        if !span_ids.is_empty() {
            let list: Vec<String> = span_ids.iter().map(|s| quote_str(s)).collect();
            condition.push_str(&format!(
                " OR (target_kind = 'span' AND span_id IN ({}))",
                list.join(", ")
            ));
        }
        self.select_feedback(project, &condition).await
    }

    pub(crate) async fn pending_feedback(
        &self,
        project: &ProjectId,
        created_before_ns: UnixNanos,
        limit: u32,
    ) -> Result<Vec<Feedback>, Error> {
        let p = quote(project);
        let condition = format!(
            "target_kind = 'span' AND created_ns < {created_before_ns} AND span_id NOT IN \
             (SELECT span_id FROM spans WHERE project = {p} AND span_id IN \
             (SELECT span_id FROM feedback WHERE project = {p} AND target_kind = 'span'))"
        );
        let mut res = self.select_feedback(project, &condition).await?;
        res.truncate(crate::page_size(limit) as usize);
        Ok(res)
    }

    pub(crate) async fn delete_feedback(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> Result<bool, Error> {
        let Some(existing) = self.get_feedback(project, id).await? else { return Ok(false) };
        let row = serde_json::json!({
            "project": project.as_str(),
            "id": existing.id,
            "body_json": "{}",
            "deleted": 1,
            "version": now_ns(),
        });
        // A tombstone names only the key; the other columns get their types' defaults.
        self.insert_rows("feedback", line(row)).await?;
        Ok(true)
    }

    pub(crate) async fn put_score_config(
        &self,
        project: &ProjectId,
        config: &ScoreConfig,
    ) -> Result<(), Error> {
        let row = serde_json::json!({
            "project": project.as_str(),
            "name": config.name,
            "body_json": encode(config)?,
            "deleted": 0,
            "version": now_ns(),
        });
        self.insert_rows("score_configs", line(row)).await
    }

    pub(crate) async fn list_score_configs(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<ScoreConfig>, Error> {
        let rows: Vec<Body> = self
            .client
            .select(&format!(
                "SELECT body_json FROM (SELECT * FROM score_configs FINAL WHERE project = {}) \
                 WHERE deleted = 0 ORDER BY name",
                quote(project)
            ))
            .await?;
        rows.iter().map(|row| decode(&row.body_json, "score config")).collect()
    }

    pub(crate) async fn delete_score_config(
        &self,
        project: &ProjectId,
        name: &str,
    ) -> Result<bool, Error> {
        let exists = self.list_score_configs(project).await?.iter().any(|c| c.name == name);
        if !exists {
            return Ok(false);
        }
        let row = serde_json::json!({
            "project": project.as_str(),
            "name": name,
            "body_json": "{}",
            "deleted": 1,
            "version": now_ns(),
        });
        self.insert_rows("score_configs", line(row)).await?;
        Ok(true)
    }

    async fn select_datasets(
        &self,
        project: &ProjectId,
        condition: &str,
    ) -> Result<Vec<Dataset>, Error> {
        #[derive(Deserialize)]
        struct Row {
            body_json: String,
            latest: u32,
        }
        let p = quote(project);
        let rows: Vec<Row> = self
            .client
            .select(&format!(
                "SELECT body_json, latest FROM (SELECT name, body_json FROM datasets FINAL \
                 WHERE project = {p} AND ({condition})) ANY LEFT JOIN (SELECT dataset AS name, \
                 max(version) AS latest FROM dataset_versions WHERE project = {p} \
                 GROUP BY dataset) USING name ORDER BY name"
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let mut dataset: Dataset = decode(&row.body_json, "dataset")?;
                dataset.latest_version = (row.latest > 0).then_some(row.latest);
                Ok(dataset)
            })
            .collect()
    }

    pub(crate) async fn create_dataset(&self, dataset: &Dataset) -> Result<(), Error> {
        let condition = format!("name = {}", quote_str(&dataset.name));
        if !self.select_datasets(&dataset.project, &condition).await?.is_empty() {
            return Err(Error::Conflict(format!("dataset {:?} already exists", dataset.name)));
        }
        let stored = Dataset { latest_version: None, ..dataset.clone() };
        let row = serde_json::json!({
            "project": dataset.project.as_str(),
            "name": dataset.name,
            "body_json": encode(&stored)?,
            "version": now_ns(),
        });
        self.insert_rows("datasets", line(row)).await
    }

    pub(crate) async fn get_dataset(
        &self,
        project: &ProjectId,
        name: &str,
    ) -> Result<Option<Dataset>, Error> {
        Ok(self.select_datasets(project, &format!("name = {}", quote_str(name))).await?.pop())
    }

    pub(crate) async fn list_datasets(&self, project: &ProjectId) -> Result<Vec<Dataset>, Error> {
        self.select_datasets(project, "1").await
    }

    /// A dataset's versions with the attempt that wrote each, oldest first.
    async fn select_versions(
        &self,
        project: &ProjectId,
        dataset: &str,
        condition: &str,
    ) -> Result<Vec<(DatasetVersion, String)>, Error> {
        #[derive(Deserialize)]
        struct Row {
            attempt: String,
            body_json: String,
        }
        let rows: Vec<Row> = self
            .client
            .select(&format!(
                "SELECT attempt, body_json FROM dataset_versions WHERE project = {} \
                 AND dataset = {} AND ({condition}) ORDER BY version LIMIT 1 BY version",
                quote(project),
                quote_str(dataset)
            ))
            .await?;
        rows.into_iter()
            .map(|row| Ok((decode(&row.body_json, "dataset version")?, row.attempt)))
            .collect()
    }

    async fn version_attempt(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
    ) -> Result<Option<String>, Error> {
        let res = self.select_versions(project, dataset, &format!("version = {version}")).await?;
        Ok(res.into_iter().next().map(|(_, attempt)| attempt))
    }

    async fn items_of(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
        attempt: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<DatasetItem>, Error> {
        #[derive(Deserialize)]
        struct Row {
            item_json: String,
        }
        let after = after.map_or(String::new(), |id| format!(" AND item_id > {}", quote_str(id)));
        let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
        let rows: Vec<Row> = self
            .client
            .select(&format!(
                "SELECT item_json FROM dataset_items WHERE project = {} AND dataset = {} \
                 AND version = {version} AND attempt = {}{after} ORDER BY item_id{limit}",
                quote(project),
                quote_str(dataset),
                quote_str(attempt)
            ))
            .await?;
        rows.iter().map(|row| decode(&row.item_json, "dataset item")).collect()
    }

    pub(crate) async fn create_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        changes: &NewDatasetVersion,
    ) -> Result<DatasetVersion, Error> {
        if self.get_dataset(project, dataset).await?.is_none() {
            return Err(Error::NotFound(format!("dataset {dataset:?}")));
        }
        let versions = self.select_versions(project, dataset, "1").await?;
        // Items by id, in id order.
        let mut items: BTreeMap<String, DatasetItem> = BTreeMap::new();
        if let Some(base) = changes.base {
            let Some((_, attempt)) = versions.iter().find(|(v, _)| v.version == base) else {
                return Err(Error::NotFound(format!("version {base} of dataset {dataset:?}")));
            };
            for item in self.items_of(project, dataset, base, attempt, None, None).await? {
                items.insert(item.id.clone(), item);
            }
        }
        for id in &changes.remove {
            items.remove(id);
        }
        for added in &changes.add {
            let mut added = added.clone();
            if changes.merge_duplicates {
                let same_input: Vec<String> = items
                    .values()
                    .filter(|it| {
                        it.id != added.id && it.input_fingerprint == added.input_fingerprint
                    })
                    .map(|it| it.id.clone())
                    .collect();
                for id in same_input {
                    if let Some(old) = items.remove(&id) {
                        added.merged_from.extend(old.source.into_iter().chain(old.merged_from));
                    }
                }
            }
            items.insert(added.id.clone(), added);
        }
        let number = versions.iter().map(|(v, _)| v.version).max().unwrap_or(0) + 1;
        let attempt = format!("{}-{}", std::process::id(), now_ns());
        let version = DatasetVersion {
            dataset: dataset.to_owned(),
            version: number,
            created_ns: changes.created_ns,
            n_items: items.len() as u64,
            query: changes.query.clone(),
            note: changes.note.clone(),
        };
        let mut rows = Vec::new();
        for item in items.values() {
            let merged: HashSet<String> =
                item.merged_from.iter().map(|s| s.span_id.to_hex()).collect();
            rows.extend(line(serde_json::json!({
                "project": project.as_str(),
                "dataset": dataset,
                "version": number,
                "attempt": attempt,
                "item_id": item.id,
                "source_span_id": item.source.as_ref().map(|s| s.span_id.to_hex()).unwrap_or_default(),
                "merged_span_ids": merged.into_iter().collect::<Vec<_>>(),
                "item_json": encode(item)?,
            })));
        }
        if !rows.is_empty() {
            self.insert_rows("dataset_items", rows).await?;
        }
        // The version row last: the version exists only once its items are all written.
        let row = serde_json::json!({
            "project": project.as_str(),
            "dataset": dataset,
            "version": number,
            "attempt": attempt,
            "body_json": encode(&version)?,
        });
        self.insert_rows("dataset_versions", line(row)).await?;
        Ok(version)
    }

    pub(crate) async fn get_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
    ) -> Result<Option<DatasetVersion>, Error> {
        let res = self.select_versions(project, dataset, &format!("version = {version}")).await?;
        Ok(res.into_iter().next().map(|(v, _)| v))
    }

    pub(crate) async fn list_dataset_versions(
        &self,
        project: &ProjectId,
        dataset: &str,
    ) -> Result<Vec<DatasetVersion>, Error> {
        let res = self.select_versions(project, dataset, "1").await?;
        Ok(res.into_iter().map(|(v, _)| v).collect())
    }

    pub(crate) async fn dataset_items(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Page<DatasetItem>, Error> {
        let Some(attempt) = self.version_attempt(project, dataset, version).await? else {
            return Err(Error::NotFound(format!("version {version} of dataset {dataset:?}")));
        };
        let limit = crate::page_size(limit);
        let mut items = self
            .items_of(
                project,
                dataset,
                version,
                &attempt,
                after.map(|c| c.0.as_str()),
                Some(limit + 1),
            )
            .await?;
        let next_cursor =
            (items.len() > limit as usize).then(|| Cursor(items[limit as usize - 1].id.clone()));
        items.truncate(limit as usize);
        Ok(Page { items, next_cursor, total: None })
    }

    pub(crate) async fn span_datasets(
        &self,
        project: &ProjectId,
        span_id: SpanId,
    ) -> Result<Vec<DatasetRef>, Error> {
        #[derive(Deserialize)]
        struct Row {
            dataset: String,
            version: u32,
            item_id: String,
        }
        let p = quote(project);
        let s = quote(span_id.to_hex());
        let rows: Vec<Row> = self
            .client
            .select(&format!(
                "SELECT dataset, version, item_id FROM dataset_items WHERE project = {p} \
                 AND (source_span_id = {s} OR has(merged_span_ids, {s})) \
                 AND (dataset, version, attempt) IN \
                 (SELECT dataset, version, attempt FROM dataset_versions WHERE project = {p}) \
                 ORDER BY dataset, version, item_id"
            ))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| DatasetRef { dataset: r.dataset, version: r.version, item_id: r.item_id })
            .collect())
    }
}
