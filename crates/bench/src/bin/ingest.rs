//! `loupe-bench-ingest`: a load generator and probe for `loupe serve`.
//!
//! It starts a release `loupe serve` on a fresh data dir (or targets `--url`), sends realistic
//! agent traces (8 spans per trace, shaped like the shared fixture: a root, a query-rewrite LLM
//! call, an embedding, a retrieval with a rerank child, the generating LLM call with a ~2 KB
//! prompt and ~500 B completion in `gen_ai.input.messages` / `gen_ai.output.messages`, a tool
//! call and an LLM judge) over OTLP/HTTP protobuf from `--concurrency` workers for
//! `--duration` seconds, and reports:
//! - spans/s acknowledged (a 2xx means durable), request latency p50/p99;
//! - time from an ack to the trace being queryable (`GET /api/v1/traces/{id}`);
//! - peak RSS of the server (`VmHWM` in `/proc/<pid>/status`) and bytes on disk per span;
//! - query latencies at the stored span count: trace by id, latest 50 traces with a filter,
//!   a full-text search.
//!
//!
//! With `--compare-processors` it measures the pipeline's cost instead: ingest throughput with
//! every processor on (redaction, fingerprints, content policy, prices, tail sampling, sealing),
//! with the defaults (the same without tail sampling, which is off by default) and with all
//! off, each on a fresh server, in the order off, defaults, on, on, defaults, off in one run,
//! and prints the ratios to all off. Tail sampling decides traces in the background after the load's acks, so with it
//! on the bench also waits, after the load, until every acknowledged trace is decided (read
//! from `/metrics`), and reports the rate over the load plus that catch-up, less the decision
//! wait itself: a sampler falling behind the load would otherwise flatter the "on" figure.
//!
//! Not a test: figures depend on the machine.
//!
//! ```sh
//! cargo build --release -p app -p bench --bin loupe --bin loupe-bench-ingest
//! target/release/loupe-bench-ingest --concurrency 16 --duration 55 --traces-per-request 50
//! target/release/loupe-bench-ingest --compare-processors --concurrency 16 --duration 20
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bench::metric;
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

#[derive(Debug, Parser)]
#[command(about = "Load-test `loupe serve` with realistic agent traces over OTLP/HTTP protobuf.")]
struct Args {
    /// Target a running server instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// The `loupe` binary to start (default: target/release/loupe next to this program).
    #[arg(long)]
    loupe_bin: Option<PathBuf>,
    /// Data dir for the started server (default: a fresh temporary dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Concurrent senders.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Traces per request (8 spans each).
    #[arg(long, default_value_t = 25)]
    traces_per_request: usize,
    /// Query samples per query kind.
    #[arg(long, default_value_t = 30)]
    query_samples: usize,
    /// Instead of one load: compare ingest throughput with every pipeline processor on and with
    /// all of them off, each on a fresh server and data dir, in the order off, on, on, off
    /// (`--duration` seconds each), and print the ratio.
    #[arg(long)]
    compare_processors: bool,
    /// With --compare-processors: the tail-sampling policies of the "all on" phase, a TOML file
    /// of `[[pipeline.sample.policies]]` tables (default: keep errors, traces over 5 s, and
    /// half of the rest by trace id).
    #[arg(long, value_name = "FILE")]
    on_policies: Option<std::path::PathBuf>,
}

/// Every processor that can be switched off, off. The content policy has no switch; with its
/// defaults it only checks field sizes.
const ALL_OFF: &str = "[erasure]\nenabled = false\n\n\
    [pipeline.redact]\nenabled = false\n\n\
    [pipeline.fingerprint]\nenabled = false\n\n\
    [pipeline.price]\nenabled = false\n";

/// The decision wait of [`ALL_ON`].
const ON_DECISION_WAIT_SECS: f64 = 2.0;
/// Spans in each generated trace.
const SPANS_PER_TRACE: u64 = 8;

/// Every processor on: the defaults (redaction, fingerprints, content policy, prices, sealing
/// of users' content) plus tail sampling deciding every trace.
const ALL_ON: &str = "[pipeline.sample]\nenabled = true\ndecision_wait_secs = 2\n\n\
    [[pipeline.sample.policies]]\nname = \"errors\"\ntype = \"status_code\"\n\
    status_codes = [\"ERROR\"]\n\n\
    [[pipeline.sample.policies]]\nname = \"slow\"\ntype = \"latency\"\nthreshold_ms = 5000\n\n\
    [[pipeline.sample.policies]]\nname = \"baseline\"\ntype = \"probabilistic\"\n\
    sampling_percentage = 50\n";

const PROMPT_WORDS: &str = "The customer asks about a refund for a late delivery of order \
    number 4481. Policy excerpt: refunds are accepted within thirty days of delivery when the \
    item is unused; late deliveries qualify for a courtesy credit. ";

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

/// Eight spans of one agent turn, starting at `t0` (ns).
fn agent_trace(trace_id: [u8; 16], t0: u64, n: u64, prompt: &str, completion: &str) -> Vec<Span> {
    let span =
        |id: u64, parent: Option<u64>, name: &str, start_ms: u64, end_ms: u64, kind: i32| Span {
            trace_id: trace_id.to_vec(),
            span_id: (n << 8 | id).to_be_bytes().to_vec(),
            parent_span_id: parent.map(|p| (n << 8 | p).to_be_bytes().to_vec()).unwrap_or_default(),
            name: name.to_owned(),
            kind,
            start_time_unix_nano: t0 + start_ms * 1_000_000,
            end_time_unix_nano: t0 + end_ms * 1_000_000,
            ..Span::default()
        };
    let mut root = span(1, None, "refund_chat.turn", 0, 2600, 2);
    root.attributes = vec![
        s("session.id", &format!("sess_{}", n % 1000)),
        s("user.id", &format!("user_{}", n % 5000)),
        s("input.value", "i want a refund for order 4481, it was late"),
        s("output.value", completion),
    ];
    let mut rewrite = span(2, Some(1), "chat gpt-4o-mini", 5, 40, 3);
    rewrite.attributes = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "gpt-4o-mini"),
        i("gen_ai.usage.input_tokens", 84),
        i("gen_ai.usage.output_tokens", 22),
    ];
    let mut embed = span(3, Some(1), "embeddings text-embedding-3-small", 45, 63, 3);
    embed.attributes = vec![
        s("gen_ai.operation.name", "embeddings"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "text-embedding-3-small"),
        i("gen_ai.usage.input_tokens", 13),
    ];
    let mut retrieve = span(4, Some(1), "vector.retrieve", 65, 285, 1);
    retrieve.attributes = vec![s("openinference.span.kind", "RETRIEVER")];
    let mut rerank = span(5, Some(4), "rerank.cross_encoder", 230, 275, 1);
    rerank.attributes = vec![s("openinference.span.kind", "RERANKER")];
    let mut generate = span(6, Some(1), "chat gpt-4o", 300, 2100, 3);
    let input = serde_json::json!([
        {"role": "system", "parts": [{"type": "text", "content": "You are a careful refund assistant."}]},
        {"role": "user", "parts": [{"type": "text", "content": prompt}]}
    ]);
    let output = serde_json::json!([
        {"role": "assistant", "parts": [{"type": "text", "content": completion}], "finish_reason": "stop"}
    ]);
    generate.attributes = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "gpt-4o"),
        s("gen_ai.response.model", "gpt-4o-2024-08-06"),
        i("gen_ai.usage.input_tokens", 1870),
        i("gen_ai.usage.output_tokens", 180),
        s("gen_ai.input.messages", &input.to_string()),
        s("gen_ai.output.messages", &output.to_string()),
    ];
    let mut tool = span(7, Some(1), "execute_tool citation_check", 2110, 2220, 1);
    tool.attributes =
        vec![s("gen_ai.operation.name", "execute_tool"), s("gen_ai.tool.name", "citation_check")];
    let mut judge = span(8, Some(1), "chat gpt-4o judge", 2220, 2600, 3);
    judge.attributes = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "gpt-4o"),
        i("gen_ai.usage.input_tokens", 640),
        i("gen_ai.usage.output_tokens", 12),
    ];
    if n.is_multiple_of(50) {
        tool.status = Some(Status { code: 2, message: "unsupported claim".to_owned() });
    }
    vec![root, rewrite, embed, retrieve, rerank, generate, tool, judge]
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    s("service.name", "refund-bot"),
                    s("deployment.environment.name", "bench"),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "bench".to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50 {:.2} ms, p99 {:.2} ms (n={})",
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values.len()
    )
}

struct Server {
    child: Child,
    url: String,
    data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(args: &Args, config: Option<&Path>) -> anyhow::Result<Server> {
    let bin = match &args.loupe_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("loupe"),
    };
    let (tmp, data_dir) = match &args.data_dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let tmp = tempfile::tempdir()?;
            let dir = tmp.path().join("data");
            (Some(tmp), dir)
        }
    };
    let mut command = Command::new(&bin);
    command
        .args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .env("LOUPE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!("starting {} (build it with cargo build --release -p app)", bin.display())
        })?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let Some(line) = lines.next() else { bail!("loupe serve exited before listening") };
        let line = line?;
        if let Some(rest) = line.strip_prefix("listening on ")
            && !rest.contains("gRPC")
        {
            break rest.split_whitespace().next().unwrap_or("").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Server { child, url, data_dir, _tmp: tmp })
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One load: workers sending batches of agent traces until a deadline, and what they saw.
#[derive(Clone)]
struct Load {
    traces_per_request: usize,
    prompt: Arc<String>,
    completion: Arc<String>,
    /// Distinguishes this load's trace ids from any earlier load's.
    run_id: u64,
    counter: Arc<AtomicU64>,
    spans_acked: Arc<AtomicU64>,
    n_rejected: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<f64>>>,
    /// The first trace id of each acknowledged request, with the time of the ack.
    acked_ids: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Load {
    fn new(traces_per_request: usize, prompt: Arc<String>, completion: Arc<String>) -> Load {
        Load {
            traces_per_request,
            prompt,
            completion,
            run_id: now_ns(),
            counter: Arc::new(AtomicU64::new(1)),
            spans_acked: Arc::default(),
            n_rejected: Arc::default(),
            latencies: Arc::default(),
            acked_ids: Arc::default(),
        }
    }

    fn spawn_workers(
        &self,
        client: &reqwest::Client,
        url: &str,
        concurrency: usize,
        deadline: Instant,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..concurrency)
            .map(|_| {
                let (load, client, url) = (self.clone(), client.clone(), url.to_owned());
                tokio::spawn(async move { load.work(client, url, deadline).await })
            })
            .collect()
    }

    async fn work(self, client: reqwest::Client, url: String, deadline: Instant) {
        while Instant::now() < deadline {
            let mut spans = Vec::with_capacity(self.traces_per_request * 8);
            let mut first_id = String::new();
            let t0 = now_ns();
            for _ in 0..self.traces_per_request {
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&self.run_id.to_be_bytes());
                trace_id[8..].copy_from_slice(&n.to_be_bytes());
                if first_id.is_empty() {
                    first_id = trace_id.iter().map(|b| format!("{b:02x}")).collect();
                }
                spans.extend(agent_trace(trace_id, t0, n, &self.prompt, &self.completion));
            }
            let n_spans = spans.len() as u64;
            let body = request(spans).encode_to_vec();
            let sent = Instant::now();
            let response = client
                .post(format!("{url}/v1/traces"))
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await;
            let elapsed_ms = sent.elapsed().as_secs_f64() * 1000.0;
            match response {
                Ok(response) if response.status().is_success() => {
                    let _ = response.bytes().await;
                    self.spans_acked.fetch_add(n_spans, Ordering::Relaxed);
                    self.latencies.lock().map(|mut l| l.push(elapsed_ms)).ok();
                    self.acked_ids.lock().map(|mut ids| ids.push((first_id, Instant::now()))).ok();
                }
                Ok(response) => {
                    self.n_rejected.fetch_add(1, Ordering::Relaxed);
                    let retry = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_millis(retry * 100)).await;
                }
                Err(_) => {
                    self.n_rejected.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// The pipelines `--compare-processors` measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Everything that has a switch off ([`ALL_OFF`]).
    Off,
    /// No config: the defaults, tail sampling off.
    Defaults,
    /// The defaults plus tail sampling ([`ALL_ON`]).
    On,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Off => "all off",
            Phase::Defaults => "defaults",
            Phase::On => "all on",
        }
    }

    fn config(self) -> &'static str {
        match self {
            Phase::Off => ALL_OFF,
            Phase::Defaults => "",
            Phase::On => ALL_ON,
        }
    }
}

/// `--compare-processors`: throughput with every processor on, with the defaults and with all
/// off, same machine, same run, in a mirrored order so drift affects each alike.
async fn compare_processors(
    args: &Args,
    client: &reqwest::Client,
    prompt: Arc<String>,
    completion: Arc<String>,
) -> anyhow::Result<()> {
    if args.url.is_some() || args.data_dir.is_some() {
        bail!("--compare-processors starts its own servers: leave out --url and --data-dir");
    }
    let phases = [Phase::Off, Phase::Defaults, Phase::On, Phase::On, Phase::Defaults, Phase::Off];
    // (spans, seconds) per phase kind, in the order off, defaults, on.
    let mut totals = [(0u64, 0f64); 3];
    for phase in phases {
        let config_dir = tempfile::tempdir()?;
        let config = config_dir.path().join("loupe.toml");
        let text = match (phase, &args.on_policies) {
            (Phase::On, Some(path)) => {
                let policies = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --on-policies {}", path.display()))?;
                format!(
                    "[pipeline.sample]\nenabled = true\n\
                     decision_wait_secs = {ON_DECISION_WAIT_SECS}\n\n{policies}"
                )
            }
            _ => phase.config().to_owned(),
        };
        std::fs::write(&config, text)?;
        let server = start_server(args, Some(&config))?;
        let load = Load::new(args.traces_per_request, prompt.clone(), completion.clone());
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.duration);
        for worker in load.spawn_workers(client, &server.url, args.concurrency, deadline) {
            worker.await?;
        }
        let load_secs = started.elapsed().as_secs_f64();
        let acked = load.spans_acked.load(Ordering::Relaxed);
        println!(
            "{}: {acked} spans acknowledged in {load_secs:.1} s = {:.0} spans/s, request \
             latency {}",
            phase.name(),
            acked as f64 / load_secs,
            summary(load.latencies.lock().map(|l| l.clone()).unwrap_or_default())
        );
        let mut elapsed = load_secs;
        if phase == Phase::On {
            elapsed += sampler_catch_up(client, &server.url, acked).await;
            println!("  = {:.0} spans/s with sampling caught up", acked as f64 / elapsed);
        }
        let total = &mut totals[phase as usize];
        total.0 += acked;
        total.1 += elapsed;
        drop(server);
    }
    let rate = |(spans, seconds): (u64, f64)| spans as f64 / seconds.max(f64::EPSILON);
    let [off, defaults, on] = totals.map(rate);
    println!(
        "all off: {off:.0} spans/s; defaults: {defaults:.0} spans/s, defaults/off = {:.2}; \
         all on (sampling caught up): {on:.0} spans/s, on/off = {:.2} ({:.0}% slower)",
        defaults / off,
        on / off,
        (1.0 - on / off) * 100.0
    );
    Ok(())
}

/// Waits until the server's sampler has decided every acknowledged trace and returns how long
/// that took beyond the decision wait: work the sampler still owed when the load stopped.
async fn sampler_catch_up(client: &reqwest::Client, url: &str, acked: u64) -> f64 {
    let n_traces = acked / SPANS_PER_TRACE;
    let drained = Instant::now();
    let deadline = drained + Duration::from_secs(300);
    let mut decided = 0.0;
    while Instant::now() < deadline {
        decided = metric(client, url, "loupe_processor_sample_traces_kept_total").await
            + metric(client, url, "loupe_processor_sample_traces_dropped_total").await;
        if decided >= n_traces as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let catch_up = (drained.elapsed().as_secs_f64() - ON_DECISION_WAIT_SECS).max(0.0);
    println!(
        "  sampler: {decided} of {n_traces} traces decided {catch_up:.1} s after the load \
         (beyond the {ON_DECISION_WAIT_SECS} s wait)"
    );
    catch_up
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = match &args.url {
        Some(_) => None,
        None if args.compare_processors => None,
        None => Some(start_server(&args, None)?),
    };
    let url =
        args.url.clone().or_else(|| server.as_ref().map(|s| s.url.clone())).unwrap_or_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency * 2).build()?;

    let prompt: String = PROMPT_WORDS.repeat(2048 / PROMPT_WORDS.len() + 1)[..2048].to_owned();
    let completion: String =
        "You are eligible for a refund of the full amount. ".repeat(10)[..500].to_owned();
    let prompt = Arc::new(prompt);
    let completion = Arc::new(completion);
    if args.compare_processors {
        return compare_processors(&args, &client, prompt, completion).await;
    }

    println!(
        "load: {} workers x {} s, {} traces ({} spans) per request, target {url}",
        args.concurrency,
        args.duration,
        args.traces_per_request,
        args.traces_per_request * 8
    );
    let load = Load::new(args.traces_per_request, prompt.clone(), completion.clone());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let workers = load.spawn_workers(&client, &url, args.concurrency, deadline);
    let Load { spans_acked, n_rejected, latencies, acked_ids, .. } = load;
    // While the load runs: how long after an ack is the trace readable?
    let mut visible_ms = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let last = acked_ids.lock().ok().and_then(|ids| ids.last().cloned());
        let Some((id, acked_at)) = last else { continue };
        loop {
            let response = client.get(format!("{url}/api/v1/traces/{id}")).send().await;
            if response.is_ok_and(|r| r.status().is_success()) {
                visible_ms.push(acked_at.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            // A trace tail sampling drops never shows: give up at the end of the load, so
            // the wait does not count as load time.
            if acked_at.elapsed() > Duration::from_secs(30) || Instant::now() >= deadline {
                break;
            }
        }
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let acked = spans_acked.load(Ordering::Relaxed);
    println!(
        "spans acknowledged: {acked} in {elapsed:.1} s = {:.0} spans/s",
        acked as f64 / elapsed
    );
    println!("requests refused (retried later): {}", n_rejected.load(Ordering::Relaxed));
    println!(
        "request latency: {}",
        summary(latencies.lock().map(|l| l.clone()).unwrap_or_default())
    );
    println!("ack -> queryable (trace by id, during load): {}", summary(visible_ms));

    if let Some(server) = &server
        && let Some(kib) = peak_rss_kib(server.child.id())
    {
        println!("server peak RSS: {:.1} MB", kib as f64 / 1024.0);
    }

    // Stored span count and disk use.
    let total: serde_json::Value = client
        .get(format!("{url}/api/v1/spans"))
        .query(&[("limit", "1"), ("total", "true")])
        .send()
        .await?
        .json()
        .await?;
    let n_stored = total["total"].as_u64().unwrap_or(acked);
    if let Some(server) = &server {
        let bytes = dir_size(&server.data_dir);
        println!(
            "on disk: {:.1} MB for {n_stored} spans = {:.0} bytes/span",
            bytes as f64 / 1e6,
            bytes as f64 / n_stored.max(1) as f64
        );
    }

    // Query latencies at the stored count.
    let ids: Vec<String> = acked_ids
        .lock()
        .map(|ids| ids.iter().map(|(id, _)| id.clone()).collect())
        .unwrap_or_default();
    let mut by_id = Vec::new();
    let mut latest = Vec::new();
    let mut text = Vec::new();
    for k in 0..args.query_samples {
        if ids.is_empty() {
            break;
        }
        let id = &ids[(k * 7919) % ids.len()];
        let t = Instant::now();
        client.get(format!("{url}/api/v1/traces/{id}")).send().await?.bytes().await?;
        by_id.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        client
            .get(format!("{url}/api/v1/traces"))
            .query(&[("limit", "50"), ("q", "type = llm and model ~ \"gpt-4o*\"")])
            .send()
            .await?
            .bytes()
            .await?;
        latest.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        client
            .get(format!("{url}/api/v1/spans"))
            .query(&[("limit", "50"), ("q", "\"courtesy credit\"")])
            .send()
            .await?
            .bytes()
            .await?;
        text.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("queries at {n_stored} stored spans:");
    println!("  trace by id:                      {}", summary(by_id));
    println!("  latest 50 traces, filtered:        {}", summary(latest));
    println!("  full-text search (50 spans):       {}", summary(text));
    if let Some(server) = &server
        && let Some(kib) = peak_rss_kib(server.child.id())
    {
        println!("server peak RSS (after queries): {:.1} MB", kib as f64 / 1024.0);
    }
    Ok(())
}
