//! The web console in a real headless Chromium, driven over WebDriver (chromedriver), against
//! the real binary: ingest the fixture over OTLP, then use the pages as a person would.
//!
//! Needs `chromedriver` (Debian `chromium-driver`) on PATH or at `$LOUPE_CHROMEDRIVER`; without
//! it these tests print why and pass, as `scripts/test --quick` documents. Screenshots of each
//! page go to `$CARGO_TARGET_DIR/test-artifacts/console/`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use test_support::{App, spawn_app};

use crate::ZERO_CONFIG;

const TRACE_ID: &str = "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f";
const GENERATE_SPAN_ID: &str = "48f0000000000006";
/// How long to wait for anything; generous because the whole suite shares two cores.
const WAIT: Duration = Duration::from_secs(60);

/// Chromium as the brief for the browser tests asks: headless, sandbox off (root in CI), and
/// nothing that phones home.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// A chromedriver process with one browser session. Dropping it ends the session (chromedriver
/// then quits the browser) and kills chromedriver by its pid, so a failed test leaves nothing
/// behind.
struct Browser {
    client: Client,
    driver: Child,
    port: u16,
    session_id: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop cannot await, so end the session with a plain blocking request.
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.session_id, self.port
        );
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a browser session, or `None` when chromedriver is missing.
    async fn start() -> Option<Browser> {
        let chromedriver =
            std::env::var("LOUPE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let port = free_port();
        let mut command = Command::new(&chromedriver);
        command.arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null());
        let mut driver = match command.spawn() {
            Ok(driver) => driver,
            Err(error) => {
                eprintln!("skipping browser test: cannot start {chromedriver:?}: {error}");
                return None;
            }
        };
        let profile = tempfile::tempdir().expect("browser profile dir");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut options = json!({ "args": args });
        if let Ok(binary) = std::env::var("LOUPE_CHROMIUM") {
            options["binary"] = json!(binary);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let webdriver_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&webdriver_url)
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() > deadline => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    panic!("chromedriver at {webdriver_url} did not start a session: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let session_id = client.session_id().await.ok().flatten().unwrap_or_default();
        Some(Browser { client, driver, port, session_id, _profile: profile })
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|error| panic!("open {url}: {error}"));
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("waiting for {css:?}: {error}"))
    }

    /// The text of the first element matching `css`. Views redraw (the waterfall draws only the
    /// rows in view), so a lookup that finds a replaced element is simply retried.
    async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.wait_for(css).await.text().await {
                Ok(text) => return text,
                Err(error) if Instant::now() > deadline => panic!("text of {css:?}: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Clicks the first element matching `css`, retrying when a redraw replaced it.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.wait_for(css).await.click().await {
                Ok(()) => return,
                Err(error) if Instant::now() > deadline => panic!("click {css:?}: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Polls a JavaScript expression until it is truthy and returns its value.
    async fn wait_js(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.client.execute(script, vec![]).await.expect("execute script");
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; last value {value}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn current_path(&self) -> String {
        self.client.current_url().await.expect("current url").path().to_owned()
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("create artifacts dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        // target/debug/loupe -> target
        PathBuf::from(env!("CARGO_BIN_EXE_loupe"))
            .parent()
            .and_then(|debug| debug.parent())
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
    });
    target.join("test-artifacts").join("console")
}

fn fixture() -> String {
    test_support::fixture("trace-48f.otlp.json")
}

/// The console URL of `path` on `app`.
fn url(app: &App, path: &str) -> String {
    format!("{}{path}", app.http_url)
}

/// The fixture as a second, different trace: new ids, another service and root name.
fn second_trace() -> String {
    fixture()
        .replace(TRACE_ID, "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a")
        .replace("\"refund-bot\"", "\"billing-bot\"")
        .replace("refund_chat.turn", "billing_chat.turn")
        .replace("sess_91ab", "sess_bill")
}

/// A running server holding the fixture trace (and optionally a second one), and a browser.
async fn setup(with_second_trace: bool) -> Option<(App, Browser)> {
    let browser = Browser::start().await?;
    let app = spawn_app(ZERO_CONFIG).await;
    ingest(&app, &fixture(), TRACE_ID).await;
    if with_second_trace {
        ingest(&app, &second_trace(), "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a").await;
    }
    Some((app, browser))
}

async fn ingest(app: &App, otlp_json: &str, trace_id: &str) {
    app.post_otlp_json(otlp_json).await.assert_status(200);
    let path = format!("/api/v1/traces/{trace_id}");
    test_support::eventually(WAIT, "the trace to be queryable", || async {
        (app.get(&path, &[]).await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_opens_from_the_table_and_shows_the_generate_messages() {
    let Some((app, browser)) = setup(false).await else { return };

    browser.goto(&url(&app, "/")).await;
    let row = format!("tr[data-trace-id='{TRACE_ID}'] a");
    assert_eq!(browser.text(&row).await, "refund_chat.turn");
    let cells = browser.text(&format!("tr[data-trace-id='{TRACE_ID}']")).await;
    assert!(cells.contains("refund-bot"), "service in the row: {cells}");
    browser.screenshot("traces").await;

    browser.click(&row).await;
    browser.click(".wf-row[data-name='llm.generate']").await;
    let user = browser.text(".detail-pane .message.role-user").await;
    assert!(user.contains("i want refund for order 4481"), "user message: {user}");
    let system = browser.text(".detail-pane .message.role-system").await;
    assert!(system.contains("You are a refund assistant"), "system message: {system}");
    let output = browser.text(".detail-pane .chat[aria-label='Output'] .message").await;
    assert!(output.contains("eligible for a refund"), "output: {output}");
    let facts = browser.text(".detail-pane .facts").await;
    assert!(facts.contains("claude-3-5-sonnet"), "model in the facts: {facts}");
    assert_eq!(
        browser.current_path().await,
        format!("/traces/{TRACE_ID}/spans/{GENERATE_SPAN_ID}"),
        "selecting a span gives it a URL"
    );
    assert_eq!(browser.text(".waterfall-tools .count").await, "8 spans");
    browser.screenshot("trace").await;

    // Keyboard: j selects the next span in the tree, k comes back.
    let tree = browser.wait_for(".waterfall").await;
    tree.send_keys("j").await.expect("press j");
    browser
        .wait_js(
            "j to move the selection",
            &format!("return !location.pathname.endsWith('{GENERATE_SPAN_ID}')"),
        )
        .await;
    tree.send_keys("k").await.expect("press k");
    browser
        .wait_js(
            "k to move it back",
            &format!("return location.pathname.endsWith('{GENERATE_SPAN_ID}')"),
        )
        .await;

    // The retrieval span lists its documents with scores.
    browser.click(".wf-row[data-name='vector.retrieve']").await;
    let documents = browser.text(".detail-pane .documents").await;
    assert!(documents.to_lowercase().contains("documents (3)"), "documents: {documents}");
    assert!(documents.contains("pol_courtesy_v2_draft"), "document ids: {documents}");

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_link_to_a_span_opens_it() {
    let Some((app, browser)) = setup(false).await else { return };
    browser.goto(&url(&app, &format!("/traces/{TRACE_ID}/spans/{GENERATE_SPAN_ID}"))).await;
    let selected = browser.text(".wf-row.is-selected .wf-name").await;
    assert_eq!(selected, "llm.generate");
    let user = browser.text(".detail-pane .message.role-user").await;
    assert!(user.contains("order 4481"), "user message: {user}");

    // The raw span is one tab away.
    browser.click("#tab-json").await;
    let raw = browser.text(".detail-pane pre.json").await;
    assert!(raw.contains("gen_ai.first_token"), "raw span JSON has its events");

    // The theme switch flips the palette and is remembered across a reload.
    let before = browser.wait_js("a theme", "return document.documentElement.dataset.theme").await;
    browser.click("#theme-button").await;
    let after = browser.wait_js("a theme", "return document.documentElement.dataset.theme").await;
    assert_ne!(before, after);
    browser.client.refresh().await.expect("reload");
    browser.wait_for(".wf-row.is-selected").await;
    let reloaded =
        browser.wait_js("a theme", "return document.documentElement.dataset.theme").await;
    assert_eq!(reloaded, after);
    browser.screenshot(&format!("trace-{}", after.as_str().unwrap_or("theme"))).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correction_written_in_place_survives_a_reload() {
    let Some((app, browser)) = setup(false).await else { return };
    browser.goto(&url(&app, &format!("/traces/{TRACE_ID}/spans/{GENERATE_SPAN_ID}"))).await;

    // The correction box starts as the recorded answer; the edit shows as a diff.
    browser.click(".feedback details.correction summary").await;
    let textarea = browser.wait_for(".feedback textarea.correction-input").await;
    let recorded = textarea.prop("value").await.expect("value").unwrap_or_default();
    assert!(recorded.contains("eligible for a refund"), "pre-filled with the output: {recorded}");
    let corrected = "Refunds are accepted within 30 days of delivery [pol_refund_v7].";
    textarea.clear().await.expect("clear");
    textarea.send_keys(corrected).await.expect("type the correction");
    let inserted = browser
        .wait_js(
            "the diff to mark the new words",
            "return [...document.querySelectorAll('.feedback .diff ins')].map(e => e.textContent).join(' ')",
        )
        .await;
    assert!(inserted.as_str().unwrap_or("").contains("30"), "inserted words: {inserted}");
    browser.click(".feedback button[aria-label='Rate bad']").await;
    browser
        .wait_for(".feedback input[aria-label='Tags']")
        .await
        .send_keys("refund")
        .await
        .expect("tag");
    browser.click(".feedback button[type='submit']").await;
    browser.wait_for(".feedback .feedback-entry").await;
    browser.screenshot("trace-feedback").await;

    // Stored on the record: a reload (and the API) shows it.
    browser.client.refresh().await.expect("reload");
    browser.wait_for(".feedback .feedback-entry").await;
    let entry = browser.text(".feedback .feedback-entry").await;
    assert!(entry.contains("bad") && entry.contains("refund"), "rating and tag: {entry}");
    let value = browser
        .wait_js(
            "the saved correction in the box",
            "return document.querySelector('.feedback textarea.correction-input')?.value",
        )
        .await;
    assert_eq!(value, corrected);
    let stored = app.get_json(&format!("/api/v1/spans/{GENERATE_SPAN_ID}/feedback")).await;
    let correction = &stored["feedback"][0]["correction"][0]["parts"][0]["content"];
    assert_eq!(correction, corrected, "{stored}");

    // The traces table marks the trace as rated down.
    browser.goto(&url(&app, "/traces")).await;
    let mark = browser.text(&format!("tr[data-trace-id='{TRACE_ID}'] .feedback-cell .badge")).await;
    assert!(mark.contains("rated"), "feedback mark: {mark}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_narrows_the_table_and_completes_field_names() {
    let Some((app, browser)) = setup(true).await else { return };
    browser.goto(&url(&app, "/traces")).await;
    browser.wait_for(&format!("tr[data-trace-id='{TRACE_ID}']")).await;
    browser.wait_for("tr[data-trace-id='5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a']").await;

    // "/" focuses the filter; typing offers field names.
    let link = browser.wait_for(&format!("tr[data-trace-id='{TRACE_ID}'] a")).await;
    link.send_keys("/").await.expect("press /");
    browser
        .wait_js(
            "the filter to take focus",
            "return document.activeElement.matches('[data-filter]')",
        )
        .await;
    let filter = browser.wait_for("input[data-filter]").await;
    filter.send_keys("serv").await.expect("type");
    let suggestion = browser.text(".suggestions li").await;
    assert!(suggestion.starts_with("service"), "first suggestion: {suggestion}");

    filter.clear().await.expect("clear");
    filter.send_keys("service = billing-bot\u{E007}").await.expect("type a filter and Enter");
    browser
        .wait_js(
            "the table to show only the billing trace",
            "const rows = [...document.querySelectorAll('tr[data-trace-id]')].map(r => r.dataset.traceId); \
             return rows.length === 1 && rows[0] === '5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a'",
        )
        .await;
    assert!(browser.current_path().await.starts_with("/traces"));
    let current = browser.client.current_url().await.expect("url");
    let query = current.query().unwrap_or("");
    assert!(query.contains("q=service"), "the filter is in the URL: {current}");
    browser.screenshot("traces-filtered").await;

    // A filter the syntax rejects says why and marks the box invalid.
    filter.clear().await.expect("clear");
    filter.send_keys("model\u{E007}").await.expect("type a broken filter");
    let error = browser.text("tbody .error").await;
    assert!(error.contains("column"), "syntax error shown: {error}");
    browser.wait_for("input[data-filter][aria-invalid='true']").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tail_shows_new_traces_and_saved_views_come_back() {
    let Some((app, browser)) = setup(false).await else { return };
    browser.goto(&url(&app, "/traces")).await;
    browser.wait_for(&format!("tr[data-trace-id='{TRACE_ID}']")).await;

    // Live: a trace ingested after the page loaded appears without a reload.
    browser.click("label[for='live-toggle']").await;
    ingest(&app, &second_trace(), "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a").await;
    browser.wait_for("tr[data-trace-id='5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a']").await;
    browser.click("label[for='live-toggle']").await;

    // Save the current filter as a view; after a reload without it, the view brings it back.
    let filter = browser.wait_for("input[data-filter]").await;
    filter.send_keys("service = billing-bot\u{E007}").await.expect("filter");
    browser.click("button.save-view-button").await;
    let name = browser.wait_for(".save-view input[aria-label='View name']").await;
    name.clear().await.expect("clear");
    name.send_keys("billing\u{E007}").await.expect("name the view");
    browser.goto(&url(&app, "/traces")).await;
    browser.wait_for(&format!("tr[data-trace-id='{TRACE_ID}']")).await;
    browser.wait_for("select[aria-label='Saved views'] option[value='0']").await;
    browser
        .wait_js(
            "the saved view to apply",
            "const select = document.querySelector(\"select[aria-label='Saved views']\"); \
             select.value = '0'; select.dispatchEvent(new Event('change')); return true",
        )
        .await;
    browser
        .wait_js(
            "the view's filter to narrow the table",
            "const rows = [...document.querySelectorAll('tr[data-trace-id]')]; \
             return rows.length === 1 && document.querySelector('input[data-filter]').value === 'service = billing-bot'",
        )
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_sessions_draw_from_the_api() {
    let Some((app, browser)) = setup(false).await else { return };

    browser.goto(&url(&app, "/dashboard")).await;
    browser.wait_for(".chart svg path.line, .chart svg circle").await;
    let stats = browser.text(".stat-row").await;
    assert!(stats.contains("8"), "8 spans counted: {stats}");
    let slowest = browser.text(".bar-list").await;
    assert!(slowest.contains("refund_chat.turn"), "slowest operations: {slowest}");
    browser.screenshot("dashboard").await;

    browser.goto(&url(&app, "/sessions")).await;
    browser.click("a[href='/sessions/sess_91ab']").await;
    let turn = browser.text(".turn .turn-body .message").await;
    assert!(turn.contains("order 4481"), "the turn shows what the user said: {turn}");
    browser.screenshot("session").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_stays_on_its_own_origin() {
    let app = spawn_app(ZERO_CONFIG).await;

    // The shell: never cached, same-origin CSP, and served for deep links too.
    let deep_link = format!("/traces/{TRACE_ID}/spans/{GENERATE_SPAN_ID}");
    for path in ["/", "/traces", &deep_link, "/sessions/sess_91ab", "/dashboard"] {
        let response = app.get(path, &[]).await;
        response.assert_status(200);
        assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert_eq!(response.header("cache-control"), Some("no-cache"), "{path}");
        let csp = response.header("content-security-policy").unwrap_or_default();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{path}: {csp}");
        assert!(response.text().contains("/app.js\""), "{path}");
    }
    // Assets are versioned by content and cached for good; unknown API paths stay JSON errors.
    let html = app.get("/", &[]).await.text();
    let start = html.find("/assets/").expect("an asset link");
    let end = start + html[start..].find('"').expect("closing quote");
    let (version_dir, _) = html[start..end].rsplit_once('/').expect("a file name");
    let response = app.get(&format!("{version_dir}/style.css"), &[]).await;
    response.assert_status(200);
    assert_eq!(response.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(response.header("cache-control"), Some("public, max-age=31536000, immutable"));
    let response = app.get(&format!("{version_dir}/app.js"), &[]).await;
    assert_eq!(response.header("content-type"), Some("text/javascript; charset=utf-8"));
    let response = app.get("/api/v1/nope", &[]).await;
    response.assert_status(404);
    assert!(!response.text().contains("<html"), "API 404s are not the console");

    // In the browser: every request a page makes goes to its own origin.
    let Some(browser) = Browser::start().await else { return };
    ingest(&app, &fixture(), TRACE_ID).await;
    let origin = app.http_url.clone();
    for path in ["/traces".to_owned(), format!("/traces/{TRACE_ID}"), "/dashboard".to_owned()] {
        browser.goto(&url(&app, &path)).await;
        browser.wait_for("main section").await;
        browser
            .wait_js(
                "the page to settle",
                "return !document.querySelector('.status-line')?.textContent.includes('Loading')",
            )
            .await;
        let urls = browser
            .client
            .execute(
                "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]",
                vec![],
            )
            .await
            .expect("resource entries");
        let urls = urls.as_array().expect("a list");
        assert!(urls.len() > 5, "{path}: the page and its modules are listed: {urls:?}");
        for requested in urls {
            let requested = requested.as_str().expect("a url");
            assert!(requested.starts_with(&format!("{origin}/")), "{path} requested {requested}");
        }
    }
    browser.close().await;
}

/// An OTLP JSON trace of `n_spans` spans, four children per span, 1 ms apart.
fn wide_trace(trace_id: &str, n_spans: usize) -> String {
    let start: u64 = 1_716_370_863_000_000_000;
    let spans: Vec<Value> = (0..n_spans)
        .map(|i| {
            let mut span = json!({
                "traceId": trace_id,
                "spanId": format!("{:016x}", i + 1),
                "name": format!("step.{i}"),
                "kind": 1,
                "startTimeUnixNano": (start + i as u64 * 1_000_000).to_string(),
                "endTimeUnixNano": (start + i as u64 * 1_000_000 + 500_000).to_string(),
                "attributes": [{"key": "step.index", "value": {"intValue": i.to_string()}}],
            });
            if i > 0 {
                span["parentSpanId"] = json!(format!("{:016x}", (i - 1) / 4 + 1));
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "wide"}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
    }]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_span_trace_draws_only_the_rows_in_view() {
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(ZERO_CONFIG).await;
    let trace_id = "7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e";
    ingest(&app, &wide_trace(trace_id, 5000), trace_id).await;

    browser.goto(&url(&app, &format!("/traces/{trace_id}"))).await;
    assert_eq!(browser.text(".waterfall-tools .count").await, "5,000 spans");
    let render_ms = browser
        .wait_js(
            "the trace to render",
            "return document.querySelector('.trace-page').dataset.renderMs",
        )
        .await;
    eprintln!("5,000-span trace: fetched and drawn in {} ms", render_ms.as_str().unwrap_or("?"));
    let n_rows = browser
        .client
        .execute("return document.querySelectorAll('.wf-row').length", vec![])
        .await
        .expect("count rows");
    let n_rows = n_rows.as_u64().expect("a number");
    assert!((10..200).contains(&n_rows), "only the rows in view exist: {n_rows}");

    // End jumps to the last span in tree order (the last child's last child, and so on); it
    // is drawn once scrolled to.
    let mut last = 0;
    while 4 * last + 4 < 5000 {
        last = 4 * last + 4;
    }
    browser.wait_for(".waterfall").await.send_keys("\u{E010}").await.expect("press End");
    browser
        .wait_js(
            "the last span to be selected and drawn",
            &format!(
                "return document.querySelector('.wf-row.is-selected')?.dataset.name === 'step.{last}'"
            ),
        )
        .await;
    browser.screenshot("trace-5000").await;
    browser.close().await;
}
