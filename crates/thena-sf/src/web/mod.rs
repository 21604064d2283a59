//! The admin page, served by `thena-sf serve` beside the webhooks: log in,
//! connect an org by OAuth, and see and fix what the sync does.
//!
//! Server-rendered (askama escapes every value), one small script (the copy
//! button). Every page needs the admin session; every form carries the
//! session's CSRF token; the OAuth `state` is single use and bound to the
//! session that started the flow. No secret is rendered except a new webhook
//! token, once.

mod auth;
mod connection;
mod errors;
mod flow;
mod form;
mod live;
mod pages;
mod requests;
mod views;

pub use auth::{hash_password, Admin};

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::runtime::AppState;

/// What the admin page's handlers hold: the runtime state, and the admin
/// page's own (its password, login brakes, setups under way).
pub struct Web {
    pub app: Arc<AppState>,
    pub admin: Admin,
    /// Setups under way (connect, then provision), by job id.
    pub setups: parking_lot::Mutex<
        std::collections::HashMap<String, Arc<parking_lot::Mutex<flow::SetupJob>>>,
    >,
}

impl std::ops::Deref for Web {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.app
    }
}

type App = Arc<Web>;

/// Rows per page of every list.
pub const PAGE: i64 = 50;

/// The admin page's routes.
/// The pages' Content-Security-Policy: nothing but our own files, and forms
/// that go only here or (by the Connect form's redirect, which Chrome checks
/// too) to Salesforce's login hosts and the emulator offered.
pub fn csp(config: &crate::config::Config) -> String {
    let mut form =
        "'self' https://*.salesforce.com https://*.salesforce.mil https://*.sfcrmproducts.cn"
            .to_string();
    if let Some(e) = &config.emulator {
        form.push(' ');
        form.push_str(e.login_url.trim_end_matches('/'));
    }
    format!("default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action {form}")
}

pub fn router(app: Arc<AppState>, admin: Admin) -> Router {
    let csp = csp(&app.config);
    routes(csp).with_state(Arc::new(Web {
        app,
        admin,
        setups: Default::default(),
    }))
}

fn routes(csp: String) -> Router<App> {
    let csp: std::sync::Arc<str> = csp.into();
    Router::new()
        .route("/", get(|| async { Redirect::to("/integrations") }))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(pages::logout))
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .route("/integrations", get(pages::integrations))
        .route("/connect", get(flow::connect_page).post(flow::start))
        .route("/oauth/callback", get(flow::callback))
        .route("/setup/{job}", get(flow::setup_page))
        .route("/connections/{name}", get(connection::page))
        .route("/connections/{name}/reconnect", post(flow::reconnect))
        .route(
            "/connections/{name}/disconnect",
            get(connection::disconnect_page).post(connection::disconnect),
        )
        .route(
            "/connections/{name}/webhook-token",
            get(connection::roll_token_page).post(connection::rotate_token),
        )
        .route(
            "/connections/{name}/webhook-token/revoke-old",
            post(connection::revoke_old_token),
        )
        .route(
            "/connections/{name}/skipped/retry",
            post(connection::retry_skipped),
        )
        .route(
            "/connections/{name}/dead/retry",
            post(connection::retry_dead),
        )
        .route(
            "/connections/{name}/dead/discard",
            post(connection::discard_dead),
        )
        .route("/connections/{name}/live", get(live::live))
        .route("/connections/{name}/requests", get(requests::search))
        .route("/connections/{name}/requests/{id}", get(requests::history))
        .route("/connections/{name}/fix", post(connection::fix))
        .route("/connections/{name}/check", post(connection::check))
        .fallback(errors::not_found)
        // The admin page's forms are small; a large body is refused unread.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::map_response_with_state(
            csp,
            secure_headers,
        ))
}

/// Headers on every page: no caching, no framing, no referrer to other sites (the callback URL carries the code).
async fn secure_headers(
    axum::extract::State(csp): axum::extract::State<std::sync::Arc<str>>,
    mut resp: Response,
) -> Response {
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "cache-control", "no-store");
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    // same-origin, not no-referrer: with no-referrer, browsers send `Origin: null` on our own forms.
    set(h, "referrer-policy", "same-origin");
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", v);
    }
    resp
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/app.js"),
    )
        .into_response()
}

/// Renders a template into a response, or a plain 500 if it cannot.
fn render<T: askama::Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}
