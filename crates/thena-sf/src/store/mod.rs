//! The store: connections (secrets sealed), the category-to-field map, the
//! pipeline's queue, the admin page's sessions, and the leases that divide
//! work between replicas. SQLite by default (one file under the data
//! directory, WAL), PostgreSQL for several replicas: one set of portable
//! queries (`$n` parameters, `ON CONFLICT`, `RETURNING`) over sqlx's `Any`
//! driver, with a migration directory per backend.

/// `sqlx::query(sql)` with the tuple's values bound to `$1`, `$2`, … in order.
macro_rules! sql {
    ($sql:expr, ($($arg:expr),* $(,)?) $(,)?) => {
        sqlx::query($sql)$(.bind($arg))*
    };
}

/// [`sql!`] for one value (`sqlx::query_scalar`).
macro_rules! sql_scalar {
    ($sql:expr, ($($arg:expr),* $(,)?) $(,)?) => {
        sqlx::query_scalar($sql)$(.bind($arg))*
    };
}

/// [`sql!`] for rows of a `FromRow` type (`sqlx::query_as`).
macro_rules! sql_as {
    ($ty:ty, $sql:expr, ($($arg:expr),* $(,)?) $(,)?) => {
        sqlx::query_as::<_, $ty>($sql)$(.bind($arg))*
    };
}

mod admin;
mod connections;
mod copy;
pub mod format;
pub mod health;
pub mod history;
pub mod ingest;
pub mod leases;
pub mod queue;
pub mod review;
mod write;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use salesforce::{Secret, TokenSet};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::crypto::SecretBox;

pub use admin::{FlowTaken, OAuthFlow};
pub use leases::Fence;
pub use queue::ReqState;
pub use write::WriteTx;

/// Which database a store lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    secrets: SecretBox,
    backend: Backend,
    /// The leases this process holds (see [`leases`]); acknowledgements check them.
    fence: Arc<Fence>,
    url: Arc<str>,
    /// Where this process's SQLite writers wait their turn.
    line: write::WriteLine,
}

/// How long a SQLite writer waits for the lock (the `busy_timeout` pragma's 10,000 ms).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.backend)
    }
}

/// Sets the data directory to 0700 and the database and its WAL and shared
/// memory files to 0600 (SQLite creates the latter two with the database's mode).
#[cfg(unix)]
fn make_private(dir: &Path, db: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, mode: u32| {
        if p.exists() {
            if let Err(e) = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)) {
                tracing::warn!(path = %p.display(), error = %e, "cannot make the store private");
            }
        }
    };
    set(dir, 0o700);
    for suffix in ["", "-wal", "-shm"] {
        set(
            &std::path::PathBuf::from(format!("{}{suffix}", db.display())),
            0o600,
        );
    }
}

#[cfg(not(unix))]
fn make_private(_dir: &Path, _db: &Path) {}

impl Store {
    /// Opens (or creates) `<data_dir>/thena-sf.db` and brings its schema up to date.
    pub async fn open(data_dir: &Path, secrets: SecretBox) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open {
            path: data_dir.display().to_string(),
            source: sqlx::Error::Io(e),
        })?;
        let path = data_dir.join("thena-sf.db");
        // The store holds requestor emails and message text: only this user
        // may read it. Made so, and repaired when an older version left it open.
        make_private(data_dir, &path);
        const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'.')
            .remove(b'-')
            .remove(b'_');
        let shown = path.display().to_string();
        let url = format!(
            "sqlite://{}?mode=rwc",
            percent_encoding::utf8_percent_encode(&shown, PATH)
        );
        let store = Self::connect(&url, Backend::Sqlite, &shown, secrets).await?;
        make_private(data_dir, &path);
        Ok(store)
    }

    /// Opens the store a config names: `database_url` (PostgreSQL), else SQLite under `data_dir`.
    pub async fn open_config(
        config: &crate::config::Config,
        secrets: SecretBox,
    ) -> Result<Store, StoreError> {
        match &config.database_url {
            Some(url) => Store::open_postgres(url.expose(), secrets).await,
            None => Store::open(&config.data_dir, secrets).await,
        }
    }

    /// Opens a PostgreSQL store (`postgres://user@host:port/db`) and brings its schema up to date.
    pub async fn open_postgres(url: &str, secrets: SecretBox) -> Result<Store, StoreError> {
        Self::connect(url, Backend::Postgres, &redact_url(url), secrets).await
    }

    async fn connect(
        url: &str,
        backend: Backend,
        shown: &str,
        secrets: SecretBox,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let options = match backend {
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10)),
        };
        let pool = options
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                path: shown.to_string(),
                source,
            })?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store {
            pool,
            secrets,
            backend,
            fence: Arc::new(Fence::default()),
            line: write::WriteLine::default(),
            url: Arc::from(url),
        })
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// its start (`BEGIN IMMEDIATE`, waiting up to the busy timeout): a
    /// deferred transaction that reads first and then writes fails at once
    /// with SQLITE_BUSY when another connection wrote in between, which the
    /// busy timeout does not cover (an admin's Retry answered 500 under load).
    pub(crate) async fn begin_write(&self) -> Result<write::WriteTx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let turn = self.line.turn(BUSY_TIMEOUT).await;
                let tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
                Ok(write::WriteTx::new(tx, turn))
            }
            Backend::Postgres => Ok(write::WriteTx::new(self.pool().begin().await?, None)),
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL (with its password: never show it; see [`redact_url`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn seal(&self, conn: &str, slot: &str, plain: &str) -> Vec<u8> {
        self.secrets.seal(&format!("{conn}/{slot}"), plain)
    }

    pub(super) fn open_secret(
        &self,
        conn: &str,
        slot: &str,
        sealed: &[u8],
    ) -> Result<Secret, StoreError> {
        Ok(Secret::new(
            self.secrets.open(&format!("{conn}/{slot}"), sealed)?,
        ))
    }
}

pub use crate::config::redact_url;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store could not be opened at {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("the store's schema could not be brought up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the store failed: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("no connection named '{0}'")]
    NoConnection(String),
    /// This process no longer holds the connection's lease: another replica took it over.
    #[error("the lease on connection '{0}' was lost to another replica")]
    LeaseLost(String),
}

/// A connection's health as the sync sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnStatus {
    Healthy,
    /// The refresh token was refused: a person must reconnect; the queue waits.
    ReconnectNeeded,
    /// Paused for the org's API budget; resumes by itself.
    Paused,
}

impl ConnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnStatus::Healthy => "healthy",
            ConnStatus::ReconnectNeeded => "reconnect_needed",
            ConnStatus::Paused => "paused",
        }
    }

    pub fn parse(s: &str) -> ConnStatus {
        match s {
            "reconnect_needed" => ConnStatus::ReconnectNeeded,
            "paused" => ConnStatus::Paused,
            _ => ConnStatus::Healthy,
        }
    }
}

/// A stored connection, secrets opened.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub login_url: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub tokens: TokenSet,
    pub webhook_token_hash: String,
    pub signing_secret: Option<Secret>,
    /// For password-grant connections: the login, to renew the session.
    pub password_login: Option<(String, Secret)>,
    /// Requests created before this moment are out of scope (forward-looking sync).
    pub connected_at: DateTime<Utc>,
    pub status: ConnStatus,
    pub status_reason: Option<String>,
    pub provisioned_at: Option<DateTime<Utc>>,
    /// The Thena webhook app feeding it, as its installation events said
    /// (kept apart from [`Store::put_connection`]: a reconnect keeps it).
    pub thena_app: Option<ThenaApp>,
    /// The webhook token a roll replaced, still accepted until then (its hash
    /// and the end of its grace, ms since the epoch); kept apart from
    /// [`Store::put_connection`] as `thena_app` is.
    pub previous_token: Option<(String, i64)>,
}

/// What Thena's installation events said of the webhook app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThenaApp {
    pub org_id: Option<String>,
    pub team_ids: Vec<String>,
    /// The last installation event (`app:installation`, `app:uninstall`, ...).
    pub event: String,
    pub at: DateTime<Utc>,
}

impl ThenaApp {
    /// Whether Thena still feeds the connection (not uninstalled).
    pub fn feeding(&self) -> bool {
        self.event != "app:uninstall"
    }
}

impl Connection {
    pub fn oauth_app(&self, redirect_uri: &str) -> salesforce::OAuthApp {
        salesforce::OAuthApp {
            login_url: self.login_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            redirect_uri: redirect_uri.to_string(),
        }
    }
}

/// Timestamps are stored as RFC 3339 UTC text, which sorts and compares as time.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}
