//! The HTTP server: Thena webhooks, health, readiness and metrics.

mod auth;
pub mod serve;
mod trace;
mod webhook;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::config::Config;
use crate::runtime::AppState;

/// A JSON answer with `status`.
fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The largest webhook body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// The webhook, health, readiness and (unless served apart) metrics routes.
pub fn routes(state: Arc<AppState>) -> Router {
    let mut r = Router::new()
        .route("/webhooks/thena/{connection}", post(webhook::receive))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready));
    // With `metrics_listen`, metrics are served there only (`metrics_router`).
    if state.config.metrics_listen.is_none() {
        r = r.route("/metrics", get(metrics));
    }
    r.layer(DefaultBodyLimit::max(MAX_BODY)).with_state(state)
}

/// What every request of the server goes through, whichever routes served
/// it: its deadline and its span.
pub fn around(router: Router, config: &Config) -> Router {
    router
        .layer(axum::middleware::from_fn_with_state(
            std::time::Duration::from_secs(config.limits.request_timeout_secs.max(1)),
            serve::request_deadline,
        ))
        .layer(trace::layer())
}

async fn ready(State(app): State<Arc<AppState>>) -> Response {
    match sqlx::query("SELECT 1").execute(app.store.pool()).await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not reachable",
        )
            .into_response(),
    }
}

/// `/metrics` alone, for a separate listen address.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(app): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    if let Some(want) = &app.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool =
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), want.expose().as_bytes()).into();
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                "metrics need Authorization: Bearer <metrics_token>",
            )
                .into_response();
        }
    }
    let names: Vec<String> = app.conns.read().keys().cloned().collect();
    let mut depth = Vec::new();
    let mut failed = Vec::new();
    let now = chrono::Utc::now();
    for n in names {
        if let Ok(r) = app.store.recent_failures(&n, now).await {
            failed.push((n.clone(), r.count));
        }
        if let Ok(d) = app.store.queued(&n).await {
            depth.push((n, d));
        }
    }
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        app.metrics.render(&depth, &failed, app.spool.len()),
    )
        .into_response()
}
