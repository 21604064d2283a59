//! Leases divide the work between replicas: one replica at a time drains a
//! connection. A lease is a row (connection, owner, epoch, expiry); its owner
//! renews it while alive; once expired, any replica may take it, which bumps
//! the epoch. Every acknowledgement of claimed work checks, in its own
//! transaction, that this process still holds the lease with the epoch it
//! started with (`FOR SHARE` on PostgreSQL, so a takeover waits for it), so a
//! replica that stalled past its expiry cannot acknowledge work it lost.
//!
//! Replicas also announce themselves with a heartbeat, so that each can take
//! its fair share (connections ÷ live replicas) and give back the rest.

use std::collections::HashMap;

use parking_lot::RwLock;
use sqlx::Row;

use super::{Backend, Store, StoreError};

/// The epoch recorded for a lease this process has lost but whose worker may still run.
const LOST: i64 = -1;

/// The leases this process holds, as its acknowledgements see them.
#[derive(Default)]
pub struct Fence {
    replica: RwLock<String>,
    held: RwLock<HashMap<String, i64>>,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub connection: String,
    pub owner: String,
    pub epoch: i64,
    pub expires_at_ms: i64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Names this process (once, at start) for its leases.
    pub fn set_replica(&self, id: &str) {
        *self.fence.replica.write() = id.to_string();
    }

    pub fn replica(&self) -> String {
        self.fence.replica.read().clone()
    }

    /// The connections this process holds, with their epochs.
    pub fn held(&self) -> HashMap<String, i64> {
        self.fence
            .held
            .read()
            .iter()
            .filter(|(_, e)| **e != LOST)
            .map(|(c, e)| (c.clone(), *e))
            .collect()
    }

    /// Marks a lease lost: acknowledgements for it fail until [`Store::forget_lease`].
    pub fn mark_lost(&self, connection: &str) {
        if let Some(e) = self.fence.held.write().get_mut(connection) {
            *e = LOST;
        }
    }

    /// Whether this process lost the connection's lease (its worker must stop).
    pub fn lease_lost(&self, connection: &str) -> bool {
        self.fence.held.read().get(connection) == Some(&LOST)
    }

    /// Forgets a lease once its worker has stopped.
    pub fn forget_lease(&self, connection: &str) {
        self.fence.held.write().remove(connection);
    }

    /// Fails with [`StoreError::LeaseLost`] unless this process still holds the
    /// connection's lease (connections never leased by this process pass).
    pub(super) async fn fence_check(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        connection: &str,
    ) -> Result<(), StoreError> {
        let Some(epoch) = self.fence.held.read().get(connection).copied() else {
            return Ok(());
        };
        if epoch == LOST {
            return Err(StoreError::LeaseLost(connection.to_string()));
        }
        if self.backend == Backend::Sqlite {
            // One process owns a SQLite store, so no one else can hold the lease; and a
            // read before the first write would turn this transaction into one that
            // SQLite refuses to upgrade (SQLITE_BUSY_SNAPSHOT) whenever ingest commits
            // in between, which starved acknowledgements under load.
            return Ok(());
        }
        let row = sql!(
            "SELECT epoch FROM leases WHERE connection = $1 AND owner = $2 AND expires_at_ms > $3 FOR SHARE",
            (connection, self.replica(), now_ms()),
        )
        .fetch_optional(&mut **tx)
        .await?;
        match row {
            Some(r) if r.try_get::<i64, _>("epoch")? == epoch => Ok(()),
            _ => {
                self.mark_lost(connection);
                Err(StoreError::LeaseLost(connection.to_string()))
            }
        }
    }

    /// Records that this replica is alive; forgets replicas silent for longer than `ttl_ms`.
    /// Returns how many replicas are alive (this one included).
    pub async fn heartbeat(&self, ttl_ms: i64) -> Result<i64, StoreError> {
        let now = now_ms();
        sql!(
            "INSERT INTO replicas (id, heartbeat_ms) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
            (self.replica(), now),
        )
        .execute(self.pool())
        .await?;
        sql!(
            "DELETE FROM replicas WHERE heartbeat_ms < $1",
            (now - ttl_ms,)
        )
        .execute(self.pool())
        .await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM replicas")
            .fetch_one(self.pool())
            .await?;
        Ok(n.max(1))
    }

    /// Extends every lease this replica holds; returns those it still holds, with their epochs.
    pub async fn renew_leases(&self, ttl_ms: i64) -> Result<HashMap<String, i64>, StoreError> {
        let now = now_ms();
        sql!(
            "UPDATE leases SET expires_at_ms = $2 WHERE owner = $1 AND expires_at_ms > $3",
            (self.replica(), now + ttl_ms, now),
        )
        .execute(self.pool())
        .await?;
        let rows = sql!(
            "SELECT connection, epoch FROM leases WHERE owner = $1 AND expires_at_ms > $2",
            (self.replica(), now),
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("connection")?, r.try_get("epoch")?)))
            .collect()
    }

    /// Takes a connection's lease if it is free or expired; returns the new epoch.
    pub async fn try_acquire(
        &self,
        connection: &str,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let row = sql!(
            "INSERT INTO leases (connection, owner, epoch, expires_at_ms) VALUES ($1, $2, 1, $3)
             ON CONFLICT (connection) DO UPDATE SET owner = excluded.owner, epoch = leases.epoch + 1, expires_at_ms = excluded.expires_at_ms
             WHERE leases.expires_at_ms <= $4
             RETURNING epoch",
            (connection, self.replica(), now + ttl_ms, now),
        )
        .fetch_optional(self.pool())
        .await?;
        self.note_held(connection, row)
    }

    /// Takes over a lease already held under this replica's name (a restart of a
    /// stable-named replica), bumping its epoch.
    pub async fn adopt_lease(&self, connection: &str) -> Result<Option<i64>, StoreError> {
        let row = sql!(
            "UPDATE leases SET epoch = epoch + 1 WHERE connection = $1 AND owner = $2 AND expires_at_ms > $3 RETURNING epoch",
            (connection, self.replica(), now_ms()),
        )
        .fetch_optional(self.pool())
        .await?;
        self.note_held(connection, row)
    }

    /// Remembers the epoch a take or adopt returned (this replica now holds
    /// the lease under it); the epoch, or `None` when the lease was not had.
    fn note_held(
        &self,
        connection: &str,
        row: Option<sqlx::any::AnyRow>,
    ) -> Result<Option<i64>, StoreError> {
        let epoch = row.map(|r| r.try_get::<i64, _>("epoch")).transpose()?;
        if let Some(e) = epoch {
            self.fence.held.write().insert(connection.to_string(), e);
        }
        Ok(epoch)
    }

    /// Gives a lease back at once (its worker has stopped), so another replica can take it.
    pub async fn release_lease(&self, connection: &str) -> Result<(), StoreError> {
        sql!(
            "UPDATE leases SET expires_at_ms = 0 WHERE connection = $1 AND owner = $2",
            (connection, self.replica()),
        )
        .execute(self.pool())
        .await?;
        self.forget_lease(connection);
        Ok(())
    }

    /// Says goodbye: this replica no longer counts among the live ones.
    pub async fn leave(&self) -> Result<(), StoreError> {
        sql!("DELETE FROM replicas WHERE id = $1", (self.replica(),))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every lease, for status pages and tests.
    pub async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, owner, epoch, expires_at_ms FROM leases ORDER BY connection",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Lease {
                    connection: r.try_get("connection")?,
                    owner: r.try_get("owner")?,
                    epoch: r.try_get("epoch")?,
                    expires_at_ms: r.try_get("expires_at_ms")?,
                })
            })
            .collect()
    }

    /// Voids every lease and replica: a SQLite store belongs to one process, so
    /// whatever an earlier (killed) run left behind is void.
    pub async fn reset_leases(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases")
            .execute(self.pool())
            .await?;
        sqlx::query("DELETE FROM replicas")
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
