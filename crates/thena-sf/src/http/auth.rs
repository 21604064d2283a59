//! Who may deliver a webhook, decided from its headers before its body is
//! read: the connection named in the path, the token it presents (in
//! `Authorization`, or `?token=` for Thena's platform apps, which can set
//! only a URL), and, where the connection requires signed webhooks, the
//! Standard Webhooks headers (their signature is checked once the body is
//! read, [`check_signature`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::reply;
use crate::crypto;
use crate::runtime::{AppState, ConnAuth};

/// Signed webhooks older or newer than this are refused (replays).
const TOLERANCE_SECS: i64 = 300;

/// The label unknown connection names share in metrics (names are the
/// caller's to choose; they must not grow the metric series).
pub const UNKNOWN_CONNECTION: &str = "(unknown)";

/// The `token` query parameter: Thena's platform webhook apps can set only
/// a URL, so the token may come there (never log full URLs).
fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let v = kv.strip_prefix("token=")?;
        Some(
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned(),
        )
    })
}

/// A webhook's caller, authenticated: the connection it delivers to and
/// that connection's credentials. Rejected with the answer to give (404 for
/// an unknown connection, 401 for a missing or wrong token or signature
/// headers), counted in the metrics.
pub struct Caller {
    pub connection: String,
    pub auth: ConnAuth,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Caller, Response> {
        let Path(connection) = Path::<String>::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let auth = authenticate(app, &connection, parts.uri.query(), &parts.headers).await?;
        Ok(Caller { connection, auth })
    }
}

pub(super) fn unauthorized(message: &str) -> Response {
    reply(
        StatusCode::UNAUTHORIZED,
        json!({"error": "unauthorized", "message": message}),
    )
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    Some(
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim(),
    )
}

/// The signature headers (id, timestamp, signatures), once all three are
/// there and the timestamp is within the window (checked before the body is
/// read; the signature itself needs the body).
fn signature_headers(headers: &HeaderMap) -> Result<(&str, &str, &str), &'static str> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(sigs)) = (
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
    ) else {
        return Err("this connection requires signed webhooks (webhook-id, webhook-timestamp, webhook-signature)");
    };
    let at: i64 = ts
        .trim()
        .parse()
        .map_err(|_| "webhook-timestamp is not unix seconds")?;
    // Compared without overflow: an i64::MIN timestamp is just far away.
    let skew = chrono::Utc::now().timestamp().abs_diff(at);
    if skew > TOLERANCE_SECS as u64 {
        return Err("webhook-timestamp is outside the 5-minute window");
    }
    Ok((id, ts, sigs))
}

/// Checks a Standard Webhooks signature against any of the secrets (rotation).
pub(super) fn check_signature(
    auth: &ConnAuth,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), &'static str> {
    let (id, ts, sigs) = signature_headers(headers)?;
    let mut signed = Vec::with_capacity(id.len() + ts.len() + body.len() + 2);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(ts.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    for secret in &auth.signing_secrets {
        let raw = secret
            .expose()
            .strip_prefix("whsec_")
            .unwrap_or(secret.expose());
        let key = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap_or_else(|_| raw.as_bytes().to_vec());
        for sig in sigs.split_whitespace() {
            let Some(b64) = sig.strip_prefix("v1,") else {
                continue;
            };
            let Ok(given) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                continue;
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac takes any key");
            mac.update(&signed);
            if mac.verify_slice(&given).is_ok() {
                return Ok(());
            }
        }
    }
    Err("no webhook-signature matches")
}

/// The connection's credentials, once the caller has shown its token (and,
/// where signatures are required, their headers); else the answer to give.
async fn authenticate(
    app: &AppState,
    connection: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<ConnAuth, Response> {
    let known = app.conns.read().get(connection).cloned();
    let auth = match known {
        Some(a) => Some(a),
        // Made on another replica since this one last looked: ask the store once.
        None if crate::connect::valid_name(connection) => {
            match app.store.connection(connection).await {
                Ok(c) => {
                    let a = crate::runtime::auth_of(&c);
                    app.conns.write().insert(c.name.clone(), a.clone());
                    Some(a)
                }
                Err(_) => None,
            }
        }
        None => None,
    };
    let Some(auth) = auth else {
        app.metrics
            .received(UNKNOWN_CONNECTION, "unknown_connection");
        return Err(reply(
            StatusCode::NOT_FOUND,
            json!({"error": "unknown_connection", "message": format!("no connection named '{}'", connection.chars().take(64).collect::<String>())}),
        ));
    };
    let from_query = query_token(query);
    match presented_token(headers).or(from_query.as_deref()) {
        Some(t) if crypto::token_matches(t, &auth.token_hash) => {}
        // The token a roll replaced, within the grace the admin gave it.
        Some(t)
            if auth.previous_token.as_ref().is_some_and(|(h, until)| {
                chrono::Utc::now().timestamp_millis() < *until && crypto::token_matches(t, h)
            }) => {}
        Some(_) => {
            app.metrics.received(connection, "unauthorized");
            return Err(unauthorized("the Authorization token is wrong"));
        }
        None => {
            app.metrics.received(connection, "unauthorized");
            return Err(unauthorized("the Authorization header is missing"));
        }
    }
    if !auth.signing_secrets.is_empty() {
        if let Err(why) = signature_headers(headers) {
            app.metrics.received(connection, "unauthorized");
            return Err(unauthorized(why));
        }
    }
    Ok(auth)
}
