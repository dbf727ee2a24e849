//! `loupe reindex`: rebuilds every stored span's normalized view from its raw span, through the
//! same normalization and processors as ingest, a page at a time, with a progress bar.

use std::collections::BTreeMap;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use model::ProjectId;

use crate::DataArgs;

const PAGE: u32 = 2_000;

pub(crate) async fn run(args: DataArgs) -> anyhow::Result<()> {
    let config = crate::load_config(&args)?;
    let store = crate::serve::open_store(&config).await?;
    let (pipeline, _processors) = crate::serve::start_pipeline(&config, store.clone())?;

    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos} spans reindexed ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut cursor = None;
    let mut n_updated = 0u64;
    loop {
        let page = store.scan_spans(cursor.as_ref(), PAGE).await.context("reading spans")?;
        let n_read = page.items.len() as u64;
        // Processors see one project at a time, as at ingest.
        let mut by_project: BTreeMap<ProjectId, Vec<model::RawSpan>> = BTreeMap::new();
        for span in page.items {
            by_project.entry(span.project).or_default().push(span.raw);
        }
        let mut rebuilt = Vec::new();
        for (project, spans) in by_project {
            let pipeline = pipeline.clone();
            let batch = pipeline::Batch { project, spans };
            rebuilt.extend(
                tokio::task::spawn_blocking(move || pipeline.process(batch))
                    .await
                    .context("rebuilding views")?,
            );
        }
        n_updated += store.update_views(&rebuilt).await.context("writing views")?;
        progress.inc(n_read);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    progress.finish_with_message("done");
    pipeline.shutdown().await;
    println!("reindexed {n_updated} spans");
    Ok(())
}
