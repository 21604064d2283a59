//! The Integrations page, and Log out.

use axum::extract::State as AxState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{session_cookie, Session};
use super::errors::failure;
use super::form::{CsrfForm, Posted};
use super::views::{ConnRow, IntegrationsPage};
use super::{render, App};
use crate::operations::health::last_webhook;

pub async fn integrations(AxState(app): AxState<App>, s: Session) -> Response {
    let conns = match app.store.connections().await {
        Ok(c) => c,
        Err(e) => return failure(&e.to_string()),
    };
    let mut rows = Vec::new();
    for c in conns {
        let h = match crate::operations::health(&app.store, &app.config, &c).await {
            Ok(h) => h,
            Err(e) => return failure(&e.to_string()),
        };
        rows.push(ConnRow {
            last_webhook: last_webhook(&h.last),
            state: h.state,
            name: c.name,
            instance_url: c.tokens.instance_url,
            queued: h.counts.queued,
            synced: h.counts.synced,
            skipped: h.counts.skipped,
            failed: h.counts.dead_letters,
        });
    }
    render(
        StatusCode::OK,
        &IntegrationsPage {
            chrome: s.chrome(),
            rows,
            spooled: app.spool.len(),
        },
    )
}

/// Log out: the session is forgotten here and its cookie cleared.
pub async fn logout(AxState(app): AxState<App>, posted: Posted<CsrfForm>) -> Response {
    let _ = app.store.delete_session(&posted.session.id_hash).await;
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie(&app, "", 0)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}
