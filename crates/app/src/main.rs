//! The `loupe` binary: the command line (clap), logging, and dispatch to the commands. `serve`
//! runs the server; `traces`, `trace` query a running server over HTTP; `keys`, `reindex` and
//! `pricing` work on the data dir directly; `eval` runs eval suites against a chat endpoint.

mod client;
mod config;
mod erase;
mod evals;
mod feedback;
mod keys;
mod metrics;
mod pricing;
mod reindex;
mod retention;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// jemalloc instead of the system allocator: ingest allocates and frees many short-lived
/// buffers of every size across threads, where glibc's malloc spends a tenth of the server's
/// time (consolidating freed chunks); jemalloc takes 6–10% more spans per CPU-second
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const ABOUT: &str = "Loupe: see what your LLM application did.

Send OpenTelemetry traces (OTLP over HTTP or gRPC, any GenAI convention) to `loupe serve`;
every model call becomes a span in a trace tree with its inputs, outputs, timing, tokens and
cost. Read them back with the API, the console, or `loupe traces` / `loupe trace`.";

const AFTER_HELP: &str = "Examples:
  loupe serve                                   start on 127.0.0.1:4318 (HTTP) and :4317 (gRPC)
  loupe serve --data-dir /var/lib/loupe         keep data elsewhere (or LOUPE_DATA_DIR)
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python app.py
                                                point any OpenTelemetry SDK at it
  loupe traces --filter 'type = llm and status = error' --limit 20
  loupe trace 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f   one trace as a tree
  loupe keys create --project billing           make an API key for a project
  loupe eval run suite.eval.yaml --model gpt-4o-mini --record
                                                replay an eval suite, record the run

Configuration: ./loupe.toml (or --config FILE), overridden by LOUPE_* environment variables;
see docs/configuration.md.";

#[derive(Debug, Parser)]
#[command(name = "loupe", version, about = ABOUT, after_help = AFTER_HELP)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, env = "LOUPE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `loupe=debug,ingest=trace`.
    #[arg(long, global = true, env = "LOUPE_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: OTLP receivers, the API, /metrics and the console.
    #[command(after_help = "Examples:
  loupe serve                              zero config: SQLite in ./loupe-data, loopback only
  loupe serve --http-addr 127.0.0.1:0      pick free ports (printed on stdout)
  loupe serve --config /etc/loupe.toml
  LOUPE_SERVER__HTTP_ADDR=0.0.0.0:4318 loupe serve   needs API keys, or --insecure

On start it prints one line per listener, e.g.
  listening on http://127.0.0.1:4318 (OTLP/HTTP, API, console, /metrics)
  listening on http://127.0.0.1:4317 (OTLP/gRPC)
SIGTERM or Ctrl-C stops accepting requests and flushes every acknowledged span to disk.")]
    Serve(ServeArgs),
    /// List recent traces of a running server, newest first.
    #[command(after_help = "Examples:
  loupe traces
  loupe traces --filter 'model ~ \"gpt-4o*\" and duration > 2s' --limit 100
  loupe traces --from 1h --url http://loupe.internal:4318 --api-key $LOUPE_API_KEY

The filter syntax is documented in docs/query.md.")]
    Traces(TracesArgs),
    /// Show one trace of a running server as a tree: durations, models, tokens, status.
    #[command(after_help = "Example:
  loupe trace 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f
  loupe trace 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f --json    the API's JSON as is")]
    Trace(TraceArgs),
    /// Create, list and revoke API keys (stored hashed in the data dir).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Rebuild every stored span's normalized view from its raw span, through the pipeline's
    /// normalization and processors. Safe to run while the server runs.
    Reindex(DataArgs),
    /// Tiered retention and downsampling: `loupe retention run [--dry-run] [--project P]`.
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Rate, score, correct and tag recorded calls.
    #[command(subcommand)]
    Feedback(feedback::FeedbackCommand),
    /// Datasets built from recorded calls: create, list, export, import.
    #[command(subcommand)]
    Dataset(feedback::DatasetCommand),
    /// Write a trace's LLM calls as an eval suite, `trace-<first 8 hex>.eval.yaml`.
    ExportTrace(feedback::ExportTraceArgs),
    /// Run eval suites against an OpenAI-compatible endpoint (CI gate with a baseline), and
    /// list, show and compare the runs a server recorded.
    #[command(subcommand)]
    Eval(evals::EvalCommand),
    /// The price table, models without a price, and re-pricing stored spans.
    #[command(subcommand)]
    Pricing(pricing::PricingCommand),
    /// Erase every recorded content of one user on a running server (their data keys are
    /// destroyed), or show the audit log of erasures.
    #[command(after_help = erase::AFTER_HELP)]
    Erase(erase::EraseArgs),
}

#[derive(Debug, Args)]
struct DataArgs {
    /// Config file (default: ./loupe.toml when it exists).
    #[arg(long, env = "LOUPE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` in the config file).
    #[arg(long, env = "LOUPE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Store URL: `sqlite` (default, in the data dir) or `clickhouse://host:8123/database`
    /// (overrides `store.url`).
    #[arg(long, env = "LOUPE_STORE")]
    store: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// HTTP listen address (overrides `server.http_addr`).
    #[arg(long)]
    http_addr: Option<String>,
    /// gRPC listen address (overrides `server.grpc_addr`).
    #[arg(long)]
    grpc_addr: Option<String>,
    /// Allow listening on a non-loopback address without requiring API keys.
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// The server's HTTP address.
    #[arg(long, env = "LOUPE_URL", default_value = "http://127.0.0.1:4318")]
    url: String,
    /// API key (sent as `Authorization: Bearer`).
    #[arg(long, env = "LOUPE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

#[derive(Debug, Args)]
struct TracesArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Filter in the query syntax, e.g. `type = llm and status = error`.
    #[arg(long, short)]
    filter: Option<String>,
    /// Traces to show.
    #[arg(long, short = 'n', default_value_t = 20)]
    limit: u32,
    /// Only traces started after this time (RFC 3339, unix nanoseconds, or `1h` for relative).
    #[arg(long)]
    from: Option<String>,
    /// Only traces started before this time.
    #[arg(long)]
    to: Option<String>,
}

#[derive(Debug, Args)]
struct TraceArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The trace id (32 hex characters).
    trace_id: String,
    /// Print the API's JSON instead of the tree.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key for a project; the key is printed once and only its hash is stored.
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// The project the key writes to and reads from.
        #[arg(long)]
        project: String,
        /// A name to recognize the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List a project's keys (id, name, prefix; never the key).
    List {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        project: String,
    },
    /// Revoke a key by its id (servers stop accepting it within 10 seconds).
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        project: String,
        /// The key id, as `loupe keys list` shows it.
        id: String,
    },
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let res = runtime.block_on(async {
        let done = |res: anyhow::Result<()>| res.map(|()| ExitCode::SUCCESS);
        match cli.command {
            Command::Serve(args) => done(serve::run(args).await),
            Command::Traces(args) => done(client::traces(args).await),
            Command::Trace(args) => done(client::trace(args).await),
            Command::Keys(command) => done(keys::run(command).await),
            Command::Reindex(args) => done(reindex::run(args).await),
            Command::Retention(command) => done(retention::run(command).await),
            Command::Feedback(command) => done(feedback::feedback(command).await),
            Command::Dataset(command) => done(feedback::dataset(command).await),
            Command::ExportTrace(args) => done(feedback::export_trace(args).await),
            Command::Eval(command) => evals::run(command).await,
            Command::Pricing(command) => done(pricing::run(command).await),
            Command::Erase(args) => done(erase::run(args).await),
        }
    });
    match res {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The process environment, for `LOUPE_*` config overrides.
fn env_vars() -> Vec<(String, String)> {
    std::env::vars().collect()
}

/// Loads the config file and environment overrides, then the `--data-dir` flag.
fn load_raw_config(data: &DataArgs) -> anyhow::Result<config::RawConfig> {
    let mut raw = config::load(data.config.as_deref(), &env_vars())?;
    if let Some(data_dir) = &data.data_dir {
        raw.data_dir = Some(data_dir.clone());
    }
    if let Some(store) = &data.store {
        raw.store.url = Some(store.clone());
    }
    Ok(raw)
}

/// Loads and validates the config for commands that open the data dir.
fn load_config(data: &DataArgs) -> anyhow::Result<config::Config> {
    config::Config::from_raw(load_raw_config(data)?)
}
