//! The processor sections of `loupe.toml` (`[pipeline.content]`, `[pipeline.redact]`,
//! `[pipeline.price]`, `[pipeline.fingerprint]`, `[pipeline.sample]`) and the ordered [`ProcessorChain`] built from
//! them, with every processor's counters for `/metrics`.
//!
//! The order is fixed: `redact`, `fingerprint`, `content`, `price`. Redaction comes first so
//! no later step (and nothing written) sees raw personal data; fingerprints are taken on
//! redacted content before the content policy removes or cuts it (see [`crate::fingerprint`]);
//! pricing reads only structure (model, tokens) and may run anywhere.

use std::sync::Arc;

use model::StoredSpan;
use serde::Deserialize;

use crate::content::{ContentConfig, ContentProcessor, RawContentConfig};
use crate::fingerprint::{FingerprintProcessor, RawFingerprintConfig};
use crate::price::{PriceProcessor, PriceTable, RawPriceConfig};
use crate::redact::{RawRedactConfig, RedactConfig, RedactProcessor};
use crate::sample::{RawSampleConfig, SampleConfig};
use crate::{Error, Processor, ProcessorChain};

/// The processor sections of the `[pipeline]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipelineConfig {
    /// Content policy: record content or not, content sampling, size cap per field.
    #[serde(default)]
    pub content: RawContentConfig,
    /// Redaction of personal data and secrets, hashing of user ids.
    #[serde(default)]
    pub redact: RawRedactConfig,
    /// Cost per span from the price table.
    #[serde(default)]
    pub price: RawPriceConfig,
    /// Fingerprints of input messages and system instructions.
    #[serde(default)]
    pub fingerprint: RawFingerprintConfig,
    /// Tail-sampling policies (validated here; the sampler that applies them runs beside the
    /// chain, not in it).
    #[serde(default)]
    pub sample: RawSampleConfig,
}

/// The configured processors. Each is shared between the chain and the holder of this value,
/// which reads their counters and uses their pure helpers (the price table, user-id hashing).
pub struct Processors {
    pub redact: Option<Arc<RedactProcessor>>,
    pub fingerprint: Option<Arc<FingerprintProcessor>>,
    pub content: Arc<ContentProcessor>,
    pub price: Option<Arc<PriceProcessor>>,
    /// The validated tail-sampling settings, for the background sampler.
    pub sample: SampleConfig,
}

/// One counter of one processor, for `/metrics` (`loupe_processor_<name>_total{processor=…}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorCounter {
    pub processor: &'static str,
    pub name: &'static str,
    /// Extra labels, e.g. `kind="email"` for redactions.
    pub labels: Vec<(&'static str, String)>,
    pub value: u64,
}

impl Processors {
    /// Validates every section; the first invalid one is the error.
    pub fn from_raw(raw: &RawPipelineConfig) -> Result<Processors, Error> {
        let redact = match raw.redact.enabled.unwrap_or(true) {
            true => Some(Arc::new(RedactProcessor::new(RedactConfig::from_raw(&raw.redact)?))),
            false => None,
        };
        let fingerprint = match raw.fingerprint.enabled.unwrap_or(true) {
            true => Some(Arc::new(FingerprintProcessor::new())),
            false => None,
        };
        let content = Arc::new(ContentProcessor::new(ContentConfig::from_raw(&raw.content)?));
        let price = match raw.price.enabled.unwrap_or(true) {
            true => Some(Arc::new(PriceProcessor::new(PriceTable::from_raw(&raw.price)?))),
            false => None,
        };
        let sample = SampleConfig::from_raw(&raw.sample)?;
        Ok(Processors { redact, fingerprint, content, price, sample })
    }

    /// The chain, in the fixed order.
    pub fn chain(&self) -> ProcessorChain {
        let mut res: Vec<Box<dyn Processor>> = Vec::new();
        if let Some(redact) = &self.redact {
            res.push(Box::new(Shared(redact.clone())));
        }
        if let Some(fingerprint) = &self.fingerprint {
            res.push(Box::new(Shared(fingerprint.clone())));
        }
        res.push(Box::new(Shared(self.content.clone())));
        if let Some(price) = &self.price {
            res.push(Box::new(Shared(price.clone())));
        }
        ProcessorChain::new(res)
    }

    /// Every counter of every configured processor.
    pub fn counters(&self) -> Vec<ProcessorCounter> {
        let mut res = Vec::new();
        let mut push = |processor, name, value| {
            res.push(ProcessorCounter { processor, name, labels: Vec::new(), value });
        };
        if let Some(redact) = &self.redact {
            let c = redact.counters();
            push("redact", "spans", c.spans);
            push("redact", "spans_redacted", c.spans_redacted);
            for (kind, value) in c.by_kind {
                res.push(ProcessorCounter {
                    processor: "redact",
                    name: "redactions",
                    labels: vec![("kind", kind)],
                    value,
                });
            }
        }
        let mut push = |processor, name, value| {
            res.push(ProcessorCounter { processor, name, labels: Vec::new(), value });
        };
        if let Some(fingerprint) = &self.fingerprint {
            let c = fingerprint.counters();
            push("fingerprint", "spans", c.spans);
            push("fingerprint", "spans_input", c.spans_input);
            push("fingerprint", "spans_system", c.spans_system);
        }
        let c = self.content.counters();
        push("content", "spans", c.spans);
        push("content", "spans_removed_disabled", c.spans_removed_disabled);
        push("content", "spans_removed_sampled_out", c.spans_removed_sampled_out);
        push("content", "spans_truncated", c.spans_truncated);
        push("content", "fields_truncated", c.fields_truncated);
        if let Some(price) = &self.price {
            let c = price.counters();
            push("price", "spans", c.spans);
            push("price", "spans_priced", c.spans_priced);
            push("price", "spans_unknown_price", c.spans_unknown_price);
        }
        res
    }
}

/// A processor shared with [`Processors`], so its counters stay readable after the chain owns
/// it.
struct Shared<T>(Arc<T>);

impl<T: Processor> Processor for Shared<T> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn process(&self, spans: &mut Vec<StoredSpan>) {
        self.0.process(spans);
    }
}

#[cfg(test)]
#[path = "processors_tests.rs"]
mod tests;
