//! Translates a [`store::Expr`] into a SQL condition over `spans s` joined with its trace's
//! roll-up `traces t`, with bound parameters (never values spliced into SQL).
//!
//! Semantics (shared by every backend, checked by `store::suite`): a comparison with a missing
//! value is false, and `!=` / `!~` are exactly `not (=)` / `not (~)`, so they match spans where
//! the field is missing. `~` is a case-insensitive glob (`*`, `?`).

use model::{SpanId, TraceId};
use rusqlite::types::Value as SqlValue;
use store::{CmpOp, Expr, Field, Value};

use crate::Error;

/// The stored raw span and view of the span `s` (kept apart in `span_docs`, so the rows that
/// filters scan stay small).
pub(crate) const DOC_OF_SPAN: &str = "(SELECT doc FROM span_docs WHERE id = s.id)";

/// A condition and its parameters (`?` placeholders, in order).
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<SqlValue>,
}

impl Sql {
    pub(crate) fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    pub(crate) fn param(&mut self, value: SqlValue) {
        self.text.push('?');
        self.params.push(value);
    }
}

/// How a field is stored.
enum Column {
    Text(&'static str),
    Int(&'static str),
    Real(&'static str),
    Id(&'static str, usize),
    Tags,
    Attr { scope: i64, key: String },
}

fn column(field: &Field) -> Result<Column, Error> {
    Ok(match field {
        Field::SpanType => Column::Text("s.span_type"),
        Field::Name => Column::Text("s.name"),
        Field::Kind => Column::Text("s.kind"),
        Field::Service => Column::Text("s.service"),
        Field::Operation => Column::Text("COALESCE(s.operation, t.root_operation)"),
        Field::Model => Column::Text("s.model"),
        Field::Provider => Column::Text("s.provider"),
        Field::Status => Column::Text("s.status"),
        Field::Duration => Column::Int("s.duration_ns"),
        Field::InputTokens => Column::Int("s.input_tokens"),
        Field::OutputTokens => Column::Int("s.output_tokens"),
        Field::TotalTokens => Column::Int("s.total_tokens"),
        Field::Cost => Column::Real("CAST(s.cost AS REAL)"),
        Field::Session => Column::Text("s.session"),
        Field::User => Column::Text("s.user"),
        Field::Tag => Column::Tags,
        Field::Environment => Column::Text("s.env"),
        Field::TraceId => Column::Id("s.trace_id", TraceId::LEN),
        Field::SpanId => Column::Id("s.span_id", SpanId::LEN),
        Field::Attr(key) => Column::Attr { scope: 0, key: key.clone() },
        Field::ResourceAttr(key) => Column::Attr { scope: 1, key: key.clone() },
        Field::RootName => Column::Text("t.root_name"),
        Field::TraceDuration => Column::Int("(t.end_ns - t.start_ns)"),
        Field::Rating
        | Field::Score(_)
        | Field::FeedbackTag
        | Field::Correction
        | Field::Feedback => {
            // `feedback::exists_sql` and `feedback::cmp_sql` take these before a column is
            // looked up.
            return Err(Error::InvalidQuery(format!(
                "{field:?} is a feedback field and has no span column"
            )));
        }
    })
}

/// Whether the filter has a full-text part (which needs the index to have caught up).
pub(crate) fn has_text(expr: &Expr) -> bool {
    match expr {
        Expr::And(items) | Expr::Or(items) => items.iter().any(has_text),
        Expr::Not(inner) => has_text(inner),
        Expr::Text(_) => true,
        Expr::Cmp { .. } | Expr::Exists(_) => false,
    }
}

/// Appends the condition for `expr`.
pub(crate) fn expr_sql(expr: &Expr, out: &mut Sql) -> Result<(), Error> {
    match expr {
        Expr::And(items) | Expr::Or(items) => {
            let (sep, empty) =
                if matches!(expr, Expr::And(_)) { (" AND ", "1") } else { (" OR ", "0") };
            if items.is_empty() {
                out.push(empty);
                return Ok(());
            }
            out.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(sep);
                }
                expr_sql(item, out)?;
            }
            out.push(")");
        }
        Expr::Not(inner) => {
            out.push("(NOT ");
            expr_sql(inner, out)?;
            out.push(")");
        }
        Expr::Exists(field) => exists_sql(field, out)?,
        Expr::Text(text) => {
            let query = fts_query(text);
            if query.is_empty() {
                out.push("1");
            } else {
                out.push("s.id IN (SELECT rowid FROM search.spans_fts WHERE spans_fts MATCH ");
                out.param(SqlValue::Text(query));
                out.push(")");
            }
        }
        Expr::Cmp { field, op, value } => cmp_sql(field, *op, value, out)?,
    }
    Ok(())
}

/// The words of a full-text query, each quoted, so they are all required and never read as
/// FTS5 operators.
pub(crate) fn fts_query(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| format!("\"{word}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

fn exists_sql(field: &Field, out: &mut Sql) -> Result<(), Error> {
    if let Some(res) = crate::feedback::exists_sql(field, out) {
        return res;
    }
    match column(field)? {
        Column::Text(col) => out.push(&format!("COALESCE({col} != '', 0)")),
        Column::Int(col) | Column::Real(col) => out.push(&format!("({col} IS NOT NULL)")),
        Column::Id(..) => out.push("1"),
        Column::Tags => out.push("(s.tags IS NOT NULL)"),
        Column::Attr { scope, key } => {
            out.push(&format!("(loupe_attr({DOC_OF_SPAN}, {scope}, "));
            out.param(SqlValue::Text(key));
            out.push(") IS NOT NULL)");
        }
    }
    Ok(())
}

/// `*` and `?` to a `LIKE` pattern with `\` as the escape (LIKE is case-insensitive for ASCII).
pub(crate) fn like_pattern(glob: &str) -> String {
    let mut res = String::with_capacity(glob.len());
    for c in glob.chars() {
        match c {
            '*' => res.push('%'),
            '?' => res.push('_'),
            '%' | '_' | '\\' => {
                res.push('\\');
                res.push(c);
            }
            c => res.push(c),
        }
    }
    res
}

/// A key the index in `search.db` finds spans by (see `search.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpanKey {
    SpanId([u8; 8]),
    User(String),
}

/// The key a filter requires when one of its top-level conjuncts is `span_id = "…"` (a valid
/// id) or, failing that, `user = "x"`: the caller limits the query to the spans with that key
/// from the index (see `read.rs`), so they are found without scanning every span or trace.
/// (The comparison itself is written as `COALESCE(s.user = ?, 0)`, which no index serves.)
pub(crate) fn required_key(expr: &Expr) -> Option<SpanKey> {
    fn span_id(expr: &Expr) -> Option<[u8; 8]> {
        match expr {
            Expr::Cmp { field: Field::SpanId, op: CmpOp::Eq, value } => {
                let bytes = hex_id(&value_text(value).to_ascii_lowercase(), SpanId::LEN)?;
                bytes.try_into().ok()
            }
            Expr::And(items) => items.iter().find_map(span_id),
            _ => None,
        }
    }
    fn user(expr: &Expr) -> Option<String> {
        match expr {
            Expr::Cmp { field: Field::User, op: CmpOp::Eq, value } => Some(value_text(value)),
            Expr::And(items) => items.iter().find_map(user),
            _ => None,
        }
    }
    span_id(expr).map(SpanKey::SpanId).or_else(|| user(expr).map(SpanKey::User))
}

/// Whether one of a filter's top-level conjuncts is `status = error`: such a trace has errored
/// spans (`traces.n_errors > 0`), a cheap test that spares checking every other trace's spans.
pub(crate) fn requires_error(expr: &Expr) -> bool {
    match expr {
        Expr::Cmp { field: Field::Status, op: CmpOp::Eq, value } => {
            value_text(value) == model::StatusCode::Error.as_str()
        }
        Expr::And(items) => items.iter().any(requires_error),
        _ => false,
    }
}

/// A value as text, for text columns and globs.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::Str(text) => text.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::DurationNs(ns) => ns.to_string(),
    }
}

fn value_number(field: &Field, value: &Value) -> Result<SqlValue, Error> {
    match value {
        Value::Int(i) => Ok(SqlValue::Integer(*i)),
        Value::DurationNs(ns) => Ok(SqlValue::Integer(i64::try_from(*ns).unwrap_or(i64::MAX))),
        Value::Float(f) => Ok(SqlValue::Real(*f)),
        Value::Str(text) => {
            if let Ok(i) = text.parse::<i64>() {
                Ok(SqlValue::Integer(i))
            } else if let Ok(f) = text.parse::<f64>() {
                Ok(SqlValue::Real(f))
            } else {
                Err(Error::InvalidQuery(format!("{field:?} needs a number, got {text:?}")))
            }
        }
        Value::Bool(_) => {
            Err(Error::InvalidQuery(format!("{field:?} needs a number, got a boolean")))
        }
    }
}

/// Appends `text` as the right side of a comparison made with [`op_sql`]: as a `LIKE` pattern
/// with its escape clause when `op` is a glob, else as it is.
pub(crate) fn push_text(out: &mut Sql, op: CmpOp, text: String) {
    if matches!(op, CmpOp::Glob | CmpOp::NotGlob) {
        out.param(SqlValue::Text(like_pattern(&text)));
        out.push(" ESCAPE '\\'");
    } else {
        out.param(SqlValue::Text(text));
    }
}

/// The SQL operator for `op`, and whether the comparison is negated (`!=` is `not =`, `!~` is
/// `not ~`).
pub(crate) fn op_sql(op: CmpOp) -> (&'static str, bool) {
    match op {
        CmpOp::Eq => ("=", false),
        CmpOp::Ne => ("=", true),
        CmpOp::Lt => ("<", false),
        CmpOp::Le => ("<=", false),
        CmpOp::Gt => (">", false),
        CmpOp::Ge => (">=", false),
        CmpOp::Glob => ("LIKE", false),
        CmpOp::NotGlob => ("LIKE", true),
    }
}

fn cmp_sql(field: &Field, op: CmpOp, value: &Value, out: &mut Sql) -> Result<(), Error> {
    if let Some(res) = crate::feedback::cmp_sql(field, op, value, out) {
        return res;
    }
    let (sql_op, negate) = op_sql(op);
    let glob = matches!(op, CmpOp::Glob | CmpOp::NotGlob);
    out.push(if negate { "(NOT COALESCE(" } else { "(COALESCE(" });
    match column(field)? {
        Column::Text(col) => {
            out.push(&format!("{col} {sql_op} "));
            push_text(out, op, value_text(value));
        }
        Column::Int(col) | Column::Real(col) => {
            if glob {
                return Err(Error::InvalidQuery(format!(
                    "{field:?} is a number and takes no glob"
                )));
            }
            out.push(&format!("{col} {sql_op} "));
            out.param(value_number(field, value)?);
        }
        Column::Id(col, len) => {
            let text = value_text(value).to_ascii_lowercase();
            match hex_id(&text, len) {
                Some(bytes) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                    out.push(&format!("{col} = "));
                    out.param(SqlValue::Blob(bytes));
                }
                _ => {
                    out.push(&format!("lower(hex({col})) {sql_op} "));
                    push_text(out, op, text);
                }
            }
        }
        Column::Tags => {
            if !matches!(op, CmpOp::Eq | CmpOp::Ne | CmpOp::Glob | CmpOp::NotGlob) {
                return Err(Error::InvalidQuery("tag takes = != ~ !~".to_owned()));
            }
            out.push(&format!("EXISTS (SELECT 1 FROM json_each(s.tags) WHERE value {sql_op} "));
            push_text(out, op, value_text(value));
            out.push(")");
        }
        Column::Attr { scope, key } => {
            let numeric = matches!(value, Value::Int(_) | Value::Float(_) | Value::DurationNs(_));
            let function = if numeric && !glob { "loupe_attr_num" } else { "loupe_attr" };
            out.push(&format!("{function}({DOC_OF_SPAN}, {scope}, "));
            out.param(SqlValue::Text(key));
            out.push(&format!(") {sql_op} "));
            if numeric && !glob {
                out.param(value_number(field, value)?);
            } else {
                push_text(out, op, value_text(value));
            }
        }
    }
    out.push(", 0))");
    Ok(())
}

fn hex_id(text: &str, len: usize) -> Option<Vec<u8>> {
    if text.len() != len * 2 {
        return None;
    }
    hex::decode(text).ok()
}
