//! The backend-neutral suite run against fresh SQLite stores, the schema golden test, and the
//! store's own behaviour around files (reopening, a lost search index, a newer schema).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use expect_test::{Expect, expect};
use model::{ProjectId, TraceId};
use store::suite::{llm, span};
use store::{SpanQuery, Store, TraceQuery};

use crate::{SqliteConfig, SqliteStore};

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(SqliteConfig::new(dir)).expect("open store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_suite() {
    let parent = tempfile::tempdir().expect("temp dir");
    let n_stores = AtomicUsize::new(0);
    store::suite::run_all(|| {
        let dir = parent.path().join(n_stores.fetch_add(1, Ordering::Relaxed).to_string());
        async move { Box::new(open(&dir)) as Box<dyn Store> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_events_suite() {
    let parent = tempfile::tempdir().expect("temp dir");
    let n_stores = AtomicUsize::new(0);
    store::suite::span_events::run_all(|| {
        let dir = parent.path().join(n_stores.fetch_add(1, Ordering::Relaxed).to_string());
        async move { Box::new(open(&dir)) as Box<dyn Store> }
    })
    .await;
}

/// The same suite on a current-thread runtime, where writes take the blocking-pool path.
#[tokio::test(flavor = "current_thread")]
async fn backend_suite_current_thread() {
    let parent = tempfile::tempdir().expect("temp dir");
    let n_stores = AtomicUsize::new(0);
    store::suite::run_all(|| {
        let dir = parent.path().join(n_stores.fetch_add(1, Ordering::Relaxed).to_string());
        async move { Box::new(open(&dir)) as Box<dyn Store> }
    })
    .await;
}

#[test]
fn data_dir_is_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("a/b");
    let store = open(&data_dir);
    assert!(store.path().exists());
    assert!(data_dir.join("search.db").exists());
}

fn page_size_of(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.query_row("PRAGMA page_size", [], |row| row.get(0)).expect("page size")
}

/// A new database gets `PAGE_SIZE` pages; an existing one keeps the page size it was made with.
#[test]
fn new_databases_get_large_pages_and_old_ones_keep_theirs() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    let path = dir.path().join(crate::DB_FILE_NAME);
    assert_eq!(page_size_of(&path), i64::from(crate::PAGE_SIZE));
    drop(open(dir.path()));
    assert_eq!(page_size_of(&path), i64::from(crate::PAGE_SIZE), "reopened");

    let old = tempfile::tempdir().expect("temp dir");
    let path = old.path().join(crate::DB_FILE_NAME);
    let conn = rusqlite::Connection::open(&path).expect("create");
    conn.execute_batch(include_str!("../test_data/schema_v1.sql")).expect("load dump");
    drop(conn);
    assert_eq!(page_size_of(&path), 4096, "SQLite's default");
    drop(open(old.path()));
    assert_eq!(page_size_of(&path), 4096, "kept after migrating");
}

/// A short description of what a store holds, for snapshots.
async fn render(store: &SqliteStore) -> String {
    let project = ProjectId::default_project();
    let mut res = String::new();
    let traces = store
        .search_traces(&project, &TraceQuery { with_total: true, ..TraceQuery::default() })
        .await
        .expect("search traces");
    res.push_str(&format!("traces: {}\n", traces.total.unwrap_or(0)));
    for trace in &traces.items {
        res.push_str(&format!(
            "trace {} root={:?} op={:?} spans={} llm={} errors={} tokens={}/{} cost={:?} \
             session={:?}\n",
            trace.trace_id,
            trace.root_name,
            trace.operation_id,
            trace.n_spans,
            trace.n_llm_spans,
            trace.n_errors,
            trace.input_tokens,
            trace.output_tokens,
            trace.cost.map(|c| c.to_string()),
            trace.session_id,
        ));
        for span in store.get_trace(&project, trace.trace_id).await.expect("get trace") {
            res.push_str(&format!(
                "  {} {} {} model={:?} op={:?} attrs={} messages={}+{}\n",
                span.raw.span_id,
                span.raw.name,
                span.view.span_type.as_str(),
                span.view.model(),
                span.view.operation_id,
                span.raw.attributes.len(),
                span.view.input_messages.len(),
                span.view.output_messages.len(),
            ));
        }
    }
    for filter in ["refund", "type = llm and model ~ \"gpt*\""] {
        let query = SpanQuery {
            filter: store::syntax::parse(filter).expect("filter"),
            with_total: true,
            ..SpanQuery::default()
        };
        let page = store.search_spans(&project, &query).await.expect("search spans");
        res.push_str(&format!("spans [{filter}]: {}\n", page.total.unwrap_or(0)));
    }
    res
}

#[track_caller]
fn check_dump(dump: &str, expect: Expect) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = rusqlite::Connection::open(dir.path().join(crate::DB_FILE_NAME)).expect("create");
    conn.execute_batch(dump).expect("load dump");
    drop(conn);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let actual = runtime.block_on(async {
        let store = open(dir.path());
        let version: i64 = store
            .with_reader(|conn| {
                Ok(conn.query_row("SELECT MAX(version) FROM schema_migrations", [], |row| {
                    row.get(0)
                })?)
            })
            .await
            .expect("version");
        let key = store.find_api_key(&"a".repeat(64)).await.expect("api key");
        format!(
            "schema version: {version}\napi key: {:?}\n{}",
            key.map(|k| (k.id, k.project.to_string(), k.labels)),
            render(&store).await
        )
    });
    expect.assert_eq(&actual);
}

/// A data dir written by schema version 1 opens, migrates, and reads back (including a
/// full-text index rebuilt from the stored spans).
#[test]
fn schema_v1_data_dir_opens() {
    check_dump(
        include_str!("../test_data/schema_v1.sql"),
        expect![[r#"
            schema version: 10
            api key: Some(("key_golden", "default", {"team": "search"}))
            traces: 1
            trace 0d83b3e29a21487a54c44c79f1fe9d67 root=Some("refund_chat.turn") op=Some("refund_chat.turn") spans=8 llm=3 errors=0 tokens=1536/384 cost=Some("0.007035") session=Some("sess-8754")
              a945f342007a0e78 refund_chat.turn other model=None op=Some("refund_chat.turn") attrs=3 messages=0+0
              7d6e0b878a794779 llm.query_rewrite llm model=Some("gpt-4o-mini") op=Some("refund_chat.turn") attrs=8 messages=1+1
              91d8d6e5a10dd485 vector.embed embedding model=None op=Some("refund_chat.turn") attrs=1 messages=0+0
              9de6cf0f6d5a586e vector.retrieve retrieval model=None op=Some("refund_chat.turn") attrs=1 messages=0+0
              d566404840a2ab9d rerank.cross_encoder reranker model=None op=Some("refund_chat.turn") attrs=1 messages=0+0
              674bfece098c4828 llm.generate llm model=Some("gpt-4o-2024-08-06") op=Some("refund_chat.turn") attrs=8 messages=1+1
              87d6e3d2afc200ac tool.citation_check tool model=None op=Some("refund_chat.turn") attrs=1 messages=0+0
              d3f57ac518cbb99d llm.judge.policy_correct llm model=Some("claude-sonnet-4") op=Some("refund_chat.turn") attrs=8 messages=1+1
            spans [refund]: 3
            spans [type = llm and model ~ "gpt*"]: 2
        "#]],
    );
}

/// Records encoded ahead must match the spans one for one: a mismatch fails the whole write
/// (nothing stored) with an internal error, for plain and staged writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_encoded_ahead_must_match_the_spans() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let mut spans = vec![
        span("default", 1, 1, None, "turn", 0, 100),
        llm(span("default", 1, 2, Some(1), "call", 10, 50), "gpt-4o", 10, 5, "refund please"),
    ];
    for span in &mut spans {
        span.view.operation_id = Some("turn".to_owned());
    }
    let records = store.encode_records(&spans).expect("encode").expect("sqlite encodes ahead");
    assert_eq!(records.len(), 2);
    let err = store.write_spans_encoded(&spans, &records[..1]).await.expect_err("one short");
    assert!(matches!(err, store::Error::Internal(_)), "{err}");
    assert!(err.to_string().contains("1 records encoded ahead for 2 spans"), "{err}");
    let err =
        store.stage_spans(&spans, &[false, false], Some(&records[..1])).await.expect_err("staged");
    assert!(matches!(err, store::Error::Internal(_)), "{err}");
    let trace_id = spans[0].raw.trace_id;
    let project = ProjectId::default_project();
    assert!(store.get_trace(&project, trace_id).await.expect("get").is_empty(), "nothing stored");
    // Matching records store the spans as encoded.
    store.write_spans_encoded(&spans, &records).await.expect("write");
    assert_eq!(store.get_trace(&project, trace_id).await.expect("get"), spans);
}

/// Spans survive closing and reopening; a deleted search index is rebuilt at open; a database
/// from a newer version is refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_rebuild_index_and_refuse_newer_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spans = vec![
        span("default", 1, 1, None, "turn", 0, 100),
        llm(span("default", 1, 2, Some(1), "call", 10, 50), "gpt-4o", 10, 5, "refund please"),
    ];
    let store = open(dir.path());
    store.write_spans(&spans).await.expect("write");
    drop(store);
    std::fs::remove_file(dir.path().join("search.db")).expect("remove index");
    // An index left from another database (more spans than this one) is rebuilt too.
    let other = tempfile::tempdir().expect("temp dir");
    let other_store = open(other.path());
    let many: Vec<_> = (0..5).map(|i| span("default", 9, i + 1, None, "noise", i, 1)).collect();
    other_store.write_spans(&many).await.expect("write other");
    let query = SpanQuery {
        filter: store::syntax::parse("refund").expect("filter"),
        ..SpanQuery::default()
    };
    // Waits for the other store's index to cover its spans.
    other_store.search_spans(&ProjectId::default_project(), &query).await.expect("search other");
    drop(other_store);
    std::fs::copy(other.path().join("search.db"), dir.path().join("search.db"))
        .expect("copy index");
    let store = open(dir.path());
    let trace = store
        .get_trace(
            &ProjectId::default_project(),
            TraceId::from_bytes(&spans[0].raw.trace_id.as_bytes()[..]).expect("id"),
        )
        .await
        .expect("get trace");
    assert_eq!(trace.len(), 2);
    let query = SpanQuery {
        filter: store::syntax::parse("refund").expect("filter"),
        ..SpanQuery::default()
    };
    let found = store.search_spans(&ProjectId::default_project(), &query).await.expect("search");
    assert_eq!(found.items.len(), 1, "index rebuilt from the stored spans");
    store
        .with_writer(|conn| {
            Ok(conn.execute("INSERT INTO schema_migrations (version) VALUES (99)", [])?)
        })
        .await
        .expect("bump version");
    drop(store);
    let error = SqliteStore::open(SqliteConfig::new(dir.path())).err().expect("refused");
    expect!["database schema version 99 is newer than this build supports (10); upgrade loupe"]
        .assert_eq(&error.to_string());
}

/// What the key lookups find, as ids: spans of `user = "u-1"` (and, separately, of
/// `span_id = …` span 2), traces of `user = "u-1"`, erasure's traces of user u-2, feedback
/// waiting for its span.
async fn key_lookups(store: &SqliteStore) -> [Vec<String>; 5] {
    let project = ProjectId::default_project();
    let spans = |filter: &str| {
        let query = SpanQuery {
            filter: store::syntax::parse(filter).expect("filter"),
            ..SpanQuery::default()
        };
        let project = project.clone();
        async move {
            let found = store.search_spans(&project, &query).await.expect("spans");
            found.items.iter().map(|s| s.raw.span_id.to_string()).collect::<Vec<_>>()
        }
    };
    let filter = store::syntax::parse(r#"user = "u-1""#).expect("filter");
    let traces = store
        .search_traces(&project, &TraceQuery { filter, ..TraceQuery::default() })
        .await
        .expect("traces of u-1");
    let erased =
        store.user_traces(&project, &["u-2".to_owned()], None, 10).await.expect("traces of u-2");
    let pending = store.pending_feedback(&project, u64::MAX, 10).await.expect("pending");
    [
        spans(r#"user = "u-1""#).await,
        spans(&format!(r#"span_id = "{}" and name = call"#, store::suite::span_id(2))).await,
        traces.items.iter().map(|t| t.trace_id.to_string()).collect(),
        erased.iter().map(ToString::to_string).collect(),
        pending.iter().map(|f| f.id.clone()).collect(),
    ]
}

/// The key lookups (span id, user) find spans the indexer has not reached yet (from `spans`,
/// after `indexed_upto`) and, once it has, from their key tokens in `search.db`; text that
/// forges a key token finds nothing; a view update moves a span to its new user; a deleted
/// span's tokens go with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The index lock is held across the writes and lookups on purpose: nothing they do takes it.
#[allow(clippy::await_holding_lock)]
async fn key_lookups_cover_spans_indexed_or_not() {
    use model::{Feedback, FeedbackContent, FeedbackSource, FeedbackTarget, Message, Rating};
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let project = ProjectId::default_project();
    let mut spans = vec![
        span("default", 1, 1, None, "turn", 0, 100),
        span("default", 1, 2, Some(1), "call", 10, 50),
        span("default", 2, 3, None, "turn", 0, 100),
        // Erasure leaves the trace with the highest rowid for later (see `retention.rs`).
        span("default", 3, 4, None, "turn", 0, 100),
    ];
    spans[1].view.user_id = Some("u-1".to_owned());
    spans[2].view.user_id = Some("u-2".to_owned());
    // Text with the key tokens of another span and user.
    let forged = format!(
        "{} {}",
        crate::search::user_token("u-1"),
        crate::search::span_id_token(store::suite::span_id(2).as_bytes())
    );
    spans[3].view.input_messages = vec![Message::text("user", &forged)];
    for (id, span_n) in [("on-stored", 2), ("on-missing", 9)] {
        let feedback = Feedback {
            id: id.to_owned(),
            project: project.clone(),
            target: FeedbackTarget::Span { span_id: store::suite::span_id(span_n), trace_id: None },
            content: FeedbackContent { rating: Some(Rating::Up), ..FeedbackContent::default() },
            source: FeedbackSource::Human,
            author: None,
            created_ns: 1,
            updated_ns: 1,
            history: Vec::new(),
        };
        store.put_feedback(&feedback).await.expect("feedback");
    }
    let expected = [
        vec![spans[1].raw.span_id.to_string()],
        vec![spans[1].raw.span_id.to_string()],
        vec![spans[0].raw.trace_id.to_string()],
        vec![spans[2].raw.trace_id.to_string()],
        vec!["on-missing".to_owned()],
    ];
    let shared = store.inner.indexer.shared().clone();
    {
        // Holding the index lock keeps the indexer from indexing the spans.
        let _guard = shared.lock_index();
        store.write_spans(&spans).await.expect("write");
        assert_eq!(key_lookups(&store).await, expected, "not indexed yet: from spans");
        assert_eq!(shared.indexed_upto(), 0, "the indexer waited");
    }
    shared.wait_indexed(4);
    assert_eq!(shared.indexed_upto(), 4);
    assert_eq!(key_lookups(&store).await, expected, "indexed: from the key tokens");
    let n_indexed = |token: String| {
        let conn = rusqlite::Connection::open(dir.path().join("search.db")).expect("open index");
        conn.query_row(
            "SELECT COUNT(*) FROM spans_fts WHERE spans_fts MATCH ?1",
            [crate::search::token_query(&token)],
            |row| row.get::<_, i64>(0),
        )
        .expect("count")
    };
    let u2 = || crate::search::user_token("u-2");
    assert_eq!(n_indexed(crate::search::user_token("u-1")), 2, "span 2 and the forged text");
    assert_eq!(n_indexed(u2()), 1);
    let unmarked = u2().trim_start_matches('\u{E000}').to_owned();
    assert_eq!(n_indexed(unmarked.clone()), 0, "the mark is part of the token");
    // And a full-text query drops the mark, so typed text cannot reach a key token.
    assert_eq!(crate::filter::fts_query(&u2()), crate::search::token_query(&unmarked));
    let erased = store.delete_traces(&project, &[spans[2].raw.trace_id]).await.expect("erase");
    assert_eq!(erased, 1);
    assert_eq!(n_indexed(u2()), 0, "the erased span's tokens are gone");
    // A view update that changes a span's user moves it in the index.
    let mut changed = spans[0].clone();
    changed.view.user_id = Some("u-9".to_owned());
    assert_eq!(store.update_views(&[changed.clone()]).await.expect("update"), 1);
    let filter = store::syntax::parse(r#"user = "u-9""#).expect("filter");
    let found = store
        .search_spans(&project, &SpanQuery { filter, ..SpanQuery::default() })
        .await
        .expect("spans of u-9");
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].raw.span_id, changed.raw.span_id);
}

/// A user with more indexed spans than [`crate::read::RARE_KEY_SPANS`] is searched by reading
/// spans newest first instead of through the index; the answers are the same: newest first,
/// only that user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_common_user_is_found_newest_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let project = ProjectId::default_project();
    let n = u64::try_from(crate::read::RARE_KEY_SPANS).expect("positive") + 8;
    let spans: Vec<_> = (0..n)
        .map(|i| {
            let mut span = span("default", i / 8 + 1, i + 1, None, "turn", i, 1);
            span.view.user_id = Some(if i % 2 == 0 { "many" } else { "other" }.to_owned());
            span
        })
        .collect();
    for chunk in spans.chunks(4000) {
        store.write_spans(chunk).await.expect("write");
    }
    let filter = store::syntax::parse(r#"user = "many""#).expect("filter");
    store.inner.indexer.shared().wait_indexed(i64::try_from(n).expect("fits"));
    let found = store
        .search_spans(
            &project,
            &SpanQuery { filter: filter.clone(), limit: 3, ..SpanQuery::default() },
        )
        .await
        .expect("spans");
    let ids: Vec<String> = found.items.iter().map(|s| s.raw.span_id.to_string()).collect();
    let expected: Vec<String> =
        [n - 1, n - 3, n - 5].iter().map(|i| store::suite::span_id(*i).to_string()).collect();
    assert_eq!(ids, expected);
    let traces = store
        .search_traces(&project, &TraceQuery { filter, limit: 2, ..TraceQuery::default() })
        .await
        .expect("traces");
    let ids: Vec<String> = traces.items.iter().map(|t| t.trace_id.to_string()).collect();
    let newest = n.div_ceil(8);
    assert_eq!(
        ids,
        [
            store::suite::trace_id(newest).to_string(),
            store::suite::trace_id(newest - 1).to_string()
        ]
    );
}
