//! Feedback and score configs in SQLite, and the feedback fields of the filter syntax.
//!
//! # Layout (schema version 2, see [`MIGRATION`])
//!
//! - `feedback`: one row per entry, the entry as JSON in `doc` plus the columns filters use
//!   (target, rating on the 1 to 5 scale, scores and tags as JSON, whether it has a
//!   correction and its text, the comment). A span target is stored by span id with the trace id
//!   when the sender gave it; feedback sent before its span is written is stored the same way
//!   and joins the span by id as soon as the span lands, so nothing has to be re-attached.
//! - `score_configs`: one row per score name, the config as JSON.
//!
//! # Filters
//!
//! A span matches a feedback condition when one of the entries on it matches; entries on a whole
//! trace count for the trace's root span, so a trace query finds traces rated as a whole.
//! `rating` compares the 1 to 5 value (`down` is 1, `up` is 5), `score.NAME` the score
//! (booleans as 0 and 1), `feedback.tag` any tag, `correction` the correction's text and
//! `feedback` the comment; `has correction` and `has feedback` test presence.

use model::{Feedback, FeedbackTarget, ProjectId, ScoreConfig, TraceId, UnixNanos};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};
use store::{CmpOp, Field, Value};

use crate::filter::{Sql, op_sql, push_text, value_text};
use crate::write::to_i64;
use crate::{Error, SqliteStore};

/// Tables and indexes of schema version 2.
pub(crate) const MIGRATION: &str = "
CREATE TABLE feedback (
    project TEXT NOT NULL,
    id TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    trace_id BLOB,
    span_id BLOB,
    session TEXT,
    rating INTEGER,
    scores TEXT,
    tags TEXT,
    has_correction INTEGER NOT NULL,
    correction_text TEXT,
    comment TEXT,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (project, id)
) WITHOUT ROWID;
CREATE INDEX feedback_by_span ON feedback (project, span_id) WHERE span_id IS NOT NULL;
CREATE INDEX feedback_by_trace ON feedback (project, trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX feedback_by_session ON feedback (project, session) WHERE session IS NOT NULL;
CREATE INDEX spans_by_span_id ON spans (project, span_id);

CREATE TABLE score_configs (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (project, name)
) WITHOUT ROWID;

CREATE TABLE datasets (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    created_ns INTEGER NOT NULL,
    latest_version INTEGER,
    PRIMARY KEY (project, name)
) WITHOUT ROWID;

CREATE TABLE dataset_versions (
    project TEXT NOT NULL,
    dataset TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    n_items INTEGER NOT NULL,
    query TEXT,
    note TEXT,
    PRIMARY KEY (project, dataset, version)
) WITHOUT ROWID;

CREATE TABLE dataset_items (
    project TEXT NOT NULL,
    dataset TEXT NOT NULL,
    item_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (project, dataset, item_id, revision)
) WITHOUT ROWID;

CREATE TABLE dataset_members (
    project TEXT NOT NULL,
    dataset TEXT NOT NULL,
    version INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    span_ids TEXT,
    PRIMARY KEY (project, dataset, version, item_id)
) WITHOUT ROWID;
CREATE INDEX dataset_members_by_fingerprint ON dataset_members (project, dataset, version, fingerprint);
";

fn encode<T: serde::Serialize>(value: &T, what: &str) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(format!("cannot encode {what}: {e}")))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("cannot decode {what}: {e}")))
}

fn put_feedback(conn: &Connection, feedback: &Feedback) -> Result<(), Error> {
    let (kind, trace_id, span_id, session) = match &feedback.target {
        FeedbackTarget::Trace { trace_id } => {
            ("trace", Some(trace_id.as_bytes().to_vec()), None, None)
        }
        FeedbackTarget::Span { span_id, trace_id } => (
            "span",
            trace_id.map(|id| id.as_bytes().to_vec()),
            Some(span_id.as_bytes().to_vec()),
            None,
        ),
        FeedbackTarget::Session { session_id } => ("session", None, None, Some(session_id.clone())),
    };
    let content = &feedback.content;
    let scores =
        (!content.scores.is_empty()).then(|| encode(&content.scores, "scores")).transpose()?;
    let tags = (!content.tags.is_empty()).then(|| encode(&content.tags, "tags")).transpose()?;
    let correction_text = content
        .correction
        .as_ref()
        .map(|messages| messages.iter().map(|m| m.text_content()).collect::<Vec<_>>().join("\n"));
    conn.execute(
        "INSERT OR REPLACE INTO feedback (project, id, target_kind, trace_id, span_id, session,
             rating, scores, tags, has_correction, correction_text, comment, created_ns,
             updated_ns, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            feedback.project.as_str(),
            feedback.id,
            kind,
            trace_id,
            span_id,
            session,
            content.rating.map(|rating| i64::from(rating.value())),
            scores,
            tags,
            content.correction.is_some(),
            correction_text,
            content.comment,
            to_i64(feedback.created_ns),
            to_i64(feedback.updated_ns),
            encode(feedback, "feedback")?,
        ],
    )?;
    Ok(())
}

fn feedback_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Feedback>, Error> {
    let mut select = conn.prepare_cached(sql)?;
    let rows = select.query_map(params, |row| row.get::<_, String>(0))?;
    let mut res = Vec::new();
    for doc in rows {
        res.push(decode(&doc?, "feedback")?);
    }
    Ok(res)
}

fn list_feedback(
    conn: &Connection,
    project: &ProjectId,
    target: &FeedbackTarget,
) -> Result<Vec<Feedback>, Error> {
    let project = project.as_str();
    match target {
        FeedbackTarget::Trace { trace_id } => feedback_rows(
            conn,
            "SELECT doc FROM feedback WHERE project = ?1 AND target_kind = 'trace'
                 AND trace_id = ?2 ORDER BY created_ns, id",
            params![project, &trace_id.as_bytes()[..]],
        ),
        FeedbackTarget::Span { span_id, .. } => feedback_rows(
            conn,
            "SELECT doc FROM feedback WHERE project = ?1 AND span_id = ?2
                 ORDER BY created_ns, id",
            params![project, &span_id.as_bytes()[..]],
        ),
        FeedbackTarget::Session { session_id } => feedback_rows(
            conn,
            "SELECT doc FROM feedback WHERE project = ?1 AND session = ?2
                 ORDER BY created_ns, id",
            params![project, session_id],
        ),
    }
}

pub(crate) fn trace_feedback(
    conn: &Connection,
    project: &ProjectId,
    trace_id: TraceId,
) -> Result<Vec<Feedback>, Error> {
    feedback_rows(
        conn,
        "SELECT doc FROM feedback f WHERE f.project = ?1 AND (
             (f.target_kind = 'trace' AND f.trace_id = ?2)
             OR (f.target_kind = 'span' AND f.span_id IN (
                 SELECT span_id FROM spans WHERE project = ?1 AND trace_id = ?2)))
         ORDER BY f.created_ns, f.id",
        params![project.as_str(), &trace_id.as_bytes()[..]],
    )
}

/// Span entries whose span is not stored: looked up by span-id token in the index in
/// `search.db` (up to `indexed_upto`) and among the spans after it, not indexed yet.
fn pending_feedback(
    conn: &Connection,
    project: &ProjectId,
    created_before_ns: UnixNanos,
    limit: u32,
    indexed_upto: i64,
) -> Result<Vec<Feedback>, Error> {
    feedback_rows(
        conn,
        "SELECT doc FROM feedback f WHERE f.project = ?1 AND f.target_kind = 'span'
             AND f.created_ns < ?2
             AND NOT EXISTS (SELECT 1 FROM spans s WHERE s.id IN (
                     SELECT rowid FROM search.spans_fts
                     WHERE spans_fts MATCH loupe_span_id_query(f.span_id))
                 AND +s.project = f.project AND +s.span_id = f.span_id)
             AND NOT EXISTS (SELECT 1 FROM spans s WHERE s.id > ?4 AND +s.project = f.project
                 AND +s.span_id = f.span_id)
         ORDER BY f.created_ns, f.id LIMIT ?3",
        params![project.as_str(), to_i64(created_before_ns), limit.clamp(1, 1000), indexed_upto],
    )
}

impl SqliteStore {
    pub(crate) async fn feedback_put(&self, feedback: &Feedback) -> store::Result<()> {
        let feedback = feedback.clone();
        self.with_writer(move |conn| put_feedback(conn, &feedback)).await
    }

    /// Writes every entry in one transaction: all of them or, on an error, none.
    pub(crate) async fn feedback_put_batch(&self, entries: &[Feedback]) -> store::Result<()> {
        let entries = entries.to_vec();
        self.with_writer(move |conn| {
            let transaction = conn.transaction()?;
            for feedback in &entries {
                put_feedback(&transaction, feedback)?;
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn feedback_get(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> store::Result<Option<Feedback>> {
        let (project, id) = (project.clone(), id.to_owned());
        self.with_reader(move |conn| {
            let mut rows = feedback_rows(
                conn,
                "SELECT doc FROM feedback WHERE project = ?1 AND id = ?2",
                params![project.as_str(), id],
            )?;
            Ok(rows.pop())
        })
        .await
    }

    pub(crate) async fn feedback_list(
        &self,
        project: &ProjectId,
        target: &FeedbackTarget,
    ) -> store::Result<Vec<Feedback>> {
        let (project, target) = (project.clone(), target.clone());
        self.with_reader(move |conn| list_feedback(conn, &project, &target)).await
    }

    pub(crate) async fn feedback_of_trace(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Vec<Feedback>> {
        let project = project.clone();
        self.with_reader(move |conn| trace_feedback(conn, &project, trace_id)).await
    }

    pub(crate) async fn feedback_pending(
        &self,
        project: &ProjectId,
        created_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<Feedback>> {
        let project = project.clone();
        self.with_reader_and_state(move |conn, inner| {
            let indexed_upto = inner.indexer.shared().indexed_upto();
            pending_feedback(conn, &project, created_before_ns, limit, indexed_upto)
        })
        .await
    }

    pub(crate) async fn feedback_delete(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> store::Result<bool> {
        self.delete_one("DELETE FROM feedback WHERE project = ?1 AND id = ?2", project, id).await
    }

    pub(crate) async fn score_config_put(
        &self,
        project: &ProjectId,
        config: &ScoreConfig,
    ) -> store::Result<()> {
        let (project, config) = (project.clone(), config.clone());
        self.with_writer(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO score_configs (project, name, doc) VALUES (?1, ?2, ?3)",
                params![project.as_str(), config.name, encode(&config, "score config")?],
            )?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn score_config_list(
        &self,
        project: &ProjectId,
    ) -> store::Result<Vec<ScoreConfig>> {
        let project = project.clone();
        self.with_reader(move |conn| {
            let mut select = conn
                .prepare_cached("SELECT doc FROM score_configs WHERE project = ?1 ORDER BY name")?;
            let rows =
                select.query_map(params![project.as_str()], |row| row.get::<_, String>(0))?;
            let mut res = Vec::new();
            for doc in rows {
                res.push(decode(&doc?, "score config")?);
            }
            Ok(res)
        })
        .await
    }

    pub(crate) async fn score_config_delete(
        &self,
        project: &ProjectId,
        name: &str,
    ) -> store::Result<bool> {
        self.delete_one("DELETE FROM score_configs WHERE project = ?1 AND name = ?2", project, name)
            .await
    }

    /// Runs a `DELETE` of one record by project (`?1`) and key (`?2`); whether there was one.
    async fn delete_one(
        &self,
        delete: &'static str,
        project: &ProjectId,
        key: &str,
    ) -> store::Result<bool> {
        let (project, key) = (project.clone(), key.to_owned());
        self.with_writer(move |conn| Ok(conn.execute(delete, params![project.as_str(), key])? > 0))
            .await
    }
}

/// The rows of `feedback f` that apply to span `s`: entries on the span (by id, and by trace
/// when the entry names one) and entries on its trace when `s` is the root.
const APPLIES: &str = "f.project = s.project AND (
    (f.target_kind = 'span' AND f.span_id = s.span_id
        AND (f.trace_id IS NULL OR f.trace_id = s.trace_id))
    OR (f.target_kind = 'trace' AND f.trace_id = s.trace_id AND s.parent_span_id IS NULL))";

fn is_feedback_field(field: &Field) -> bool {
    matches!(
        field,
        Field::Rating | Field::Score(_) | Field::FeedbackTag | Field::Correction | Field::Feedback
    )
}

/// `has FIELD` for the feedback fields; `None` for other fields.
pub(crate) fn exists_sql(field: &Field, out: &mut Sql) -> Option<Result<(), Error>> {
    if !is_feedback_field(field) {
        return None;
    }
    let condition = match field {
        Field::Rating => "f.rating IS NOT NULL".to_owned(),
        Field::Score(name) => {
            out.push(&format!("EXISTS (SELECT 1 FROM feedback f WHERE {APPLIES} AND "));
            out.push("json_extract(f.scores, ");
            out.param(SqlValue::Text(score_path(name)));
            out.push(") IS NOT NULL)");
            return Some(Ok(()));
        }
        Field::FeedbackTag => "f.tags IS NOT NULL".to_owned(),
        Field::Correction => "f.has_correction = 1".to_owned(),
        _ => "1".to_owned(),
    };
    out.push(&format!("EXISTS (SELECT 1 FROM feedback f WHERE {APPLIES} AND {condition})"));
    Some(Ok(()))
}

fn score_path(name: &str) -> String {
    format!("$.\"{}\"", name.replace('"', ""))
}

/// A value as a number for `rating` and numeric or boolean scores: booleans are 0 and 1, a
/// rating of `down` is 1 and `up` 5; `None` for text that is not a number.
fn number_of(field: &Field, value: &Value) -> Result<Option<SqlValue>, Error> {
    Ok(match value {
        Value::Int(i) => Some(SqlValue::Integer(*i)),
        Value::Float(f) => Some(SqlValue::Real(*f)),
        Value::Bool(b) => Some(SqlValue::Integer(i64::from(*b))),
        Value::DurationNs(_) => {
            return Err(Error::InvalidQuery(format!("{field:?} takes a number, not a duration")));
        }
        // Text compares with a score's category (or, as `true`/`false`, a boolean's text),
        // never as a number.
        Value::Str(_) if matches!(field, Field::Score(_)) => None,
        Value::Str(text) => match text.to_ascii_lowercase().as_str() {
            "down" => Some(SqlValue::Integer(1)),
            "up" => Some(SqlValue::Integer(5)),
            other => other
                .parse::<i64>()
                .map(SqlValue::Integer)
                .or_else(|_| other.parse::<f64>().map(SqlValue::Real))
                .ok(),
        },
    })
}

/// `FIELD op value` for the feedback fields; `None` for other fields.
pub(crate) fn cmp_sql(
    field: &Field,
    op: CmpOp,
    value: &Value,
    out: &mut Sql,
) -> Option<Result<(), Error>> {
    if !is_feedback_field(field) {
        return None;
    }
    Some(feedback_cmp_sql(field, op, value, out))
}

fn feedback_cmp_sql(field: &Field, op: CmpOp, value: &Value, out: &mut Sql) -> Result<(), Error> {
    let (sql_op, negate) = op_sql(op);
    let glob = matches!(op, CmpOp::Glob | CmpOp::NotGlob);
    out.push(if negate { "(NOT EXISTS (" } else { "(EXISTS (" });
    out.push(&format!("SELECT 1 FROM feedback f WHERE {APPLIES} AND "));
    match field {
        Field::Rating => {
            let number = number_of(field, value)?.filter(|_| !glob).ok_or_else(|| {
                Error::InvalidQuery(
                    "rating takes a number from 1 to 5, up or down (= != < <= > >=)".to_owned(),
                )
            })?;
            out.push(&format!("f.rating {sql_op} "));
            out.param(number);
        }
        Field::Score(name) => {
            let path = SqlValue::Text(score_path(name));
            match number_of(field, value)?.filter(|_| !glob) {
                // Numeric and boolean scores compare as numbers; a category has no number.
                Some(number) => {
                    out.push("json_type(f.scores, ");
                    out.param(path.clone());
                    out.push(
                        ") IN ('integer', 'real', 'true', 'false') AND json_extract(f.scores, ",
                    );
                    out.param(path);
                    out.push(&format!(") {sql_op} "));
                    out.param(number);
                }
                // Booleans read as `true` / `false` here, as they are written.
                None => {
                    out.push("(CASE json_type(f.scores, ");
                    out.param(path.clone());
                    out.push(") WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE ");
                    out.push("json_extract(f.scores, ");
                    out.param(path);
                    out.push(&format!(") END) {sql_op} "));
                    push_text(out, op, value_text(value));
                }
            }
        }
        Field::FeedbackTag => {
            out.push(&format!("EXISTS (SELECT 1 FROM json_each(f.tags) WHERE value {sql_op} "));
            push_text(out, op, value_text(value));
            out.push(")");
        }
        Field::Correction | Field::Feedback => {
            let column =
                if *field == Field::Correction { "f.correction_text" } else { "f.comment" };
            out.push(&format!("{column} {sql_op} "));
            push_text(out, op, value_text(value));
        }
        other => {
            return Err(Error::InvalidQuery(format!("{other:?} is not a feedback field")));
        }
    }
    out.push("))");
    Ok(())
}

#[cfg(test)]
mod tests {
    use store::Store;

    use crate::{SqliteConfig, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn feedback_and_dataset_suite() {
        store::suite::feedback::run_all(|| async {
            // The temporary dir is kept (leaked) for the test's duration.
            let path = tempfile::tempdir().unwrap().keep();
            Box::new(SqliteStore::open(SqliteConfig::new(path)).unwrap()) as Box<dyn Store>
        })
        .await;
    }
}
