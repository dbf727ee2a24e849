//! Writes: spans (one transaction per call, duplicates skipped), the trace roll-ups maintained
//! beside them, view updates, and API keys.

use std::collections::HashMap;
use std::str::FromStr;

use model::{LlmView, ProjectId, RawSpan, SpanType, StatusCode, StoredSpan};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};
use rust_decimal::Decimal;
use store::{ApiKeyRecord, WriteStats};

use crate::search::{Entry, Handoff};
use crate::{Error, codec};

/// The `spans` columns a span is inserted with, in the order of [`span_values`]; the staged
/// spans of tail sampling have the same ones (`sampling.rs`).
macro_rules! span_columns {
    () => {
        "project, trace_id, span_id, parent_span_id, start_ns, end_ns, duration_ns, name, kind,
        service, status, span_type, operation, model, provider, input_tokens, output_tokens,
        total_tokens, cost, session, user, env, tags"
    };
}
pub(crate) use span_columns;

/// How many [`span_columns`] there are.
pub(crate) const N_SPAN_COLUMNS: usize = 23;

pub(crate) const INSERT_SPAN: &str = concat!(
    "INSERT OR IGNORE INTO spans (",
    span_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
    ?19, ?20, ?21, ?22, ?23)"
);

/// `spans` columns taken from the raw span, in the order of [`raw_values`].
pub(crate) const RAW_COLUMNS: [&str; 7] =
    ["start_ns", "end_ns", "duration_ns", "name", "kind", "service", "status"];
/// `spans` columns taken from the view, in the order of [`view_values`].
pub(crate) const VIEW_COLUMNS: [&str; 12] = [
    "span_type",
    "operation",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "session",
    "user",
    "env",
    "tags",
];

/// `SET a = ?{first}, b = ?{first + 1}, ...` for `columns`.
pub(crate) fn set_clause(columns: &[&str], first: usize) -> String {
    let sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| format!("{column} = ?{}", first + i))
        .collect();
    format!("SET {}", sets.join(", "))
}

fn int(n: Option<i64>) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(n.map_or(SqlValue::Null, SqlValue::Integer))
}

fn text(text: Option<&str>) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(text.map_or(ValueRef::Null, |t| ValueRef::Text(t.as_bytes())))
}

/// The values of [`RAW_COLUMNS`] for `raw`.
pub(crate) fn raw_values(raw: &RawSpan) -> [ToSqlOutput<'_>; 7] {
    [
        int(Some(to_i64(raw.start_time_unix_nano))),
        int(Some(to_i64(raw.end_time_unix_nano))),
        int(Some(to_i64(raw.duration_ns()))),
        text(Some(&raw.name)),
        text(Some(raw.kind.as_str())),
        text(Some(raw.service_name())),
        text(Some(raw.status.code.as_str())),
    ]
}

/// The values of [`VIEW_COLUMNS`] for `view`.
pub(crate) fn view_values(view: &LlmView) -> [ToSqlOutput<'_>; 12] {
    let tags =
        (!view.tags.is_empty()).then(|| serde_json::Value::from(view.tags.clone()).to_string());
    [
        text(Some(view.span_type.as_str())),
        text(view.operation_id.as_deref()),
        text(view.model()),
        text(view.provider.as_deref()),
        int(view.usage.input.map(to_i64)),
        int(view.usage.output.map(to_i64)),
        int(view.usage.total().map(to_i64)),
        ToSqlOutput::Owned(view.cost.map_or(SqlValue::Null, |c| SqlValue::Text(c.to_string()))),
        text(view.session_id.as_deref()),
        text(view.user_id.as_deref()),
        text(view.environment.as_deref()),
        ToSqlOutput::Owned(tags.map_or(SqlValue::Null, SqlValue::Text)),
    ]
}

/// The facts about one span that its trace's roll-up is made of.
#[derive(Debug, Clone)]
pub(crate) struct SpanFacts {
    pub(crate) is_root: bool,
    pub(crate) start_ns: i64,
    pub(crate) end_ns: i64,
    pub(crate) name: String,
    pub(crate) service: String,
    pub(crate) is_llm: bool,
    pub(crate) is_error: bool,
    pub(crate) operation: Option<String>,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
    pub(crate) cost: Option<Decimal>,
    pub(crate) session: Option<String>,
    pub(crate) user: Option<String>,
}

impl SpanFacts {
    fn of(span: &StoredSpan) -> SpanFacts {
        let raw = &span.raw;
        SpanFacts {
            is_root: raw.parent_span_id.is_none(),
            start_ns: to_i64(raw.start_time_unix_nano),
            end_ns: to_i64(raw.end_time_unix_nano),
            name: raw.name.clone(),
            service: raw.service_name().to_owned(),
            is_llm: span.view.span_type == SpanType::Llm,
            is_error: raw.status.code == StatusCode::Error,
            operation: span.view.operation_id.clone(),
            input_tokens: to_i64(span.view.usage.input.unwrap_or(0)),
            output_tokens: to_i64(span.view.usage.output.unwrap_or(0)),
            cost: span.view.cost,
            session: span.view.session_id.clone(),
            user: span.view.user_id.clone(),
        }
    }
}

impl SpanFacts {
    /// The facts of a span given as the values of [`span_columns`], with its project and
    /// trace id.
    fn of_columns(columns: &[SqlValue]) -> Result<(ProjectId, [u8; 16], SpanFacts), Error> {
        let corrupt = |what: &str| Error::Corrupt(format!("staged span: bad {what}"));
        let text = |i: usize| match &columns[i] {
            SqlValue::Text(text) => Some(text.clone()),
            _ => None,
        };
        let int = |i: usize| match columns[i] {
            SqlValue::Integer(n) => Some(n),
            _ => None,
        };
        let project =
            ProjectId::new(&text(0).ok_or_else(|| corrupt("project"))?).map_err(Error::Corrupt)?;
        let trace_id: [u8; 16] = match &columns[1] {
            SqlValue::Blob(id) => id.as_slice().try_into().map_err(|_| corrupt("trace id"))?,
            _ => return Err(corrupt("trace id")),
        };
        let facts = SpanFacts {
            is_root: matches!(columns[3], SqlValue::Null),
            start_ns: int(4).ok_or_else(|| corrupt("start"))?,
            end_ns: int(5).ok_or_else(|| corrupt("end"))?,
            name: text(7).unwrap_or_default(),
            service: text(9).unwrap_or_default(),
            is_llm: text(11).as_deref() == Some(SpanType::Llm.as_str()),
            is_error: text(10).as_deref() == Some(StatusCode::Error.as_str()),
            operation: text(12),
            input_tokens: int(15).unwrap_or(0),
            output_tokens: int(16).unwrap_or(0),
            cost: text(18).map(|cost| parse_decimal(&cost)).transpose()?,
            session: text(19),
            user: text(20),
        };
        Ok((project, trace_id, facts))
    }
}

/// A row of `traces`: the roll-up of the spans stored so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rollup {
    pub(crate) start_ns: i64,
    pub(crate) end_ns: i64,
    pub(crate) n_spans: i64,
    pub(crate) n_llm_spans: i64,
    pub(crate) n_errors: i64,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
    pub(crate) cost: Option<Decimal>,
    pub(crate) root_start_ns: Option<i64>,
    pub(crate) root_name: Option<String>,
    pub(crate) root_service: Option<String>,
    pub(crate) root_operation: Option<String>,
    pub(crate) first_start_ns: i64,
    pub(crate) first_service: Option<String>,
    pub(crate) first_operation: Option<String>,
    pub(crate) session: Option<String>,
    pub(crate) user: Option<String>,
}

impl Rollup {
    pub(crate) fn add(&mut self, facts: &SpanFacts) {
        let first = self.n_spans == 0;
        if first || facts.start_ns < self.start_ns {
            self.start_ns = facts.start_ns;
        }
        if first || facts.end_ns > self.end_ns {
            self.end_ns = facts.end_ns;
        }
        self.n_spans += 1;
        self.n_llm_spans += i64::from(facts.is_llm);
        self.n_errors += i64::from(facts.is_error);
        self.input_tokens += facts.input_tokens;
        self.output_tokens += facts.output_tokens;
        if let Some(cost) = facts.cost {
            self.cost = Some(self.cost.unwrap_or_default() + cost);
        }
        // Several roots (a broken sender): the earliest one is the trace's root.
        if facts.is_root && self.root_start_ns.is_none_or(|start| facts.start_ns < start) {
            self.root_start_ns = Some(facts.start_ns);
            self.root_name = Some(facts.name.clone());
            self.root_service = Some(facts.service.clone());
            self.root_operation = Some(facts.operation.clone().unwrap_or(facts.name.clone()));
        }
        if first || facts.start_ns < self.first_start_ns {
            self.first_start_ns = facts.start_ns;
            self.first_service = Some(facts.service.clone());
        }
        if self.first_operation.is_none() {
            self.first_operation.clone_from(&facts.operation);
        }
        if self.session.is_none() {
            self.session.clone_from(&facts.session);
        }
        if self.user.is_none() {
            self.user.clone_from(&facts.user);
        }
    }
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Writes spans in one transaction; returns the stats, the highest rowid inserted (0 when
/// none was) and the inserted spans' searchable text for the indexer.
/// `records`: each span's record encoded ahead ([`codec::encode`]), else encoded here.
pub(crate) fn write_spans(
    conn: &mut Connection,
    spans: &[StoredSpan],
    records: Option<&[Vec<u8>]>,
) -> Result<(WriteStats, i64, Handoff), Error> {
    let tx = conn.transaction()?;
    let res = match records {
        Some(records) => {
            check_records(spans, records)?;
            let records = records.iter().map(|r| Some(r.as_slice()));
            write_spans_tx(&tx, spans.iter().zip(records))?
        }
        None => write_spans_tx(&tx, spans.iter().zip(std::iter::repeat(None)))?,
    };
    tx.commit()?;
    Ok(res)
}

/// Records encoded ahead must match their spans one for one.
pub(crate) fn check_records(spans: &[StoredSpan], records: &[Vec<u8>]) -> Result<(), Error> {
    match spans.len() == records.len() {
        true => Ok(()),
        false => Err(Error::Internal(format!(
            "{} records encoded ahead for {} spans",
            records.len(),
            spans.len()
        ))),
    }
}

/// [`write_spans`] inside a transaction the caller commits; each span with its record when
/// encoded ahead. The handoff is for [`crate::search::Shared::written`] once committed.
pub(crate) fn write_spans_tx<'a>(
    tx: &Transaction<'_>,
    spans: impl Iterator<Item = (&'a StoredSpan, Option<&'a [u8]>)>,
) -> Result<(WriteStats, i64, Handoff), Error> {
    let mut res = WriteStats::default();
    let mut max_rowid = 0;
    let mut handoff = Handoff::default();
    // New spans per trace, in arrival order.
    let mut touched: HashMap<(ProjectId, [u8; 16]), Vec<SpanFacts>> = HashMap::new();
    {
        let mut insert = tx.prepare_cached(INSERT_SPAN)?;
        let mut insert_doc =
            tx.prepare_cached("INSERT INTO span_docs (id, doc) VALUES (?1, ?2)")?;
        let mut encoder = codec::Encoder::default();
        for (span, record) in spans {
            if insert_span(&mut insert, span)? {
                res.n_written += 1;
                let rowid = tx.last_insert_rowid();
                let doc = match record {
                    Some(record) => record,
                    None => encoder.encode(&span.raw, &span.view)?,
                };
                insert_doc.execute(params![rowid, doc])?;
                max_rowid = max_rowid.max(rowid);
                handoff.push(index_entry(rowid, span));
                touched
                    .entry((span.project.clone(), *span.raw.trace_id.as_bytes()))
                    .or_default()
                    .push(SpanFacts::of(span));
            } else {
                res.n_duplicates += 1;
            }
        }
    }
    add_to_rollups(tx, touched)?;
    Ok((res, max_rowid, handoff))
}

/// The index entry (`search.db`) of `span`, stored with `rowid`.
pub(crate) fn index_entry(rowid: i64, span: &StoredSpan) -> Entry {
    Entry {
        id: rowid,
        span_id: *span.raw.span_id.as_bytes(),
        user: span.view.user_id.clone(),
        text: span.view.searchable_text(),
    }
}

/// Inserts one span; `false` when it was already stored.
fn insert_span(
    insert: &mut rusqlite::CachedStatement<'_>,
    span: &StoredSpan,
) -> Result<bool, Error> {
    let n = insert.execute(params_from_iter(span_values(span)))?;
    Ok(n == 1)
}

/// The values of [`span_columns`] for `span`.
pub(crate) fn span_values(span: &StoredSpan) -> impl Iterator<Item = ToSqlOutput<'_>> {
    let raw = &span.raw;
    let ids: [ToSqlOutput<'_>; 4] = [
        text(Some(span.project.as_str())),
        ToSqlOutput::Borrowed(ValueRef::Blob(&raw.trace_id.as_bytes()[..])),
        ToSqlOutput::Borrowed(ValueRef::Blob(&raw.span_id.as_bytes()[..])),
        ToSqlOutput::Borrowed(
            raw.parent_span_id.as_ref().map_or(ValueRef::Null, |id| ValueRef::Blob(id.as_bytes())),
        ),
    ];
    ids.into_iter().chain(raw_values(raw)).chain(view_values(&span.view))
}

/// Inserts spans given as the values of [`span_columns`] followed by the record (rows staged
/// by tail sampling), and adds them to their traces' roll-ups, as [`write_spans_tx`] does for
/// spans. Returns the highest rowid inserted (0 when none was).
pub(crate) fn insert_span_rows(tx: &Transaction<'_>, rows: &[Vec<SqlValue>]) -> Result<i64, Error> {
    let mut max_rowid = 0;
    let mut touched: HashMap<(ProjectId, [u8; 16]), Vec<SpanFacts>> = HashMap::new();
    {
        let mut insert = tx.prepare_cached(INSERT_SPAN)?;
        let mut insert_doc =
            tx.prepare_cached("INSERT INTO span_docs (id, doc) VALUES (?1, ?2)")?;
        for row in rows {
            let (columns, doc) = row.split_at(N_SPAN_COLUMNS);
            if insert.execute(params_from_iter(columns))? == 0 {
                continue;
            }
            let rowid = tx.last_insert_rowid();
            insert_doc.execute(params![rowid, doc[0]])?;
            max_rowid = max_rowid.max(rowid);
            let (project, trace_id, facts) = SpanFacts::of_columns(columns)?;
            touched.entry((project, trace_id)).or_default().push(facts);
        }
    }
    add_to_rollups(tx, touched)?;
    Ok(max_rowid)
}

fn add_to_rollups(
    tx: &Transaction<'_>,
    touched: HashMap<(ProjectId, [u8; 16]), Vec<SpanFacts>>,
) -> Result<(), Error> {
    for ((project, trace_id), facts) in touched {
        let mut rollup = load_rollup(tx, &project, &trace_id)?.unwrap_or_default();
        for fact in &facts {
            rollup.add(fact);
        }
        save_rollup(tx, &project, &trace_id, &rollup)?;
    }
    Ok(())
}

fn load_rollup(
    tx: &Transaction<'_>,
    project: &ProjectId,
    trace_id: &[u8],
) -> Result<Option<Rollup>, Error> {
    let mut select = tx.prepare_cached(
        "SELECT start_ns, end_ns, n_spans, n_llm_spans, n_errors, input_tokens, output_tokens,
            cost, root_start_ns, root_name, root_service, root_operation, first_start_ns,
            first_service, first_operation, session, user
         FROM traces WHERE project = ?1 AND trace_id = ?2",
    )?;
    let row = select
        .query_row(params![project.as_str(), trace_id], |row| {
            Ok((
                Rollup {
                    start_ns: row.get(0)?,
                    end_ns: row.get(1)?,
                    n_spans: row.get(2)?,
                    n_llm_spans: row.get(3)?,
                    n_errors: row.get(4)?,
                    input_tokens: row.get(5)?,
                    output_tokens: row.get(6)?,
                    cost: None,
                    root_start_ns: row.get(8)?,
                    root_name: row.get(9)?,
                    root_service: row.get(10)?,
                    root_operation: row.get(11)?,
                    first_start_ns: row.get(12)?,
                    first_service: row.get(13)?,
                    first_operation: row.get(14)?,
                    session: row.get(15)?,
                    user: row.get(16)?,
                },
                row.get::<_, Option<String>>(7)?,
            ))
        })
        .optional()?;
    let Some((mut rollup, cost)) = row else { return Ok(None) };
    rollup.cost = cost.map(|cost| parse_decimal(&cost)).transpose()?;
    Ok(Some(rollup))
}

pub(crate) fn parse_decimal(text: &str) -> Result<Decimal, Error> {
    Decimal::from_str(text).map_err(|e| Error::Corrupt(format!("bad stored cost {text:?}: {e}")))
}

fn save_rollup(
    tx: &Transaction<'_>,
    project: &ProjectId,
    trace_id: &[u8],
    rollup: &Rollup,
) -> Result<(), Error> {
    let mut upsert = tx.prepare_cached(
        "INSERT OR REPLACE INTO traces (project, trace_id, start_ns, end_ns, n_spans,
            n_llm_spans, n_errors, input_tokens, output_tokens, cost, root_start_ns, root_name,
            root_service, root_operation, first_start_ns, first_service, first_operation,
            session, user)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19)",
    )?;
    upsert.execute(params![
        project.as_str(),
        trace_id,
        rollup.start_ns,
        rollup.end_ns,
        rollup.n_spans,
        rollup.n_llm_spans,
        rollup.n_errors,
        rollup.input_tokens,
        rollup.output_tokens,
        rollup.cost.map(|cost| cost.to_string()),
        rollup.root_start_ns,
        rollup.root_name,
        rollup.root_service,
        rollup.root_operation,
        rollup.first_start_ns,
        rollup.first_service,
        rollup.first_operation,
        rollup.session,
        rollup.user,
    ])?;
    Ok(())
}

/// Replaces views (and the columns derived from them), then rebuilds the roll-ups of the
/// traces concerned from all their spans. Returns the spans updated with their new searchable
/// text and user, for the indexes in `search.db`.
pub(crate) fn update_views(
    conn: &mut Connection,
    spans: &[StoredSpan],
) -> Result<Vec<Entry>, Error> {
    let tx = conn.transaction()?;
    let mut texts = Vec::new();
    let mut touched: HashMap<(ProjectId, [u8; 16]), ()> = HashMap::new();
    {
        let mut select = tx.prepare_cached(
            "SELECT s.id, d.doc FROM spans s JOIN span_docs d ON d.id = s.id
             WHERE s.project = ?1 AND s.trace_id = ?2 AND s.span_id = ?3",
        )?;
        let mut update = tx.prepare_cached(&format!(
            "UPDATE spans {} WHERE id = ?1",
            set_clause(&VIEW_COLUMNS, 2)
        ))?;
        let mut update_doc = tx.prepare_cached("UPDATE span_docs SET doc = ?2 WHERE id = ?1")?;
        for span in spans {
            let raw = &span.raw;
            let found: Option<(i64, Vec<u8>)> = select
                .query_row(
                    params![
                        span.project.as_str(),
                        &raw.trace_id.as_bytes()[..],
                        &raw.span_id.as_bytes()[..]
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((id, old_doc)) = found else { continue };
            // The stored raw span is kept; only the view changes.
            let stored = codec::decode(&old_doc)?;
            let view = &span.view;
            let id_value = int(Some(id));
            update.execute(params_from_iter(std::iter::once(id_value).chain(view_values(view))))?;
            update_doc.execute(params![id, codec::encode(&stored.raw, view)?])?;
            texts.push(index_entry(id, span));
            touched.insert((span.project.clone(), *raw.trace_id.as_bytes()), ());
        }
    }
    for (project, trace_id) in touched.into_keys() {
        rebuild_rollup(&tx, &project, &trace_id)?;
    }
    tx.commit()?;
    Ok(texts)
}

/// Recomputes a trace's roll-up from all its stored spans.
pub(crate) fn rebuild_rollup(
    tx: &Transaction<'_>,
    project: &ProjectId,
    trace_id: &[u8],
) -> Result<(), Error> {
    let mut select = tx.prepare_cached(
        "SELECT parent_span_id IS NULL, start_ns, end_ns, name, service, span_type, status,
            operation, input_tokens, output_tokens, cost, session, user
         FROM spans WHERE project = ?1 AND trace_id = ?2 ORDER BY id",
    )?;
    let rows = select.query_map(params![project.as_str(), trace_id], |row| {
        Ok((
            SpanFacts {
                is_root: row.get(0)?,
                start_ns: row.get(1)?,
                end_ns: row.get(2)?,
                name: row.get(3)?,
                service: row.get(4)?,
                is_llm: row.get::<_, String>(5)? == SpanType::Llm.as_str(),
                is_error: row.get::<_, String>(6)? == StatusCode::Error.as_str(),
                operation: row.get(7)?,
                input_tokens: row.get::<_, Option<i64>>(8)?.unwrap_or(0),
                output_tokens: row.get::<_, Option<i64>>(9)?.unwrap_or(0),
                cost: None,
                session: row.get(11)?,
                user: row.get(12)?,
            },
            row.get::<_, Option<String>>(10)?,
        ))
    })?;
    let mut rollup = Rollup::default();
    for row in rows {
        let (mut facts, cost) = row?;
        facts.cost = cost.map(|cost| parse_decimal(&cost)).transpose()?;
        rollup.add(&facts);
    }
    if rollup.n_spans > 0 {
        save_rollup(tx, project, trace_id, &rollup)?;
    }
    Ok(())
}

pub(crate) fn put_api_key(conn: &mut Connection, record: &ApiKeyRecord) -> Result<(), Error> {
    let labels = serde_json::to_string(&record.labels)
        .map_err(|e| Error::Corrupt(format!("cannot encode api key labels: {e}")))?;
    conn.execute(
        "INSERT OR REPLACE INTO api_keys (id, project, name, key_hash, prefix, created_ns, labels)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            record.id,
            record.project.as_str(),
            record.name,
            record.key_hash,
            record.prefix,
            to_i64(record.created_ns),
            labels,
        ],
    )?;
    Ok(())
}

pub(crate) fn delete_api_key(
    conn: &mut Connection,
    project: &ProjectId,
    key_id: &str,
) -> Result<bool, Error> {
    let n = conn.execute(
        "DELETE FROM api_keys WHERE project = ?1 AND id = ?2",
        params![project.as_str(), key_id],
    )?;
    Ok(n > 0)
}
