//! Reads: traces by id, span and trace search with keyset pagination, sessions, facets,
//! aggregates, the maintenance scan and API keys.

use std::collections::HashMap;

use model::{ProjectId, StoredSpan, TraceId};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use rust_decimal::Decimal;
use store::{
    AggregateQuery, AggregateRow, ApiKeyRecord, Cursor, FacetQuery, Facets, GroupBy, Metric, Page,
    SpanQuery, TimeRange, TraceQuery, TraceSummary,
};

use crate::filter::{DOC_OF_SPAN, SpanKey, Sql, expr_sql, required_key, requires_error};
use crate::write::{parse_decimal, to_i64};
use crate::{Error, codec, search};

const MAX_LIMIT: u32 = 1000;
const DEFAULT_LIMIT: u32 = 50;

fn page_size(limit: u32) -> u32 {
    if limit == 0 { DEFAULT_LIMIT } else { limit.min(MAX_LIMIT) }
}

/// Decodes a `doc` and fills in the trace's operation when the span has none of its own.
fn stored_span(
    project: &str,
    doc: &[u8],
    root_operation: Option<String>,
) -> Result<StoredSpan, Error> {
    let mut doc = codec::decode(doc)?;
    if doc.view.operation_id.is_none() {
        doc.view.operation_id = root_operation;
    }
    let project = ProjectId::new(project).map_err(Error::Corrupt)?;
    Ok(StoredSpan { project, raw: doc.raw, view: doc.view })
}

pub(crate) fn get_trace(
    conn: &Connection,
    project: &ProjectId,
    trace_id: TraceId,
) -> Result<Vec<StoredSpan>, Error> {
    let root_operation: Option<String> = conn
        .prepare_cached("SELECT root_operation FROM traces WHERE project = ?1 AND trace_id = ?2")?
        .query_row(params![project.as_str(), &trace_id.as_bytes()[..]], |row| row.get(0))
        .optional()?
        .flatten();
    let mut select = conn.prepare_cached(
        // Sorted here rather than in SQL, so the planner cannot prefer the start-time index.
        "SELECT s.start_ns, s.id, (SELECT doc FROM span_docs WHERE id = s.id)
         FROM spans s WHERE s.project = ?1 AND s.trace_id = ?2",
    )?;
    let rows = select.query_map(params![project.as_str(), &trace_id.as_bytes()[..]], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, Vec<u8>>(2)?))
    })?;
    let mut docs = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    docs.sort_by_key(|(start, id, _)| (*start, *id));
    let mut res = Vec::with_capacity(docs.len());
    for (_, _, doc) in docs {
        res.push(stored_span(project.as_str(), &doc, root_operation.clone())?);
    }
    Ok(res)
}

fn time_sql(time: &TimeRange, column: &str, sql: &mut Sql) {
    if let Some(from) = time.from_ns {
        sql.push(&format!(" AND {column} >= "));
        sql.param(SqlValue::Integer(to_i64(from)));
    }
    if let Some(to) = time.to_ns {
        sql.push(&format!(" AND {column} < "));
        sql.param(SqlValue::Integer(to_i64(to)));
    }
}

fn bad_cursor(cursor: &Cursor) -> Error {
    Error::InvalidQuery(format!("bad cursor {:?}", cursor.0))
}

/// `START.ID`: the position of the last item of the previous page.
fn parse_span_cursor(cursor: &Cursor) -> Result<(i64, i64), Error> {
    let (start, id) = cursor.0.split_once('.').ok_or_else(|| bad_cursor(cursor))?;
    Ok((
        start.parse().map_err(|_| bad_cursor(cursor))?,
        id.parse().map_err(|_| bad_cursor(cursor))?,
    ))
}

/// `START.TRACEHEX`.
fn parse_trace_cursor(cursor: &Cursor) -> Result<(i64, Vec<u8>), Error> {
    let (start, trace) = cursor.0.split_once('.').ok_or_else(|| bad_cursor(cursor))?;
    let trace_id = TraceId::from_hex(trace).map_err(|_| bad_cursor(cursor))?;
    Ok((start.parse().map_err(|_| bad_cursor(cursor))?, trace_id.as_bytes().to_vec()))
}

/// Past this many spans with a user, the user's spans are not fetched from the index and
/// sorted: reading spans newest first finds enough of them sooner.
pub(crate) const RARE_KEY_SPANS: i64 = 10_000;

/// The key the filter requires (see [`required_key`]) if the index finds its spans faster than
/// reading spans newest first: a span id always, a user with fewer than [`RARE_KEY_SPANS`]
/// indexed spans (counted in the index, which stops counting there).
fn rare_key(conn: &Connection, filter: Option<&store::Expr>) -> Result<Option<SpanKey>, Error> {
    let Some(key) = filter.and_then(required_key) else { return Ok(None) };
    let SpanKey::User(user) = &key else { return Ok(Some(key)) };
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM (
             SELECT rowid FROM search.spans_fts WHERE spans_fts MATCH ?1 LIMIT ?2)",
        params![search::token_query(&search::user_token(user)), RARE_KEY_SPANS],
        |row| row.get(0),
    )?;
    Ok((n < RARE_KEY_SPANS).then_some(key))
}

/// A query for `column` (`id` or `trace_id`) of the spans of `project` that may have `key`:
/// those the index in `search.db` has the key's token for (up to `upto`, its `indexed_upto`)
/// and those after `upto` with the key, not indexed yet (a short range of rowids). Read in one
/// statement, whose snapshot of `search.db` is at least as new as `upto`, so no span is missed.
/// The caller's filter keeps the comparison itself, so text that forges a token finds nothing.
pub(crate) fn key_spans(
    out: &mut Sql,
    column: &str,
    project: &ProjectId,
    key: &SpanKey,
    upto: i64,
) {
    let (token, key_column, value) = match key {
        SpanKey::SpanId(id) => (search::span_id_token(id), "span_id", SqlValue::Blob(id.to_vec())),
        SpanKey::User(user) => (search::user_token(user), "user", SqlValue::Text(user.clone())),
    };
    let project = SqlValue::Text(project.as_str().to_owned());
    out.push(&format!(
        "SELECT {column} FROM spans WHERE id IN (
             SELECT rowid FROM search.spans_fts WHERE spans_fts MATCH "
    ));
    out.param(SqlValue::Text(search::token_query(&token)));
    // `+` keeps the planner on the rowids: with an index on `project` first it would rather
    // walk every span of the project.
    out.push(") AND +project = ");
    out.param(project.clone());
    out.push(&format!(" UNION ALL SELECT {column} FROM spans WHERE id > "));
    out.param(SqlValue::Integer(upto));
    out.push(" AND +project = ");
    out.param(project);
    out.push(&format!(" AND +{key_column} = "));
    out.param(value);
}

const SPANS_FROM: &str =
    "FROM spans s LEFT JOIN traces t ON t.project = s.project AND t.trace_id = s.trace_id";

/// `indexed_upto`: how far the index in `search.db` goes (see [`key_spans`]).
pub(crate) fn search_spans(
    conn: &Connection,
    project: &ProjectId,
    query: &SpanQuery,
    indexed_upto: i64,
) -> Result<Page<StoredSpan>, Error> {
    let limit = page_size(query.limit);
    let key = rare_key(conn, query.filter.as_ref())?;
    let mut filter = Sql::default();
    // With a required key, its few spans come from the index by rowid, then are sorted: the
    // `+` and ordering by an expression stop the planner from walking every span by time.
    let (project_term, order) = match key {
        Some(_) => ("+s.project = ", "s.start_ns + 0"),
        None => ("s.project = ", "s.start_ns"),
    };
    filter.push(project_term);
    filter.param(SqlValue::Text(project.as_str().to_owned()));
    time_sql(&query.time, "s.start_ns", &mut filter);
    if let Some(expr) = &query.filter {
        if let Some(key) = &key {
            filter.push(" AND s.id IN (");
            key_spans(&mut filter, "id", project, key, indexed_upto);
            filter.push(")");
        }
        filter.push(" AND ");
        expr_sql(expr, &mut filter)?;
    }
    let total = if query.with_total {
        let sql = format!("SELECT COUNT(*) {SPANS_FROM} WHERE {}", filter.text);
        Some(conn.query_row(&sql, params_from_iter(&filter.params), |row| row.get::<_, i64>(0))?
            as u64)
    } else {
        None
    };
    let mut sql = filter;
    if let Some(cursor) = &query.cursor {
        let (start, id) = parse_span_cursor(cursor)?;
        sql.push(" AND (s.start_ns < ");
        sql.param(SqlValue::Integer(start));
        sql.push(" OR (s.start_ns = ");
        sql.param(SqlValue::Integer(start));
        sql.push(" AND s.id < ");
        sql.param(SqlValue::Integer(id));
        sql.push("))");
    }
    let text = format!(
        "SELECT s.id, s.start_ns, {DOC_OF_SPAN}, t.root_operation {SPANS_FROM} WHERE {}
         ORDER BY {order} DESC, s.id DESC LIMIT {}",
        sql.text,
        limit + 1
    );
    let mut select = conn.prepare_cached(&text)?;
    let rows = select.query_map(params_from_iter(&sql.params), |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, Vec<u8>>(2)?, row.get(3)?))
    })?;
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for row in rows {
        let (id, start, doc, root_operation) = row?;
        if items.len() == limit as usize {
            more = true;
            break;
        }
        items.push(stored_span(project.as_str(), &doc, root_operation)?);
        last = Some((start, id));
    }
    let next_cursor = match (more, last) {
        (true, Some((start, id))) => Some(Cursor(format!("{start}.{id}"))),
        _ => None,
    };
    Ok(Page { items, next_cursor, total })
}

const TRACE_COLUMNS: &str = "t.project, t.trace_id, t.root_name,
    COALESCE(t.root_service, t.first_service), COALESCE(t.root_operation, t.first_operation),
    t.start_ns, t.end_ns, t.n_spans, t.n_llm_spans, t.n_errors, t.input_tokens, t.output_tokens,
    t.cost, t.session, t.user";

fn trace_summary(row: &Row<'_>) -> rusqlite::Result<(TraceSummary, Option<String>, String)> {
    let trace_id: Vec<u8> = row.get(1)?;
    let project: String = row.get(0)?;
    let trace_id = TraceId::from_bytes(&trace_id).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    let summary = TraceSummary {
        project: ProjectId::default_project(),
        trace_id,
        root_name: row.get(2)?,
        service: row.get(3)?,
        operation_id: row.get(4)?,
        start_ns: count(5)?,
        end_ns: count(6)?,
        n_spans: count(7)?,
        n_llm_spans: count(8)?,
        n_errors: count(9)?,
        input_tokens: count(10)?,
        output_tokens: count(11)?,
        cost: None,
        session_id: row.get(13)?,
        user_id: row.get(14)?,
    };
    Ok((summary, row.get(12)?, project))
}

fn finish_summary(
    (mut summary, cost, project): (TraceSummary, Option<String>, String),
) -> Result<TraceSummary, Error> {
    summary.project = ProjectId::new(&project).map_err(Error::Corrupt)?;
    summary.cost = cost.map(|cost| parse_decimal(&cost)).transpose()?;
    Ok(summary)
}

/// `indexed_upto`: how far the index in `search.db` goes (see [`key_spans`]).
pub(crate) fn search_traces(
    conn: &Connection,
    project: &ProjectId,
    query: &TraceQuery,
    indexed_upto: i64,
) -> Result<Page<TraceSummary>, Error> {
    let limit = page_size(query.limit);
    let key = rare_key(conn, query.filter.as_ref())?;
    let mut filter = Sql::default();
    filter.push("t.project = ");
    filter.param(SqlValue::Text(project.as_str().to_owned()));
    time_sql(&query.time, "t.start_ns", &mut filter);
    if let Some(expr) = &query.filter {
        if let Some(key) = &key {
            // The key's traces from the index first; the EXISTS below keeps the semantics.
            filter.push(" AND t.trace_id IN (");
            key_spans(&mut filter, "trace_id", project, key, indexed_upto);
            filter.push(")");
        }
        if requires_error(expr) {
            filter.push(" AND t.n_errors > 0");
        }
        filter.push(
            " AND EXISTS (SELECT 1 FROM spans s WHERE s.project = t.project
                AND s.trace_id = t.trace_id AND ",
        );
        expr_sql(expr, &mut filter)?;
        filter.push(")");
    }
    let total = if query.with_total {
        let sql = format!("SELECT COUNT(*) FROM traces t WHERE {}", filter.text);
        Some(conn.query_row(&sql, params_from_iter(&filter.params), |row| row.get::<_, i64>(0))?
            as u64)
    } else {
        None
    };
    let mut sql = filter;
    if let Some(cursor) = &query.cursor {
        let (start, trace_id) = parse_trace_cursor(cursor)?;
        sql.push(" AND (t.start_ns < ");
        sql.param(SqlValue::Integer(start));
        sql.push(" OR (t.start_ns = ");
        sql.param(SqlValue::Integer(start));
        sql.push(" AND t.trace_id < ");
        sql.param(SqlValue::Blob(trace_id));
        sql.push("))");
    }
    // With a required key, its few traces come from the index by primary key, then are sorted;
    // ordering by an expression stops the planner from walking every trace by time.
    let order = if key.is_some() { "t.start_ns + 0" } else { "t.start_ns" };
    let text = format!(
        "SELECT {TRACE_COLUMNS} FROM traces t WHERE {}
         ORDER BY {order} DESC, t.trace_id DESC LIMIT {}",
        sql.text,
        limit + 1
    );
    let mut select = conn.prepare_cached(&text)?;
    let rows = select.query_map(params_from_iter(&sql.params), trace_summary)?;
    let mut items = Vec::new();
    let mut more = false;
    for row in rows {
        if items.len() == limit as usize {
            more = true;
            break;
        }
        items.push(finish_summary(row?)?);
    }
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(Cursor(format!("{}.{}", to_i64(last.start_ns), last.trace_id))),
        _ => None,
    };
    Ok(Page { items, next_cursor, total })
}

pub(crate) fn session_traces(
    conn: &Connection,
    project: &ProjectId,
    session_id: &str,
    limit: u32,
) -> Result<Vec<TraceSummary>, Error> {
    let text = format!(
        "SELECT {TRACE_COLUMNS} FROM traces t WHERE t.project = ?1 AND t.session = ?2
         ORDER BY t.start_ns, t.trace_id LIMIT ?3"
    );
    let mut select = conn.prepare_cached(&text)?;
    let rows =
        select.query_map(params![project.as_str(), session_id, page_size(limit)], trace_summary)?;
    rows.map(|row| finish_summary(row?)).collect()
}

pub(crate) fn facets(
    conn: &Connection,
    project: &ProjectId,
    query: &FacetQuery,
) -> Result<Facets, Error> {
    let limit = page_size(query.limit);
    let facet = |column: &str, from: &str| -> Result<Vec<(String, u64)>, Error> {
        let mut sql = Sql::default();
        sql.push("s.project = ");
        sql.param(SqlValue::Text(project.as_str().to_owned()));
        time_sql(&query.time, "s.start_ns", &mut sql);
        let text = format!(
            "SELECT {column} AS v, COUNT(*) AS n {from} WHERE {} AND v IS NOT NULL AND v != ''
             GROUP BY v ORDER BY n DESC, v LIMIT {limit}",
            sql.text
        );
        let mut select = conn.prepare_cached(&text)?;
        let rows = select.query_map(params_from_iter(&sql.params), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    };
    Ok(Facets {
        services: facet("s.service", "FROM spans s")?,
        span_names: facet("s.name", "FROM spans s")?,
        models: facet("s.model", "FROM spans s")?,
        providers: facet("s.provider", "FROM spans s")?,
        operations: facet("COALESCE(s.operation, t.root_operation)", SPANS_FROM)?,
        span_types: facet("s.span_type", "FROM spans s")?,
        environments: facet("s.env", "FROM spans s")?,
        tags: facet("j.value", "FROM spans s, json_each(s.tags) j")?,
    })
}

fn group_column(group: &GroupBy, sql: &mut Sql) {
    match group {
        GroupBy::Name => sql.push("s.name"),
        GroupBy::SpanType => sql.push("s.span_type"),
        GroupBy::Service => sql.push("s.service"),
        GroupBy::Operation => sql.push("COALESCE(s.operation, t.root_operation)"),
        GroupBy::Model => sql.push("s.model"),
        GroupBy::Provider => sql.push("s.provider"),
        GroupBy::User => sql.push("s.user"),
        GroupBy::Attr(key) => {
            sql.push(&format!("loupe_attr({DOC_OF_SPAN}, 0, "));
            sql.param(SqlValue::Text(key.clone()));
            sql.push(")");
        }
    }
}

#[derive(Default)]
struct Group {
    n: u64,
    errors: u64,
    durations: Vec<i64>,
    input_tokens: i64,
    output_tokens: i64,
    cost: Option<Decimal>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<Decimal> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(Decimal::from(sorted[rank.clamp(1, sorted.len()) - 1]))
}

pub(crate) fn aggregate(
    conn: &Connection,
    project: &ProjectId,
    query: &AggregateQuery,
) -> Result<Vec<AggregateRow>, Error> {
    let mut sql = Sql::default();
    sql.push("SELECT s.start_ns, s.duration_ns, s.status, s.input_tokens, s.output_tokens, s.cost");
    for group in &query.group_by {
        sql.push(", ");
        group_column(group, &mut sql);
    }
    sql.push(&format!(" {SPANS_FROM} WHERE s.project = "));
    sql.param(SqlValue::Text(project.as_str().to_owned()));
    time_sql(&query.time, "s.start_ns", &mut sql);
    if let Some(expr) = &query.filter {
        sql.push(" AND ");
        expr_sql(expr, &mut sql)?;
    }
    let bucket_ns = query.bucket_ns.filter(|&ns| ns > 0).map(to_i64);
    type Key = (Vec<Option<String>>, Option<i64>);
    let mut groups: HashMap<Key, Group> = HashMap::new();
    let mut select = conn.prepare(&sql.text)?;
    let mut rows = select.query(params_from_iter(&sql.params))?;
    while let Some(row) = rows.next()? {
        let start: i64 = row.get(0)?;
        let mut key_values = Vec::with_capacity(query.group_by.len());
        for i in 0..query.group_by.len() {
            key_values.push(row.get::<_, Option<String>>(6 + i)?);
        }
        let bucket = bucket_ns.map(|width| start - start.rem_euclid(width));
        let group = groups.entry((key_values, bucket)).or_default();
        group.n += 1;
        group.errors += u64::from(row.get::<_, String>(2)? == "error");
        group.durations.push(row.get(1)?);
        group.input_tokens += row.get::<_, Option<i64>>(3)?.unwrap_or(0);
        group.output_tokens += row.get::<_, Option<i64>>(4)?.unwrap_or(0);
        if let Some(cost) = row.get::<_, Option<String>>(5)? {
            group.cost = Some(group.cost.unwrap_or_default() + parse_decimal(&cost)?);
        }
    }
    // The largest groups (by span count over all buckets) are kept.
    let mut group_sizes: HashMap<Vec<Option<String>>, u64> = HashMap::new();
    for ((key, _), group) in &groups {
        *group_sizes.entry(key.clone()).or_default() += group.n;
    }
    let mut ranked: Vec<(Vec<Option<String>>, u64)> = group_sizes.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(page_size(query.limit) as usize);
    let rank: HashMap<Vec<Option<String>>, usize> =
        ranked.into_iter().enumerate().map(|(i, (key, _))| (key, i)).collect();
    let mut res: Vec<(usize, AggregateRow)> = Vec::new();
    for ((key, bucket), mut group) in groups {
        let Some(&position) = rank.get(&key) else { continue };
        group.durations.sort_unstable();
        let values = query
            .metrics
            .iter()
            .map(|metric| match metric {
                Metric::Count => Some(Decimal::from(group.n)),
                Metric::Errors => Some(Decimal::from(group.errors)),
                Metric::P50 => percentile(&group.durations, 0.50),
                Metric::P95 => percentile(&group.durations, 0.95),
                Metric::P99 => percentile(&group.durations, 0.99),
                Metric::InputTokens => Some(Decimal::from(group.input_tokens)),
                Metric::OutputTokens => Some(Decimal::from(group.output_tokens)),
                Metric::Cost => group.cost,
            })
            .collect();
        let row =
            AggregateRow { group: key, bucket_start_ns: bucket.map(|b| b.max(0) as u64), values };
        res.push((position, row));
    }
    res.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.bucket_start_ns.cmp(&b.1.bucket_start_ns)));
    Ok(res.into_iter().map(|(_, row)| row).collect())
}

pub(crate) fn scan_spans(
    conn: &Connection,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Page<StoredSpan>, Error> {
    let limit = page_size(limit);
    let after_id: i64 = match after {
        Some(cursor) => cursor.0.parse().map_err(|_| bad_cursor(cursor))?,
        None => 0,
    };
    let mut select = conn.prepare_cached(&format!(
        "SELECT s.id, s.project, {DOC_OF_SPAN} FROM spans s WHERE s.id > ?1 ORDER BY s.id
             LIMIT ?2"
    ))?;
    let rows = select.query_map(params![after_id, limit + 1], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, Vec<u8>>(2)?))
    })?;
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for row in rows {
        let (id, project, doc) = row?;
        if items.len() == limit as usize {
            more = true;
            break;
        }
        // Views are returned as stored (no operation filled in from the root), so that a
        // rebuilt view written back does not freeze the root's name into it.
        items.push(stored_span(&project, &doc, None)?);
        last = Some(id);
    }
    let next_cursor = match (more, last) {
        (true, Some(id)) => Some(Cursor(id.to_string())),
        _ => None,
    };
    Ok(Page { items, next_cursor, total: None })
}

fn api_key(row: &Row<'_>) -> rusqlite::Result<(ApiKeyRecord, String, String)> {
    let created: i64 = row.get(5)?;
    let record = ApiKeyRecord {
        id: row.get(0)?,
        project: ProjectId::default_project(),
        name: row.get(2)?,
        key_hash: row.get(3)?,
        prefix: row.get(4)?,
        created_ns: created.max(0) as u64,
        labels: Default::default(),
    };
    Ok((record, row.get(1)?, row.get(6)?))
}

fn finish_api_key(
    (mut record, project, labels): (ApiKeyRecord, String, String),
) -> Result<ApiKeyRecord, Error> {
    record.project = ProjectId::new(&project).map_err(Error::Corrupt)?;
    record.labels = serde_json::from_str(&labels)
        .map_err(|e| Error::Corrupt(format!("bad api key labels: {e}")))?;
    Ok(record)
}

const API_KEY_COLUMNS: &str = "id, project, name, key_hash, prefix, created_ns, labels";

pub(crate) fn find_api_key(
    conn: &Connection,
    key_hash: &str,
) -> Result<Option<ApiKeyRecord>, Error> {
    let row = conn
        .prepare_cached(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1"))?
        .query_row([key_hash], api_key)
        .optional()?;
    row.map(finish_api_key).transpose()
}

pub(crate) fn list_api_keys(
    conn: &Connection,
    project: &ProjectId,
) -> Result<Vec<ApiKeyRecord>, Error> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project = ?1 ORDER BY created_ns, id"
    ))?;
    let rows = select.query_map([project.as_str()], api_key)?;
    rows.map(|row| finish_api_key(row?)).collect()
}
