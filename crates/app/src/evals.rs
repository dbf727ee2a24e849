//! `loupe eval`: run an eval suite against an OpenAI-compatible chat endpoint (`run`), and read
//! the runs a server recorded (`list`, `show`, `compare`).
//!
//! `run` replays every case of the suite (a few at a time), evaluates its assertions with
//! `datasets::eval_run`, writes the results JSON and JUnit XML when asked, compares with a
//! baseline results file when given one, and records the run on a Loupe server with
//! `--record`. Exit codes follow promptfoo: 0 when every case passes (and the baseline gate
//! holds), 100 when a case fails or the gate does, 1 for configuration or runtime errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use datasets::eval_run::{
    self, CallOutcome, CaseResult, Comparison, Gate, PreparedCase, PromptConfig, RunMetadata,
    RunResults, RunStats,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

/// Exit code for failed cases or a failed baseline gate (as promptfoo).
const EXIT_FAILED: u8 = 100;
/// Attempts per call on a retryable answer (429, 5xx) or a connection error.
const CALL_ATTEMPTS: u32 = 3;
/// The longest `retry-after` honoured between attempts.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

pub(crate) const RUN_AFTER_HELP: &str = "Examples:
  loupe eval run refunds.eval.yaml --model gpt-4o-mini
  loupe eval run trace-48f9c3e1.eval.yaml --base-url http://127.0.0.1:4318/v1 \\
      --model gpt-4o --output results.json --junit junit.xml
  loupe eval run suite.yaml --template prompt.txt --system 'Answer in {{lang}}.' \\
      --baseline main-results.json --max-drop 0.02
  loupe eval run suite.yaml --record --server http://loupe.internal:4318

Each case sends the system message (--system, else the case's `system` variable) and the user
message (--template with {{var}} placeholders filled from the case's variables, else its
`input` variable). A case passes when the call succeeds and every assertion passes.
Assertions: contains, icontains, not_contains, equals, matches_regex (regex), max_length,
is_json, starts-with; any type negated with a not- prefix.

Exit codes: 0 all cases pass; 100 a case fails, or with --baseline a case that passed there
fails now or the pass rate dropped more than --max-drop; 1 configuration or runtime error.
See docs/evals.md.";

#[derive(Debug, Subcommand)]
pub(crate) enum EvalCommand {
    /// Run an eval suite against an OpenAI-compatible chat endpoint.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(Box<RunArgs>),
    /// List the eval runs a server recorded, newest first.
    #[command(after_help = "Example:
  loupe eval list --server http://127.0.0.1:4318 --limit 10")]
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: u32,
    },
    /// Show one recorded run: its stats and each case's outcome.
    #[command(after_help = "Example:
  loupe eval show 0190f3c2-7a4e-7d1b-9c55-3e1f0a2b4c6d
  loupe eval show 0190f3c2-7a4e-7d1b-9c55-3e1f0a2b4c6d --json > results.json")]
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        /// Print the results JSON as recorded.
        #[arg(long)]
        json: bool,
    },
    /// Compare two recorded runs case by case, regressions first.
    #[command(after_help = "Example:
  loupe eval compare BASE_ID HEAD_ID")]
    Compare {
        #[command(flatten)]
        server: ServerArgs,
        base: String,
        head: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where a Loupe server is, for recording and reading runs.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// The Loupe server's HTTP address.
    #[arg(long = "server", env = "LOUPE_URL", default_value = "http://127.0.0.1:4318")]
    server: String,
    /// The Loupe API key (sent as `x-loupe-api-key`).
    #[arg(long = "api-key", env = "LOUPE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The eval suite (YAML), e.g. from `loupe dataset export --format eval` or
    /// `loupe export-trace`.
    suite: PathBuf,
    /// The OpenAI-compatible API's base URL (…/v1); a Loupe gateway records every call.
    #[arg(long, env = "OPENAI_BASE_URL", default_value = "https://api.openai.com/v1")]
    base_url: String,
    /// The environment variable holding the endpoint's API key (sent as a bearer token).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    /// The model to call (default: the suite's `metadata.model`).
    #[arg(long)]
    model: Option<String>,
    /// The system message for every case, a template with {{var}} placeholders.
    #[arg(long)]
    system: Option<String>,
    /// A file with the user message template ({{var}} placeholders from the case variables).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Cases in flight at once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
    /// Sampling temperature sent with every call (default: the endpoint's).
    #[arg(long)]
    temperature: Option<f64>,
    /// Seconds to wait for one call.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// A name for the run (default: `<suite> @ <model>`).
    #[arg(long)]
    name: Option<String>,
    /// Write the results JSON here.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// A results JSON of an earlier run to compare with: a case that passed there and fails
    /// now, or a pass-rate drop over --max-drop, fails the run (exit 100).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// The largest pass-rate drop from the baseline allowed, as a fraction.
    #[arg(long, default_value_t = 0.05)]
    max_drop: f64,
    /// Record the run on a Loupe server (POST /api/v1/evals/runs).
    #[arg(long)]
    record: bool,
    #[command(flatten)]
    server: ServerArgs,
}

pub(crate) async fn run(command: EvalCommand) -> anyhow::Result<ExitCode> {
    match command {
        EvalCommand::Run(args) => run_suite(*args).await,
        EvalCommand::List { server, limit } => {
            let body =
                server_get(&server, "/api/v1/evals/runs", &[("limit", limit.to_string())]).await?;
            let list: api::evals::RunList =
                serde_json::from_value(body).context("reading the run list")?;
            print!("{}", render_list(&list));
            Ok(ExitCode::SUCCESS)
        }
        EvalCommand::Show { server, id, json } => {
            let body =
                server_get(&server, &format!("/api/v1/evals/runs/{}", id.trim()), &[]).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                let run: RunResults = serde_json::from_value(body).context("reading the run")?;
                print!("{}", render_run(&run));
            }
            Ok(ExitCode::SUCCESS)
        }
        EvalCommand::Compare { server, base, head, json } => {
            let query = [("base", base.trim().to_owned()), ("head", head.trim().to_owned())];
            let body = server_get(&server, "/api/v1/evals/compare", &query).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                let comparison: Comparison =
                    serde_json::from_value(body).context("reading the comparison")?;
                print!("{}", eval_run::render_comparison(&comparison));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

async fn run_suite(args: RunArgs) -> anyhow::Result<ExitCode> {
    let suite_text = read(&args.suite)?;
    let suite = eval_run::parse_suite(&suite_text)
        .with_context(|| format!("reading the suite {}", args.suite.display()))?;
    let suite_name = if suite.name.trim().is_empty() {
        args.suite.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    } else {
        suite.name.clone()
    };
    let model = match (&args.model, suite.metadata.get("model").and_then(Value::as_str)) {
        (Some(model), _) => model.clone(),
        (None, Some(model)) if !model.is_empty() && model != "unknown" => model.to_owned(),
        _ => bail!("no model: pass --model (the suite's metadata has none)"),
    };
    let template = args.template.as_deref().map(read).transpose()?;
    let prompt = PromptConfig { system: args.system.clone(), template };
    let cases = eval_run::prepare(&suite, &prompt)?;
    let baseline = match &args.baseline {
        Some(path) => Some(
            serde_json::from_str::<RunResults>(&read(path)?)
                .with_context(|| format!("reading the baseline {}", path.display()))?,
        ),
        None => None,
    };
    if !(0.0..=1.0).contains(&args.max_drop) {
        bail!("--max-drop must be between 0 and 1, e.g. 0.05");
    }
    let api_key = std::env::var(&args.api_key_env).ok().filter(|key| !key.is_empty());
    if api_key.is_none() && args.base_url.contains("api.openai.com") {
        bail!(
            "set {} to the API key for {} (or --api-key-env NAME)",
            args.api_key_env,
            args.base_url
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .context("building the HTTP client")?;
    let endpoint = Arc::new(Endpoint {
        http,
        url: format!("{}/chat/completions", args.base_url.trim_end_matches('/')),
        api_key,
        model: model.clone(),
        temperature: args.temperature,
    });

    let started_at = model::time::format_rfc3339_millis(now_ns());
    let clock = Instant::now();
    let progress = ProgressBar::new(cases.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} cases  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let results = run_cases(&endpoint, cases, args.concurrency as usize, &progress).await?;
    progress.finish_and_clear();

    let stats = RunStats::of(&results);
    let commit = ["LOUPE_EVAL_COMMIT", "GITHUB_SHA"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    let run = RunResults {
        id: uuid::Uuid::now_v7().to_string(),
        name: args.name.clone().unwrap_or_else(|| format!("{suite_name} @ {model}")),
        suite: suite_name,
        model,
        base_url: args.base_url.clone(),
        started_at,
        duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        metadata: RunMetadata {
            commit,
            suite_sha256: eval_run::suite_sha256(suite_text.as_bytes()),
        },
        stats,
        cases: results,
    };

    print!("{}", render_run(&run));
    if let Some(path) = &args.output {
        let json = serde_json::to_string_pretty(&run)? + "\n";
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, eval_run::junit_xml(&run))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut gate_failed = false;
    if let Some(baseline) = &baseline {
        let comparison = eval_run::compare(baseline, &run);
        print!("{}", eval_run::render_comparison(&comparison));
        let gate = Gate::of(&comparison, args.max_drop);
        if gate.failed() {
            gate_failed = true;
            println!(
                "baseline gate failed: {} regressed case(s), pass rate dropped {:.1} points (at \
                 most {:.1} allowed)",
                gate.regressions.len(),
                gate.pass_rate_drop * 100.0,
                args.max_drop * 100.0
            );
        } else {
            println!("baseline gate passed");
        }
    }
    if args.record {
        let body = serde_json::to_value(&run)?;
        let answer = server_send(
            &args.server,
            reqwest::Client::new().post(server_url(&args.server, "/api/v1/evals/runs")).json(&body),
        )
        .await
        .context("recording the run")?;
        let id = answer.get("id").and_then(Value::as_str).unwrap_or(&run.id);
        println!("recorded run {id}: {}/evals/runs/{id}", args.server.server.trim_end_matches('/'));
    }
    if gate_failed || run.stats.passed < run.stats.total {
        Ok(ExitCode::from(EXIT_FAILED))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The chat endpoint every case calls.
struct Endpoint {
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    model: String,
    temperature: Option<f64>,
}

/// Runs the cases, at most `concurrency` at once; results in the suite's order.
async fn run_cases(
    endpoint: &Arc<Endpoint>,
    cases: Vec<PreparedCase>,
    concurrency: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<CaseResult>> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let n_cases = cases.len();
    for (i, case) in cases.into_iter().enumerate() {
        let (endpoint, semaphore) = (endpoint.clone(), semaphore.clone());
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = semaphore.acquire_owned().await;
            let outcome = endpoint.call(&case).await;
            (i, eval_run::case_result(&case, outcome))
        });
    }
    let mut results: Vec<Option<CaseResult>> = vec![None; n_cases];
    let (mut n_passed, mut n_done) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.context("a case's task failed")?;
        n_done += 1;
        if result.passed {
            n_passed += 1;
        }
        progress.inc(1);
        progress.set_message(format!("{n_passed}/{n_done} passed"));
        results[i] = Some(result);
    }
    Ok(results.into_iter().flatten().collect())
}

impl Endpoint {
    /// One case's call, retried on 429, 5xx and connection errors.
    async fn call(&self, case: &PreparedCase) -> CallOutcome {
        let mut messages = Vec::new();
        if let Some(system) = &case.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": case.input}));
        let mut body = json!({"model": self.model, "messages": messages});
        if let Some(temperature) = self.temperature {
            body["temperature"] = json!(temperature);
        }
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let (outcome, retry_after) = self.attempt(&body).await;
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match retry_after {
                Some(wait) if attempt < CALL_ATTEMPTS => {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => {
                    let (output, tokens) = match outcome {
                        Ok((output, tokens)) => (Ok(output), tokens),
                        Err(error) => (Err(error), 0),
                    };
                    return CallOutcome { output, latency_ms, tokens };
                }
            }
        }
    }

    /// One attempt: the output and total tokens, or the error and, when worth retrying, how
    /// long to wait first.
    async fn attempt(&self, body: &Value) -> (Result<(String, u64), String>, Option<Duration>) {
        let mut request = self.http.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let retry = (!error.is_timeout()).then_some(Duration::from_secs(1));
                return (
                    Err(format!("calling {}: {}", self.url, model::error_chain(&error))),
                    retry,
                );
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(1), |s| Duration::from_secs(s).min(MAX_RETRY_WAIT));
        let text = match response.text().await {
            Ok(text) => text,
            Err(error) => return (Err(format!("reading the answer: {error}")), None),
        };
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let message = parsed
                .as_ref()
                .and_then(|v| v.pointer("/error/message").and_then(Value::as_str))
                .map(str::to_owned)
                .unwrap_or_else(|| text.chars().take(300).collect());
            let retry = (status.as_u16() == 429 || status.is_server_error()).then_some(retry_after);
            return (Err(format!("HTTP {}: {message}", status.as_u16())), retry);
        }
        let Some(answer) = parsed else {
            return (Err("the answer is not JSON".to_owned()), None);
        };
        let message = answer.pointer("/choices/0/message");
        let output = match message.and_then(|m| m.get("content")) {
            Some(Value::String(text)) => text.clone(),
            // Content given as parts: their text joined.
            Some(Value::Array(parts)) => {
                parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()
            }
            _ => match message.and_then(|m| m.get("tool_calls")) {
                Some(calls) => calls.to_string(),
                None if message.is_some() => String::new(),
                None => return (Err("the answer has no choices[0].message".to_owned()), None),
            },
        };
        let usage = answer.get("usage");
        let tokens = usage
            .and_then(|u| u.get("total_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| {
                ["prompt_tokens", "completion_tokens"]
                    .iter()
                    .filter_map(|k| usage.and_then(|u| u.get(*k)).and_then(Value::as_u64))
                    .sum()
            });
        (Ok((output, tokens)), None)
    }
}

/// The run for people: one line per case that did not pass, then the totals.
fn render_run(run: &RunResults) -> String {
    let mut res = String::new();
    for case in &run.cases {
        if case.passed {
            continue;
        }
        if let Some(error) = &case.error {
            res.push_str(&format!("ERROR {}  {error}\n", case.id));
            continue;
        }
        res.push_str(&format!("FAIL  {}\n", case.id));
        for assertion in case.assertions.iter().filter(|a| !a.passed) {
            res.push_str(&format!(
                "        {}: {}\n",
                assertion.kind,
                assertion.reason.as_deref().unwrap_or("failed")
            ));
        }
    }
    let s = &run.stats;
    res.push_str(&format!(
        "{}: {}/{} passed ({}), {} failed, {} errors; avg latency {} ms, {} tokens; model {}\n",
        run.name,
        s.passed,
        s.total,
        eval_run::percent(s.pass_rate),
        s.failed,
        s.errors,
        s.avg_latency_ms,
        s.total_tokens,
        run.model,
    ));
    res
}

fn render_list(list: &api::evals::RunList) -> String {
    let mut rows = vec![[
        "RECORDED (UTC)".to_owned(),
        "ID".to_owned(),
        "NAME".to_owned(),
        "MODEL".to_owned(),
        "CASES".to_owned(),
        "PASS RATE".to_owned(),
        "AVG LATENCY".to_owned(),
        "TOKENS".to_owned(),
    ]];
    for run in &list.runs {
        let s = &run.summary.stats;
        rows.push([
            run.recorded_at.get(..19).unwrap_or(&run.recorded_at).replace('T', " "),
            run.summary.id.clone(),
            run.summary.name.clone(),
            run.summary.model.clone(),
            s.total.to_string(),
            eval_run::percent(s.pass_rate),
            format!("{} ms", s.avg_latency_ms),
            s.total_tokens.to_string(),
        ]);
    }
    let mut res = crate::client::render_columns(&rows);
    if list.runs.is_empty() {
        res.push_str("(no eval runs recorded)\n");
    }
    res
}

fn server_url(server: &ServerArgs, path: &str) -> String {
    format!("{}{path}", server.server.trim_end_matches('/'))
}

async fn server_get(
    server: &ServerArgs,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Value> {
    let request = reqwest::Client::new().get(server_url(server, path)).query(query);
    server_send(server, request).await
}

/// Sends a request to the Loupe server and returns the JSON body, or the API's error message.
async fn server_send(
    server: &ServerArgs,
    request: reqwest::RequestBuilder,
) -> anyhow::Result<Value> {
    let text = crate::client::send(&server.server, server.api_key.as_deref(), request).await?;
    serde_json::from_str(&text).context("reading the response")
}
