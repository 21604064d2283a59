//! When the worker sends: its loop of turns (the connection's state, the
//! pace's decision, a flood's wait), new credentials, and the org's API
//! budget (pause above the share, resume when it allows).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use salesforce::Action;
use tracing::{info, warn};

use super::{now_ms, Turn, Worker};
use crate::store::{ConnStatus, StoreError};
use crate::sync::pace::Decision;
use crate::sync::resolve_io;

impl Worker {
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
    pub(super) async fn turn(&mut self) -> Turn {
        if let Some(t) = self.connection_turn().await {
            return t;
        }
        let now = now_ms();
        let shape = match self
            .store
            .due_shape(&self.name, now, self.looked_until_ms)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                warn!(connection = %self.name, error = %e, "cannot read the queue");
                return Turn::Sleep(Duration::from_secs(1));
            }
        };
        let n = shape.due;
        if n == 0 {
            // Nothing due: sleep until a retry's delay ends (an arrival wakes it sooner).
            let until = shape.soonest.map_or(30_000, |s| (s - now).clamp(1, 30_000));
            return Turn::Sleep(Duration::from_millis(until as u64));
        }
        self.pace
            .arrivals(self.arrivals.load(Ordering::Relaxed), Instant::now());
        let age = |at: i64| Duration::from_millis((now - at).max(0) as u64);
        let oldest = age(shape.oldest.unwrap_or(now));
        let decision = match self
            .pace
            .decide(n as usize, oldest, shape.unlooked.map(age))
        {
            // Sent early so that lookups could ride: needless when every
            // requestor since the last lookups is one the resolver knows.
            Decision::Send => match self.only_for_lookups(n as usize, oldest) {
                Some(d) if self.none_asking().await => Decision::Wait(d),
                _ => Decision::Send,
            },
            other => other,
        };
        match decision {
            // The requestors gathered since the last step too old to ride
            // in its write are resolved together (one lookup call for
            // all), then the step writes.
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
    pub(super) async fn connection_turn(&mut self) -> Option<Turn> {
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

    /// How long the records could wait were none of them to need a lookup
    /// (`None`: they are due anyway).
    fn only_for_lookups(&self, queued: usize, oldest: Duration) -> Option<Duration> {
        match self.pace.decide(queued, oldest, None) {
            Decision::Wait(d) => Some(d),
            _ => None,
        }
    }

    /// Whether every due record acknowledged since the last lookups has a
    /// requestor the resolver's memory knows (its links, or that it has no
    /// Contact): then none needs a lookup, and the looked-up marker moves
    /// past them. False when it cannot tell (more due than a claim reads).
    async fn none_asking(&mut self) -> bool {
        let claim = self.settings.claim;
        let Ok(due) = self.store.due(&self.name, claim as i64).await else {
            return false;
        };
        if due.len() >= claim {
            return false;
        }
        let fresh: Vec<_> = due
            .into_iter()
            .filter(|c| c.enqueued_at_ms > self.looked_until_ms)
            .collect();
        // A retry on demand asks Salesforce afresh.
        if fresh.iter().any(|c| c.attempts < 0) {
            return false;
        }
        let Some(latest) = fresh.iter().map(|c| c.enqueued_at_ms).max() else {
            return false;
        };
        let Ok(states) = self.states(&fresh).await else {
            return false;
        };
        let requests = super::step::requests_of(&fresh, &states);
        let public = self.settings.public_domains.clone();
        if !resolve_io::asking(requests, public, &self.cache).is_empty() {
            return false;
        }
        self.looked_until_ms = latest;
        true
    }

    /// Uses the stored credentials when they are not the ones this worker's client holds.
    pub(super) async fn take_new_credentials(&mut self) {
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
    pub(super) async fn wait_for_arrivals(&mut self, d: Duration, want: usize) -> bool {
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
    pub(super) async fn let_flood_pass(&mut self) {
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

    pub(super) async fn try_resume(&mut self) -> bool {
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

    pub(super) async fn check_budget(&mut self) {
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
}
