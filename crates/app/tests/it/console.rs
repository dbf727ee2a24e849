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
pub(crate) const WAIT: Duration = Duration::from_secs(60);

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
pub(crate) struct Browser {
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
    pub(crate) async fn start() -> Option<Browser> {
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

    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|error| panic!("open {url}: {error}"));
    }

    pub(crate) async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("waiting for {css:?}: {error}"))
    }

    /// The text of the first element matching `css`. Views redraw (the waterfall draws only the
    /// rows in view), so a lookup that finds a replaced element is simply retried.
    pub(crate) async fn text(&self, css: &str) -> String {
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
    pub(crate) async fn click(&self, css: &str) {
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
    pub(crate) async fn wait_js(&self, what: &str, script: &str) -> Value {
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

    pub(crate) async fn current_path(&self) -> String {
        self.client.current_url().await.expect("current url").path().to_owned()
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("create artifacts dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    pub(crate) async fn close(self) {
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
pub(crate) fn url(app: &App, path: &str) -> String {
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
    for path in [
        "/",
        "/traces",
        &deep_link,
        "/sessions/sess_91ab",
        "/dashboard",
        "/settings",
        "/datasets/refunds/versions/2",
        "/evals",
    ] {
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
    for path in [
        "/traces".to_owned(),
        format!("/traces/{TRACE_ID}"),
        "/dashboard".to_owned(),
        "/settings".to_owned(),
        "/datasets".to_owned(),
        "/evals".to_owned(),
    ] {
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

/// Pipeline settings with secrets in them, to check the Settings page never shows those.
const SETTINGS_CONFIG: &str = r#"
[pipeline.redact]
key = "redaction-key-that-must-stay-secret"
allow_keys = ["app.ticket_subject"]

[[pipeline.redact.patterns]]
kind = "order_id"
regex = "ORD-[0-9]{6}-SECRETREGEX"

[[pipeline.redact.values]]
kind = "customer"
values = ["Acme Corp", "Globex"]

[pipeline.content.projects.billing]
record = false

[[pipeline.price.models]]
provider = "acme-internal"
pattern = "house-model-*"
effective = "2025-01-02"
input = "0.20"
output = "0.40"

[pipeline.sample]
enabled = true

[[pipeline.sample.policies]]
name = "errors"
type = "status_code"
status_codes = ["ERROR"]

[retention]
structure_after = "12h"
fingerprints_after = "14d"

[retention.projects.default]
delete_after = "90d"

[retention.projects.billing]
delete_after = "30d"
"#;

async fn send_json(
    app: &App,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> test_support::Response {
    app.request(
        method,
        path,
        &[("content-type", "application/json")],
        Some(body.to_string().into_bytes()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_api_shows_the_effective_config_without_secrets_and_manages_keys() {
    let app = spawn_app(SETTINGS_CONFIG).await;
    let response = app.get("/api/v1/settings", &[]).await;
    response.assert_status(200);
    let text = response.text();
    for secret in ["redaction-key-that-must-stay-secret", "SECRETREGEX", "Acme Corp", "Globex"] {
        assert!(!text.contains(secret), "settings leak {secret:?}: {text}");
    }
    let settings = response.json();
    assert_eq!(settings["project"], "default");
    let models = settings["price"]["models"].as_array().expect("price rows");
    assert!(models.len() > 10, "built-in prices are listed too: {}", models.len());
    let house = models.iter().find(|m| m["pattern"] == "house-model-*").expect("config price");
    assert_eq!(
        (house["input"].as_str(), house["output"].as_str(), house["from_config"].as_bool()),
        (Some("0.2"), Some("0.4"), Some(true))
    );
    // 2025-01-02 is day 20090 since 1970-01-01.
    assert_eq!(house["effective_day"], 20090);
    assert_eq!(settings["redact"]["patterns"], json!(["order_id"]));
    assert_eq!(
        settings["redact"]["values"],
        json!([{"kind": "customer", "n_values": 2, "ignore_case": false}])
    );
    assert_eq!(settings["redact"]["allow_keys"], json!(["app.ticket_subject"]));
    assert_eq!(settings["content"]["policy"]["record"], true);
    assert!(settings["content"].get("projects").is_none(), "other projects stay hidden");
    assert_eq!(settings["sample"]["policies"][0]["name"], "errors");
    let retention = &settings["retention"];
    assert_eq!(
        (retention["content_hours"].as_f64(), retention["fingerprint_days"].as_f64()),
        (Some(12.0), Some(14.0))
    );
    assert_eq!(retention["enabled"], false);
    assert_eq!(retention["project_overrides"]["delete_days"], 90.0, "{retention}");
    assert!(!retention.to_string().contains("billing"), "other projects stay hidden: {retention}");

    // Keys: created (shown once), listed without the key, usable, revoked.
    let created =
        send_json(&app, reqwest::Method::POST, "/api/v1/keys", json!({"name": "ci"})).await;
    created.assert_status(201);
    let created = created.json();
    let key = created["key"].as_str().expect("the key").to_owned();
    assert!(key.starts_with("lp_"), "{key}");
    let list = app.get_json("/api/v1/keys").await;
    assert_eq!(list["keys"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["keys"][0]["name"], "ci");
    assert_eq!(list["keys"][0]["id"], created["id"]);
    assert!(!list.to_string().contains(&key[7..]), "the list never holds the key: {list}");
    let with_key = app.get("/api/v1/settings", &[("x-loupe-api-key", &key)]).await;
    with_key.assert_status(200);
    let empty_name =
        send_json(&app, reqwest::Method::POST, "/api/v1/keys", json!({"name": " "})).await;
    empty_name.assert_status(400);
    let id = created["id"].as_str().expect("key id");
    let revoke =
        app.request(reqwest::Method::DELETE, &format!("/api/v1/keys/{id}"), &[], None).await;
    revoke.assert_status(204);
    assert_eq!(app.get_json("/api/v1/keys").await["keys"], json!([]));
    let again =
        app.request(reqwest::Method::DELETE, &format!("/api/v1/keys/{id}"), &[], None).await;
    again.assert_status(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_page_lists_prices_and_manages_score_configs_and_keys() {
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(SETTINGS_CONFIG).await;
    browser.goto(&url(&app, "/settings")).await;
    browser.wait_for("tr.price-row[data-pattern='house-model-*']").await;
    let n_rows = browser
        .wait_js("price rows", "return document.querySelectorAll('tr.price-row').length")
        .await;
    assert!(n_rows.as_u64().unwrap_or(0) > 10, "the whole table: {n_rows}");
    let search = browser.wait_for("input[aria-label='Search prices']").await;
    search.send_keys("house").await.expect("type a search");
    browser
        .wait_js(
            "the search to narrow the table",
            "return [...document.querySelectorAll('tr.price-row')].filter(r => !r.hidden).length === 1",
        )
        .await;
    let row = browser.text("tr.price-row[data-pattern='house-model-*']").await;
    assert!(
        row.contains("acme-internal") && row.contains("$0.2") && row.contains("2025-01-02"),
        "{row}"
    );
    let redaction = browser.text("#redaction").await;
    assert!(
        redaction.contains("order_id") && redaction.contains("customer: 2 values"),
        "{redaction}"
    );
    assert!(!redaction.contains("Acme") && !redaction.contains("SECRETREGEX"), "{redaction}");
    let sampling = browser.text("#sampling").await;
    assert!(sampling.contains("errors"), "{sampling}");

    // Score configs: create one, see it, delete it.
    browser
        .wait_for("#scores input[aria-label='Score name']")
        .await
        .send_keys("helpfulness")
        .await
        .expect("name");
    browser.click("#scores button[type='submit']").await;
    let score = browser.text("tr[data-score='helpfulness']").await;
    assert!(score.contains("number 1 to 5"), "{score}");
    assert_eq!(
        app.get_json("/api/v1/score-configs").await["score_configs"][0]["name"],
        "helpfulness"
    );
    browser.client.execute("window.confirm = () => true", vec![]).await.expect("auto-confirm");
    browser.click("button[aria-label='Delete score helpfulness']").await;
    browser
        .wait_js(
            "the score row to go",
            "return !document.querySelector(\"tr[data-score='helpfulness']\")",
        )
        .await;
    assert_eq!(app.get_json("/api/v1/score-configs").await["score_configs"], json!([]));

    // API keys: create one, see it once, and listed.
    browser
        .wait_for("#keys input[aria-label='Key name']")
        .await
        .send_keys("console-ci")
        .await
        .expect("name");
    browser.click("#keys button[type='submit']").await;
    let shown = browser.text(".new-key-value").await;
    assert!(shown.starts_with("lp_") && shown.len() == 43, "{shown}");
    let listed = browser.text("#keys tr[data-key-id]").await;
    assert!(listed.contains("console-ci") && listed.contains(&shown[..7]), "{listed}");
    assert!(!listed.contains(&shown[7..]), "the list shows a prefix only: {listed}");
    browser.client.execute("window.scrollTo(0, 0)", vec![]).await.expect("scroll");
    browser.screenshot("settings").await;

    // Usable at 800 px: nothing wider than the window.
    browser.client.set_window_size(800, 900).await.expect("resize");
    browser
        .wait_js(
            "no horizontal scroll at 800 px",
            "return document.documentElement.scrollWidth <= window.innerWidth",
        )
        .await;
    browser.screenshot("settings-800").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_page_shows_versions_items_with_sources_and_exports() {
    let Some((app, browser)) = setup(false).await else { return };
    let created = send_json(
        &app,
        reqwest::Method::POST,
        "/api/v1/datasets",
        json!({"name": "refunds", "description": "refund answers", "q": "type = llm"}),
    )
    .await;
    created.assert_status(201);
    let v2 = send_json(
        &app,
        reqwest::Method::POST,
        "/api/v1/datasets/refunds/versions",
        json!({"note": "reviewed by support"}),
    )
    .await;
    v2.assert_status(201);
    let n_items = v2.json()["version"]["n_items"].as_u64().expect("n_items");
    assert!(n_items >= 1);
    // A tag given on the trace is offered when tagging one of its spans, and so are the
    // categories of the score configs.
    let feedback = send_json(
        &app,
        reqwest::Method::POST,
        "/api/v1/feedback",
        json!({"trace_id": TRACE_ID, "tags": ["late-delivery"], "source": "human", "author": "test"}),
    )
    .await;
    feedback.assert_status(201);
    send_json(
        &app,
        reqwest::Method::PUT,
        "/api/v1/score-configs/issue",
        json!({"type": "categorical", "values": ["wrong-policy", "tone"]}),
    )
    .await
    .assert_status(200);

    browser.goto(&url(&app, "/datasets")).await;
    let row = browser.text("tr[data-dataset='refunds']").await;
    assert!(row.contains("v2") && row.contains(&n_items.to_string()), "{row}");
    browser.screenshot("datasets").await;
    browser.click("tr[data-dataset='refunds'] a").await;
    let versions = browser.text("table[aria-label='Versions']").await;
    assert!(versions.contains("v1") && versions.contains("v2"), "{versions}");
    assert!(
        versions.contains("reviewed by support") && versions.contains("type = llm"),
        "{versions}"
    );
    browser.wait_for("tr[data-item-id]").await;
    let splits = browser.text(".split-counts").await;
    assert!(splits.contains(&format!("of {n_items} items")), "{splits}");

    // One download link per export format, each answering with the file.
    for format in ["openai", "preference", "anthropic", "hf", "csv", "eval"] {
        let href = browser
            .wait_js(
                &format!("the {format} link"),
                &format!("return document.querySelector(\"a[data-format='{format}']\")?.getAttribute('href')"),
            )
            .await;
        let href = href.as_str().expect("an href");
        assert!(href.contains(&format!("format={format}")) && href.contains("version=2"), "{href}");
        app.get(href, &[]).await.assert_status(200);
    }
    browser.screenshot("dataset").await;

    // An item links back to the call it came from.
    let link = browser
        .wait_js(
            "a source link",
            "return document.querySelector('a.source-link')?.getAttribute('href')",
        )
        .await;
    let link = link.as_str().expect("href").to_owned();
    assert!(link.starts_with(&format!("/traces/{TRACE_ID}/spans/")), "{link}");
    browser.click("a.source-link").await;
    browser.wait_js("the trace page", &format!("return location.pathname === '{link}'")).await;
    browser.wait_for(".wf-row.is-selected").await;
    let span_id = link.rsplit('/').next().expect("span id");
    browser
        .wait_js("the source span selected", &format!("return document.querySelector('.wf-row.is-selected')?.dataset.spanId === '{span_id}' || location.pathname.endsWith('{span_id}')"))
        .await;

    // Tags already used in the project are suggested.
    browser.goto(&url(&app, &format!("/traces/{TRACE_ID}/spans/{GENERATE_SPAN_ID}"))).await;
    browser
        .wait_js(
            "tag suggestions",
            "const values = [...document.querySelectorAll('.feedback datalist option')].map(o => o.value); \
             return values.includes('late-delivery') && values.includes('wrong-policy')",
        )
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evals_page_offers_suites_and_says_when_no_runs_are_recorded() {
    let Some((app, browser)) = setup(false).await else { return };
    send_json(
        &app,
        reqwest::Method::POST,
        "/api/v1/datasets",
        json!({"name": "refunds", "q": "type = llm"}),
    )
    .await
    .assert_status(201);
    browser.goto(&url(&app, "/evals")).await;
    let runs = browser.text(".evals .empty").await;
    assert!(runs.contains("No eval runs recorded yet"), "{runs}");
    let suite = browser
        .text("table[aria-label='Eval suites from datasets'] tr[data-dataset='refunds']")
        .await;
    assert!(suite.contains("v1"), "{suite}");
    let href = browser
        .wait_js("the suite link", "return document.querySelector(\"tr[data-dataset='refunds'] a[download]\")?.getAttribute('href')")
        .await;
    let response = app.get(href.as_str().expect("href"), &[]).await;
    response.assert_status(200);
    assert!(response.text().contains("cases:"), "an eval suite: {}", response.text());

    browser
        .wait_for("input[aria-label='Trace id']")
        .await
        .send_keys(TRACE_ID)
        .await
        .expect("trace id");
    browser.click(".evals form button[type='submit']").await;
    let yaml = browser.text("pre.suite-yaml").await;
    assert!(yaml.contains("cases:") && yaml.contains(TRACE_ID), "{yaml}");
    browser.screenshot("evals").await;
    browser.close().await;
}
