//! Copying a store into another (SQLite → PostgreSQL, when one connector
//! becomes several replicas). Secrets are copied sealed: both stores must use
//! the same key. Sessions, OAuth flows under way, replicas and leases are not
//! copied: they belong to the running processes.

use sqlx::Row;

use super::{Backend, Store, StoreError};

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Blob,
}
use Kind::{Blob, Int, Text};

/// Every table copied, in an order that satisfies the foreign keys, with its columns.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "connections",
        &[
            ("name", Text),
            ("login_url", Text),
            ("client_id", Text),
            ("client_secret_enc", Blob),
            ("access_token_enc", Blob),
            ("refresh_token_enc", Blob),
            ("instance_url", Text),
            ("id_url", Text),
            ("issued_at_ms", Int),
            ("webhook_token_hash", Text),
            ("signing_secret_enc", Blob),
            ("connected_at", Text),
            ("status", Text),
            ("status_reason", Text),
            ("provisioned_at", Text),
            ("updated_at", Text),
            ("username", Text),
            ("password_enc", Blob),
            ("thena_org_id", Text),
            ("thena_team_ids", Text),
            ("thena_app_event", Text),
            ("thena_app_at", Text),
            ("last_event_ms", Int),
            ("previous_token_hash", Text),
            ("previous_token_until_ms", Int),
        ],
    ),
    (
        "category_fields",
        &[
            ("connection", Text),
            ("category", Text),
            ("field", Text),
            ("created_at", Text),
        ],
    ),
    (
        "events",
        &[
            ("connection", Text),
            ("event_key", Text),
            ("received_at", Text),
        ],
    ),
    (
        "pending",
        &[
            ("connection", Text),
            ("request_id", Text),
            ("snapshot", Text),
            ("updated_at_ms", Int),
            ("version", Int),
            ("enqueued_at_ms", Int),
            ("not_before_ms", Int),
            ("attempts", Int),
            ("parked", Int),
            ("last_error", Text),
        ],
    ),
    (
        "requests",
        &[
            ("connection", Text),
            ("request_id", Text),
            ("state", Text),
            ("reason", Text),
            ("latest_updated_ms", Int),
            ("synced_updated_ms", Int),
            ("sf_id", Text),
            ("contact_id", Text),
            ("account_id", Text),
            ("requestor_key", Text),
            ("sent_hash", Text),
            ("updated_at", Text),
            ("created_ms", Int),
        ],
    ),
    (
        "ticket_comments",
        &[
            ("connection", Text),
            ("request_id", Text),
            ("comment_id", Text),
            ("created_ms", Int),
            ("comment", Text),
        ],
    ),
    (
        "dead_letters",
        &[
            ("id", Int),
            ("connection", Text),
            ("request_id", Text),
            ("snapshot", Text),
            ("code", Text),
            ("message", Text),
            ("fields", Text),
            ("failed_at", Text),
        ],
    ),
    (
        "activity",
        &[
            ("id", Int),
            ("connection", Text),
            ("request_id", Text),
            ("outcome", Text),
            ("detail", Text),
            ("sf_id", Text),
            ("at", Text),
        ],
    ),
];

impl Store {
    /// Copies every connection, queue, state and history row of `self` into the
    /// empty store `to`, in one transaction; returns (table, rows) copied.
    pub async fn copy_into(&self, to: &Store) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connections")
            .fetch_one(to.pool())
            .await?;
        if existing > 0 {
            return Err(StoreError::Db(sqlx::Error::Protocol(
                "the target store already has connections: copy only into an empty store".into(),
            )));
        }
        let mut tx = to.pool().begin().await?;
        let mut done = Vec::new();
        for (table, cols) in TABLES {
            let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
            let select = format!("SELECT {} FROM {table}", names.join(", "));
            let params: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
            let insert = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                params.join(", ")
            );
            let rows = sqlx::query(&select).fetch_all(self.pool()).await?;
            for r in &rows {
                let mut q = sqlx::query(&insert);
                for (name, kind) in cols.iter() {
                    q = match kind {
                        Text => q.bind(r.try_get::<Option<String>, _>(*name)?),
                        Int => q.bind(r.try_get::<Option<i64>, _>(*name)?),
                        Blob => q.bind(r.try_get::<Option<Vec<u8>>, _>(*name)?),
                    };
                }
                q.execute(&mut *tx).await?;
            }
            if to.backend() == Backend::Postgres && names.contains(&"id") {
                // Identity columns continue after the copied ids.
                sqlx::query(&format!(
                    "SELECT 1 FROM (SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}) AS s"
                ))
                .execute(&mut *tx)
                .await?;
            }
            done.push((*table, rows.len() as u64));
        }
        tx.commit().await?;
        Ok(done)
    }
}
