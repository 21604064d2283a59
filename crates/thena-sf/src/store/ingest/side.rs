//! Changes beside a request's versioned state, inside the ingest
//! transaction: a platform ticket's comments (kept here, because the thread
//! fields are written whole) and comment or CSAT events, which are not
//! subject to "newest wins" and are applied over whatever the request holds.

use sqlx::Row;

use super::Ingested;
use super::StoreError;
use crate::domain::comments::{self, Comment, CommentChange};
use crate::domain::snapshot::{Message, Patch, Snapshot};
use crate::domain::time::Ts;

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Adds, edits or removes one comment of a ticket, keeping the newest
/// [`comments::MAX_PER_TICKET`].
pub(super) async fn apply_comment(
    tx: &mut Tx<'_>,
    connection: &str,
    request_id: &str,
    change: &CommentChange,
) -> Result<(), StoreError> {
    match change {
        CommentChange::Put(c) => {
            let json = serde_json::to_string(c).expect("comments serialise");
            sql!(
                "INSERT INTO ticket_comments (connection, request_id, comment_id, created_ms, comment) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (connection, request_id, comment_id) DO UPDATE SET created_ms = excluded.created_ms, comment = excluded.comment",
                (connection, request_id, &c.id, c.created_at.0, json),
            )
            .execute(&mut **tx)
            .await?;
            // Older than the newest MAX_PER_TICKET: forgotten (ties at the edge too).
            sql!(
                "DELETE FROM ticket_comments WHERE connection = $1 AND request_id = $2 AND created_ms <= (
                     SELECT created_ms FROM ticket_comments WHERE connection = $1 AND request_id = $2
                     ORDER BY created_ms DESC LIMIT 1 OFFSET $3)",
                (connection, request_id, comments::MAX_PER_TICKET as i64),
            )
            .execute(&mut **tx)
            .await?;
        }
        CommentChange::Remove(id) => {
            sql!(
                "DELETE FROM ticket_comments WHERE connection = $1 AND request_id = $2 AND comment_id = $3",
                (connection, request_id, id),
            )
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The ticket's customer and internal threads from its kept comments
/// (an empty thread clears the field).
pub(super) async fn threads(
    tx: &mut Tx<'_>,
    connection: &str,
    request_id: &str,
) -> Result<(Patch<Vec<Message>>, Patch<Vec<Message>>), StoreError> {
    let rows = sql!(
        "SELECT comment FROM ticket_comments WHERE connection = $1 AND request_id = $2",
        (connection, request_id),
    )
    .fetch_all(&mut **tx)
    .await?;
    let kept: Vec<Comment> = rows
        .iter()
        .filter_map(|r| r.try_get::<String, _>("comment").ok())
        .filter_map(|j| serde_json::from_str(&j).ok())
        .collect();
    let (customer, internal) = comments::threads(&kept);
    Ok((Patch::list(customer), Patch::list(internal)))
}

/// A comment or CSAT event: recorded, then, when the request is known,
/// queued as a change of the threads or Csat__c over what is pending.
pub(super) async fn ingest_side(
    tx: &mut Tx<'_>,
    connection: &str,
    snap: &Snapshot,
    comment: Option<&CommentChange>,
    now: &str,
) -> Result<Ingested, StoreError> {
    let rid = &snap.request_id;
    // Locks the request's row (as ingest does), reads what the record needs,
    // and marks it pending when it can carry the change (SET sees the old row).
    let row = sql!(
        "UPDATE requests SET updated_at = $3,
             state = CASE WHEN state = 'out_of_scope' OR created_ms IS NULL THEN state ELSE 'pending' END,
             reason = CASE WHEN state = 'out_of_scope' OR created_ms IS NULL THEN reason ELSE NULL END
         WHERE connection = $1 AND request_id = $2
         RETURNING state, created_ms, latest_updated_ms",
        (connection, rid, now),
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = &row {
        if r.try_get::<String, _>("state")? == "out_of_scope" {
            return Ok(Ingested::OutOfScope);
        }
    }
    let mut side = snap.clone();
    if let Some(c) = comment {
        apply_comment(tx, connection, rid, c).await?;
        (side.customer_thread, side.internal_thread) = threads(tx, connection, rid).await?;
    }
    // Not seen yet (or seen before the connector kept creation times): a
    // comment waits here and the ticket's next event carries it; a CSAT
    // score has nothing to wait in, so it is said not to apply.
    let created = match &row {
        Some(r) => r.try_get::<Option<i64>, _>("created_ms")?,
        None => None,
    };
    let (Some(r), Some(created)) = (row, created) else {
        return Ok(if comment.is_some() {
            Ingested::Queued
        } else {
            Ingested::OutOfScope
        });
    };
    side.created_at = Ts(created);
    side.updated_at = Ts(r.try_get("latest_updated_ms")?);
    super::enqueue(tx, connection, &side).await?;
    Ok(Ingested::Queued)
}
