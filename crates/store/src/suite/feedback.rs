//! Backend-neutral checks for feedback, score configs and datasets. Backends that keep these
//! records call [`run_all`] from their tests, next to [`super::run_all`].
//!
//! The checks pin:
//! - feedback on a span is found by span id, and feedback sent before its span is written is
//!   pending until the span lands, then belongs to the span and its trace with nothing re-sent;
//! - an edit replaces the entry (same id) and the caller's history is kept as given;
//! - the feedback filter fields (`rating`, `score.NAME`, `feedback.tag`, `has correction`,
//!   `has feedback`) in span and trace search, with trace-level feedback counting for the
//!   trace's root span; numeric, categorical (`score.verdict = fail`, a glob, an `or` of
//!   categories) and boolean scores (`= false`, or compared as 0 and 1), a category never
//!   comparing as a number;
//! - a feedback batch lands whole: every entry readable, in order, an empty batch a no-op;
//! - dataset versions are immutable, numbered from 1, built from a base plus changes, merge
//!   duplicate inputs when asked, page by item id, and fail as a whole on a bad base.

use std::collections::BTreeMap;
use std::future::Future;

use model::{
    Dataset, DatasetItem, ExpectedSource, Feedback, FeedbackContent, FeedbackRevision,
    FeedbackSource, FeedbackTarget, ItemInput, ItemSource, Message, Rating, ScoreConfig, ScoreKind,
    ScoreValue, Split,
};

use super::{T0, all_traces, filter_query, llm, matching, project, span, span_id, trace_id, write};
use crate::{NewDatasetVersion, Store};

/// Runs every feedback and dataset check against stores made by `make_store`.
pub async fn run_all<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn Store>>,
{
    feedback_round_trip_and_edits(&*make_store().await).await;
    feedback_before_its_span_is_pending(&*make_store().await).await;
    feedback_filters(&*make_store().await).await;
    feedback_batches_land_whole(&*make_store().await).await;
    score_configs_crud(&*make_store().await).await;
    dataset_versions_are_immutable(&*make_store().await).await;
}

fn feedback(
    id: &str,
    target: FeedbackTarget,
    content: FeedbackContent,
    created_ns: u64,
) -> Feedback {
    Feedback {
        id: id.to_owned(),
        project: project("p1"),
        target,
        content,
        source: FeedbackSource::Human,
        author: Some("ana".to_owned()),
        created_ns,
        updated_ns: created_ns,
        history: Vec::new(),
    }
}

fn on_span(trace: u64, id: u64) -> FeedbackTarget {
    FeedbackTarget::Span { span_id: span_id(id), trace_id: Some(trace_id(trace)) }
}

fn rating(rating: Rating) -> FeedbackContent {
    FeedbackContent { rating: Some(rating), ..FeedbackContent::default() }
}

fn ids(feedback: &[Feedback]) -> Vec<&str> {
    feedback.iter().map(|f| f.id.as_str()).collect()
}

pub async fn feedback_round_trip_and_edits(store: &dyn Store) {
    let p1 = project("p1");
    write(
        store,
        &[span("p1", 1, 1, None, "root", 0, 10), span("p1", 1, 2, Some(1), "child", 1, 5)],
    )
    .await;
    let on_child = feedback("fb_1", on_span(1, 2), rating(Rating::Down), T0 + 1);
    let on_trace = feedback(
        "fb_2",
        FeedbackTarget::Trace { trace_id: trace_id(1) },
        FeedbackContent { comment: Some("wrong policy".to_owned()), ..FeedbackContent::default() },
        T0 + 2,
    );
    let on_session = feedback(
        "fb_3",
        FeedbackTarget::Session { session_id: "sess_1".to_owned() },
        rating(Rating::Stars(4)),
        T0 + 3,
    );
    for entry in [&on_child, &on_trace, &on_session] {
        store.put_feedback(entry).await.unwrap_or_else(|e| panic!("put_feedback failed: {e}"));
    }
    let got = store.get_feedback(&p1, "fb_1").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.as_ref(), Some(&on_child), "get_feedback round trip");
    assert_eq!(store.get_feedback(&project("p2"), "fb_1").await.ok().flatten(), None, "projects");

    // A span target matches by span id whatever trace id the query names.
    let by_span = FeedbackTarget::Span { span_id: span_id(2), trace_id: None };
    let listed = store.list_feedback(&p1, &by_span).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&listed), ["fb_1"], "list_feedback by span");
    let listed = store
        .list_feedback(&p1, &FeedbackTarget::Session { session_id: "sess_1".to_owned() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&listed), ["fb_3"], "list_feedback by session");
    let of_trace = store.trace_feedback(&p1, trace_id(1)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&of_trace), ["fb_1", "fb_2"], "trace_feedback: span and trace entries");
    // The sampler's batch read gives each trace's spans and feedback, in the order asked,
    // and nothing for an unknown trace.
    let batch = store
        .traces_for_decision(&p1, &[trace_id(99), trace_id(1)], true)
        .await
        .unwrap_or_else(|e| panic!("traces_for_decision failed: {e}"));
    let whole = store.get_trace(&p1, trace_id(1)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!whole.is_empty(), "the trace is stored");
    assert_eq!(
        batch,
        vec![(Vec::new(), Vec::new()), (whole.clone(), of_trace.clone())],
        "batch read"
    );
    // Without content, at least each span's skeleton.
    let skeletal = store
        .traces_for_decision(&p1, &[trace_id(1)], false)
        .await
        .unwrap_or_else(|e| panic!("traces_for_decision failed: {e}"));
    let skeleton = |spans: &[crate::StoredSpan]| {
        let mut res: Vec<_> = spans
            .iter()
            .map(|s| {
                let raw = &s.raw;
                let times = (raw.start_time_unix_nano, raw.end_time_unix_nano);
                (
                    raw.span_id,
                    raw.parent_span_id,
                    raw.name.clone(),
                    times,
                    raw.status.code,
                    s.view.span_type,
                )
            })
            .collect();
        res.sort_by_key(|s| s.0);
        res
    };
    assert_eq!(skeleton(&skeletal[0].0), skeleton(&whole), "skeletons");

    // An edit replaces the entry; the history the caller built is kept.
    let mut edited = on_child.clone();
    edited.history.push(FeedbackRevision {
        content: edited.content.clone(),
        source: edited.source,
        author: edited.author.clone(),
        time_ns: edited.updated_ns,
    });
    edited.content = FeedbackContent {
        rating: Some(Rating::Stars(2)),
        correction: Some(vec![Message::text("assistant", "Refunds within 30 days.")]),
        ..FeedbackContent::default()
    };
    edited.updated_ns = T0 + 10;
    store.put_feedback(&edited).await.unwrap_or_else(|e| panic!("{e}"));
    let got = store.get_feedback(&p1, "fb_1").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, Some(edited), "edit replaces and keeps history");
    let of_trace = store.trace_feedback(&p1, trace_id(1)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(of_trace.len(), 2, "an edit is not a second entry");

    assert!(store.delete_feedback(&p1, "fb_2").await.unwrap_or_else(|e| panic!("{e}")));
    assert!(!store.delete_feedback(&p1, "fb_2").await.unwrap_or_else(|e| panic!("{e}")));
    let of_trace = store.trace_feedback(&p1, trace_id(1)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&of_trace), ["fb_1"], "after delete");
}

pub async fn feedback_before_its_span_is_pending(store: &dyn Store) {
    let p1 = project("p1");
    // Sent with only the span id, as a gateway client knows it from `x-loupe-span-id`.
    let early = feedback(
        "fb_early",
        FeedbackTarget::Span { span_id: span_id(7), trace_id: None },
        rating(Rating::Down),
        T0 + 5,
    );
    store.put_feedback(&early).await.unwrap_or_else(|e| panic!("put_feedback failed: {e}"));
    let pending = store.pending_feedback(&p1, T0 + 6, 100).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&pending), ["fb_early"], "pending before the span lands");
    let pending = store.pending_feedback(&p1, T0 + 5, 100).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(pending.is_empty(), "created_before_ns is exclusive");
    assert!(matching(store, "p1", "has feedback").await.is_empty());

    write(store, &[span("p1", 3, 7, None, "late_root", 0, 10)]).await;
    let pending = store.pending_feedback(&p1, T0 + 6, 100).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(pending.is_empty(), "attached once the span is stored");
    let of_trace = store.trace_feedback(&p1, trace_id(3)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&of_trace), ["fb_early"], "the trace sees feedback sent before its span");
    assert_eq!(matching(store, "p1", "rating <= 2").await, ["late_root"]);
}

pub async fn feedback_filters(store: &dyn Store) {
    let spans = [
        llm(span("p1", 1, 1, None, "a", 0, 10), "gpt-4o", 10, 10, "refund please"),
        llm(span("p1", 2, 2, None, "b", 1, 10), "gpt-4o", 10, 10, "hello"),
        llm(span("p1", 3, 3, None, "c", 2, 10), "gpt-4o", 10, 10, "weather"),
        span("p1", 4, 4, None, "d_root", 3, 10),
        span("p1", 4, 5, Some(4), "d_child", 4, 1),
    ];
    write(store, &spans).await;
    let mut scores_a = BTreeMap::new();
    scores_a.insert("helpfulness".to_owned(), ScoreValue::Number(0.2));
    scores_a.insert("tone".to_owned(), ScoreValue::Category("rude".to_owned()));
    scores_a.insert("verdict".to_owned(), ScoreValue::Category("fail".to_owned()));
    let content_a = FeedbackContent {
        rating: Some(Rating::Down),
        scores: scores_a,
        correction: Some(vec![Message::text("assistant", "Refunds within 30 days.")]),
        tags: vec!["refund".to_owned(), "policy".to_owned()],
        comment: Some("cites a draft policy".to_owned()),
    };
    let mut scores_b = BTreeMap::new();
    scores_b.insert("helpfulness".to_owned(), ScoreValue::Number(0.9));
    scores_b.insert("policy_correct".to_owned(), ScoreValue::Bool(true));
    scores_b.insert("verdict".to_owned(), ScoreValue::Category("pass".to_owned()));
    let content_b = FeedbackContent {
        rating: Some(Rating::Up),
        scores: scores_b,
        ..FeedbackContent::default()
    };
    let mut scores_e = BTreeMap::new();
    scores_e.insert("policy_correct".to_owned(), ScoreValue::Bool(false));
    scores_e.insert("verdict".to_owned(), ScoreValue::Category("partial".to_owned()));
    scores_e.insert("grade".to_owned(), ScoreValue::Category("1".to_owned()));
    let content_e = FeedbackContent { scores: scores_e, ..FeedbackContent::default() };
    let mut scores_d = BTreeMap::new();
    scores_d.insert("verdict".to_owned(), ScoreValue::Category("fail".to_owned()));
    let content_d =
        FeedbackContent { rating: Some(Rating::Stars(2)), scores: scores_d, ..Default::default() };
    let entries = [
        feedback("fb_a", on_span(1, 1), content_a, T0 + 1),
        feedback("fb_b", on_span(2, 2), content_b, T0 + 2),
        feedback("fb_d", FeedbackTarget::Trace { trace_id: trace_id(4) }, content_d, T0 + 3),
        feedback("fb_e", on_span(4, 5), content_e, T0 + 4),
    ];
    for entry in &entries {
        store.put_feedback(entry).await.unwrap_or_else(|e| panic!("put_feedback failed: {e}"));
    }
    let cases: [(&str, &[&str]); 27] = [
        ("rating <= 2", &["a", "d_root"]),
        ("rating = down", &["a"]),
        ("rating = up", &["b"]),
        ("rating > 4", &["b"]),
        ("has correction", &["a"]),
        ("not has correction", &["b", "c", "d_child", "d_root"]),
        ("feedback.tag = refund", &["a"]),
        ("feedback.tag ~ \"pol*\"", &["a"]),
        ("score.helpfulness >= 0.8", &["b"]),
        ("score.helpfulness < 0.5", &["a"]),
        ("score.policy_correct = 1", &["b"]),
        ("score.policy_correct = true", &["b"]),
        ("score.policy_correct = false", &["d_child"]),
        ("score.policy_correct != false", &["a", "b", "c", "d_root"]),
        ("score.verdict = fail", &["a", "d_root"]),
        ("score.verdict = \"partial\"", &["d_child"]),
        ("score.verdict = fail or score.verdict = partial", &["a", "d_child", "d_root"]),
        ("score.verdict != pass", &["a", "c", "d_child", "d_root"]),
        ("score.verdict ~ \"PA*\"", &["b", "d_child"]),
        ("score.tone >= 0", &[]),
        ("score.grade = \"1\"", &["d_child"]),
        ("score.grade = 1", &[]),
        ("score.policy_correct = \"false\"", &["d_child"]),
        ("has score.verdict", &["a", "b", "d_child", "d_root"]),
        ("score.verdict = fail and type = llm", &["a"]),
        ("has feedback", &["a", "b", "d_child", "d_root"]),
        ("not has feedback and type = llm", &["c"]),
    ];
    for (filter, expected) in cases {
        let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        expected.sort();
        assert_eq!(matching(store, "p1", filter).await, expected, "{filter}");
    }
    let other_project = matching(store, "p2", "has feedback").await;
    assert!(other_project.is_empty(), "feedback is project-scoped");

    // Trace search: a trace matches when one of its spans does.
    let trace_cases: [(&str, &[&str]); 4] = [
        ("score.verdict = fail", &["a", "d_root"]),
        ("score.verdict = partial or score.verdict = pass", &["b", "d_root"]),
        ("score.policy_correct = false", &["d_root"]),
        ("score.helpfulness < 0.5 and score.verdict = fail", &["a"]),
    ];
    for (filter, expected) in trace_cases {
        let traces = all_traces(store, "p1", filter_query(filter, 100)).await;
        let mut roots: Vec<String> =
            traces.iter().map(|t| t.root_name.clone().unwrap_or_default()).collect();
        roots.sort();
        assert_eq!(roots, expected, "trace search: {filter}");
    }
}

/// A batch (one API call's entries) is written whole: each entry reads back as given, lists
/// come in order, and an empty batch writes nothing. Neither backend rejects an entry the API
/// has validated, so a half-written batch cannot be provoked here; the backends write a batch
/// in one transaction (SQLite) or one `INSERT` block (ClickHouse).
pub async fn feedback_batches_land_whole(store: &dyn Store) {
    let p1 = project("p1");
    write(
        store,
        &[span("p1", 1, 1, None, "root", 0, 10), span("p1", 1, 2, Some(1), "child", 1, 5)],
    )
    .await;
    store.put_feedback_batch(&[]).await.unwrap_or_else(|e| panic!("empty batch failed: {e}"));
    assert!(matching(store, "p1", "has feedback").await.is_empty(), "an empty batch is a no-op");

    let mut scores = BTreeMap::new();
    scores.insert("verdict".to_owned(), ScoreValue::Category("fail".to_owned()));
    let batch: Vec<Feedback> = (0..5u64)
        .map(|i| {
            let content = FeedbackContent {
                rating: Some(Rating::Stars(1 + (i % 5) as u8)),
                scores: scores.clone(),
                tags: vec![format!("batch-{i}")],
                ..FeedbackContent::default()
            };
            let target = match i {
                0 => FeedbackTarget::Trace { trace_id: trace_id(1) },
                4 => FeedbackTarget::Span { span_id: span_id(9), trace_id: None },
                _ => on_span(1, 2),
            };
            feedback(&format!("fb_batch_{i}"), target, content, T0 + 10 - i)
        })
        .collect();
    store.put_feedback_batch(&batch).await.unwrap_or_else(|e| panic!("batch failed: {e}"));
    for entry in &batch {
        let got = store.get_feedback(&p1, &entry.id).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.as_ref(), Some(entry), "{} reads back as written", entry.id);
    }
    // Oldest first: the batch gave later entries earlier times.
    let of_trace = store.trace_feedback(&p1, trace_id(1)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&of_trace), ["fb_batch_3", "fb_batch_2", "fb_batch_1", "fb_batch_0"]);
    let pending = store.pending_feedback(&p1, T0 + 100, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&pending), ["fb_batch_4"], "a batch entry may wait for its span");
    assert_eq!(matching(store, "p1", "score.verdict = fail").await, ["child", "root"]);
    assert_eq!(matching(store, "p1", "feedback.tag = batch-0").await, ["root"]);
}

pub async fn score_configs_crud(store: &dyn Store) {
    let p1 = project("p1");
    let helpfulness = ScoreConfig {
        name: "helpfulness".to_owned(),
        kind: ScoreKind::Numeric { min: 0.0, max: 1.0 },
        description: Some("how much the answer helped".to_owned()),
    };
    let tone = ScoreConfig {
        name: "tone".to_owned(),
        kind: ScoreKind::Categorical { values: vec!["polite".to_owned(), "rude".to_owned()] },
        description: None,
    };
    for config in [&tone, &helpfulness] {
        store.put_score_config(&p1, config).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let listed = store.list_score_configs(&p1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed, [helpfulness.clone(), tone.clone()], "by name");
    let replaced = ScoreConfig { kind: ScoreKind::Boolean, ..tone.clone() };
    store.put_score_config(&p1, &replaced).await.unwrap_or_else(|e| panic!("{e}"));
    let listed = store.list_score_configs(&p1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed, [helpfulness, replaced], "put replaces by name");
    assert!(store.delete_score_config(&p1, "tone").await.unwrap_or_else(|e| panic!("{e}")));
    assert!(!store.delete_score_config(&p1, "tone").await.unwrap_or_else(|e| panic!("{e}")));
    let other = store.list_score_configs(&project("p2")).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(other.is_empty(), "score configs are project-scoped");
}

fn item(id: &str, prompt: &str, answer: &str, span: u64) -> DatasetItem {
    DatasetItem {
        id: id.to_owned(),
        input: ItemInput { messages: vec![Message::text("user", prompt)], ..ItemInput::default() },
        expected: vec![Message::text("assistant", answer)],
        expected_source: ExpectedSource::Recorded,
        recorded: Vec::new(),
        metadata: BTreeMap::new(),
        source: Some(ItemSource {
            trace_id: trace_id(span),
            span_id: span_id(span),
            feedback_id: None,
        }),
        merged_from: Vec::new(),
        input_fingerprint: format!("fp-{prompt}"),
        split: Split::Train,
    }
}

async fn all_items(store: &dyn Store, dataset: &str, version: u32) -> Vec<String> {
    let mut res = Vec::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let page = store
            .dataset_items(&project("p1"), dataset, version, cursor.as_ref(), 2)
            .await
            .unwrap_or_else(|e| panic!("dataset_items failed: {e}"));
        assert!(page.items.len() <= 2, "pages respect the limit");
        res.extend(
            page.items
                .iter()
                .map(|item| format!("{}:{}", item.id, item.expected[0].text_content())),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return res,
        }
    }
    panic!("dataset_items never ended its pagination");
}

pub async fn dataset_versions_are_immutable(store: &dyn Store) {
    let p1 = project("p1");
    let dataset = Dataset {
        project: p1.clone(),
        name: "refunds".to_owned(),
        description: Some("refund answers".to_owned()),
        created_ns: T0,
        latest_version: None,
    };
    store.create_dataset(&dataset).await.unwrap_or_else(|e| panic!("create_dataset failed: {e}"));
    let again = store.create_dataset(&dataset).await;
    assert!(matches!(again, Err(crate::Error::Conflict(_))), "a name is taken once: {again:?}");
    assert_eq!(store.get_dataset(&p1, "refunds").await.ok().flatten(), Some(dataset.clone()));

    let v1 = store
        .create_dataset_version(
            &p1,
            "refunds",
            &NewDatasetVersion {
                add: vec![
                    item("itm_a", "late order", "refund", 1),
                    item("itm_b", "broken item", "replace", 2),
                    item("itm_c", "late order", "refund now", 3),
                    item("itm_d", "lost parcel", "investigate", 4),
                    item("itm_e", "wrong size", "exchange", 5),
                ],
                merge_duplicates: true,
                query: Some("has correction".to_owned()),
                created_ns: T0 + 1,
                ..NewDatasetVersion::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create_dataset_version failed: {e}"));
    assert_eq!((v1.version, v1.n_items), (1, 4), "itm_c merged into the same input as itm_a");
    let v1_items = all_items(store, "refunds", 1).await;
    assert_eq!(
        v1_items,
        ["itm_b:replace", "itm_c:refund now", "itm_d:investigate", "itm_e:exchange"]
    );

    let v2 = store
        .create_dataset_version(
            &p1,
            "refunds",
            &NewDatasetVersion {
                base: Some(1),
                add: vec![item("itm_b", "broken item", "replace or refund", 2)],
                remove: vec!["itm_d".to_owned()],
                created_ns: T0 + 2,
                ..NewDatasetVersion::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((v2.version, v2.n_items), (2, 3));
    assert_eq!(
        all_items(store, "refunds", 2).await,
        ["itm_b:replace or refund", "itm_c:refund now", "itm_e:exchange"]
    );
    assert_eq!(all_items(store, "refunds", 1).await, v1_items, "version 1 is unchanged");

    // A bad base fails as a whole: no version 3 appears.
    let bad = store
        .create_dataset_version(
            &p1,
            "refunds",
            &NewDatasetVersion {
                base: Some(9),
                created_ns: T0 + 3,
                ..NewDatasetVersion::default()
            },
        )
        .await;
    assert!(matches!(bad, Err(crate::Error::NotFound(_))), "unknown base: {bad:?}");
    let unknown = store.create_dataset_version(&p1, "nope", &NewDatasetVersion::default()).await;
    assert!(matches!(unknown, Err(crate::Error::NotFound(_))), "unknown dataset: {unknown:?}");
    let versions =
        store.list_dataset_versions(&p1, "refunds").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(versions[0].query.as_deref(), Some("has correction"));
    let got = store.get_dataset_version(&p1, "refunds", 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, Some(v2));
    let missing = store.dataset_items(&p1, "refunds", 3, None, 10).await;
    assert!(matches!(missing, Err(crate::Error::NotFound(_))), "unknown version: {missing:?}");
    let latest =
        store.get_dataset(&p1, "refunds").await.ok().flatten().and_then(|d| d.latest_version);
    assert_eq!(latest, Some(2));

    let refs = store.span_datasets(&p1, span_id(4)).await.unwrap_or_else(|e| panic!("{e}"));
    let refs: Vec<String> =
        refs.iter().map(|r| format!("{}@{}:{}", r.dataset, r.version, r.item_id)).collect();
    assert_eq!(refs, ["refunds@1:itm_d"], "span 4's item was removed in version 2");
    let refs = store.span_datasets(&p1, span_id(5)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refs.len(), 2, "span 5 is in both versions");
    let listed = store.list_datasets(&p1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.len(), 1);
    assert!(store.list_datasets(&project("p2")).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
}
