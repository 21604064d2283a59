//! A connection's health in one place: the figures its page shows at the top
//! (state, queue, counts, last webhook and last record, API usage), for the
//! page and for `GET /connections/{name}/live`, which the page's script
//! reads to refresh them in place while work is in flight.

use axum::extract::{Path, State as AxState};
use axum::response::IntoResponse;
use serde::Serialize;

use super::auth::Session;
use super::errors::{missing, AdminResult};
use super::views::State;
use super::App;
use crate::operations::health::{last_webhook, last_written};
use crate::store::{Connection, StoreError};

/// What the top of a connection's page shows, and what the script reads.
#[derive(Serialize)]
pub struct Health {
    pub state: State,
    pub queued: i64,
    pub synced: i64,
    pub skipped: i64,
    /// Dead letters.
    pub failed: i64,
    pub last_webhook: String,
    pub last_written: String,
    pub usage: String,
    pub usage_pct: u64,
}

pub async fn health(app: &App, c: &Connection) -> Result<Health, StoreError> {
    let h = crate::operations::health(&app.store, &app.config, c).await?;
    let (usage, usage_pct) = usage_of(app, &c.name);
    Ok(Health {
        last_webhook: last_webhook(&h.last),
        last_written: last_written(&h.last),
        state: h.state,
        queued: h.counts.queued,
        synced: h.counts.synced,
        skipped: h.counts.skipped,
        failed: h.counts.dead_letters,
        usage,
        usage_pct,
    })
}

/// The org's API usage last seen, as text and as a percentage.
fn usage_of(app: &App, name: &str) -> (String, u64) {
    match app.metrics.usage(name) {
        Some((used, max)) if max > 0 => (
            format!("{used} of {max} calls in the last 24 h"),
            (used * 100 / max).min(100),
        ),
        _ => ("not known yet (shown after the first sync)".into(), 0),
    }
}

/// `GET /connections/{name}/live`: the figures as JSON.
pub async fn live(AxState(app): AxState<App>, Path(name): Path<String>, s: Session) -> AdminResult {
    let c = app
        .store
        .connection(&name)
        .await
        .map_err(|e| missing(s.chrome(), &e))?;
    Ok(axum::Json(health(&app, &c).await?).into_response())
}
