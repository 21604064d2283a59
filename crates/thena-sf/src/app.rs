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
use crate::Error;

pub struct App {
    pub state: Arc<AppState>,
    pub addr: SocketAddr,
    settings: Settings,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    workers: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

fn auth_of(c: &Connection) -> ConnAuth {
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
    pub async fn start(config: Config, store: Store, settings: Settings) -> Result<App, Error> {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let ingestor = http::Ingestor::start(store.clone());
        let state = Arc::new(AppState {
            store,
            config,
            metrics: Arc::new(Metrics::default()),
            conns: RwLock::new(HashMap::new()),
            workers: RwLock::new(HashMap::new()),
            ingestor,
        });
        // Know every connection before the first request can arrive: a webhook for a
        // stored connection must never meet "unknown connection" during a restart.
        for c in state.store.connections().await? {
            state.conns.write().insert(c.name.clone(), auth_of(&c));
        }
        let (tx, rx) = watch::channel(false);
        let router = http::router(state.clone());
        let mut srx = rx.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = srx.wait_for(|s| *s).await;
                })
                .await;
        });
        let app = App {
            state,
            addr,
            settings,
            shutdown: tx,
            server,
            workers: parking_lot::Mutex::new(Vec::new()),
        };
        for c in app.state.store.connections().await? {
            app.add_connection(&c);
        }
        Ok(app)
    }

    /// Serves a (new or changed) connection: webhook auth and a worker.
    pub fn add_connection(&self, c: &Connection) {
        self.state.conns.write().insert(c.name.clone(), auth_of(c));
        if self.state.workers.read().contains_key(&c.name) {
            if let Some(w) = self.state.workers.read().get(&c.name) {
                w.notify.notify_one();
            }
            return;
        }
        let client = connect::client_for(&self.state.store, c, &self.state.config);
        let user = connect::user_id(&c.tokens).unwrap_or_default();
        let (worker, handle) = Worker::new(
            c.name.clone(),
            self.state.store.clone(),
            client,
            user,
            self.state.metrics.clone(),
            self.settings.clone(),
            self.shutdown.subscribe(),
            self.state.config.clone(),
        );
        self.state.workers.write().insert(c.name.clone(), handle);
        self.workers.lock().push(tokio::spawn(worker.run()));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Wakes a connection's worker (after a retry or a reconnect).
    pub fn wake(&self, connection: &str) {
        if let Some(w) = self.state.workers.read().get(connection) {
            w.notify.notify_one();
        }
    }

    /// Stops accepting, lets the workers finish the batch in flight, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        let workers: Vec<JoinHandle<()>> = std::mem::take(&mut *self.workers.lock());
        for w in workers {
            let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
        }
    }
}
