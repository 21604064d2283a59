//! The connector's runtime state, below everything that uses it: the
//! connections served (their webhook credentials), the workers running
//! (start, stop, wake), the group committer and the spool. `http`, `web`,
//! the lease loop and `app` use it; it uses none of them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use salesforce::Secret;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::connect;
use crate::ingest::Ingestor;
use crate::metrics::Metrics;
use crate::store::{Connection, Store};
use crate::sync::{Settings, Worker, WorkerHandle};

/// What the webhook handler needs of a connection, kept in memory.
#[derive(Clone)]
pub struct ConnAuth {
    pub token_hash: String,
    pub signing_secrets: Vec<Secret>,
    pub connected_at_ms: i64,
    /// The Thena organisation its installation events named: platform
    /// events of another organisation are acknowledged, not applied.
    pub thena_org: Option<String>,
    /// A rolled token's hash, accepted until its grace ends (ms since the epoch).
    pub previous_token: Option<(String, i64)>,
}

pub struct AppState {
    pub store: Store,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub conns: RwLock<HashMap<String, ConnAuth>>,
    pub workers: RwLock<HashMap<String, WorkerHandle>>,
    pub ingestor: Ingestor,
    pub runtime: Runtime,
    /// Where accepted events wait while the store cannot commit.
    pub spool: Arc<crate::spool::Spool>,
    /// Slots for webhook bodies being read at once (`limits.max_bodies_in_flight`).
    pub bodies: tokio::sync::Semaphore,
}

/// A running worker's task and its stop switch.
pub type WorkerTask = (JoinHandle<()>, watch::Sender<bool>);

/// What starting and stopping workers needs; kept in [`AppState`] so that the
/// admin page and the lease loop can start and stop them too.
pub struct Runtime {
    pub settings: Settings,
    pub shutdown: watch::Receiver<bool>,
    /// Each running worker's task and its stop switch.
    pub tasks: parking_lot::Mutex<HashMap<String, WorkerTask>>,
    /// Wakes the lease loop (a connection was added here).
    pub lease_wake: tokio::sync::Notify,
    /// Connections whose worker is being stopped (lease lost or given back).
    pub stopping: parking_lot::Mutex<std::collections::HashSet<String>>,
}

pub(crate) fn auth_of(c: &Connection) -> ConnAuth {
    ConnAuth {
        token_hash: c.webhook_token_hash.clone(),
        signing_secrets: c
            .signing_secret
            .as_ref()
            .map(|s| {
                s.expose()
                    .split_whitespace()
                    .map(salesforce::Secret::new)
                    .collect()
            })
            .unwrap_or_default(),
        connected_at_ms: c.connected_at.timestamp_millis(),
        thena_org: c.thena_app.as_ref().and_then(|a| a.org_id.clone()),
        previous_token: c.previous_token.clone(),
    }
}

impl AppState {
    /// Serves a (new or changed) connection: webhook auth now; its worker once
    /// this replica holds its lease (at once, unless another replica does).
    pub fn add_connection(&self, c: &Connection) {
        self.conns.write().insert(c.name.clone(), auth_of(c));
        if let Some(w) = self.workers.read().get(&c.name) {
            w.notify.notify_one();
            return;
        }
        self.runtime.lease_wake.notify_one();
    }

    /// Starts the worker of a connection whose lease this replica holds.
    pub fn start_worker(&self, c: &Connection) {
        if self.workers.read().contains_key(&c.name) {
            return;
        }
        let client = connect::client_for(&self.store, c, &self.config);
        let user = connect::user_id(&c.tokens).unwrap_or_default();
        let (stop, stop_rx) = watch::channel(false);
        let (worker, handle) = Worker::new(
            c.name.clone(),
            self.store.clone(),
            client,
            user,
            self.metrics.clone(),
            self.runtime.settings.clone(),
            stop_rx,
            self.config.clone(),
        );
        self.workers.write().insert(c.name.clone(), handle);
        let task = tokio::spawn(worker.run());
        self.runtime
            .tasks
            .lock()
            .insert(c.name.clone(), (task, stop));
    }

    /// Stops a connection's worker; resolves when its batch in flight is done.
    pub fn stop_worker(&self, name: &str) -> Option<JoinHandle<()>> {
        self.workers.write().remove(name);
        let (task, stop) = self.runtime.tasks.lock().remove(name)?;
        let _ = stop.send(true);
        Some(task)
    }

    /// Stops serving a connection that was deleted: webhooks get 404, its worker stops.
    pub fn remove_connection(&self, name: &str) {
        self.conns.write().remove(name);
        self.stop_worker(name);
    }

    /// Wakes a connection's worker (after a retry or a reconnect).
    pub fn wake(&self, connection: &str) {
        if let Some(w) = self.workers.read().get(connection) {
            w.notify.notify_one();
        }
    }
}
