//! Store benchmark: SQLite versus ClickHouse on the same synthetic agent traces.
//!
//! Writes N spans (8 per trace, shaped like `trace-48f`: an agent root, LLM calls with a 2 KB
//! prompt and a 500 B completion, tool and retrieval spans) through `Store::write_spans` in
//! batches, as the pipeline's group commit does, then times the queries the console runs:
//! trace by id, the latest 50 traces with a filter, and p95 duration by span name.
//!
//! ```text
//! scripts/clickhouse.sh start
//! CLICKHOUSE_URL=http://127.0.0.1:18123/ cargo run --release -p store-clickhouse \
//!     --example bench -- [N_SPANS] [sqlite|clickhouse|both]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use model::{
    KeyValue, LlmView, Message, ProjectId, RawSpan, Resource, Scope, SpanId, SpanKind, SpanType,
    Status, StatusCode, StoredSpan, TraceId, Usage,
};
use rust_decimal::Decimal;
use store::{AggregateQuery, GroupBy, Metric, Store, TraceQuery};

const SPANS_PER_TRACE: u64 = 8;
const BATCH_SPANS: u64 = 10_000;
/// 2026-01-01T00:00:00Z; traces are spread over two days.
const T0: u64 = 1_767_225_600_000_000_000;
const SPREAD_NS: u64 = 2 * 86_400 * 1_000_000_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n_spans: u64 =
        args.first().map(|s| s.replace('_', "").parse()).transpose()?.unwrap_or(1_000_000);
    let which = args.get(1).map(String::as_str).unwrap_or("both");
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    runtime.block_on(async {
        let mut results = Vec::new();
        if which == "sqlite" || which == "both" {
            let dir = tempfile::tempdir_in(std::env::var("LOUPE_BENCH_DIR").unwrap_or_else(|_| "/tmp".to_owned()))?;
            let config = store_sqlite::SqliteConfig::new(dir.path());
            let store: Arc<dyn Store> = Arc::new(store_sqlite::SqliteStore::open(config)?);
            let res = run("sqlite", store, n_spans).await?;
            let n_bytes = dir_size(dir.path());
            results.push((res, n_bytes));
        }
        if which == "clickhouse" || which == "both" {
            let url = std::env::var("CLICKHOUSE_URL").context("CLICKHOUSE_URL is not set")?;
            let mut config = store_clickhouse::ClickHouseConfig::from_url(&url)?;
            config.database = "loupe_bench".to_owned();
            let store = store_clickhouse::ClickHouseStore::open(config.clone()).await?;
            store.drop_database().await?;
            let store = Arc::new(store_clickhouse::ClickHouseStore::open(config).await?);
            let res = run("clickhouse", store.clone(), n_spans).await?;
            let n_bytes = clickhouse_bytes(&url).await.unwrap_or(0);
            results.push((res, n_bytes));
            store.drop_database().await?;
        }
        println!();
        println!("| backend | spans | ingest spans/s | trace by id p50 / p95 | filtered latest-50 p50 / p95 | p95 by name p50 / p95 | bytes/span |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for (res, n_bytes) in results {
            println!(
                "| {} | {} | {:.0} | {} / {} | {} / {} | {} / {} | {} |",
                res.backend,
                n_spans,
                res.spans_per_sec,
                ms(res.by_id.0),
                ms(res.by_id.1),
                ms(res.latest.0),
                ms(res.latest.1),
                ms(res.p95.0),
                ms(res.p95.1),
                n_bytes / n_spans.max(1),
            );
        }
        anyhow::Ok(())
    })
}

struct BenchResult {
    backend: &'static str,
    spans_per_sec: f64,
    by_id: (Duration, Duration),
    latest: (Duration, Duration),
    p95: (Duration, Duration),
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn run(
    backend: &'static str,
    store: Arc<dyn Store>,
    n_spans: u64,
) -> anyhow::Result<BenchResult> {
    let n_traces = n_spans / SPANS_PER_TRACE;
    let prompt = "Please summarize the refund policy for the customer. ".repeat(40);
    let completion = "Refunds are available within 30 days of purchase. ".repeat(10);
    eprintln!("{backend}: writing {n_spans} spans");
    let started = Instant::now();
    let mut trace = 0;
    while trace < n_traces {
        let end = (trace + BATCH_SPANS / SPANS_PER_TRACE).min(n_traces);
        let batch: Vec<StoredSpan> =
            (trace..end).flat_map(|t| agent_trace(t, n_traces, &prompt, &completion)).collect();
        store.write_spans(&batch).await.with_context(|| format!("{backend}: write_spans"))?;
        trace = end;
    }
    let elapsed = started.elapsed();
    let spans_per_sec = (n_traces * SPANS_PER_TRACE) as f64 / elapsed.as_secs_f64();
    eprintln!("{backend}: {spans_per_sec:.0} spans/s ({elapsed:?})");

    let project = ProjectId::default_project();
    let by_id = time_it(50, |i| {
        let store = store.clone();
        let project = project.clone();
        async move {
            let id = trace_id((i * 7919) % n_traces);
            let spans = store.get_trace(&project, id).await?;
            anyhow::ensure!(
                spans.len() == SPANS_PER_TRACE as usize,
                "trace has {} spans",
                spans.len()
            );
            Ok(())
        }
    })
    .await?;
    let filter = store::syntax::parse("type = llm and model = gpt-4o and status = error")
        .map_err(|e| anyhow::anyhow!(e))?;
    let latest = time_it(20, |_| {
        let store = store.clone();
        let project = project.clone();
        let filter = filter.clone();
        async move {
            let query = TraceQuery { filter, limit: 50, ..TraceQuery::default() };
            let page = store.search_traces(&project, &query).await?;
            anyhow::ensure!(page.items.len() == 50, "{} traces", page.items.len());
            Ok(())
        }
    })
    .await?;
    let p95 = time_it(10, |_| {
        let store = store.clone();
        let project = project.clone();
        async move {
            let query = AggregateQuery {
                group_by: vec![GroupBy::Name],
                metrics: vec![Metric::P95],
                limit: 100,
                ..AggregateQuery::default()
            };
            let rows = store.aggregate(&project, &query).await?;
            anyhow::ensure!(rows.len() == 7, "{} names", rows.len());
            Ok(())
        }
    })
    .await?;
    eprintln!("{backend}: by id {by_id:?}, latest-50 {latest:?}, p95 by name {p95:?}");
    Ok(BenchResult { backend, spans_per_sec, by_id, latest, p95 })
}

/// p50 and p95 of `n` sequential runs.
async fn time_it<F, Fut>(n: u64, mut op: F) -> anyhow::Result<(Duration, Duration)>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut times = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        op(i).await?;
        times.push(started.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.95)))
}

fn trace_id(n: u64) -> TraceId {
    let mut bytes = [0u8; 16];
    bytes[0] = 0xbe;
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    // The first byte is never zero, so the id is valid.
    TraceId::from_bytes(&bytes).unwrap_or_else(|e| unreachable!("{e}"))
}

fn span_id(trace: u64, n: u64) -> SpanId {
    let mut bytes = (trace * 16 + n).to_be_bytes();
    bytes[0] = 0x5a;
    // The first byte is never zero, so the id is valid.
    SpanId::from_bytes(&bytes).unwrap_or_else(|e| unreachable!("{e}"))
}

/// One agent turn: root, planner LLM call, retrieval, two tools, two LLM calls, guardrail.
fn agent_trace(t: u64, n_traces: u64, prompt: &str, completion: &str) -> Vec<StoredSpan> {
    let start = T0 + t * (SPREAD_NS / n_traces.max(1));
    let ms = 1_000_000;
    let models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"];
    let layout: [(&str, SpanType, u64, u64); 8] = [
        ("agent.turn", SpanType::Agent, 0, 4000),
        ("llm.plan", SpanType::Llm, 10, 900 + t % 500),
        ("retrieve.docs", SpanType::Retrieval, 950, 120),
        ("tool.lookup_order", SpanType::Tool, 1100, 80 + t % 50),
        ("tool.refund", SpanType::Tool, 1200, 200),
        ("llm.answer", SpanType::Llm, 1450, 1800 + t % 900),
        ("llm.answer", SpanType::Llm, 3300, 500),
        ("guardrail.check", SpanType::Guardrail, 3850, 100),
    ];
    layout
        .iter()
        .enumerate()
        .map(|(i, (name, span_type, offset, duration))| {
            let i = i as u64;
            let mut view = LlmView { span_type: *span_type, ..LlmView::default() };
            if *span_type == SpanType::Llm {
                let model = models[((t + i) % 3) as usize];
                view.operation_name = Some("chat".to_owned());
                view.provider = Some(
                    if model.starts_with("claude") { "anthropic" } else { "openai" }.to_owned(),
                );
                view.request_model = Some(model.to_owned());
                view.response_model = Some(model.to_owned());
                view.usage = Usage { input: Some(520), output: Some(120), ..Usage::default() };
                view.input_messages = vec![Message::text("user", prompt)];
                view.output_messages = vec![Message::text("assistant", completion)];
                view.cost = Some(Decimal::new(2875, 6));
            }
            view.session_id = Some(format!("session-{}", t / 4));
            view.user_id = Some(format!("user-{}", t % 1000));
            if i == 0 {
                view.operation_id = Some("refund_agent".to_owned());
            }
            let error = *span_type == SpanType::Llm && t.is_multiple_of(20);
            let raw = RawSpan {
                trace_id: trace_id(t),
                span_id: span_id(t, i + 1),
                parent_span_id: (i > 0).then(|| span_id(t, 1)),
                trace_state: String::new(),
                flags: 0,
                name: (*name).to_owned(),
                kind: if i == 0 { SpanKind::Server } else { SpanKind::Internal },
                start_time_unix_nano: start + offset * ms,
                end_time_unix_nano: start + (offset + duration) * ms,
                attributes: vec![
                    KeyValue::string("app.tenant", format!("tenant-{}", t % 50)),
                    KeyValue::int("app.attempt", 1),
                ],
                dropped_attributes_count: 0,
                events: Vec::new(),
                dropped_events_count: 0,
                links: Vec::new(),
                dropped_links_count: 0,
                status: Status {
                    code: if error { StatusCode::Error } else { StatusCode::Unset },
                    message: String::new(),
                },
                resource: Resource {
                    attributes: vec![KeyValue::string("service.name", "support-agent")],
                    dropped_attributes_count: 0,
                },
                scope: Scope { name: "bench".to_owned(), ..Scope::default() },
                schema_url: String::new(),
            };
            StoredSpan { project: ProjectId::default_project(), raw, view }
        })
        .collect()
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn clickhouse_bytes(url: &str) -> anyhow::Result<u64> {
    let config = store_clickhouse::ClickHouseConfig::from_url(url)?;
    let query =
        "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = 'loupe_bench'";
    let text = reqwest::Client::new()
        .post(config.endpoint.clone())
        .body(query)
        .send()
        .await?
        .text()
        .await?;
    Ok(text.trim().parse()?)
}
