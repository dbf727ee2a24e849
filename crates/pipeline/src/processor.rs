//! Processors: the ordered steps between normalization and the write (redact, price, ...).

use model::StoredSpan;

/// One pipeline step. Processors see whole request batches and change spans in place; a
/// processor may remove spans from the batch (e.g. content policy never removes, sampling may).
pub trait Processor: Send + Sync {
    /// A short verb naming the step (`redact`, `price`), used in logs and `/metrics`.
    fn name(&self) -> &'static str;

    fn process(&self, spans: &mut Vec<StoredSpan>);
}

/// The configured processors, run in order.
#[derive(Default)]
pub struct ProcessorChain {
    processors: Vec<Box<dyn Processor>>,
}

impl ProcessorChain {
    pub fn new(processors: Vec<Box<dyn Processor>>) -> ProcessorChain {
        ProcessorChain { processors }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.processors.iter().map(|p| p.name()).collect()
    }

    pub fn process(&self, spans: &mut Vec<StoredSpan>) {
        for processor in &self.processors {
            processor.process(spans);
        }
    }
}
