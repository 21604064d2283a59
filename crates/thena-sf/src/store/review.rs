//! Review: what people look at and act on: counts, skipped requests,
//! dead letters (retry, discard), the activity log, and pruning.

use chrono::Utc;
use sqlx::Row;

use super::queue::{now_ms, row_state, ReqState, RequestState};
use super::{ts, Store, StoreError};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub request_id: String,
    pub code: String,
    pub message: String,
    pub fields: String,
    pub failed_at: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Activity {
    pub id: i64,
    pub request_id: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub sf_id: Option<String>,
    pub at: String,
}

/// A connection's figures, read in one statement so that they agree with
/// each other: a request the worker settles between two reads would count
/// both as queued and as synced (seen once on the admin page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests by state.
    pub pending: i64,
    pub synced: i64,
    pub skipped: i64,
    pub failed: i64,
    pub out_of_scope: i64,
    /// Snapshots waiting to be sent (not parked).
    pub queued: i64,
    /// Dead letters: refused for good, waiting for a person.
    pub dead_letters: i64,
}

/// Rows of activity and of the delivery log kept (each).
const ACTIVITY_KEEP: i64 = 10_000;

/// When a connection last heard from Thena and last wrote a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastSeen {
    /// A webhook's arrival (ms since the epoch); None: none yet.
    pub webhook_ms: Option<i64>,
    /// The last record written to Salesforce (RFC 3339).
    pub written_at: Option<String>,
    /// When a paused worker next looks at the org's usage (ms since the epoch).
    pub recheck_ms: Option<i64>,
}

impl Store {
    /// When `connection` last heard from Thena and last wrote a record.
    pub async fn last_seen(&self, connection: &str) -> Result<LastSeen, StoreError> {
        let row = sql!(
            "SELECT last_event_ms, recheck_at_ms FROM connections WHERE name = $1",
            (connection,),
        )
        .fetch_optional(self.pool())
        .await?;
        let column = |name: &str| -> Result<Option<i64>, StoreError> {
            Ok(row
                .as_ref()
                .map(|r| r.try_get::<Option<i64>, _>(name))
                .transpose()?
                .flatten())
        };
        let (webhook_ms, recheck_ms) = (column("last_event_ms")?, column("recheck_at_ms")?);
        let written_at = sql!(
            "SELECT at FROM activity WHERE connection = $1 AND outcome = 'synced' ORDER BY id DESC LIMIT 1",
            (connection,),
        )
        .fetch_optional(self.pool())
        .await?
        .map(|r| r.try_get::<String, _>("at"))
        .transpose()?;
        Ok(LastSeen {
            webhook_ms,
            written_at,
            recheck_ms,
        })
    }

    /// When a paused connection's worker looks at the org's usage again.
    pub async fn set_recheck(&self, connection: &str, at_ms: i64) -> Result<(), StoreError> {
        sql!(
            "UPDATE connections SET recheck_at_ms = $2 WHERE name = $1",
            (connection, at_ms)
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Puts skipped requests back in the queue (all, or one): queued again,
    /// so that they leave the skipped list and count once.
    pub async fn retry_skipped(
        &self,
        connection: &str,
        request_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        sql!(
            "UPDATE requests SET state = 'pending', reason = NULL WHERE connection = $1 AND state = 'skipped' AND ($2 = '' OR request_id = $2)
             AND EXISTS (SELECT 1 FROM pending p WHERE p.connection = requests.connection AND p.request_id = requests.request_id AND p.parked = 1)",
            (connection, request_id.unwrap_or("")),
        )
        .execute(&mut **tx)
        .await?;
        // attempts = -1 marks a retry on demand: resolve afresh, whatever the worker's cache remembers.
        let done = sql!(
            "UPDATE pending SET parked = 0, not_before_ms = 0, attempts = -1, enqueued_at_ms = $3 WHERE connection = $1 AND parked = 1 AND ($2 = '' OR request_id = $2)",
            (connection, request_id.unwrap_or(""), now_ms()),
        )
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub async fn dead_letters(
        &self,
        connection: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(sql_as!(
            DeadLetter, "SELECT id, request_id, code, message, fields, failed_at FROM dead_letters WHERE connection = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
            (connection, limit, offset),
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Puts a dead letter (or all) back in the queue; returns how many.
    pub async fn retry_dead(&self, connection: &str, id: Option<i64>) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sql!(
            "SELECT id, request_id, snapshot FROM dead_letters WHERE connection = $1 AND ($2 < 0 OR id = $2) ORDER BY id",
            (connection, id.unwrap_or(-1)),
        )
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            let snap: String = r.try_get("snapshot")?;
            let rid: String = r.try_get("request_id")?;
            let updated: i64 = super::format::decode(&snap)
                .map(|s| s.updated_at.0)
                .unwrap_or(0);
            sql!(
                "INSERT INTO pending (connection, request_id, snapshot, updated_at_ms, enqueued_at_ms) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (connection, request_id) DO NOTHING",
                (connection, &rid, &snap, updated, now_ms()),
            )
            .execute(&mut **tx)
            .await?;
            sql!(
                "UPDATE requests SET state = 'pending', reason = NULL WHERE connection = $1 AND request_id = $2",
                (connection, &rid),
            ).execute(&mut **tx).await?;
            sql!(
                "DELETE FROM dead_letters WHERE id = $1",
                (r.try_get::<i64, _>("id")?,)
            )
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    pub async fn discard_dead(&self, connection: &str, id: Option<i64>) -> Result<u64, StoreError> {
        let done = sql!(
            "DELETE FROM dead_letters WHERE connection = $1 AND ($2 < 0 OR id = $2)",
            (connection, id.unwrap_or(-1)),
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn requests_in_state(
        &self,
        connection: &str,
        state: ReqState,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RequestState>, StoreError> {
        let rows = sql!(
            "SELECT * FROM requests WHERE connection = $1 AND state = $2 ORDER BY updated_at DESC, request_id LIMIT $3 OFFSET $4",
            (connection, state.as_str(), limit, offset),
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_state).collect()
    }

    pub async fn request_state(
        &self,
        connection: &str,
        request_id: &str,
    ) -> Result<Option<RequestState>, StoreError> {
        Ok(self
            .request_states(connection, &[request_id.to_string()])
            .await?
            .pop())
    }

    pub async fn counts(&self, connection: &str) -> Result<Counts, StoreError> {
        // One statement is one snapshot on both backends.
        let rows = sql!(
            "SELECT state, COUNT(*) AS n FROM requests WHERE connection = $1 GROUP BY state \
             UNION ALL SELECT '(queued)', COUNT(*) FROM pending WHERE connection = $1 AND parked = 0 \
             UNION ALL SELECT '(dead letters)', COUNT(*) FROM dead_letters WHERE connection = $1",
            (connection,),
        )
        .fetch_all(self.pool())
        .await?;
        let mut c = Counts::default();
        for r in rows {
            let n: i64 = r.try_get("n")?;
            let state: String = r.try_get("state")?;
            match state.as_str() {
                "(queued)" => c.queued = n,
                "(dead letters)" => c.dead_letters = n,
                s => match ReqState::parse(s) {
                    Some(ReqState::Pending) => c.pending = n,
                    Some(ReqState::Synced) => c.synced = n,
                    Some(ReqState::Skipped) => c.skipped = n,
                    Some(ReqState::Failed) => c.failed = n,
                    Some(ReqState::OutOfScope) => c.out_of_scope = n,
                    None => {}
                },
            }
        }
        Ok(c)
    }

    pub async fn activity(
        &self,
        connection: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Activity>, StoreError> {
        Ok(sql_as!(
            Activity, "SELECT id, request_id, outcome, detail, sf_id, at FROM activity WHERE connection = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
            (connection, limit, offset),
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Forgets the delivery ids older than `days` (dedup needs only the recent ones).
    pub async fn prune(&self, days: i64) -> Result<(), StoreError> {
        let cutoff = ts(Utc::now() - chrono::Duration::days(days));
        sql!("DELETE FROM events WHERE received_at < $1", (cutoff,))
            .execute(self.pool())
            .await?;
        for table in ["activity", "deliveries"] {
            sql!(
                &format!("DELETE FROM {table} WHERE id <= (SELECT MAX(id) FROM {table}) - $1"),
                (ACTIVITY_KEEP,),
            )
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }
}
