//! Per-user erasure through the real binary: a user's content, sent over OTLP/HTTP and through
//! the recording gateway, reads back through the API; after `loupe erase --user` it is gone from
//! the API, from every file of the data dir, and from a backup of the store taken before. The
//! same erasure on the ClickHouse backend leaves no content in any of its tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use store::Store;
use test_support::fake_llm::FakeLlm;
use test_support::otlp::{encode, int, request, span, string};
use test_support::{App, eventually, spawn_app};

use crate::{hex, trace_id};

const USER: &str = "alice-erasure-77";
/// Content of the user's own (sealed) spans.
const ROOT_SECRET: &str = "Quokka-Velvet-991 wants a refund";
const LLM_SECRET: &str = "Marmalade-Zeppelin order status";
const GATEWAY_SECRET: &str = "Tangerine-Obelisk capital question";
/// Content of a child span without a user id (stored in plain text until the erasure).
const CHILD_SECRET: &str = "Saffron-Harbour tool output";
/// Another user's content, which must survive.
const OTHER_SECRET: &str = "Periwinkle-Lantern stays";

fn config(upstream: &FakeLlm) -> String {
    format!("[gateway.routes.openai]\nkind = \"openai\"\nbase_url = \"{}\"\n", upstream.url())
}

fn otlp_spans() -> Vec<u8> {
    let (t1, t2) = (trace_id(0xe7a5_0001), trace_id(0xe7a5_0002));
    let base = 1_700_000_000_000_000_000u64;
    let mut root = span(t1, 1, None, "support.turn", base, base + 900_000_000);
    root.attributes.extend([string("user.id", USER), string("input.value", ROOT_SECRET)]);
    let mut llm = span(t1, 2, Some(1), "chat gpt-4o", base + 1_000, base + 500_000_000);
    llm.kind = 3;
    llm.attributes.extend([
        string("user.id", USER),
        string("gen_ai.operation.name", "chat"),
        string("gen_ai.provider.name", "openai"),
        string("gen_ai.request.model", "gpt-4o"),
        int("gen_ai.usage.input_tokens", 12),
        int("gen_ai.usage.output_tokens", 3),
        string(
            "gen_ai.input.messages",
            &format!(r#"[{{"role":"user","parts":[{{"type":"text","content":"{LLM_SECRET}"}}]}}]"#),
        ),
    ]);
    let mut tool =
        span(t1, 3, Some(1), "execute_tool lookup", base + 600_000_000, base + 800_000_000);
    tool.attributes.extend([
        string("gen_ai.operation.name", "execute_tool"),
        string("gen_ai.tool.name", "lookup"),
        string("output.value", CHILD_SECRET),
    ]);
    let mut other = span(t2, 4, None, "support.turn", base, base + 100_000_000);
    other
        .attributes
        .extend([string("user.id", "bob-erasure-78"), string("input.value", OTHER_SECRET)]);
    encode(&request("support-bot", vec![root, llm, tool, other]))
}

async fn trace_text(app: &App, trace_id: &str, n_spans: u64) -> String {
    let tree: Value = eventually(Duration::from_secs(10), "the stored trace", || async {
        let response = app.get(&format!("/api/v1/traces/{trace_id}"), &[]).await;
        if response.status != 200 {
            return None;
        }
        let tree = response.json();
        (tree["rollup"]["n_spans"] == n_spans).then_some(tree)
    })
    .await;
    tree.to_string()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut res = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { stack.push(path) } else { res.push(path) }
        }
    }
    res
}

/// The secrets found in any file under `dir`, as bytes, and in any span document the SQLite
/// store there holds (read without the key vault; documents are stored LZ4-compressed, so a
/// byte scan alone could miss compressed plaintext).
async fn found_in_data_dir(dir: &Path, secrets: &[&str]) -> Vec<String> {
    let mut res = Vec::new();
    for path in files(dir) {
        let bytes = std::fs::read(&path).unwrap();
        for secret in secrets {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                res.push(format!("{secret} in {}", path.file_name().unwrap().to_string_lossy()));
            }
        }
    }
    let backend = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(dir)).unwrap();
    let mut cursor = None;
    loop {
        let page = backend.scan_spans(cursor.as_ref(), 1000).await.unwrap();
        for span in &page.items {
            let text = serde_json::to_string(span).unwrap();
            for secret in secrets.iter().filter(|secret| text.contains(**secret)) {
                res.push(format!("{secret} in the stored span {}", span.raw.name));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    res
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Sends the user's and another user's spans (OTLP and one gateway call); returns the gateway
/// call's trace id.
async fn send_spans(app: &App) -> String {
    app.post_otlp_protobuf(otlp_spans()).await.assert_status(200);
    let body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": GATEWAY_SECRET}],
    });
    let reply = app
        .post(
            "/v1/chat/completions",
            &[("content-type", "application/json"), ("x-loupe-user", USER)],
            body.to_string().into_bytes(),
        )
        .await;
    reply.assert_status(200);
    reply.header("x-loupe-trace-id").unwrap().to_owned()
}

/// The content reads back as sent.
async fn check_before(app: &App, gateway_trace: &str) {
    let (t1, t2) = (hex(&trace_id(0xe7a5_0001)), hex(&trace_id(0xe7a5_0002)));
    let before = trace_text(app, &t1, 3).await;
    for secret in [ROOT_SECRET, LLM_SECRET, CHILD_SECRET] {
        assert!(before.contains(secret), "{secret} missing before erasure: {before}");
    }
    assert!(trace_text(app, gateway_trace, 1).await.contains(GATEWAY_SECRET));
    assert!(trace_text(app, &t2, 1).await.contains(OTHER_SECRET));
}

/// After the erasure the API shows the user's spans without content, marked erased, and the
/// other user's intact.
async fn check_after(app: &App, gateway_trace: &str) {
    let (t1, t2) = (hex(&trace_id(0xe7a5_0001)), hex(&trace_id(0xe7a5_0002)));
    let after = trace_text(app, &t1, 3).await;
    for secret in [ROOT_SECRET, LLM_SECRET, CHILD_SECRET] {
        assert!(!after.contains(secret), "{secret} still readable: {after}");
    }
    let tree: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(tree["spans"][0]["view"]["flags"]["content_removed"], true, "{after}");
    assert!(after.contains("loupe.erased"), "{after}");
    assert!(after.contains("gpt-4o"), "structure stays: {after}");
    assert!(!trace_text(app, gateway_trace, 1).await.contains(GATEWAY_SECRET));
    assert!(trace_text(app, &t2, 1).await.contains(OTHER_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_user_content_is_gone_from_the_api_the_files_and_old_backups() {
    let upstream = FakeLlm::start().await;
    let mut app = spawn_app(&config(&upstream)).await;
    let gateway_trace = send_spans(&app).await;
    let (t1, t2) = (hex(&trace_id(0xe7a5_0001)), hex(&trace_id(0xe7a5_0002)));
    check_before(&app, &gateway_trace).await;

    // A backup of the store (without keys.db), taken before the erasure. The user's own spans
    // are sealed there: their content is in no file and no stored document.
    assert!(app.terminate(), "the server stops cleanly");
    let backup = app.dir().join("backup");
    copy_dir(&app.data_dir(), &backup);
    let sealed = [ROOT_SECRET, LLM_SECRET, GATEWAY_SECRET, OTHER_SECRET];
    assert_eq!(found_in_data_dir(&backup, &sealed).await, Vec::<String>::new());
    std::fs::remove_file(backup.join(vault::KEYS_FILE)).unwrap();
    // The scan finds what is there: the child span (no user id) is in plain text until erased.
    assert!(!found_in_data_dir(&backup, &[CHILD_SECRET]).await.is_empty(), "the scan sees it");
    app.restart();

    let output = app.cli(&["erase", "--user", USER]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("keys destroyed=1 traces purged=2 spans purged=4"), "{stdout}");

    check_after(&app, &gateway_trace).await;

    let log = app.get_json("/api/v1/projects/default/erasures").await;
    let erasures = log["erasures"].as_array().unwrap();
    assert_eq!(erasures.len(), 1, "{log}");
    assert_eq!(erasures[0]["who"], "cli");
    assert!(!log.to_string().contains(USER), "the audit log names no user: {log}");
    let key_ids: Vec<String> = erasures[0]["key_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    // Another project's key cannot erase here.
    let response = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/projects/other/users/{USER}"),
            &[],
            None,
        )
        .await;
    response.assert_status(404);
    // Erasing again over the API finds no key left; the log records both.
    let response = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/projects/default/users/{USER}"),
            &[],
            None,
        )
        .await;
    response.assert_status(200);
    assert_eq!(response.json()["keys_destroyed"], 0, "{}", response.text());
    let log = app.get_json("/api/v1/projects/default/erasures").await;
    let who: Vec<&str> =
        log["erasures"].as_array().unwrap().iter().map(|e| e["who"].as_str().unwrap()).collect();
    assert_eq!(who, ["cli", "api"]);

    assert!(app.terminate(), "the server stops cleanly");
    let all = [ROOT_SECRET, LLM_SECRET, GATEWAY_SECRET, CHILD_SECRET];
    assert_eq!(found_in_data_dir(&app.data_dir(), &all).await, Vec::<String>::new());

    // No key of the user remains, and the backup cannot be opened with the keys there are.
    let key_vault = Arc::new(vault::Vault::open(&app.data_dir()).unwrap());
    assert!(!key_ids.is_empty());
    for id in &key_ids {
        assert!(!key_vault.has_key_id(id).unwrap(), "key {id} survived");
    }
    let old = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(&backup)).unwrap();
    let old = vault::SealingStore::new(Arc::new(old), key_vault);
    let project = model::ProjectId::default_project();
    let t1_id = model::TraceId::from_hex(&t1).unwrap();
    let spans = old.get_trace(&project, t1_id).await.unwrap();
    assert_eq!(spans.len(), 3);
    let text = serde_json::to_string(&spans).unwrap();
    for secret in [ROOT_SECRET, LLM_SECRET] {
        assert!(!text.contains(secret), "{secret} decrypted from the backup");
    }
    assert!(spans.iter().filter(|s| s.view.flags.content_removed).count() >= 2, "{text}");
    let t2_id = model::TraceId::from_hex(&t2).unwrap();
    let other = serde_json::to_string(&old.get_trace(&project, t2_id).await.unwrap()).unwrap();
    assert!(other.contains(OTHER_SECRET), "other users' backups stay readable");
}

/// Every row of every table of a ClickHouse database, as text.
async fn clickhouse_tables_text(url: &str, database: &str) -> String {
    let client = reqwest::Client::new();
    let query = |sql: String| {
        let client = client.clone();
        async move {
            let response = client.post(url).body(sql).send().await.unwrap();
            assert!(response.status().is_success(), "{}", response.text().await.unwrap());
            response.text().await.unwrap()
        }
    };
    let tables =
        query(format!("SELECT name FROM system.tables WHERE database = '{database}'")).await;
    let mut res = String::new();
    for table in tables.lines().filter(|t| !t.is_empty()) {
        res.push_str(&query(format!("SELECT * FROM {database}.{table} FORMAT TabSeparated")).await);
    }
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_on_clickhouse_leaves_no_content_in_any_table() {
    let Ok(url) = std::env::var("CLICKHOUSE_URL") else {
        eprintln!("CLICKHOUSE_URL is not set: skipping (scripts/test starts a server)");
        return;
    };
    let database = format!(
        "loupe_it_erasure_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let store_url = format!("{}?database={database}", url.trim_end_matches('/').to_owned() + "/");
    let upstream = FakeLlm::start().await;
    let config = format!("[store]\nurl = \"{store_url}\"\n\n{}", config(&upstream));
    let app = spawn_app(&config).await;
    let gateway_trace = send_spans(&app).await;
    check_before(&app, &gateway_trace).await;
    // The user's own spans are sealed: their content is in no table.
    let tables = clickhouse_tables_text(&url, &database).await;
    assert!(tables.contains("support.turn"), "the scan reads the spans");
    for secret in [ROOT_SECRET, LLM_SECRET, GATEWAY_SECRET, OTHER_SECRET] {
        assert!(!tables.contains(secret), "{secret} stored in plain text");
    }
    assert!(tables.contains(CHILD_SECRET), "a span without a user id is plain until erased");

    let output = app.cli(&["erase", "--user", USER]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("keys destroyed=1 traces purged=2 spans purged=4"), "{stdout}");
    check_after(&app, &gateway_trace).await;

    let tables = clickhouse_tables_text(&url, &database).await;
    for secret in [ROOT_SECRET, LLM_SECRET, GATEWAY_SECRET, CHILD_SECRET] {
        assert!(!tables.contains(secret), "{secret} left in ClickHouse");
    }
    let client = reqwest::Client::new();
    let _ = client.post(&url).body(format!("DROP DATABASE IF EXISTS {database}")).send().await;
}
