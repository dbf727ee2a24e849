//! Tests of retention: golden files for [`reduce`] (`test_data/NAME.in.json` reduced to each
//! tier must equal `NAME.structure.out.json` / `NAME.fingerprints.out.json`; update with
//! `UPDATE_EXPECT=1 cargo test -p pipeline`), config validation, and the runner on a real
//! SQLite store with a fixed clock.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use model::{ProjectId, StoredSpan, TraceId};
use store::{RetentionTier, Store};

use super::*;

#[test]
fn reduce_golden_files() {
    let dir = crate::golden::golden_dir("retention");
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("test_data exists")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".in.json"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty());
    for input in inputs {
        let stem = input.to_string_lossy().trim_end_matches(".in.json").to_owned();
        let spans: Vec<StoredSpan> =
            serde_json::from_str(&fs::read_to_string(&input).expect("reads")).expect("parses");
        let full: Vec<StoredSpan> = spans.iter().map(|s| reduce(s, RetentionTier::Full)).collect();
        assert_eq!(full, spans, "{stem}: the full tier changes nothing");
        for tier in [RetentionTier::Structure, RetentionTier::Fingerprints] {
            let reduced: Vec<StoredSpan> = spans.iter().map(|s| reduce(s, tier)).collect();
            let again: Vec<StoredSpan> = reduced.iter().map(|s| reduce(s, tier)).collect();
            assert_eq!(again, reduced, "{stem}: reducing twice to {tier:?} changes nothing");
            let rendered = serde_json::to_string_pretty(&reduced).expect("serializes") + "\n";
            expect_test::expect_file![format!("{stem}.{}.out.json", tier.as_str())]
                .assert_eq(&rendered);
        }
        // Fingerprints from structure equals fingerprints from full.
        for span in &spans {
            let via = reduce(&reduce(span, RetentionTier::Structure), RetentionTier::Fingerprints);
            assert_eq!(via, reduce(span, RetentionTier::Fingerprints), "{stem}");
        }
    }
}

#[test]
fn config_defaults_overrides_and_errors() {
    let config = RetentionConfig::default();
    assert!(!config.enabled);
    assert_eq!(config.defaults.structure_after_ns, 24 * 3_600 * 1_000_000_000);
    assert_eq!(config.defaults.fingerprints_after_ns, 30 * 24 * 3_600 * 1_000_000_000);
    assert_eq!(config.defaults.delete_after_ns, 365 * 24 * 3_600 * 1_000_000_000);
    assert!(config.downsample.is_none());

    let raw: RawRetentionConfig = toml::from_str(
        r#"
        structure_after = "2h"
        [projects.billing]
        delete_after = "40d"
        downsample = false
        "#,
    )
    .expect("parses");
    let config = RetentionConfig::from_raw(&raw).expect("valid");
    let billing = config.ages("billing");
    assert_eq!(billing.structure_after_ns, 2 * 3_600 * 1_000_000_000);
    assert_eq!(billing.delete_after_ns, 40 * 24 * 3_600 * 1_000_000_000);
    assert!(!billing.downsample);
    assert_eq!(config.ages("other"), config.defaults);

    for (text, message) in [
        (r#"structure_after = "2 weeks""#, "is not an age"),
        (r#"fingerprints_after = "1h""#, "the ages must grow"),
        ("[downsample]\nenabled = true", "without policies"),
        ("batch_size = 0", "between 1 and 100000"),
        ("[projects.\"no spaces\"]", "retention.projects.no spaces"),
    ] {
        let raw: RawRetentionConfig = toml::from_str(text).expect("parses");
        let error = RetentionConfig::from_raw(&raw).expect_err(text).to_string();
        assert!(error.contains(message), "{text}: {error}");
    }
}

const S: u64 = 1_000_000_000;
const HOUR: u64 = 3_600 * S;
const DAY: u64 = 24 * HOUR;
/// The fixed "now" of the runner tests.
const NOW: u64 = 1_800_000_000 * S;

struct FixedClock(AtomicU64);

impl Clock for FixedClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    let config = store_sqlite::SqliteConfig::new(dir);
    Arc::new(store_sqlite::SqliteStore::open(config).expect("store opens"))
}

/// A two-span trace (root and one LLM child with the input `needle`) started at `start`.
fn trace(project: &ProjectId, trace: &str, start: u64, error: bool) -> Vec<StoredSpan> {
    let status = if error { r#","status":{"code":2}"# } else { "" };
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name",
            "value":{{"stringValue":"svc"}}}},{{"key":"host.name","value":{{"stringValue":"h1"}}}}]}},
            "scopeSpans":[{{"spans":[
            {{"traceId":"{trace}","spanId":"0000000000000001","name":"turn","kind":1,
              "startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"{status}}},
            {{"traceId":"{trace}","spanId":"0000000000000002","parentSpanId":"0000000000000001",
              "name":"chat","kind":3,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}",
              "attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"chat"}}}},
                {{"key":"input.value","value":{{"stringValue":"needle"}}}},
                {{"key":"http.method","value":{{"stringValue":"POST"}}}}]}}]}}]}}]}}"#,
        end = start + S,
    );
    let decoded = otlp::decode_json(body.as_bytes()).expect("test spans decode");
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    decoded
        .spans
        .into_iter()
        .map(|raw| StoredSpan { project: project.clone(), view: normalize::derive_view(&raw), raw })
        .collect()
}

fn tid(hex: &str) -> TraceId {
    TraceId::from_hex(hex).expect("trace id")
}

const T_FRESH: &str = "00000000000000000000000000000001";
const T_KEEP: &str = "00000000000000000000000000000002";
const T_DROP: &str = "00000000000000000000000000000003";
const T_DAY: &str = "00000000000000000000000000000004";
const T_MONTH: &str = "00000000000000000000000000000005";
const T_OLD: &str = "00000000000000000000000000000006";
const T_STRICT: &str = "00000000000000000000000000000007";

const CONFIG: &str = r#"
batch_size = 1
[downsample]
enabled = true
after = "1h"
[[downsample.policies]]
name = "errors"
type = "status_code"
status_codes = ["ERROR"]
[projects.strict]
structure_after = "2h"
downsample = false
"#;

async fn n_needles(store: &Arc<dyn Store>, project: &ProjectId) -> usize {
    let query = store::SpanQuery {
        filter: store::syntax::parse("needle").expect("filter parses"),
        limit: 100,
        ..Default::default()
    };
    store.search_spans(project, &query).await.expect("search").items.len()
}

#[tokio::test]
async fn runner_tiers_deletion_downsampling_and_dry_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let default = ProjectId::default_project();
    let strict = ProjectId::new("strict").expect("project id");
    let mut spans = Vec::new();
    spans.extend(trace(&default, T_FRESH, NOW - HOUR / 2, false));
    spans.extend(trace(&default, T_KEEP, NOW - 3 * HOUR, true));
    spans.extend(trace(&default, T_DROP, NOW - 3 * HOUR, false));
    spans.extend(trace(&default, T_DAY, NOW - 2 * DAY, true));
    spans.extend(trace(&default, T_MONTH, NOW - 40 * DAY, true));
    spans.extend(trace(&default, T_OLD, NOW - 400 * DAY, true));
    spans.extend(trace(&strict, T_STRICT, NOW - 3 * HOUR, false));
    store.write_spans(&spans).await.expect("write");

    let raw: RawRetentionConfig = toml::from_str(CONFIG).expect("config parses");
    let config = RetentionConfig::from_raw(&raw).expect("config is valid");
    let clock = Arc::new(FixedClock(AtomicU64::new(NOW)));
    let retention = Retention::new(config, store.clone(), clock.clone());

    let snapshot = |store: Arc<dyn Store>| async move {
        let mut res = Vec::new();
        for (project, t) in [
            (ProjectId::default_project(), T_FRESH),
            (ProjectId::default_project(), T_KEEP),
            (ProjectId::default_project(), T_DROP),
            (ProjectId::default_project(), T_DAY),
            (ProjectId::default_project(), T_MONTH),
            (ProjectId::default_project(), T_OLD),
            (ProjectId::new("strict").expect("id"), T_STRICT),
        ] {
            res.push(store.get_trace(&project, tid(t)).await.expect("get trace"));
        }
        res
    };
    let before = snapshot(store.clone()).await;

    let progressed = AtomicU64::new(0);
    let dry = retention
        .run_pass(true, None, &|n| {
            progressed.fetch_add(n, Ordering::Relaxed);
        })
        .await
        .expect("dry run");
    assert!(progressed.load(Ordering::Relaxed) > 0);
    assert_eq!(snapshot(store.clone()).await, before, "the dry run changed the store");
    assert_eq!(store.get_state(&default, DOWNSAMPLE_WATERMARK_KEY).await.expect("state"), None);

    let real = retention.run_pass(false, None, &|_| {}).await.expect("real run");
    assert!(dry.dry_run && !real.dry_run);
    assert_eq!(dry.projects, real.projects, "the dry run predicts the real run");
    let mut by_project = real.projects.clone();
    by_project.sort_by(|a, b| a.project.cmp(&b.project));
    let expected = vec![
        ProjectReport {
            project: "default".into(),
            // T_KEEP, T_DROP, T_DAY, T_MONTH, T_OLD started before now - 1h.
            traces_decided: 5,
            traces_downsampled: 1,
            spans_downsampled: 2,
            spans_deleted: 2,
            spans_to_fingerprints: 2,
            spans_to_structure: 2,
            capped: false,
        },
        ProjectReport {
            project: "strict".into(),
            spans_to_structure: 2,
            ..ProjectReport::default()
        },
    ];
    assert_eq!(by_project, expected);
    let stats = retention.stats();
    assert_eq!(stats.passes, 1);
    assert_eq!(stats.spans_to_structure, 4);
    assert_eq!(stats.traces_downsampled, 1);

    let after = snapshot(store.clone()).await;
    assert_eq!(after[0], before[0], "fresh trace untouched");
    assert_eq!(after[1], before[1], "kept, recent trace untouched");
    assert!(after[2].is_empty(), "downsampled trace deleted");
    assert!(after[5].is_empty(), "old trace deleted");
    for (i, tier) in [
        (3, RetentionTier::Structure),
        (4, RetentionTier::Fingerprints),
        (6, RetentionTier::Structure),
    ] {
        assert_eq!(after[i].len(), 2);
        for (stored, original) in after[i].iter().zip(&before[i]) {
            let expected = reduce(original, tier);
            assert_eq!(stored.raw, expected.raw, "trace {i} at {tier:?}");
            assert!(stored.view.flags.content_removed);
            assert_eq!(stored.view.input_text, None);
        }
    }
    // Structure keeps other attributes and the resource; fingerprints does not.
    let chat_day = &after[3][1].raw;
    assert!(chat_day.attributes.iter().any(|kv| kv.key == "http.method"));
    let chat_month = &after[4][1].raw;
    assert!(!chat_month.attributes.iter().any(|kv| kv.key == "http.method"));
    assert_eq!(chat_month.resource.attributes.len(), 1);
    // Content is gone from full-text search too, except in the untouched traces.
    assert_eq!(n_needles(&store, &default).await, 2);
    assert_eq!(n_needles(&store, &strict).await, 0);

    // The watermark is kept; a second pass at the same time has nothing to do.
    let watermark = store.get_state(&default, DOWNSAMPLE_WATERMARK_KEY).await.expect("state");
    assert_eq!(watermark, Some((NOW - HOUR).to_string()));
    let again = retention.run_pass(false, None, &|_| {}).await.expect("second pass");
    assert_eq!(again.projects, vec![]);

    // Two hours later (a restart: a new runner over the same store), only the new window is
    // decided: T_FRESH is now old enough and dropped; T_KEEP is not decided again.
    clock.0.store(NOW + 2 * HOUR, Ordering::SeqCst);
    let raw: RawRetentionConfig = toml::from_str(CONFIG).expect("config parses");
    let restarted =
        Retention::new(RetentionConfig::from_raw(&raw).expect("valid"), store.clone(), clock);
    let dry = restarted.run_pass(true, Some(&default), &|_| {}).await.expect("dry run");
    let real = restarted.run_pass(false, Some(&default), &|_| {}).await.expect("run");
    assert_eq!(dry.projects, real.projects);
    assert_eq!(
        real.projects,
        vec![ProjectReport {
            project: "default".into(),
            traces_decided: 1,
            traces_downsampled: 1,
            spans_downsampled: 2,
            ..ProjectReport::default()
        }]
    );
    assert!(store.get_trace(&default, tid(T_FRESH)).await.expect("get").is_empty());
    assert_eq!(store.get_trace(&default, tid(T_KEEP)).await.expect("get").len(), 2);
}
