//! The backend-neutral test suite: every backend's tests call [`run_all`] (or the individual
//! checks) with fresh, empty stores. A backend is correct when all of them pass.
//!
//! The checks pin the contract's semantics that the trait's docs only name:
//!
//! - a comparison with a missing value is false; `!=` and `!~` are `not =` and `not ~`, so they
//!   match spans without the field; `~` is a case-insensitive glob;
//! - a span without its own `view.operation_id` reports its trace root's operation id (the
//!   root's own, else the root's name) once the root is stored, everywhere: `get_trace`,
//!   `search_spans`, trace summaries and the `operation` filter; `scan_spans` returns views as
//!   stored;
//! - a trace matches a trace query when one of its spans matches the whole filter;
//! - percentiles are over span durations; the checks use data where every definition agrees.
//!
//! Checks panic (with `assert!`) on the first difference, so they are meant to be called from
//! tests. Writes go through `write_spans` with every span of a check in the same project unless
//! the check is about projects.

pub mod evals;
pub mod feedback;
pub mod retention;
pub mod span_events;

use std::collections::BTreeMap;
use std::future::Future;

use model::{
    AnyValue, Event, KeyValue, Link, LlmView, Message, ProjectId, RawSpan, Resource, Scope, SpanId,
    SpanKind, SpanType, Status, StatusCode, StoredSpan, TraceId, Usage,
};
use rust_decimal::Decimal;

use crate::{
    AggregateQuery, ApiKeyRecord, Cursor, FacetQuery, GroupBy, Metric, SpanQuery, Store, TimeRange,
    TraceQuery, TraceSummary,
};

/// Runs every check against stores made by `make_store` (one fresh store per check).
pub async fn run_all<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn Store>>,
{
    write_and_get_trace_round_trip(&*make_store().await).await;
    duplicates_are_stored_once(&*make_store().await).await;
    records_encoded_ahead_are_stored_as_written(&*make_store().await).await;
    out_of_order_spans_assemble_one_trace(&*make_store().await).await;
    orphans_are_returned(&*make_store().await).await;
    operation_id_comes_from_the_root(&*make_store().await).await;
    filters_on_every_field(&*make_store().await).await;
    full_text_search(&*make_store().await).await;
    time_range_order_and_pagination(&*make_store().await).await;
    trace_search_and_summaries(&*make_store().await).await;
    sessions_are_oldest_first(&*make_store().await).await;
    facets_count_values(&*make_store().await).await;
    aggregate_groups_and_buckets(&*make_store().await).await;
    scan_and_update_views(&*make_store().await).await;
    api_keys_crud(&*make_store().await).await;
    projects_are_isolated(&*make_store().await).await;
}

/// Base time of all test spans: 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600_000_000_000;
const MS: u64 = 1_000_000;

pub fn project(name: &str) -> ProjectId {
    // The names used in the suite are valid project ids.
    ProjectId::new(name).unwrap_or_else(|e| panic!("{e}"))
}

pub fn trace_id(n: u64) -> TraceId {
    let mut bytes = [0u8; 16];
    bytes[0] = 0x48;
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    TraceId::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"))
}

pub fn span_id(n: u64) -> SpanId {
    let mut bytes = n.to_be_bytes();
    bytes[0] = 0x5a;
    SpanId::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// A plain span of `trace`, starting `start_ms` after [`T0`] and lasting `duration_ms`.
pub fn span(
    project_name: &str,
    trace: u64,
    id: u64,
    parent: Option<u64>,
    name: &str,
    start_ms: u64,
    duration_ms: u64,
) -> StoredSpan {
    let raw = RawSpan {
        parent_span_id: parent.map(span_id),
        kind: SpanKind::Internal,
        resource: Resource {
            attributes: vec![KeyValue::string("service.name", "api")],
            dropped_attributes_count: 0,
        },
        ..RawSpan::new(
            trace_id(trace),
            span_id(id),
            name,
            T0 + start_ms * MS,
            T0 + (start_ms + duration_ms) * MS,
        )
    };
    StoredSpan { project: project(project_name), raw, view: LlmView::default() }
}

/// Makes `span` an LLM call with a prompt and a completion.
pub fn llm(mut span: StoredSpan, model: &str, input: u64, output: u64, prompt: &str) -> StoredSpan {
    span.view.span_type = SpanType::Llm;
    span.view.operation_name = Some("chat".to_owned());
    span.view.provider = Some("openai".to_owned());
    span.view.request_model = Some(model.to_owned());
    span.view.response_model = Some(model.to_owned());
    span.view.usage = Usage { input: Some(input), output: Some(output), ..Usage::default() };
    span.view.input_messages = vec![Message::text("user", prompt)];
    span.view.output_messages = vec![Message::text("assistant", "Sure, here it is.")];
    span.raw.kind = SpanKind::Client;
    span
}

fn names(spans: &[StoredSpan]) -> Vec<String> {
    spans.iter().map(|span| span.raw.name.clone()).collect()
}

async fn write(store: &dyn Store, spans: &[StoredSpan]) -> crate::WriteStats {
    store.write_spans(spans).await.unwrap_or_else(|e| panic!("write_spans failed: {e}"))
}

async fn get_trace(store: &dyn Store, project_name: &str, trace: u64) -> Vec<StoredSpan> {
    store
        .get_trace(&project(project_name), trace_id(trace))
        .await
        .unwrap_or_else(|e| panic!("get_trace failed: {e}"))
}

/// Every page of a span search.
async fn all_spans(store: &dyn Store, project_name: &str, mut query: SpanQuery) -> Vec<StoredSpan> {
    let mut res = Vec::new();
    for _ in 0..10_000 {
        let page = store
            .search_spans(&project(project_name), &query)
            .await
            .unwrap_or_else(|e| panic!("search_spans failed: {e}"));
        res.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return res,
        }
    }
    panic!("search_spans never ended its pagination");
}

/// Every page of a trace search.
async fn all_traces(
    store: &dyn Store,
    project_name: &str,
    mut query: TraceQuery,
) -> Vec<TraceSummary> {
    let mut res = Vec::new();
    for _ in 0..10_000 {
        let page = store
            .search_traces(&project(project_name), &query)
            .await
            .unwrap_or_else(|e| panic!("search_traces failed: {e}"));
        res.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return res,
        }
    }
    panic!("search_traces never ended its pagination");
}

fn filter_query(filter: &str, limit: u32) -> SpanQuery {
    let filter = crate::syntax::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    SpanQuery { filter, limit, ..SpanQuery::default() }
}

/// The names of the spans matching `filter`, sorted.
async fn matching(store: &dyn Store, project_name: &str, filter: &str) -> Vec<String> {
    let mut res = names(&all_spans(store, project_name, filter_query(filter, 100)).await);
    res.sort();
    res
}

#[track_caller]
fn assert_names(actual: Vec<String>, expected: &[&str], context: &str) {
    let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(actual, expected, "{context}");
}

/// A raw span and view with every field set come back exactly as written.
pub async fn write_and_get_trace_round_trip(store: &dyn Store) {
    let mut root = span("p1", 1, 1, None, "turn", 0, 900);
    root.view.operation_id = Some("refund_chat".to_owned());
    root.raw.kind = SpanKind::Server;
    root.raw.trace_state = "vendor=1".to_owned();
    root.raw.flags = 1;
    root.raw.schema_url = "https://opentelemetry.io/schemas/1.30.0".to_owned();
    root.raw.attributes = vec![
        KeyValue::string("http.route", "/chat"),
        KeyValue::int("retries", 2),
        KeyValue::new("ratio", AnyValue::Double(0.25)),
        KeyValue::new("overflow", AnyValue::Double(f64::NEG_INFINITY)),
        KeyValue::new("ok", AnyValue::Bool(true)),
        KeyValue::new("blob", AnyValue::Bytes(vec![0, 1, 255])),
        KeyValue::new(
            "nested",
            AnyValue::KvList(vec![KeyValue::new(
                "list",
                AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Empty]),
            )]),
        ),
    ];
    root.raw.dropped_attributes_count = 3;
    root.raw.events = vec![Event {
        time_unix_nano: T0 + 5 * MS,
        name: "exception".to_owned(),
        attributes: vec![KeyValue::string("exception.message", "boom")],
        dropped_attributes_count: 1,
    }];
    root.raw.links = vec![Link {
        trace_id: trace_id(99),
        span_id: span_id(99),
        trace_state: String::new(),
        attributes: vec![KeyValue::string("link.kind", "follows")],
        dropped_attributes_count: 0,
        flags: 1,
    }];
    root.raw.status = Status { code: StatusCode::Ok, message: "fine".to_owned() };
    root.raw.scope = Scope {
        name: "app".to_owned(),
        version: "1.2".to_owned(),
        attributes: vec![KeyValue::string("scope.attr", "x")],
        dropped_attributes_count: 0,
    };
    root.view.session_id = Some("s-1".to_owned());
    root.view.user_id = Some("u-1".to_owned());
    root.view.tags = vec!["beta".to_owned(), "vip".to_owned()];
    root.view.metadata = BTreeMap::from([("tier".to_owned(), serde_json::json!("gold"))]);
    root.view.environment = Some("prod".to_owned());
    let mut child = llm(
        span("p1", 1, 2, Some(1), "llm.generate", 100, 700),
        "gpt-4o",
        1200,
        80,
        "What is the refund policy?",
    );
    child.view.operation_id = Some("refund_chat".to_owned());
    child.view.cost = Some(Decimal::new(1234, 6));
    child.view.finish_reasons = vec!["stop".to_owned()];
    child.view.system_instructions = vec![model::Part::Text { content: "Be brief.".to_owned() }];

    let stats = write(store, &[child.clone(), root.clone()]).await;
    assert_eq!((stats.n_written, stats.n_duplicates), (2, 0));
    let trace = get_trace(store, "p1", 1).await;
    assert_eq!(trace, vec![root, child], "get_trace returns spans as written, by start time");
    assert!(get_trace(store, "p1", 2).await.is_empty(), "an unknown trace is empty");
    assert!(!store.backend_name().is_empty());
}

/// Spans sent twice (across and within batches) are stored and counted once.
pub async fn duplicates_are_stored_once(store: &dyn Store) {
    let root = span("p1", 1, 1, None, "root", 0, 100);
    let child = llm(span("p1", 1, 2, Some(1), "call", 10, 50), "m", 10, 5, "hi");
    let stats = write(store, &[root.clone(), child.clone(), child.clone()]).await;
    assert_eq!((stats.n_written, stats.n_duplicates), (2, 1));
    let stats = write(store, &[child.clone(), root.clone()]).await;
    assert_eq!((stats.n_written, stats.n_duplicates), (0, 2));
    assert_eq!(names(&get_trace(store, "p1", 1).await), ["root", "call"]);
    let traces = all_traces(store, "p1", TraceQuery::default()).await;
    assert_eq!(traces.len(), 1);
    let summary = &traces[0];
    assert_eq!(
        (summary.n_spans, summary.n_llm_spans, summary.input_tokens, summary.output_tokens),
        (2, 1, 10, 5),
        "duplicates do not count twice in roll-ups"
    );
    assert_eq!(all_spans(store, "p1", SpanQuery::default()).await.len(), 2);
}

/// Spans written with records encoded ahead (`encode_records`, then `write_spans_encoded`) are
/// stored, deduplicated, searched and rolled up exactly as by `write_spans`; so are staged ones.
pub async fn records_encoded_ahead_are_stored_as_written(store: &dyn Store) {
    let mut root = span("p1", 1, 1, None, "turn", 0, 900);
    root.view.session_id = Some("s-1".to_owned());
    root.view.operation_id = Some("turn".to_owned());
    root.raw.attributes = vec![KeyValue::string("http.route", "/chat")];
    let mut child =
        llm(span("p1", 1, 2, Some(1), "call", 100, 700), "gpt-4o", 12, 8, "refund policy");
    child.view.operation_id = Some("turn".to_owned());
    let batch = [child.clone(), root.clone(), child.clone()];
    let stats = match store.encode_records(&batch).expect("encode_records") {
        Some(records) => {
            assert_eq!(records.len(), batch.len(), "one record per span");
            store.write_spans_encoded(&batch, &records).await.expect("write_spans_encoded")
        }
        None => write(store, &batch).await,
    };
    assert_eq!((stats.n_written, stats.n_duplicates), (2, 1));
    assert_eq!(get_trace(store, "p1", 1).await, vec![root.clone(), child.clone()]);
    assert_eq!(matching(store, "p1", "text ~ \"refund\"").await, ["call"]);
    let traces = all_traces(store, "p1", TraceQuery::default()).await;
    assert_eq!((traces.len(), traces[0].input_tokens), (1, 12));

    // Staged (tail sampling) with records: kept at once, so stored now.
    let mut other = span("p1", 2, 1, None, "other", 0, 10);
    other.view.operation_id = Some("other".to_owned());
    let records = store.encode_records(std::slice::from_ref(&other)).expect("encode_records");
    let stats = store
        .stage_spans(std::slice::from_ref(&other), &[true], records.as_deref())
        .await
        .expect("stage_spans");
    assert_eq!(stats.n_written, 1);
    assert_eq!(get_trace(store, "p1", 2).await, vec![other]);
}

/// A trace whose spans arrive over many writes, children first, is one tree.
pub async fn out_of_order_spans_assemble_one_trace(store: &dyn Store) {
    let root = span("p1", 7, 1, None, "root", 0, 1000);
    let a = span("p1", 7, 2, Some(1), "a", 100, 300);
    let a1 = llm(span("p1", 7, 3, Some(2), "a1", 150, 100), "m", 1, 2, "x");
    let b = span("p1", 7, 4, Some(1), "b", 500, 400);
    write(store, std::slice::from_ref(&a1)).await;
    write(store, std::slice::from_ref(&b)).await;
    write(store, std::slice::from_ref(&a)).await;
    let traces = all_traces(store, "p1", TraceQuery::default()).await;
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].root_name, None, "no root yet");
    write(store, std::slice::from_ref(&root)).await;
    let trace = get_trace(store, "p1", 7).await;
    assert_eq!(names(&trace), ["root", "a", "a1", "b"]);
    assert_eq!(trace[2].raw.parent_span_id, Some(span_id(2)));
    let traces = all_traces(store, "p1", TraceQuery::default()).await;
    assert_eq!(traces.len(), 1);
    let summary = &traces[0];
    assert_eq!(summary.root_name.as_deref(), Some("root"));
    assert_eq!((summary.n_spans, summary.start_ns, summary.end_ns), (4, T0, T0 + 1000 * MS));
}

/// A child whose parent never arrives is still part of its trace and searchable.
pub async fn orphans_are_returned(store: &dyn Store) {
    let orphan = span("p1", 3, 2, Some(1), "orphan", 10, 10);
    write(store, std::slice::from_ref(&orphan)).await;
    assert_eq!(get_trace(store, "p1", 3).await, vec![orphan]);
    let traces = all_traces(store, "p1", TraceQuery::default()).await;
    assert_eq!(traces.len(), 1);
    assert_eq!((traces[0].root_name.as_deref(), traces[0].n_spans), (None, 1));
    assert_eq!(traces[0].service.as_deref(), Some("api"), "service falls back to any span's");
    assert_eq!(matching(store, "p1", "name = orphan").await, ["orphan"]);
}

/// Spans without an operation id take the root's, whichever arrives first.
pub async fn operation_id_comes_from_the_root(store: &dyn Store) {
    // Trace 1: children first, root (no own operation id) last.
    let child = llm(span("p1", 1, 2, Some(1), "child", 10, 10), "m", 1, 1, "x");
    write(store, std::slice::from_ref(&child)).await;
    write(store, &[span("p1", 1, 1, None, "checkout", 0, 100)]).await;
    // Trace 2: root with its own operation id first, then a child.
    let mut root2 = span("p1", 2, 1, None, "handler", 1000, 100);
    root2.view.operation_id = Some("refunds".to_owned());
    write(store, &[root2]).await;
    write(store, &[span("p1", 2, 2, Some(1), "child2", 1010, 10)]).await;
    // Trace 3: a child with its own operation id keeps it.
    let mut own = span("p1", 3, 2, Some(1), "own", 2010, 10);
    own.view.operation_id = Some("mine".to_owned());
    write(store, &[own, span("p1", 3, 1, None, "other_root", 2000, 100)]).await;

    let operations = |spans: &[StoredSpan]| -> Vec<(String, Option<String>)> {
        spans.iter().map(|s| (s.raw.name.clone(), s.view.operation_id.clone())).collect()
    };
    let some = |name: &str, op: &str| (name.to_owned(), Some(op.to_owned()));
    assert_eq!(
        operations(&get_trace(store, "p1", 1).await),
        [some("checkout", "checkout"), some("child", "checkout")]
    );
    assert_eq!(
        operations(&get_trace(store, "p1", 2).await),
        [some("handler", "refunds"), some("child2", "refunds")]
    );
    assert_eq!(
        operations(&get_trace(store, "p1", 3).await),
        [some("other_root", "other_root"), some("own", "mine")]
    );
    let found = all_spans(store, "p1", filter_query("name = child", 10)).await;
    assert_eq!(operations(&found), [some("child", "checkout")], "search results too");
    assert_eq!(matching(store, "p1", "operation = checkout").await, ["checkout", "child"]);
    assert_eq!(matching(store, "p1", "operation = refunds").await, ["child2", "handler"]);
    assert_eq!(matching(store, "p1", "operation = mine").await, ["own"]);
    let traces = all_traces(store, "p1", filter_query("operation = refunds", 10)).await;
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].operation_id.as_deref(), Some("refunds"));
    let mut by_trace: Vec<(String, Option<String>)> =
        all_traces(store, "p1", TraceQuery::default())
            .await
            .into_iter()
            .map(|t| (t.root_name.unwrap_or_default(), t.operation_id))
            .collect();
    by_trace.sort();
    assert_eq!(
        by_trace,
        [
            some("checkout", "checkout"),
            some("handler", "refunds"),
            some("other_root", "other_root")
        ]
    );
}

/// The spans the filter checks run over: one trace per span group, varied fields.
fn filter_fixture() -> Vec<StoredSpan> {
    let mut root = span("p1", 1, 1, None, "turn", 0, 3000);
    root.raw.kind = SpanKind::Server;
    root.raw.attributes = vec![
        KeyValue::string("http.route", "/chat"),
        KeyValue::int("http.status_code", 200),
        KeyValue::new("cache.hit", AnyValue::Bool(true)),
    ];
    root.view.session_id = Some("sess-1".to_owned());
    root.view.user_id = Some("alice".to_owned());
    root.view.tags = vec!["beta".to_owned(), "Refunds".to_owned()];
    root.view.environment = Some("prod".to_owned());
    root.raw.resource.attributes.push(KeyValue::string("deployment.environment", "prod"));

    let mut generate = llm(
        span("p1", 1, 2, Some(1), "llm.generate", 100, 2500),
        "gpt-4o-2024-08-06",
        1200,
        300,
        "refund policy?",
    );
    generate.raw.status = Status { code: StatusCode::Error, message: "timeout".to_owned() };
    generate.view.cost = Some(Decimal::new(15, 3));
    generate.raw.attributes = vec![KeyValue::string("http.status_code", "504")];
    let mut mini =
        llm(span("p1", 1, 3, Some(1), "llm.rewrite", 50, 40), "gpt-4o-mini", 40, 10, "rewrite");
    mini.view.provider = Some("azure".to_owned());
    mini.view.cost = Some(Decimal::new(1, 4));
    let mut tool = span("p1", 1, 4, Some(1), "tool.lookup", 2700, 200);
    tool.view.span_type = SpanType::Tool;
    tool.raw.status = Status { code: StatusCode::Ok, message: String::new() };
    tool.view.tags = vec!["beta".to_owned()];

    let mut other = span("p1", 2, 1, None, "batch.job", 10_000, 60_000);
    other.raw.resource.attributes = vec![KeyValue::string("service.name", "worker")];
    other.view.user_id = Some("bob".to_owned());
    other.view.environment = Some("staging".to_owned());
    let mut claude = llm(
        span("p1", 2, 2, Some(1), "llm.summarize", 10_100, 1500),
        "claude-sonnet-4",
        5000,
        700,
        "summarize the report",
    );
    claude.raw.resource.attributes = vec![KeyValue::string("service.name", "worker")];
    claude.view.provider = Some("anthropic".to_owned());
    claude.view.operation_id = Some("nightly".to_owned());
    vec![root, generate, mini, tool, other, claude]
}

/// Every filter field and operator, checked by the names of the matching spans.
pub async fn filters_on_every_field(store: &dyn Store) {
    write(store, &filter_fixture()).await;
    let all = ["turn", "llm.generate", "llm.rewrite", "tool.lookup", "batch.job", "llm.summarize"];
    let cases: &[(&str, &[&str])] = &[
        ("type = llm", &["llm.generate", "llm.rewrite", "llm.summarize"]),
        ("type != llm", &["turn", "tool.lookup", "batch.job"]),
        ("type = tool", &["tool.lookup"]),
        ("name = turn", &["turn"]),
        ("name ~ \"llm.*\"", &["llm.generate", "llm.rewrite", "llm.summarize"]),
        ("name ~ \"LLM.RE*\"", &["llm.rewrite"]),
        ("name ~ \"llm.?ewrite\"", &["llm.rewrite"]),
        ("name !~ \"llm.*\"", &["turn", "tool.lookup", "batch.job"]),
        ("kind = server", &["turn"]),
        ("kind = client", &["llm.generate", "llm.rewrite", "llm.summarize"]),
        ("service = worker", &["batch.job", "llm.summarize"]),
        ("service != worker", &["turn", "llm.generate", "llm.rewrite", "tool.lookup"]),
        ("model = gpt-4o-mini", &["llm.rewrite"]),
        ("model ~ \"gpt-4o*\"", &["llm.generate", "llm.rewrite"]),
        (
            "model != gpt-4o-mini",
            &["turn", "llm.generate", "tool.lookup", "batch.job", "llm.summarize"],
        ),
        ("model !~ \"gpt*\"", &["turn", "tool.lookup", "batch.job", "llm.summarize"]),
        ("provider = anthropic", &["llm.summarize"]),
        ("provider = openai", &["llm.generate"]),
        ("status = error", &["llm.generate"]),
        ("status = ok", &["tool.lookup"]),
        ("status = unset", &["turn", "llm.rewrite", "batch.job", "llm.summarize"]),
        ("duration > 2s", &["turn", "llm.generate", "batch.job"]),
        ("duration >= 2500ms", &["turn", "llm.generate", "batch.job"]),
        ("duration < 200ms", &["llm.rewrite"]),
        ("duration <= 200ms", &["llm.rewrite", "tool.lookup"]),
        ("duration = 40ms", &["llm.rewrite"]),
        ("duration > 1m", &[]),
        ("duration >= 1m", &["batch.job"]),
        ("input_tokens > 1000", &["llm.generate", "llm.summarize"]),
        ("output_tokens <= 10", &["llm.rewrite"]),
        ("tokens = 1500", &["llm.generate"]),
        ("tokens >= 5700", &["llm.summarize"]),
        ("cost > 0.001", &["llm.generate"]),
        ("cost < 0.001", &["llm.rewrite"]),
        ("session = sess-1", &["turn"]),
        ("user = bob", &["batch.job"]),
        ("user != bob", &["turn", "llm.generate", "llm.rewrite", "tool.lookup", "llm.summarize"]),
        ("tag = beta", &["turn", "tool.lookup"]),
        ("tag = Refunds", &["turn"]),
        ("tag ~ \"ref*\"", &["turn"]),
        ("tag != beta", &["llm.generate", "llm.rewrite", "batch.job", "llm.summarize"]),
        ("env = prod", &["turn"]),
        ("env ~ \"stag*\"", &["batch.job"]),
        ("trace_id = 48000000000000000000000000000002", &["batch.job", "llm.summarize"]),
        ("trace_id ~ \"*0001\"", &["turn", "llm.generate", "llm.rewrite", "tool.lookup"]),
        ("span_id = 5a00000000000003", &["llm.rewrite"]),
        ("attr.http.route = /chat", &["turn"]),
        ("attr.http.status_code = 200", &["turn"]),
        ("attr.http.status_code >= 500", &["llm.generate"]),
        ("attr.http.status_code = \"504\"", &["llm.generate"]),
        ("attr.\"cache.hit\" = true", &["turn"]),
        ("attr.http.route ~ \"/CH*\"", &["turn"]),
        ("resource.deployment.environment = prod", &["turn"]),
        ("resource.service.name = worker", &["batch.job", "llm.summarize"]),
        ("root_name = batch.job", &["batch.job", "llm.summarize"]),
        ("trace.duration > 10s", &["batch.job", "llm.summarize"]),
        ("has session", &["turn"]),
        ("has model", &["llm.generate", "llm.rewrite", "llm.summarize"]),
        ("has cost", &["llm.generate", "llm.rewrite"]),
        ("has tag", &["turn", "tool.lookup"]),
        ("has attr.http.status_code", &["turn", "llm.generate"]),
        ("has resource.deployment.environment", &["turn"]),
        ("not has model", &["turn", "tool.lookup", "batch.job"]),
        ("type = llm and status = error", &["llm.generate"]),
        ("type = tool or status = error", &["llm.generate", "tool.lookup"]),
        ("not (type = llm or service = worker)", &["turn", "tool.lookup"]),
        ("type = llm and not (model ~ \"gpt*\")", &["llm.summarize"]),
        ("operation = nightly", &["llm.summarize"]),
        ("operation = turn", &["turn", "llm.generate", "llm.rewrite", "tool.lookup"]),
        (
            "type = llm and model ~ \"gpt-4o*\" and duration > 2s and status = error",
            &["llm.generate"],
        ),
    ];
    for (filter, expected) in cases {
        assert_names(matching(store, "p1", filter).await, expected, filter);
    }
    assert_names(matching(store, "p1", "").await, &all, "no filter");
}

/// Full-text search over inputs and outputs: all words must appear, any case, any order.
pub async fn full_text_search(store: &dyn Store) {
    let a =
        llm(span("p1", 1, 1, None, "a", 0, 10), "m", 1, 1, "What is your Refund policy for shoes?");
    let b = llm(span("p1", 2, 1, None, "b", 10, 10), "m", 1, 1, "Track my order please");
    let mut c = span("p1", 3, 1, None, "c", 20, 10);
    c.view.input_text = Some("{\"query\": \"refund status\"}".to_owned());
    c.view.output_text = Some("approved".to_owned());
    let mut d = span("p1", 4, 1, None, "d", 30, 10);
    d.view.documents = vec![model::Document {
        id: Some("doc-1".to_owned()),
        score: Some(0.9),
        content: Some("Shipping takes five days".to_owned()),
        metadata: None,
    }];
    let e = span("p1", 5, 1, None, "e refund", 40, 10);
    write(store, &[a, b, c, d, e]).await;
    let cases: &[(&str, &[&str])] = &[
        ("refund", &["a", "c"]),
        ("REFUND", &["a", "c"]),
        ("\"refund policy\"", &["a"]),
        ("policy refund", &["a"]),
        ("text ~ approved", &["c"]),
        ("here", &["a", "b"]),
        ("shipping", &["d"]),
        ("refund and type = llm", &["a"]),
        ("refund or order", &["a", "b", "c"]),
        ("not refund", &["b", "d", "e refund"]),
        ("nonexistentword", &[]),
    ];
    for (filter, expected) in cases {
        assert_names(matching(store, "p1", filter).await, expected, filter);
    }
}

/// Newest first, time ranges, cursors without gaps or repeats, totals.
pub async fn time_range_order_and_pagination(store: &dyn Store) {
    // 25 traces of 2 spans; several share a start time to exercise the tie-break.
    let mut spans = Vec::new();
    for i in 0..25u64 {
        let start = (i / 3) * 100;
        spans.push(span("p1", 100 + i, 1, None, &format!("root{i:02}"), start, 50));
        spans.push(span("p1", 100 + i, 2, Some(1), &format!("child{i:02}"), start + 1, 10));
    }
    // Written in a few batches, out of order.
    spans.reverse();
    for chunk in spans.chunks(7) {
        write(store, chunk).await;
    }
    for limit in [1, 7, 10, 50] {
        let query = SpanQuery { limit, with_total: true, ..SpanQuery::default() };
        let first =
            store.search_spans(&project("p1"), &query).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.total, Some(50));
        assert_eq!(first.items.len(), limit.min(50) as usize);
        let found = all_spans(store, "p1", query).await;
        assert_eq!(found.len(), 50, "limit {limit}: every span once");
        let mut ids: Vec<(TraceId, SpanId)> =
            found.iter().map(|s| (s.raw.trace_id, s.raw.span_id)).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 50, "limit {limit}: no repeats");
        let starts: Vec<u64> = found.iter().map(|s| s.raw.start_time_unix_nano).collect();
        assert!(starts.windows(2).all(|w| w[0] >= w[1]), "limit {limit}: newest first");

        let traces = all_traces(store, "p1", TraceQuery { limit, ..TraceQuery::default() }).await;
        assert_eq!(traces.len(), 25, "limit {limit}: every trace once");
        let mut trace_ids: Vec<TraceId> = traces.iter().map(|t| t.trace_id).collect();
        trace_ids.sort();
        trace_ids.dedup();
        assert_eq!(trace_ids.len(), 25);
        assert!(traces.windows(2).all(|w| w[0].start_ns >= w[1].start_ns), "traces newest first");
    }
    let page = store
        .search_traces(
            &project("p1"),
            &TraceQuery { limit: 5, with_total: true, ..TraceQuery::default() },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((page.items.len(), page.total), (5, Some(25)));
    assert!(page.next_cursor.is_some());

    // [T0 + 100ms, T0 + 300ms): traces 3..=8 (starts 100 and 200).
    let time = TimeRange { from_ns: Some(T0 + 100 * MS), to_ns: Some(T0 + 300 * MS) };
    let query = SpanQuery { time, limit: 100, with_total: true, ..SpanQuery::default() };
    let found = all_spans(store, "p1", query.clone()).await;
    assert_eq!(found.len(), 12);
    assert!(
        found.iter().all(|s| (T0 + 100 * MS..T0 + 300 * MS).contains(&s.raw.start_time_unix_nano))
    );
    let traces = all_traces(store, "p1", query).await;
    let mut roots: Vec<String> = traces.into_iter().filter_map(|t| t.root_name).collect();
    roots.sort();
    assert_eq!(roots, ["root03", "root04", "root05", "root06", "root07", "root08"]);
    let filtered = SpanQuery { with_total: true, limit: 3, ..filter_query("name ~ \"child*\"", 3) };
    let page =
        store.search_spans(&project("p1"), &filtered).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.total, Some(25));
    // child24 starts last; 21, 22 and 23 tie, in a backend-defined order.
    let page_names = names(&page.items);
    assert_eq!(page_names.len(), 3);
    assert_eq!(page_names[0], "child24");
    assert!(
        page_names[1..].iter().all(|n| ["child21", "child22", "child23"].contains(&n.as_str()))
    );

    let bad = SpanQuery { cursor: Some(Cursor("not a cursor".to_owned())), ..SpanQuery::default() };
    assert!(store.search_spans(&project("p1"), &bad).await.is_err(), "a bad cursor is an error");
}

/// A trace matches when one span matches the whole filter; summaries roll the trace up.
pub async fn trace_search_and_summaries(store: &dyn Store) {
    write(store, &filter_fixture()).await;
    let roots = |traces: Vec<TraceSummary>| -> Vec<String> {
        let mut res: Vec<String> = traces.into_iter().filter_map(|t| t.root_name).collect();
        res.sort();
        res
    };
    let cases: &[(&str, &[&str])] = &[
        ("type = llm", &["batch.job", "turn"]),
        ("status = error", &["turn"]),
        ("model = claude-sonnet-4", &["batch.job"]),
        // Both conditions must hold on the same span.
        ("type = tool and model ~ \"gpt*\"", &[]),
        ("type = tool or model ~ \"claude*\"", &["batch.job", "turn"]),
        ("root_name = turn and type = tool", &["turn"]),
        ("trace.duration < 10s", &["turn"]),
        ("user = alice", &["turn"]),
        ("summarize", &["batch.job"]),
    ];
    for (filter, expected) in cases {
        let found = all_traces(store, "p1", filter_query(filter, 10)).await;
        assert_names(roots(found), expected, filter);
    }
    let traces = all_traces(store, "p1", TraceQuery::default()).await;
    let turn = traces
        .iter()
        .find(|t| t.root_name.as_deref() == Some("turn"))
        .unwrap_or_else(|| panic!("turn trace"));
    assert_eq!(turn.project, project("p1"));
    assert_eq!(turn.trace_id, trace_id(1));
    assert_eq!(turn.service.as_deref(), Some("api"));
    assert_eq!(turn.operation_id.as_deref(), Some("turn"));
    assert_eq!((turn.start_ns, turn.end_ns), (T0, T0 + 3000 * MS));
    assert_eq!(turn.duration_ns(), 3000 * MS);
    assert_eq!((turn.n_spans, turn.n_llm_spans, turn.n_errors), (4, 2, 1));
    assert_eq!((turn.input_tokens, turn.output_tokens), (1240, 310));
    assert_eq!(turn.cost, Some(Decimal::new(151, 4)));
    assert_eq!(turn.status(), "error");
    assert_eq!(
        (turn.session_id.as_deref(), turn.user_id.as_deref()),
        (Some("sess-1"), Some("alice"))
    );
    let job = traces
        .iter()
        .find(|t| t.root_name.as_deref() == Some("batch.job"))
        .unwrap_or_else(|| panic!("job trace"));
    assert_eq!(job.service.as_deref(), Some("worker"));
    assert_eq!((job.n_spans, job.n_llm_spans, job.n_errors, job.cost), (2, 1, 0, None));
    assert_eq!(job.status(), "ok");
    assert_eq!(job.session_id, None);
    assert_eq!(job.user_id.as_deref(), Some("bob"));
    let order: Vec<Option<&str>> = traces.iter().map(|t| t.root_name.as_deref()).collect();
    assert_eq!(order, [Some("batch.job"), Some("turn")], "newest first");
}

/// A session's traces, oldest first.
pub async fn sessions_are_oldest_first(store: &dyn Store) {
    let mut spans = Vec::new();
    for (i, start) in [(1u64, 5000u64), (2, 1000), (3, 3000)] {
        let mut root = span("p1", i, 1, None, &format!("turn{i}"), start, 100);
        root.view.session_id = Some("conv-1".to_owned());
        spans.push(root);
    }
    let mut elsewhere = span("p1", 4, 1, None, "turn4", 2000, 100);
    elsewhere.view.session_id = Some("conv-2".to_owned());
    spans.push(elsewhere);
    // The session is on a child only in trace 5.
    spans.push(span("p1", 5, 1, None, "turn5", 4000, 100));
    let mut child = span("p1", 5, 2, Some(1), "child", 4010, 10);
    child.view.session_id = Some("conv-1".to_owned());
    spans.push(child);
    write(store, &spans).await;
    let session =
        store.session_traces(&project("p1"), "conv-1", 100).await.unwrap_or_else(|e| panic!("{e}"));
    let roots: Vec<Option<String>> = session.iter().map(|t| t.root_name.clone()).collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(roots, [some("turn2"), some("turn3"), some("turn5"), some("turn1")]);
    let limited =
        store.session_traces(&project("p1"), "conv-1", 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(limited.len(), 2);
    assert!(
        store
            .session_traces(&project("p1"), "nope", 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
}

/// Facets list distinct values, most frequent first, within the time range.
pub async fn facets_count_values(store: &dyn Store) {
    write(store, &filter_fixture()).await;
    let facets = store
        .facets(&project("p1"), &FacetQuery { limit: 10, ..FacetQuery::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pairs = |items: &[(&str, u64)]| -> Vec<(String, u64)> {
        items.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
    };
    assert_eq!(facets.services, pairs(&[("api", 4), ("worker", 2)]));
    assert_eq!(
        facets.models,
        pairs(&[("claude-sonnet-4", 1), ("gpt-4o-2024-08-06", 1), ("gpt-4o-mini", 1)])
    );
    assert_eq!(facets.providers, pairs(&[("anthropic", 1), ("azure", 1), ("openai", 1)]));
    assert_eq!(facets.span_types, pairs(&[("llm", 3), ("other", 2), ("tool", 1)]));
    assert_eq!(facets.operations, pairs(&[("turn", 4), ("batch.job", 1), ("nightly", 1)]));
    assert_eq!(facets.environments, pairs(&[("prod", 1), ("staging", 1)]));
    assert_eq!(facets.tags, pairs(&[("beta", 2), ("Refunds", 1)]));
    assert_eq!(facets.span_names.len(), 6);
    let limited = store
        .facets(&project("p1"), &FacetQuery { limit: 1, ..FacetQuery::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(limited.services, pairs(&[("api", 4)]));
    let later =
        FacetQuery { time: TimeRange { from_ns: Some(T0 + 5000 * MS), to_ns: None }, limit: 10 };
    let later = store.facets(&project("p1"), &later).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(later.services, pairs(&[("worker", 2)]));
}

/// Group by, metrics (counts, errors, percentiles, sums) and time buckets.
pub async fn aggregate_groups_and_buckets(store: &dyn Store) {
    // 100 spans of model a: 60 take 10ms, 40 take 1s, 10 of them errors; 10 of model b.
    let mut spans = Vec::new();
    for i in 0..100u64 {
        let duration = if i < 60 { 10 } else { 1000 };
        let mut s = llm(span("p1", 1000 + i, 1, None, "call", i * 1000, duration), "a", 10, 1, "x");
        if i % 10 == 0 {
            s.raw.status.code = StatusCode::Error;
        }
        s.view.cost = Some(Decimal::new(1, 3));
        spans.push(s);
    }
    for i in 0..10u64 {
        spans.push(llm(span("p1", 2000 + i, 1, None, "call", 200_000 + i, 5), "b", 1, 1, "y"));
    }
    write(store, &spans).await;
    let query = AggregateQuery {
        group_by: vec![GroupBy::Model],
        metrics: vec![
            Metric::Count,
            Metric::Errors,
            Metric::P50,
            Metric::P95,
            Metric::P99,
            Metric::InputTokens,
            Metric::OutputTokens,
            Metric::Cost,
        ],
        limit: 10,
        ..AggregateQuery::default()
    };
    let rows = store.aggregate(&project("p1"), &query).await.unwrap_or_else(|e| panic!("{e}"));
    let dec = |n: i64| Some(Decimal::from(n));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].group, [Some("a".to_owned())]);
    assert_eq!(rows[0].bucket_start_ns, None);
    assert_eq!(
        rows[0].values,
        [
            dec(100),
            dec(10),
            dec(10_000_000),
            dec(1_000_000_000),
            dec(1_000_000_000),
            dec(1000),
            dec(100),
            Some(Decimal::new(100, 3))
        ]
    );
    assert_eq!(rows[1].group, [Some("b".to_owned())]);
    assert_eq!(rows[1].values[0], dec(10));
    assert_eq!(rows[1].values[7], None, "no cost known");

    let limited = AggregateQuery { limit: 1, metrics: vec![Metric::Count], ..query.clone() };
    let rows = store.aggregate(&project("p1"), &limited).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 1, "the largest group only");

    // Buckets of 50s over model a: two buckets of 50 spans.
    let bucketed = AggregateQuery {
        filter: crate::syntax::parse("model = a").ok().flatten(),
        group_by: Vec::new(),
        bucket_ns: Some(50_000 * MS),
        metrics: vec![Metric::Count, Metric::Errors],
        limit: 10,
        ..AggregateQuery::default()
    };
    let rows = store.aggregate(&project("p1"), &bucketed).await.unwrap_or_else(|e| panic!("{e}"));
    type Rendered = (Vec<Option<String>>, Option<u64>, Vec<Option<Decimal>>);
    let rendered: Vec<Rendered> =
        rows.into_iter().map(|r| (r.group, r.bucket_start_ns.map(|b| b - T0), r.values)).collect();
    assert_eq!(
        rendered,
        [
            (vec![], Some(0), vec![dec(50), dec(5)]),
            (vec![], Some(50_000 * MS), vec![dec(50), dec(5)]),
        ]
    );
}

/// The maintenance scan visits every span of every project once; view updates replace views
/// and what is derived from them, and keep the raw span.
pub async fn scan_and_update_views(store: &dyn Store) {
    let mut spans = Vec::new();
    for i in 0..15u64 {
        let project_name = if i % 2 == 0 { "p1" } else { "p2" };
        spans.push(span(project_name, i + 1, 1, None, &format!("s{i:02}"), i * 10, 5));
    }
    write(store, &spans).await;
    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    for _ in 0..100 {
        let page = store.scan_spans(after.as_ref(), 4).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(page.items.len() <= 4);
        seen.extend(page.items.into_iter().map(|s| (s.project.to_string(), s.raw.name)));
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    seen.sort();
    let mut expected: Vec<(String, String)> =
        spans.iter().map(|s| (s.project.to_string(), s.raw.name.clone())).collect();
    expected.sort();
    assert_eq!(seen, expected);

    // Turn s00 into an LLM call with tokens; the trace roll-up and filters follow.
    let mut updated = llm(spans[0].clone(), "gpt-4o", 30, 7, "updated prompt words");
    updated.raw.name = "ignored: the raw span is not replaced".to_owned();
    let mut missing = span("p1", 999, 1, None, "missing", 0, 1);
    missing.view.span_type = SpanType::Tool;
    let n = store.update_views(&[updated.clone(), missing]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 1);
    let trace = get_trace(store, "p1", 1).await;
    assert_eq!(trace.len(), 1);
    assert_eq!(trace[0].raw, spans[0].raw);
    let mut expected_view = updated.view.clone();
    expected_view.operation_id = Some("s00".to_owned());
    assert_eq!(trace[0].view, expected_view);
    assert_eq!(matching(store, "p1", "type = llm").await, ["s00"]);
    assert_eq!(matching(store, "p1", "updated").await, ["s00"]);
    let summary = all_traces(store, "p1", filter_query("type = llm", 10)).await;
    assert_eq!(summary.len(), 1);
    assert_eq!((summary[0].n_llm_spans, summary[0].input_tokens, summary[0].n_spans), (1, 30, 1));
}

fn api_key(id: &str, project_name: &str, hash: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_owned(),
        project: project(project_name),
        name: format!("{id} name"),
        key_hash: hash.to_owned(),
        prefix: "lp_3f9a".to_owned(),
        created_ns: T0,
        labels: BTreeMap::from([("team".to_owned(), "search".to_owned())]),
    }
}

/// API keys: put, find by hash, list by project, replace, delete.
pub async fn api_keys_crud(store: &dyn Store) {
    let a = api_key("key_a", "p1", &"a".repeat(64));
    let b = api_key("key_b", "p1", &"b".repeat(64));
    let c = api_key("key_c", "p2", &"c".repeat(64));
    for record in [&a, &b, &c] {
        store.put_api_key(record).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        store.find_api_key(&"a".repeat(64)).await.unwrap_or_else(|e| panic!("{e}")),
        Some(a.clone())
    );
    assert_eq!(store.find_api_key(&"d".repeat(64)).await.unwrap_or_else(|e| panic!("{e}")), None);
    let list = store.list_api_keys(&project("p1")).await.unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = list.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["key_a", "key_b"]);
    let renamed = ApiKeyRecord { name: "renamed".to_owned(), ..a.clone() };
    store.put_api_key(&renamed).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store.find_api_key(&a.key_hash).await.unwrap_or_else(|e| panic!("{e}")),
        Some(renamed)
    );
    assert_eq!(
        store.list_api_keys(&project("p1")).await.unwrap_or_else(|e| panic!("{e}")).len(),
        2
    );
    assert!(
        !store.delete_api_key(&project("p2"), "key_a").await.unwrap_or_else(|e| panic!("{e}")),
        "not p2's key"
    );
    assert!(store.delete_api_key(&project("p1"), "key_a").await.unwrap_or_else(|e| panic!("{e}")));
    assert!(!store.delete_api_key(&project("p1"), "key_a").await.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(store.find_api_key(&a.key_hash).await.unwrap_or_else(|e| panic!("{e}")), None);
    assert_eq!(
        store.list_api_keys(&project("p2")).await.unwrap_or_else(|e| panic!("{e}")),
        vec![c]
    );
}

/// Nothing of one project is visible from another through any method, even with identical
/// trace and span ids.
pub async fn projects_are_isolated(store: &dyn Store) {
    let mut a = filter_fixture();
    for s in &mut a {
        s.project = project("alpha");
    }
    // Same ids in beta: a different trace altogether.
    let mut b = llm(span("beta", 1, 1, None, "beta-root", 0, 10), "beta-model", 1, 1, "beta words");
    b.view.session_id = Some("sess-1".to_owned());
    b.view.operation_id = Some("chat".to_owned());
    write(store, &a).await;
    let stats = write(store, std::slice::from_ref(&b)).await;
    assert_eq!(stats.n_written, 1, "the same ids in another project are not duplicates");

    assert_eq!(get_trace(store, "beta", 1).await, vec![b.clone()]);
    assert_eq!(get_trace(store, "alpha", 1).await.len(), 4);
    assert!(get_trace(store, "gamma", 1).await.is_empty());
    assert_eq!(matching(store, "beta", "").await, ["beta-root"]);
    assert_eq!(matching(store, "beta", "type = llm").await, ["beta-root"]);
    assert!(matching(store, "beta", "refund").await.is_empty());
    assert!(matching(store, "alpha", "beta").await.is_empty());
    assert_eq!(matching(store, "alpha", "model = beta-model").await, Vec::<String>::new());
    let traces =
        all_traces(store, "beta", TraceQuery { with_total: true, ..TraceQuery::default() }).await;
    assert_eq!(traces.len(), 1);
    assert_eq!((traces[0].n_spans, traces[0].root_name.as_deref()), (1, Some("beta-root")));
    assert_eq!(all_traces(store, "gamma", TraceQuery::default()).await.len(), 0);
    let session = store
        .session_traces(&project("beta"), "sess-1", 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(session.len(), 1);
    assert_eq!(session[0].project, project("beta"));
    let facets = store
        .facets(&project("beta"), &FacetQuery { limit: 10, ..FacetQuery::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(facets.models, [("beta-model".to_owned(), 1)]);
    let rows = store
        .aggregate(
            &project("beta"),
            &AggregateQuery {
                metrics: vec![Metric::Count],
                limit: 10,
                ..AggregateQuery::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].values, [Some(Decimal::from(1))]);
    // A view update naming the wrong project changes nothing.
    let mut wrong = b.clone();
    wrong.project = project("gamma");
    wrong.view.span_type = SpanType::Tool;
    assert_eq!(store.update_views(&[wrong]).await.unwrap_or_else(|e| panic!("{e}")), 0);
    assert_eq!(get_trace(store, "beta", 1).await, vec![b]);
    store
        .put_api_key(&api_key("key_a", "alpha", &"a".repeat(64)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store.list_api_keys(&project("beta")).await.unwrap_or_else(|e| panic!("{e}")).is_empty()
    );
    assert!(
        !store.delete_api_key(&project("beta"), "key_a").await.unwrap_or_else(|e| panic!("{e}"))
    );
}
