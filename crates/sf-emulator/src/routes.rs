//! The URL map, and the gate every API call passes: latency, injected faults,
//! authentication and the daily API limit, in that order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;

use crate::faults::CallFault;
use crate::http::{invalid_session, limit_exceeded, sf_error};
use crate::server::ConnControl;
use crate::state::Emulator;

pub fn router(em: Arc<Emulator>) -> Router {
    Router::new()
        .route("/services/data", get(crate::rest::versions))
        .route("/services/data/", get(crate::rest::versions))
        .route("/services/data/{*rest}", any(crate::rest::handle))
        .route(
            "/services/oauth2/authorize",
            get(crate::oauth::authorize_page).post(crate::oauth::authorize_submit),
        )
        .route("/services/oauth2/token", post(crate::oauth::token))
        .route(
            "/services/oauth2/revoke",
            post(crate::oauth::revoke).get(crate::oauth::revoke_get),
        )
        .route(
            "/services/oauth2/userinfo",
            get(crate::oauth::userinfo).post(crate::oauth::userinfo),
        )
        .route("/id/{org}/{user}", get(crate::oauth::identity))
        .route("/services/Soap/m/{version}", post(crate::metadata::handle))
        .route("/services/Soap/m/{version}/", post(crate::metadata::handle))
        .route(
            "/services/Soap/m/{version}/{org}",
            post(crate::metadata::handle),
        )
        .route(
            "/lightning/r/{object}/{id}/view",
            get(crate::record_page::view),
        )
        .nest("/_emulator", crate::admin::router())
        .fallback(|| async { crate::http::not_found() })
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .layer(axum::middleware::from_fn_with_state(em.clone(), front_door))
        .with_state(em)
}

/// What Salesforce's front door takes at most: request line and headers
/// together (salesforce-api.md §9.4).
pub const MAX_REQUEST_HEAD: usize = 16_384;

/// Refuses, as Salesforce's front door does, a request line over the limit
/// with 414 and a request head over it with 431; both with an HTML body.
async fn front_door(
    axum::extract::State(em): axum::extract::State<Arc<Emulator>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::response::IntoResponse;
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    let refuse = |code: u16, reason: &str| {
        (
            StatusCode::from_u16(code).expect("a status"),
            [(
                axum::http::header::CONTENT_TYPE,
                "text/html;charset=iso-8859-1",
            )],
            format!("<h1>Bad Message {code}</h1><pre>reason: {reason}</pre>"),
        )
            .into_response()
    };
    if line > MAX_REQUEST_HEAD {
        em.count("refused.414");
        return refuse(414, "URI Too Long");
    }
    if line + headers > MAX_REQUEST_HEAD {
        em.count("refused.431");
        return refuse(431, "Request Header Fields Too Large");
    }
    next.run(req).await
}

/// Why a call did not pass the gate: an answer to send, or none at all (reset).
pub enum Refusal {
    Answer(Response),
}

impl Emulator {
    /// Runs the common steps of an API call and returns the caller's user id.
    /// `kind` names the endpoint in `/_emulator/stats`.
    pub async fn gate(
        &self,
        kind: &str,
        token: Option<&str>,
        conn: Option<&ConnControl>,
    ) -> Result<String, Response> {
        self.count(kind);
        let (fault, spike) = self.faults.lock().for_call();
        let delay = self.config.latency + spike;
        if delay > Duration::ZERO {
            tokio::time::sleep(delay).await;
        }
        match fault {
            CallFault::None => {}
            CallFault::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            CallFault::Reset => {
                if let Some(c) = conn {
                    c.0.notify_one();
                    std::future::pending::<()>().await;
                }
                return Err(sf_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SERVER_UNAVAILABLE",
                    "Server Unavailable",
                    &[],
                ));
            }
            CallFault::Unavailable => {
                return Err(sf_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SERVER_UNAVAILABLE",
                    "Server Unavailable",
                    &[],
                ));
            }
            CallFault::ServerError => {
                return Err(sf_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN_EXCEPTION",
                    "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
                    &[],
                ));
            }
            CallFault::Refused => {
                return Err(sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_OPERATION",
                    "injected permanent refusal: this operation is not allowed for this user",
                    &[],
                ));
            }
        }
        if self.faults.lock().expire_now() {
            self.auth.lock().expire_all();
        }
        let user = token.and_then(|t| self.auth.lock().session(t).map(|s| s.user_id.clone()));
        let Some(user) = user else {
            return Err(invalid_session());
        };
        if !self.usage.lock().try_count(Instant::now()) {
            return Err(limit_exceeded());
        }
        Ok(user)
    }

    pub fn limit_info(&self) -> String {
        self.usage.lock().header(Instant::now())
    }
}
