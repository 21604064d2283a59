//! The running connector: HTTP server and one worker per connection, with a
//! graceful shutdown (stop accepting, let batches in flight finish, exit).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::connect;
use crate::http::{self, AppState, ConnAuth};
use crate::metrics::Metrics;
use crate::store::{Connection, Store};
use crate::sync::{Settings, Worker};
use crate::web;
use crate::Error;

pub struct App {
    pub state: Arc<AppState>,
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    leases: JoinHandle<()>,
    listener: Option<JoinHandle<()>>,
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
    }
}

/// Replays the spool into the store: once at start (a crashed process may
/// have left one), then whenever it holds events, until shutdown.
async fn replay_spool(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut first = true;
    loop {
        if first || !state.spool.is_empty() {
            match state.spool.replay(&state.ingestor).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(events = n, "replayed the spool into the store");
                    for w in state.workers.read().values() {
                        w.notify.notify_one();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, waiting = state.spool.len(), "the store still refuses the spool's events")
                }
            }
            first = false;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => if *stop.borrow() { return },
        }
    }
}

impl App {
    /// Binds `config.listen` (port 0 picks one), starts the server and a worker per stored connection.
    pub async fn start(mut config: Config, store: Store, settings: Settings) -> Result<App, Error> {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if config.public_url.is_empty() {
            config.public_url = format!("http://{addr}");
            config.public_url_derived = true;
        }
        let admin = web::Admin::load(&config)?;
        let ingestor = http::Ingestor::start(store.clone());
        let (tx, rx) = watch::channel(false);
        // A SQLite store belongs to this process alone: leases of an earlier run
        // (killed before it could give them back) are void.
        if store.backend() == crate::store::Backend::Sqlite {
            store.reset_leases().await?;
        }
        let replica = crate::leases::replica_id();
        store.set_replica(&replica);
        let spool = crate::spool::Spool::open(&config.data_dir, &replica, Default::default())
            .map_err(|e| {
                Error::Invalid(format!(
                    "cannot open the spool under {}: {e}",
                    config.data_dir.display()
                ))
            })?;
        let bodies = tokio::sync::Semaphore::new(config.limits.max_bodies_in_flight.max(1));
        let state = Arc::new(AppState {
            spool: Arc::new(spool),
            bodies,
            store,
            config,
            metrics: Arc::new(Metrics::default()),
            conns: RwLock::new(HashMap::new()),
            workers: RwLock::new(HashMap::new()),
            ingestor,
            admin,
            runtime: Runtime {
                settings,
                shutdown: rx.clone(),
                tasks: parking_lot::Mutex::new(HashMap::new()),
                lease_wake: tokio::sync::Notify::new(),
                stopping: parking_lot::Mutex::new(Default::default()),
            },
        });
        // Know every connection (and take this replica's share of them) before the
        // first request can arrive: a webhook for a stored connection must never meet
        // "unknown connection" during a restart.
        crate::leases::try_round(&state).await?;
        let router = http::router(state.clone());
        let srx = rx.clone();
        let metrics_addr = match &state.config.metrics_listen {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    Error::Invalid(format!("cannot listen on {addr} (metrics_listen): {e}"))
                })?;
                let bound = l.local_addr().map_err(|e| Error::Invalid(e.to_string()))?;
                let (router, limits, rx) = (
                    http::metrics_router(state.clone()),
                    state.config.limits.clone(),
                    rx.clone(),
                );
                // Ends with the shutdown signal, like the main server.
                tokio::spawn(async move {
                    http::serve::serve(l, router, &limits, rx, Duration::from_secs(1)).await;
                });
                Some(bound)
            }
            None => None,
        };
        let limits = state.config.limits.clone();
        let server = tokio::spawn(async move {
            http::serve::serve(listener, router, &limits, srx, Duration::from_secs(10)).await;
        });
        tokio::spawn(replay_spool(state.clone(), rx.clone()));
        let leases = tokio::spawn(crate::leases::run(state.clone()));
        let listener = crate::leases::listen(state.clone());
        Ok(App {
            state,
            addr,
            metrics_addr,
            shutdown: tx,
            server,
            leases,
            listener,
        })
    }

    /// Serves a (new or changed) connection: webhook auth and a worker.
    pub fn add_connection(&self, c: &Connection) {
        self.state.add_connection(c);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Wakes a connection's worker (after a retry or a reconnect).
    pub fn wake(&self, connection: &str) {
        self.state.wake(connection);
    }

    /// Stops accepting, lets the workers finish the batch in flight, gives the
    /// leases back (so another replica takes over at once), and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        let _ = self.leases.await;
        if let Some(l) = self.listener {
            l.abort();
        }
        let workers: Vec<(String, WorkerTask)> = self.state.runtime.tasks.lock().drain().collect();
        for (_, (_, stop)) in &workers {
            let _ = stop.send(true);
        }
        for (name, (task, _)) in workers {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
            let _ = self.state.store.release_lease(&name).await;
        }
        let _ = self.state.store.leave().await;
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
