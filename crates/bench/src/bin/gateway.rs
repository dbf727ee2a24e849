//! `loupe-bench-gateway`: how much latency the recording gateway adds, compared with calling the
//! same upstream directly, at fixed request rates (open loop), for plain and streamed chat
//! completions (time to first byte and total); the gateway's maximum throughput (closed loop);
//! whether every call was recorded; and the gateway's memory.
//!
//! The upstream is the nginx mock in `/work/shared/bench/mock-upstream` (`start.sh`, listening
//! on 127.0.0.1:18080). By default the program starts the gateway itself, as a child process
//! (`loupe-bench-gateway serve`) recording into SQLite through the real pipeline; `--gateway URL
//! --gateway-pid PID` measures an already running `loupe serve` instead, whose `[gateway]` has
//! the routes `mock` (`http://127.0.0.1:18080/v1`, the default route) and `mockstream`
//! (`http://127.0.0.1:18080/stream/v1`).
//!
//! ```sh
//! /work/shared/bench/mock-upstream/start.sh
//! cargo run --release -p bench --bin loupe-bench-gateway -- --rates 1000,5000 --secs 10
//! ```
//!
//! The floor of any proxy on this machine is measured in the same run, at the same rates: a
//! bare forwarder on the gateway's own HTTP stack (`loupe-bench-gateway forward`: axum server,
//! reqwest client, the body streamed through untouched, nothing parsed or recorded), started
//! by default, and any other pass-through proxy given with `--baseline NAME=URL` (e.g. nginx's
//! `proxy_pass`, which `bench/floor.sh` starts). What the gateway adds beyond the forwarder is
//! what its own work costs; what the forwarder adds is the extra hop itself.
//!
//! `--litellm URL` also measures a running LiteLLM proxy in front of the same upstream, in the
//! same run: direct, Loupe's gateway and LiteLLM at one low rate that LiteLLM can sustain
//! (`--litellm-rate`, default 25 req/s), and each one's maximum throughput. `bench/litellm.sh`
//! installs LiteLLM in its own venv, starts it on the mock upstream and runs this.

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench::metric;

/// The allocator of the `loupe` binary, so the gateway measured here runs as it does there.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str = "usage: loupe-bench-gateway [--upstream URL] [--gateway URL --gateway-pid PID] \
                     [--fixtures DIR] [--rates 1000,5000] [--secs N] [--concurrency N] \
                     [--baseline NAME=URL]... [--no-forwarder] [--hyper-forwarder] [--litellm URL [--litellm-rate N]]\n       \
                     loupe-bench-gateway serve --upstream URL --data-dir DIR\n       \
                     loupe-bench-gateway forward --upstream URL [--hyper]";

const HELP: &str =
    "Measure the latency Loupe's recording gateway adds over calling the same upstream directly.

Start the shared mock upstream first: /work/shared/bench/mock-upstream/start.sh

Options:
  --upstream URL          the mock upstream (default http://127.0.0.1:18080)
  --gateway URL           measure a running `loupe serve` instead of starting one; needs
  --gateway-pid PID       its process id (for its memory) and the routes `mock` and `mockstream`
  --fixtures DIR          the upstream's recorded responses (default: the mock's fixtures)
  --rates 1000,5000       open-loop request rates to measure, per second
  --secs N                seconds per rate and scenario (default 10)
  --concurrency N         callers for the maximum-throughput run (default 32)
  --baseline NAME=URL     also measure another pass-through proxy to the same upstream
                          (repeatable; bench/floor.sh adds nginx this way)
  --no-forwarder          skip the bare axum + reqwest forwarder measured by default
  --hyper-forwarder       also measure a bare forwarder on hyper alone
  --litellm URL           also measure a running LiteLLM proxy (bench/litellm.sh starts one)
  --litellm-rate N        the rate LiteLLM is compared at (default 25)
  -h, --help              print this help

Subcommands (started by the bench itself):
  serve --upstream URL --data-dir DIR    the gateway under test, recording into SQLite
  forward --upstream URL [--hyper]       a bare forwarder, the floor of any proxy hop

Example: cargo run --release -p bench --bin loupe-bench-gateway -- --rates 1000 --secs 5";

struct Args {
    upstream: String,
    gateway: Option<String>,
    gateway_pid: Option<u32>,
    fixtures: String,
    rates: Vec<u32>,
    secs: u64,
    concurrency: usize,
    litellm: Option<String>,
    litellm_rate: u32,
    /// Pass-through proxies in front of the same upstream: (name, base URL).
    baselines: Vec<(String, String)>,
    forwarder: bool,
    /// Also measure the hyper-only forwarder (`forward --hyper`).
    hyper_forwarder: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut res = Args {
        upstream: "http://127.0.0.1:18080".to_owned(),
        gateway: None,
        gateway_pid: None,
        fixtures: "/work/shared/bench/mock-upstream/fixtures".to_owned(),
        rates: vec![1000, 5000],
        secs: 10,
        concurrency: 32,
        litellm: None,
        litellm_rate: 25,
        baselines: Vec::new(),
        forwarder: true,
        hyper_forwarder: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--upstream" => res.upstream = value()?,
            "--gateway" => res.gateway = Some(value()?),
            "--gateway-pid" => res.gateway_pid = Some(value()?.parse()?),
            "--fixtures" => res.fixtures = value()?,
            "--rates" => {
                res.rates = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            "--secs" => res.secs = value()?.parse()?,
            "--concurrency" => res.concurrency = value()?.parse()?,
            "--litellm" => res.litellm = Some(value()?.trim_end_matches('/').to_owned()),
            "--litellm-rate" => res.litellm_rate = value()?.parse()?,
            "--baseline" => {
                let given = value()?;
                let (name, url) = given.split_once('=').context("--baseline takes NAME=URL")?;
                res.baselines.push((name.to_owned(), url.trim_end_matches('/').to_owned()));
            }
            "--no-forwarder" => res.forwarder = false,
            "--hyper-forwarder" => res.hyper_forwarder = true,
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    Ok(res)
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if std::env::args().skip(1).any(|arg| arg == "-h" || arg == "--help") {
        println!("{HELP}");
        return std::process::ExitCode::SUCCESS;
    }
    let res = match args.peek().map(String::as_str) {
        Some("serve") => {
            args.next();
            serve(args)
        }
        Some("forward") => {
            args.next();
            forward(args)
        }
        _ => parse_args(args).and_then(run),
    };
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The gateway under test: real pipeline, real SQLite store, on its own two-thread runtime.
fn serve(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut upstream = "http://127.0.0.1:18080".to_owned();
    let mut data_dir = None;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--upstream" => upstream = args.next().context("--upstream needs a value")?,
            "--data-dir" => data_dir = args.next(),
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    let data_dir = std::path::PathBuf::from(data_dir.context("--data-dir is required")?);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let store = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(&data_dir))
            .map_err(|e| anyhow::anyhow!("opening the store: {e}"))?;
        let pipeline = pipeline::Pipeline::start(
            pipeline::PipelineConfig::default(),
            pipeline::ProcessorChain::default(),
            Arc::new(store),
        );
        // LOUPE_BENCH_NO_BODIES=1: record messages and usage but not the raw bodies.
        let bodies = if std::env::var_os("LOUPE_BENCH_NO_BODIES").is_some() {
            "max_recorded_body_bytes = 0\n"
        } else {
            ""
        };
        let raw: gateway::RawGatewayConfig = toml::from_str(&format!(
            "{bodies}default_route = \"mock\"\n\
             [routes.mock]\nkind = \"openai\"\nbase_url = \"{upstream}/v1\"\n\
             [routes.mockstream]\nkind = \"openai\"\nbase_url = \"{upstream}/stream/v1\"\n"
        ))?;
        let config = gateway::GatewayConfig::from_raw(raw, &|_| None)?;
        let gateway = if std::env::var_os("LOUPE_BENCH_DISCARD").is_some() {
            // Recording discarded: isolates the proxy's own cost.
            gateway::Gateway::with_sink(
                config,
                auth::Auth::open(),
                Arc::new(Discard),
                data_dir.join("spill"),
            )?
        } else {
            gateway::Gateway::new(
                config,
                auth::Auth::open(),
                pipeline.clone(),
                data_dir.join("spill"),
            )?
        };
        let metrics = gateway.metrics();
        let router = gateway.router().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    let mut registry = prometheus_client::registry::Registry::default();
                    metrics.register(&mut registry);
                    let mut text = String::new();
                    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                    text
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        axum::serve(listener, router).await?;
        anyhow::Ok(())
    })
}

/// The floor: a bare forwarder on the gateway's HTTP stack (axum in, reqwest out, the same
/// two-thread runtime), passing each request's method, path, content type and body to the
/// upstream and streaming the response back untouched.
fn forward(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut upstream = "http://127.0.0.1:18080".to_owned();
    let mut hyper_only = false;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--upstream" => upstream = args.next().context("--upstream needs a value")?,
            "--hyper" => hyper_only = true,
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    let upstream: Arc<str> = upstream.trim_end_matches('/').into();
    if hyper_only {
        return forward_hyper(upstream);
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
        let handler = move |request: axum::extract::Request| {
            let (client, upstream) = (client.clone(), upstream.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
                let mut outgoing = client.request(parts.method, format!("{upstream}{}", parts.uri));
                if let Some(content_type) = parts.headers.get(axum::http::header::CONTENT_TYPE) {
                    outgoing = outgoing.header(axum::http::header::CONTENT_TYPE, content_type);
                }
                match outgoing.body(body).send().await {
                    Ok(response) => {
                        let mut res = axum::response::Response::builder().status(response.status());
                        for (name, value) in response.headers() {
                            res = res.header(name, value);
                        }
                        res.body(axum::body::Body::from_stream(response.bytes_stream()))
                            .unwrap_or_default()
                    }
                    Err(error) => axum::response::Response::builder()
                        .status(502)
                        .body(axum::body::Body::from(error.to_string()))
                        .unwrap_or_default(),
                }
            }
        };
        let router = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        axum::serve(listener, router).await?;
        anyhow::Ok(())
    })
}

/// A leaner floor: hyper's HTTP/1 server in, hyper's pooled client out (no axum router, no
/// reqwest), each request and response body passed through as it streams.
fn forward_hyper(upstream: Arc<str>) -> anyhow::Result<()> {
    use hyper_util::client::legacy::{Client, connect::HttpConnector};
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, hyper::body::Incoming> =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |mut request: hyper::Request<hyper::body::Incoming>| {
                        let client = client.clone();
                        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
                        let uri = format!("{upstream}{path}").parse::<hyper::Uri>();
                        async move {
                            *request.uri_mut() = uri?;
                            request.headers_mut().remove(hyper::header::HOST);
                            anyhow::Ok(client.request(request).await?)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    })
}

/// Starts this program in `mode` (`serve` or `forward`) as a child process and returns it with
/// the base URL it printed.
fn spawn_self(
    mode: &str,
    extra: &[&std::ffi::OsStr],
) -> anyhow::Result<(std::process::Child, String)> {
    let mut process = std::process::Command::new(std::env::current_exe()?)
        .arg(mode)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{mode}`"))?;
    let stdout = process.stdout.take().context("child stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let addr = line.trim().strip_prefix("listening on ").context("no address")?.to_owned();
    Ok((process, format!("http://{addr}")))
}

/// A sink that accepts and forgets every batch.
struct Discard;

impl gateway::RecordSink for Discard {
    fn submit(
        &self,
        _batch: pipeline::Batch,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
}

/// Latencies of one run, in microseconds.
#[derive(Default)]
struct Samples {
    ttfb: Vec<u64>,
    total: Vec<u64>,
    errors: u64,
    n_sent: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

struct Summary {
    p50: f64,
    p99: f64,
    ttfb_p50: f64,
    ttfb_p99: f64,
}

impl Samples {
    fn summary(&mut self) -> Summary {
        self.ttfb.sort_unstable();
        self.total.sort_unstable();
        Summary {
            p50: percentile(&self.total, 0.5),
            p99: percentile(&self.total, 0.99),
            ttfb_p50: percentile(&self.ttfb, 0.5),
            ttfb_p99: percentile(&self.ttfb, 0.99),
        }
    }
}

/// One row of the fixed-rate table: a path against direct calls at the same rate.
fn print_row(label: &str, rate: u32, d: &Summary, v: &Summary, errors: (u64, u64)) {
    let pair = |a: f64, b: f64| format!("{a:.3} / {b:.3}");
    let totals = [pair(d.p50, d.p99), pair(v.p50, v.p99), pair(v.p50 - d.p50, v.p99 - d.p99)];
    let ttfbs = [
        pair(d.ttfb_p50, d.ttfb_p99),
        pair(v.ttfb_p50, v.ttfb_p99),
        pair(v.ttfb_p50 - d.ttfb_p50, v.ttfb_p99 - d.ttfb_p99),
    ];
    println!(
        "| {label} | {rate} | {} | {} | {} / {} |",
        totals.join(" | "),
        ttfbs.join(" | "),
        errors.0,
        errors.1
    );
}

/// One call: (time to first body byte, total) in microseconds.
async fn call(client: &reqwest::Client, url: &str, body: &bytes::Bytes) -> Option<(u64, u64)> {
    let started = Instant::now();
    let mut response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let mut ttfb = None;
    while let Some(chunk) = response.chunk().await.ok()? {
        if ttfb.is_none() && !chunk.is_empty() {
            ttfb = Some(started.elapsed().as_micros() as u64);
        }
    }
    let total = started.elapsed().as_micros() as u64;
    Some((ttfb.unwrap_or(total), total))
}

/// Open loop: `rate` calls a second for `secs`, whatever the latency.
async fn fixed_rate(
    client: &reqwest::Client,
    url: &str,
    body: &bytes::Bytes,
    rate: u32,
    secs: u64,
) -> Samples {
    let samples = Arc::new(parking_lot::Mutex::new(Samples::default()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent: u64 = 0;
    let total = u64::from(rate) * secs;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while sent < total {
        tick.tick().await;
        // Calls due by now, spread evenly over the run.
        let due = ((started.elapsed().as_secs_f64() * f64::from(rate)) as u64).min(total);
        while sent < due {
            sent += 1;
            let client = client.clone();
            let url = url.to_owned();
            let body = body.clone();
            let samples = samples.clone();
            tasks.spawn(async move {
                let res = call(&client, &url, &body).await;
                let mut samples = samples.lock();
                match res {
                    Some((ttfb, total)) => {
                        samples.ttfb.push(ttfb);
                        samples.total.push(total);
                    }
                    None => samples.errors += 1,
                }
            });
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut res = std::mem::take(&mut *samples.lock());
    res.n_sent = sent;
    res
}

/// Closed loop: `concurrency` callers back to back for `secs`; returns calls a second.
async fn max_throughput(
    client: &reqwest::Client,
    url: &str,
    body: &bytes::Bytes,
    concurrency: usize,
    secs: u64,
) -> (f64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_owned();
        let body = body.clone();
        tasks.spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                match call(&client, &url, &body).await {
                    Some(_) => ok += 1,
                    None => failed += 1,
                }
            }
            (ok, failed)
        });
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(Ok((o, f))) = tasks.join_next().await {
        ok += o;
        failed += f;
    }
    (ok as f64 / secs as f64, ok, failed)
}

/// Direct, Loupe's gateway and LiteLLM on the same upstream at LiteLLM's pace, then LiteLLM's
/// maximum throughput; returns the calls made through Loupe's gateway.
async fn compare_litellm(
    client: &reqwest::Client,
    args: &Args,
    litellm: &str,
    gateway_url: &str,
    upstream: &str,
    body: &bytes::Bytes,
) -> u64 {
    let rate = args.litellm_rate;
    let litellm_url = format!("{litellm}/v1/chat/completions");
    fixed_rate(client, &litellm_url, body, 10, 1).await;
    let mut direct =
        fixed_rate(client, &format!("{upstream}/v1/chat/completions"), body, rate, args.secs).await;
    let mut loupe = fixed_rate(client, gateway_url, body, rate, args.secs).await;
    let mut other = fixed_rate(client, &litellm_url, body, rate, args.secs).await;
    let (d, g, l) = (direct.summary(), loupe.summary(), other.summary());
    println!();
    println!("| proxy at {rate} req/s | p50 / p99 (ms) | added p50 / p99 (ms) | errors |");
    println!("|---|---|---|---|");
    println!("| direct | {:.3} / {:.3} | | {} |", d.p50, d.p99, direct.errors);
    for (label, v, errors) in
        [("Loupe gateway", &g, loupe.errors), ("LiteLLM proxy", &l, other.errors)]
    {
        println!(
            "| {label} | {:.3} / {:.3} | {:.3} / {:.3} | {errors} |",
            v.p50,
            v.p99,
            v.p50 - d.p50,
            v.p99 - d.p99
        );
    }
    let ratio = (l.p50 - d.p50) / (g.p50 - d.p50).max(0.001);
    println!("LiteLLM adds {ratio:.0}x the p50 latency Loupe's gateway adds");
    let (per_sec, ok, failed) =
        max_throughput(client, &litellm_url, body, args.concurrency, args.secs).await;
    println!(
        "max throughput litellm: {per_sec:.0} req/s ({ok} ok, {failed} failed, {} callers)",
        args.concurrency
    );
    loupe.n_sent
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut child = None;
    let (gateway, pid) = match &args.gateway {
        Some(url) => (url.trim_end_matches('/').to_owned(), args.gateway_pid),
        None => {
            let data_dir = tempfile::tempdir()?;
            let (process, url) = spawn_self(
                "serve",
                &[
                    "--upstream".as_ref(),
                    args.upstream.as_ref(),
                    "--data-dir".as_ref(),
                    data_dir.path().as_os_str(),
                ],
            )?;
            let pid = process.id();
            child = Some((process, data_dir));
            (url, Some(pid))
        }
    };
    let mut baselines = args.baselines.clone();
    let mut forwarder = None;
    if args.forwarder {
        let (process, url) =
            spawn_self("forward", &["--upstream".as_ref(), args.upstream.as_ref()])?;
        forwarder = Some(process);
        baselines.insert(0, ("bare forwarder (axum + reqwest)".to_owned(), url));
    }
    let mut hyper_forwarder = None;
    if args.hyper_forwarder {
        let (process, url) = spawn_self(
            "forward",
            &["--upstream".as_ref(), args.upstream.as_ref(), "--hyper".as_ref()],
        )?;
        hyper_forwarder = Some(process);
        baselines.insert(0, ("bare forwarder (hyper only)".to_owned(), url));
    }
    let fixtures = std::path::Path::new(&args.fixtures);
    let plain = bytes::Bytes::from(std::fs::read(fixtures.join("request.json"))?);
    let streamed_text = std::fs::read_to_string(fixtures.join("request_stream.json"))?;
    let streamed = bytes::Bytes::from(streamed_text.clone());
    let streamed_via_route = bytes::Bytes::from(streamed_text.replacen(
        "\"model\":\"mock-gpt-stream\"",
        "\"model\":\"mockstream/mock-gpt-stream\"",
        1,
    ));
    // The load generator gets one thread; the gateway and nginx share the rest of the machine.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let res = runtime.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(4096).tcp_nodelay(true).build()?;
        let upstream = args.upstream.trim_end_matches('/');
        let scenarios = [
            ("chat", format!("{upstream}/v1/chat/completions"), plain.clone(), plain.clone()),
            (
                "chat stream",
                format!("{upstream}/stream/v1/chat/completions"),
                streamed.clone(),
                streamed_via_route.clone(),
            ),
        ];
        let gateway_url = format!("{gateway}/v1/chat/completions");
        let recorded_before = metric(&client, &gateway, "loupe_gateway_recorded_spans_total").await;
        let mut n_gateway_calls = 0u64;
        println!("| scenario | rate (req/s) | direct p50 / p99 (ms) | gateway p50 / p99 (ms) | added p50 / p99 (ms) | direct TTFB p50 / p99 | gateway TTFB p50 / p99 | added TTFB p50 / p99 | errors |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for (name, direct_url, direct_body, gateway_body) in &scenarios {
            // Warm up connections on both paths.
            fixed_rate(&client, direct_url, direct_body, 500, 1).await;
            n_gateway_calls += fixed_rate(&client, &gateway_url, gateway_body, 500, 1).await.n_sent;
            for &rate in &args.rates {
                let mut direct = fixed_rate(&client, direct_url, direct_body, rate, args.secs).await;
                let mut via = fixed_rate(&client, &gateway_url, gateway_body, rate, args.secs).await;
                n_gateway_calls += via.n_sent;
                let (d, g) = (direct.summary(), via.summary());
                print_row(name, rate, &d, &g, (direct.errors, via.errors));
                // The same calls through each pass-through proxy: the floor of an extra hop.
                for (baseline, base) in &baselines {
                    let url = direct_url.replacen(upstream, base, 1);
                    let mut other = fixed_rate(&client, &url, direct_body, rate, args.secs).await;
                    let label = format!("{name}, {baseline}");
                    print_row(&label, rate, &d, &other.summary(), (direct.errors, other.errors));
                }
            }
        }
        println!();
        let mut throughput_targets = vec![
            ("direct".to_owned(), format!("{upstream}/v1/chat/completions"), plain.clone()),
            ("gateway".to_owned(), gateway_url.clone(), plain.clone()),
        ];
        for (baseline, base) in &baselines {
            throughput_targets.push((baseline.clone(), format!("{base}/v1/chat/completions"), plain.clone()));
        }
        for (label, url, body) in throughput_targets {
            let (per_sec, ok, failed) = max_throughput(&client, &url, &body, args.concurrency, args.secs).await;
            if label == "gateway" {
                n_gateway_calls += ok + failed;
            }
            println!("max throughput {label}: {per_sec:.0} req/s ({ok} ok, {failed} failed, {} callers)", args.concurrency);
        }
        if let Some(litellm) = &args.litellm {
            n_gateway_calls += compare_litellm(&client, &args, litellm, &gateway_url, upstream, &plain).await;
        }
        // Every call must be recorded: wait for the queue to drain.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut recorded = 0.0;
        while Instant::now() < deadline {
            recorded = metric(&client, &gateway, "loupe_gateway_recorded_spans_total").await - recorded_before;
            if recorded >= n_gateway_calls as f64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The gateway's own view: time it added inside the process (total minus upstream), so
        // the rest of the added latency is the extra hop's sockets and scheduling.
        let overhead_sum = metric(&client, &gateway, "loupe_gateway_overhead_seconds_sum").await;
        let overhead_count = metric(&client, &gateway, "loupe_gateway_overhead_seconds_count").await;
        if overhead_count > 0.0 {
            println!(
                "in-process overhead: mean {:.3} ms over {overhead_count} calls",
                overhead_sum / overhead_count * 1000.0
            );
        }
        let dropped = metric(&client, &gateway, "loupe_gateway_dropped_spans_total").await;
        let spilled = metric(&client, &gateway, "loupe_gateway_spilled_spans_total").await;
        println!(
            "recordings: {n_gateway_calls} calls through the gateway, {recorded} spans recorded, {spilled} spilled, {dropped} dropped"
        );
        if let Some(pid) = pid {
            let (rss, peak) = rss_kib(pid);
            println!("gateway memory: RSS {} MiB, peak {} MiB", rss / 1024, peak / 1024);
        }
        anyhow::Ok(())
    });
    for mut process in forwarder.into_iter().chain(hyper_forwarder) {
        let _ = process.kill();
        let _ = process.wait();
    }
    if let Some((mut process, _data_dir)) = child {
        let _ = process.kill();
        let _ = process.wait();
    }
    res
}
