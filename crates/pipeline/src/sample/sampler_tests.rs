//! Tests of the background sampler on SQLite, with a temp dir: spans written first and dropped
//! traces deleted after (`Store::write_spans`), and spans staged until their trace is decided
//! (`Store::stage_spans`, what the pipeline does while sampling is on).

use std::fmt::Write as _;
use std::sync::Arc;

use expect_test::{Expect, expect};
use model::{ProjectId, StoredSpan, TraceId};
use store::Store;

use super::{RawSampleConfig, SampleConfig, SamplerCore};

/// Far enough in the future that every pending trace is ready.
const LATER_NS: u64 = u64::MAX / 2;

const TRACE_ERROR: &str = "0000000000000000000000000000000a";
const TRACE_OK: &str = "0000000000000000000000000000000b";
const TRACE_LAST: &str = "0000000000000000000000000000000c";
const TRACE_JUDGED: &str = "0000000000000000000000000000000d";
const TRACE_NOTED: &str = "0000000000000000000000000000000e";
const TRACE_UNNOTED: &str = "0000000000000000000000000000000f";

fn project() -> ProjectId {
    ProjectId::default_project()
}

/// One span as OTLP JSON, with the input text `needle`; `extra` is appended to the span object
/// (status, or attributes replacing the input).
fn span(trace: &str, span: u8, parent: Option<u8>, extra: &str) -> String {
    let parent = parent.map(|p| format!(r#""parentSpanId":"{p:016x}","#)).unwrap_or_default();
    let input = match extra.contains("\"attributes\"") {
        true => "",
        false => r#","attributes":[{"key":"input.value","value":{"stringValue":"needle"}}]"#,
    };
    format!(
        r#"{{"traceId":"{trace}","spanId":"{span:016x}",{parent}"name":"s{span}","kind":1,
            "startTimeUnixNano":"1000000000","endTimeUnixNano":"2000000000"{input}{extra}}}"#
    )
}

fn stored(spans: &[String]) -> Vec<StoredSpan> {
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name",
            "value":{{"stringValue":"svc"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    let decoded = otlp::decode_json(body.as_bytes()).expect("test spans decode");
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    decoded
        .spans
        .into_iter()
        .map(|raw| StoredSpan { project: project(), view: normalize::derive_view(&raw), raw })
        .collect()
}

fn sampler(store: &Arc<dyn Store>, policies: &str) -> SamplerCore {
    let raw: RawSampleConfig = toml::from_str(policies).expect("sample config parses");
    let config = SampleConfig::from_raw(&raw).expect("sample config is valid");
    SamplerCore::new(config, store.clone())
}

fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    let config = store_sqlite::SqliteConfig::new(dir);
    Arc::new(store_sqlite::SqliteStore::open(config).expect("store opens"))
}

/// Each trace's stored span count and recorded decision, and what trace search and full-text
/// search (every span has the word `needle`) find.
async fn render(store: &Arc<dyn Store>, traces: &[&str]) -> String {
    let mut res = String::new();
    for filter in ["", "needle"] {
        let query = store::SpanQuery {
            filter: store::syntax::parse(filter).expect("filter parses"),
            limit: 100,
            ..Default::default()
        };
        let page = store.search_traces(&project(), &query).await.expect("search traces");
        let mut found: Vec<String> =
            page.items.iter().map(|t| t.trace_id.to_string()[29..].to_owned()).collect();
        found.sort();
        let _ = writeln!(res, "search {filter:?}: {found:?}");
    }
    for trace in traces {
        let trace_id: TraceId = trace.parse().expect("trace id");
        let spans = store.get_trace(&project(), trace_id).await.expect("get trace");
        let decision = store.sampling_decision(&project(), trace_id).await.expect("decision");
        let _ = writeln!(res, "…{} spans={} decision={decision:?}", &trace[29..], spans.len());
    }
    res
}

#[track_caller]
fn check(actual: String, expect: Expect) {
    expect.assert_eq(&actual);
}

const POLICIES: &str = r#"
decision_wait_secs = 30
[[policies]]
name = "errors"
type = "status_code"
status_codes = ["ERROR"]
[[policies]]
name = "judged-low"
type = "feedback_score"
score = "csat"
max_score = 2
[[policies]]
name = "none"
type = "probabilistic"
sampling_percentage = 0
"#;

/// A decision the store could not record is not counted: `/metrics` never shows a kept trace
/// that cannot be read yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_counted_once_recorded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let core = sampler(&store, POLICIES);
    core.run_pass(LATER_NS).await.expect("pass");
    let error = r#","status":{"code":2}"#;
    store.write_spans(&stored(&[span(TRACE_ERROR, 1, None, error)])).await.expect("write");
    let conn = rusqlite::Connection::open(dir.path().join(store_sqlite::DB_FILE_NAME))
        .expect("open the database beside the store");
    conn.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON sampling_decisions
         BEGIN SELECT RAISE(FAIL, 'refused by the test'); END;",
    )
    .expect("trigger");
    core.run_pass(LATER_NS).await.expect_err("recording the decision fails");
    let stats = core.stats();
    assert_eq!(
        (stats.traces_kept, stats.traces_dropped),
        (0, 0),
        "nothing recorded, nothing counted"
    );

    conn.execute_batch("DROP TRIGGER refuse").expect("drop trigger");
    core.run_pass(LATER_NS).await.expect("pass");
    let stats = core.stats();
    assert_eq!((stats.traces_kept, stats.traces_dropped), (1, 0));
}

#[tokio::test]
async fn decide_after_write_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let core = sampler(&store, POLICIES);
    let all = [TRACE_ERROR, TRACE_OK, TRACE_LAST, TRACE_JUDGED];
    // The first pass starts tracking: spans stored from now on are sampled.
    core.run_pass(LATER_NS).await.expect("pass");

    let judged = r#","attributes":[{"key":"gen_ai.evaluation.name","value":{"stringValue":"csat"}},
        {"key":"gen_ai.evaluation.score.value","value":{"doubleValue":1.0}}]"#;
    let error = r#","status":{"code":2}"#;
    let spans = stored(&[
        span(TRACE_ERROR, 1, None, ""),
        span(TRACE_ERROR, 2, Some(1), error),
        span(TRACE_OK, 1, None, ""),
        span(TRACE_OK, 2, Some(1), ""),
        span(TRACE_JUDGED, 1, None, ""),
        span(TRACE_JUDGED, 2, Some(1), judged),
        span(TRACE_LAST, 1, None, ""),
    ]);
    store.write_spans(&spans).await.expect("write");

    // Written at once; nothing is decided before the decision wait has passed.
    let report = core.run_pass(super::sampler::wall_clock_ns()).await.expect("pass");
    assert_eq!(report, Default::default());
    check(
        render(&store, &all).await,
        expect![[r#"
            search "": ["00a", "00b", "00c", "00d"]
            search "needle": ["00a", "00b", "00c", "00d"]
            …00a spans=2 decision=None
            …00b spans=2 decision=None
            …00c spans=1 decision=None
            …00d spans=2 decision=None
        "#]],
    );

    // The error trace and the judged trace are kept; the others are dropped. The trace holding
    // the newest span is deleted only once a newer span is stored (rowids are never reused).
    let report = core.run_pass(LATER_NS).await.expect("pass");
    check(
        format!("{report:?}"),
        expect!["PassReport { n_kept: 2, n_dropped: 2, n_spans_deleted: 2 }"],
    );
    check(
        render(&store, &all).await,
        expect![[r#"
            search "": ["00a", "00c", "00d"]
            search "needle": ["00a", "00c", "00d"]
            …00a spans=2 decision=Some(true)
            …00b spans=0 decision=Some(false)
            …00c spans=1 decision=Some(false)
            …00d spans=2 decision=Some(true)
        "#]],
    );

    // Late spans follow the decision: the dropped trace's is deleted, the kept trace's stays.
    let late = stored(&[span(TRACE_OK, 3, Some(1), ""), span(TRACE_ERROR, 3, Some(1), "")]);
    store.write_spans(&late).await.expect("write late spans");
    let report = core.run_pass(LATER_NS).await.expect("pass");
    assert_eq!(report, Default::default());
    check(
        render(&store, &all).await,
        expect![[r#"
            search "": ["00a", "00d"]
            search "needle": ["00a", "00d"]
            …00a spans=3 decision=Some(true)
            …00b spans=0 decision=Some(false)
            …00c spans=0 decision=Some(false)
            …00d spans=2 decision=Some(true)
        "#]],
    );
    check(
        format!("{:#?}", core.stats()),
        expect![[r#"
            SamplingStats {
                traces_kept: 2,
                traces_dropped: 2,
                spans_deleted: 2,
                errors: 0,
                passes: 4,
                policies: [
                    PolicyStats {
                        name: "errors",
                        kept: 1,
                        dropped: 3,
                    },
                    PolicyStats {
                        name: "judged-low",
                        kept: 1,
                        dropped: 3,
                    },
                    PolicyStats {
                        name: "none",
                        kept: 0,
                        dropped: 4,
                    },
                ],
            }"#]],
    );

    // Decisions survive reopening the store: nothing is decided twice, and a late span of a
    // dropped trace is still deleted.
    // Traces still waiting when the process stops (one already noted by a pass, one not) are
    // decided after the restart.
    store.write_spans(&stored(&[span(TRACE_NOTED, 1, None, "")])).await.expect("write");
    let report = core.run_pass(super::sampler::wall_clock_ns()).await.expect("pass");
    assert_eq!(report, Default::default());
    store.write_spans(&stored(&[span(TRACE_UNNOTED, 1, None, "")])).await.expect("write");
    drop(core);
    drop(store);
    let store = open(dir.path());
    let core = sampler(&store, POLICIES);
    let all = [TRACE_ERROR, TRACE_OK, TRACE_LAST, TRACE_JUDGED, TRACE_NOTED, TRACE_UNNOTED];
    check(
        render(&store, &all).await,
        expect![[r#"
        search "": ["00a", "00d", "00e", "00f"]
        search "needle": ["00a", "00d", "00e", "00f"]
        …00a spans=3 decision=Some(true)
        …00b spans=0 decision=Some(false)
        …00c spans=0 decision=Some(false)
        …00d spans=2 decision=Some(true)
        …00e spans=1 decision=None
        …00f spans=1 decision=None
    "#]],
    );
    let late = stored(&[span(TRACE_OK, 4, Some(1), ""), span(TRACE_JUDGED, 3, Some(1), "")]);
    store.write_spans(&late).await.expect("write late spans");
    let report = core.run_pass(LATER_NS).await.expect("pass");
    check(
        format!("{report:?}"),
        expect!["PassReport { n_kept: 0, n_dropped: 2, n_spans_deleted: 2 }"],
    );
    check(
        render(&store, &all).await,
        expect![[r#"
            search "": ["00a", "00d"]
            search "needle": ["00a", "00d"]
            …00a spans=3 decision=Some(true)
            …00b spans=0 decision=Some(false)
            …00c spans=0 decision=Some(false)
            …00d spans=3 decision=Some(true)
            …00e spans=0 decision=Some(false)
            …00f spans=0 decision=Some(false)
        "#]],
    );
}

#[tokio::test]
async fn staged_traces_are_stored_when_kept_and_discarded_when_dropped_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let core = sampler(&store, POLICIES);
    let all = [TRACE_ERROR, TRACE_OK, TRACE_LAST, TRACE_JUDGED];
    let judged = r#","attributes":[{"key":"gen_ai.evaluation.name","value":{"stringValue":"csat"}},
        {"key":"gen_ai.evaluation.score.value","value":{"doubleValue":1.0}}]"#;
    let error = r#","status":{"code":2}"#;
    // A trace's spans over two writes, one of them twice (an SDK retry). The judged trace is
    // flagged as kept whatever it holds (as a probabilistic policy's share is): stored at once.
    let first = stored(&[
        span(TRACE_ERROR, 1, None, ""),
        span(TRACE_OK, 1, None, ""),
        span(TRACE_OK, 2, Some(1), ""),
        span(TRACE_JUDGED, 1, None, ""),
        span(TRACE_LAST, 1, None, ""),
    ]);
    // The first batch comes with records encoded ahead, as the pipeline sends them.
    let records = store.encode_records(&first).expect("encode");
    assert!(records.is_some(), "sqlite encodes records ahead");
    let stats = store
        .stage_spans(&first, &[false, false, false, true, false], records.as_deref())
        .await
        .expect("stage");
    assert_eq!((stats.n_written, stats.n_duplicates), (5, 0));
    let second = stored(&[
        span(TRACE_ERROR, 2, Some(1), error),
        span(TRACE_JUDGED, 2, Some(1), judged),
        span(TRACE_LAST, 1, None, ""),
    ]);
    let stats = store.stage_spans(&second, &[false, true, false], None).await.expect("stage");
    assert_eq!((stats.n_written, stats.n_duplicates), (2, 1));

    // Staged: not shown, not searchable, not decided before the wait has passed (the judged
    // trace is shown, undecided).
    let report = core.run_pass(super::sampler::wall_clock_ns()).await.expect("pass");
    assert_eq!(report, Default::default());
    check(
        render(&store, &all).await,
        expect![[r#"
            search "": ["00d"]
            search "needle": ["00d"]
            …00a spans=0 decision=None
            …00b spans=0 decision=None
            …00c spans=0 decision=None
            …00d spans=2 decision=None
        "#]],
    );

    // Kept traces are stored whole (searchable too); dropped ones were never stored, so
    // nothing is deleted.
    let report = core.run_pass(LATER_NS).await.expect("pass");
    check(
        format!("{report:?}"),
        expect!["PassReport { n_kept: 2, n_dropped: 2, n_spans_deleted: 0 }"],
    );
    check(
        render(&store, &all).await,
        expect![[r#"
            search "": ["00a", "00d"]
            search "needle": ["00a", "00d"]
            …00a spans=2 decision=Some(true)
            …00b spans=0 decision=Some(false)
            …00c spans=0 decision=Some(false)
            …00d spans=2 decision=Some(true)
        "#]],
    );

    // Late spans follow the decision at once: stored for a kept trace, discarded for a dropped
    // one.
    let late = stored(&[span(TRACE_OK, 3, Some(1), ""), span(TRACE_ERROR, 3, Some(1), "")]);
    let stats = store.stage_spans(&late, &[false, false], None).await.expect("stage late spans");
    assert_eq!((stats.n_written, stats.n_duplicates), (2, 0));
    let report = core.run_pass(LATER_NS).await.expect("pass");
    assert_eq!(report, Default::default());
    check(
        render(&store, &all).await,
        expect![[r#"
            search "": ["00a", "00d"]
            search "needle": ["00a", "00d"]
            …00a spans=3 decision=Some(true)
            …00b spans=0 decision=Some(false)
            …00c spans=0 decision=Some(false)
            …00d spans=2 decision=Some(true)
        "#]],
    );

    // Staged spans survive reopening the store and are decided after; a user's staged traces
    // are discarded by erasure; with sampling off, the rest are kept.
    let user = r#","attributes":[{"key":"user.id","value":{"stringValue":"u-1"}}]"#;
    store
        .stage_spans(&stored(&[span(TRACE_NOTED, 1, None, "")]), &[false], None)
        .await
        .expect("stage");
    store
        .stage_spans(
            &stored(&[span(TRACE_UNNOTED, 1, None, ""), span(TRACE_UNNOTED, 2, Some(1), user)]),
            &[false, false],
            None,
        )
        .await
        .expect("stage");
    drop(core);
    drop(store);
    let store = open(dir.path());
    let all = [TRACE_ERROR, TRACE_NOTED, TRACE_UNNOTED];
    let n = store.discard_staged_user_traces(&project(), &["u-2".to_owned()]).await.expect("erase");
    assert_eq!(n, 0);
    let n = store.discard_staged_user_traces(&project(), &["u-1".to_owned()]).await.expect("erase");
    assert_eq!(n, 2);
    assert_eq!(store.release_staged().await.expect("release"), 1);
    check(
        render(&store, &all).await,
        expect![[r#"
            search "": ["00a", "00d", "00e"]
            search "needle": ["00a", "00d", "00e"]
            …00a spans=3 decision=Some(true)
            …00e spans=1 decision=None
            …00f spans=0 decision=None
        "#]],
    );
}

#[tokio::test]
async fn fixture_is_kept_by_low_csat_and_variant_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let core = sampler(
        &store,
        r#"
        [[policies]]
        name = "low-csat"
        type = "numeric_attribute"
        key = "outcome.csat_response"
        max_value = 2
        [[policies]]
        name = "variant-b"
        type = "string_attribute"
        key = "experiment.variant"
        values = ["B"]
        [[policies]]
        name = "none"
        type = "probabilistic"
        sampling_percentage = 0
        "#,
    );
    core.run_pass(LATER_NS).await.expect("pass");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/trace-48f.otlp.json");
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let decoded = otlp::decode_json(&body).expect("fixture decodes");
    let spans: Vec<StoredSpan> = decoded
        .spans
        .into_iter()
        .map(|raw| StoredSpan { project: project(), view: normalize::derive_view(&raw), raw })
        .collect();
    let trace_id = spans[0].raw.trace_id;
    store.write_spans(&spans).await.expect("write");
    let report = core.run_pass(LATER_NS).await.expect("pass");
    let stats = core.stats();
    let per_policy: Vec<String> =
        stats.policies.iter().map(|p| format!("{} kept={}", p.name, p.kept)).collect();
    let n_stored = store.get_trace(&project(), trace_id).await.expect("get").len();
    check(
        format!("{report:?}\n{per_policy:?}\nstored spans: {n_stored}"),
        expect![[r#"
            PassReport { n_kept: 1, n_dropped: 0, n_spans_deleted: 0 }
            ["low-csat kept=1", "variant-b kept=1", "none kept=0"]
            stored spans: 8"#]],
    );
}

/// The background task decides on its own and stops when asked.
#[tokio::test]
async fn background_sampler_decides_and_shuts_down() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let raw: RawSampleConfig = toml::from_str(
        "decision_wait_secs = 0\n[[policies]]\nname = \"errors\"\ntype = \"status_code\"\n\
         status_codes = [\"ERROR\"]\n",
    )
    .expect("sample config parses");
    let config = SampleConfig::from_raw(&raw).expect("sample config is valid");
    // Tracking starts at the first pass; a pass by hand makes sure it has started.
    SamplerCore::new(config.clone(), store.clone()).run_pass(LATER_NS).await.expect("pass");
    let sampler = super::Sampler::start(config, store.clone(), None);
    let spans = stored(&[
        span(TRACE_ERROR, 1, None, r#","status":{"code":2}"#),
        span(TRACE_OK, 1, None, ""),
        span(TRACE_LAST, 1, None, ""),
    ]);
    store.write_spans(&spans).await.expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sampler.stats().traces_kept + sampler.stats().traces_dropped < 3 {
        assert!(std::time::Instant::now() < deadline, "{:?}", sampler.stats());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sampler.shutdown().await;
    check(
        render(&store, &[TRACE_ERROR, TRACE_OK, TRACE_LAST]).await,
        expect![[r#"
            search "": ["00a", "00c"]
            search "needle": ["00a", "00c"]
            …00a spans=1 decision=Some(true)
            …00b spans=0 decision=Some(false)
            …00c spans=1 decision=Some(false)
        "#]],
    );
}
