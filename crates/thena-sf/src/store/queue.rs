//! The queue: claiming due snapshots, and acknowledging each one's result
//! (synced, skipped, retried later, dead letter), with the activity log.

use chrono::Utc;
use sqlx::Row;

use super::{ts, Store, StoreError};
use crate::domain::snapshot::Snapshot;

/// The queue as the worker paces by it. A snapshot waiting out a retry's
/// delay is not due: counted as the oldest, it made every turn send at
/// once, so events went one call each while any retry waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueShape {
    /// How many snapshots are due now.
    pub due: i64,
    /// When the oldest due one was acknowledged.
    pub oldest: Option<i64>,
    /// When the oldest due one acknowledged after the worker last looked
    /// requestors up was acknowledged (it may need a lookup before its write).
    pub unlooked: Option<i64>,
    /// When the next one waiting out a retry's delay comes due.
    pub soonest: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Claimed {
    pub request_id: String,
    pub snapshot: Snapshot,
    pub version: i64,
    pub attempts: i64,
    pub enqueued_at_ms: i64,
    /// When it was read from the queue: a newer version of the request
    /// arrived after this.
    pub claimed_at_ms: i64,
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

/// Where a request stands (`requests.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReqState {
    /// A version waits to be written.
    #[default]
    Pending,
    /// Salesforce holds its newest version.
    Synced,
    /// No Contact or Account could be found for it; waits for a change or a retry.
    Skipped,
    /// Salesforce refused it for good (a dead letter).
    Failed,
    /// Created before the connection was made: never synced.
    OutOfScope,
}

impl ReqState {
    pub const ALL: [ReqState; 5] = [
        ReqState::Pending,
        ReqState::Synced,
        ReqState::Skipped,
        ReqState::Failed,
        ReqState::OutOfScope,
    ];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ReqState::Pending => "pending",
            ReqState::Synced => "synced",
            ReqState::Skipped => "skipped",
            ReqState::Failed => "failed",
            ReqState::OutOfScope => "out_of_scope",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<ReqState> {
        ReqState::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for ReqState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compared with its stored name (`state == "pending"`).
impl PartialEq<&str> for ReqState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The sync state of one request.
#[derive(Debug, Clone, Default)]
pub struct RequestState {
    pub request_id: String,
    pub state: ReqState,
    pub reason: Option<String>,
    pub sf_id: Option<String>,
    pub contact_id: Option<String>,
    pub account_id: Option<String>,
    pub requestor_key: Option<String>,
    pub sent_hash: Option<String>,
    pub updated_at: String,
    /// From its newest version, for people: title, requestor (email, else
    /// name) and its page in Thena.
    pub title: Option<String>,
    pub requestor: Option<String>,
    pub web_link: Option<String>,
}

pub(super) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Store {
    /// Up to `limit` due snapshots, oldest first.
    pub async fn due(&self, connection: &str, limit: i64) -> Result<Vec<Claimed>, StoreError> {
        let now = now_ms();
        let rows = sql!(
            "SELECT request_id, snapshot, version, attempts, enqueued_at_ms FROM pending
             WHERE connection = $1 AND parked = 0 AND not_before_ms <= $2 ORDER BY enqueued_at_ms, request_id LIMIT $3",
            (connection, now, limit),
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let text: String = r.try_get("snapshot")?;
            let rid: String = r.try_get("request_id")?;
            match super::format::decode(&text) {
                Ok(snapshot) => out.push(Claimed {
                    request_id: rid,
                    snapshot,
                    version: r.try_get("version")?,
                    attempts: r.try_get("attempts")?,
                    enqueued_at_ms: r.try_get("enqueued_at_ms")?,
                    claimed_at_ms: now,
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

    /// What the worker paces by (see [`DueShape`]); `looked_until_ms`: the
    /// latest acknowledgement time whose requestors the worker has looked up.
    pub async fn due_shape(
        &self,
        connection: &str,
        now_ms: i64,
        looked_until_ms: i64,
    ) -> Result<DueShape, StoreError> {
        let r = sql!(
            "SELECT COUNT(CASE WHEN not_before_ms <= $2 THEN 1 END) AS n, \
             MIN(CASE WHEN not_before_ms <= $2 THEN enqueued_at_ms END) AS oldest, \
             MIN(CASE WHEN not_before_ms <= $2 AND enqueued_at_ms > $3 THEN enqueued_at_ms END) AS unlooked, \
             MIN(CASE WHEN not_before_ms > $2 THEN not_before_ms END) AS soonest \
             FROM pending WHERE connection = $1 AND parked = 0",
            (connection, now_ms, looked_until_ms),
        )
        .fetch_one(self.pool())
        .await?;
        Ok(DueShape {
            due: r.try_get("n")?,
            oldest: r.try_get("oldest")?,
            unlooked: r.try_get("unlooked")?,
            soonest: r.try_get("soonest")?,
        })
    }

    /// How many snapshots wait to be sent, due or not (the queue's depth, as
    /// pages and metrics show it).
    pub async fn queued(&self, connection: &str) -> Result<i64, StoreError> {
        Ok(sql_scalar!(
            "SELECT COUNT(*) FROM pending WHERE connection = $1 AND parked = 0",
            (connection,)
        )
        .fetch_one(self.pool())
        .await?)
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
            let mut q = sql!(&sql, (connection,));
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
            sql!(
                "UPDATE requests SET state = 'synced', reason = NULL, synced_updated_ms = $3, sf_id = $4, contact_id = $5, account_id = $6, requestor_key = $7, sent_hash = $8, updated_at = $9
                 WHERE connection = $1 AND request_id = $2",
                (
                    connection, &claimed.request_id, claimed.snapshot.updated_at.0, &it.sf_id,
                    &it.contact, &it.account, &it.requestor_key, &it.sent_hash, &now,
                ),
            )
            .execute(&mut **tx)
            .await?;
            if !take_version(&mut tx, connection, claimed).await? {
                newer_stays(&mut tx, connection, claimed).await?;
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
        self.mark_skipped_many(connection, &[(claimed, reason)])
            .await
    }

    /// Records many skips in one transaction.
    pub async fn mark_skipped_many(
        &self,
        connection: &str,
        items: &[(&Claimed, &str)],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        self.fence_check(&mut tx, connection).await?;
        let now = ts(Utc::now());
        // Rows in request order, as ingest locks them: no deadlock between the two.
        let mut items = items.to_vec();
        items.sort_by(|a, b| a.0.request_id.cmp(&b.0.request_id));
        for (claimed, reason) in items {
            let parked = sql!(
                "UPDATE pending SET parked = 1, last_error = $4 WHERE connection = $1 AND request_id = $2 AND version = $3",
                (connection, &claimed.request_id, claimed.version, reason),
            )
            .execute(&mut **tx)
            .await?;
            settle(
                &mut tx,
                connection,
                claimed,
                ReqState::Skipped,
                reason,
                &now,
            )
            .await?;
            if parked.rows_affected() == 0 {
                newer_stays(&mut tx, connection, claimed).await?;
            }
        }
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
        sql!(
            "UPDATE pending SET not_before_ms = $4, attempts = attempts + 1, last_error = $5 WHERE connection = $1 AND request_id = $2 AND version = $3",
            (connection, &claimed.request_id, claimed.version, now_ms() + delay_ms, error),
        )
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
        let snap = super::format::encode(&claimed.snapshot);
        sql!(
            "INSERT INTO dead_letters (connection, request_id, snapshot, code, message, fields, failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            (connection, &claimed.request_id, &snap, code, message, fields.join(", "), &now),
        )
        .execute(&mut **tx)
        .await?;
        let taken = take_version(&mut tx, connection, claimed).await?;
        let reason = format!("{code}: {message}");
        settle(
            &mut tx,
            connection,
            claimed,
            ReqState::Failed,
            &reason,
            &now,
        )
        .await?;
        if !taken {
            newer_stays(&mut tx, connection, claimed).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn park(
        &self,
        connection: &str,
        request_id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sql!(
            "UPDATE pending SET parked = 1, last_error = $3 WHERE connection = $1 AND request_id = $2",
            (connection, request_id, reason),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// The `state` column of a request's row.
fn state_of(r: &sqlx::any::AnyRow) -> Result<ReqState, StoreError> {
    let s: String = r.try_get("state")?;
    ReqState::parse(&s).ok_or_else(|| {
        StoreError::Db(sqlx::Error::Decode(
            format!("unknown request state '{s}'").into(),
        ))
    })
}

pub(super) fn row_state(r: &sqlx::any::AnyRow) -> Result<RequestState, StoreError> {
    Ok(RequestState {
        request_id: r.try_get("request_id")?,
        state: state_of(r)?,
        reason: r.try_get("reason")?,
        sf_id: r.try_get("sf_id")?,
        contact_id: r.try_get("contact_id")?,
        account_id: r.try_get("account_id")?,
        requestor_key: r.try_get("requestor_key")?,
        sent_hash: r.try_get("sent_hash")?,
        updated_at: r.try_get("updated_at")?,
        title: r.try_get("title")?,
        requestor: r.try_get("requestor")?,
        web_link: r.try_get("web_link")?,
    })
}

/// A request that ends this attempt without a write: its state and reason,
/// and the activity line that says so.
async fn settle(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    connection: &str,
    claimed: &Claimed,
    state: ReqState,
    reason: &str,
    now: &str,
) -> Result<(), StoreError> {
    sql!(
        "UPDATE requests SET state = $3, reason = $4, updated_at = $5 WHERE connection = $1 AND request_id = $2",
        (connection, &claimed.request_id, state.as_str(), reason, now),
    )
    .execute(&mut **tx)
    .await?;
    log(
        tx,
        connection,
        &claimed.request_id,
        state.as_str(),
        Some(reason),
        None,
        now,
    )
    .await
}

/// Removes the snapshot version a step decided; false when it was no longer
/// there (a newer version replaced it in flight: see [`newer_stays`]).
async fn take_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    connection: &str,
    claimed: &Claimed,
) -> Result<bool, StoreError> {
    let removed = sql!(
        "DELETE FROM pending WHERE connection = $1 AND request_id = $2 AND version = $3",
        (connection, &claimed.request_id, claimed.version),
    )
    .execute(&mut **tx)
    .await?;
    Ok(removed.rows_affected() == 1)
}

/// A version was decided (written, skipped, refused) while a newer one came
/// in flight (the versioned statement touched no row): the request is
/// pending again, and the newer snapshot waits since the claim at the
/// earliest, not since the arrival of the version decided.
async fn newer_stays(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    connection: &str,
    claimed: &Claimed,
) -> Result<(), StoreError> {
    sql!(
        "UPDATE requests SET state = 'pending', reason = NULL WHERE connection = $1 AND request_id = $2",
        (connection, &claimed.request_id),
    )
    .execute(&mut **tx)
    .await?;
    sql!(
        "UPDATE pending SET enqueued_at_ms = $3 WHERE connection = $1 AND request_id = $2 AND enqueued_at_ms < $3",
        (connection, &claimed.request_id, claimed.claimed_at_ms),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
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
    sql!(
        "INSERT INTO activity (connection, request_id, outcome, detail, sf_id, at) VALUES ($1, $2, $3, $4, $5, $6)",
        (connection, request_id, outcome, detail, sf_id, at),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Drops a request's remembered Contact and Account (they are gone in Salesforce).
    pub async fn forget_link(&self, connection: &str, request_id: &str) -> Result<(), StoreError> {
        sql!(
            "UPDATE requests SET contact_id = NULL, account_id = NULL, requestor_key = NULL, sent_hash = NULL WHERE connection = $1 AND request_id = $2",
            (connection, request_id),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ReqState;

    #[test]
    fn a_request_state_reads_back_from_its_stored_name() {
        for s in ReqState::ALL {
            assert_eq!(ReqState::parse(s.as_str()), Some(s));
            assert_eq!(s, s.as_str());
        }
        assert_eq!(ReqState::parse("out_of_scope"), Some(ReqState::OutOfScope));
        assert_eq!(ReqState::parse("dead_letter"), None);
    }
}
