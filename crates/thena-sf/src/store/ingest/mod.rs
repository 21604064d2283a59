//! Ingest: each accepted event, once, into the request's pending snapshot:
//! dedup by delivery, the forward-only cut-off, the stale check and
//! coalescing, in one transaction per group of events. `batch.rs` is the
//! SQLite group path, `side.rs` the ticket's side changes (comments, CSAT).

mod batch;
mod history;
mod side;

use chrono::Utc;

use super::{ts, Store, StoreError};
use crate::domain::comments::CommentChange;
use crate::domain::snapshot::{Snapshot, Source};

/// Rows per multi-row statement (well under SQLite's bound variables).
const ROWS: usize = 200;

/// `($1, $2, $3), ($4, $5, $6), ...`
/// `(?, ?), (?, ?)`: positional parameters, for SQLite only. SQLite binds
/// them by position; `$N` would make sqlx ask SQLite for every parameter's
/// name (a linear lookup each, 4% of ingest's CPU in the profile in
/// docs/benchmarks.md).
fn anonymous_placeholders(rows: usize, per_row: usize) -> String {
    let row = format!("({})", vec!["?"; per_row].join(", "));
    vec![row; rows].join(", ")
}

fn placeholders(rows: usize, per_row: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=per_row)
                .map(|c| format!("${}", r * per_row + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

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
        let events: Vec<&IngestItem> = events.iter().collect();
        self.ingest_group(&events).await
    }

    /// [`Store::ingest_many`] over borrowed events: the group commit's
    /// writer holds them where their handlers put them, uncopied.
    pub async fn ingest_group(&self, events: &[&IngestItem]) -> Result<Vec<Ingested>, StoreError> {
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
        events: &[&IngestItem],
        order: &[usize],
    ) -> Result<Vec<Ingested>, StoreError> {
        let mut tx = self.begin_write().await?;
        let sqlite = self.backend() == crate::store::Backend::Sqlite;
        let out = if sqlite && events.iter().all(|e| batch::plain(e)) {
            batch::ingest_plain(&mut tx, events, order, &ts(Utc::now()), now_ms()).await?
        } else {
            let mut out = vec![Ingested::Duplicate; events.len()];
            for &i in order {
                out[i] = ingest_in(&mut tx, events[i]).await?;
            }
            out
        };
        history::log_deliveries(&mut tx, events, &out, now_ms(), sqlite).await?;
        let mut heard: Vec<&str> = events.iter().map(|e| e.connection.as_str()).collect();
        heard.sort_unstable();
        heard.dedup();
        // When each connection last heard from Thena (for its page): one
        // write a second at most, so replicas do not queue on its row.
        let now = now_ms();
        let postgres = self.backend() == crate::store::Backend::Postgres;
        for c in heard {
            sql!(
                "UPDATE connections SET last_event_ms = $1 WHERE name = $2 AND (last_event_ms IS NULL OR last_event_ms < $3)",
                (now, c, now - 1000),
            )
            .execute(&mut **tx)
            .await?;
            if postgres {
                // Wake the replica that owns the connection (delivered at commit).
                sql!(
                    "SELECT 1 FROM (SELECT pg_notify('thena_sf_wake', $1)) AS n",
                    (c,)
                )
                .execute(&mut **tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(out)
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
    latest_updated_ms = excluded.latest_updated_ms, updated_at = excluded.updated_at, created_ms = excluded.created_ms,
    title = COALESCE(excluded.title, requests.title), requestor = COALESCE(excluded.requestor, requests.requestor),
    web_link = COALESCE(excluded.web_link, requests.web_link)
    WHERE requests.latest_updated_ms <= excluded.latest_updated_ms";

/// A snapshot over the one pending: a new version un-parks the request and
/// resets its tries. It waits from its own arrival when the row was parked
/// (skipped: nothing of it was waiting to be sent), and from the earlier
/// version's when that one is still unsent (it was acknowledged first, so
/// the latency budget counts from it). Shared with `batch.rs`.
pub(super) const PENDING_OVER: &str = "ON CONFLICT (connection, request_id) DO UPDATE SET snapshot = excluded.snapshot,
    updated_at_ms = excluded.updated_at_ms, version = pending.version + 1, parked = 0, not_before_ms = 0, attempts = 0, last_error = NULL,
    enqueued_at_ms = CASE WHEN pending.parked = 1 THEN excluded.enqueued_at_ms ELSE pending.enqueued_at_ms END";

async fn ingest_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    item: &IngestItem,
) -> Result<Ingested, StoreError> {
    let (connection, snap) = (item.connection.as_str(), &item.snapshot);
    let now = ts(Utc::now());
    let fresh = sql!(
        "INSERT INTO events (connection, event_key, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        (connection, &item.event_key, &now),
    )
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(Ingested::Duplicate);
    }
    if item.source == Source::Side {
        return side::ingest_side(tx, connection, snap, item.comment.as_ref(), &now).await;
    }
    let rid = &snap.request_id;
    let updated = snap.updated_at.0;
    if snap.created_at.0 < item.connected_at_ms {
        sql!(
            "INSERT INTO requests (connection, request_id, state, reason, latest_updated_ms, updated_at) VALUES ($1, $2, 'out_of_scope', 'created before the connection was made', $3, $4)
             ON CONFLICT (connection, request_id) DO UPDATE SET latest_updated_ms = CASE WHEN requests.latest_updated_ms > excluded.latest_updated_ms THEN requests.latest_updated_ms ELSE excluded.latest_updated_ms END, updated_at = excluded.updated_at",
            (connection, rid, updated, &now),
        )
        .execute(&mut **tx)
        .await?;
        return Ok(Ingested::OutOfScope);
    }
    // Comments are not versioned: a stale ticket event still keeps its comment.
    if let Some(c) = &item.comment {
        side::apply_comment(tx, connection, rid, c).await?;
    }
    // The stale check is the upsert's own condition, so that it is decided on the
    // row as committed: on PostgreSQL a concurrent ingest of the same request (on
    // another replica) waits for this row, then sees its newest state. The row
    // stays locked until commit, which serialises the coalescing below too.
    let about = history::About::of(snap);
    let fresh_version = sql!(
        &format!("INSERT INTO requests (connection, request_id, state, latest_updated_ms, updated_at, created_ms, title, requestor, web_link) VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8) {REQUEST_NEWER}"),
        (
            connection, rid, updated, &now, snap.created_at.0, about.title, about.requestor,
            about.web_link,
        ),
    )
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
        (snap.customer_thread, snap.internal_thread) = side::threads(tx, connection, rid).await?;
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
    let older: Option<String> = sql_scalar!(
        "SELECT snapshot FROM pending WHERE connection = $1 AND request_id = $2",
        (connection, rid),
    )
    .fetch_optional(&mut **tx)
    .await?;
    let merged = match older.and_then(|o| crate::store::format::decode(&o).ok()) {
        Some(o) => snap.clone().over(o),
        None => snap.clone(),
    };
    let json = crate::store::format::encode(&merged);
    sql!(
        &format!( "INSERT INTO pending (connection, request_id, snapshot, updated_at_ms, version, enqueued_at_ms) VALUES ($1, $2, $3, $4, 1, $5) {PENDING_OVER}" ),
        (connection, rid, &json, merged.updated_at.0, now_ms()),
    )
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
