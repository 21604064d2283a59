//! `POST /webhooks/thena/{connection}`: authenticate, parse, commit, 200
//! (Thena's FAQ asks for `200 OK`).
//! Never calls Salesforce.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::auth::{self, Caller};
use super::reply;
use crate::domain::snapshot::{Snapshot, Source};
use crate::runtime::{AppState, ConnAuth};
use crate::thena::platform::{self, Platform};
use crate::thena::webhook;

/// How far in the future an `updatedAt` may be (clock skew).
const FUTURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// How long a delivery waits for the store before it goes to the spool.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Reads an authenticated request's body: at most `MAX_BODY` bytes, within
/// the body deadline, while a slot among the bodies in flight is held.
async fn read_body(
    app: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Bytes, (StatusCode, &'static str, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {} bytes", super::MAX_BODY),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > super::MAX_BODY as u64) {
        return Err(too_large());
    }
    let limits = &app.config.limits;
    let wait = std::time::Duration::from_secs(limits.body_read_timeout_secs.max(1));
    let read = async {
        let _slot = app.bodies.acquire().await.expect("never closed");
        axum::body::to_bytes(body, super::MAX_BODY).await
    };
    match tokio::time::timeout(wait, read).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if over {
                Err(too_large())
            } else {
                Err((
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the body could not be read: {e}"),
                ))
            }
        }
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {} s", wait.as_secs()),
        )),
    }
}

/// Authenticates, reads and parses a delivery, then ingests it: durable
/// (committed, or in the spool) before the answer.
/// The caller is authenticated from the headers alone ([`Caller`]), before
/// one byte of the body is read.
pub async fn receive(
    State(app): State<Arc<AppState>>,
    Caller { connection, auth }: Caller,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let body = match read_body(&app, &headers, body).await {
        Ok(b) => b,
        Err((status, error, message)) => {
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                app.metrics.received(&connection, "too_large");
            }
            return reply(status, json!({"error": error, "message": message}));
        }
    };
    if !auth.signing_secrets.is_empty() {
        if let Err(why) = auth::check_signature(&auth, &headers, &body) {
            app.metrics.received(&connection, "unauthorized");
            return auth::unauthorized(why);
        }
    }
    let change = match change_of(&app, &connection, &auth, &body).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let item = Arc::new(crate::store::ingest::IngestItem {
        connection: connection.clone(),
        event_key: event_key(&change, &headers, &body),
        snapshot: change.snapshot,
        connected_at_ms: auth.connected_at_ms,
        source: change.source,
        comment: change.comment,
    });
    ingest(&app, item).await
}

/// The delivery as a change to a request; else the answer to give (an
/// installation recorded, an event ignored or out of scope, a bad payload).
async fn change_of(
    app: &AppState,
    connection: &str,
    auth: &ConnAuth,
    body: &[u8],
) -> Result<Box<platform::Change>, Response> {
    let invalid = |e: crate::thena::json::PayloadError| {
        app.metrics.received(connection, "invalid");
        reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_payload", "path": e.path, "message": e.message}),
        )
    };
    let root = match platform::json(body) {
        Ok(v) => v,
        Err(e) => return Err(invalid(e)),
    };
    let change = match parse_delivery(&root) {
        Ok(Platform::Change(c)) => c,
        Ok(Platform::Installation {
            event_type,
            org_id,
            team_ids,
        }) => {
            let record = crate::store::ThenaApp {
                org_id,
                team_ids,
                event: event_type,
                at: chrono::Utc::now(),
            };
            return Err(installation(app, connection, record).await);
        }
        Ok(Platform::Ignored { event_type }) => {
            app.metrics.received(connection, "ignored");
            return Err(reply(
                StatusCode::OK,
                json!({"status": "ignored", "eventType": event_type.chars().take(80).collect::<String>()}),
            ));
        }
        Err(e) => return Err(invalid(e)),
    };
    if let (Some(theirs), Some(ours)) = (&change.org_id, &auth.thena_org) {
        if theirs != ours {
            app.metrics.received(connection, "out_of_scope");
            return Err(reply(
                StatusCode::OK,
                json!({"status": "out_of_scope", "requestId": change.snapshot.request_id,
                       "message": "the event's orgId is not the Thena organisation this connection was installed for"}),
            ));
        }
    }
    // One timestamp far in the future would make every later real update
    // "stale" for ever: refuse it, naming the field. (Comments and CSAT
    // are not versioned.)
    let ahead = change.snapshot.updated_at.0 - chrono::Utc::now().timestamp_millis();
    if change.source != Source::Side && ahead > FUTURE_TOLERANCE_MS {
        app.metrics.received(connection, "invalid");
        let path = if change.event_id.is_some() {
            "payload.ticket.updatedAt"
        } else {
            "request.updatedAt"
        };
        return Err(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_payload", "path": path,
                   "message": format!("is {} minutes in the future; at most 5 are tolerated", ahead / 60_000)}),
        ));
    }
    Ok(change)
}

/// What makes a delivery a duplicate: the platform event's id, else the
/// Standard Webhooks `webhook-id`, else the body's hash.
fn event_key(change: &platform::Change, headers: &HeaderMap, body: &[u8]) -> String {
    let delivery_id = change
        .event_id
        .as_ref()
        .map(|id| format!("event:{}", id.chars().take(200).collect::<String>()));
    match delivery_id.or_else(|| {
        headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(|id| format!("id:{}", id.chars().take(200).collect::<String>()))
    }) {
        Some(k) => k,
        None => format!("sha256:{}", crate::crypto::sha256_hex(body)),
    }
}

/// Hands the event to the group commit; a store that does not commit in
/// time sends it to the spool instead. Answers once it is durable.
async fn ingest(app: &AppState, item: Arc<crate::store::ingest::IngestItem>) -> Response {
    let connection = item.connection.clone();
    let request_id = item.snapshot.request_id.clone();
    // Answer within Thena's patience: a store that does not commit in time
    // sends the event to the spool (a late commit makes the replay a duplicate).
    // The `commit` span: from handing the event over to its group commit.
    let commit = tracing::Instrument::instrument(
        app.ingestor.submit(Arc::clone(&item)),
        tracing::info_span!("commit"),
    );
    let submitted = tokio::time::timeout(STORE_WAIT, commit).await;
    let submitted = match submitted {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the store did not commit within {} s",
            STORE_WAIT.as_secs()
        )),
    };
    match submitted {
        Ok(result) => {
            app.metrics.received(&connection, result.as_str());
            if result == crate::store::ingest::Ingested::Queued {
                if let Some(w) = app.workers.read().get(&connection) {
                    w.arrivals
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    w.notify.notify_one();
                }
            }
            reply(
                StatusCode::OK,
                json!({"status": result.as_str(), "requestId": request_id}),
            )
        }
        Err(e) => {
            let spool = app.spool.clone();
            let spooled = tokio::task::spawn_blocking(move || spool.append(&item)).await;
            match spooled {
                Ok(Ok(())) => {
                    tracing::warn!(connection = %connection, error = %e, "the store could not commit; the event waits in the spool");
                    app.metrics.received(&connection, "spooled");
                    reply(
                        StatusCode::OK,
                        json!({"status": "spooled", "requestId": request_id}),
                    )
                }
                Ok(Err(se)) => {
                    tracing::error!(connection = %connection, error = %e, spool = %se, "could not store an event");
                    app.metrics.received(&connection, "store_error");
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": "store_unavailable", "message": "the event could not be stored; retry later"}),
                    )
                }
                Err(join) => {
                    tracing::error!(connection = %connection, error = %join, "the spool writer failed");
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": "store_unavailable", "message": "the event could not be stored; retry later"}),
                    )
                }
            }
        }
    }
}

/// One route, two formats: the body's shape says which. A request webhook
/// becomes a change like a platform event's (no event id, no organisation).
fn parse_delivery(root: &serde_json::Value) -> Result<Platform, crate::thena::json::PayloadError> {
    if platform::is_platform(root) {
        return platform::parse(root);
    }
    let snapshot: Snapshot = webhook::parse_value(root)?.snapshot;
    Ok(Platform::Change(Box::new(platform::Change {
        event_id: None,
        org_id: None,
        source: Source::Request,
        snapshot,
        comment: None,
    })))
}

/// The webhook app was installed, changed or uninstalled: recorded on the
/// connection (its organisation then scopes platform events), answered 200.
async fn installation(
    app: &AppState,
    connection: &str,
    record: crate::store::ThenaApp,
) -> Response {
    if let Err(e) = app.store.record_thena_app(connection, &record).await {
        tracing::error!(connection = %connection, error = %e, "could not record a Thena installation event");
        app.metrics.received(connection, "store_error");
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "store_unavailable", "message": "the event could not be stored; retry later"}),
        );
    }
    if let Some(org) = &record.org_id {
        if let Some(a) = app.conns.write().get_mut(connection) {
            a.thena_org = Some(org.clone());
        }
    }
    tracing::info!(connection = %connection, event = %record.event, teams = record.team_ids.len(), "Thena webhook app event recorded");
    app.metrics.received(connection, "recorded");
    reply(
        StatusCode::OK,
        json!({"status": "recorded", "eventType": record.event}),
    )
}
