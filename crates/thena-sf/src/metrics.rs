//! The connector's metrics, kept and rendered by `prometheus-client` (the
//! Prometheus project's Rust client) in the OpenMetrics text format. Names
//! and labels are documented in docs/operations.md ("What to monitor").

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// End-to-end latency buckets (seconds): acknowledgement to record in Salesforce.
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Conn {
    connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Received {
    connection: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    connection: String,
    outcome: String,
}

fn conn(c: &str) -> Conn {
    Conn {
        connection: c.to_string(),
    }
}

fn outcome_of(connection: &str, outcome: &str) -> Outcome {
    Outcome {
        connection: connection.to_string(),
        outcome: outcome.to_string(),
    }
}

pub struct Metrics {
    registry: Registry,
    received: Family<Received, Counter>,
    outcomes: Family<Outcome, Counter>,
    api_calls: Family<Conn, Counter>,
    usage_ratio: Family<Conn, Gauge<f64, AtomicU64>>,
    /// Read from the store at each scrape: cleared first, so a connection
    /// that is gone leaves no stale series.
    queue_depth: Family<Conn, Gauge>,
    failed_last_hour: Family<Conn, Gauge>,
    spool: Gauge,
    end_to_end: Histogram,
    /// connection → the org's API usage (used, daily limit), from the last answer seen.
    usage: Mutex<BTreeMap<String, (u64, u64)>>,
    /// One scrape at a time fills the store-read gauges and encodes them.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            received: Family::default(),
            outcomes: Family::default(),
            api_calls: Family::default(),
            usage_ratio: Family::default(),
            queue_depth: Family::default(),
            failed_last_hour: Family::default(),
            spool: Gauge::default(),
            end_to_end: Histogram::new(BUCKETS),
            usage: Mutex::default(),
            scrape: Mutex::default(),
        };
        // Counters get their `_total` suffix from the library.
        macro_rules! register {
            ($($name:literal, $help:literal, $metric:expr;)*) => {
                $(m.registry.register($name, $help, $metric.clone());)*
            };
        }
        register! {
            "thena_sf_events_received", "Webhook events received, by result", m.received;
            "thena_sf_requests", "Requests synced, skipped or failed", m.outcomes;
            "thena_sf_salesforce_api_calls", "Salesforce API calls made", m.api_calls;
            "thena_sf_org_api_usage_ratio", "The org's API calls in the last 24 h over its daily limit", m.usage_ratio;
            "thena_sf_queue_depth", "Snapshots waiting to be sent", m.queue_depth;
            "thena_sf_records_failed_last_hour", "Records Salesforce refused in the last hour (the connection shows as degraded while above 0)", m.failed_last_hour;
            "thena_sf_spool_events", "Accepted events waiting in this replica's local spool for the store", m.spool;
            "thena_sf_end_to_end_seconds", "From acknowledging an event to its record in Salesforce", m.end_to_end;
        }
        m
    }
}

impl Metrics {
    pub fn received(&self, connection: &str, result: &str) {
        self.received
            .get_or_create(&Received {
                connection: connection.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn outcome(&self, connection: &str, outcome: &str, n: u64) {
        self.outcomes
            .get_or_create(&outcome_of(connection, outcome))
            .inc_by(n);
    }

    /// The API calls a connection has made so far (a running total).
    pub fn set_api_calls(&self, connection: &str, calls: u64) {
        let c = self.api_calls.get_or_create(&conn(connection));
        let seen = c.get();
        if calls > seen {
            c.inc_by(calls - seen);
        }
    }

    pub fn set_usage(&self, connection: &str, used: u64, max: u64) {
        self.usage
            .lock()
            .insert(connection.to_string(), (used, max));
        if max > 0 {
            self.usage_ratio
                .get_or_create(&conn(connection))
                .set(used as f64 / max as f64);
        }
    }

    /// The org's API usage last seen: (used, daily limit).
    pub fn usage(&self, connection: &str) -> Option<(u64, u64)> {
        self.usage.lock().get(connection).copied()
    }

    pub fn latency(&self, ms: u64) {
        self.end_to_end.observe(ms as f64 / 1000.0);
    }

    pub fn outcome_count(&self, connection: &str, outcome: &str) -> u64 {
        self.outcomes
            .get_or_create(&outcome_of(connection, outcome))
            .get()
    }

    /// The text exposition; `depth` gives each connection's queue depth,
    /// `failed` its records refused in the last hour (read from the store),
    /// `spool` this replica's spooled events.
    pub fn render(&self, depth: &[(String, i64)], failed: &[(String, i64)], spool: u64) -> String {
        let _one = self.scrape.lock();
        self.queue_depth.clear();
        for (c, n) in depth {
            self.queue_depth.get_or_create(&conn(c)).set(*n);
        }
        self.failed_last_hour.clear();
        for (c, n) in failed {
            self.failed_last_hour.get_or_create(&conn(c)).set(*n);
        }
        self.spool.set(spool as i64);
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry)
            .expect("writing to a String cannot fail");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keep_their_names_and_labels() {
        let m = Metrics::default();
        m.received("acme", "accepted");
        m.received("acme", "accepted");
        m.outcome("acme", "synced", 3);
        m.set_api_calls("acme", 5);
        m.set_api_calls("acme", 7);
        m.set_usage("acme", 50, 100);
        m.latency(120);
        let text = m.render(&[("acme".into(), 4)], &[("acme".into(), 1)], 2);
        for line in [
            "thena_sf_events_received_total{connection=\"acme\",result=\"accepted\"} 2",
            "thena_sf_requests_total{connection=\"acme\",outcome=\"synced\"} 3",
            "thena_sf_salesforce_api_calls_total{connection=\"acme\"} 7",
            "thena_sf_org_api_usage_ratio{connection=\"acme\"} 0.5",
            "thena_sf_queue_depth{connection=\"acme\"} 4",
            "thena_sf_records_failed_last_hour{connection=\"acme\"} 1",
            "thena_sf_spool_events 2",
            "thena_sf_end_to_end_seconds_bucket{le=\"0.25\"} 1",
            "thena_sf_end_to_end_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // A connection gone from the store leaves no stale gauge.
        let text = m.render(&[], &[], 0);
        assert!(!text.contains("thena_sf_queue_depth{"), "{text}");
        assert_eq!(m.outcome_count("acme", "synced"), 3);
    }
}
