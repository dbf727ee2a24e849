//! Tests of the ClickHouse store: the backend-neutral `store::suite` and the spill against a
//! real server when `CLICKHOUSE_URL` is set (`scripts/clickhouse.sh start` prints it; each test
//! uses a fresh `loupe_test_*` database and drops it), and the spill's bound without a server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use model::StoredSpan;
use store::suite::{self, span};
use store::{SpanQuery, Store};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::{ClickHouseConfig, ClickHouseStore};

/// The server under test, or `None` (with a notice) when `CLICKHOUSE_URL` is not set.
fn clickhouse_url() -> Option<String> {
    match std::env::var("CLICKHOUSE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipping: CLICKHOUSE_URL is not set (run scripts/clickhouse.sh start to get one)"
            );
            None
        }
    }
}

fn fresh_database_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "loupe_test_{}_{}_{}",
        std::process::id(),
        crate::now_ns(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn test_config(url: &str) -> ClickHouseConfig {
    let mut config = ClickHouseConfig::from_url(url).unwrap_or_else(|e| panic!("{e}"));
    config.database = fresh_database_name();
    config
}

async fn fresh_store(url: &str) -> ClickHouseStore {
    ClickHouseStore::open(test_config(url)).await.unwrap_or_else(|e| panic!("open: {e}"))
}

/// Runs one suite check against a fresh database, then drops it.
macro_rules! suite_checks {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let Some(url) = clickhouse_url() else { return };
            let store = fresh_store(&url).await;
            suite::$check(&store).await;
            store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
        }
    )*};
}

suite_checks!(
    write_and_get_trace_round_trip,
    duplicates_are_stored_once,
    out_of_order_spans_assemble_one_trace,
    orphans_are_returned,
    operation_id_comes_from_the_root,
    filters_on_every_field,
    full_text_search,
    time_range_order_and_pagination,
    trace_search_and_summaries,
    sessions_are_oldest_first,
    facets_count_values,
    aggregate_groups_and_buckets,
    scan_and_update_views,
    api_keys_crud,
    projects_are_isolated,
);

/// Runs one feedback/dataset suite check against a fresh database, then drops it.
macro_rules! feedback_checks {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let Some(url) = clickhouse_url() else { return };
            let store = fresh_store(&url).await;
            suite::feedback::$check(&store).await;
            store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
        }
    )*};
}

feedback_checks!(
    feedback_round_trip_and_edits,
    feedback_before_its_span_is_pending,
    feedback_filters,
    feedback_batches_land_whole,
    score_configs_crud,
    dataset_versions_are_immutable,
);

/// Runs one retention suite check against a fresh database, then drops it.
macro_rules! retention_checks {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let Some(url) = clickhouse_url() else { return };
            let store = fresh_store(&url).await;
            suite::retention::$check(&store).await;
            store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
        }
    )*};
}

retention_checks!(
    tiers_are_recorded,
    rewrite_replaces_content_and_keeps_rollups,
    delete_traces_before_deletes_whole_old_traces,
    user_traces_pages,
    state_round_trip,
    span_projects_lists_projects_with_spans,
);

/// The eval-run checks against a fresh database.
#[tokio::test]
async fn eval_runs_round_trip() {
    let Some(url) = clickhouse_url() else { return };
    let store = fresh_store(&url).await;
    suite::evals::eval_runs_round_trip(&store).await;
    store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

/// The span-event suite check against a fresh database.
#[tokio::test]
async fn span_events_round_trip() {
    let Some(url) = clickhouse_url() else { return };
    let store = fresh_store(&url).await;
    suite::span_events::span_events_round_trip(&store).await;
    store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

/// The whole suite through its entry point, so checks added to it later run here too.
#[tokio::test]
async fn suite_run_all() {
    let Some(url) = clickhouse_url() else { return };
    let databases = Arc::new(std::sync::Mutex::new(Vec::new()));
    let make_store = || {
        let url = url.clone();
        let databases = databases.clone();
        async move {
            let store = fresh_store(&url).await;
            databases.lock().unwrap_or_else(|e| e.into_inner()).push(store.inner.config.clone());
            Box::new(store) as Box<dyn Store>
        }
    };
    suite::run_all(&make_store).await;
    suite::feedback::run_all(&make_store).await;
    suite::retention::run_all(&make_store).await;
    suite::evals::run_all(&make_store).await;
    suite::span_events::run_all(&make_store).await;
    let configs = databases.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for config in configs {
        let store = ClickHouseStore::open_lazy(config).unwrap_or_else(|e| panic!("{e}"));
        store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Filtered trace lists over days of data go through the widening time windows; the pages
/// must be the same as a full scan's: every matching trace once, newest first.
#[tokio::test]
async fn filtered_trace_pages_over_days_are_complete() {
    let Some(url) = clickhouse_url() else { return };
    let store = fresh_store(&url).await;
    let hour_ms = 3_600_000;
    let mut spans = Vec::new();
    for t in 0..40u64 {
        let start = t * 2 * hour_ms;
        spans.push(span("p1", t + 1, 1, None, &format!("root{t:02}"), start, 1000));
        // Odd traces have an LLM child that starts late in the trace.
        if t % 2 == 1 {
            spans.push(suite::llm(
                span("p1", t + 1, 2, Some(1), "llm", start + 900, 50),
                "m",
                1,
                1,
                "x",
            ));
        }
    }
    store.write_spans(&spans).await.unwrap_or_else(|e| panic!("{e}"));
    let filter = store::syntax::parse("type = llm").unwrap_or_else(|e| panic!("{e}"));
    let mut query = store::TraceQuery { filter, limit: 3, ..store::TraceQuery::default() };
    let mut roots = Vec::new();
    loop {
        let page = store
            .search_traces(&suite::project("p1"), &query)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        roots.extend(page.items.into_iter().filter_map(|t| t.root_name));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    let expected: Vec<String> =
        (0..40u64).rev().filter(|t| t % 2 == 1).map(|t| format!("root{t:02}")).collect();
    assert_eq!(roots, expected);
    store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

/// Deleted traces are gone from every read; other traces and projects stay.
#[tokio::test]
async fn delete_traces_removes_spans_and_index_entries() {
    let Some(url) = clickhouse_url() else { return };
    let store = fresh_store(&url).await;
    let mut spans = Vec::new();
    for t in 1..=3u64 {
        spans.push(span("p1", t, 1, None, &format!("root{t}"), t * 100, 50));
        spans.push(span("p1", t, 2, Some(1), &format!("child{t}"), t * 100 + 1, 10));
    }
    spans.push(span("p2", 1, 1, None, "other_project", 100, 50));
    store.write_spans(&spans).await.unwrap_or_else(|e| panic!("{e}"));
    let p1 = suite::project("p1");
    let n = store
        .delete_traces(&p1, &[suite::trace_id(1), suite::trace_id(3), suite::trace_id(99)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 4);
    assert!(
        store.get_trace(&p1, suite::trace_id(1)).await.unwrap_or_else(|e| panic!("{e}")).is_empty()
    );
    assert_eq!(
        store.get_trace(&p1, suite::trace_id(2)).await.unwrap_or_else(|e| panic!("{e}")).len(),
        2
    );
    let traces = store
        .search_traces(&p1, &store::TraceQuery { with_total: true, ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let roots: Vec<Option<String>> = traces.items.into_iter().map(|t| t.root_name).collect();
    assert_eq!(roots, [Some("root2".to_owned())]);
    assert_eq!(traces.total, Some(1));
    let other = store
        .get_trace(&suite::project("p2"), suite::trace_id(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.len(), 1, "the same trace id in another project stays");
    assert_eq!(
        store.delete_traces(&p1, &[suite::trace_id(1)]).await.unwrap_or_else(|e| panic!("{e}")),
        0
    );
    store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

/// The active partitions (UTC days) of `spans`.
async fn span_partitions(store: &ClickHouseStore) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Row {
        partition: String,
    }
    let rows: Vec<Row> = store
        .inner
        .client
        .select(&format!(
            "SELECT DISTINCT partition FROM system.parts WHERE database = '{}' \
             AND table = 'spans' AND active AND rows > 0 ORDER BY partition",
            store.inner.config.database
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rows.into_iter().map(|r| r.partition).collect()
}

/// Retention drops a day partition whole when only the project's old, whole traces are in
/// it (whatever the limit: dropping is a metadata operation), and deletes by mutation where
/// another project shares the day or a trace crosses midnight.
#[tokio::test]
async fn retention_drops_whole_day_partitions() {
    let Some(url) = clickhouse_url() else { return };
    let store = fresh_store(&url).await;
    let day_ms = 86_400_000;
    let spans = vec![
        // Day 0 (2026-01-01): p1 alone.
        span("p1", 1, 1, None, "day0.root", 0, 100),
        span("p1", 1, 2, Some(1), "day0.child", 10, 50),
        // Day 1: p1 and p2.
        span("p1", 2, 1, None, "day1.p1", day_ms, 100),
        span("p2", 1, 1, None, "day1.p2", day_ms, 100),
        // Days 2 and 3: p1 alone, one trace across midnight.
        span("p1", 3, 1, None, "day2.root", 3 * day_ms - 60_000, 120_000),
        span("p1", 3, 2, Some(1), "day3.child", 3 * day_ms + 30_000, 10),
        // Day 4: kept.
        span("p1", 4, 1, None, "day4", 4 * day_ms, 100),
    ];
    store.write_spans(&spans).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        span_partitions(&store).await,
        ["20260101", "20260102", "20260103", "20260104", "20260105"]
    );
    let p1 = suite::project("p1");
    let cutoff = suite::T0 + 4 * day_ms * 1_000_000;
    let delete = |limit: u32| {
        let (store, p1) = (&store, &p1);
        async move {
            store.delete_traces_before(p1, cutoff, limit).await.unwrap_or_else(|e| panic!("{e}"))
        }
    };
    assert_eq!(delete(1).await, 2, "day 0 goes whole, past the limit");
    assert_eq!(
        span_partitions(&store).await,
        ["20260102", "20260103", "20260104", "20260105"],
        "by dropping its partition"
    );
    assert!(
        store.get_trace(&p1, suite::trace_id(1)).await.unwrap_or_else(|e| panic!("{e}")).is_empty()
    );
    // The rest by mutation: the shared day, then the trace across midnight.
    assert_eq!(delete(1).await, 1);
    assert_eq!(delete(1000).await, 2);
    assert_eq!(delete(1000).await, 0);
    let left = store
        .search_traces(&p1, &store::TraceQuery { with_total: true, ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let roots: Vec<Option<String>> = left.items.into_iter().map(|t| t.root_name).collect();
    assert_eq!(roots, [Some("day4".to_owned())], "the trace index follows");
    let p2 = store
        .get_trace(&suite::project("p2"), suite::trace_id(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p2.len(), 1, "the other project's span on the shared day stays");
    store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

/// A rewrite's tier survives a re-derived view, and `purge_deleted` leaves no row of the
/// replaced content in the table's parts (read without `FINAL`).
#[tokio::test]
async fn rewrites_keep_their_tier_and_purge_merges_old_versions_away() {
    let Some(url) = clickhouse_url() else { return };
    let store = fresh_store(&url).await;
    let call = suite::llm(span("p1", 1, 1, None, "call", 0, 10), "m", 1, 1, "secret marmalade");
    let other = suite::llm(span("p2", 1, 1, None, "call", 0, 10), "m", 1, 1, "public marmalade");
    store.write_spans(&[call.clone(), other]).await.unwrap_or_else(|e| panic!("{e}"));
    // Background merges would also drop old versions, some time; stopped, only the purge can.
    let merges = |verb: &'static str| {
        let store = &store;
        async move {
            store
                .inner
                .client
                .execute(&format!("SYSTEM {verb} MERGES {}.spans", store.inner.config.database))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    merges("STOP").await;
    let reduced = suite::retention::without_content(&call);
    let structure = store::RetentionTier::Structure;
    assert_eq!(
        store
            .rewrite_spans(std::slice::from_ref(&reduced), structure)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        1
    );
    assert_eq!(
        store.update_views(std::slice::from_ref(&reduced)).await.unwrap_or_else(|e| panic!("{e}")),
        1
    );
    let p1 = suite::project("p1");
    let below = store
        .spans_below_tier(&p1, structure, u64::MAX, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(below.is_empty(), "a re-derived view keeps the span's tier");
    let old_versions = || async {
        let rows: Vec<CountRow> = store
            .inner
            .client
            .select(
                "SELECT count() AS n FROM spans WHERE project = 'p1' AND (position(raw_json, \
                 'marmalade') > 0 OR position(view_json, 'marmalade') > 0 \
                 OR position(search_text, 'marmalade') > 0)",
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        rows[0].n
    };
    assert_eq!(old_versions().await, 1, "the replaced version is still in a part");
    assert!(span_names(&store, "p1", "marmalade").await.is_empty(), "but not readable");
    merges("START").await;
    store.purge_deleted().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(old_versions().await, 0, "no version of the replaced content is left in the parts");
    let rows: Vec<CountRow> = store
        .inner
        .client
        .select("SELECT count() AS n FROM spans WHERE project = 'p2'")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows[0].n, 1, "other spans stay");
    store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

/// Feedback filters on every ClickHouse read path: span lists with totals, the join with trace
/// facts (`operation`), trace lists, aggregates; edits and deletes of feedback are followed
/// (the `feedback` table is read with `FINAL`).
#[tokio::test]
async fn feedback_filters_on_every_read_path() {
    use model::{Feedback, FeedbackContent, FeedbackSource, FeedbackTarget, ScoreValue};
    let Some(url) = clickhouse_url() else { return };
    let store = fresh_store(&url).await;
    let mut root = span("p1", 1, 1, None, "checkout.root", 0, 100);
    root.view.operation_id = Some("checkout".to_owned());
    let spans = vec![
        root,
        suite::llm(span("p1", 1, 2, Some(1), "checkout.llm", 10, 50), "gpt-4o", 1, 1, "x"),
        suite::llm(span("p1", 2, 3, None, "other.llm", 200, 50), "gpt-4o", 1, 1, "y"),
        suite::llm(span("p1", 3, 4, None, "plain.llm", 300, 50), "claude", 1, 1, "z"),
    ];
    store.write_spans(&spans).await.unwrap_or_else(|e| panic!("{e}"));
    let scored = |id: &str, span: u64, trace: u64, quality: f64| Feedback {
        id: id.to_owned(),
        project: suite::project("p1"),
        target: FeedbackTarget::Span {
            span_id: suite::span_id(span),
            trace_id: Some(suite::trace_id(trace)),
        },
        content: FeedbackContent {
            scores: [("quality".to_owned(), ScoreValue::Number(quality))].into_iter().collect(),
            ..FeedbackContent::default()
        },
        source: FeedbackSource::Human,
        author: None,
        created_ns: suite::T0,
        updated_ns: suite::T0,
        history: Vec::new(),
    };
    for entry in [scored("fb_1", 2, 1, 1.0), scored("fb_2", 3, 2, 5.0)] {
        store.put_feedback(&entry).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(span_names(&store, "p1", "score.quality <= 2").await, ["checkout.llm"]);
    assert_eq!(
        span_names(&store, "p1", "score.quality <= 2 and operation = checkout").await,
        ["checkout.llm"]
    );
    assert_eq!(
        span_names(&store, "p1", "no feedback").await,
        ["checkout.root", "plain.llm"],
        "`no feedback` is `not has feedback`"
    );
    let p1 = suite::project("p1");
    let filter = |text: &str| store::syntax::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let total = store
        .search_spans(
            &p1,
            &SpanQuery { filter: filter("has feedback"), with_total: true, ..Default::default() },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .total;
    assert_eq!(total, Some(2));
    let traces = store
        .search_traces(
            &p1,
            &store::TraceQuery {
                filter: filter("score.quality <= 2 and operation = checkout"),
                with_total: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let roots: Vec<Option<String>> = traces.items.iter().map(|t| t.root_name.clone()).collect();
    assert_eq!((roots, traces.total), (vec![Some("checkout.root".to_owned())], Some(1)));
    let rows = store
        .aggregate(
            &p1,
            &store::AggregateQuery {
                filter: filter("has score.quality"),
                time: store::TimeRange::default(),
                group_by: vec![store::GroupBy::Model],
                bucket_ns: None,
                metrics: vec![store::Metric::Count],
                limit: 10,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let counts: Vec<String> =
        rows.iter().map(|r| format!("{:?} {:?}", r.group, r.values)).collect();
    assert_eq!(counts, [r#"[Some("gpt-4o")] [Some(2)]"#]);
    // An edit moves the span out of the filter, a delete out of `has feedback`.
    store.put_feedback(&scored("fb_1", 2, 1, 4.0)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(span_names(&store, "p1", "score.quality <= 2").await.is_empty());
    assert!(store.delete_feedback(&p1, "fb_2").await.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(span_names(&store, "p1", "has feedback").await, ["checkout.llm"]);
    store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

/// The names of the spans of a project matching a filter, sorted.
async fn span_names(store: &ClickHouseStore, project: &str, filter: &str) -> Vec<String> {
    let filter = store::syntax::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    let query = SpanQuery { filter, limit: 1000, ..SpanQuery::default() };
    let page = store
        .search_spans(&suite::project(project), &query)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut res: Vec<String> = page.items.into_iter().map(|s| s.raw.name).collect();
    res.sort();
    res
}

#[derive(serde::Deserialize)]
struct CountRow {
    n: u64,
}

/// A database written by a build at schema version 2 is upgraded in place: its spans read as
/// tier `Full` and take part in retention like new ones.
#[tokio::test]
async fn spans_stored_before_tiers_existed_are_at_tier_full() {
    let Some(url) = clickhouse_url() else { return };
    let config = test_config(&url);
    let client = crate::client::Client::new(&config).unwrap_or_else(|e| panic!("{e}"));
    let version =
        client.execute_without_database("SELECT version()").await.unwrap_or_else(|e| panic!("{e}"));
    let dialect = crate::schema::Dialect::from_version(version.trim());
    crate::schema::migrate_up_to(&client, &config.database, dialect, 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The row as version 2 wrote it: no `tier` column.
    let old = span("p1", 1, 1, None, "old", 0, 10);
    let mut line = Vec::new();
    crate::row::write_span_row(&old, 1, 0, &mut line).unwrap_or_else(|e| panic!("{e}"));
    let mut row: serde_json::Value =
        serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}"));
    row.as_object_mut().map(|object| object.remove("tier"));
    client.insert("spans", format!("{row}\n").into_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    let index = crate::index_rows(&[&old], 1).unwrap_or_else(|e| panic!("{e}"));
    client.insert("trace_index", index).await.unwrap_or_else(|e| panic!("{e}"));

    let store = ClickHouseStore::open(config).await.unwrap_or_else(|e| panic!("{e}"));
    let p1 = suite::project("p1");
    let structure = store::RetentionTier::Structure;
    let below = store
        .spans_below_tier(&p1, structure, u64::MAX, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(below, vec![old.clone()]);
    let reduced = suite::retention::without_content(&old);
    assert_eq!(
        store.rewrite_spans(&[reduced], structure).await.unwrap_or_else(|e| panic!("{e}")),
        1
    );
    let below = store
        .spans_below_tier(&p1, structure, u64::MAX, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(below.is_empty());
    store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn migrations_are_idempotent_and_concurrent() {
    let Some(url) = clickhouse_url() else { return };
    let config = test_config(&url);
    // Several nodes starting at once against an empty database.
    let opens = (0..4).map(|_| ClickHouseStore::open(config.clone()));
    let stores: Vec<ClickHouseStore> = futures_join_all(opens).await;
    let store = &stores[0];
    #[derive(serde::Deserialize)]
    struct Row {
        version: u32,
    }
    let rows: Vec<Row> = store
        .inner
        .client
        .select("SELECT DISTINCT version FROM loupe_migrations ORDER BY version")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let versions: Vec<u32> = rows.into_iter().map(|r| r.version).collect();
    assert_eq!(versions, (1..=crate::schema::SCHEMA_VERSION).collect::<Vec<_>>());
    // And once more on the migrated database.
    let again = ClickHouseStore::open(config).await.unwrap_or_else(|e| panic!("{e}"));
    again.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

async fn futures_join_all<
    F: Future<Output = Result<ClickHouseStore, crate::Error>> + Send + 'static,
>(
    futures: impl Iterator<Item = F>,
) -> Vec<ClickHouseStore> {
    let handles: Vec<_> = futures.map(|f| tokio::spawn(f)).collect();
    let mut res = Vec::new();
    for handle in handles {
        let store =
            handle.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
        res.push(store);
    }
    res
}

/// A TCP proxy in front of ClickHouse that can be taken down (refusing and cutting every
/// connection) and brought back, as a server stop and restart look to the store.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = {
            let up = up.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap_or_else(|e| e.into_inner()).push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        Proxy { addr, up, connections, accept }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for task in self.connections.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
                task.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set_up(false);
        self.accept.abort();
    }
}

fn batch(n: u64, n_spans: u64) -> Vec<StoredSpan> {
    (0..n_spans)
        .map(|i| span("p1", n + 1, i + 1, None, &format!("b{n}s{i}"), n * 1000 + i, 5))
        .collect()
}

/// How the test takes ClickHouse away.
enum Outage {
    /// A proxy in front of the shared server is cut (safe next to other tests).
    Proxy(Proxy),
    /// The real server is stopped and started with `scripts/clickhouse.sh` (set
    /// `LOUPE_CLICKHOUSE_RESTART=1` and run this test alone: other tests would fail meanwhile).
    Restart,
}

impl Outage {
    fn set_up(&self, up: bool) {
        match self {
            Outage::Proxy(proxy) => proxy.set_up(up),
            Outage::Restart => {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/clickhouse.sh");
                let status = std::process::Command::new(script)
                    .arg(if up { "start" } else { "stop" })
                    .stdout(std::process::Stdio::null())
                    .status()
                    .unwrap_or_else(|e| panic!("{script}: {e}"));
                assert!(status.success(), "{script} failed");
            }
        }
    }
}

/// ClickHouse goes away in the middle of a load and comes back: every acknowledged span is
/// stored exactly once, whether it went straight in or through the spill.
#[tokio::test]
async fn spill_and_replay_when_clickhouse_goes_away_mid_load() {
    let Some(url) = clickhouse_url() else { return };
    let (outage, store_url) = if std::env::var("LOUPE_CLICKHOUSE_RESTART").is_ok_and(|v| v == "1") {
        (Outage::Restart, url.clone())
    } else {
        let base = ClickHouseConfig::from_url(&url).unwrap_or_else(|e| panic!("{e}"));
        let upstream: SocketAddr = format!(
            "{}:{}",
            base.endpoint.host_str().unwrap_or("127.0.0.1"),
            base.endpoint.port().unwrap_or(8123)
        )
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
        let proxy = Proxy::start(upstream).await;
        let store_url = format!("http://{}/", proxy.addr);
        (Outage::Proxy(proxy), store_url)
    };
    let spill_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = test_config(&store_url).with_spill_dir(spill_dir.path());
    config.insert_attempts = 2;
    config.retry_base = std::time::Duration::from_millis(10);
    // Replays are driven by the test (and the background task, which may win some).
    config.replay_interval = std::time::Duration::from_millis(50);
    let store = Arc::new(ClickHouseStore::open(config).await.unwrap_or_else(|e| panic!("{e}")));

    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..30 {
                let spans = batch(n, 20);
                if store.write_spans(&spans).await.is_ok() {
                    acked.push(n);
                }
                let _ = acked_tx.send(n);
            }
            acked
        })
    };
    let mut spilled_while_down = 0;
    while let Some(n) = acked_rx.recv().await {
        if n == 9 {
            outage.set_up(false);
        }
        if n == 19 {
            spilled_while_down = store.spill_bytes();
            outage.set_up(true);
        }
    }
    let acked = writer.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(acked.len(), 30, "every batch is acknowledged (stored or spilled)");
    assert!(spilled_while_down > 0, "batches were spilled while clickhouse was away");
    store.replay_spill().await.unwrap_or_else(|e| panic!("replay: {e}"));
    assert_eq!(store.spill_bytes(), 0);
    let page = store
        .search_spans(
            &suite::project("p1"),
            &SpanQuery { limit: 1, with_total: true, ..SpanQuery::default() },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.total, Some(600), "every acknowledged span, once");
    for n in [0, 15, 29] {
        assert_eq!(
            suite::trace_id(n + 1),
            store
                .get_trace(&suite::project("p1"), suite::trace_id(n + 1))
                .await
                .unwrap_or_else(|e| panic!("{e}"))[0]
                .raw
                .trace_id
        );
    }
    assert_eq!(std::fs::read_dir(spill_dir.path()).map(|d| d.count()).unwrap_or(0), 0);
    store.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
}

/// An unreadable spill file is set aside (kept as `.bad`), not replayed forever.
#[tokio::test]
async fn unreadable_spill_files_are_set_aside() {
    let spill_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(spill_dir.path().join("00000000000000000001.spill"), "{not json\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let config = ClickHouseConfig::from_url("clickhouse://127.0.0.1:9/db")
        .unwrap_or_else(|e| panic!("{e}"))
        .with_spill_dir(spill_dir.path());
    let store = ClickHouseStore::open_lazy(config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.spill_bytes(), 10);
    assert_eq!(store.replay_spill().await.unwrap_or_else(|e| panic!("{e}")), 0);
    assert_eq!(store.spill_bytes(), 0);
    let mut names: Vec<String> = std::fs::read_dir(spill_dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(names, ["00000000000000000001.bad"]);
}

/// Without a server, writes are acknowledged into the spill up to its bound, then refused as
/// unavailable; the spill survives a restart of the store.
#[tokio::test]
async fn spill_is_bounded_and_durable_without_a_server() {
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let spill_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = ClickHouseConfig::from_url(&format!("clickhouse://127.0.0.1:{port}/db"))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_spill_dir(spill_dir.path());
    config.insert_attempts = 1;
    config.spill_max_bytes = 20_000;
    let store = ClickHouseStore::open_lazy(config.clone()).unwrap_or_else(|e| panic!("{e}"));
    let mut n_acked = 0;
    let refused = loop {
        match store.write_spans(&batch(n_acked, 5)).await {
            Ok(stats) => {
                assert_eq!(stats.n_written, 5);
                n_acked += 1;
                assert!(n_acked < 1000, "the spill never filled up");
            }
            Err(e) => break e,
        }
    };
    assert!(n_acked > 0);
    assert!(matches!(refused, store::Error::Unavailable(_)), "{refused:?}");
    assert_eq!(refused.code(), model::ErrorCode::Unavailable);
    let n_bytes = store.spill_bytes();
    assert!(n_bytes > 0 && n_bytes <= 20_000, "{n_bytes}");
    drop(store);
    let reopened = ClickHouseStore::open_lazy(config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reopened.spill_bytes(), n_bytes, "the spill is found again after a restart");
    let files = std::fs::read_dir(spill_dir.path()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files as u64, n_acked);
}
