//! The emulator's own endpoints under `/_emulator/` (outside Salesforce's
//! namespace): call statistics, reset, faults at run time, token expiry and
//! API usage, for tests and benchmarks.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::faults::FaultSpec;
use crate::http::sf_json;
use crate::state::Emulator;

pub fn router() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        .route("/faults", get(get_faults).post(set_faults))
        .route("/expire-tokens", post(expire_tokens))
        .route("/limits", post(set_limits))
}

async fn stats(State(em): State<Arc<Emulator>>) -> Response {
    let calls = em.stats.lock().clone();
    let api_calls = em.usage.lock().used(Instant::now());
    let injected = em.faults.lock().injected.clone();
    let records: serde_json::Map<String, serde_json::Value> = em
        .org
        .read()
        .tables()
        .map(|t| (t.def.name.clone(), json!(t.len())))
        .collect();
    sf_json(
        StatusCode::OK,
        &json!({"api_calls": api_calls, "calls": calls, "faults_injected": injected, "records": records}),
    )
}

async fn reset(State(em): State<Arc<Emulator>>) -> Response {
    match em.reset() {
        Ok(()) => {
            em.stats.lock().clear();
            sf_json(StatusCode::OK, &json!({"reset": true}))
        }
        Err(e) => sf_json(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": e})),
    }
}

async fn get_faults(State(em): State<Arc<Emulator>>) -> Response {
    let spec = em.faults.lock().spec.clone();
    sf_json(
        StatusCode::OK,
        &serde_json::to_value(spec).unwrap_or_default(),
    )
}

/// Accepts the JSON form of [`FaultSpec`], or `{"spec": "503=0.2,seed=1"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum FaultsBody {
    Text { spec: String },
    Spec(FaultSpec),
}

async fn set_faults(State(em): State<Arc<Emulator>>, body: axum::body::Bytes) -> Response {
    let parsed: Result<FaultSpec, String> = serde_json::from_slice::<FaultsBody>(&body)
        .map_err(|e| e.to_string())
        .and_then(|b| match b {
            FaultsBody::Text { spec } => FaultSpec::parse(&spec),
            FaultsBody::Spec(s) => Ok(s),
        });
    match parsed {
        Ok(spec) => {
            em.faults.lock().set(spec.clone());
            sf_json(
                StatusCode::OK,
                &serde_json::to_value(spec).unwrap_or_default(),
            )
        }
        Err(e) => sf_json(StatusCode::BAD_REQUEST, &json!({"error": e})),
    }
}

async fn expire_tokens(State(em): State<Arc<Emulator>>) -> Response {
    let n = em.auth.lock().expire_all();
    sf_json(StatusCode::OK, &json!({"expired": n}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    daily_api_limit: Option<u64>,
    used: Option<u64>,
}

async fn set_limits(State(em): State<Arc<Emulator>>, Json(l): Json<Limits>) -> Response {
    let mut u = em.usage.lock();
    if let Some(max) = l.daily_api_limit {
        u.set_limit(max);
    }
    if let Some(used) = l.used {
        u.set_used(used, Instant::now());
    }
    let now = Instant::now();
    sf_json(
        StatusCode::OK,
        &json!({"daily_api_limit": u.limit(), "used": u.used(now)}),
    )
}
