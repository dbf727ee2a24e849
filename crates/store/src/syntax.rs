//! The one filter syntax shared by the API (`?q=`), the CLI (`--filter`) and the console.
//!
//! ```text
//! type = llm and model ~ "gpt-4o*" and duration > 2s and status = error
//! ```
//!
//! [`parse`] turns text into an [`Expr`]; [`format`] writes an [`Expr`] back as canonical text
//! (`parse(&format(e)) == Ok(Some(e))`). See `docs/query.md` for the grammar and every field.
//!
//! ```text
//! filter  := or
//! or      := and ("or" and)*
//! and     := unary (["and"] unary)*        adjacent terms are and-ed
//! unary   := "not" unary | primary
//! primary := "(" or ")" | "has" FIELD | "no" FIELD | FIELD OP value | "text" OP value | word | "quoted"
//! OP      := = | == | != | < | <= | > | >= | ~ | !~
//! ```

use crate::query::{CmpOp, Expr, Field, Value};

/// Parses a filter. An empty or all-whitespace input is `Ok(None)`: no filter. Errors name the
/// column (1-based, in characters) and what was expected there.
pub fn parse(input: &str) -> Result<Option<Expr>, String> {
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser { tokens, pos: 0, end_column: input.chars().count() + 1 };
    let res = parser.or()?;
    if let Some(token) = parser.peek() {
        let message = match &token.kind {
            TokenKind::RParen => "unmatched ')'".to_owned(),
            _ => {
                format!("expected 'and', 'or' or the end of the filter, found {}", token.describe())
            }
        };
        return Err(format!("at column {}: {message}", token.column));
    }
    Ok(Some(res))
}

/// Writes a filter back in canonical syntax (lowercase keywords, canonical field names, values
/// quoted when needed).
pub fn format(expr: &Expr) -> String {
    let mut res = String::new();
    write_expr(expr, 0, &mut res);
    res
}

/// What values a field takes, which decides how literals are read and which operators apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    /// Free text: `= != ~ !~` and the order comparisons.
    Text,
    /// One of a closed set of lowercase words: `= != ~ !~`.
    Enum(&'static [&'static str]),
    /// A number (int or float).
    Number,
    /// A duration with a unit.
    Duration,
    /// Raw attributes and scores: the literal decides (number, boolean or text).
    Any,
}

const STATUS_VALUES: &[&str] = &["ok", "error", "unset"];
const KIND_VALUES: &[&str] =
    &["unspecified", "internal", "server", "client", "producer", "consumer"];
const SPAN_TYPE_VALUES: &[&str] = &[
    "llm",
    "embedding",
    "retrieval",
    "reranker",
    "tool",
    "agent",
    "chain",
    "evaluator",
    "guardrail",
    "http",
    "db",
    "other",
];

/// Field names: the canonical name first, then its aliases.
struct FieldSpec {
    names: &'static [&'static str],
    field: Field,
    kind: FieldKind,
}

fn field_specs() -> Vec<FieldSpec> {
    use FieldKind::*;
    let spec = |names, field, kind| FieldSpec { names, field, kind };
    vec![
        spec(&["type", "span_type", "span.type"], Field::SpanType, Enum(SPAN_TYPE_VALUES)),
        spec(&["name", "span_name", "span.name"], Field::Name, Text),
        spec(&["kind", "span_kind", "span.kind"], Field::Kind, Enum(KIND_VALUES)),
        spec(&["service", "service.name", "service_name"], Field::Service, Text),
        spec(&["operation", "operation_id", "op"], Field::Operation, Text),
        spec(&["model", "llm.model", "gen_ai.model"], Field::Model, Text),
        spec(&["provider", "gen_ai.provider", "gen_ai.system"], Field::Provider, Text),
        spec(&["status"], Field::Status, Enum(STATUS_VALUES)),
        spec(&["duration", "latency"], Field::Duration, Duration),
        spec(&["input_tokens", "prompt_tokens", "tokens.input"], Field::InputTokens, Number),
        spec(&["output_tokens", "completion_tokens", "tokens.output"], Field::OutputTokens, Number),
        spec(&["tokens", "total_tokens", "tokens.total"], Field::TotalTokens, Number),
        spec(&["cost", "cost_usd"], Field::Cost, Number),
        spec(&["session", "session_id", "session.id"], Field::Session, Text),
        spec(&["user", "user_id", "user.id"], Field::User, Text),
        spec(&["tag", "tags"], Field::Tag, Text),
        spec(&["env", "environment", "deployment.environment"], Field::Environment, Text),
        spec(&["trace_id", "trace.id", "traceid"], Field::TraceId, Text),
        spec(&["span_id", "span.id", "spanid"], Field::SpanId, Text),
        spec(&["root_name", "root", "root.name", "trace.name"], Field::RootName, Text),
        spec(&["trace.duration", "trace_duration"], Field::TraceDuration, Duration),
        spec(&["rating"], Field::Rating, Any),
        spec(&["feedback.tag", "feedback_tag"], Field::FeedbackTag, Text),
        spec(&["correction", "corrected"], Field::Correction, Text),
        spec(&["feedback"], Field::Feedback, Text),
    ]
}

/// The canonical field names, for error messages and docs.
fn known_fields() -> String {
    let mut names: Vec<String> =
        field_specs().iter().map(|spec| spec.names[0].to_owned()).collect();
    names.push("attr.KEY".to_owned());
    names.push("resource.KEY".to_owned());
    names.push("score.NAME".to_owned());
    names.push("text".to_owned());
    names.join(", ")
}

/// What a field word names: a real field or the full-text pseudo-field.
enum Target {
    Field(Field, FieldKind),
    Text,
}

/// Resolves a field word (case-insensitive for the fixed names; keys keep their case).
fn resolve_field(word: &str) -> Option<Target> {
    let lower = word.to_ascii_lowercase();
    if lower == "text" || lower == "content" {
        return Some(Target::Text);
    }
    for (prefix, make) in [
        ("attr.", Field::Attr as fn(String) -> Field),
        ("attributes.", Field::Attr),
        ("resource.", Field::ResourceAttr),
        ("score.", Field::Score),
    ] {
        // A score is numeric, categorical or boolean (its score config decides), so its
        // literal decides the type, as for attributes: `score.csat <= 2`,
        // `score.verdict = fail`, `score.correct = false`.
        if lower.starts_with(prefix) && word.len() > prefix.len() {
            let key = &word[prefix.len()..];
            return Some(Target::Field(make(unquote_key(key)), FieldKind::Any));
        }
    }
    field_specs()
        .into_iter()
        .find(|spec| spec.names.contains(&lower.as_str()))
        .map(|spec| Target::Field(spec.field, spec.kind))
}

/// `attr."dotted.key"` arrives as the word `attr."dotted.key"`; strip the quotes.
fn unquote_key(key: &str) -> String {
    if key.len() >= 2 && key.starts_with('"') && key.ends_with('"') {
        key[1..key.len() - 1].replace("\\\"", "\"").replace("\\\\", "\\")
    } else {
        key.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    LParen,
    RParen,
    Op(CmpOp),
    /// An unquoted word (field names, keywords, bare values, numbers, durations).
    Word(String),
    Quoted(String),
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// 1-based column of the token's first character.
    column: usize,
}

impl Token {
    fn describe(&self) -> String {
        match &self.kind {
            TokenKind::LParen => "'('".to_owned(),
            TokenKind::RParen => "')'".to_owned(),
            TokenKind::Op(op) => format!("'{}'", op_text(*op)),
            TokenKind::Word(word) => format!("'{word}'"),
            TokenKind::Quoted(text) => format!("\"{text}\""),
        }
    }

    fn keyword(&self) -> Option<String> {
        match &self.kind {
            TokenKind::Word(word) => Some(word.to_ascii_lowercase()),
            _ => None,
        }
    }
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '=' | '!' | '<' | '>' | '~' | '"' | '\'')
}

fn lex(input: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut res = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let (kind, len) = match c {
            '(' => (TokenKind::LParen, 1),
            ')' => (TokenKind::RParen, 1),
            _ if two == "!=" => (TokenKind::Op(CmpOp::Ne), 2),
            _ if two == "!~" => (TokenKind::Op(CmpOp::NotGlob), 2),
            _ if two == "<=" => (TokenKind::Op(CmpOp::Le), 2),
            _ if two == ">=" => (TokenKind::Op(CmpOp::Ge), 2),
            _ if two == "==" => (TokenKind::Op(CmpOp::Eq), 2),
            '=' => (TokenKind::Op(CmpOp::Eq), 1),
            '<' => (TokenKind::Op(CmpOp::Lt), 1),
            '>' => (TokenKind::Op(CmpOp::Gt), 1),
            '~' => (TokenKind::Op(CmpOp::Glob), 1),
            '!' => {
                return Err(format!(
                    "at column {column}: expected '!=' or '!~' (use 'not' to negate)"
                ));
            }
            '"' | '\'' => {
                let (text, len) = lex_quoted(&chars[i..], column)?;
                (TokenKind::Quoted(text), len)
            }
            _ => {
                let mut len = 0;
                let mut quote_open = false;
                while i + len < chars.len() {
                    let ch = chars[i + len];
                    // A quoted key right after a dot (`attr."dotted.key"`) belongs to the word.
                    if ch == '"' && (quote_open || (len > 0 && chars[i + len - 1] == '.')) {
                        quote_open = !quote_open;
                        len += 1;
                        continue;
                    }
                    if quote_open || is_word_char(ch) {
                        len += 1;
                    } else {
                        break;
                    }
                }
                if quote_open {
                    return Err(format!("at column {column}: unterminated quoted key"));
                }
                (TokenKind::Word(chars[i..i + len].iter().collect()), len)
            }
        };
        res.push(Token { kind, column });
        i += len;
    }
    Ok(res)
}

/// Reads a quoted string starting at `chars[0]` (the quote); returns the text and the length
/// consumed. `\` escapes the next character.
fn lex_quoted(chars: &[char], column: usize) -> Result<(String, usize), String> {
    let quote = chars[0];
    let mut res = String::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                res.push(chars[i + 1]);
                i += 2;
            }
            c if c == quote => return Ok((res, i + 1)),
            c => {
                res.push(c);
                i += 1;
            }
        }
    }
    Err(format!("at column {column}: unterminated string (missing closing {quote})"))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// The column just past the input, for errors at its end.
    end_column: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let res = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        res
    }

    fn peek_keyword(&self) -> Option<String> {
        self.peek().and_then(Token::keyword)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.and()?];
        while self.peek_keyword().as_deref() == Some("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(flatten(items, false))
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.unary()?];
        loop {
            match self.peek() {
                None => break,
                Some(token) if token.kind == TokenKind::RParen => break,
                Some(token) => match token.keyword().as_deref() {
                    Some("or") => break,
                    Some("and") => {
                        self.pos += 1;
                        items.push(self.unary()?);
                    }
                    _ => items.push(self.unary()?),
                },
            }
        }
        Ok(flatten(items, true))
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_keyword().as_deref() == Some("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    /// An error at the current token, or at the end of the input.
    fn error_here(&self, expected: &str) -> String {
        match self.peek() {
            Some(token) => {
                format!("at column {}: {expected}, found {}", token.column, token.describe())
            }
            None => format!("at column {}: {expected}", self.end_column),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let Some(token) = self.next() else {
            return Err(format!("at column {}: expected a filter term", self.end_column));
        };
        match &token.kind {
            TokenKind::LParen => {
                let res = self.or()?;
                match self.next() {
                    Some(Token { kind: TokenKind::RParen, .. }) => Ok(res),
                    _ => {
                        self.pos -= 1;
                        Err(self.error_here(&format!(
                            "expected ')' to close the '(' at column {}",
                            token.column
                        )))
                    }
                }
            }
            TokenKind::RParen => {
                Err(format!("at column {}: expected a filter term, found ')'", token.column))
            }
            TokenKind::Op(op) => Err(format!(
                "at column {}: expected a field name before '{}'",
                token.column,
                op_text(*op)
            )),
            TokenKind::Quoted(text) => {
                if let Some(Token { kind: TokenKind::Op(op), column }) = self.peek() {
                    return Err(format!(
                        "at column {column}: '{}' after a quoted string; a field name is not quoted",
                        op_text(*op)
                    ));
                }
                Ok(Expr::Text(text.clone()))
            }
            TokenKind::Word(word) => {
                let lower = word.to_ascii_lowercase();
                if lower == "has" {
                    return self.has(&token);
                }
                // `no FIELD` (e.g. `no feedback`) is `not has FIELD`, when a field name follows
                // and no operator comes after it; otherwise `no` is a word to search for.
                if lower == "no" && self.no_field_follows() {
                    return Ok(Expr::Not(Box::new(self.has(&token)?)));
                }
                if matches!(lower.as_str(), "and" | "or") {
                    return Err(format!(
                        "at column {}: expected a filter term before '{lower}'",
                        token.column
                    ));
                }
                let op = match self.peek() {
                    Some(Token { kind: TokenKind::Op(op), .. }) => Some(*op),
                    _ => None,
                };
                match (op, resolve_field(word)) {
                    (Some(op), Some(target)) => {
                        self.pos += 1;
                        self.comparison(word, target, op)
                    }
                    (Some(_), None) => Err(format!(
                        "at column {}: unknown field '{word}'; known fields: {}",
                        token.column,
                        known_fields()
                    )),
                    (None, Some(Target::Field(..))) => Err(self.error_here(&format!(
                        "expected an operator (= != < <= > >= ~ !~) after '{word}'"
                    ))),
                    (None, _) => Ok(Expr::Text(word.clone())),
                }
            }
        }
    }

    /// Whether the next tokens are a field name not followed by an operator.
    fn no_field_follows(&self) -> bool {
        let field = match self.tokens.get(self.pos).map(|t| &t.kind) {
            Some(TokenKind::Word(word)) => resolve_field(word),
            _ => None,
        };
        let op_after =
            matches!(self.tokens.get(self.pos + 1), Some(Token { kind: TokenKind::Op(_), .. }));
        matches!(field, Some(Target::Field(..))) && !op_after
    }

    fn has(&mut self, has_token: &Token) -> Result<Expr, String> {
        let Some(token) = self.next() else {
            return Err(format!(
                "at column {}: expected a field name after 'has'",
                self.end_column
            ));
        };
        let TokenKind::Word(word) = &token.kind else {
            return Err(format!(
                "at column {}: expected a field name after 'has', found {}",
                token.column,
                token.describe()
            ));
        };
        match resolve_field(word) {
            Some(Target::Field(field, _)) => Ok(Expr::Exists(field)),
            Some(Target::Text) => Err(format!(
                "at column {}: 'has text' is not supported; use text ~ \"word\"",
                has_token.column
            )),
            None => Err(format!(
                "at column {}: unknown field '{word}'; known fields: {}",
                token.column,
                known_fields()
            )),
        }
    }

    fn comparison(&mut self, word: &str, target: Target, op: CmpOp) -> Result<Expr, String> {
        let op_column = self.tokens[self.pos - 1].column;
        let after = format!("after '{}'", op_text(op));
        let value_token = match self.next() {
            Some(token @ Token { kind: TokenKind::Word(_) | TokenKind::Quoted(_), .. }) => token,
            Some(token) => {
                return Err(format!(
                    "at column {}: expected a value {after}, found {}",
                    token.column,
                    token.describe()
                ));
            }
            None => {
                return Err(format!("at column {}: expected a value {after}", self.end_column));
            }
        };
        let column = value_token.column;
        let (text, quoted) = match value_token.kind {
            TokenKind::Word(word) => (word, false),
            TokenKind::Quoted(text) => (text, true),
            _ => unreachable!("matched above"),
        };
        let ordered = matches!(op, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge);
        let glob = matches!(op, CmpOp::Glob | CmpOp::NotGlob);
        let (field, kind) = match target {
            Target::Text => {
                return match op {
                    CmpOp::Eq | CmpOp::Glob => Ok(Expr::Text(text)),
                    CmpOp::Ne | CmpOp::NotGlob => Ok(Expr::Not(Box::new(Expr::Text(text)))),
                    _ => Err(format!(
                        "at column {op_column}: 'text' takes = ~ != !~, not '{}'",
                        op_text(op)
                    )),
                };
            }
            Target::Field(field, kind) => (field, kind),
        };
        let value = match kind {
            FieldKind::Text => Value::Str(text),
            FieldKind::Enum(values) => {
                if ordered {
                    return Err(format!(
                        "at column {op_column}: '{word}' takes = != ~ !~, not '{}'",
                        op_text(op)
                    ));
                }
                let lower = text.to_ascii_lowercase();
                if !glob && !values.contains(&lower.as_str()) {
                    return Err(format!(
                        "at column {column}: unknown {word} '{text}'; expected one of: {}",
                        values.join(", ")
                    ));
                }
                Value::Str(lower)
            }
            FieldKind::Number => {
                if glob {
                    return Err(format!(
                        "at column {op_column}: '{word}' is a number; use = != < <= > >="
                    ));
                }
                match number(&text) {
                    Some(value) if !quoted => value,
                    _ => {
                        return Err(format!(
                            "at column {column}: expected a number {after}, found '{text}'"
                        ));
                    }
                }
            }
            FieldKind::Duration => {
                if glob {
                    return Err(format!(
                        "at column {op_column}: '{word}' is a duration; use = != < <= > >="
                    ));
                }
                match duration_ns(&text) {
                    Some(ns) if !quoted => Value::DurationNs(ns),
                    _ => {
                        return Err(format!(
                            "at column {column}: expected a duration with a unit \
                             (500us, 150ms, 2s, 3m, 1h) {after}, found '{text}'"
                        ));
                    }
                }
            }
            FieldKind::Any => {
                if quoted || glob {
                    Value::Str(text)
                } else if let Some(value) = number(&text) {
                    value
                } else if text.eq_ignore_ascii_case("true") {
                    Value::Bool(true)
                } else if text.eq_ignore_ascii_case("false") {
                    Value::Bool(false)
                } else {
                    Value::Str(text)
                }
            }
        };
        Ok(Expr::Cmp { field, op, value })
    }
}

fn flatten(items: Vec<Expr>, and: bool) -> Expr {
    if items.len() == 1 {
        return items.into_iter().next().unwrap_or(Expr::And(Vec::new()));
    }
    let mut res = Vec::new();
    for item in items {
        match item {
            Expr::And(inner) if and => res.extend(inner),
            Expr::Or(inner) if !and => res.extend(inner),
            other => res.push(other),
        }
    }
    if and { Expr::And(res) } else { Expr::Or(res) }
}

fn number(text: &str) -> Option<Value> {
    if let Ok(int) = text.parse::<i64>() {
        return Some(Value::Int(int));
    }
    let starts_numeric =
        text.trim_start_matches(['-', '+']).starts_with(|c: char| c.is_ascii_digit() || c == '.');
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() && starts_numeric => Some(Value::Float(float)),
        _ => None,
    }
}

/// `500us`, `150ms`, `2s`, `1.5s`, `3m`, `1h`, `10ns` (also `µs`).
pub(crate) fn duration_ns(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (amount, unit) = text.split_at(split);
    let scale: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let amount: f64 = amount.parse().ok()?;
    let ns = (amount * scale).round();
    (ns.is_finite() && ns >= 0.0 && ns < u64::MAX as f64).then_some(ns as u64)
}

fn op_text(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Glob => "~",
        CmpOp::NotGlob => "!~",
    }
}

fn field_name(field: &Field) -> String {
    let key = |prefix: &str, key: &str| {
        if !key.is_empty() && key.chars().all(|c| is_word_char(c) && c != '.') {
            format!("{prefix}.{key}")
        } else {
            format!("{prefix}.{}", quote(key))
        }
    };
    match field {
        Field::Attr(k) => key("attr", k),
        Field::ResourceAttr(k) => key("resource", k),
        Field::Score(k) => key("score", k),
        other => field_specs()
            .into_iter()
            .find(|spec| spec.field == *other)
            .map(|spec| spec.names[0].to_owned())
            .unwrap_or_default(),
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn format_duration(ns: u64) -> String {
    for (unit, scale) in [("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000)] {
        if ns != 0 && ns.is_multiple_of(scale) {
            return format!("{}{unit}", ns / scale);
        }
    }
    for (unit, scale) in [("ms", 1_000_000), ("us", 1_000)] {
        if ns != 0 && ns.is_multiple_of(scale) {
            return format!("{}{unit}", ns / scale);
        }
    }
    format!("{ns}ns")
}

fn format_value(field: &Field, value: &Value) -> String {
    let bare_ok = |text: &str| {
        !text.is_empty()
            && text.chars().all(is_word_char)
            && !matches!(text.to_ascii_lowercase().as_str(), "and" | "or" | "not" | "has")
    };
    match value {
        Value::Str(text) => {
            let is_any = matches!(
                field,
                Field::Attr(_) | Field::ResourceAttr(_) | Field::Rating | Field::Score(_)
            );
            let looks_typed = number(text).is_some()
                || text.eq_ignore_ascii_case("true")
                || text.eq_ignore_ascii_case("false");
            if bare_ok(text) && !(is_any && looks_typed) { text.clone() } else { quote(text) }
        }
        Value::Int(int) => int.to_string(),
        Value::Float(float) => {
            let text = float.to_string();
            if text.contains(['.', 'e', 'E']) { text } else { format!("{text}.0") }
        }
        Value::Bool(b) => b.to_string(),
        Value::DurationNs(ns) => format_duration(*ns),
    }
}

/// Precedence: 0 = or, 1 = and, 2 = unary.
fn write_expr(expr: &Expr, parent: u8, out: &mut String) {
    match expr {
        Expr::Or(items) | Expr::And(items) => {
            let (prec, sep) = if matches!(expr, Expr::Or(_)) { (0, " or ") } else { (1, " and ") };
            if items.is_empty() {
                // An empty and is "everything"; an empty or is "nothing". Neither has a syntax
                // of its own; write them as the neutral grouping.
                out.push_str("()");
                return;
            }
            let paren = parent > prec && items.len() > 1;
            if paren {
                out.push('(');
            }
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                write_expr(item, prec + 1, out);
            }
            if paren {
                out.push(')');
            }
        }
        Expr::Not(inner) => {
            out.push_str("not ");
            write_expr(inner, 2, out);
        }
        Expr::Cmp { field, op, value } => {
            out.push_str(&format!(
                "{} {} {}",
                field_name(field),
                op_text(*op),
                format_value(field, value)
            ));
        }
        Expr::Exists(field) => out.push_str(&format!("has {}", field_name(field))),
        Expr::Text(text) => out.push_str(&format!("text ~ {}", quote(text))),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// Renders the parse result as a compact tree, and checks that formatting it parses back
    /// to the same expression.
    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match parse(input) {
            Ok(None) => "none".to_owned(),
            Ok(Some(expr)) => {
                let formatted = format(&expr);
                assert_eq!(parse(&formatted), Ok(Some(expr.clone())), "round trip of {formatted}");
                format!("{}\n{formatted}", render(&expr))
            }
            Err(message) => format!("error: {message}"),
        };
        expect.assert_eq(&actual);
    }

    fn render(expr: &Expr) -> String {
        match expr {
            Expr::And(items) => {
                format!("(and {})", items.iter().map(render).collect::<Vec<_>>().join(" "))
            }
            Expr::Or(items) => {
                format!("(or {})", items.iter().map(render).collect::<Vec<_>>().join(" "))
            }
            Expr::Not(inner) => format!("(not {})", render(inner)),
            Expr::Cmp { field, op, value } => format!("({field:?} {op:?} {value:?})"),
            Expr::Exists(field) => format!("(exists {field:?})"),
            Expr::Text(text) => format!("(text {text:?})"),
        }
    }

    #[test]
    fn no_field_means_not_has() {
        check(
            "no feedback",
            expect![[r#"
            (not (exists Feedback))
            not has feedback"#]],
        );
        check(
            "type = llm and no correction",
            expect![[r#"
            (and (SpanType Eq Str("llm")) (not (exists Correction)))
            type = llm and not has correction"#]],
        );
        // Without a field after it, or with an operator after the field, `no` is a word.
        check(
            "no refund",
            expect![[r#"
            (and (text "no") (text "refund"))
            text ~ "no" and text ~ "refund""#]],
        );
    }

    #[test]
    fn empty_is_no_filter() {
        check("", expect!["none"]);
        check("   ", expect!["none"]);
    }

    #[test]
    fn the_example() {
        check(
            r#"type = llm and model ~ "gpt-4o*" and duration > 2s and status = error"#,
            expect![[r#"
                (and (SpanType Eq Str("llm")) (Model Glob Str("gpt-4o*")) (Duration Gt DurationNs(2000000000)) (Status Eq Str("error")))
                type = llm and model ~ gpt-4o* and duration > 2s and status = error"#]],
        );
    }

    #[test]
    fn precedence_and_parentheses() {
        check(
            "service = api or service = worker and not status = ok",
            expect![[r#"
                (or (Service Eq Str("api")) (and (Service Eq Str("worker")) (not (Status Eq Str("ok")))))
                service = api or service = worker and not status = ok"#]],
        );
        check(
            "(service = api or service = worker) and (model = a or (model = b and tokens >= 10))",
            expect![[r#"
                (and (or (Service Eq Str("api")) (Service Eq Str("worker"))) (or (Model Eq Str("a")) (and (Model Eq Str("b")) (TotalTokens Ge Int(10)))))
                (service = api or service = worker) and (model = a or model = b and tokens >= 10)"#]],
        );
        check(
            "NOT (a OR b) AND c",
            expect![[r#"
                (and (not (or (text "a") (text "b"))) (text "c"))
                not (text ~ "a" or text ~ "b") and text ~ "c""#]],
        );
    }

    #[test]
    fn operators() {
        check(
            "tokens = 1 tokens == 2 tokens != 3 tokens < 4 tokens <= 5 tokens > 6 tokens >= 7",
            expect![[r#"
                (and (TotalTokens Eq Int(1)) (TotalTokens Eq Int(2)) (TotalTokens Ne Int(3)) (TotalTokens Lt Int(4)) (TotalTokens Le Int(5)) (TotalTokens Gt Int(6)) (TotalTokens Ge Int(7)))
                tokens = 1 and tokens = 2 and tokens != 3 and tokens < 4 and tokens <= 5 and tokens > 6 and tokens >= 7"#]],
        );
        check(
            "name~'chat *' name!~llm.?",
            expect![[r#"
                (and (Name Glob Str("chat *")) (Name NotGlob Str("llm.?")))
                name ~ "chat *" and name !~ llm.?"#]],
        );
    }

    #[test]
    fn every_field_and_alias() {
        check(
            "type = tool name = x kind = CLIENT service = s operation = o model = m \
             provider = p status = OK duration < 500us input_tokens > 1 output_tokens > 2 \
             tokens > 3 cost > 0.25 session = s1 user = u1 tag = t env = prod \
             trace_id = 48f9 span_id = 01 root_name = r trace.duration >= 1h rating = 1 \
             score.helpful >= 0.5 feedback.tag = wrong correction = x feedback = y",
            expect![[r#"
                (and (SpanType Eq Str("tool")) (Name Eq Str("x")) (Kind Eq Str("client")) (Service Eq Str("s")) (Operation Eq Str("o")) (Model Eq Str("m")) (Provider Eq Str("p")) (Status Eq Str("ok")) (Duration Lt DurationNs(500000)) (InputTokens Gt Int(1)) (OutputTokens Gt Int(2)) (TotalTokens Gt Int(3)) (Cost Gt Float(0.25)) (Session Eq Str("s1")) (User Eq Str("u1")) (Tag Eq Str("t")) (Environment Eq Str("prod")) (TraceId Eq Str("48f9")) (SpanId Eq Str("01")) (RootName Eq Str("r")) (TraceDuration Ge DurationNs(3600000000000)) (Rating Eq Int(1)) (Score("helpful") Ge Float(0.5)) (FeedbackTag Eq Str("wrong")) (Correction Eq Str("x")) (Feedback Eq Str("y")))
                type = tool and name = x and kind = client and service = s and operation = o and model = m and provider = p and status = ok and duration < 500us and input_tokens > 1 and output_tokens > 2 and tokens > 3 and cost > 0.25 and session = s1 and user = u1 and tag = t and env = prod and trace_id = 48f9 and span_id = 01 and root_name = r and trace.duration >= 1h and rating = 1 and score.helpful >= 0.5 and feedback.tag = wrong and correction = x and feedback = y"#]],
        );
        check(
            "span_type = llm service.name = a operation_id = b session.id = c user_id = d \
             environment = e prompt_tokens > 1 completion_tokens > 2 total_tokens > 3 \
             latency > 3m root = r tags = t",
            expect![[r#"
                (and (SpanType Eq Str("llm")) (Service Eq Str("a")) (Operation Eq Str("b")) (Session Eq Str("c")) (User Eq Str("d")) (Environment Eq Str("e")) (InputTokens Gt Int(1)) (OutputTokens Gt Int(2)) (TotalTokens Gt Int(3)) (Duration Gt DurationNs(180000000000)) (RootName Eq Str("r")) (Tag Eq Str("t")))
                type = llm and service = a and operation = b and session = c and user = d and env = e and input_tokens > 1 and output_tokens > 2 and tokens > 3 and duration > 3m and root_name = r and tag = t"#]],
        );
    }

    #[test]
    fn attributes() {
        check(
            r#"attr.http.status_code = 200 attr."app.tier" = "gold" resource.service.version ~ "1.*" attr.stream = true attr.ratio < 0.5 attr.code = "200""#,
            expect![[r#"
                (and (Attr("http.status_code") Eq Int(200)) (Attr("app.tier") Eq Str("gold")) (ResourceAttr("service.version") Glob Str("1.*")) (Attr("stream") Eq Bool(true)) (Attr("ratio") Lt Float(0.5)) (Attr("code") Eq Str("200")))
                attr."http.status_code" = 200 and attr."app.tier" = gold and resource."service.version" ~ 1.* and attr.stream = true and attr.ratio < 0.5 and attr.code = "200""#]],
        );
        check(
            r#"has attr."gen_ai.request.seed" and has session and not has correction"#,
            expect![[r#"
                (and (exists Attr("gen_ai.request.seed")) (exists Session) (not (exists Correction)))
                has attr."gen_ai.request.seed" and has session and not has correction"#]],
        );
    }

    #[test]
    fn scores_of_every_type() {
        check(
            r#"score.csat <= 2 score.verdict = "fail" score.correct = false score.tone ~ "pol*""#,
            expect![[r#"
                (and (Score("csat") Le Int(2)) (Score("verdict") Eq Str("fail")) (Score("correct") Eq Bool(false)) (Score("tone") Glob Str("pol*")))
                score.csat <= 2 and score.verdict = fail and score.correct = false and score.tone ~ pol*"#]],
        );
        // No `in`: a set of categories is an `or`. A quoted number stays a category.
        check(
            r#"(score.verdict = fail or score.verdict = partial) and score.grade = "1""#,
            expect![[r#"
                (and (or (Score("verdict") Eq Str("fail")) (Score("verdict") Eq Str("partial"))) (Score("grade") Eq Str("1")))
                (score.verdict = fail or score.verdict = partial) and score.grade = "1""#]],
        );
    }

    #[test]
    fn full_text() {
        check(
            r#""refund policy" and text ~ "refund" text != spam"#,
            expect![[r#"
                (and (text "refund policy") (text "refund") (not (text "spam")))
                text ~ "refund policy" and text ~ "refund" and not text ~ "spam""#]],
        );
        check(
            r#"refund 'say \'hi\'' type = llm"#,
            expect![[r#"
                (and (text "refund") (text "say 'hi'") (SpanType Eq Str("llm")))
                text ~ "refund" and text ~ "say 'hi'" and type = llm"#]],
        );
    }

    #[test]
    fn durations_and_numbers() {
        check(
            "duration >= 10ns duration < 1.5s duration != 250ms cost <= 1e-3 tokens > -1",
            expect![[r#"
                (and (Duration Ge DurationNs(10)) (Duration Lt DurationNs(1500000000)) (Duration Ne DurationNs(250000000)) (Cost Le Float(0.001)) (TotalTokens Gt Int(-1)))
                duration >= 10ns and duration < 1500ms and duration != 250ms and cost <= 0.001 and tokens > -1"#]],
        );
    }

    #[test]
    fn errors() {
        check("duration >", expect!["error: at column 11: expected a value after '>'"]);
        check(
            "type = llm and duration > ",
            expect!["error: at column 27: expected a value after '>'"],
        );
        check(
            "duration > fast",
            expect![
                "error: at column 12: expected a duration with a unit (500us, 150ms, 2s, 3m, 1h) after '>', found 'fast'"
            ],
        );
        check(
            "duration > 200",
            expect![
                "error: at column 12: expected a duration with a unit (500us, 150ms, 2s, 3m, 1h) after '>', found '200'"
            ],
        );
        check(
            "tokens > many",
            expect!["error: at column 10: expected a number after '>', found 'many'"],
        );
        check(
            "modle = gpt-4o",
            expect![
                "error: at column 1: unknown field 'modle'; known fields: type, name, kind, service, operation, model, provider, status, duration, input_tokens, output_tokens, tokens, cost, session, user, tag, env, trace_id, span_id, root_name, trace.duration, rating, feedback.tag, correction, feedback, attr.KEY, resource.KEY, score.NAME, text"
            ],
        );
        check(
            "has modle",
            expect![
                "error: at column 5: unknown field 'modle'; known fields: type, name, kind, service, operation, model, provider, status, duration, input_tokens, output_tokens, tokens, cost, session, user, tag, env, trace_id, span_id, root_name, trace.duration, rating, feedback.tag, correction, feedback, attr.KEY, resource.KEY, score.NAME, text"
            ],
        );
        check(
            "type = lm",
            expect![
                "error: at column 8: unknown type 'lm'; expected one of: llm, embedding, retrieval, reranker, tool, agent, chain, evaluator, guardrail, http, db, other"
            ],
        );
        check("status > ok", expect!["error: at column 8: 'status' takes = != ~ !~, not '>'"]);
        check(
            "tokens ~ 1*",
            expect!["error: at column 8: 'tokens' is a number; use = != < <= > >="],
        );
        check(
            "(type = llm",
            expect!["error: at column 12: expected ')' to close the '(' at column 1"],
        );
        check("type = llm)", expect!["error: at column 11: unmatched ')'"]);
        check(
            "model",
            expect!["error: at column 6: expected an operator (= != < <= > >= ~ !~) after 'model'"],
        );
        check(
            "name = \"abc",
            expect!["error: at column 8: unterminated string (missing closing \")"],
        );
        check("= x", expect!["error: at column 1: expected a field name before '='"]);
        check("type = llm and", expect!["error: at column 15: expected a filter term"]);
        check("and x", expect!["error: at column 1: expected a filter term before 'and'"]);
        check("name = = x", expect!["error: at column 8: expected a value after '=', found '='"]);
        check(
            "! name = x",
            expect!["error: at column 1: expected '!=' or '!~' (use 'not' to negate)"],
        );
        check(
            "\"x\" = y",
            expect!["error: at column 5: '=' after a quoted string; a field name is not quoted"],
        );
        check("text > 1", expect!["error: at column 6: 'text' takes = ~ != !~, not '>'"]);
        check("()", expect!["error: at column 2: expected a filter term, found ')'"]);
    }
}
