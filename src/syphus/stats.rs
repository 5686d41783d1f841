//! Counters of a generation run, for progress lines and the report.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::client::Cause;

/// Upper bounds (milliseconds) of the latency histogram's buckets; the last bucket is open.
pub const LATENCY_BOUNDS_MS: [u64; 10] = [
    100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000,
];

/// Request latencies in buckets (see [`LATENCY_BOUNDS_MS`]).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Histogram {
    pub bounds_ms: Vec<u64>,
    /// `counts[i]`: latencies ≤ `bounds_ms[i]` and above the bound before; the last count is
    /// for latencies above every bound.
    pub counts: Vec<u64>,
    pub total_ms: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            bounds_ms: LATENCY_BOUNDS_MS.to_vec(),
            counts: vec![0; LATENCY_BOUNDS_MS.len() + 1],
            total_ms: 0,
        }
    }
}

impl Histogram {
    pub fn add(&mut self, d: Duration) {
        let ms = d.as_millis() as u64;
        let i = self
            .bounds_ms
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(self.bounds_ms.len());
        self.counts[i] += 1;
        self.total_ms += ms;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Stats {
    /// Queries of the plan.
    pub queries: u64,
    /// Distinct request bodies of the first pass (identical requests are sent once).
    pub requests_planned: u64,
    /// Requests answered from the store without sending anything.
    pub served_from_store: u64,
    /// HTTP requests sent (retries included).
    pub requests_sent: u64,
    /// HTTP requests answered with a message.
    pub responses_ok: u64,
    /// HTTP requests that were retries of an earlier attempt.
    pub retries: u64,
    /// The most requests in flight at once.
    pub in_flight_peak: u64,
    /// Tokens the API reported for the requests sent by this run.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Cost of those tokens, when prices are set.
    pub cost: Option<f64>,
    /// Failed attempts by cause (`rate_limited`, `server_error`, `timeout`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Requests of the reask rounds and the translation pass (all of their bodies).
    pub reask_requests: u64,
    pub translation_requests: u64,
    pub latency: Histogram,
}

impl Stats {
    pub(crate) fn count_failure(&mut self, cause: Cause) {
        *self.failures.entry(cause.as_str().to_string()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let mut h = Histogram::default();
        h.add(Duration::from_millis(50));
        h.add(Duration::from_millis(100));
        h.add(Duration::from_millis(101));
        h.add(Duration::from_secs(600));
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[1], 1);
        assert_eq!(*h.counts.last().unwrap(), 1);
        assert_eq!(h.count(), 4);
    }
}
