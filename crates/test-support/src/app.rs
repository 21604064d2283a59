//! The connector in-process, over a fresh store, for tests that drive it
//! through its library: [`LocalConnector`] holds the store, the configuration
//! (listening on port 0) and the temporary folder or database behind them;
//! it connects emulators, starts the app, and waits for the queue to drain.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use salesforce::Client;
use thena_sf::app::App;
use thena_sf::config::Config;
use thena_sf::connect::{self, ConnectRequest, Connected};
use thena_sf::crypto::SecretBox;
use thena_sf::metrics::Metrics;
use thena_sf::store::{ReqState, Store};
use thena_sf::sync::{Settings, Worker};

use crate::pg::TempDb;
use crate::TempDir;

/// A hand-driven worker and the sender that keeps it running.
pub type HandWorker = (Worker, tokio::sync::watch::Sender<bool>);

/// Lets a test's harness read as the [`LocalConnector`] in its field `c`
/// (`h.store`, `h.config`, `h.drain(…)`).
#[macro_export]
macro_rules! reads_as_connector {
    ($ty:ty) => {
        impl std::ops::Deref for $ty {
            type Target = $crate::app::LocalConnector;
            fn deref(&self) -> &Self::Target {
                &self.c
            }
        }
    };
}

/// The webhook token tests connect with (long enough for the connector's rule).
pub const TOKEN: &str = "test-webhook-token-0123456789abcdef0123456789";

/// Worker settings for tests: a latency budget of `budget_ms` and quick
/// backoff, so that streams take many steps and retries come soon.
pub fn quick_settings(budget_ms: u64) -> Settings {
    Settings {
        latency_budget: Duration::from_millis(budget_ms),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        pause_recheck: Duration::from_millis(100),
        ..Settings::default()
    }
}

/// The connector's parts over a fresh store, before and after it starts.
pub struct LocalConnector {
    pub store: Store,
    /// Listens on 127.0.0.1:0, keeps its files in `dir`; a test may change
    /// it before [`LocalConnector::start`].
    pub config: Config,
    pub dir: TempDir,
    _db: Option<TempDb>,
}

impl LocalConnector {
    /// Over SQLite in a temporary folder.
    pub async fn sqlite() -> LocalConnector {
        Self::open(false).await
    }

    /// Over a PostgreSQL database made for this test (`THENA_SF_TEST_PG`).
    pub async fn postgres() -> LocalConnector {
        Self::open(true).await
    }

    /// Over PostgreSQL when `postgres`, SQLite otherwise.
    pub async fn open(postgres: bool) -> LocalConnector {
        let dir = TempDir::new("thena-sf-test");
        let db = if postgres {
            Some(TempDb::create().await)
        } else {
            None
        };
        let store = open_store(&dir, db.as_ref().map(|d| d.url.as_str())).await;
        LocalConnector {
            store,
            config: config_in(&dir),
            dir,
            _db: db,
        }
    }

    /// Another replica's store: the same SQLite file or PostgreSQL database,
    /// opened again.
    pub async fn another_replica(&self) -> Store {
        open_store(&self.dir, self.database_url()).await
    }

    /// The PostgreSQL database's URL, when the store is there.
    pub fn database_url(&self) -> Option<&str> {
        self._db.as_ref().map(|d| d.url.as_str())
    }

    /// Connects `name` to the emulator at `base` as its admin (the password
    /// grant), with `token` as its webhook token or a generated one.
    pub async fn connect_emulator(&self, name: &str, base: &str, token: Option<&str>) -> Connected {
        connect_emulator(&self.store, &self.config, name, base, token).await
    }

    /// Connects as `req` says; the test fails if the connector refuses.
    pub async fn connect(&self, req: ConnectRequest) -> Connected {
        connect::connect(&self.store, &self.config, req)
            .await
            .expect("the connector connects")
    }

    /// The connector's own Salesforce client for connection `name`.
    pub async fn client(&self, name: &str) -> Client {
        let conn = self.store.connection(name).await.expect("a connection");
        connect::client_for(&self.store, &conn, &self.config)
    }

    /// Starts the app (HTTP on port 0 and a worker per connection).
    pub async fn start(&self, settings: Settings) -> App {
        App::start(self.config.clone(), self.store.clone(), settings)
            .await
            .expect("the app starts")
    }

    /// Waits until every request in `ids` has left `pending` and the queue of
    /// `connection` is empty; fails after a minute, naming what is pending.
    pub async fn drain(&self, connection: &str, ids: &[String]) {
        drain(&self.store, connection, ids).await
    }

    /// A worker for `connection` that the test drives one step at a time
    /// (`Worker::send_due`), with no pace: beside a held app, or with no app
    /// at all. Keep the sender as long as the worker (dropped, it reads as
    /// shutdown).
    pub async fn hand_worker(&self, connection: &str, settings: Settings) -> HandWorker {
        let conn = self
            .store
            .connection(connection)
            .await
            .expect("a connection");
        let user = connect::user_id(&conn.tokens).expect("the token names its user");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (worker, _) = Worker::new(
            connection.to_string(),
            self.store.clone(),
            self.client(connection).await,
            user,
            Arc::new(Metrics::default()),
            settings,
            stopped,
            self.config.clone(),
        );
        (worker, stop)
    }

    /// Steps `worker` until nothing of `connection` is due; how many steps
    /// it took. Deterministic where [`LocalConnector::drain`] polls; fails
    /// after 1,000 steps.
    pub async fn step_until_empty(&self, worker: &mut Worker, connection: &str) -> usize {
        for steps in 0..1000 {
            let due = self.store.due(connection, 1).await.expect("the queue");
            if due.is_empty() {
                return steps;
            }
            worker.send_due().await;
        }
        panic!("{connection}: still due after 1,000 steps");
    }
}

/// Connects `name` in `store` to the emulator at `base` as its admin (the
/// password grant), with `token` as its webhook token or a generated one.
pub async fn connect_emulator(
    store: &Store,
    config: &Config,
    name: &str,
    base: &str,
    token: Option<&str>,
) -> Connected {
    let req = ConnectRequest::emulator_admin(name, base, token.map(str::to_string));
    connect::connect(store, config, req)
        .await
        .expect("the connector connects")
}

/// The webhook token of org `i` made by [`connect_orgs`].
pub fn org_token(i: usize) -> String {
    format!("tok-{i}-0123456789abcdef0123456789")
}

/// Connects `n` orgs, `org0`…, to the emulator at `base` as its admin, each
/// with its own webhook token ([`org_token`]); returns a moment (ms) a
/// second after the last was made, for requests created in their scope.
pub async fn connect_orgs(store: &Store, config: &Config, base: &str, n: usize) -> i64 {
    for i in 0..n {
        connect_emulator(store, config, &format!("org{i}"), base, Some(&org_token(i))).await;
    }
    let made = store.connections().await.expect("the connections");
    let last = made.iter().map(|c| c.connected_at.timestamp_millis()).max();
    last.expect("at least one connection") + 1_000
}

/// The configuration of a connector on port 0 keeping its files in `dir`.
pub fn config_in(dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        ..Config::default()
    }
}

/// A store under `dir` (SQLite), or at the PostgreSQL `url`, sealed with the
/// key the connector's command line is given in tests ([`crate::connector::key`]).
pub async fn open_store(dir: &Path, url: Option<&str>) -> Store {
    let secrets = SecretBox::from_key(&crate::connector::key());
    match url {
        Some(u) => Store::open_postgres(u, secrets).await,
        None => Store::open(dir, secrets).await,
    }
    .expect("the store opens")
}

/// Waits until every request in `ids` has left `pending` and the queue of
/// `connection` is empty; fails after a minute, naming what is pending.
pub async fn drain(store: &Store, connection: &str, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states = store.request_states(connection, ids).await.unwrap();
        let pending = store.queued(connection).await.unwrap();
        let waiting: Vec<_> = states
            .iter()
            .filter(|s| s.state == ReqState::Pending)
            .map(|s| &s.request_id)
            .collect();
        if states.len() == ids.len() && waiting.is_empty() && pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "not settled: {waiting:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
