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
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
}

/// What starting workers needs; kept in [`AppState`] so that the admin page can
/// start and stop them too.
pub struct Runtime {
    pub settings: Settings,
    pub shutdown: watch::Receiver<bool>,
    pub tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
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
        }
        let admin = web::Admin::load(&config)?;
        let ingestor = http::Ingestor::start(store.clone());
        let (tx, rx) = watch::channel(false);
        let state = Arc::new(AppState {
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
                tasks: parking_lot::Mutex::new(Vec::new()),
            },
        });
        // Know every connection before the first request can arrive: a webhook for a
        // stored connection must never meet "unknown connection" during a restart.
        for c in state.store.connections().await? {
            state.conns.write().insert(c.name.clone(), auth_of(&c));
        }
        let router = http::router(state.clone());
        let mut srx = rx.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = srx.wait_for(|s| *s).await;
            })
            .await;
        });
        let app = App {
            state,
            addr,
            shutdown: tx,
            server,
        };
        for c in app.state.store.connections().await? {
            app.add_connection(&c);
        }
        Ok(app)
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

    /// Stops accepting, lets the workers finish the batch in flight, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        let workers: Vec<JoinHandle<()>> = std::mem::take(&mut *self.state.runtime.tasks.lock());
        for w in workers {
            let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
        }
    }
}

impl AppState {
    /// Serves a (new or changed) connection: webhook auth and a worker.
    pub fn add_connection(&self, c: &Connection) {
        self.conns.write().insert(c.name.clone(), auth_of(c));
        if let Some(w) = self.workers.read().get(&c.name) {
            w.notify.notify_one();
            return;
        }
        let client = connect::client_for(&self.store, c, &self.config);
        let user = connect::user_id(&c.tokens).unwrap_or_default();
        let (worker, handle) = Worker::new(
            c.name.clone(),
            self.store.clone(),
            client,
            user,
            self.metrics.clone(),
            self.runtime.settings.clone(),
            self.runtime.shutdown.clone(),
            self.config.clone(),
        );
        self.workers.write().insert(c.name.clone(), handle);
        self.runtime.tasks.lock().push(tokio::spawn(worker.run()));
    }

    /// Stops serving a connection that was deleted: webhooks get 404, its worker stops.
    pub fn remove_connection(&self, name: &str) {
        self.conns.write().remove(name);
        if let Some(w) = self.workers.write().remove(name) {
            w.notify.notify_one();
        }
    }

    /// Wakes a connection's worker (after a retry or a reconnect).
    pub fn wake(&self, connection: &str) {
        if let Some(w) = self.workers.read().get(connection) {
            w.notify.notify_one();
        }
    }
}
