//! Loads realistic agent traces into a fresh SQLite store and measures durable write
//! throughput and the query latencies the store is designed for.
//!
//! ```text
//! cargo run --release -p store-sqlite --example bench_store -- [N_SPANS] [DATA_DIR]
//! ```
//!
//! Each trace has 8 spans shaped like `trace-48f` (a server root, three LLM calls, embedding,
//! retrieval, rerank and a tool); each LLM span carries a ~2 KB prompt and a ~500 B completion
//! both as raw `gen_ai.*.messages` attributes and in the normalized view. Spans are written
//! `BATCH` at a time, as the pipeline's group commit does, with the default durability
//! (`synchronous=FULL`).

use std::time::{Duration, Instant};

use model::{
    KeyValue, LlmView, Message, ProjectId, RawSpan, Resource, Scope, SpanId, SpanKind, SpanType,
    Status, StatusCode, StoredSpan, TraceId, Usage,
};
use rust_decimal::Decimal;
use store::{SpanQuery, Store, TraceQuery};
use store_sqlite::{SqliteConfig, SqliteStore};

const BATCH: usize = 4000;
const SPANS_PER_TRACE: usize = 8;

const WORDS: &[&str] = &[
    "refund", "policy", "order", "shipping", "customer", "account", "invoice", "return",
    "delivery", "warranty", "discount", "payment", "card", "label", "package", "support", "agent",
    "ticket", "issue", "replace", "damaged", "missing", "item", "store", "credit", "exchange",
    "size", "color", "receipt", "days", "within", "eligible", "please", "thanks", "the", "a", "to",
    "of", "and", "is", "for", "you", "your", "we", "can", "our", "with", "this", "that", "will",
    "be", "on", "in", "it", "are", "have", "not", "if", "or", "by",
];

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// About `n_bytes` of words; one in 5,000 texts gets the rare word `zanzibar`.
    fn text(&mut self, n_bytes: usize) -> String {
        let mut res = String::with_capacity(n_bytes + 16);
        if self.below(5000) == 0 {
            res.push_str("zanzibar ");
        }
        while res.len() < n_bytes {
            res.push_str(WORDS[self.below(WORDS.len())]);
            res.push(if self.below(12) == 0 { '.' } else { ' ' });
        }
        res
    }
}

fn id_bytes<const N: usize>(rng: &mut Rng) -> [u8; N] {
    let mut res = [0u8; N];
    for chunk in res.chunks_mut(8) {
        let bytes = rng.next().to_be_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    res[0] |= 1;
    res
}

fn make_trace(rng: &mut Rng, project: &ProjectId, start_ns: u64) -> (TraceId, Vec<StoredSpan>) {
    // Ids are random and non-zero by construction (the first byte has its low bit set).
    let trace_id = TraceId::from_bytes(&id_bytes::<16>(rng)).unwrap_or_else(|e| panic!("{e}"));
    let span_ids: Vec<SpanId> = (0..SPANS_PER_TRACE)
        .map(|_| SpanId::from_bytes(&id_bytes::<8>(rng)).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let session = format!("sess-{}", rng.below(20_000));
    let user = format!("user-{}", rng.below(5_000));
    let error = rng.below(50) == 0;
    let shape: [(&str, SpanType, Option<&str>, u64, u64); SPANS_PER_TRACE] = [
        ("refund_chat.turn", SpanType::Other, None, 0, 4_200),
        ("llm.query_rewrite", SpanType::Llm, Some("gpt-4o-mini"), 20, 600),
        ("vector.embed", SpanType::Embedding, None, 640, 80),
        ("vector.retrieve", SpanType::Retrieval, None, 730, 120),
        ("rerank.cross_encoder", SpanType::Reranker, None, 860, 90),
        ("llm.generate", SpanType::Llm, Some("gpt-4o-2024-08-06"), 960, 2_600),
        ("tool.citation_check", SpanType::Tool, None, 3_570, 200),
        ("llm.judge.policy_correct", SpanType::Llm, Some("claude-sonnet-4"), 3_780, 400),
    ];
    let mut res = Vec::with_capacity(SPANS_PER_TRACE);
    for (i, (name, span_type, model, offset_ms, duration_ms)) in shape.into_iter().enumerate() {
        let jitter = rng.below(200) as u64;
        let mut attributes = vec![KeyValue::string("app.tenant.tier", "gold")];
        let mut view = LlmView { span_type, ..LlmView::default() };
        if let Some(model) = model {
            let prompt = rng.text(2048);
            let completion = rng.text(500);
            let input = serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]);
            let output = serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": completion}], "finish_reason": "stop"}]);
            attributes.extend([
                KeyValue::string("gen_ai.operation.name", "chat"),
                KeyValue::string("gen_ai.provider.name", "openai"),
                KeyValue::string("gen_ai.request.model", model),
                KeyValue::int("gen_ai.usage.input_tokens", 512),
                KeyValue::int("gen_ai.usage.output_tokens", 128),
                KeyValue::string("gen_ai.input.messages", input.to_string()),
                KeyValue::string("gen_ai.output.messages", output.to_string()),
            ]);
            view.operation_name = Some("chat".to_owned());
            view.provider = Some("openai".to_owned());
            view.request_model = Some(model.to_owned());
            view.response_model = Some(model.to_owned());
            view.usage = Usage { input: Some(512), output: Some(128), ..Usage::default() };
            view.input_messages = vec![Message::text("user", prompt)];
            view.output_messages = vec![Message::text("assistant", completion)];
            view.cost = Some(Decimal::new(2345, 6));
        }
        if i == 0 {
            attributes.push(KeyValue::string("session.id", session.clone()));
            attributes.push(KeyValue::string("user.id", user.clone()));
        }
        view.session_id = Some(session.clone());
        view.user_id = Some(user.clone());
        let start = start_ns + offset_ms * 1_000_000 + jitter;
        let raw = RawSpan {
            trace_id,
            span_id: span_ids[i],
            parent_span_id: if i == 0 { None } else { Some(span_ids[0]) },
            trace_state: String::new(),
            flags: 1,
            name: name.to_owned(),
            kind: if i == 0 { SpanKind::Server } else { SpanKind::Client },
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration_ms * 1_000_000,
            attributes,
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Status {
                code: if error && i == 5 { StatusCode::Error } else { StatusCode::Unset },
                message: String::new(),
            },
            resource: Resource {
                attributes: vec![
                    KeyValue::string("service.name", "support-bot"),
                    KeyValue::string("deployment.environment", "prod"),
                ],
                dropped_attributes_count: 0,
            },
            scope: Scope { name: "app".to_owned(), ..Scope::default() },
            schema_url: String::new(),
        };
        res.push(StoredSpan { project: project.clone(), raw, view });
    }
    (trace_id, res)
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux; 0 elsewhere).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12 (clock ticks of 1/100 s).
    (ticks(11) + ticks(12)) / 100.0
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Runs `f` `n` times and returns the median and worst latency.
async fn measure<F, Fut>(n: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        f(i).await;
        times.push(started.elapsed());
    }
    times.sort();
    (times[n / 2], times[n - 1])
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n_spans: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1_000_000);
    let temp = tempfile::tempdir()?;
    let data_dir = args.get(2).map(std::path::PathBuf::from).unwrap_or(temp.path().to_owned());
    let store = SqliteStore::open(SqliteConfig::new(&data_dir))?;
    let project = ProjectId::default_project();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let base_ns: u64 = 1_767_225_600_000_000_000;
    let n_traces = n_spans / SPANS_PER_TRACE;
    let mut trace_ids = Vec::with_capacity(n_traces);
    let mut write_time = Duration::ZERO;
    let mut write_cpu = 0.0;
    let mut batch = Vec::with_capacity(BATCH + SPANS_PER_TRACE);
    let mut n_written = 0u64;
    let started = Instant::now();
    for t in 0..n_traces {
        let (trace_id, spans) = make_trace(&mut rng, &project, base_ns + t as u64 * 5_000_000);
        trace_ids.push(trace_id);
        batch.extend(spans);
        if batch.len() >= BATCH || t + 1 == n_traces {
            let write_started = Instant::now();
            let cpu_started = cpu_secs();
            let stats = store.write_spans(&batch).await?;
            write_time += write_started.elapsed();
            write_cpu += cpu_secs() - cpu_started;
            n_written += stats.n_written;
            batch.clear();
        }
        if t > 0 && t % 25_000 == 0 {
            eprintln!(
                "{} spans, {:.0} spans/s in write_spans",
                t * 8,
                (t * 8) as f64 / write_time.as_secs_f64()
            );
        }
    }
    let total_time = started.elapsed();
    println!("spans written: {n_written} in batches of {BATCH}");
    println!(
        "write: {:.0} spans/s inside write_spans ({:.1} s), {:.0} spans/s including generation",
        n_written as f64 / write_time.as_secs_f64(),
        write_time.as_secs_f64(),
        n_written as f64 / total_time.as_secs_f64()
    );
    println!(
        "write cpu: {:.1} s of process cpu during write_spans ({:.0} spans per cpu-second)",
        write_cpu,
        n_written as f64 / write_cpu.max(0.01)
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average during the run: {}", load.trim());
    let bytes = dir_size(&data_dir);
    println!("bytes on disk: {bytes} ({:.0} per span)", bytes as f64 / n_written.max(1) as f64);

    let (p50, max) = measure(200, |i| {
        let store = &store;
        let project = &project;
        let trace_id = trace_ids[(i * 7919) % trace_ids.len()];
        async move {
            let spans = store.get_trace(project, trace_id).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(spans.len(), SPANS_PER_TRACE);
        }
    })
    .await;
    println!("trace by id: p50 {}, max {}", millis(p50), millis(max));

    for filter in [
        "",
        "type = llm and model ~ \"gpt-4o*\"",
        "status = error",
        "service = support-bot and duration > 2s",
        "user = user-42",
    ] {
        let query = TraceQuery {
            filter: store::syntax::parse(filter).map_err(anyhow::Error::msg)?,
            limit: 50,
            ..TraceQuery::default()
        };
        let (p50, max) = measure(20, |_| {
            let (store, project, query) = (&store, &project, &query);
            async move {
                let page =
                    store.search_traces(project, query).await.unwrap_or_else(|e| panic!("{e}"));
                assert!(!page.items.is_empty() || filter.starts_with("user"));
            }
        })
        .await;
        println!("latest 50 traces [{filter}]: p50 {}, max {}", millis(p50), millis(max));
    }

    // A span by its id alone (feedback sent with a span id, dataset selections), and a rare
    // user's spans: both found through the key tokens of the index in `search.db`.
    let stored = store.get_trace(&project, trace_ids[trace_ids.len() / 2]).await?;
    let by_id = format!("span_id = \"{}\"", stored[SPANS_PER_TRACE / 2].raw.span_id);
    for filter in [by_id.as_str(), "user = user-42"] {
        let query = SpanQuery {
            filter: store::syntax::parse(filter).map_err(anyhow::Error::msg)?,
            limit: 50,
            ..SpanQuery::default()
        };
        let (p50, max) = measure(20, |_| {
            let (store, project, query) = (&store, &project, &query);
            async move {
                let page =
                    store.search_spans(project, query).await.unwrap_or_else(|e| panic!("{e}"));
                assert!(!page.items.is_empty() || filter.starts_with("user"));
            }
        })
        .await;
        println!("latest 50 spans [{filter}]: p50 {}, max {}", millis(p50), millis(max));
    }

    for filter in ["zanzibar", "refund policy", "\"damaged package\" and type = llm"] {
        let query = SpanQuery {
            filter: store::syntax::parse(filter).map_err(anyhow::Error::msg)?,
            limit: 50,
            ..SpanQuery::default()
        };
        let mut times = Vec::new();
        let mut n_found = 0;
        for _ in 0..10 {
            let started = Instant::now();
            n_found = store.search_spans(&project, &query).await?.items.len();
            times.push(started.elapsed());
        }
        times.sort();
        let (p50, max) = (times[times.len() / 2], times[times.len() - 1]);
        println!(
            "full-text latest 50 spans [{filter}]: {n_found} found, p50 {}, max {}",
            millis(p50),
            millis(max)
        );
    }
    Ok(())
}
