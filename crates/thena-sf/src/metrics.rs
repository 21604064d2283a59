//! Counters and a latency histogram, rendered in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// End-to-end latency buckets (seconds): acknowledgement to record in Salesforce.
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

#[derive(Default)]
pub struct Metrics {
    /// (connection, result) → events received.
    received: Mutex<BTreeMap<(String, String), u64>>,
    /// (connection, outcome) → requests synced / skipped / failed.
    outcomes: Mutex<BTreeMap<(String, String), u64>>,
    /// connection → API calls made.
    api_calls: Mutex<BTreeMap<String, u64>>,
    /// connection → the org's API usage (used, daily limit), from the last answer seen.
    usage: Mutex<BTreeMap<String, (u64, u64)>>,
    latency_buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
}

impl Metrics {
    pub fn received(&self, connection: &str, result: &str) {
        *self
            .received
            .lock()
            .entry((connection.to_string(), result.to_string()))
            .or_default() += 1;
    }

    pub fn outcome(&self, connection: &str, outcome: &str, n: u64) {
        *self
            .outcomes
            .lock()
            .entry((connection.to_string(), outcome.to_string()))
            .or_default() += n;
    }

    pub fn set_api_calls(&self, connection: &str, calls: u64) {
        self.api_calls.lock().insert(connection.to_string(), calls);
    }

    pub fn set_usage(&self, connection: &str, used: u64, max: u64) {
        self.usage
            .lock()
            .insert(connection.to_string(), (used, max));
    }

    /// The org's API usage last seen: (used, daily limit).
    pub fn usage(&self, connection: &str) -> Option<(u64, u64)> {
        self.usage.lock().get(connection).copied()
    }

    pub fn latency(&self, ms: u64) {
        let secs = ms as f64 / 1000.0;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn outcome_count(&self, connection: &str, outcome: &str) -> u64 {
        self.outcomes
            .lock()
            .get(&(connection.to_string(), outcome.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The text exposition; `depth` gives each connection's queue depth and
    /// `failed` its records refused in the last hour (read from the store).
    pub fn render(&self, depth: &[(String, i64)], failed: &[(String, i64)]) -> String {
        let mut s = String::new();
        let esc = |v: &str| {
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        s.push_str("# HELP thena_sf_events_received_total Webhook events received, by result.\n# TYPE thena_sf_events_received_total counter\n");
        for ((c, r), n) in self.received.lock().iter() {
            let _ = writeln!(
                s,
                "thena_sf_events_received_total{{connection=\"{}\",result=\"{}\"}} {n}",
                esc(c),
                esc(r)
            );
        }
        s.push_str("# HELP thena_sf_requests_total Requests synced, skipped or failed.\n# TYPE thena_sf_requests_total counter\n");
        for ((c, o), n) in self.outcomes.lock().iter() {
            let _ = writeln!(
                s,
                "thena_sf_requests_total{{connection=\"{}\",outcome=\"{}\"}} {n}",
                esc(c),
                esc(o)
            );
        }
        s.push_str("# HELP thena_sf_salesforce_api_calls_total Salesforce API calls made.\n# TYPE thena_sf_salesforce_api_calls_total counter\n");
        for (c, n) in self.api_calls.lock().iter() {
            let _ = writeln!(
                s,
                "thena_sf_salesforce_api_calls_total{{connection=\"{}\"}} {n}",
                esc(c)
            );
        }
        s.push_str("# HELP thena_sf_org_api_usage_ratio The org's API calls in the last 24 h over its daily limit.\n# TYPE thena_sf_org_api_usage_ratio gauge\n");
        for (c, (used, max)) in self.usage.lock().iter() {
            if *max > 0 {
                let _ = writeln!(
                    s,
                    "thena_sf_org_api_usage_ratio{{connection=\"{}\"}} {}",
                    esc(c),
                    *used as f64 / *max as f64
                );
            }
        }
        s.push_str("# HELP thena_sf_queue_depth Snapshots waiting to be sent.\n# TYPE thena_sf_queue_depth gauge\n");
        for (c, n) in depth {
            let _ = writeln!(s, "thena_sf_queue_depth{{connection=\"{}\"}} {n}", esc(c));
        }
        s.push_str("# HELP thena_sf_records_failed_last_hour Records Salesforce refused in the last hour (the connection shows as degraded while above 0).\n# TYPE thena_sf_records_failed_last_hour gauge\n");
        for (c, n) in failed {
            let _ = writeln!(
                s,
                "thena_sf_records_failed_last_hour{{connection=\"{}\"}} {n}",
                esc(c)
            );
        }
        s.push_str("# HELP thena_sf_end_to_end_seconds From acknowledging an event to its record in Salesforce.\n# TYPE thena_sf_end_to_end_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "thena_sf_end_to_end_seconds_bucket{{le=\"{b}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "thena_sf_end_to_end_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "thena_sf_end_to_end_seconds_sum {}",
            self.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(s, "thena_sf_end_to_end_seconds_count {count}");
        s
    }
}
