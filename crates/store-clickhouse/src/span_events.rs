//! Span events that arrived apart from their spans (GenAI events sent as OTLP log records),
//! kept in `span_events` (schema version 5) until the pipeline merges them into their stored
//! span and deletes them.
//!
//! A plain `MergeTree` ordered by `(project, trace_id, span_id, seq)`, where `seq` is a
//! strictly increasing insertion stamp, so a span's events are one short range read in the
//! order they were saved. The table stays small (events wait only until their span arrives),
//! so deleting with an `ALTER … DELETE` mutation, waited for like trace deletions, is cheap; a
//! trace's events are deleted with the trace (`delete_traces`, see `records.rs`), and retention
//! deletes the rows older than its cutoff whose span never arrived.

use std::collections::BTreeSet;

use model::{ProjectId, SpanEvent, SpanId, TraceId};
use serde::Deserialize;

use crate::client::quote;
use crate::{CountRow, Error, Inner, now_ns};

/// Schema version 5.
pub(crate) fn migration() -> Vec<String> {
    vec![
        "CREATE TABLE IF NOT EXISTS span_events (
            project String,
            trace_id String,
            span_id String,
            seq UInt64,
            time_ns UInt64,
            event String
        ) ENGINE = MergeTree
        ORDER BY (project, trace_id, span_id, seq)"
            .to_owned(),
    ]
}

/// Trace ids per lookup query (about 40 bytes each, well inside `max_query_size`).
const TRACES_PER_QUERY: usize = 1000;

/// Spans per delete mutation (about 80 bytes each).
const SPANS_PER_DELETE: usize = 1000;

/// `(trace_id = … AND span_id = …) OR …` for a list of spans.
fn span_condition(spans: &[(TraceId, SpanId)]) -> String {
    let terms: Vec<String> = spans
        .iter()
        .map(|(trace_id, span_id)| {
            format!(
                "(trace_id = {} AND span_id = {})",
                quote(trace_id.to_hex()),
                quote(span_id.to_hex())
            )
        })
        .collect();
    terms.join(" OR ")
}

impl Inner {
    pub(crate) async fn put_span_events(
        &self,
        project: &ProjectId,
        events: &[SpanEvent],
    ) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let mut body = Vec::new();
        for it in events {
            let event = serde_json::to_string(&it.event)
                .map_err(|e| Error::Corrupt(format!("span event: {e}")))?;
            let row = serde_json::json!({
                "project": project.as_str(),
                "trace_id": it.trace_id.to_hex(),
                "span_id": it.span_id.to_hex(),
                "seq": now_ns(),
                "time_ns": it.event.time_unix_nano,
                "event": event,
            });
            body.extend_from_slice(row.to_string().as_bytes());
            body.push(b'\n');
        }
        self.retrying(|| self.client.insert("span_events", body.clone())).await
    }

    pub(crate) async fn span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> Result<Vec<SpanEvent>, Error> {
        if spans.is_empty() {
            return Ok(Vec::new());
        }
        #[derive(Deserialize)]
        struct Row {
            trace_id: String,
            span_id: String,
            event: String,
        }
        // The pipeline asks after every span write; the table is usually empty for the project,
        // which one read of the primary key's first column tells.
        let p = quote(project);
        let counted: Vec<CountRow> = self
            .client
            .select(&format!("SELECT count() AS n FROM span_events WHERE project = {p}"))
            .await?;
        if counted.first().is_none_or(|c| c.n == 0) {
            return Ok(Vec::new());
        }
        // By trace (a batch has far fewer traces than spans), then the spans asked for.
        let wanted: BTreeSet<(TraceId, SpanId)> = spans.iter().copied().collect();
        let trace_ids: Vec<String> = wanted
            .iter()
            .map(|(trace_id, _)| trace_id.to_hex())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(quote)
            .collect();
        let mut res: Vec<(u64, SpanEvent)> = Vec::new();
        for chunk in trace_ids.chunks(TRACES_PER_QUERY) {
            #[derive(Deserialize)]
            struct SeqRow {
                seq: u64,
                #[serde(flatten)]
                row: Row,
            }
            let rows: Vec<SeqRow> = self
                .client
                .select(&format!(
                    "SELECT seq, trace_id, span_id, event FROM span_events \
                     WHERE project = {p} AND trace_id IN ({})",
                    chunk.join(", ")
                ))
                .await?;
            for SeqRow { seq, row } in rows {
                let trace_id = TraceId::from_hex(&row.trace_id)
                    .map_err(|e| Error::Corrupt(format!("span event trace id: {e}")))?;
                let span_id = SpanId::from_hex(&row.span_id)
                    .map_err(|e| Error::Corrupt(format!("span event span id: {e}")))?;
                if !wanted.contains(&(trace_id, span_id)) {
                    continue;
                }
                let event = serde_json::from_str(&row.event)
                    .map_err(|e| Error::Corrupt(format!("span event: {e}")))?;
                res.push((seq, SpanEvent { trace_id, span_id, event }));
            }
        }
        res.sort_by_key(|(seq, _)| *seq);
        Ok(res.into_iter().map(|(_, event)| event).collect())
    }

    pub(crate) async fn delete_span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> Result<u64, Error> {
        if spans.is_empty() {
            return Ok(0);
        }
        let spans: Vec<(TraceId, SpanId)> =
            spans.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
        for chunk in spans.chunks(SPANS_PER_DELETE) {
            self.client
                .execute(&format!(
                    "ALTER TABLE span_events DELETE WHERE project = {} AND ({})",
                    quote(project),
                    span_condition(chunk)
                ))
                .await?;
        }
        self.wait_for_mutations(&["span_events"]).await?;
        Ok(0)
    }

    /// Deletes the saved events of a project older than the cutoff (their span never arrived, or
    /// they would have been merged and deleted). Part of `delete_traces_before`.
    pub(crate) async fn delete_span_events_before(
        &self,
        project: &ProjectId,
        before_ns: u64,
    ) -> Result<(), Error> {
        let condition = format!("project = {} AND time_ns < {before_ns}", quote(project));
        let counted: Vec<CountRow> = self
            .client
            .select(&format!("SELECT count() AS n FROM span_events WHERE {condition}"))
            .await?;
        if counted.first().is_none_or(|c| c.n == 0) {
            return Ok(());
        }
        self.client.execute(&format!("ALTER TABLE span_events DELETE WHERE {condition}")).await?;
        self.wait_for_mutations(&["span_events"]).await
    }
}
