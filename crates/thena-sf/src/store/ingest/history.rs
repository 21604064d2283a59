//! What ingest keeps for the admin page: each request's title, requestor and
//! Thena link (written with its newest version), and a log of every delivery
//! with what ingest made of it (the request's history page).

use sqlx::{Any, Transaction};

use super::{anonymous_placeholders, placeholders, IngestItem, Ingested, StoreError, ROWS};
use crate::domain::comments::CommentChange;
use crate::domain::snapshot::{Snapshot, Source};

/// What a request is, as the admin page shows it; None leaves the stored
/// value as it is.
#[derive(Debug, Default)]
pub(super) struct About {
    pub title: Option<String>,
    pub requestor: Option<String>,
    pub web_link: Option<String>,
}

impl About {
    pub fn of(s: &Snapshot) -> About {
        let clip = |v: &str| v.chars().take(300).collect::<String>();
        About {
            title: s.title.set().map(|t| clip(t)),
            requestor: s
                .requestor
                .set()
                .and_then(|p| p.email.as_deref().or(p.name.as_deref()))
                .map(clip),
            web_link: s.request_link.set().map(|l| clip(l)),
        }
    }
}

/// What a delivery was, in a few words: `request update (Closed)`,
/// `ticket event`, `comment added`.
pub(super) fn action(item: &IngestItem) -> String {
    let kind = match (item.source, &item.comment) {
        (_, Some(CommentChange::Put(_))) => "comment added or edited",
        (_, Some(CommentChange::Remove(_))) => "comment removed",
        (Source::Side, None) => "CSAT or side change",
        (Source::Ticket, None) => "ticket event",
        (Source::Request, None) => "request update",
    };
    match item.snapshot.status.set() {
        Some(status) if item.source != Source::Side => {
            format!("{kind} ({})", status.chars().take(40).collect::<String>())
        }
        _ => kind.to_string(),
    }
}

/// Logs each delivery of a group with its result, in arrival order.
pub(super) async fn log_deliveries(
    tx: &mut Transaction<'_, Any>,
    events: &[&IngestItem],
    results: &[Ingested],
    now_ms: i64,
    sqlite: bool,
) -> Result<(), StoreError> {
    let rows: Vec<(&IngestItem, &Ingested)> = events.iter().copied().zip(results).collect();
    for chunk in rows.chunks(ROWS) {
        let values = if sqlite {
            anonymous_placeholders(chunk.len(), 5)
        } else {
            placeholders(chunk.len(), 5)
        };
        let sql = format!(
            "INSERT INTO deliveries (connection, request_id, received_ms, action, result) VALUES {values}"
        );
        let mut q = sqlx::query(&sql);
        for (e, r) in chunk {
            q = q
                .bind(&e.connection)
                .bind(&e.snapshot.request_id)
                .bind(now_ms)
                .bind(action(e))
                .bind(r.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
