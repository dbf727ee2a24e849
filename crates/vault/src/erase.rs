//! Erasing a user: destroy their data keys (for the user id as given and as redaction hashes
//! it), then remove the content that their traces still carry in plaintext (spans without a
//! user id, such as child spans, are not sealed), purge the backend's files, and write the
//! audit record.

use std::sync::Arc;

use model::{ProjectId, TraceId, UnixNanos};
use pipeline::redact::RedactProcessor;
use serde::Serialize;
use store::{RetentionTier, Store};

use crate::seal::mark_erased;
use crate::vault::{Vault, now_ns};
use crate::{Result, SealingStore};

/// Traces read and rewritten per step.
const PAGE: u32 = 100;

/// One erasure, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erasure {
    pub project: ProjectId,
    /// The ids of the user's keys (keyed hashes; never the user id itself).
    pub key_ids: Vec<String>,
    pub time_ns: UnixNanos,
    /// Who asked: `api` or `cli` (`loupe erase`), with `:<key id>` (the first 12 hex
    /// characters of the API key's SHA-256) when a key was used.
    pub who: String,
    /// Keys that existed and were destroyed (0 when the user had no sealed content).
    pub keys_destroyed: u64,
    /// Traces of the user whose remaining content was removed.
    pub traces_purged: u64,
    /// Spans of those traces rewritten without content.
    pub spans_purged: u64,
}

/// Erases users. Holds the sealing store (to read traces as callers see them), the vault, and
/// the redaction processor (to find the hashed form of a user id), when redaction is on.
#[derive(Clone)]
pub struct Eraser {
    store: Arc<SealingStore>,
    redact: Option<Arc<RedactProcessor>>,
}

impl Eraser {
    pub fn new(store: Arc<SealingStore>, redact: Option<Arc<RedactProcessor>>) -> Eraser {
        Eraser { store, redact }
    }

    pub fn vault(&self) -> &Arc<Vault> {
        self.store.vault()
    }

    /// The ids a user's records can carry: as given, and as redaction stores it.
    pub fn user_ids(&self, project: &ProjectId, user: &str) -> Vec<String> {
        let mut res = vec![user.to_owned()];
        if let Some(redact) = &self.redact {
            let hashed = redact.hash_user_id(project.as_str(), user);
            if hashed != user {
                res.push(hashed);
            }
        }
        res
    }

    /// Erases every recorded content of `user` in `project`; `who` goes into the audit log.
    pub async fn erase_user(&self, project: &ProjectId, user: &str, who: &str) -> Result<Erasure> {
        let users = self.user_ids(project, user);
        let vault = self.vault().clone();
        let (key_ids, keys_destroyed) = {
            let (project, users) = (project.clone(), users.clone());
            tokio::task::spawn_blocking(move || vault.destroy(&project, &users)).await.map_err(
                |e| crate::Error::Keys {
                    path: crate::KEYS_FILE.to_owned(),
                    message: e.to_string(),
                },
            )??
        };
        let (traces_purged, spans_purged) = self.remove_trace_content(project, &users).await?;
        self.store.purge_deleted().await?;
        let erasure = Erasure {
            project: project.clone(),
            key_ids,
            time_ns: now_ns(),
            who: who.to_owned(),
            keys_destroyed,
            traces_purged,
            spans_purged,
        };
        self.vault().record_erasure(&erasure)?;
        tracing::info!(
            project = %project,
            keys_destroyed,
            traces_purged,
            spans_purged,
            who,
            "user erased"
        );
        Ok(erasure)
    }

    /// Rewrites every span of the users' traces without content, as retention's `Structure`
    /// tier does, and marks it erased; discards their traces still staged for a sampling
    /// decision. Returns (traces rewritten, spans rewritten or discarded).
    async fn remove_trace_content(
        &self,
        project: &ProjectId,
        users: &[String],
    ) -> Result<(u64, u64)> {
        // Traces still waiting for a tail-sampling decision are discarded whole: stored after
        // this erasure, their unsealed spans would carry content it removes.
        let n_discarded = self.store.discard_staged_user_traces(project, users).await?;
        let (mut n_traces, mut n_spans) = (0u64, n_discarded);
        let mut after: Option<TraceId> = None;
        loop {
            let trace_ids = self.store.user_traces(project, users, after, PAGE).await?;
            let Some(last) = trace_ids.last() else { break };
            after = Some(*last);
            for trace_id in &trace_ids {
                // Read through the sealing store: sealed spans come back without content (their
                // key is gone), unsealed ones with the plaintext that must go.
                let mut spans = self.store.get_trace(project, *trace_id).await?;
                for span in &mut spans {
                    pipeline::content::remove_content(span);
                    mark_erased(span);
                }
                n_spans +=
                    self.store.inner().rewrite_spans(&spans, RetentionTier::Structure).await?;
                n_traces += 1;
            }
            if trace_ids.len() < PAGE as usize {
                break;
            }
        }
        Ok((n_traces, n_spans))
    }

    /// The audit log of a project, oldest first.
    pub fn erasures(&self, project: &ProjectId) -> Result<Vec<Erasure>> {
        self.vault().erasures(project)
    }
}
