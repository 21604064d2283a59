//! What an operator does to a connection, one way for the command line and
//! the admin page: read its health, roll its webhook token (the old one kept
//! for a grace period), disconnect it (its refresh token revoked). The
//! callers add only what is theirs: the admin page updates the running
//! server at once; a running server started elsewhere learns of a change
//! from the store on its next lease tick.

pub mod health;

pub use health::{health, Health, State};

use crate::config::Config;
use crate::crypto;
use crate::store::{Connection, Store, StoreError};

/// The grace periods a token roll offers, in hours (0: the old token stops at once).
pub const GRACE_HOURS: [i64; 4] = [0, 1, 24, 168];

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} hours is not a grace period offered (0, 1, 24 or 168)")]
    Grace(i64),
}

/// A new webhook token, shown once, and until when the old one works.
pub struct Rolled {
    pub token: String,
    /// None: the old token stopped at once.
    pub old_until_ms: Option<i64>,
}

/// Makes a new webhook token for `name`; the old one keeps working for
/// `grace_hours` (one of [`GRACE_HOURS`]).
pub async fn roll_token(
    store: &Store,
    name: &str,
    grace_hours: i64,
) -> Result<Rolled, OperationError> {
    if !GRACE_HOURS.contains(&grace_hours) {
        return Err(OperationError::Grace(grace_hours));
    }
    store.connection(name).await?;
    let old_until_ms =
        (grace_hours > 0).then(|| chrono::Utc::now().timestamp_millis() + grace_hours * 3_600_000);
    let token = crypto::new_token();
    store
        .roll_webhook_token(name, &crypto::token_hash(&token), old_until_ms)
        .await?;
    tracing::info!(connection = %name, grace_hours, "webhook token rolled");
    Ok(Rolled {
        token,
        old_until_ms,
    })
}

/// Removes a connection and revokes its refresh token (which ends every
/// session issued from it). It is deleted from the store first, so that no
/// replica learns it again from there; the revoke's outcome is returned for
/// the caller to report (the connection is gone either way).
pub async fn disconnect(
    store: &Store,
    config: &Config,
    c: &Connection,
) -> Result<Result<(), salesforce::Error>, StoreError> {
    store.delete_connection(&c.name).await?;
    let _ = store.release_lease(&c.name).await;
    tracing::info!(connection = %c.name, "disconnected");
    let http = config.http_client(std::time::Duration::from_secs(20));
    let token = c
        .tokens
        .refresh_token
        .clone()
        .unwrap_or_else(|| c.tokens.access_token.clone());
    Ok(c.oauth_app("").revoke(&http, &token).await)
}
