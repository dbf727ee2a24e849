//! No raw PII reaches disk: known personal values and secrets are sent through OTLP/HTTP and
//! through the recording gateway, then, with the server stopped, every file under the data dir
//! (the databases, their `-wal` files, `search.db`, spills) is scanned for each raw value,
//! including inside the LZ4 blocks the span documents are stored in. None may be there; the
//! typed placeholders that replaced them are read back through the API.

use std::path::Path;
use std::time::Duration;

use test_support::fake_llm::FakeLlm;
use test_support::otlp::{int, span, string};
use test_support::{App, eventually, spawn_app};

use crate::{hex, trace_id};

/// (kind, raw value, the placeholder prefix it must become). Chosen without repeated 4-byte
/// runs, so a leaked value would show as one literal run even inside a compressed block.
const PII: &[(&str, &str, &str)] = &[
    ("email", "jane.roe+pqz@example.org", "<email:"),
    ("card", "4539 1488 0357 6262", "<card:"),
    ("iban", "DE89 3704 0044 0532 0130 00", "<iban:"),
    ("phone", "+44 20 7946 0958", "<phone:"),
    ("api key", "sk-proj-Zq7RmX2vLt9KwB4nHc6JdY8p", "<openai_key:"),
    ("bearer", "Bearer tok.Qm4Xr8Lz2Vw6Ny", "<bearer:"),
];
const USER_ID: &str = "cust-73915-jroe";

fn message() -> String {
    let mut res = String::from("please update my account:");
    for (kind, value, _) in PII {
        res.push_str(&format!(" {kind} {value};"));
    }
    res
}

fn config(upstream: &FakeLlm) -> String {
    format!("[gateway.routes.openai]\nkind = \"openai\"\nbase_url = \"{}\"\n", upstream.url())
}

async fn send_otlp(app: &App, trace: [u8; 16]) {
    let base = 1_700_000_000_000_000_000u64;
    let mut root = span(trace, 1, None, "support.turn", base, base + 2_000_000_000);
    root.attributes.extend([string("user.id", USER_ID), string("input.value", &message())]);
    let mut llm = span(trace, 2, Some(1), "chat gpt-4o", base + 1_000, base + 1_000_000_000);
    llm.kind = 3;
    let messages = serde_json::json!([
        {"role": "user", "parts": [{"type": "text", "content": message()}]}
    ]);
    llm.attributes.extend([
        string("gen_ai.operation.name", "chat"),
        string("gen_ai.provider.name", "openai"),
        string("gen_ai.request.model", "gpt-4o"),
        int("gen_ai.usage.input_tokens", 40),
        int("gen_ai.usage.output_tokens", 10),
        string("gen_ai.input.messages", &messages.to_string()),
        string("app.note", &message()),
    ]);
    let body = test_support::otlp::encode(&test_support::otlp::request("pii", vec![root, llm]));
    app.post_otlp_protobuf(body).await.assert_status(200);
}

async fn send_gateway(app: &App, trace: [u8; 16]) {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "user": USER_ID,
        "messages": [
            {"role": "system", "content": "you help with accounts"},
            {"role": "user", "content": message()}
        ]
    });
    let traceparent = format!("00-{}-00f067aa0ba902b7-01", hex(&trace));
    let response = app
        .post(
            "/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("traceparent", &traceparent),
                ("x-loupe-user", USER_ID),
            ],
            body.to_string().into_bytes(),
        )
        .await;
    response.assert_status(200);
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, res: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading the data dir").map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files(&path, res);
        } else {
            res.push(path);
        }
    }
}

/// The bytes of a file plus the decompressed contents of every span document in it: the store
/// writes each as a format byte (`2`: MessagePack, whose strings are stored as they are; `1`,
/// older: JSON), the uncompressed size (u32, little endian) and one LZ4 block. A document may
/// be split over pages, so SQLite files (their WAL included) are also read through SQLite:
/// every value of every table, blobs in that format decompressed.
fn readable_contents(path: &Path, bytes: &[u8]) -> (Vec<u8>, usize) {
    let mut res = bytes.to_vec();
    let is_database = path.extension().is_some_and(|e| e == "db");
    let mut n_docs = 0;
    if !is_database {
        return (res, n_docs);
    }
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("opening a database of the data dir");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for table in tables {
        let mut statement = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let n_columns = statement.column_count();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n_columns {
                match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(text) => res.extend_from_slice(text),
                    rusqlite::types::ValueRef::Blob(blob) => {
                        res.extend_from_slice(blob);
                        if let Some((1 | 2, rest)) = blob.split_first().map(|(v, r)| (*v, r))
                            && let Ok(text) = lz4_flex::decompress_size_prepended(rest)
                        {
                            res.extend_from_slice(&text);
                            n_docs += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    (res, n_docs)
}

fn find(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_raw_pii_reaches_disk() {
    let upstream = FakeLlm::start().await;
    let mut app = spawn_app(&config(&upstream)).await;
    let (otlp_trace, gateway_trace) = (trace_id(7_001), trace_id(7_002));
    send_otlp(&app, otlp_trace).await;
    send_gateway(&app, gateway_trace).await;
    assert!(
        upstream.requests().iter().any(|r| r.body.to_string().contains(PII[0].1)),
        "the upstream gets the call as the caller sent it"
    );

    let mut trees = String::new();
    for (trace, n_spans) in [(otlp_trace, 2), (gateway_trace, 1)] {
        let tree = eventually(Duration::from_secs(20), "the recorded trace", || async {
            let response = app.get(&format!("/api/v1/traces/{}", hex(&trace)), &[]).await;
            (response.status == 200 && response.json()["rollup"]["n_spans"] == n_spans)
                .then(|| response.text())
        })
        .await;
        trees.push_str(&tree);
    }
    for (kind, value, placeholder) in PII {
        assert!(!trees.contains(value), "the API shows the raw {kind}");
        let n_found = trees.matches(placeholder).count();
        assert!(n_found >= 2, "{kind}: {placeholder} in both traces, found {n_found}");
    }
    assert!(trees.contains("<user:u_"), "the user id is hashed");
    // The user id is replaced wherever it occurs, e.g. in the recorded request body's `user`.
    assert!(!trees.contains(USER_ID), "the API shows the raw user id");
    // The full-text index finds the message's words but none of the values.
    let found = app.get_json("/api/v1/spans?q=account").await;
    assert!(found["spans"].as_array().is_some_and(|s| !s.is_empty()), "{found}");
    for word in ["pqz", "Qm4Xr8Lz2Vw6Ny", "Zq7RmX2vLt9KwB4nHc6JdY8p"] {
        let found = app.get_json(&format!("/api/v1/spans?q={word}")).await;
        assert_eq!(found["spans"].as_array().map(Vec::len), Some(0), "{word}: {found}");
    }

    // kill -9 leaves the write-ahead logs as they are, so they are scanned too.
    app.kill9();
    let mut paths = Vec::new();
    files(&app.data_dir(), &mut paths);
    let names: Vec<String> =
        paths.iter().filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned())).collect();
    assert!(names.iter().any(|n| n == "search.db"), "{names:?}");
    let mut n_docs = 0;
    for path in &paths {
        let bytes = std::fs::read(path).expect("reading a data file");
        let (contents, n_file_docs) = readable_contents(path, &bytes);
        n_docs += n_file_docs;
        for (kind, value, _) in PII {
            assert!(!find(&contents, value), "raw {kind} in {}", path.display());
        }
        assert!(!find(&contents, USER_ID), "raw user id in {}", path.display());
    }
    assert!(n_docs >= 3, "the scan decompressed the span documents ({n_docs}): {names:?}");
}
