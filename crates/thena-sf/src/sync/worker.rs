//! One connection's worker.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use salesforce::{Action, Client, RecordResult};
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::domain::mapping::{self, Lengths, Links};
use crate::domain::resolve::{Cache, Outcome, PublicDomains, Request};
use crate::metrics::Metrics;
use crate::provision::{self, schema};
use crate::store::queue::{Claimed, RequestState, Synced};
use crate::store::{ConnStatus, Store, StoreError};

use super::pace::{Decision, Pace};
use super::plan::{self, ToSend};
use super::resolve_io;
use super::results::{self, Verdict};

mod together;

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
    /// What the current step did with its records.
    tally: results::Tally,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What the resolver needs of each claimed request.
fn requests_of(batch: &[Claimed], states: &HashMap<String, RequestState>) -> Vec<Request> {
    batch
        .iter()
        .map(|c| {
            let previous = states.get(&c.request_id).and_then(|s| {
                Some((
                    s.requestor_key.clone()?,
                    Links {
                        contact: s.contact_id.clone()?,
                        account: s.account_id.clone()?,
                    },
                ))
            });
            Request {
                request_id: c.request_id.clone(),
                requestor: c.snapshot.requestor.set().cloned(),
                team_name: c.snapshot.team_name.set().cloned(),
                previous,
                fresh: c.attempts < 0,
            }
        })
        .collect()
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
            tally: results::Tally::default(),
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

    pub async fn run(mut self) {
        info!(connection = %self.name, "worker started");
        loop {
            if *self.shutdown.borrow() || self.store.lease_lost(&self.name) {
                break;
            }
            let go_on = match self.turn().await {
                Turn::Stop => false,
                Turn::Again => true,
                Turn::Sleep(d) => self.wait(d).await,
                Turn::Send => {
                    self.send_due().await;
                    true
                }
            };
            if !go_on {
                break;
            }
        }
        info!(connection = %self.name, "worker stopped");
    }

    /// What this turn of the loop does, from the connection's state, the
    /// queue's shape and the pace.
    async fn turn(&mut self) -> Turn {
        if let Some(t) = self.connection_turn().await {
            return t;
        }
        let (n, oldest, soonest) = match self.store.queue_shape(&self.name).await {
            Ok(s) => s,
            Err(e) => {
                warn!(connection = %self.name, error = %e, "cannot read the queue");
                return Turn::Sleep(Duration::from_secs(1));
            }
        };
        if n == 0 {
            return Turn::Sleep(Duration::from_secs(30));
        }
        let now = now_ms();
        if let Some(s) = soonest.filter(|s| *s > now) {
            return Turn::Sleep(Duration::from_millis((s - now) as u64));
        }
        self.pace
            .arrivals(self.arrivals.load(Ordering::Relaxed), Instant::now());
        let age = Duration::from_millis((now - oldest.unwrap_or(now)).max(0) as u64);
        match self.pace.decide(n as usize, age) {
            // The requestors gathered since the last step are resolved
            // together (one lookup call for all), then the step only writes.
            Decision::Send => {
                let warming = Instant::now();
                if self.warm().await {
                    self.pace.warm_took(warming.elapsed());
                }
                Turn::Send
            }
            Decision::Wait(d) => {
                if self
                    .wait_for_arrivals(d, self.pace.to_fill(n as usize))
                    .await
                {
                    Turn::Again
                } else {
                    Turn::Stop
                }
            }
            Decision::Flood => {
                self.let_flood_pass().await;
                Turn::Send
            }
        }
    }

    /// The turn the connection's state decides (deleted, unreadable, waiting
    /// for a reconnect, paused); `None` when it is healthy. Takes credentials
    /// newer than this worker's (a reconnect made elsewhere).
    async fn connection_turn(&mut self) -> Option<Turn> {
        let status = match self.store.connection_state(&self.name).await {
            Ok((status, issued_at_ms)) => {
                if issued_at_ms > self.client.tokens().issued_at_ms as i64 {
                    self.take_new_credentials().await;
                }
                status
            }
            Err(StoreError::NoConnection(_)) => {
                info!(connection = %self.name, "the connection was deleted");
                return Some(Turn::Stop);
            }
            Err(e) => {
                warn!(connection = %self.name, error = %e, "cannot read the connection");
                return Some(Turn::Sleep(Duration::from_secs(1)));
            }
        };
        match status {
            ConnStatus::ReconnectNeeded => Some(Turn::Sleep(Duration::from_secs(30))),
            ConnStatus::Paused if self.try_resume().await => Some(Turn::Again),
            ConnStatus::Paused => {
                let at = chrono::Utc::now() + self.settings.pause_recheck;
                // For the page: when this connection looks again.
                let _ = self
                    .store
                    .set_recheck(&self.name, at.timestamp_millis())
                    .await;
                Some(Turn::Sleep(self.settings.pause_recheck))
            }
            ConnStatus::Healthy => None,
        }
    }

    /// Claims the due snapshots and sends them; then the API usage and budget.
    async fn send_due(&mut self) {
        let limit = self.settings.claim.max(self.settings.batch) as i64;
        let batch = match self.store.due(&self.name, limit).await {
            Ok(b) => b,
            Err(e) => {
                warn!(connection = %self.name, error = %e, "cannot claim a batch");
                return;
            }
        };
        if batch.is_empty() {
            return;
        }
        self.step(&batch).await;
        self.metrics
            .set_api_calls(&self.name, self.calls_before + self.client.calls());
        if let Some(u) = self.client.api_usage() {
            self.metrics.set_usage(&self.name, u.used, u.max);
        }
        self.check_budget().await;
    }

    /// Sends one claimed batch, within a `batch` span, and logs what came of it.
    async fn step(&mut self, batch: &[Claimed]) {
        use tracing::Instrument;
        let started = Instant::now();
        let calls = self.client.calls();
        self.tally = results::Tally::default();
        let span = tracing::info_span!("batch", connection = %self.name, records = batch.len());
        async {
            match self.process(batch).await {
                Ok(()) => {}
                Err(SyncError::Salesforce(e)) => self.on_call_error(batch, e).await,
                // Its records stay queued as they are: the next step reads them again.
                Err(SyncError::Store(e)) => {
                    warn!(connection = %self.name, error = %e, "the store failed during a step; its records stay queued");
                    self.wait(Duration::from_secs(1)).await;
                }
                // As a call that cannot succeed: retried a few times, then dead letters.
                Err(SyncError::Setup(text)) => {
                    self.on_call_error(batch, salesforce::Error::Protocol(text))
                        .await
                }
            }
        }
        .instrument(span.clone())
        .await;
        let took = started.elapsed();
        self.pace.step_took(took);
        let t = self.tally;
        span.in_scope(|| {
            info!(
                connection = %self.name,
                records = batch.len(),
                synced = t.synced,
                unchanged = t.unchanged,
                skipped = t.skipped,
                failed = t.failed,
                retried = t.retried(batch.len()),
                calls = self.client.calls() - calls,
                ms = took.as_millis() as u64,
                "batch done"
            )
        });
    }

    /// Counts `n` records of a step's `outcome` ("synced", "skipped", "failed").
    fn count(&mut self, outcome: &str, n: u64) {
        match outcome {
            "synced" => self.tally.synced += n,
            "skipped" => self.tally.skipped += n,
            "failed" => self.tally.failed += n,
            _ => {}
        }
        self.metrics.outcome(&self.name, outcome, n);
    }

    /// Uses the stored credentials when they are not the ones this worker's client holds.
    async fn take_new_credentials(&mut self) {
        let Ok(c) = self.store.connection(&self.name).await else {
            return;
        };
        if c.tokens.access_token != self.client.tokens().access_token {
            self.calls_before += self.client.calls();
            self.client = crate::connect::client_for(&self.store, &c, &self.config);
            if let Ok(u) = crate::connect::user_id(&c.tokens) {
                self.user_id = u;
            }
        }
    }

    /// Waits up to `d` for `want` more events (a call's worth), or shutdown.
    /// Returns false on shutdown. Polls the arrival counter rather than
    /// waking on every event.
    async fn wait_for_arrivals(&mut self, d: Duration, want: usize) -> bool {
        let start = self.arrivals.load(Ordering::Relaxed);
        let until = Instant::now() + d;
        loop {
            if *self.shutdown.borrow() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(left.min(Duration::from_millis(20))) => {}
                _ = self.shutdown.changed() => return false,
            }
            if self.arrivals.load(Ordering::Relaxed) - start >= want as u64 {
                return true;
            }
        }
    }

    /// While a flood is still arriving (at most `burst_linger`), wait, so
    /// that each request's versions coalesce into one write.
    async fn let_flood_pass(&mut self) {
        let started = Instant::now();
        info!(connection = %self.name, rate = self.pace.rate() as u64, "events arrive faster than they can be written: waiting for the flood to pass");
        while started.elapsed() < self.settings.burst_linger && !*self.shutdown.borrow() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.pace
                .arrivals(self.arrivals.load(Ordering::Relaxed), Instant::now());
            if !self.pace.flooding() {
                return;
            }
        }
    }

    async fn try_resume(&mut self) -> bool {
        match self.client.limits().await {
            Ok(l) => {
                let max = l["DailyApiRequests"]["Max"].as_f64().unwrap_or(0.0);
                let remaining = l["DailyApiRequests"]["Remaining"].as_f64().unwrap_or(0.0);
                if max > 0.0 && (max - remaining) / max < self.settings.budget_share {
                    let _ = self
                        .store
                        .set_status(&self.name, ConnStatus::Healthy, None)
                        .await;
                    info!(connection = %self.name, "API budget has headroom again: resuming");
                    return true;
                }
                false
            }
            Err(e) if e.action() == Action::Reconnect => {
                let _ = self
                    .store
                    .set_status(
                        &self.name,
                        ConnStatus::ReconnectNeeded,
                        Some(&e.to_string()),
                    )
                    .await;
                false
            }
            Err(_) => false,
        }
    }

    async fn check_budget(&mut self) {
        if let Some(u) = self.client.api_usage() {
            if u.share() >= self.settings.budget_share {
                let why = format!(
                    "API usage {}/{} is above {:.0}% of the daily limit",
                    u.used,
                    u.max,
                    self.settings.budget_share * 100.0
                );
                warn!(connection = %self.name, "{why}: pausing");
                let _ = self
                    .store
                    .set_status(&self.name, ConnStatus::Paused, Some(&why))
                    .await;
            }
        }
    }

    /// A whole call failed: pause, wait for a reconnect, repair the schema or back off.
    async fn on_call_error(&mut self, batch: &[Claimed], e: salesforce::Error) {
        let text = e.to_string();
        let code = e.code().unwrap_or("");
        match e.action() {
            Action::Reconnect => {
                warn!(connection = %self.name, code, error = %text, "reconnect needed; the queue waits");
                let _ = self
                    .store
                    .set_status(&self.name, ConnStatus::ReconnectNeeded, Some(&text))
                    .await;
            }
            Action::PauseForDay => {
                warn!(connection = %self.name, code, error = %text, "daily API limit reached; pausing");
                let _ = self
                    .store
                    .set_status(&self.name, ConnStatus::Paused, Some(&text))
                    .await;
            }
            Action::FixSchema => {
                warn!(connection = %self.name, code, error = %text, "schema problem; provisioning again");
                self.reprovision().await;
                for c in batch {
                    let _ = self
                        .store
                        .retry_later(&self.name, c, self.backoff(c.attempts), &text)
                        .await;
                }
            }
            action @ (Action::Retry | Action::RefreshAuth | Action::GiveUp) => {
                // A call that fails with a permanent error is not retried for
                // ever: after a few tries (the batch around a record may be
                // what fails) its records go to the dead letters with the
                // call's error. Passing errors (an outage, a maintenance
                // window) keep their records queued, however long they last.
                let limit = if action == Action::GiveUp {
                    PERMANENT_CALL_TRIES
                } else {
                    i64::MAX
                };
                warn!(
                    connection = %self.name,
                    code,
                    error = %text,
                    records = batch.len(),
                    action = ?action,
                    "a Salesforce call failed"
                );
                let code = e.code().unwrap_or("CALL_FAILED").to_string();
                for c in batch {
                    if c.attempts + 1 >= limit {
                        self.count("failed", 1);
                        let _ = self
                            .store
                            .dead_letter(&self.name, c, &code, &text, &[])
                            .await;
                    } else {
                        let _ = self
                            .store
                            .retry_later(&self.name, c, self.backoff(c.attempts), &text)
                            .await;
                    }
                }
            }
        }
    }

    async fn reprovision(&mut self) {
        self.client.invalidate_describes();
        let cats = self
            .store
            .category_fields(&self.name)
            .await
            .unwrap_or_default();
        if let Err(e) = provision::provision(&self.client, &cats, &self.user_id).await {
            warn!(connection = %self.name, error = %e, "provisioning failed");
        }
        // What provisioning could not repair (a required field, a locked
        // layout) shows on the connection's page.
        if let Err(e) = provision::check_and_record(
            &self.client,
            &self.store,
            &self.name,
            &cats,
            self.settings.budget_share,
        )
        .await
        {
            warn!(connection = %self.name, error = %e, "the doctor's result was not stored");
        }
    }

    /// Fields for the categories of the records that will be sent (never for
    /// skipped ones), within the per-event and per-connection caps; what is
    /// over them is returned per request, to be noted on its activity.
    async fn category_fields(
        &mut self,
        batch: &[Claimed],
        outcomes: &HashMap<String, Outcome>,
    ) -> Result<(HashMap<String, String>, HashMap<String, Vec<String>>), SyncError> {
        let per_event = self.settings.max_categories_per_event;
        let sent = |c: &&Claimed| matches!(outcomes.get(&c.request_id), Some(Outcome::Linked(..)));
        let mut names: Vec<String> = batch
            .iter()
            .filter(sent)
            .flat_map(|c| c.snapshot.category_names().into_iter().take(per_event))
            .collect();
        names.sort();
        names.dedup();
        let categories: HashMap<String, String> = if names.is_empty() {
            HashMap::new()
        } else {
            let cap = self
                .settings
                .max_category_fields
                .min(CATEGORY_FIELDS_CEILING);
            match provision::ensure_categories(
                &self.client,
                &self.store,
                &self.name,
                &self.user_id,
                &names,
                cap,
            )
            .await
            {
                Ok(m) => m.into_iter().collect(),
                Err(crate::Error::Salesforce(e)) => return Err(e.into()),
                Err(crate::Error::Provision(provision::ProvisionError::Salesforce(e))) => {
                    return Err(e.into())
                }
                Err(crate::Error::Store(e)) => return Err(e.into()),
                Err(e) => {
                    warn!(connection = %self.name, error = %e, "category fields could not be created");
                    return Err(SyncError::Setup(e.to_string()));
                }
            }
        };
        let unmapped = batch
            .iter()
            .filter(sent)
            .filter_map(|c| {
                let over: Vec<String> = c
                    .snapshot
                    .category_names()
                    .into_iter()
                    .filter(|n| !categories.contains_key(n))
                    .collect();
                (!over.is_empty()).then(|| (c.request_id.clone(), over))
            })
            .collect();
        Ok((categories, unmapped))
    }

    /// Upserts each chunk (at most [`PARALLEL_CALLS`] calls in flight);
    /// the answers in the chunks' order.
    async fn upsert_chunks(
        &mut self,
        chunks: &[Vec<ToSend<'_>>],
    ) -> Vec<Result<Vec<salesforce::RecordResult>, salesforce::Error>> {
        let mut answers: Vec<Option<_>> = (0..chunks.len()).map(|_| None).collect();
        let mut calls = tokio::task::JoinSet::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if calls.len() >= PARALLEL_CALLS {
                if let Some(Ok((j, a))) = calls.join_next().await {
                    answers[j] = Some(a);
                }
            }
            let records: Vec<Value> = chunk.iter().map(|t| t.record.clone()).collect();
            let client = self.client.clone();
            // Spawned calls stay inside the step's `batch` span.
            let call = async move {
                let a = client
                    .upsert_many(schema::OBJECT, schema::EXTERNAL_ID, &records)
                    .await;
                (i, a)
            };
            calls.spawn(tracing::Instrument::in_current_span(call));
        }
        while let Some(joined) = calls.join_next().await {
            if let Ok((j, a)) = joined {
                answers[j] = Some(a);
            }
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(salesforce::Error::Protocol("the call's task ended".into()))
                })
            })
            .collect()
    }

    /// The stored state of each claimed request.
    async fn states(&self, batch: &[Claimed]) -> Result<HashMap<String, RequestState>, StoreError> {
        let ids: Vec<String> = batch.iter().map(|c| c.request_id.clone()).collect();
        Ok(self
            .store
            .request_states(&self.name, &ids)
            .await?
            .into_iter()
            .map(|s| (s.request_id.clone(), s))
            .collect())
    }

    /// Before a step, the queue's new requestors are looked up, all that
    /// gathered in one go (their Contacts are made in the step's write): the
    /// step that sends them then finds them in the resolver's memory and
    /// makes only its upserts, so its time, which the wait must leave room
    /// for, stays one call's. Whether it ran (false: nothing arrived since
    /// the last one).
    async fn warm(&mut self) -> bool {
        let seen = self.arrivals.load(Ordering::Relaxed);
        if self.warmed_at == Some(seen) {
            return false;
        }
        self.warmed_at = Some(seen);
        let Ok(batch) = self.store.due(&self.name, self.settings.claim as i64).await else {
            return true;
        };
        // A retry on demand asks afresh in its own step, once.
        let batch: Vec<Claimed> = batch.into_iter().filter(|c| c.attempts >= 0).collect();
        self.warmed = batch
            .iter()
            .map(|c| (c.request_id.clone(), c.version))
            .collect();
        let Ok(states) = self.states(&batch).await else {
            return true;
        };
        let requests = requests_of(&batch, &states);
        // Looked up only: the step makes the new Contacts in its write. An
        // error here meets the step again, which handles it.
        let public = self.settings.public_domains.clone();
        let none = std::collections::HashSet::new();
        if let Ok(looked) =
            resolve_io::look_up(&self.client, requests, public, &mut self.cache, &none).await
        {
            looked.finish(&mut self.cache, &HashMap::new());
        }
        true
    }

    /// One step: read the requests' state, resolve, plan, send, record.
    async fn process(&mut self, batch: &[Claimed]) -> Result<(), SyncError> {
        let states = self.states(batch).await?;
        // Records that came since the last warm and whose requestors need
        // Salesforce wait for the next step while young (a quarter of the
        // budget, so the next step comes within theirs): its warm looks
        // them up with those gathered by then, and this step only writes.
        let young_ms = (self.settings.latency_budget / 4).as_millis() as i64;
        let may_wait = plan::may_wait(batch, &self.warmed, now_ms(), young_ms);
        let public = self.settings.public_domains.clone();
        let requests = requests_of(batch, &states);
        let looked =
            resolve_io::look_up(&self.client, requests, public, &mut self.cache, &may_wait).await?;
        // New Contacts go in the records' upsert call when they can.
        let (outcomes, mut pending) = if looked.new_contacts().is_empty() {
            (looked.finish(&mut self.cache, &HashMap::new()), None)
        } else {
            (looked.provisional(together::placeholder), Some(looked))
        };
        let outcomes: HashMap<String, Outcome> = outcomes.into_iter().collect();
        let (categories, unmapped) = self.category_fields(batch, &outcomes).await?;
        let lengths = self.lengths().await?;
        let first = plan::plan(batch, &outcomes, &states, &categories, &lengths);
        let created_first: HashMap<String, Outcome>;
        let plan = match pending.take_if(|_| !together::fits(&first.send)) {
            None => first,
            // Too large, or text Salesforce would read as a reference:
            // the Contacts are made first, as their own call.
            Some(looked) => {
                drop(first);
                created_first = self.create_then_finish(looked).await?;
                plan::plan(batch, &created_first, &states, &categories, &lengths)
            }
        };
        // Nothing changed since the last write: no call.
        self.store
            .mark_synced_many(&self.name, &plan.unchanged)
            .await?;
        self.tally.unchanged += plan.unchanged.len() as u64;
        for (c, reason) in &plan.skipped {
            self.store.mark_skipped(&self.name, c, reason).await?;
            self.count("skipped", 1);
        }
        if plan.send.is_empty() {
            return Ok(());
        }
        let sent = match pending {
            Some(l) => self.send_together(plan.send, l).await?,
            None => self.send(plan.send).await,
        };
        self.record(sent, &states, &unmapped).await
    }

    /// The outcomes of a looked-up batch, its new Contacts created first
    /// by their own call.
    async fn create_then_finish(
        &mut self,
        looked: resolve_io::LookedUp,
    ) -> Result<HashMap<String, Outcome>, SyncError> {
        let new = looked.new_contacts().to_vec();
        let allow = self.settings.allow_duplicate_save;
        let created = resolve_io::create_contacts(&self.client, &new, allow).await?;
        Ok(looked
            .finish(&mut self.cache, &created)
            .into_iter()
            .collect())
    }

    /// The length of each text field of `Request__c`, from its (cached) describe.
    async fn lengths(&self) -> Result<Lengths, salesforce::Error> {
        let describe = self.client.describe(schema::OBJECT).await?;
        Ok(Lengths(
            describe
                .fields
                .iter()
                .filter(|f| f.field_type != "reference" && f.field_type != "picklist")
                // An auto-number Name is the org's to set (Lengths::names_records).
                .filter(|f| f.name != "Name" || f.createable)
                .map(|f| (f.name.clone(), f.length))
                .collect(),
        ))
    }

    /// One Collections call per 200 records, a few at once; a failed call
    /// affects only its own records. Failed calls are handled once per kind
    /// of failure, not once per call: chunks sent together often fail
    /// together (a schema error re-provisions once, an expired session
    /// pauses once). The records Salesforce answered for, with the answers.
    async fn send<'a>(&mut self, to_send: Vec<ToSend<'a>>) -> Vec<(ToSend<'a>, RecordResult)> {
        let mut chunks: Vec<Vec<_>> = Vec::new();
        let mut rest = to_send;
        while !rest.is_empty() {
            chunks.push(
                rest.drain(..rest.len().min(salesforce::COLLECTION_LIMIT))
                    .collect(),
            );
        }
        let answers = self.upsert_chunks(&chunks).await;
        let mut sent = Vec::new();
        let mut failed: Vec<(Action, salesforce::Error, Vec<Claimed>)> = Vec::new();
        for (chunk, answer) in chunks.into_iter().zip(answers) {
            match answer {
                Ok(results) => sent.extend(chunk.into_iter().zip(results)),
                Err(e) => {
                    let claimed = chunk.iter().map(|t| t.claimed.clone());
                    match failed.iter_mut().find(|f| f.0 == e.action()) {
                        Some(f) => f.2.extend(claimed),
                        None => failed.push((e.action(), e, claimed.collect())),
                    }
                }
            }
        }
        for (_, e, claimed) in failed {
            self.on_call_error(&claimed, e).await;
        }
        sent
    }

    /// Acts on each record's answer; the synced ones are stored in one transaction.
    async fn record(
        &mut self,
        sent: Vec<(ToSend<'_>, RecordResult)>,
        states: &HashMap<String, RequestState>,
        unmapped: &HashMap<String, Vec<String>>,
    ) -> Result<(), SyncError> {
        let mut reprovision = false;
        let mut synced = Vec::with_capacity(sent.len());
        for (t, res) in sent {
            let c = t.claimed;
            let (verdict, first) = results::verdict(&res, c.attempts, self.settings.max_attempts);
            let text = format!("{}: {}", first.status_code, first.message);
            match verdict {
                Verdict::Synced { created } => synced.push(Synced {
                    claimed: c.clone(),
                    sf_id: res.id.clone().unwrap_or_default(),
                    contact: t.links.contact.clone(),
                    account: t.links.account.clone(),
                    requestor_key: plan::requestor_key(c, states),
                    sent_hash: t.hash,
                    detail: results::synced_detail(
                        created,
                        t.how,
                        unmapped.get(&c.request_id).map(Vec::as_slice),
                        &mapping::rejected_links(&c.snapshot),
                    ),
                }),
                Verdict::Relink => {
                    // The linked Contact or Account is gone: forget it and resolve again.
                    if let Some(e) = c.snapshot.requestor.set().and_then(|p| p.email.clone()) {
                        self.cache.forget_person(&e);
                    }
                    self.cache.forget_links(&t.links);
                    let _ = self.store.forget_link(&self.name, &c.request_id).await;
                    self.store.retry_later(&self.name, c, 0, &text).await?
                }
                Verdict::Retry => {
                    let after = self.backoff(c.attempts);
                    self.store.retry_later(&self.name, c, after, &text).await?
                }
                Verdict::Reprovision => {
                    reprovision = true;
                    let after = self.backoff(c.attempts.min(2));
                    self.store.retry_later(&self.name, c, after, &text).await?
                }
                Verdict::DeadLetter => {
                    warn!(
                        connection = %self.name,
                        request = %c.request_id,
                        code = %first.status_code,
                        error = %first.message,
                        "Salesforce refused a record for good: dead letter"
                    );
                    self.count("failed", 1);
                    self.store
                        .dead_letter(
                            &self.name,
                            c,
                            &first.status_code,
                            &first.message,
                            &first.fields,
                        )
                        .await?
                }
            }
        }
        self.store.mark_synced_many(&self.name, &synced).await?;
        self.count("synced", synced.len() as u64);
        for s in &synced {
            self.metrics
                .latency((now_ms() - s.claimed.enqueued_at_ms).max(0) as u64);
        }
        if reprovision {
            self.reprovision().await;
        }
        Ok(())
    }
}
