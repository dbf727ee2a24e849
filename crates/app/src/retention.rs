//! `loupe retention run`: one retention pass over the data dir's store (tier transitions,
//! deletion, downsampling; see `pipeline::retention`), with a progress bar, or with
//! `--dry-run` a report of what the pass would do, changing nothing.

use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use model::ProjectId;
use pipeline::retention::{PassReport, Retention, SystemClock};

use crate::DataArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCommand {
    /// Run one retention pass now: remove content past `structure_after`, keep only
    /// fingerprints past `fingerprints_after`, delete traces past `delete_after`, and downsample
    /// (settings: `[retention]` in loupe.toml). Safe to run while the server runs.
    #[command(after_help = "Examples:
  loupe retention run --dry-run             what a pass would do, changing nothing
  loupe retention run --project billing     one project only
  loupe retention run --json                the report as JSON")]
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Report what the pass would do without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// Only this project.
    #[arg(long)]
    project: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(command: RetentionCommand) -> anyhow::Result<()> {
    let RetentionCommand::Run(args) = command;
    let config = crate::load_config(&args.data)?;
    let project = match &args.project {
        Some(name) => Some(
            ProjectId::new(name).map_err(|error| anyhow::anyhow!("--project {name:?}: {error}"))?,
        ),
        None => None,
    };
    let store = crate::serve::open_store(&config).await?;
    let retention = Retention::new(config.retention.clone(), store, Arc::new(SystemClock));

    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos} spans and traces examined ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let report = retention
        .run_pass(args.dry_run, project.as_ref(), &|n| progress.inc(n))
        .await
        .context("running retention (a failed pass changes nothing more; run it again)")?;
    progress.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("writing the report")?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// The report as a table, one row per project with work and a total.
fn render(report: &PassReport) -> String {
    let mut out = String::new();
    if report.dry_run {
        out.push_str("dry run: nothing was changed; a real run would do this\n");
    }
    out.push_str(&format!(
        "{:<24} {:>10} {:>12} {:>12} {:>12} {:>14} {:>12}\n",
        "project", "decided", "downsampled", "ds spans", "deleted", "fingerprints", "structure"
    ));
    for p in report.projects.iter().chain(std::iter::once(&report.total())) {
        out.push_str(&format!(
            "{:<24} {:>10} {:>12} {:>12} {:>12} {:>14} {:>12}{}\n",
            p.project,
            p.traces_decided,
            p.traces_downsampled,
            p.spans_downsampled,
            p.spans_deleted,
            p.spans_to_fingerprints,
            p.spans_to_structure,
            if p.capped { "  (at least: counting stopped at its limit)" } else { "" },
        ));
    }
    out
}
