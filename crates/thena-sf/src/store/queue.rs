//! The pipeline's tables: deduplicated events, coalesced pending snapshots,
//! per-request sync state, dead letters and the activity log.

use chrono::Utc;
use sqlx::Row;

use super::{ts, Store, StoreError};
use crate::domain::comments::CommentChange;
use crate::domain::snapshot::{Snapshot, Source};

/// What ingesting one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored (or merged into the snapshot already waiting).
    Queued,
    /// This delivery was seen before.
    Duplicate,
    /// Older than what is already held for this request.
    Stale,
    /// Created before the connection was made.
    OutOfScope,
}

impl Ingested {
    pub fn as_str(self) -> &'static str {
        match self {
            Ingested::Queued => "queued",
            Ingested::Duplicate => "duplicate",
            Ingested::Stale => "stale",
            Ingested::OutOfScope => "out_of_scope",
        }
    }
}

/// A snapshot claimed for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub request_id: String,
    pub snapshot: Snapshot,
    pub version: i64,
    pub attempts: i64,
    pub enqueued_at_ms: i64,
}

/// One successful sync, for [`Store::mark_synced_many`].
#[derive(Debug, Clone)]
pub struct Synced {
    pub claimed: Claimed,
    pub sf_id: String,
    pub contact: String,
    pub account: String,
    pub requestor_key: String,
    pub sent_hash: String,
    pub detail: String,
}

/// The sync state of one request.
#[derive(Debug, Clone, Default)]
pub struct RequestState {
    pub request_id: String,
    pub state: String,
    pub reason: Option<String>,
    pub sf_id: Option<String>,
    pub contact_id: Option<String>,
    pub account_id: Option<String>,
    pub requestor_key: Option<String>,
    pub sent_hash: Option<String>,
    pub updated_at: String,
}

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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: i64,
    pub synced: i64,
    pub skipped: i64,
    pub failed: i64,
    pub out_of_scope: i64,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

const ACTIVITY_KEEP: i64 = 10_000;

impl Store {
    /// Durably records one event: dedup, forward-only cut-off, stale check and
    /// coalescing, in one transaction. Returns only after the commit.
    pub async fn ingest(
        &self,
        connection: &str,
        event_key: &str,
        snap: &Snapshot,
        connected_at_ms: i64,
    ) -> Result<Ingested, StoreError> {
        let item = IngestItem {
            connection: connection.to_string(),
            event_key: event_key.to_string(),
            snapshot: snap.clone(),
            connected_at_ms,
            source: Source::Request,
            comment: None,
        };
        Ok(self.ingest_many(std::slice::from_ref(&item)).await?[0])
    }

    /// Records many events in one transaction (group commit); one result each, in order.
    pub async fn ingest_many(&self, events: &[IngestItem]) -> Result<Vec<Ingested>, StoreError> {
        // Rows are locked in one order (connection, request), whatever the arrival
        // order, so that concurrent groups on several replicas cannot deadlock;
        // the sort is stable, so versions of one request keep their order.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by(|a, b| {
            let (a, b) = (&events[*a], &events[*b]);
            (&a.connection, &a.snapshot.request_id).cmp(&(&b.connection, &b.snapshot.request_id))
        });
        // A deadlock or serialization failure (PostgreSQL, concurrent replicas) is
        // retried here a few times before the webhook is answered 503.
        let mut attempt = 0;
        loop {
            match self.ingest_ordered(events, &order).await {
                Err(StoreError::Db(e)) if retryable(&e) && attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "ingest transaction retried");
                    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn ingest_ordered(
        &self,
        events: &[IngestItem],
        order: &[usize],
    ) -> Result<Vec<Ingested>, StoreError> {
        let mut tx = self.begin_write().await?;
        let sqlite = self.backend() == super::Backend::Sqlite;
        let out = if sqlite && events.iter().all(super::batch::plain) {
            super::batch::ingest_plain(&mut tx, events, order, &ts(Utc::now()), now_ms()).await?
        } else {
            let mut out = vec![Ingested::Duplicate; events.len()];
            for &i in order {
                out[i] = ingest_in(&mut tx, &events[i]).await?;
            }
            out
        };
        if self.backend() == super::Backend::Postgres {
            // Wake the replica that owns each connection (delivered at commit).
            let mut conns: Vec<&str> = events.iter().map(|e| e.connection.as_str()).collect();
            conns.sort_unstable();
            conns.dedup();
            for c in conns {
                sqlx::query("SELECT 1 FROM (SELECT pg_notify('thena_sf_wake', $1)) AS n")
                    .bind(c)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Up to `limit` due snapshots, oldest first.
    pub async fn due(&self, connection: &str, limit: i64) -> Result<Vec<Claimed>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, snapshot, version, attempts, enqueued_at_ms FROM pending
             WHERE connection = $1 AND parked = 0 AND not_before_ms <= $2 ORDER BY enqueued_at_ms, request_id LIMIT $3",
        )
        .bind(connection)
        .bind(now_ms())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let text: String = r.try_get("snapshot")?;
            let rid: String = r.try_get("request_id")?;
            match serde_json::from_str::<Snapshot>(&text) {
                Ok(snapshot) => out.push(Claimed {
                    request_id: rid,
                    snapshot,
                    version: r.try_get("version")?,
                    attempts: r.try_get("attempts")?,
                    enqueued_at_ms: r.try_get("enqueued_at_ms")?,
                }),
                // A row this version cannot read: park it with the reason, never wedge the queue.
                Err(e) => {
                    self.park(connection, &rid, &format!("unreadable snapshot: {e}"))
                        .await?
                }
            }
        }
        Ok(out)
    }

    /// (count, oldest enqueued ms, soonest not_before ms) of waiting snapshots.
    pub async fn queue_shape(
        &self,
        connection: &str,
    ) -> Result<(i64, Option<i64>, Option<i64>), StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n, MIN(enqueued_at_ms) AS oldest, MIN(not_before_ms) AS soonest FROM pending WHERE connection = $1 AND parked = 0")
            .bind(connection)
            .fetch_one(self.pool())
            .await?;
        Ok((r.try_get("n")?, r.try_get("oldest")?, r.try_get("soonest")?))
    }

    pub async fn request_states(
        &self,
        connection: &str,
        ids: &[String],
    ) -> Result<Vec<RequestState>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT * FROM requests WHERE connection = $1 AND request_id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(connection);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.push(row_state(&r)?);
            }
        }
        Ok(out)
    }

    /// Records a successful sync and removes the pending row if no newer snapshot arrived meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub async fn mark_synced(
        &self,
        connection: &str,
        claimed: &Claimed,
        sf_id: &str,
        contact: &str,
        account: &str,
        requestor_key: &str,
        sent_hash: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let one = Synced {
            claimed: claimed.clone(),
            sf_id: sf_id.into(),
            contact: contact.into(),
            account: account.into(),
            requestor_key: requestor_key.into(),
            sent_hash: sent_hash.into(),
            detail: detail.into(),
        };
        self.mark_synced_many(connection, std::slice::from_ref(&one))
            .await
    }

    /// Records many successful syncs in one transaction.
    pub async fn mark_synced_many(
        &self,
        connection: &str,
        items: &[Synced],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        self.fence_check(&mut tx, connection).await?;
        let now = ts(Utc::now());
        // Rows in request order, as ingest locks them: no deadlock between the two.
        let mut items: Vec<&Synced> = items.iter().collect();
        items.sort_by(|a, b| a.claimed.request_id.cmp(&b.claimed.request_id));
        for it in items {
            let claimed = &it.claimed;
            sqlx::query(
                "UPDATE requests SET state = 'synced', reason = NULL, synced_updated_ms = $3, sf_id = $4, contact_id = $5, account_id = $6, requestor_key = $7, sent_hash = $8, updated_at = $9
                 WHERE connection = $1 AND request_id = $2",
            )
            .bind(connection)
            .bind(&claimed.request_id)
            .bind(claimed.snapshot.updated_at.0)
            .bind(&it.sf_id)
            .bind(&it.contact)
            .bind(&it.account)
            .bind(&it.requestor_key)
            .bind(&it.sent_hash)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            let removed = sqlx::query(
                "DELETE FROM pending WHERE connection = $1 AND request_id = $2 AND version = $3",
            )
            .bind(connection)
            .bind(&claimed.request_id)
            .bind(claimed.version)
            .execute(&mut *tx)
            .await?;
            if removed.rows_affected() == 0 {
                // A newer snapshot arrived while this one was in flight: it stays pending.
                sqlx::query("UPDATE requests SET state = 'pending' WHERE connection = $1 AND request_id = $2")
                    .bind(connection)
                    .bind(&claimed.request_id)
                    .execute(&mut *tx)
                    .await?;
            }
            log(
                &mut tx,
                connection,
                &claimed.request_id,
                "synced",
                Some(&it.detail),
                Some(&it.sf_id),
                &now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a skip (no Contact or Account) and parks the snapshot until the request changes or a retry.
    pub async fn mark_skipped(
        &self,
        connection: &str,
        claimed: &Claimed,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.fence_check(&mut tx, connection).await?;
        let now = ts(Utc::now());
        sqlx::query("UPDATE requests SET state = 'skipped', reason = $3, updated_at = $4 WHERE connection = $1 AND request_id = $2")
            .bind(connection)
            .bind(&claimed.request_id)
            .bind(reason)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE pending SET parked = 1, last_error = $4 WHERE connection = $1 AND request_id = $2 AND version = $3")
            .bind(connection)
            .bind(&claimed.request_id)
            .bind(claimed.version)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        log(
            &mut tx,
            connection,
            &claimed.request_id,
            "skipped",
            Some(reason),
            None,
            &now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Schedules another attempt after `delay_ms`.
    pub async fn retry_later(
        &self,
        connection: &str,
        claimed: &Claimed,
        delay_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE pending SET not_before_ms = $4, attempts = attempts + 1, last_error = $5 WHERE connection = $1 AND request_id = $2 AND version = $3")
            .bind(connection)
            .bind(&claimed.request_id)
            .bind(claimed.version)
            .bind(now_ms() + delay_ms)
            .bind(error)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Moves a snapshot Salesforce refused for good to the dead letters.
    pub async fn dead_letter(
        &self,
        connection: &str,
        claimed: &Claimed,
        code: &str,
        message: &str,
        fields: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.fence_check(&mut tx, connection).await?;
        let now = ts(Utc::now());
        let snap = serde_json::to_string(&claimed.snapshot).expect("snapshots serialise");
        sqlx::query("INSERT INTO dead_letters (connection, request_id, snapshot, code, message, fields, failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(connection)
            .bind(&claimed.request_id)
            .bind(&snap)
            .bind(code)
            .bind(message)
            .bind(fields.join(", "))
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM pending WHERE connection = $1 AND request_id = $2 AND version = $3",
        )
        .bind(connection)
        .bind(&claimed.request_id)
        .bind(claimed.version)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE requests SET state = 'failed', reason = $3, updated_at = $4 WHERE connection = $1 AND request_id = $2")
            .bind(connection)
            .bind(&claimed.request_id)
            .bind(format!("{code}: {message}"))
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        log(
            &mut tx,
            connection,
            &claimed.request_id,
            "failed",
            Some(&format!("{code}: {message}")),
            None,
            &now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn park(
        &self,
        connection: &str,
        request_id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE pending SET parked = 1, last_error = $3 WHERE connection = $1 AND request_id = $2").bind(connection).bind(request_id).bind(reason).execute(self.pool()).await?;
        Ok(())
    }

    /// Puts skipped requests back in the queue (all, or one).
    pub async fn retry_skipped(
        &self,
        connection: &str,
        request_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let sql = match request_id {
            // attempts = -1 marks a retry on demand: resolve afresh, whatever the worker's cache remembers.
            Some(_) => "UPDATE pending SET parked = 0, not_before_ms = 0, attempts = -1, enqueued_at_ms = $3 WHERE connection = $1 AND parked = 1 AND request_id = $2",
            None => "UPDATE pending SET parked = 0, not_before_ms = 0, attempts = -1, enqueued_at_ms = $3 WHERE connection = $1 AND parked = 1 AND $2 = $2",
        };
        let done = sqlx::query(sql)
            .bind(connection)
            .bind(request_id.unwrap_or(""))
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn dead_letters(
        &self,
        connection: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(sqlx::query_as::<_, DeadLetter>("SELECT id, request_id, code, message, fields, failed_at FROM dead_letters WHERE connection = $1 ORDER BY id DESC LIMIT $2 OFFSET $3")
            .bind(connection)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn dead_letter_count(&self, connection: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE connection = $1")
                .bind(connection)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Puts a dead letter (or all) back in the queue; returns how many.
    pub async fn retry_dead(&self, connection: &str, id: Option<i64>) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query("SELECT id, request_id, snapshot FROM dead_letters WHERE connection = $1 AND ($2 < 0 OR id = $2) ORDER BY id")
            .bind(connection)
            .bind(id.unwrap_or(-1))
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let snap: String = r.try_get("snapshot")?;
            let rid: String = r.try_get("request_id")?;
            let updated: i64 = serde_json::from_str::<Snapshot>(&snap)
                .map(|s| s.updated_at.0)
                .unwrap_or(0);
            sqlx::query(
                "INSERT INTO pending (connection, request_id, snapshot, updated_at_ms, enqueued_at_ms) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (connection, request_id) DO NOTHING",
            )
            .bind(connection)
            .bind(&rid)
            .bind(&snap)
            .bind(updated)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE requests SET state = 'pending', reason = NULL WHERE connection = $1 AND request_id = $2").bind(connection).bind(&rid).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM dead_letters WHERE id = $1")
                .bind(r.try_get::<i64, _>("id")?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    pub async fn discard_dead(&self, connection: &str, id: Option<i64>) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM dead_letters WHERE connection = $1 AND ($2 < 0 OR id = $2)")
                .bind(connection)
                .bind(id.unwrap_or(-1))
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }

    pub async fn requests_in_state(
        &self,
        connection: &str,
        state: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RequestState>, StoreError> {
        let rows = sqlx::query("SELECT * FROM requests WHERE connection = $1 AND state = $2 ORDER BY updated_at DESC, request_id LIMIT $3 OFFSET $4")
            .bind(connection)
            .bind(state)
            .bind(limit)
            .bind(offset)
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
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM requests WHERE connection = $1 GROUP BY state",
        )
        .bind(connection)
        .fetch_all(self.pool())
        .await?;
        let mut c = Counts::default();
        for r in rows {
            let n: i64 = r.try_get("n")?;
            match r.try_get::<String, _>("state")?.as_str() {
                "pending" => c.pending = n,
                "synced" => c.synced = n,
                "skipped" => c.skipped = n,
                "failed" => c.failed = n,
                "out_of_scope" => c.out_of_scope = n,
                _ => {}
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
        Ok(sqlx::query_as::<_, Activity>("SELECT id, request_id, outcome, detail, sf_id, at FROM activity WHERE connection = $1 ORDER BY id DESC LIMIT $2 OFFSET $3")
            .bind(connection)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?)
    }

    /// Forgets the delivery ids older than `days` (dedup needs only the recent ones).
    pub async fn prune(&self, days: i64) -> Result<(), StoreError> {
        let cutoff = ts(Utc::now() - chrono::Duration::days(days));
        sqlx::query("DELETE FROM events WHERE received_at < $1")
            .bind(cutoff)
            .execute(self.pool())
            .await?;
        sqlx::query("DELETE FROM activity WHERE id <= (SELECT MAX(id) FROM activity) - $1")
            .bind(ACTIVITY_KEEP)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

fn row_state(r: &sqlx::any::AnyRow) -> Result<RequestState, StoreError> {
    Ok(RequestState {
        request_id: r.try_get("request_id")?,
        state: r.try_get("state")?,
        reason: r.try_get("reason")?,
        sf_id: r.try_get("sf_id")?,
        contact_id: r.try_get("contact_id")?,
        account_id: r.try_get("account_id")?,
        requestor_key: r.try_get("requestor_key")?,
        sent_hash: r.try_get("sent_hash")?,
        updated_at: r.try_get("updated_at")?,
    })
}

async fn log(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    connection: &str,
    request_id: &str,
    outcome: &str,
    detail: Option<&str>,
    sf_id: Option<&str>,
    at: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO activity (connection, request_id, outcome, detail, sf_id, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(connection)
        .bind(request_id)
        .bind(outcome)
        .bind(detail)
        .bind(sf_id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Drops a request's remembered Contact and Account (they are gone in Salesforce).
    pub async fn forget_link(&self, connection: &str, request_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE requests SET contact_id = NULL, account_id = NULL, requestor_key = NULL, sent_hash = NULL WHERE connection = $1 AND request_id = $2")
            .bind(connection)
            .bind(request_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// One event to ingest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IngestItem {
    pub connection: String,
    pub event_key: String,
    pub snapshot: Snapshot,
    pub connected_at_ms: i64,
    /// How the snapshot applies (a request, a ticket, or a side change).
    #[serde(default)]
    pub source: Source,
    /// A platform comment added, edited or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<CommentChange>,
}

/// A request's newer version makes it pending again; an older one changes
/// nothing (the stale check, decided on the row as committed). Shared with
/// the SQLite group path (`batch.rs`).
pub(super) const REQUEST_NEWER: &str = "ON CONFLICT (connection, request_id) DO UPDATE SET state = 'pending', reason = NULL,
    latest_updated_ms = excluded.latest_updated_ms, updated_at = excluded.updated_at, created_ms = excluded.created_ms
    WHERE requests.latest_updated_ms <= excluded.latest_updated_ms";

/// A snapshot over the one pending: a new version un-parks the request and
/// resets its tries. Shared with `batch.rs`.
pub(super) const PENDING_OVER: &str = "ON CONFLICT (connection, request_id) DO UPDATE SET snapshot = excluded.snapshot,
    updated_at_ms = excluded.updated_at_ms, version = pending.version + 1, parked = 0, not_before_ms = 0, attempts = 0, last_error = NULL";

async fn ingest_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    item: &IngestItem,
) -> Result<Ingested, StoreError> {
    let (connection, snap) = (item.connection.as_str(), &item.snapshot);
    let now = ts(Utc::now());
    let fresh = sqlx::query("INSERT INTO events (connection, event_key, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(connection)
        .bind(&item.event_key)
        .bind(&now)
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1;
    if !fresh {
        return Ok(Ingested::Duplicate);
    }
    if item.source == Source::Side {
        return super::side::ingest_side(tx, connection, snap, item.comment.as_ref(), &now).await;
    }
    let rid = &snap.request_id;
    let updated = snap.updated_at.0;
    if snap.created_at.0 < item.connected_at_ms {
        sqlx::query(
            "INSERT INTO requests (connection, request_id, state, reason, latest_updated_ms, updated_at) VALUES ($1, $2, 'out_of_scope', 'created before the connection was made', $3, $4)
             ON CONFLICT (connection, request_id) DO UPDATE SET latest_updated_ms = CASE WHEN requests.latest_updated_ms > excluded.latest_updated_ms THEN requests.latest_updated_ms ELSE excluded.latest_updated_ms END, updated_at = excluded.updated_at",
        )
        .bind(connection)
        .bind(rid)
        .bind(updated)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
        return Ok(Ingested::OutOfScope);
    }
    // Comments are not versioned: a stale ticket event still keeps its comment.
    if let Some(c) = &item.comment {
        super::side::apply_comment(tx, connection, rid, c).await?;
    }
    // The stale check is the upsert's own condition, so that it is decided on the
    // row as committed: on PostgreSQL a concurrent ingest of the same request (on
    // another replica) waits for this row, then sees its newest state. The row
    // stays locked until commit, which serialises the coalescing below too.
    let fresh_version = sqlx::query(
        &format!("INSERT INTO requests (connection, request_id, state, latest_updated_ms, updated_at, created_ms) VALUES ($1, $2, 'pending', $3, $4, $5) {REQUEST_NEWER}"),
    )
    .bind(connection)
    .bind(rid)
    .bind(updated)
    .bind(&now)
    .bind(snap.created_at.0)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh_version {
        return Ok(Ingested::Stale);
    }
    let mut snap = snap.clone();
    if item.source == Source::Ticket {
        // The threads are the ticket's comments as kept here (some may have
        // arrived before the ticket did).
        (snap.customer_thread, snap.internal_thread) =
            super::side::threads(tx, connection, rid).await?;
    }
    enqueue(tx, connection, &snap).await?;
    Ok(Ingested::Queued)
}

/// Puts a snapshot over the one pending for its request (if any): the
/// newer fields win, a new version un-parks it and resets its tries.
pub(super) async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    connection: &str,
    snap: &Snapshot,
) -> Result<(), StoreError> {
    let rid = &snap.request_id;
    let older: Option<String> = sqlx::query_scalar(
        "SELECT snapshot FROM pending WHERE connection = $1 AND request_id = $2",
    )
    .bind(connection)
    .bind(rid)
    .fetch_optional(&mut **tx)
    .await?;
    let merged = match older.and_then(|o| serde_json::from_str::<Snapshot>(&o).ok()) {
        Some(o) => snap.clone().over(o),
        None => snap.clone(),
    };
    let json = serde_json::to_string(&merged).expect("snapshots serialise");
    sqlx::query(&format!(
        "INSERT INTO pending (connection, request_id, snapshot, updated_at_ms, version, enqueued_at_ms) VALUES ($1, $2, $3, $4, 1, $5) {PENDING_OVER}"
    ))
    .bind(connection)
    .bind(rid)
    .bind(&json)
    .bind(merged.updated_at.0)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether a database error is a transient conflict worth retrying the transaction for
/// (PostgreSQL: deadlock detected, serialization failure; SQLite: busy or locked).
fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(
            d.code().as_deref(),
            Some("40P01") | Some("40001") | Some("5") | Some("6") | Some("517")
        ),
        _ => false,
    }
}
