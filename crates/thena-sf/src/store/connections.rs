//! Connections (secrets sealed) and the category-to-field map.

use chrono::Utc;
use salesforce::TokenSet;
use sqlx::Row;

use super::{parse_ts, ts, ConnStatus, Connection, Store, StoreError, ThenaApp};

impl Store {
    /// Inserts or replaces a connection.
    pub async fn put_connection(&self, c: &Connection) -> Result<(), StoreError> {
        let n = &c.name;
        sql!(
            "INSERT INTO connections (name, login_url, client_id, client_secret_enc, access_token_enc, refresh_token_enc, instance_url, id_url, issued_at_ms,
                 webhook_token_hash, signing_secret_enc, connected_at, status, status_reason, provisioned_at, updated_at, username, password_enc)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (name) DO UPDATE SET login_url = excluded.login_url, client_id = excluded.client_id, client_secret_enc = excluded.client_secret_enc,
                 access_token_enc = excluded.access_token_enc, refresh_token_enc = excluded.refresh_token_enc, instance_url = excluded.instance_url,
                 id_url = excluded.id_url, issued_at_ms = excluded.issued_at_ms, webhook_token_hash = excluded.webhook_token_hash,
                 signing_secret_enc = excluded.signing_secret_enc, connected_at = excluded.connected_at, status = excluded.status,
                 status_reason = excluded.status_reason, provisioned_at = excluded.provisioned_at, updated_at = excluded.updated_at,
                 username = excluded.username, password_enc = excluded.password_enc",
            (
                n, &c.login_url, &c.client_id, c.client_secret.as_ref().map(|s| self.seal(n,
                "client_secret", s.expose())), self.seal(n, "access_token",
                c.tokens.access_token.expose()),
                c.tokens.refresh_token.as_ref().map(|s| self.seal(n, "refresh_token", s.expose())),
                &c.tokens.instance_url, &c.tokens.id_url, c.tokens.issued_at_ms as i64,
                &c.webhook_token_hash, c.signing_secret.as_ref().map(|s| self.seal(n,
                "signing_secret", s.expose())), ts(c.connected_at), c.status.as_str(),
                &c.status_reason, c.provisioned_at.map(ts), ts(Utc::now()),
                c.password_login.as_ref().map(|(u, _)| u.clone()),
                c.password_login.as_ref().map(|(_, p)| self.seal(n, "password", p.expose())),
            ),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    fn row_to_connection(&self, r: &sqlx::any::AnyRow) -> Result<Connection, StoreError> {
        let name: String = r.try_get("name")?;
        let sealed = |col: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(r.try_get::<Option<Vec<u8>>, _>(col)?)
        };
        let access =
            sealed("access_token_enc")?.ok_or_else(|| StoreError::NoConnection(name.clone()))?;
        let tokens = TokenSet {
            access_token: self.open_secret(&name, "access_token", &access)?,
            refresh_token: sealed("refresh_token_enc")?
                .map(|s| self.open_secret(&name, "refresh_token", &s))
                .transpose()?,
            instance_url: r.try_get("instance_url")?,
            id_url: r.try_get("id_url")?,
            issued_at_ms: r.try_get::<i64, _>("issued_at_ms")? as u64,
            expires_in_secs: None,
        };
        Ok(Connection {
            client_secret: sealed("client_secret_enc")?
                .map(|s| self.open_secret(&name, "client_secret", &s))
                .transpose()?,
            signing_secret: sealed("signing_secret_enc")?
                .map(|s| self.open_secret(&name, "signing_secret", &s))
                .transpose()?,
            password_login: match (
                r.try_get::<Option<String>, _>("username")?,
                sealed("password_enc")?,
            ) {
                (Some(u), Some(p)) => Some((u, self.open_secret(&name, "password", &p)?)),
                _ => None,
            },
            login_url: r.try_get("login_url")?,
            client_id: r.try_get("client_id")?,
            tokens,
            webhook_token_hash: r.try_get("webhook_token_hash")?,
            connected_at: parse_ts(&r.try_get::<String, _>("connected_at")?)
                .unwrap_or_else(Utc::now),
            status: ConnStatus::parse(&r.try_get::<String, _>("status")?),
            status_reason: r.try_get("status_reason")?,
            provisioned_at: r
                .try_get::<Option<String>, _>("provisioned_at")?
                .and_then(|s| parse_ts(&s)),
            thena_app: thena_app_of(r)?,
            previous_token: match (
                r.try_get::<Option<String>, _>("previous_token_hash")?,
                r.try_get::<Option<i64>, _>("previous_token_until_ms")?,
            ) {
                (Some(h), Some(until)) => Some((h, until)),
                _ => None,
            },
            name,
        })
    }

    pub async fn connection(&self, name: &str) -> Result<Connection, StoreError> {
        let row = sql!("SELECT * FROM connections WHERE name = $1", (name,))
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(r) => self.row_to_connection(&r),
            None => Err(StoreError::NoConnection(name.to_string())),
        }
    }

    /// A connection's status and when its tokens were issued, without opening its secrets.
    pub async fn connection_state(&self, name: &str) -> Result<(ConnStatus, i64), StoreError> {
        let row = sql!(
            "SELECT status, issued_at_ms FROM connections WHERE name = $1",
            (name,)
        )
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok((
                ConnStatus::parse(&r.try_get::<String, _>("status")?),
                r.try_get("issued_at_ms")?,
            )),
            None => Err(StoreError::NoConnection(name.to_string())),
        }
    }

    pub async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        let rows = sqlx::query("SELECT * FROM connections ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| self.row_to_connection(r)).collect()
    }

    /// Stores refreshed tokens in one statement: a rotated refresh token is never lost.
    pub async fn save_tokens(&self, name: &str, t: &TokenSet) -> Result<(), StoreError> {
        let done = sql!(
            "UPDATE connections SET access_token_enc = $2, refresh_token_enc = COALESCE($3, refresh_token_enc), instance_url = $4, issued_at_ms = $5, updated_at = $6 WHERE name = $1",
            (
                name, self.seal(name, "access_token", t.access_token.expose()),
                t.refresh_token.as_ref().map(|s| self.seal(name, "refresh_token", s.expose())),
                &t.instance_url, t.issued_at_ms as i64, ts(Utc::now()),
            ),
        )
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoConnection(name.to_string()));
        }
        Ok(())
    }

    pub async fn set_status(
        &self,
        name: &str,
        status: ConnStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        sql!(
            "UPDATE connections SET status = $2, status_reason = $3, updated_at = $4 WHERE name = $1",
            (name, status.as_str(), reason, ts(Utc::now())),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes the connection's refresh lock (one token refresh at a time across
    /// processes) for `ttl_ms`, unless another holder's lock is still live.
    pub async fn claim_refresh(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = Utc::now().timestamp_millis();
        let done = sql!(
            "UPDATE connections SET refresh_lock_until_ms = $3, refresh_lock_by = $2 WHERE name = $1 AND refresh_lock_until_ms < $4",
            (name, holder, now + ttl_ms, now),
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release_refresh(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sql!(
            "UPDATE connections SET refresh_lock_until_ms = 0 WHERE name = $1 AND refresh_lock_by = $2",
            (name, holder),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces a connection's webhook token; with `grace_until_ms`, the one
    /// replaced stays valid until then (else it ends now, as does any earlier one).
    pub async fn roll_webhook_token(
        &self,
        name: &str,
        hash: &str,
        grace_until_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let done = sql!(
            "UPDATE connections SET previous_token_hash = CASE WHEN $4 IS NULL THEN NULL ELSE webhook_token_hash END,
                previous_token_until_ms = $4, webhook_token_hash = $2, updated_at = $3 WHERE name = $1",
            (name, hash, ts(Utc::now()), grace_until_ms),
        )
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoConnection(name.to_string()));
        }
        Ok(())
    }

    pub async fn mark_provisioned(&self, name: &str) -> Result<(), StoreError> {
        sql!(
            "UPDATE connections SET provisioned_at = $2, updated_at = $2 WHERE name = $1",
            (name, ts(Utc::now())),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records what a Thena installation event said of the webhook app.
    pub async fn record_thena_app(&self, name: &str, app: &ThenaApp) -> Result<(), StoreError> {
        sql!(
            "UPDATE connections SET thena_org_id = COALESCE($2, thena_org_id), thena_team_ids = $3, thena_app_event = $4, thena_app_at = $5 WHERE name = $1",
            (
                name, &app.org_id,
                serde_json::to_string(&app.team_ids).expect("strings serialise"), &app.event,
                ts(app.at),
            ),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes a connection and everything kept for it (queue, states, history), in one transaction.
    pub async fn delete_connection(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for table in [
            "events",
            "pending",
            "requests",
            "dead_letters",
            "activity",
            "category_fields",
            "doctor_results",
            "ticket_comments",
        ] {
            sql!(
                &format!("DELETE FROM {table} WHERE connection = $1"),
                (name,)
            )
            .execute(&mut **tx)
            .await?;
        }
        sql!("DELETE FROM connections WHERE name = $1", (name,))
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The category → field map of a connection.
    pub async fn category_fields(&self, conn: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sql!(
            "SELECT category, field FROM category_fields WHERE connection = $1 ORDER BY category",
            (conn,),
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("category")?, r.try_get("field")?)))
            .collect()
    }

    /// Records a category's field; the first mapping of a category wins.
    pub async fn add_category_field(
        &self,
        conn: &str,
        category: &str,
        field: &str,
    ) -> Result<(), StoreError> {
        sql!(
            "INSERT INTO category_fields (connection, category, field, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (connection, category) DO NOTHING",
            (conn, category, field, ts(Utc::now())),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

impl Store {
    /// Ends a rolled token's grace now.
    pub async fn revoke_previous_token(&self, name: &str) -> Result<(), StoreError> {
        sql!(
            "UPDATE connections SET previous_token_hash = NULL, previous_token_until_ms = NULL WHERE name = $1",
            (name,),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

fn thena_app_of(r: &sqlx::any::AnyRow) -> Result<Option<ThenaApp>, StoreError> {
    let Some(event) = r.try_get::<Option<String>, _>("thena_app_event")? else {
        return Ok(None);
    };
    let teams: Option<String> = r.try_get("thena_team_ids")?;
    Ok(Some(ThenaApp {
        org_id: r.try_get("thena_org_id")?,
        team_ids: teams
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
        event,
        at: r
            .try_get::<Option<String>, _>("thena_app_at")?
            .and_then(|s| parse_ts(&s))
            .unwrap_or_else(Utc::now),
    }))
}
