//! Retention and erasure on ClickHouse (schema version 3): retention tiers, rewriting spans,
//! deleting old traces, finding a user's traces, purging replaced content, and per-project
//! state records.
//!
//! - A span's tier is the `tier` column of its row. A rewrite inserts the reduced copy as a new
//!   row version with the new tier; `FINAL` reads see only the newest version, so the replaced
//!   content is not readable through the store from the moment the insert returns, and
//!   [`Inner::purge_deleted`] merges it out of the parts.
//! - Old traces go by dropping whole day partitions of `spans` when a day holds only the
//!   project's spans, all before the cutoff, of traces that lie wholly inside that day (a
//!   metadata operation, whatever the day's size); otherwise by one `ALTER TABLE ... DELETE`
//!   mutation per table for a batch of whole traces of the project.
//! - State records are a small `ReplacingMergeTree` keyed by (project, key).

use std::collections::{BTreeMap, HashMap};

use model::{ProjectId, StoredSpan, TraceId, UnixNanos};
use serde::Deserialize;
use store::RetentionTier;

use crate::client::{quote, quote_str};
use crate::{CountRow, Error, Inner, PageKey, index_rows, now_ns, row};

const DAY_NS: u64 = 86_400 * 1_000_000_000;

impl Inner {
    pub(crate) async fn span_projects(&self) -> Result<Vec<ProjectId>, Error> {
        #[derive(Deserialize)]
        struct Row {
            project: String,
        }
        let rows: Vec<Row> =
            self.client.select("SELECT DISTINCT project FROM spans ORDER BY project").await?;
        rows.into_iter().map(|row| ProjectId::new(&row.project).map_err(Error::Corrupt)).collect()
    }

    pub(crate) async fn spans_below_tier(
        &self,
        project: &ProjectId,
        tier: RetentionTier,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> Result<Vec<StoredSpan>, Error> {
        if limit == 0 || tier.as_u8() == 0 {
            return Ok(Vec::new());
        }
        // The condition on `tier` is a WHERE over `FINAL` (never PREWHERE, see the client), so
        // it applies to the newest version of each span only.
        let keys: Vec<PageKey> = self
            .client
            .select(&format!(
                "SELECT project, start_ns, trace_id, span_id FROM spans FINAL \
                 WHERE project = {} AND start_ns < {started_before_ns} AND tier < {} \
                 ORDER BY start_ns, trace_id, span_id LIMIT {limit}",
                quote(project),
                tier.as_u8()
            ))
            .await?;
        self.fetch_spans(&keys).await
    }

    /// Caller holds `write_lock`.
    pub(crate) async fn rewrite_spans(
        &self,
        spans: &[StoredSpan],
        tier: RetentionTier,
    ) -> Result<u64, Error> {
        if spans.is_empty() {
            return Ok(0);
        }
        // The last copy of a span given twice wins.
        let mut copies: BTreeMap<(&ProjectId, TraceId, model::SpanId), &StoredSpan> =
            BTreeMap::new();
        for span in spans {
            copies.insert((&span.project, span.raw.trace_id, span.raw.span_id), span);
        }
        let keys: Vec<PageKey> = copies.values().map(|s| PageKey::of(s)).collect();
        let stored_tiers: HashMap<(ProjectId, TraceId, model::SpanId), u8> = self
            .fetch_stored(&keys)
            .await?
            .into_iter()
            .map(|(s, stored_tier)| ((s.project, s.raw.trace_id, s.raw.span_id), stored_tier))
            .collect();
        let version = now_ns();
        let mut rows = Vec::new();
        let mut rewritten: Vec<&StoredSpan> = Vec::new();
        for ((project, trace_id, span_id), copy) in &copies {
            let key = ((*project).clone(), *trace_id, *span_id);
            // Not stored, or stored at a higher tier (a lower one never undoes it): skipped.
            match stored_tiers.get(&key) {
                Some(stored_tier) if *stored_tier <= tier.as_u8() => {
                    row::write_span_row(copy, version, tier.as_u8(), &mut rows)?;
                    rewritten.push(copy);
                }
                _ => {}
            }
        }
        // A root's name and operation id are also facts of its trace.
        let roots: Vec<&StoredSpan> =
            rewritten.iter().copied().filter(|s| s.raw.parent_span_id.is_none()).collect();
        if !roots.is_empty() {
            let index = index_rows(&roots, version)?;
            self.retrying(|| self.client.insert("trace_index", index.clone())).await?;
        }
        if !rows.is_empty() {
            self.retrying(|| self.client.insert("spans", rows.clone())).await?;
        }
        Ok(rewritten.len() as u64)
    }

    /// Caller holds `write_lock`.
    pub(crate) async fn delete_traces_before(
        &self,
        project: &ProjectId,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> Result<u64, Error> {
        self.delete_span_events_before(project, started_before_ns).await?;
        if let Some(n_spans) = self.drop_old_partition(project, started_before_ns).await? {
            return Ok(n_spans);
        }
        self.delete_old_traces(project, started_before_ns, limit.max(1)).await
    }

    /// Drops the oldest day partition of `spans` that can go whole: the day ends at or before
    /// the cutoff, holds spans of this project and of no other, and every trace with a span in
    /// it lies wholly inside it (so no trace is cut in two). Returns the spans dropped, or
    /// `None` when no partition qualifies.
    async fn drop_old_partition(
        &self,
        project: &ProjectId,
        started_before_ns: UnixNanos,
    ) -> Result<Option<u64>, Error> {
        #[derive(Deserialize)]
        struct PartitionRow {
            partition: String,
        }
        let partitions: Vec<PartitionRow> = self
            .client
            .select(&format!(
                "SELECT DISTINCT partition FROM system.parts WHERE database = {} \
                 AND table = 'spans' AND active ORDER BY partition",
                quote_str(&self.config.database)
            ))
            .await?;
        let p = quote(project);
        for partition in partitions {
            let Some(lo) = day_start_ns(&partition.partition) else { continue };
            let hi = lo + DAY_NS;
            if hi > started_before_ns {
                break;
            }
            // Whether the day has rows of this project, and of another: `LIMIT 1` stops each
            // at the first row found, so a shared day costs a granule or two, not a scan.
            #[derive(Deserialize)]
            struct Owners {
                n_own: u64,
                n_other: u64,
            }
            let day = format!("start_ns >= {lo} AND start_ns < {hi}");
            let owners: Vec<Owners> = self
                .client
                .select(&format!(
                    "SELECT (SELECT count() FROM (SELECT 1 FROM spans WHERE {day} \
                     AND project = {p} LIMIT 1)) AS n_own, (SELECT count() FROM (SELECT 1 \
                     FROM spans WHERE {day} AND project != {p} LIMIT 1)) AS n_other"
                ))
                .await?;
            if !owners.first().is_some_and(|o| o.n_own > 0 && o.n_other == 0) {
                continue;
            }
            let straddling: Vec<CountRow> = self
                .client
                .select(&format!(
                    "SELECT count() AS n FROM (SELECT trace_id, min(min_start_ns) AS t_lo, \
                     max(max_start_ns) AS t_hi FROM trace_index WHERE project = {p} \
                     AND trace_id IN (SELECT trace_id FROM spans WHERE project = {p} \
                     AND start_ns >= {lo} AND start_ns < {hi}) GROUP BY trace_id) \
                     WHERE t_lo < {lo} OR t_hi >= {hi}"
                ))
                .await?;
            if straddling.first().is_some_and(|c| c.n > 0) {
                // Those traces go by mutation, oldest first; the day can be dropped after.
                continue;
            }
            let counted: Vec<CountRow> = self
                .client
                .select(&format!(
                    "SELECT count() AS n FROM spans FINAL WHERE project = {p} \
                     AND start_ns >= {lo} AND start_ns < {hi}"
                ))
                .await?;
            let n_spans = counted.first().map_or(0, |c| c.n);
            // The partition id is digits by the check in `day_start_ns`.
            self.client
                .execute(&format!("ALTER TABLE spans DROP PARTITION {}", partition.partition))
                .await?;
            // Every index row of those traces lies inside the day (checked above), and only
            // those traces have index rows there.
            self.client
                .execute(&format!(
                    "ALTER TABLE trace_index DELETE WHERE project = {p} \
                     AND min_start_ns >= {lo} AND max_start_ns < {hi}"
                ))
                .await?;
            self.wait_for_mutations(&["spans", "trace_index", "span_events"]).await?;
            tracing::info!(
                project = project.as_str(),
                partition = partition.partition,
                n_spans,
                "dropped a day of spans past retention"
            );
            return Ok(Some(n_spans));
        }
        Ok(None)
    }

    /// Deletes the oldest whole traces of `project` that ended (by their last span's start)
    /// before the cutoff, about `limit` spans of them, with one mutation per table.
    async fn delete_old_traces(
        &self,
        project: &ProjectId,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> Result<u64, Error> {
        #[derive(Deserialize)]
        struct TraceRow {
            trace_id: String,
            t_lo: u64,
            t_hi: u64,
        }
        let p = quote(project);
        let traces: Vec<TraceRow> = self
            .client
            .select(&format!(
                "SELECT trace_id, min(min_start_ns) AS t_lo, max(max_start_ns) AS t_hi \
                 FROM trace_index WHERE project = {p} GROUP BY trace_id \
                 HAVING t_hi < {started_before_ns} ORDER BY t_lo, trace_id LIMIT {limit}"
            ))
            .await?;
        if traces.is_empty() {
            return Ok(0);
        }
        let lo = traces.iter().map(|t| t.t_lo).min().unwrap_or(0);
        let hi = traces.iter().map(|t| t.t_hi).max().unwrap_or(0);
        let list = |traces: &[&TraceRow]| -> String {
            traces.iter().map(|t| quote_str(&t.trace_id)).collect::<Vec<_>>().join(", ")
        };
        #[derive(Deserialize)]
        struct SpanCount {
            trace_id: String,
            n: u64,
        }
        let counts: HashMap<String, u64> = self
            .client
            .select::<SpanCount>(&format!(
                "SELECT trace_id, count() AS n FROM spans FINAL WHERE project = {p} \
                 AND start_ns >= {lo} AND start_ns <= {hi} AND trace_id IN ({}) GROUP BY trace_id",
                list(&traces.iter().collect::<Vec<_>>())
            ))
            .await?
            .into_iter()
            .map(|row| (row.trace_id, row.n))
            .collect();
        // Oldest first, whole traces, until the next one would pass the limit (at least one).
        // Index entries whose spans are gone are deleted too, at no cost to the limit.
        let mut chosen: Vec<&TraceRow> = Vec::new();
        let mut n_spans = 0;
        for trace in &traces {
            let n = counts.get(&trace.trace_id).copied().unwrap_or(0);
            if n_spans > 0 && n_spans + n > u64::from(limit) {
                break;
            }
            n_spans += n;
            chosen.push(trace);
        }
        let lo = chosen.iter().map(|t| t.t_lo).min().unwrap_or(0);
        let hi = chosen.iter().map(|t| t.t_hi).max().unwrap_or(0);
        let ids = list(&chosen);
        // Spans first: an index entry without spans is harmless, the reverse would hide spans.
        // The time bounds let releases that prune mutations by key skip other parts.
        self.client
            .execute(&format!(
                "ALTER TABLE spans DELETE WHERE project = {p} AND start_ns >= {lo} \
                 AND start_ns <= {hi} AND trace_id IN ({ids})"
            ))
            .await?;
        self.client
            .execute(&format!(
                "ALTER TABLE trace_index DELETE WHERE project = {p} AND trace_id IN ({ids})"
            ))
            .await?;
        self.client
            .execute(&format!(
                "ALTER TABLE span_events DELETE WHERE project = {p} AND trace_id IN ({ids})"
            ))
            .await?;
        self.wait_for_mutations(&["spans", "trace_index", "span_events"]).await?;
        Ok(n_spans)
    }

    pub(crate) async fn user_traces(
        &self,
        project: &ProjectId,
        users: &[String],
        after: Option<TraceId>,
        limit: u32,
    ) -> Result<Vec<TraceId>, Error> {
        if users.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        #[derive(Deserialize)]
        struct Row {
            trace_id: String,
        }
        let users: Vec<String> = users.iter().map(|u| quote_str(u)).collect();
        let after =
            after.map_or(String::new(), |t| format!(" AND trace_id > {}", quote(t.to_hex())));
        let rows: Vec<Row> = self
            .client
            .select(&format!(
                "SELECT DISTINCT trace_id FROM spans FINAL WHERE project = {} \
                 AND user_id IN ({}){after} ORDER BY trace_id LIMIT {limit}",
                quote(project),
                users.join(", ")
            ))
            .await?;
        rows.into_iter()
            .map(|row| {
                TraceId::from_hex(&row.trace_id)
                    .map_err(|e| Error::Corrupt(format!("trace id: {e}")))
            })
            .collect()
    }

    /// Merges away replaced and tombstoned row versions: `OPTIMIZE ... FINAL` on every
    /// partition of `spans` with more than one active part (a single part holds one version
    /// per key already) and on `feedback`. The parts replaced by the merge are removed from
    /// disk by the server after its `old_parts_lifetime` (8 minutes by default).
    pub(crate) async fn purge_deleted(&self) -> Result<(), Error> {
        #[derive(Deserialize)]
        struct PartitionRow {
            table: String,
            partition: String,
        }
        let partitions: Vec<PartitionRow> = self
            .client
            .select(&format!(
                "SELECT table, partition FROM system.parts WHERE database = {} \
                 AND table IN ('spans', 'feedback') AND active \
                 GROUP BY table, partition HAVING count() > 1 ORDER BY table, partition",
                quote_str(&self.config.database)
            ))
            .await?;
        for partition in partitions {
            let sql = if partition.table == "spans" {
                match day_start_ns(&partition.partition) {
                    Some(_) => {
                        format!("OPTIMIZE TABLE spans PARTITION {} FINAL", partition.partition)
                    }
                    None => continue,
                }
            } else {
                "OPTIMIZE TABLE feedback FINAL".to_owned()
            };
            // A merge already running on the same parts makes OPTIMIZE a no-op; with
            // `optimize_throw_if_noop` that is an error, and the merge is asked for again.
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self
                    .client
                    .execute_with_settings(&sql, &[("optimize_throw_if_noop", "1")])
                    .await
                {
                    Ok(_) => break,
                    Err(e) if attempt < 5 => {
                        tracing::debug!(error = %e, %sql, "optimize postponed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn get_state(
        &self,
        project: &ProjectId,
        key: &str,
    ) -> Result<Option<String>, Error> {
        #[derive(Deserialize)]
        struct Row {
            value: String,
        }
        let rows: Vec<Row> = self
            .client
            .select(&format!(
                "SELECT value FROM project_state FINAL WHERE project = {} AND key = {}",
                quote(project),
                quote_str(key)
            ))
            .await?;
        Ok(rows.into_iter().next().map(|row| row.value))
    }

    pub(crate) async fn put_state(
        &self,
        project: &ProjectId,
        key: &str,
        value: &str,
    ) -> Result<(), Error> {
        let row = serde_json::json!({
            "project": project.as_str(),
            "key": key,
            "value": value,
            "version": now_ns(),
        });
        let body = format!("{row}\n").into_bytes();
        self.retrying(|| self.client.insert("project_state", body.clone())).await
    }
}

/// The first nanosecond of a `spans` partition (`YYYYMMDD`, UTC), or `None` for anything else.
fn day_start_ns(partition: &str) -> Option<u64> {
    if partition.len() != 8 || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i64 = partition[0..4].parse().ok()?;
    let month: i64 = partition[4..6].parse().ok()?;
    let day: i64 = partition[6..8].parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (the civil-from-days inverse).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    u64::try_from(days).ok().map(|d| d * DAY_NS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_days_start_at_utc_midnight() {
        assert_eq!(day_start_ns("19700101"), Some(0));
        assert_eq!(day_start_ns("19700102"), Some(DAY_NS));
        // store::suite::T0 is 2026-01-01T00:00:00Z.
        assert_eq!(day_start_ns("20260101"), Some(1_767_225_600_000_000_000));
        assert_eq!(day_start_ns("20240301"), Some(1_709_251_200 * 1_000_000_000));
        assert_eq!(day_start_ns("tuple()"), None);
        assert_eq!(day_start_ns("20241301"), None);
    }
}
