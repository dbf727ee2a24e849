//! Translation of the structured filter ([`store::Expr`]) into a ClickHouse `WHERE` condition
//! over the `spans` columns. Every value is quoted with [`quote`]; field names come from a fixed
//! table, so no user text reaches SQL unescaped.
//!
//! A comparison with an absent value is false (optional text columns hold `''` for "absent",
//! so comparisons on them also require `!= ''`; `NULL` results become false with `ifNull`), and
//! `!=` / `!~` are `not =` / `not ~`, so they match spans without the field.

use store::{CmpOp, Expr, Field, GroupBy, TimeRange, Value};

use crate::client::{quote, quote_str};

/// Facts about a compiled filter that shape the query around it.
#[derive(Debug, Default)]
pub(crate) struct Needs {
    /// The filter uses trace-level fields (`root_name`, `trace.duration`, and `operation`, which
    /// falls back to the root's): the span source must be joined with per-trace facts
    /// (`t_root_name`, `t_duration`, `t_root_operation`).
    pub(crate) trace_facts: bool,
    /// Input: the project as a quoted literal, for the feedback subqueries.
    pub(crate) project: String,
}

impl Needs {
    pub(crate) fn for_project(project: &model::ProjectId) -> Needs {
        Needs { trace_facts: false, project: quote(project) }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// Always present text.
    Text,
    /// Text where `''` means absent.
    OptionalText,
    /// An unsigned integer column, `Nullable` or not.
    UInt,
    /// `Nullable(Decimal(38, 12))`.
    Decimal,
    /// `Array(String)`.
    TextArray,
}

fn column(field: &Field) -> Result<(String, Kind), String> {
    let res = match field {
        Field::SpanType => ("span_type".to_owned(), Kind::Text),
        Field::Name => ("name".to_owned(), Kind::Text),
        Field::Kind => ("kind".to_owned(), Kind::Text),
        Field::Service => ("service".to_owned(), Kind::Text),
        // A span without its own operation id has its trace root's.
        Field::Operation => (EFFECTIVE_OPERATION.to_owned(), Kind::OptionalText),
        Field::Model => ("model".to_owned(), Kind::OptionalText),
        Field::Provider => ("provider".to_owned(), Kind::OptionalText),
        Field::Status => ("status".to_owned(), Kind::Text),
        Field::Duration => ("duration_ns".to_owned(), Kind::UInt),
        Field::InputTokens => ("input_tokens".to_owned(), Kind::UInt),
        Field::OutputTokens => ("output_tokens".to_owned(), Kind::UInt),
        Field::TotalTokens => ("total_tokens".to_owned(), Kind::UInt),
        Field::Cost => ("cost".to_owned(), Kind::Decimal),
        Field::Session => ("session_id".to_owned(), Kind::OptionalText),
        Field::User => ("user_id".to_owned(), Kind::OptionalText),
        Field::Tag => ("tags".to_owned(), Kind::TextArray),
        Field::Environment => ("environment".to_owned(), Kind::OptionalText),
        Field::TraceId => ("trace_id".to_owned(), Kind::Text),
        Field::SpanId => ("span_id".to_owned(), Kind::Text),
        Field::Attr(key) => (
            format!(
                "if(has(attr_keys, {k}), attr_values[indexOf(attr_keys, {k})], '')",
                k = quote_str(key)
            ),
            Kind::OptionalText,
        ),
        Field::ResourceAttr(key) => (
            format!(
                "if(has(res_keys, {k}), res_values[indexOf(res_keys, {k})], '')",
                k = quote_str(key)
            ),
            Kind::OptionalText,
        ),
        Field::RootName => ("t_root_name".to_owned(), Kind::OptionalText),
        Field::TraceDuration => ("t_duration".to_owned(), Kind::UInt),
        Field::Rating
        | Field::Score(_)
        | Field::FeedbackTag
        | Field::Correction
        | Field::Feedback => {
            // `compile` sends these to the feedback subqueries before a column is looked up.
            return Err(format!("{field:?} is a feedback field and has no span column"));
        }
    };
    Ok(res)
}

pub(crate) fn compile(expr: &Expr, needs: &mut Needs) -> Result<String, String> {
    let res = match expr {
        Expr::And(items) if items.is_empty() => "1".to_owned(),
        Expr::Or(items) if items.is_empty() => "0".to_owned(),
        Expr::And(items) => join(items, " AND ", needs)?,
        Expr::Or(items) => join(items, " OR ", needs)?,
        Expr::Not(inner) => format!("NOT ({})", compile(inner, needs)?),
        Expr::Exists(field) if is_feedback_field(field) => {
            on_feedback(&feedback_exists(field), needs)
        }
        Expr::Cmp { field, op, value } if is_feedback_field(field) => match op {
            CmpOp::Ne => {
                format!("NOT {}", on_feedback(&feedback_cmp(field, CmpOp::Eq, value)?, needs))
            }
            CmpOp::NotGlob => {
                format!("NOT {}", on_feedback(&feedback_cmp(field, CmpOp::Glob, value)?, needs))
            }
            op => on_feedback(&feedback_cmp(field, *op, value)?, needs),
        },
        Expr::Exists(field) => {
            note_trace_fact(field, needs);
            let (col, kind) = column(field)?;
            match (field, kind) {
                (Field::Attr(key), _) => format!("has(attr_keys, {})", quote_str(key)),
                (Field::ResourceAttr(key), _) => format!("has(res_keys, {})", quote_str(key)),
                (_, Kind::Text) => format!("{col} != ''"),
                (_, Kind::OptionalText) => format!("{col} != ''"),
                (_, Kind::UInt | Kind::Decimal) => format!("isNotNull({col})"),
                (_, Kind::TextArray) => format!("notEmpty({col})"),
            }
        }
        Expr::Text(text) => {
            let words: Vec<String> = text
                .split_whitespace()
                .map(|word| {
                    format!("position(search_text, {}) > 0", quote_str(&word.to_lowercase()))
                })
                .collect();
            if words.is_empty() { "1".to_owned() } else { format!("({})", words.join(" AND ")) }
        }
        Expr::Cmp { field, op, value } => {
            note_trace_fact(field, needs);
            let (col, kind) = column(field)?;
            compare(field, &col, kind, *op, value)?
        }
    };
    Ok(res)
}

fn is_feedback_field(field: &Field) -> bool {
    matches!(
        field,
        Field::Rating | Field::Score(_) | Field::FeedbackTag | Field::Correction | Field::Feedback
    )
}

/// A span has the feedback entries on it (by span id) and, for a trace's root span, the
/// entries on its trace. `condition` is over `feedback` rows.
fn on_feedback(condition: &str, needs: &Needs) -> String {
    let entries = format!(
        "(SELECT * FROM feedback FINAL WHERE project = {}) WHERE deleted = 0 AND ({condition})",
        needs.project
    );
    format!(
        "(span_id IN (SELECT span_id FROM {entries} AND target_kind = 'span') \
         OR (parent_span_id = '' AND trace_id IN \
         (SELECT trace_id FROM {entries} AND target_kind = 'trace')))"
    )
}

fn feedback_exists(field: &Field) -> String {
    match field {
        Field::Rating => "rating_value != 0".to_owned(),
        Field::Score(name) => format!("has(score_keys, {})", quote_str(name)),
        Field::FeedbackTag => "notEmpty(tags)".to_owned(),
        Field::Correction => "has_correction = 1".to_owned(),
        _ => "1".to_owned(),
    }
}

/// A condition over `feedback` rows for `field op value` (`op` is neither `!=` nor `!~`).
fn feedback_cmp(field: &Field, op: CmpOp, value: &Value) -> Result<String, String> {
    let number = match value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) if f.is_finite() => Some(*f),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::DurationNs(n) => Some(*n as f64),
        // Text compares with a score's category (or, as `true`/`false`, a boolean's text),
        // never as a number; a rating takes `up`, `down` or a number as text too.
        Value::Str(_) if matches!(field, Field::Score(_)) => None,
        Value::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        Value::Float(_) => None,
    };
    let text = value_text(value);
    let text_cmp = |col: &str| -> String {
        if op == CmpOp::Glob {
            format!("{col} != '' AND match(lowerUTF8({col}), {})", quote_str(&glob_regex(&text)))
        } else {
            format!("{col} != '' AND {col} {} {}", sql_op(op), quote(&text))
        }
    };
    let res = match field {
        // `up` and `down` compare as words, numbers with the 1-5 value.
        Field::Rating => match number {
            Some(n) if op != CmpOp::Glob => {
                format!("rating_value != 0 AND rating_value {} {}", sql_op(op), float_literal(n))
            }
            _ => text_cmp("rating_text"),
        },
        Field::Score(name) => {
            let name = quote_str(name);
            match number {
                Some(n) if op != CmpOp::Glob => format!(
                    "arrayExists((k, is_num, n) -> k = {name} AND is_num = 1 AND n {} {}, \
                     score_keys, score_is_num, score_num)",
                    sql_op(op),
                    float_literal(n)
                ),
                _ if op == CmpOp::Glob => format!(
                    "arrayExists((k, t) -> k = {name} AND match(lowerUTF8(t), {}), score_keys, \
                     score_text)",
                    quote_str(&glob_regex(&text))
                ),
                _ => format!(
                    "arrayExists((k, t) -> k = {name} AND t {} {}, score_keys, score_text)",
                    sql_op(op),
                    quote(&text)
                ),
            }
        }
        Field::FeedbackTag => match op {
            CmpOp::Eq => format!("has(tags, {})", quote(&text)),
            CmpOp::Glob => format!(
                "arrayExists(x -> match(lowerUTF8(x), {}), tags)",
                quote_str(&glob_regex(&text))
            ),
            _ => return Err("feedback.tag supports =, !=, ~ and !~ only".to_owned()),
        },
        Field::Correction => text_cmp("correction_text"),
        _ => text_cmp("comment"),
    };
    Ok(res)
}

/// The span's operation id, else its trace root's (needs the trace facts).
pub(crate) const EFFECTIVE_OPERATION: &str = "if(operation != '', operation, t_root_operation)";

fn note_trace_fact(field: &Field, needs: &mut Needs) {
    if matches!(field, Field::RootName | Field::TraceDuration | Field::Operation) {
        needs.trace_facts = true;
    }
}

fn join(items: &[Expr], sep: &str, needs: &mut Needs) -> Result<String, String> {
    let parts: Vec<String> = items
        .iter()
        .map(|item| compile(item, needs).map(|sql| format!("({sql})")))
        .collect::<Result<_, _>>()?;
    Ok(parts.join(sep))
}

fn compare(
    field: &Field,
    col: &str,
    kind: Kind,
    op: CmpOp,
    value: &Value,
) -> Result<String, String> {
    // `!=` and `!~` are `not =` and `not ~`: they also match spans without the field.
    match op {
        CmpOp::Ne => {
            let eq = compare(field, col, kind, CmpOp::Eq, value)?;
            return Ok(format!("(NOT {eq})"));
        }
        CmpOp::NotGlob => {
            let glob = compare(field, col, kind, CmpOp::Glob, value)?;
            return Ok(format!("(NOT {glob})"));
        }
        _ => {}
    }
    let number = || -> Result<String, String> {
        match value {
            Value::Int(i) => Ok(i.to_string()),
            Value::DurationNs(n) => Ok(n.to_string()),
            Value::Float(f) if f.is_finite() => Ok(float_literal(*f)),
            Value::Str(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(float_literal)
                .ok_or_else(|| format!("{field:?} compares with numbers, not {s:?}")),
            other => Err(format!("{field:?} compares with numbers, not {other:?}")),
        }
    };
    let text = value_text(value);
    let res = match (kind, op) {
        (_, CmpOp::Glob) => {
            let regex = quote_str(&glob_regex(&text));
            let matches = match kind {
                Kind::TextArray => format!("arrayExists(x -> match(lowerUTF8(x), {regex}), {col})"),
                _ => format!("match(lowerUTF8(toString({col})), {regex})"),
            };
            format!("{} AND {matches}", presence(col, kind))
        }
        (Kind::TextArray, CmpOp::Eq) => format!("has({col}, {})", quote(&text)),
        (Kind::TextArray, _) => {
            return Err(format!("{field:?} supports =, !=, ~ and !~ only"));
        }
        (Kind::UInt, _) => format!("{col} {} {}", sql_op(op), number()?),
        (Kind::Decimal, _) => {
            let n = number()?;
            format!("{col} {} toDecimal128({}, 12)", sql_op(op), quote(n))
        }
        (Kind::Text, _) => format!("{col} {} {}", sql_op(op), quote(&text)),
        (Kind::OptionalText, _) => {
            let numeric = matches!(value, Value::Int(_) | Value::Float(_) | Value::DurationNs(_))
                && matches!(field, Field::Attr(_) | Field::ResourceAttr(_));
            if numeric {
                format!("toFloat64OrNull({col}) {} {}", sql_op(op), number()?)
            } else {
                format!("{col} != '' AND {col} {} {}", sql_op(op), quote(&text))
            }
        }
    };
    // A comparison with a missing (NULL) value is false, also under NOT.
    Ok(format!("ifNull({res}, 0)"))
}

/// A float as a plain decimal literal (no exponent), e.g. for `toDecimal128`.
fn float_literal(f: f64) -> String {
    let res = format!("{f:.12}");
    let res = res.trim_end_matches('0').trim_end_matches('.');
    if res.is_empty() || res == "-" { "0".to_owned() } else { res.to_owned() }
}

fn presence(col: &str, kind: Kind) -> String {
    match kind {
        Kind::TextArray => format!("notEmpty({col})"),
        Kind::UInt | Kind::Decimal => format!("isNotNull({col})"),
        Kind::Text | Kind::OptionalText => format!("{col} != ''"),
    }
}

fn sql_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        // Globs are handled before; keep the mapping total.
        CmpOp::Glob | CmpOp::NotGlob => "=",
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::DurationNs(n) => n.to_string(),
    }
}

/// A glob (`*`, `?`) as an anchored, lowercase RE2 pattern. ClickHouse 18.x ignores `(?i)`, so
/// both sides are lowercased instead.
pub(crate) fn glob_regex(glob: &str) -> String {
    let mut res = String::from("^");
    for c in glob.to_lowercase().chars() {
        match c {
            '*' => res.push_str(".*"),
            '?' => res.push('.'),
            c if c.is_ascii_punctuation() => {
                res.push('\\');
                res.push(c);
            }
            c => res.push(c),
        }
    }
    res.push('$');
    res
}

/// `start_ns` bounds of a time range.
pub(crate) fn time_condition(time: &TimeRange) -> String {
    let mut res = Vec::new();
    if let Some(from) = time.from_ns {
        res.push(format!("start_ns >= {from}"));
    }
    if let Some(to) = time.to_ns {
        res.push(format!("start_ns < {to}"));
    }
    if res.is_empty() { "1".to_owned() } else { res.join(" AND ") }
}

/// The SQL expression of a group-by key, `NULL` where the span has no value.
pub(crate) fn group_expr(group: &GroupBy, needs: &mut Needs) -> String {
    match group {
        GroupBy::Operation => {
            needs.trace_facts = true;
            format!("nullIf({EFFECTIVE_OPERATION}, '')")
        }
        GroupBy::Name => "name".to_owned(),
        GroupBy::SpanType => "span_type".to_owned(),
        GroupBy::Service => "service".to_owned(),
        GroupBy::Model => "nullIf(model, '')".to_owned(),
        GroupBy::Provider => "nullIf(provider, '')".to_owned(),
        GroupBy::User => "nullIf(user_id, '')".to_owned(),
        GroupBy::Attr(key) => format!(
            "if(has(attr_keys, {k}), attr_values[indexOf(attr_keys, {k})], NULL)",
            k = quote_str(key)
        ),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check(expr: Expr, expect: Expect) {
        let mut needs = Needs::for_project(&model::ProjectId::default_project());
        let res = match compile(&expr, &mut needs) {
            Ok(sql) => format!("{sql}\ntrace_facts={}", needs.trace_facts),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&res);
    }

    fn cmp(field: Field, op: CmpOp, value: Value) -> Expr {
        Expr::Cmp { field, op, value }
    }

    #[test]
    fn filters_compile_with_escaped_values() {
        check(
            Expr::And(vec![
                cmp(Field::SpanType, CmpOp::Eq, Value::Str("llm".into())),
                cmp(Field::Model, CmpOp::Glob, Value::Str("GPT-4o*".into())),
                cmp(Field::Duration, CmpOp::Gt, Value::DurationNs(2_000_000_000)),
                cmp(Field::Attr("it's".into()), CmpOp::Eq, Value::Str("a'b\\".into())),
                cmp(Field::Attr("n".into()), CmpOp::Ge, Value::Int(3)),
                cmp(Field::Tag, CmpOp::Eq, Value::Str("refund".into())),
                cmp(Field::Cost, CmpOp::Lt, Value::Float(0.5)),
                Expr::Not(Box::new(Expr::Exists(Field::User))),
                Expr::Text("Hello  WORLD".into()),
                cmp(Field::RootName, CmpOp::Eq, Value::Str("agent".into())),
            ]),
            expect![[r#"
                (ifNull(span_type = 'llm', 0)) AND (ifNull(model != '' AND match(lowerUTF8(toString(model)), '^gpt\\-4o.*$'), 0)) AND (ifNull(duration_ns > 2000000000, 0)) AND (ifNull(if(has(attr_keys, 'it\'s'), attr_values[indexOf(attr_keys, 'it\'s')], '') != '' AND if(has(attr_keys, 'it\'s'), attr_values[indexOf(attr_keys, 'it\'s')], '') = 'a\'b\\', 0)) AND (ifNull(toFloat64OrNull(if(has(attr_keys, 'n'), attr_values[indexOf(attr_keys, 'n')], '')) >= 3, 0)) AND (ifNull(has(tags, 'refund'), 0)) AND (ifNull(cost < toDecimal128('0.5', 12), 0)) AND (NOT (user_id != '')) AND ((position(search_text, 'hello') > 0 AND position(search_text, 'world') > 0)) AND (ifNull(t_root_name != '' AND t_root_name = 'agent', 0))
                trace_facts=true"#]],
        );
    }

    #[test]
    fn unsupported_and_mistyped_filters_are_errors() {
        check(
            cmp(Field::Duration, CmpOp::Gt, Value::Str("slow".into())),
            expect![[r#"error: Duration compares with numbers, not "slow""#]],
        );
        check(
            cmp(Field::FeedbackTag, CmpOp::Gt, Value::Str("x".into())),
            expect![[r#"error: feedback.tag supports =, !=, ~ and !~ only"#]],
        );
    }
}
