//! What the admin page and `status` show about a connection's health without
//! calling Salesforce: the doctor's last result, and recent failures.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::Row;

use super::{ts, Store, StoreError};

/// Records Salesforce refused lately (dead letters within the window).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentFailures {
    pub count: i64,
    /// The newest one's `code: message`.
    pub latest: Option<String>,
}

/// A connection is degraded while records failed within this window.
pub const DEGRADED_WINDOW: Duration = Duration::hours(1);

impl Store {
    /// Keeps the doctor's last result (its checks as JSON, which the
    /// provisioning layer reads and writes).
    pub async fn put_doctor_result(
        &self,
        conn: &str,
        checked_at: DateTime<Utc>,
        checks_json: &str,
    ) -> Result<(), StoreError> {
        sql!(
            "INSERT INTO doctor_results (connection, checked_at_ms, checks) VALUES ($1, $2, $3) \
             ON CONFLICT (connection) DO UPDATE SET checked_at_ms = excluded.checked_at_ms, checks = excluded.checks",
            (conn, checked_at.timestamp_millis(), checks_json),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn doctor_result(
        &self,
        conn: &str,
    ) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        let row = sql!(
            "SELECT checked_at_ms, checks FROM doctor_results WHERE connection = $1",
            (conn,)
        )
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let ms: i64 = row.try_get("checked_at_ms")?;
        let checks: String = row.try_get("checks")?;
        Ok(Some((
            Utc.timestamp_millis_opt(ms).single().unwrap_or_default(),
            checks,
        )))
    }

    /// Dead letters of `conn` since `now - DEGRADED_WINDOW`.
    pub async fn recent_failures(
        &self,
        conn: &str,
        now: DateTime<Utc>,
    ) -> Result<RecentFailures, StoreError> {
        let since = ts(now - DEGRADED_WINDOW);
        let count: i64 = sql!(
            "SELECT COUNT(*) AS n FROM dead_letters WHERE connection = $1 AND failed_at >= $2",
            (conn, &since),
        )
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        if count == 0 {
            return Ok(RecentFailures::default());
        }
        let latest = sql!(
            "SELECT code, message FROM dead_letters WHERE connection = $1 AND failed_at >= $2 ORDER BY id DESC LIMIT 1",
            (conn, &since),
        )
        .fetch_optional(self.pool())
        .await?
        .map(|r| -> Result<String, sqlx::Error> {
            Ok(format!(
                "{}: {}",
                r.try_get::<String, _>("code")?,
                r.try_get::<String, _>("message")?
            ))
        })
        .transpose()?;
        Ok(RecentFailures { count, latest })
    }
}
