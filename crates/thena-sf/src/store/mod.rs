//! The store: connections (secrets sealed) and the category-to-field map,
//! later the pipeline's queue. SQLite by default (one file under the data
//! directory, WAL); the schema and queries are written so that a PostgreSQL
//! backend can implement the same operations.

mod admin;
pub mod queue;
mod sqlite;

use chrono::{DateTime, Utc};
use salesforce::{Secret, TokenSet};

pub use admin::OAuthFlow;
pub use sqlite::Store;

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
