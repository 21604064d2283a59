//! The admin page's tables: sessions and OAuth flows under way.

use chrono::Utc;
use salesforce::Secret;
use sqlx::Row;

use super::{Store, StoreError};

/// An OAuth flow started from the admin page, waiting for its callback.
#[derive(Debug, Clone)]
pub struct OAuthFlow {
    pub session_hash: String,
    pub connection: String,
    pub login_url: String,
    pub client_id: String,
    pub verifier: Secret,
    pub created_at_ms: i64,
    /// The admin chose to connect an org that already has a connection.
    pub same_org_ok: bool,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Store {
    /// Stores a session: the hash of its cookie, the hash of its CSRF token,
    /// and the fingerprint of the admin password it was made with.
    pub async fn create_session(
        &self,
        id_hash: &str,
        csrf_hash: &str,
        pw: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sql!(
            "DELETE FROM admin_sessions WHERE expires_at_ms < $1",
            (now_ms(),)
        )
        .execute(self.pool())
        .await?;
        sql!(
            "INSERT INTO admin_sessions (id_hash, csrf, pw, expires_at_ms) VALUES ($1, $2, $3, $4)",
            (id_hash, csrf_hash, pw, expires_at_ms),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The CSRF token hash of a live session made with the password `pw`.
    pub async fn session_csrf(
        &self,
        id_hash: &str,
        pw: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sql!(
            "SELECT csrf FROM admin_sessions WHERE id_hash = $1 AND expires_at_ms > $2 AND pw = $3",
            (id_hash, now_ms(), pw),
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.try_get("csrf")).transpose()?)
    }

    /// Ends every admin session (the password changed).
    pub async fn delete_all_sessions(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM admin_sessions")
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    /// Keeps a notice for the session's next page.
    pub async fn set_flash(&self, id_hash: &str, text: &str) -> Result<(), StoreError> {
        sql!(
            "UPDATE admin_sessions SET flash = $2 WHERE id_hash = $1",
            (id_hash, text)
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session's notice, once: it is cleared as it is read.
    pub async fn take_flash(&self, id_hash: &str) -> Result<Option<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sql!(
            "SELECT flash FROM admin_sessions WHERE id_hash = $1",
            (id_hash,)
        )
        .fetch_optional(&mut **tx)
        .await?;
        let flash: Option<String> = row.map(|r| r.try_get("flash")).transpose()?.flatten();
        if flash.is_some() {
            sql!(
                "UPDATE admin_sessions SET flash = NULL WHERE id_hash = $1",
                (id_hash,)
            )
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        Ok(flash)
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sql!("DELETE FROM admin_sessions WHERE id_hash = $1", (id_hash,))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn put_oauth_flow(&self, state_hash: &str, f: &OAuthFlow) -> Result<(), StoreError> {
        // Flows never finished are forgotten after a day.
        sql!(
            "DELETE FROM oauth_states WHERE created_at_ms < $1",
            (now_ms() - 86_400_000,)
        )
        .execute(self.pool())
        .await?;
        sql!(
            "INSERT INTO oauth_states (state_hash, session_hash, connection, login_url, client_id, verifier_enc, created_at_ms, same_org_ok)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            (
                state_hash, &f.session_hash, &f.connection, &f.login_url, &f.client_id,
                self.seal("oauth-state", state_hash, f.verifier.expose()), f.created_at_ms,
                i64::from(f.same_org_ok),
            ),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// The answer to presenting an OAuth state.
#[derive(Debug)]
pub enum FlowTaken {
    /// Ours, now used up.
    Taken(OAuthFlow),
    /// Started by another session: left in place for its owner.
    OtherSession,
    /// Unknown or already used.
    Unknown,
}

impl Store {
    /// Takes (single use) the flow a state names, only for the session that
    /// started it: another session presenting it consumes nothing.
    pub async fn take_oauth_flow(
        &self,
        state_hash: &str,
        session_hash: &str,
    ) -> Result<FlowTaken, StoreError> {
        let row = sql!(
            "DELETE FROM oauth_states WHERE state_hash = $1 AND session_hash = $2
             RETURNING session_hash, connection, login_url, client_id, verifier_enc, created_at_ms, same_org_ok",
            (state_hash, session_hash),
        )
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else {
            let other = sql!(
                "SELECT 1 AS one FROM oauth_states WHERE state_hash = $1",
                (state_hash,),
            )
            .fetch_optional(self.pool())
            .await?;
            return Ok(if other.is_some() {
                FlowTaken::OtherSession
            } else {
                FlowTaken::Unknown
            });
        };
        let sealed: Vec<u8> = r.try_get("verifier_enc")?;
        Ok(FlowTaken::Taken(OAuthFlow {
            session_hash: r.try_get("session_hash")?,
            connection: r.try_get("connection")?,
            login_url: r.try_get("login_url")?,
            client_id: r.try_get("client_id")?,
            verifier: self.open_secret("oauth-state", state_hash, &sealed)?,
            created_at_ms: r.try_get("created_at_ms")?,
            same_org_ok: r.try_get::<i64, _>("same_org_ok")? != 0,
        }))
    }
}
