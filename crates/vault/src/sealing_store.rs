//! [`SealingStore`]: a [`Store`] that seals the content of users' spans on every write path
//! (`write_spans`, `update_views`, `rewrite_spans`) and unseals it on every read path
//! (`get_trace`, `search_spans`, `scan_spans`, `spans_below_tier`). Everything else is passed to
//! the wrapped store as it is.

use std::sync::Arc;

use async_trait::async_trait;
use model::{
    Dataset, DatasetItem, DatasetVersion, Feedback, FeedbackTarget, ProjectId, ScoreConfig,
    SpanEvent, SpanId, StoredSpan, TraceId, UnixNanos,
};
use store::{
    AggregateQuery, AggregateRow, ApiKeyRecord, Cursor, DatasetRef, FacetQuery, Facets,
    NewDatasetVersion, Page, RetentionTier, SpanQuery, Store, TraceQuery, TraceSummary, WriteStats,
};

use crate::seal::{needs_sealing, seal, seal_view, unseal};
use crate::vault::Vault;

/// The sealing wrapper around a backend.
pub struct SealingStore {
    inner: Arc<dyn Store>,
    vault: Arc<Vault>,
    /// Seal on writes; when off (`[erasure] enabled = false`) new content is stored in plain
    /// text, and content sealed earlier is still unsealed on reads and erasable.
    seal_writes: bool,
}

impl SealingStore {
    pub fn new(inner: Arc<dyn Store>, vault: Arc<Vault>) -> SealingStore {
        SealingStore { inner, vault, seal_writes: true }
    }

    /// Whether writes are sealed (default `true`).
    pub fn with_sealed_writes(mut self, seal_writes: bool) -> SealingStore {
        self.seal_writes = seal_writes;
        self
    }

    /// The wrapped store (sees sealed envelopes only).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    fn sealed(&self, spans: &[StoredSpan]) -> store::Result<Vec<StoredSpan>> {
        let mut res = spans.to_vec();
        self.seal_spans(&mut res)?;
        Ok(res)
    }

    /// Seals spans in place as [`Store::write_spans`] does (nothing when writes are not
    /// sealed). The pipeline calls this before its write queue (`Pipeline::with_pre_write`),
    /// so sealing runs on the requests' threads and `write_spans` finds nothing left to seal:
    /// it then writes the spans as they are, without a copy.
    pub fn seal_spans(&self, spans: &mut [StoredSpan]) -> store::Result<()> {
        if !self.seal_writes {
            return Ok(());
        }
        // New users' keys are made together, in one transaction.
        let users =
            spans.iter().filter_map(|span| Some((&span.project, span.view.user_id.as_deref()?)));
        self.vault.ensure_keys(users)?;
        for span in spans.iter_mut().filter(|span| needs_sealing(span)) {
            seal(&self.vault, span)?;
        }
        Ok(())
    }

    /// Whether writing these spans takes sealing first (some name a user and are not sealed).
    fn must_seal(&self, spans: &[StoredSpan]) -> bool {
        self.seal_writes && spans.iter().any(needs_sealing)
    }

    fn unsealed(&self, spans: &mut [StoredSpan]) -> store::Result<()> {
        for span in spans {
            unseal(&self.vault, span)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SealingStore {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn backend_metrics(&self) -> Vec<store::BackendMetric> {
        self.inner.backend_metrics()
    }

    async fn write_spans(&self, spans: &[StoredSpan]) -> store::Result<WriteStats> {
        // Batches of apps that send no user ids, and batches the pipeline sealed already
        // (`seal_spans`), have nothing to seal: no copy then.
        if !self.must_seal(spans) {
            return self.inner.write_spans(spans).await;
        }
        let sealed = self.sealed(spans)?;
        self.inner.write_spans(&sealed).await
    }

    fn encode_records(&self, spans: &[StoredSpan]) -> store::Result<Option<Vec<Vec<u8>>>> {
        // Records must be of sealed spans: none for a batch that still needs sealing.
        if self.must_seal(spans) {
            return Ok(None);
        }
        self.inner.encode_records(spans)
    }

    async fn write_spans_encoded(
        &self,
        spans: &[StoredSpan],
        records: &[Vec<u8>],
    ) -> store::Result<WriteStats> {
        if self.must_seal(spans) {
            // Encoded before sealing: not usable.
            return self.write_spans(spans).await;
        }
        self.inner.write_spans_encoded(spans, records).await
    }

    async fn stage_spans(
        &self,
        spans: &[StoredSpan],
        kept: &[bool],
        records: Option<&[Vec<u8>]>,
    ) -> store::Result<WriteStats> {
        // Sealed as `write_spans` seals: staged spans are on disk too.
        if !self.must_seal(spans) {
            return self.inner.stage_spans(spans, kept, records).await;
        }
        let sealed = self.sealed(spans)?;
        self.inner.stage_spans(&sealed, kept, None).await
    }

    async fn release_staged(&self) -> store::Result<u64> {
        self.inner.release_staged().await
    }

    async fn discard_staged_user_traces(
        &self,
        project: &ProjectId,
        users: &[String],
    ) -> store::Result<u64> {
        self.inner.discard_staged_user_traces(project, users).await
    }

    async fn get_trace(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Vec<StoredSpan>> {
        let mut spans = self.inner.get_trace(project, trace_id).await?;
        self.unsealed(&mut spans)?;
        Ok(spans)
    }

    async fn search_spans(
        &self,
        project: &ProjectId,
        query: &SpanQuery,
    ) -> store::Result<Page<StoredSpan>> {
        let mut page = self.inner.search_spans(project, query).await?;
        self.unsealed(&mut page.items)?;
        Ok(page)
    }

    async fn search_traces(
        &self,
        project: &ProjectId,
        query: &TraceQuery,
    ) -> store::Result<Page<TraceSummary>> {
        self.inner.search_traces(project, query).await
    }

    async fn session_traces(
        &self,
        project: &ProjectId,
        session_id: &str,
        limit: u32,
    ) -> store::Result<Vec<TraceSummary>> {
        self.inner.session_traces(project, session_id, limit).await
    }

    async fn facets(&self, project: &ProjectId, query: &FacetQuery) -> store::Result<Facets> {
        self.inner.facets(project, query).await
    }

    async fn aggregate(
        &self,
        project: &ProjectId,
        query: &AggregateQuery,
    ) -> store::Result<Vec<AggregateRow>> {
        self.inner.aggregate(project, query).await
    }

    async fn scan_spans(
        &self,
        after: Option<&Cursor>,
        limit: u32,
    ) -> store::Result<Page<StoredSpan>> {
        let mut page = self.inner.scan_spans(after, limit).await?;
        self.unsealed(&mut page.items)?;
        Ok(page)
    }

    async fn update_views(&self, spans: &[StoredSpan]) -> store::Result<u64> {
        let mut sealed = spans.to_vec();
        for span in sealed.iter_mut().filter(|_| self.seal_writes) {
            seal_view(&self.vault, span)?;
        }
        self.inner.update_views(&sealed).await
    }

    async fn put_api_key(&self, record: &ApiKeyRecord) -> store::Result<()> {
        self.inner.put_api_key(record).await
    }

    async fn find_api_key(&self, key_hash: &str) -> store::Result<Option<ApiKeyRecord>> {
        self.inner.find_api_key(key_hash).await
    }

    async fn list_api_keys(&self, project: &ProjectId) -> store::Result<Vec<ApiKeyRecord>> {
        self.inner.list_api_keys(project).await
    }

    async fn delete_api_key(&self, project: &ProjectId, key_id: &str) -> store::Result<bool> {
        self.inner.delete_api_key(project, key_id).await
    }

    async fn put_feedback(&self, feedback: &Feedback) -> store::Result<()> {
        self.inner.put_feedback(feedback).await
    }

    async fn get_feedback(&self, project: &ProjectId, id: &str) -> store::Result<Option<Feedback>> {
        self.inner.get_feedback(project, id).await
    }

    async fn list_feedback(
        &self,
        project: &ProjectId,
        target: &FeedbackTarget,
    ) -> store::Result<Vec<Feedback>> {
        self.inner.list_feedback(project, target).await
    }

    async fn trace_feedback(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Vec<Feedback>> {
        self.inner.trace_feedback(project, trace_id).await
    }

    async fn traces_for_decision(
        &self,
        project: &ProjectId,
        trace_ids: &[TraceId],
        with_content: bool,
    ) -> store::Result<Vec<(Vec<StoredSpan>, Vec<Feedback>)>> {
        let mut res = self.inner.traces_for_decision(project, trace_ids, with_content).await?;
        if with_content {
            for (spans, _) in &mut res {
                self.unsealed(spans)?;
            }
        }
        Ok(res)
    }

    async fn pending_feedback(
        &self,
        project: &ProjectId,
        created_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<Feedback>> {
        self.inner.pending_feedback(project, created_before_ns, limit).await
    }

    async fn delete_feedback(&self, project: &ProjectId, id: &str) -> store::Result<bool> {
        self.inner.delete_feedback(project, id).await
    }

    async fn put_score_config(
        &self,
        project: &ProjectId,
        config: &ScoreConfig,
    ) -> store::Result<()> {
        self.inner.put_score_config(project, config).await
    }

    async fn list_score_configs(&self, project: &ProjectId) -> store::Result<Vec<ScoreConfig>> {
        self.inner.list_score_configs(project).await
    }

    async fn delete_score_config(&self, project: &ProjectId, name: &str) -> store::Result<bool> {
        self.inner.delete_score_config(project, name).await
    }

    async fn create_dataset(&self, dataset: &Dataset) -> store::Result<()> {
        self.inner.create_dataset(dataset).await
    }

    async fn get_dataset(&self, project: &ProjectId, name: &str) -> store::Result<Option<Dataset>> {
        self.inner.get_dataset(project, name).await
    }

    async fn list_datasets(&self, project: &ProjectId) -> store::Result<Vec<Dataset>> {
        self.inner.list_datasets(project).await
    }

    async fn create_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        changes: &NewDatasetVersion,
    ) -> store::Result<DatasetVersion> {
        self.inner.create_dataset_version(project, dataset, changes).await
    }

    async fn get_dataset_version(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
    ) -> store::Result<Option<DatasetVersion>> {
        self.inner.get_dataset_version(project, dataset, version).await
    }

    async fn list_dataset_versions(
        &self,
        project: &ProjectId,
        dataset: &str,
    ) -> store::Result<Vec<DatasetVersion>> {
        self.inner.list_dataset_versions(project, dataset).await
    }

    async fn dataset_items(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
        after: Option<&Cursor>,
        limit: u32,
    ) -> store::Result<Page<DatasetItem>> {
        self.inner.dataset_items(project, dataset, version, after, limit).await
    }

    async fn span_datasets(
        &self,
        project: &ProjectId,
        span_id: SpanId,
    ) -> store::Result<Vec<DatasetRef>> {
        self.inner.span_datasets(project, span_id).await
    }

    /// Span events are saved as they are: they name no user until they are merged into their
    /// span, which is sealed then (`rewrite_spans`).
    async fn put_span_events(
        &self,
        project: &ProjectId,
        events: &[SpanEvent],
    ) -> store::Result<()> {
        self.inner.put_span_events(project, events).await
    }

    async fn span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> store::Result<Vec<SpanEvent>> {
        self.inner.span_events(project, spans).await
    }

    async fn delete_span_events(
        &self,
        project: &ProjectId,
        spans: &[(TraceId, SpanId)],
    ) -> store::Result<u64> {
        self.inner.delete_span_events(project, spans).await
    }

    async fn delete_traces(
        &self,
        project: &ProjectId,
        trace_ids: &[TraceId],
    ) -> store::Result<u64> {
        self.inner.delete_traces(project, trace_ids).await
    }

    async fn undecided_traces(
        &self,
        settled_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<(ProjectId, TraceId)>> {
        self.inner.undecided_traces(settled_before_ns, limit).await
    }

    async fn record_sampling_decisions(
        &self,
        decisions: &[(ProjectId, TraceId, bool)],
    ) -> store::Result<()> {
        self.inner.record_sampling_decisions(decisions).await
    }

    async fn put_feedback_batch(&self, entries: &[Feedback]) -> store::Result<()> {
        self.inner.put_feedback_batch(entries).await
    }

    async fn span_projects(&self) -> store::Result<Vec<ProjectId>> {
        self.inner.span_projects().await
    }

    async fn spans_below_tier(
        &self,
        project: &ProjectId,
        tier: RetentionTier,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<Vec<StoredSpan>> {
        let mut spans =
            self.inner.spans_below_tier(project, tier, started_before_ns, limit).await?;
        self.unsealed(&mut spans)?;
        Ok(spans)
    }

    async fn rewrite_spans(&self, spans: &[StoredSpan], tier: RetentionTier) -> store::Result<u64> {
        let sealed = self.sealed(spans)?;
        self.inner.rewrite_spans(&sealed, tier).await
    }

    async fn delete_traces_before(
        &self,
        project: &ProjectId,
        started_before_ns: UnixNanos,
        limit: u32,
    ) -> store::Result<u64> {
        self.inner.delete_traces_before(project, started_before_ns, limit).await
    }

    async fn user_traces(
        &self,
        project: &ProjectId,
        users: &[String],
        after: Option<TraceId>,
        limit: u32,
    ) -> store::Result<Vec<TraceId>> {
        self.inner.user_traces(project, users, after, limit).await
    }

    async fn purge_deleted(&self) -> store::Result<()> {
        self.inner.purge_deleted().await
    }

    async fn get_state(&self, project: &ProjectId, key: &str) -> store::Result<Option<String>> {
        self.inner.get_state(project, key).await
    }

    async fn put_state(&self, project: &ProjectId, key: &str, value: &str) -> store::Result<()> {
        self.inner.put_state(project, key, value).await
    }

    // Eval runs hold the outputs of replayed suites, not recorded spans: passed through.

    async fn put_eval_run(&self, run: &store::EvalRunRecord) -> store::Result<()> {
        self.inner.put_eval_run(run).await
    }

    async fn list_eval_runs(
        &self,
        project: &ProjectId,
        limit: u32,
    ) -> store::Result<Vec<store::EvalRunRow>> {
        self.inner.list_eval_runs(project, limit).await
    }

    async fn get_eval_run(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> store::Result<Option<store::EvalRunRecord>> {
        self.inner.get_eval_run(project, id).await
    }

    async fn sampling_decision(
        &self,
        project: &ProjectId,
        trace_id: TraceId,
    ) -> store::Result<Option<bool>> {
        self.inner.sampling_decision(project, trace_id).await
    }
}
