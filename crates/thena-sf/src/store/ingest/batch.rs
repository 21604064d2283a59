//! The group commit's common case on SQLite, in a few statements per group
//! instead of four per event.
//!
//! Profiling the accept path (docs/benchmarks.md, ingest) showed most of its
//! CPU going to handing each statement to SQLite's worker thread and back,
//! not to SQLite itself. A group of plain request events (no comment, no
//! side change, created after the connection) is therefore ingested with one
//! multi-row statement per step: the deliveries seen, the requests' latest
//! versions read, the requests written, the pending snapshots read and
//! written. The decisions (duplicate, stale, coalesce) are the per-event
//! path's, taken in memory in arrival order; this is safe because on SQLite
//! the group's transaction holds the write lock from its start
//! (`BEGIN IMMEDIATE`), so nothing changes underneath it. PostgreSQL, where
//! replicas ingest concurrently and the stale check must be the upsert's
//! own condition, keeps the per-event path.

use std::collections::{HashMap, HashSet};

use sqlx::{Any, Row, Transaction};

use super::anonymous_placeholders as placeholders;
use super::history::About;
use super::StoreError;
use super::{IngestItem, Ingested, PENDING_OVER, REQUEST_NEWER, ROWS};
use crate::domain::snapshot::{Snapshot, Source};
use crate::store::ReqState;

/// Whether the per-event path would take only its plain branch for `item`.
pub(super) fn plain(item: &IngestItem) -> bool {
    item.source == Source::Request
        && item.comment.is_none()
        && item.snapshot.created_at.0 >= item.connected_at_ms
}

type Key = (String, String);

/// Ingests a group of plain events (see [`plain`]), in `order`.
pub(super) async fn ingest_plain(
    tx: &mut Transaction<'_, Any>,
    events: &[&IngestItem],
    order: &[usize],
    now: &str,
    now_ms: i64,
) -> Result<Vec<Ingested>, StoreError> {
    let mut out = vec![Ingested::Duplicate; events.len()];
    let mut fresh = first_deliveries(tx, events, order, now).await?;
    let keys: Vec<Key> = order
        .iter()
        .map(|&i| key(events[i]))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut latest = read_pairs(
        tx,
        "SELECT connection, request_id, latest_updated_ms AS v FROM requests",
        &keys,
        |r| r.try_get::<i64, _>("v"),
    )
    .await?;
    // Newest version of each request in the group, and the snapshots merged
    // in arrival order.
    let mut written: HashMap<Key, (i64, i64)> = HashMap::new();
    let mut merged: HashMap<Key, Snapshot> = HashMap::new();
    let older = read_pairs(
        tx,
        "SELECT connection, request_id, snapshot AS v FROM pending",
        &keys,
        |r| r.try_get::<String, _>("v"),
    )
    .await?;
    for &i in order {
        let e = &events[i];
        if !fresh.remove(&(e.connection.clone(), e.event_key.clone())) {
            continue;
        }
        let k = key(e);
        let updated = e.snapshot.updated_at.0;
        if latest.get(&k).is_some_and(|l| *l > updated) {
            out[i] = Ingested::Stale;
            continue;
        }
        latest.insert(k.clone(), updated);
        written.insert(k.clone(), (updated, e.snapshot.created_at.0));
        let base = merged.remove(&k).or_else(|| {
            older
                .get(&k)
                .and_then(|o| crate::store::format::decode(o).ok())
        });
        let snap = match base {
            Some(o) => e.snapshot.clone().over(o),
            None => e.snapshot.clone(),
        };
        merged.insert(k, snap);
        out[i] = Ingested::Queued;
    }
    write_requests(tx, &written, &merged, now).await?;
    write_pending(tx, &merged, now_ms).await?;
    Ok(out)
}

fn key(e: &IngestItem) -> Key {
    (e.connection.clone(), e.snapshot.request_id.clone())
}

/// The deliveries not seen before (connection, event key); a key twice in
/// the group is fresh once, at its first place.
async fn first_deliveries(
    tx: &mut Transaction<'_, Any>,
    events: &[&IngestItem],
    order: &[usize],
    now: &str,
) -> Result<HashSet<(String, String)>, StoreError> {
    let mut fresh = HashSet::new();
    for chunk in order.chunks(ROWS) {
        let values = placeholders(chunk.len(), 3);
        let sql = format!("INSERT INTO events (connection, event_key, received_at) VALUES {values} ON CONFLICT DO NOTHING RETURNING connection, event_key");
        let mut q = sqlx::query(&sql);
        for &i in chunk {
            q = q
                .bind(&events[i].connection)
                .bind(&events[i].event_key)
                .bind(now);
        }
        for r in q.fetch_all(&mut **tx).await? {
            fresh.insert((r.try_get("connection")?, r.try_get("event_key")?));
        }
    }
    Ok(fresh)
}

/// `select` (whose rows have connection, request_id and `v`) for these keys.
async fn read_pairs<T>(
    tx: &mut Transaction<'_, Any>,
    select: &str,
    keys: &[Key],
    value: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
) -> Result<HashMap<Key, T>, StoreError> {
    let mut out = HashMap::new();
    for chunk in keys.chunks(ROWS) {
        let sql = format!(
            "{select} WHERE (connection, request_id) IN (VALUES {})",
            placeholders(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql);
        for (c, r) in chunk {
            q = q.bind(c).bind(r);
        }
        for r in q.fetch_all(&mut **tx).await? {
            out.insert(
                (r.try_get("connection")?, r.try_get("request_id")?),
                value(&r)?,
            );
        }
    }
    Ok(out)
}

/// Each request's newest version: pending again, described by its merged
/// snapshot.
async fn write_requests(
    tx: &mut Transaction<'_, Any>,
    written: &HashMap<Key, (i64, i64)>,
    merged: &HashMap<Key, Snapshot>,
    now: &str,
) -> Result<(), StoreError> {
    let rows: Vec<_> = written.iter().collect();
    for chunk in rows.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO requests (connection, request_id, state, latest_updated_ms, updated_at, created_ms, title, requestor, web_link) VALUES {} {REQUEST_NEWER}",
            placeholders(chunk.len(), 9)
        );
        let mut q = sqlx::query(&sql);
        for (k, (updated, created)) in chunk {
            let about = merged.get(*k).map(About::of).unwrap_or_default();
            q = q
                .bind(&k.0)
                .bind(&k.1)
                .bind(ReqState::Pending.as_str())
                .bind(*updated)
                .bind(now)
                .bind(*created)
                .bind(about.title)
                .bind(about.requestor)
                .bind(about.web_link);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The merged snapshots over the pending ones (as `enqueue` does).
async fn write_pending(
    tx: &mut Transaction<'_, Any>,
    merged: &HashMap<Key, Snapshot>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let rows: Vec<_> = merged.iter().collect();
    for chunk in rows.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO pending (connection, request_id, snapshot, updated_at_ms, version, enqueued_at_ms) VALUES {} {PENDING_OVER}",
            placeholders(chunk.len(), 6)
        );
        let mut q = sqlx::query(&sql);
        for ((c, r), snap) in chunk {
            let json = crate::store::format::encode(snap);
            q = q
                .bind(c)
                .bind(r)
                .bind(json)
                .bind(snap.updated_at.0)
                .bind(1i64)
                .bind(now_ms);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
