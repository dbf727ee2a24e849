//! `loupe feedback`, `loupe dataset` and `loupe export-trace`: feedback, datasets and eval
//! suites over a running server's HTTP API.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::ClientArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum FeedbackCommand {
    /// Rate, score, correct or tag a recorded call (span id) or a whole trace (trace id).
    #[command(after_help = "Examples:
  loupe feedback add 48f0000000000006 --rating down --score helpfulness=0.2 \\
      --correction-file better.md --tag refund
  loupe feedback add 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f --rating 2 --comment 'cites a draft policy'

A span id has 16 hex characters, a trace id 32. --correction-file holds the improved answer as
text, or as a JSON list of messages ({\"role\": \"assistant\", \"parts\": [...]}).")]
    Add(FeedbackAddArgs),
    /// Show the feedback on a span or a trace.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// A span id (16 hex) or trace id (32 hex).
        target: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct FeedbackAddArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// A span id (16 hex characters) or trace id (32 hex characters).
    target: String,
    /// `up`, `down`, or 1 to 5.
    #[arg(long)]
    rating: Option<String>,
    /// A named score, `NAME=VALUE` (repeatable); the score must be defined in a score config.
    #[arg(long = "score")]
    scores: Vec<String>,
    /// The improved output, as text.
    #[arg(long, conflicts_with = "correction_file")]
    correction: Option<String>,
    /// A file with the improved output (text, or a JSON list of messages).
    #[arg(long)]
    correction_file: Option<PathBuf>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long)]
    comment: Option<String>,
    /// Who gives the feedback.
    #[arg(long, env = "USER")]
    author: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DatasetCommand {
    /// Create a dataset from the calls matching a query (and/or listed span ids).
    #[command(after_help = "Examples:
  loupe dataset create refunds --from 'operation = refund_chat and has correction'
  loupe dataset create regressions --span 48f0000000000006 --span 48f0000000000002")]
    Create {
        #[command(flatten)]
        client: ClientArgs,
        name: String,
        /// A filter in the query syntax (docs/query.md).
        #[arg(long = "from")]
        query: Option<String>,
        /// A span id to add (repeatable).
        #[arg(long = "span")]
        span_ids: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Keep calls with the same input as separate items.
        #[arg(long)]
        no_merge: bool,
    },
    /// List datasets, or show one dataset's versions.
    List {
        #[command(flatten)]
        client: ClientArgs,
        name: Option<String>,
    },
    /// Export a dataset version: openai, preference, anthropic, hf, csv or eval.
    #[command(after_help = "Examples:
  loupe dataset export refunds --format openai --output refunds.jsonl
  loupe dataset export refunds --format eval --version 2 > refunds.eval.yaml")]
    Export {
        #[command(flatten)]
        client: ClientArgs,
        name: String,
        #[arg(long, default_value = "openai")]
        format: String,
        /// The version (default: the latest).
        #[arg(long)]
        version: Option<u32>,
        /// The file to write (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Import a JSONL or CSV file as a new version of a dataset.
    Import {
        #[command(flatten)]
        client: ClientArgs,
        name: String,
        file: PathBuf,
        /// `jsonl` or `csv` (default: from the file name).
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ExportTraceArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The trace id (32 hex characters).
    trace_id: String,
    /// The directory to write `trace-<first 8 hex>.eval.yaml` to (created if missing).
    #[arg(long, short, default_value = ".")]
    output: PathBuf,
}

fn url(args: &ClientArgs, path: &str) -> String {
    format!("{}{path}", args.url.trim_end_matches('/'))
}

/// Sends a request and returns the body, or the API's error message.
async fn send(args: &ClientArgs, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let text = crate::client::send(&args.url, args.api_key.as_deref(), request).await?;
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).context("reading the response")
}

fn target_field(target: &str) -> anyhow::Result<(&'static str, String)> {
    let target = target.trim().to_ascii_lowercase();
    match target.len() {
        16 => Ok(("span_id", target)),
        32 => Ok(("trace_id", target)),
        _ => bail!("{target:?} is neither a span id (16 hex characters) nor a trace id (32)"),
    }
}

pub(crate) async fn feedback(command: FeedbackCommand) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    match command {
        FeedbackCommand::Add(args) => {
            let (field, id) = target_field(&args.target)?;
            let mut body = serde_json::Map::new();
            body.insert(field.to_owned(), Value::String(id));
            body.insert("source".to_owned(), Value::from("human"));
            if let Some(rating) = &args.rating {
                let rating = datasets::parse_rating(rating)?;
                body.insert("rating".to_owned(), serde_json::to_value(rating)?);
            }
            if !args.scores.is_empty() {
                let mut scores = serde_json::Map::new();
                for arg in &args.scores {
                    let (name, value) = datasets::parse_score_arg(arg)?;
                    scores.insert(name, serde_json::to_value(value)?);
                }
                body.insert("scores".to_owned(), Value::Object(scores));
            }
            let correction = match (&args.correction, &args.correction_file) {
                (Some(text), _) => Some(Value::String(text.clone())),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    match serde_json::from_str::<Value>(&text) {
                        Ok(messages @ Value::Array(_)) => Some(messages),
                        _ => Some(Value::String(text.trim_end().to_owned())),
                    }
                }
                (None, None) => None,
            };
            if let Some(correction) = correction {
                body.insert("correction".to_owned(), correction);
            }
            if !args.tags.is_empty() {
                body.insert("tags".to_owned(), json!(args.tags));
            }
            if let Some(comment) = &args.comment {
                body.insert("comment".to_owned(), Value::from(comment.clone()));
            }
            if let Some(author) = &args.author {
                body.insert("author".to_owned(), Value::from(author.clone()));
            }
            let request = http.post(url(&args.client, "/api/v1/feedback")).json(&body);
            let res = send(&args.client, request).await?;
            for entry in res["feedback"].as_array().into_iter().flatten() {
                println!(
                    "{} {} ({})",
                    entry["id"].as_str().unwrap_or(""),
                    entry["status"].as_str().unwrap_or(""),
                    args.target.trim()
                );
            }
        }
        FeedbackCommand::List { client: args, target } => {
            let (field, id) = target_field(&target)?;
            let path = match field {
                "span_id" => format!("/api/v1/spans/{id}/feedback"),
                _ => format!("/api/v1/traces/{id}/feedback"),
            };
            let res = send(&args, http.get(url(&args, &path))).await?;
            println!("{}", serde_json::to_string_pretty(&res)?);
        }
    }
    Ok(())
}

pub(crate) async fn dataset(command: DatasetCommand) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    match command {
        DatasetCommand::Create { client: args, name, query, span_ids, description, no_merge } => {
            let body = json!({
                "name": name,
                "description": description,
                "q": query,
                "span_ids": span_ids,
                "merge_duplicates": !no_merge,
            });
            let res = send(&args, http.post(url(&args, "/api/v1/datasets")).json(&body)).await?;
            let version = &res["version"];
            println!(
                "created dataset {name} version {} with {} items ({} calls merged, {} without \
                 recorded content skipped)",
                version["version"], version["n_items"], res["n_merged"], res["n_skipped"]
            );
        }
        DatasetCommand::List { client: args, name } => {
            let path = match &name {
                Some(name) => format!("/api/v1/datasets/{name}"),
                None => "/api/v1/datasets".to_owned(),
            };
            let res = send(&args, http.get(url(&args, &path))).await?;
            println!("{}", serde_json::to_string_pretty(&res)?);
        }
        DatasetCommand::Export { client: args, name, format, version, output } => {
            let mut query = vec![("format", format)];
            if let Some(version) = version {
                query.push(("version", version.to_string()));
            }
            let mut request =
                http.get(url(&args, &format!("/api/v1/datasets/{name}/export"))).query(&query);
            if let Some(key) = &args.api_key {
                request = request.bearer_auth(key);
            }
            // Streamed to the output as it arrives, so not through `send`.
            let mut response =
                request.send().await.with_context(|| format!("connecting to {}", args.url))?;
            if !response.status().is_success() {
                let text = response.text().await.unwrap_or_default();
                let message = serde_json::from_str::<api::dto::ErrorBody>(&text)
                    .map(|body| body.error.message)
                    .unwrap_or(text);
                bail!("{message}");
            }
            let mut writer: Box<dyn std::io::Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            while let Some(chunk) = response.chunk().await.context("reading the export")? {
                writer.write_all(&chunk).context("writing the export")?;
            }
            writer.flush().context("writing the export")?;
            if let Some(path) = output {
                eprintln!("exported {name} to {}", path.display());
            }
        }
        DatasetCommand::Import { client: args, name, file, format } => {
            let format = format.unwrap_or_else(|| {
                if file.extension().is_some_and(|ext| ext == "csv") { "csv" } else { "jsonl" }
                    .to_owned()
            });
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let request = http
                .post(url(&args, &format!("/api/v1/datasets/{name}/import")))
                .query(&[("format", format)])
                .body(body);
            let res = send(&args, request).await?;
            println!(
                "imported {} records into {name} version {} ({} rejected)",
                res["n_imported"], res["version"]["version"], res["n_rejected"]
            );
            for rejected in res["rejected"].as_array().into_iter().flatten() {
                eprintln!(
                    "record {}: {}",
                    rejected["record"],
                    rejected["reason"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

pub(crate) async fn export_trace(args: ExportTraceArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let trace_id = args.trace_id.trim().to_ascii_lowercase();
    let path = format!("/api/v1/traces/{trace_id}/eval-suite");
    let res = send(&args.client, http.get(url(&args.client, &path))).await?;
    for warning in res["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", warning.as_str().unwrap_or(""));
    }
    let (Some(file_name), Some(yaml)) = (res["file_name"].as_str(), res["yaml"].as_str()) else {
        bail!("the server's answer has no eval suite");
    };
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let file = args.output.join(file_name);
    std::fs::write(&file, yaml).with_context(|| format!("writing {}", file.display()))?;
    println!("exported trace {trace_id} ({} cases) to {}", res["n_cases"], file.display());
    Ok(())
}
