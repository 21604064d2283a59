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
use crate::http;
use crate::ingest::Ingestor;
use crate::metrics::Metrics;
use crate::runtime::{AppState, Runtime, WorkerTask};
use crate::store::{Connection, Store};
use crate::sync::Settings;
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

/// The runtime state over `store`: this replica named, its spool opened,
/// the group committer started, no connection known yet.
async fn runtime_state(
    config: Config,
    store: Store,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) -> Result<AppState, Error> {
    // A SQLite store belongs to this process alone: leases of an earlier run
    // (killed before it could give them back) are void.
    if store.backend() == crate::store::Backend::Sqlite {
        store.reset_leases().await?;
    }
    let replica = crate::leases::replica_id(config.replica_id.as_deref());
    store.set_replica(&replica);
    let spool =
        crate::spool::Spool::open(&config.data_dir, &replica, Default::default()).map_err(|e| {
            Error::Invalid(format!(
                "cannot open the spool under {}: {e}",
                config.data_dir.display()
            ))
        })?;
    Ok(AppState {
        spool: Arc::new(spool),
        bodies: tokio::sync::Semaphore::new(config.limits.max_bodies_in_flight.max(1)),
        ingestor: Ingestor::start(store.clone()),
        store,
        config,
        metrics: Arc::new(Metrics::default()),
        conns: RwLock::new(HashMap::new()),
        workers: RwLock::new(HashMap::new()),
        runtime: Runtime {
            settings,
            shutdown,
            tasks: parking_lot::Mutex::new(HashMap::new()),
            lease_wake: tokio::sync::Notify::new(),
            stopping: parking_lot::Mutex::new(Default::default()),
        },
    })
}

/// Serves `/metrics` alone on `addr` (`metrics_listen`), until the shutdown signal.
async fn serve_metrics_apart(
    state: &Arc<AppState>,
    addr: &str,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, Error> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Invalid(format!("cannot listen on {addr} (metrics_listen): {e}")))?;
    let bound = l.local_addr().map_err(|e| Error::Invalid(e.to_string()))?;
    let (router, limits) = (
        http::metrics_router(state.clone()),
        state.config.limits.clone(),
    );
    tokio::spawn(async move {
        http::serve::serve(l, router, &limits, shutdown, Duration::from_secs(1)).await;
    });
    Ok(bound)
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
        let (tx, rx) = watch::channel(false);
        let state = Arc::new(runtime_state(config, store, settings, rx.clone()).await?);
        // Know every connection (and take this replica's share of them) before the
        // first request can arrive: a webhook for a stored connection must never meet
        // "unknown connection" during a restart.
        crate::leases::try_round(&state).await?;
        let router = http::around(
            http::routes(state.clone()).merge(web::router(state.clone(), admin)),
            &state.config,
        );
        let metrics_addr = match &state.config.metrics_listen {
            Some(addr) => Some(serve_metrics_apart(&state, addr, rx.clone()).await?),
            None => None,
        };
        let (limits, srx) = (state.config.limits.clone(), rx.clone());
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
