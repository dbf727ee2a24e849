//! Backend-neutral checks for the retention and erasure methods: retention tiers, rewriting
//! spans, deleting old traces, finding a user's traces and per-project state records.
//! Backends that support retention call [`run_all`] from their tests, next to
//! [`super::run_all`].
//!
//! The checks pin:
//! - `spans_below_tier` returns spans stored below a tier that started before a time, oldest
//!   first, at most `limit`; a rewrite records the span's new tier, and a rewrite at a lower
//!   tier than the stored one changes nothing (the span is skipped and not counted), so a lower
//!   tier never brings back what a higher one removed;
//! - `rewrite_spans` replaces the raw span and the view as given: `get_trace` returns the new
//!   copy, the full-text search no longer finds removed words, filters follow the new view and
//!   the trace roll-ups are those of the new copies (unchanged when tokens and cost are kept);
//! - `delete_traces_before` deletes whole traces all of whose spans started before the cutoff,
//!   never a trace with a later span, about `limit` spans per call, and returns 0 when done;
//! - `user_traces` pages through trace ids in byte order after `after`;
//! - state records round-trip and are replaced by a second put;
//! - nothing of one project is read, changed or deleted through another.
//!
//! A backend may postpone deleting the trace that holds its newest span (SQLite reuses the
//! highest rowid otherwise), so in these checks the last span written always belongs to a trace
//! that is kept.

use std::future::Future;

use model::{KeyValue, ProjectId, StoredSpan};
use rust_decimal::Decimal;

use super::{MS, T0, all_traces, get_trace, llm, matching, names, project, span, trace_id, write};
use crate::{RetentionTier, Store, TraceQuery};

/// Runs every retention check against stores made by `make_store`.
pub async fn run_all<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn Store>>,
{
    tiers_are_recorded(&*make_store().await).await;
    rewrite_replaces_content_and_keeps_rollups(&*make_store().await).await;
    delete_traces_before_deletes_whole_old_traces(&*make_store().await).await;
    user_traces_pages(&*make_store().await).await;
    state_round_trip(&*make_store().await).await;
    span_projects_lists_projects_with_spans(&*make_store().await).await;
}

/// `span` with its message content removed (what retention's `Structure` tier keeps).
pub fn without_content(span: &StoredSpan) -> StoredSpan {
    let mut res = span.clone();
    res.view.system_instructions.clear();
    res.view.input_messages.clear();
    res.view.output_messages.clear();
    res.view.input_text = None;
    res.view.output_text = None;
    for document in &mut res.view.documents {
        document.content = None;
    }
    res.raw.attributes.retain(|kv| !kv.key.starts_with("content."));
    res.raw.events.clear();
    res
}

async fn below(
    store: &dyn Store,
    project_name: &str,
    tier: RetentionTier,
    before_ms: u64,
    limit: u32,
) -> Vec<StoredSpan> {
    store
        .spans_below_tier(&project(project_name), tier, T0 + before_ms * MS, limit)
        .await
        .unwrap_or_else(|e| panic!("spans_below_tier failed: {e}"))
}

async fn rewrite(store: &dyn Store, spans: &[StoredSpan], tier: RetentionTier) -> u64 {
    store.rewrite_spans(spans, tier).await.unwrap_or_else(|e| panic!("rewrite_spans failed: {e}"))
}

async fn delete_before(store: &dyn Store, project_name: &str, before_ms: u64, limit: u32) -> u64 {
    store
        .delete_traces_before(&project(project_name), T0 + before_ms * MS, limit)
        .await
        .unwrap_or_else(|e| panic!("delete_traces_before failed: {e}"))
}

/// Tier bookkeeping: what is below a tier, oldest first, and how rewrites move spans up.
pub async fn tiers_are_recorded(store: &dyn Store) {
    let p1_spans = vec![
        span("p1", 1, 1, None, "t1.root", 0, 100),
        llm(span("p1", 1, 2, Some(1), "t1.call", 10, 50), "gpt-4o", 10, 5, "first words"),
        span("p1", 2, 1, None, "t2.root", 1000, 100),
        llm(span("p1", 2, 2, Some(1), "t2.call", 1010, 50), "gpt-4o", 10, 5, "second words"),
        span("p1", 3, 1, None, "t3.root", 9000, 100),
    ];
    // The same ids in p2, written first.
    let p2_spans: Vec<StoredSpan> = p1_spans
        .iter()
        .map(|s| {
            let mut res = s.clone();
            res.project = project("p2");
            res.raw.name = format!("p2.{}", res.raw.name);
            res
        })
        .collect();
    write(store, &p2_spans).await;
    write(store, &p1_spans).await;
    let full = RetentionTier::Full;
    let structure = RetentionTier::Structure;
    let fingerprints = RetentionTier::Fingerprints;

    assert_eq!(
        names(&below(store, "p1", structure, 5000, 100).await),
        ["t1.root", "t1.call", "t2.root", "t2.call"],
        "spans started before the time, oldest first"
    );
    assert_eq!(names(&below(store, "p1", structure, 1000, 100).await), ["t1.root", "t1.call"]);
    assert_eq!(
        names(&below(store, "p1", structure, 5000, 3).await),
        ["t1.root", "t1.call", "t2.root"]
    );
    assert!(below(store, "p1", full, 10_000, 100).await.is_empty(), "nothing is below full");
    assert!(below(store, "p3", structure, 10_000, 100).await.is_empty(), "an unknown project");
    let got = below(store, "p1", structure, 20, 100).await;
    assert_eq!(got, p1_spans[..2].to_vec(), "spans come back as stored");

    // Trace 1 moves to `Structure`.
    let reduced: Vec<StoredSpan> = got.iter().map(without_content).collect();
    assert_eq!(rewrite(store, &reduced, structure).await, 2);
    assert_eq!(names(&below(store, "p1", structure, 5000, 100).await), ["t2.root", "t2.call"]);
    assert_eq!(
        names(&below(store, "p1", fingerprints, 5000, 100).await),
        ["t1.root", "t1.call", "t2.root", "t2.call"],
        "structure is below fingerprints"
    );
    assert_eq!(
        names(&below(store, "p2", structure, 5000, 100).await),
        ["p2.t1.root", "p2.t1.call", "p2.t2.root", "p2.t2.call"],
        "the same ids in another project keep their tier"
    );

    // t1.call moves on to `Fingerprints`; a later `Structure` rewrite does not move it back.
    let mut skeleton = reduced[1].clone();
    skeleton.raw.attributes.clear();
    assert_eq!(rewrite(store, std::slice::from_ref(&skeleton), fingerprints).await, 1);
    assert_eq!(
        names(&below(store, "p1", fingerprints, 5000, 100).await),
        ["t1.root", "t2.root", "t2.call"]
    );
    assert_eq!(
        rewrite(store, std::slice::from_ref(&reduced[1]), structure).await,
        0,
        "a lower tier never undoes a higher one"
    );
    assert_eq!(
        names(&below(store, "p1", fingerprints, 5000, 100).await),
        ["t1.root", "t2.root", "t2.call"]
    );
    let trace = get_trace(store, "p1", 1).await;
    assert_eq!(trace[1].raw, skeleton.raw, "the higher tier's copy is kept");
    // The same tier again is a rewrite (e.g. an erasure of what that tier kept).
    assert_eq!(rewrite(store, std::slice::from_ref(&reduced[0]), structure).await, 1);
    assert_eq!(names(&below(store, "p1", structure, 5000, 100).await), ["t2.root", "t2.call"]);
}

/// A rewrite replaces raw span and view, the full-text index and the filter columns follow,
/// and roll-ups are those of the new copies.
pub async fn rewrite_replaces_content_and_keeps_rollups(store: &dyn Store) {
    let mut root = span("p1", 1, 1, None, "turn", 0, 1000);
    root.view.operation_id = Some("chat_turn".to_owned());
    root.view.user_id = Some("alice".to_owned());
    root.view.session_id = Some("sess-9".to_owned());
    let mut call = llm(
        span("p1", 1, 2, Some(1), "llm.generate", 100, 800),
        "gpt-4o",
        1200,
        80,
        "Which marmalade is best?",
    );
    call.view.operation_id = Some("chat_turn".to_owned());
    call.view.cost = Some(Decimal::new(1234, 6));
    call.view.user_id = Some("alice".to_owned());
    call.raw.attributes = vec![
        KeyValue::string("content.prompt", "Which marmalade is best?"),
        KeyValue::string("http.route", "/chat"),
    ];
    // The same ids in p2, with the same words.
    let mut other = call.clone();
    other.project = project("p2");
    let mut other_root = root.clone();
    other_root.project = project("p2");
    write(store, &[other_root, other.clone()]).await;
    write(store, &[root.clone(), call.clone()]).await;
    assert_eq!(matching(store, "p1", "marmalade").await, ["llm.generate"]);
    let before = all_traces(store, "p1", TraceQuery::default()).await;
    assert_eq!(before.len(), 1);

    let mut reduced = without_content(&call);
    reduced.view.input_fingerprint = Some("fp-in".to_owned());
    let missing = without_content(&span("p1", 7, 7, None, "never written", 0, 1));
    assert_eq!(
        rewrite(store, &[reduced.clone(), missing], RetentionTier::Structure).await,
        1,
        "spans not stored are skipped"
    );
    assert_eq!(get_trace(store, "p1", 1).await, vec![root.clone(), reduced.clone()]);
    assert!(matching(store, "p1", "marmalade").await.is_empty(), "removed words leave the index");
    assert_eq!(matching(store, "p2", "marmalade").await, ["llm.generate"], "p2 is untouched");
    assert_eq!(get_trace(store, "p2", 1).await[1], other);
    assert_eq!(matching(store, "p1", "model = gpt-4o").await, ["llm.generate"]);
    assert_eq!(matching(store, "p1", "type = llm and input_tokens = 1200").await, ["llm.generate"]);
    assert_eq!(matching(store, "p1", "user = alice").await, ["llm.generate", "turn"]);
    let after = all_traces(store, "p1", TraceQuery::default()).await;
    assert_eq!(after, before, "roll-ups are unchanged when tokens and cost are kept");
    assert_eq!(
        (after[0].n_spans, after[0].n_llm_spans, after[0].input_tokens, after[0].output_tokens),
        (2, 1, 1200, 80)
    );
    assert_eq!(after[0].cost, Some(Decimal::new(1234, 6)));

    // Filter columns and roll-ups follow what the new copies say (here: no user any more).
    let mut anonymous_root = root.clone();
    anonymous_root.view.user_id = None;
    let mut anonymous_call = reduced.clone();
    anonymous_call.view.user_id = None;
    assert_eq!(
        rewrite(store, &[anonymous_root, anonymous_call], RetentionTier::Structure).await,
        2
    );
    assert!(matching(store, "p1", "user = alice").await.is_empty());
    assert_eq!(matching(store, "p2", "user = alice").await, ["llm.generate", "turn"]);
    let after = all_traces(store, "p1", TraceQuery::default()).await;
    assert_eq!(after[0].user_id, None);
    assert_eq!((after[0].n_spans, after[0].input_tokens), (2, 1200));

    // A copy naming another project changes nothing there.
    let mut wrong = without_content(&other);
    wrong.project = project("p3");
    assert_eq!(rewrite(store, &[wrong], RetentionTier::Fingerprints).await, 0);
    assert!(get_trace(store, "p3", 1).await.is_empty());
}

/// Whole traces all of whose spans started before the cutoff are deleted, in calls of about
/// `limit` spans, until a call returns 0.
pub async fn delete_traces_before_deletes_whole_old_traces(store: &dyn Store) {
    // p2 has an old trace with the same ids as p1's trace 1.
    write(store, &[span("p2", 1, 1, None, "p2.old", 0, 10)]).await;
    let spans = vec![
        span("p1", 1, 1, None, "old1.root", 0, 100),
        llm(span("p1", 1, 2, Some(1), "old1.call", 10, 50), "m", 1, 1, "quince jam"),
        // Trace 2 started before the cutoff, but one span started after it.
        span("p1", 2, 1, None, "straddle.root", 0, 9000),
        span("p1", 2, 2, Some(1), "straddle.late", 5000, 100),
        span("p1", 3, 1, None, "old3.root", 200, 100),
        span("p1", 3, 2, Some(1), "old3.child", 300, 100),
        // Exactly at the cutoff is not before it.
        span("p1", 5, 1, None, "at_cutoff", 1000, 10),
        span("p1", 4, 1, None, "new", 6000, 100),
    ];
    write(store, &spans).await;
    assert_eq!(matching(store, "p1", "quince").await, ["old1.call"]);

    let n = delete_before(store, "p1", 1000, 2).await;
    assert_eq!(n, 2, "one whole trace of two spans, within the limit");
    let mut total = n;
    for _ in 0..100 {
        let n = delete_before(store, "p1", 1000, 2).await;
        assert!(n <= 2, "at most about the limit per call, got {n}");
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 4, "traces 1 and 3");
    assert_eq!(delete_before(store, "p1", 1000, 2).await, 0, "done");
    assert!(get_trace(store, "p1", 1).await.is_empty());
    assert!(get_trace(store, "p1", 3).await.is_empty());
    assert_eq!(names(&get_trace(store, "p1", 2).await), ["straddle.root", "straddle.late"]);
    assert_eq!(names(&get_trace(store, "p1", 5).await), ["at_cutoff"]);
    assert_eq!(names(&get_trace(store, "p1", 4).await), ["new"]);
    assert_eq!(names(&get_trace(store, "p2", 1).await), ["p2.old"], "other projects are kept");
    assert!(matching(store, "p1", "quince").await.is_empty());
    assert_eq!(
        matching(store, "p1", "").await,
        ["at_cutoff", "new", "straddle.late", "straddle.root"]
    );
    let mut roots: Vec<Option<String>> = all_traces(store, "p1", TraceQuery::default())
        .await
        .into_iter()
        .map(|t| t.root_name)
        .collect();
    roots.sort();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(roots, [some("at_cutoff"), some("new"), some("straddle.root")], "roll-ups too");
    assert!(
        below(store, "p1", RetentionTier::Structure, 1000, 100)
            .await
            .iter()
            .all(|s| s.raw.trace_id == trace_id(2)),
        "deleted spans are no retention work"
    );

    // A later cutoff takes traces 2 and 5 (not 4, which starts at it), a large limit in one call.
    assert_eq!(delete_before(store, "p1", 6000, 1000).await, 3);
    assert_eq!(delete_before(store, "p1", 6000, 1000).await, 0);
    assert_eq!(names(&get_trace(store, "p1", 4).await), ["new"]);
    assert_eq!(names(&get_trace(store, "p2", 1).await), ["p2.old"]);
}

/// The traces with spans of some users, in trace id order, page by page.
pub async fn user_traces_pages(store: &dyn Store) {
    let with_user = |s: StoredSpan, user: &str| {
        let mut res = s;
        res.view.user_id = Some(user.to_owned());
        res
    };
    let mut spans = vec![with_user(span("p2", 2, 1, None, "p2", 0, 10), "alice")];
    spans.push(with_user(span("p1", 5, 1, None, "t5", 50, 10), "alice"));
    spans.push(with_user(span("p1", 1, 1, None, "t1", 10, 10), "alice"));
    spans.push(with_user(span("p1", 1, 2, Some(1), "t1.child", 11, 1), "alice"));
    spans.push(with_user(span("p1", 2, 1, None, "t2", 20, 10), "bob"));
    // Trace 3 has alice on a child only.
    spans.push(span("p1", 3, 1, None, "t3", 30, 10));
    spans.push(with_user(span("p1", 3, 2, Some(1), "t3.child", 31, 1), "alice"));
    spans.push(with_user(span("p1", 4, 1, None, "t4", 40, 10), "carol"));
    write(store, &spans).await;
    let users = |names: &[&str]| -> Vec<String> { names.iter().map(|s| (*s).to_owned()).collect() };
    let page = |project_name: &'static str, who: Vec<String>, after: Option<u64>, limit: u32| async move {
        store
            .user_traces(&project(project_name), &who, after.map(trace_id), limit)
            .await
            .unwrap_or_else(|e| panic!("user_traces failed: {e}"))
    };
    let ids = |ns: &[u64]| -> Vec<model::TraceId> { ns.iter().map(|n| trace_id(*n)).collect() };
    assert_eq!(page("p1", users(&["alice"]), None, 2).await, ids(&[1, 3]));
    assert_eq!(page("p1", users(&["alice"]), Some(3), 2).await, ids(&[5]));
    assert_eq!(page("p1", users(&["alice"]), Some(5), 2).await, ids(&[]));
    assert_eq!(page("p1", users(&["alice"]), None, 10).await, ids(&[1, 3, 5]), "each trace once");
    assert_eq!(page("p1", users(&["alice", "carol"]), Some(1), 10).await, ids(&[3, 4, 5]));
    assert_eq!(page("p1", users(&["dave"]), None, 10).await, ids(&[]));
    assert_eq!(page("p1", users(&[]), None, 10).await, ids(&[]), "no users, no traces");
    assert_eq!(page("p2", users(&["alice", "bob"]), None, 10).await, ids(&[2]));
    assert_eq!(page("p3", users(&["alice"]), None, 10).await, ids(&[]));
}

/// State records: none at first, then the last value put, per project and key.
pub async fn state_round_trip(store: &dyn Store) {
    let (p1, p2) = (project("p1"), project("p2"));
    let get = |project: ProjectId, key: &'static str| async move {
        store.get_state(&project, key).await.unwrap_or_else(|e| panic!("get_state failed: {e}"))
    };
    let put = |project: ProjectId, key: &'static str, value: &'static str| async move {
        store
            .put_state(&project, key, value)
            .await
            .unwrap_or_else(|e| panic!("put_state failed: {e}"))
    };
    assert_eq!(get(p1.clone(), "retention.watermark").await, None);
    put(p1.clone(), "retention.watermark", "1767225600000000000").await;
    assert_eq!(
        get(p1.clone(), "retention.watermark").await.as_deref(),
        Some("1767225600000000000")
    );
    put(p1.clone(), "retention.watermark", "{\"tier\": \"structure\"}").await;
    assert_eq!(
        get(p1.clone(), "retention.watermark").await.as_deref(),
        Some("{\"tier\": \"structure\"}"),
        "a second put replaces the value"
    );
    assert_eq!(get(p2.clone(), "retention.watermark").await, None, "projects are separate");
    assert_eq!(get(p1.clone(), "other").await, None, "keys are separate");
    put(p2.clone(), "retention.watermark", "").await;
    assert_eq!(get(p2.clone(), "retention.watermark").await.as_deref(), Some(""));
    assert_eq!(
        get(p1.clone(), "retention.watermark").await.as_deref(),
        Some("{\"tier\": \"structure\"}")
    );
}

/// The projects with spans, each once.
pub async fn span_projects_lists_projects_with_spans(store: &dyn Store) {
    let projects = || async {
        let mut res =
            store.span_projects().await.unwrap_or_else(|e| panic!("span_projects failed: {e}"));
        res.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        res
    };
    assert!(projects().await.is_empty(), "an empty store has none");
    write(
        store,
        &[
            span("p2", 1, 1, None, "a", 0, 10),
            span("p1", 1, 1, None, "b", 0, 10),
            span("p1", 2, 1, None, "c", 0, 10),
            span("p2", 2, 2, None, "d", 0, 10),
        ],
    )
    .await;
    store
        .put_state(&project("p3"), "retention.watermark", "0")
        .await
        .unwrap_or_else(|e| panic!("put_state failed: {e}"));
    assert_eq!(projects().await, [project("p1"), project("p2")], "p3 has state but no spans");
}
