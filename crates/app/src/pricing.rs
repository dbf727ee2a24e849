//! `loupe pricing`: the price table as the pipeline sees it (`show`), the models stored spans
//! used that have no price (`unknown`), and re-pricing stored spans after the table changed
//! (`recompute`). All three open the data dir from the config directly, like `loupe reindex`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use model::{ProjectId, StoredSpan, UnixNanos};
use pipeline::price::{ModelPrice, PriceTable};
use rust_decimal::Decimal;

use crate::DataArgs;

const PAGE: u32 = 2_000;

#[derive(Debug, Subcommand)]
pub(crate) enum PricingCommand {
    /// Print the effective price table (built-in plus `[[pipeline.price.models]]`), or the
    /// entry that prices MODEL.
    #[command(after_help = "Examples:
  loupe pricing show                       every entry, USD per million tokens
  loupe pricing show gpt-4o-2024-08-06     the entry a span of this model is priced with
  loupe pricing show claude-3-5-sonnet --provider anthropic")]
    Show(ShowArgs),
    /// List models of stored spans that have token usage but no price.
    #[command(after_help = "Examples:
  loupe pricing unknown
  loupe pricing unknown --project billing --since 30d")]
    Unknown(UnknownArgs),
    /// Re-price stored spans with the current price table; trace and session roll-ups follow.
    #[command(after_help = "Examples:
  loupe pricing recompute --since 30d --dry-run    what would change
  loupe pricing recompute --since 30d --project billing")]
    Recompute(RecomputeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    data: DataArgs,
    /// A model name as spans carry it; prints the entry that prices it today.
    model: Option<String>,
    /// The span's provider (`gen_ai.system` / `gen_ai.provider.name`), to match as ingest does.
    #[arg(long)]
    provider: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct UnknownArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Only this project (default: every project).
    #[arg(long)]
    project: Option<String>,
    /// Only spans started within this long ago: `7d`, `12h`, `30m`.
    #[arg(long, default_value = "7d")]
    since: String,
}

#[derive(Debug, Args)]
pub(crate) struct RecomputeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Only spans started within this long ago: `30d`, `12h`, `30m`.
    #[arg(long)]
    since: String,
    /// Only this project (default: every project).
    #[arg(long)]
    project: Option<String>,
    /// Report what would change without writing anything.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) async fn run(command: PricingCommand) -> anyhow::Result<()> {
    match command {
        PricingCommand::Show(args) => show(args),
        PricingCommand::Unknown(args) => unknown(args).await,
        PricingCommand::Recompute(args) => recompute(args).await,
    }
}

/// The price table the pipeline would use with this config.
fn price_table(config: &crate::config::Config) -> anyhow::Result<PriceTable> {
    PriceTable::from_raw(&config.processors.price)
        .map_err(|error| anyhow::anyhow!("[pipeline.price]: {error}"))
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let config = crate::load_config(&args.data)?;
    let table = price_table(&config)?;
    match &args.model {
        Some(model) => {
            let day = i64::try_from(now_ns() / NANOS_PER_DAY).unwrap_or(i64::MAX);
            match pipeline::price::find_price(&table, args.provider.as_deref(), model, day) {
                Some(price) => {
                    println!("{model} is priced by:");
                    print_entries(std::slice::from_ref(price));
                }
                None => bail!(
                    "no price for {model:?}: add one as a [[pipeline.price.models]] entry in \
                     loupe.toml (provider, pattern, input, output; see docs/pipeline.md, \"price\")"
                ),
            }
        }
        None => print_entries(table.entries()),
    }
    Ok(())
}

fn print_entries(entries: &[ModelPrice]) {
    println!(
        "{:<12} {:<40} {:<10} {:>10} {:>10} {:>10} {:>10} {:>10}  source",
        "provider", "pattern", "effective", "input", "output", "cached", "cache_wr", "reasoning"
    );
    for entry in entries {
        let (year, month, day) = model::time::civil_from_days(entry.effective_day);
        let effective = if entry.effective_day == 0 {
            "always".to_owned()
        } else {
            format!("{year:04}-{month:02}-{day:02}")
        };
        println!(
            "{:<12} {:<40} {:<10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}",
            entry.provider,
            entry.pattern,
            effective,
            entry.input,
            entry.output,
            entry.cached_input,
            entry.cache_write,
            entry.reasoning,
            if entry.from_config { "config" } else { "built-in" }
        );
    }
    println!("(USD per million tokens)");
}

/// A model without a price, over every page read.
#[derive(Debug, Default)]
struct Unknown {
    n_spans: u64,
    last_seen: UnixNanos,
}

async fn unknown(args: UnknownArgs) -> anyhow::Result<()> {
    let config = crate::load_config(&args.data)?;
    let table = price_table(&config)?;
    let filter = SpanFilter::new(args.project.as_deref(), &args.since)?;
    let store = crate::serve::open_store(&config).await?;

    let mut models: BTreeMap<(String, String), Unknown> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store.scan_spans(cursor.as_ref(), PAGE).await.context("reading spans")?;
        let spans: Vec<&StoredSpan> = page.items.iter().filter(|s| filter.matches(s)).collect();
        for model in pipeline::price::unknown_models(&table, spans.iter().copied()) {
            let entry = models.entry((model.provider.clone(), model.model.clone())).or_default();
            entry.n_spans += model.n_spans;
            // The helper counts; the last time each model was seen is read off the spans.
            for span in &spans {
                if span.view.model() == Some(model.model.as_str())
                    && span.view.provider.as_deref().unwrap_or_default() == model.provider
                {
                    entry.last_seen = entry.last_seen.max(span.raw.start_time_unix_nano);
                }
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if models.is_empty() {
        println!("every model of the spans since {} has a price", args.since);
        return Ok(());
    }
    let mut rows: Vec<_> = models.into_iter().collect();
    rows.sort_by(|a, b| b.1.n_spans.cmp(&a.1.n_spans).then_with(|| a.0.cmp(&b.0)));
    println!("{:<16} {:<44} {:>8}  last seen", "provider", "model", "spans");
    for ((provider, model), unknown) in &rows {
        let provider = if provider.is_empty() { "-" } else { provider.as_str() };
        println!(
            "{provider:<16} {model:<44} {:>8}  {}",
            unknown.n_spans,
            model::time::format_rfc3339_millis(unknown.last_seen)
        );
    }
    println!(
        "\nThese spans have no cost. Add a price for each model to loupe.toml, e.g.\n\n\
         [[pipeline.price.models]]\n\
         provider = \"{}\"\n\
         pattern = \"{}\"\n\
         input = \"0.50\"    # USD per million input tokens\n\
         output = \"1.50\"   # USD per million output tokens\n\n\
         (see docs/pipeline.md, \"price\"), then run `loupe pricing recompute --since {}`.",
        rows[0].0.0, rows[0].0.1, args.since
    );
    Ok(())
}

async fn recompute(args: RecomputeArgs) -> anyhow::Result<()> {
    let config = crate::load_config(&args.data)?;
    let table = price_table(&config)?;
    let filter = SpanFilter::new(args.project.as_deref(), &args.since)?;
    let store = crate::serve::open_store(&config).await?;

    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos} spans read ({per_sec}), {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let (mut n_read, mut n_repriced, mut n_written) = (0u64, 0u64, 0u64);
    let (mut before, mut after) = (Decimal::ZERO, Decimal::ZERO);
    let mut cursor = None;
    loop {
        let page = store.scan_spans(cursor.as_ref(), PAGE).await.context("reading spans")?;
        progress.inc(page.items.len() as u64);
        let mut changed = Vec::new();
        for mut span in page.items {
            if !filter.matches(&span) {
                continue;
            }
            n_read += 1;
            let old = span.view.cost.unwrap_or_default();
            if pipeline::price::recompute_cost(&table, &mut span) {
                before += old;
                after += span.view.cost.unwrap_or_default();
                changed.push(span);
            }
        }
        n_repriced += changed.len() as u64;
        if !args.dry_run && !changed.is_empty() {
            n_written += store.update_views(&changed).await.context("writing the new costs")?;
        }
        progress.set_message(format!("{n_repriced} repriced"));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    progress.finish_and_clear();
    let verb = if args.dry_run { "would reprice" } else { "repriced" };
    println!(
        "{verb} {n_repriced} of {n_read} spans since {}: cost ${} -> ${}",
        args.since,
        before.normalize(),
        after.normalize()
    );
    if !args.dry_run && n_written != n_repriced {
        println!("{} spans were deleted while this ran", n_repriced - n_written);
    }
    Ok(())
}

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

fn now_ns() -> UnixNanos {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

/// Which stored spans a command looks at: a project (or all) and a start-time lower bound.
struct SpanFilter {
    project: Option<ProjectId>,
    since_ns: UnixNanos,
}

impl SpanFilter {
    fn new(project: Option<&str>, since: &str) -> anyhow::Result<SpanFilter> {
        let project = project.map(ProjectId::new).transpose().map_err(anyhow::Error::msg)?;
        let age = parse_age(since)?;
        let since_ns = now_ns().saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX));
        Ok(SpanFilter { project, since_ns })
    }

    fn matches(&self, span: &StoredSpan) -> bool {
        self.project.as_ref().is_none_or(|p| *p == span.project)
            && span.raw.start_time_unix_nano >= self.since_ns
    }
}

/// `30d`, `12h`, `45m`, `90s`: a span of time back from now.
fn parse_age(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let seconds_per_unit = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds_per_unit > 0 => {
            Ok(Duration::from_secs(n.saturating_mul(seconds_per_unit)))
        }
        _ => bail!("invalid --since {text:?}: write a number and a unit, e.g. 7d, 12h, 30m or 90s"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages() {
        assert_eq!(parse_age("7d").unwrap().as_secs(), 7 * 86_400);
        assert_eq!(parse_age("12h").unwrap().as_secs(), 12 * 3_600);
        assert_eq!(parse_age("90s").unwrap().as_secs(), 90);
        assert!(parse_age("7").is_err());
        assert!(parse_age("d").is_err());
        assert!(parse_age("7w").is_err());
    }
}
