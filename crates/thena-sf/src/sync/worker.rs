//! One connection's worker: its state and settings. What it does is split
//! by concern: `schedule` (when to send), `step` (one claim-to-record
//! step), `together` (new Contacts and riding lookups in the write),
//! `trouble` (failed calls).

use std::sync::Arc;
use std::time::Duration;

use salesforce::Client;
use tokio::sync::{watch, Notify};

use crate::domain::resolve::{Cache, PublicDomains};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

use super::pace::Pace;
use super::results;

mod schedule;
mod step;
mod together;
mod trouble;

/// Why a sync step stopped before its end, by the layer that failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Salesforce(#[from] salesforce::Error),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// Category fields could not be set up for a reason not Salesforce's.
    #[error("setting up category fields failed: {0}")]
    Setup(String),
}

/// What one turn of a worker's loop does.
enum Turn {
    /// The worker ends (shutdown, the connection deleted).
    Stop,
    /// Look again at once.
    Again,
    /// Wait this long (or until woken), then look again.
    Sleep(Duration),
    /// Claim the due snapshots and send them.
    Send,
}

/// How a worker batches and backs off.
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch: usize,
    /// How many waiting snapshots are resolved together when the queue is deep
    /// (resolution queries cost one per 200 distinct values, not one per batch).
    pub claim: usize,
    /// Acknowledgement to written in Salesforce, at most (config
    /// `latency_budget_ms`): the worker waits within it for calls to fill.
    pub latency_budget: Duration,
    /// The longest a flood is waited out before its records are sent.
    pub burst_linger: Duration,
    /// Events per second from which arrivals are a flood (config
    /// `flood_events_per_second`): coalesced rather than held to the budget.
    pub flood_rate: f64,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Pause above this share of the org's daily API limit.
    pub budget_share: f64,
    /// After this many failed attempts a record is dead-lettered.
    pub max_attempts: i64,
    /// How often a paused connection checks whether the budget has headroom again.
    pub pause_recheck: Duration,
    pub public_domains: PublicDomains,
    /// Send `Sforce-Duplicate-Rule-Header: allowSave=true` with new Contacts
    /// (config `allow_duplicate_save`; off for orgs whose alert rules must
    /// stop integrations too).
    pub allow_duplicate_save: bool,
    /// Categories of one event that may get a field; the rest are noted.
    pub max_categories_per_event: usize,
    /// Category fields the connector creates per connection, at most
    /// (never above [`CATEGORY_FIELDS_CEILING`]).
    pub max_category_fields: usize,
}

/// Tries of a call that fails with a permanent error before its records go
/// to the dead letters.
const PERMANENT_CALL_TRIES: i64 = 5;

/// Write calls of one step in flight at once (Salesforce limits only
/// long-running concurrent calls, those over 20 s, to 25 per org).
const PARALLEL_CALLS: usize = 4;

/// Half the smallest per-object custom field limit of a real org (500):
/// the connector never takes more of `Request__c` for categories.
pub const CATEGORY_FIELDS_CEILING: usize = 250;

impl Settings {
    /// The settings the config gives (the rest as their defaults).
    pub fn from_config(c: &crate::config::Config) -> Settings {
        Settings {
            budget_share: c.api_budget_share,
            max_categories_per_event: c.limits.max_categories_per_event,
            max_category_fields: c.limits.max_category_fields,
            allow_duplicate_save: c.allow_duplicate_save,
            latency_budget: Duration::from_millis(c.latency_budget_ms),
            flood_rate: f64::from(c.flood_events_per_second.max(1)),
            ..Default::default()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch: 200,
            claim: 2000,
            latency_budget: Duration::from_millis(500),
            burst_linger: Duration::from_secs(20),
            flood_rate: 1_500.0,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(300),
            budget_share: 0.9,
            max_attempts: 50,
            pause_recheck: Duration::from_secs(60),
            public_domains: PublicDomains::default(),
            max_categories_per_event: 50,
            max_category_fields: 100,
            allow_duplicate_save: true,
        }
    }
}

/// What the rest of the app holds of a running worker.
#[derive(Clone)]
pub struct WorkerHandle {
    pub notify: Arc<Notify>,
    pub client: Client,
    /// Events queued for this connection so far (the webhook handler counts them).
    pub arrivals: Arc<std::sync::atomic::AtomicU64>,
}

pub struct Worker {
    name: String,
    store: Store,
    client: Client,
    user_id: String,
    notify: Arc<Notify>,
    metrics: Arc<Metrics>,
    settings: Settings,
    cache: Cache,
    shutdown: watch::Receiver<bool>,
    arrivals: Arc<std::sync::atomic::AtomicU64>,
    config: crate::config::Config,
    /// API calls of clients replaced after a reconnect.
    calls_before: u64,
    pace: Pace,
    /// The arrival count when the queue's requestors were last resolved ahead.
    warmed_at: Option<u64>,
    /// The requests (and versions) the last warm looked up.
    warmed: std::collections::HashSet<(String, i64)>,
    /// The latest acknowledgement time whose requestors were looked up (by
    /// a step, its warm or a ride): later ones may need a lookup call.
    looked_until_ms: i64,
    /// What the current step did with its records.
    tally: results::Tally,
    /// When Salesforce answered the current step's write (a record is in
    /// Salesforce then, before the step records it in the store).
    answered: Option<(std::time::Instant, i64)>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        store: Store,
        client: Client,
        user_id: String,
        metrics: Arc<Metrics>,
        settings: Settings,
        shutdown: watch::Receiver<bool>,
        config: crate::config::Config,
    ) -> (Worker, WorkerHandle) {
        let notify = Arc::new(Notify::new());
        let arrivals = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handle = WorkerHandle {
            notify: notify.clone(),
            client: client.clone(),
            arrivals: arrivals.clone(),
        };
        let w = Worker {
            name,
            store,
            client,
            user_id,
            notify,
            metrics,
            settings: settings.clone(),
            cache: Cache::new(50_000, Duration::from_secs(3600)),
            shutdown,
            arrivals,
            config,
            calls_before: 0,
            pace: Pace::new(settings.latency_budget, settings.batch, settings.flood_rate),
            warmed_at: None,
            warmed: Default::default(),
            looked_until_ms: 0,
            tally: results::Tally::default(),
            answered: None,
        };
        (w, handle)
    }

    fn backoff(&self, attempts: i64) -> i64 {
        salesforce::error::backoff(
            attempts.clamp(0, 30) as u32,
            self.settings.backoff_base,
            self.settings.backoff_cap,
        )
        .as_millis() as i64
    }

    /// Waits for `d`, a new event, or shutdown. Returns false on shutdown.
    async fn wait(&mut self, d: Duration) -> bool {
        if *self.shutdown.borrow() {
            return false;
        }
        tokio::select! {
            _ = self.notify.notified() => true,
            _ = tokio::time::sleep(d) => true,
            _ = self.shutdown.changed() => false,
        }
    }
}
