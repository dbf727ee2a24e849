//! The running p99 trace duration per root span name, for the `latency` policy's
//! `percentile = 99`: a bounded reservoir of recent durations per name, with a cap on names.

use std::collections::HashMap;

/// Durations kept per root name (the most recent ones).
const SAMPLES_PER_NAME: usize = 512;
/// Fewer samples than this give no p99 (it would be the maximum of a handful).
const MIN_SAMPLES: usize = 100;

#[derive(Debug, Default)]
struct Reservoir {
    /// Invariant: at most `SAMPLES_PER_NAME` entries; `next` indexes the oldest once full.
    durations: Vec<u64>,
    next: usize,
    /// When this name was last observed (a counter), to evict the least recently used name.
    last_used: u64,
}

/// Running p99 per root name. Memory is bounded by `max_names * SAMPLES_PER_NAME` durations.
#[derive(Debug)]
pub struct LatencyEstimator {
    by_name: HashMap<String, Reservoir>,
    max_names: usize,
    clock: u64,
}

impl LatencyEstimator {
    pub fn new(max_names: usize) -> LatencyEstimator {
        LatencyEstimator { by_name: HashMap::new(), max_names: max_names.max(1), clock: 0 }
    }

    /// The p99 of the recent durations of traces with this root name, once enough were seen.
    pub fn p99(&self, root_name: &str) -> Option<u64> {
        let reservoir = self.by_name.get(root_name)?;
        if reservoir.durations.len() < MIN_SAMPLES {
            return None;
        }
        let mut sorted = reservoir.durations.clone();
        sorted.sort_unstable();
        // The nearest-rank p99: the smallest duration at or above 99% of the samples.
        let rank = (sorted.len() * 99).div_ceil(100);
        sorted.get(rank.saturating_sub(1)).copied()
    }

    /// Adds one trace's duration. A new name beyond `max_names` evicts the least recently used.
    pub fn observe(&mut self, root_name: &str, duration_ns: u64) {
        self.clock += 1;
        if !self.by_name.contains_key(root_name) && self.by_name.len() >= self.max_names {
            let oldest = self
                .by_name
                .iter()
                .min_by_key(|(_, reservoir)| reservoir.last_used)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                self.by_name.remove(&oldest);
            }
        }
        let reservoir = self.by_name.entry(root_name.to_owned()).or_default();
        reservoir.last_used = self.clock;
        if reservoir.durations.len() < SAMPLES_PER_NAME {
            reservoir.durations.push(duration_ns);
        } else {
            reservoir.durations[reservoir.next] = duration_ns;
            reservoir.next = (reservoir.next + 1) % SAMPLES_PER_NAME;
        }
    }

    pub fn n_names(&self) -> usize {
        self.by_name.len()
    }
}

#[cfg(test)]
mod tests {
    use super::LatencyEstimator;

    #[test]
    fn p99_needs_enough_samples_and_names_are_capped() {
        let mut estimator = LatencyEstimator::new(2);
        for ms in 1..=99 {
            estimator.observe("chat", ms * 1_000_000);
        }
        assert_eq!(estimator.p99("chat"), None);
        estimator.observe("chat", 100 * 1_000_000);
        assert_eq!(estimator.p99("chat"), Some(99 * 1_000_000));
        // Past the reservoir size the oldest durations are replaced.
        for _ in 0..600 {
            estimator.observe("chat", 5);
        }
        assert_eq!(estimator.p99("chat"), Some(5));
        estimator.observe("search", 1);
        estimator.observe("chat", 1);
        estimator.observe("embed", 1);
        assert_eq!(estimator.n_names(), 2);
        assert_eq!(estimator.p99("search"), None);
        assert_eq!(estimator.p99("chat"), Some(5));
    }
}
