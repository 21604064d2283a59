//! What each request is, wherever the page lists one (its title, requestor,
//! the Contact and Account it landed on, its record in Salesforce and its
//! page in Thena), the search box, and a request's own history page.

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::errors::{missing, AdminResult};
use super::views::{DeliveryRow, HistoryRow, RequestCell, RequestPage, SearchPage};
use super::{render, App};
use crate::store::queue::RequestState;
use crate::store::{Connection, ReqState, StoreError};

/// Rows shown of a request's deliveries and of its sync history.
const HISTORY: i64 = 200;

/// A stored RFC 3339 time as people read it: `2026-11-26 16:40:29`.
pub fn when(rfc3339: &str) -> String {
    match crate::store::parse_ts(rfc3339) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => rfc3339.to_string(),
    }
}

fn when_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The record's page in Salesforce's Lightning UI.
pub fn record_link(instance_url: &str, object: &str, id: &str) -> Option<String> {
    let safe = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric());
    (safe && instance_url.starts_with("http")).then(|| {
        format!(
            "{}/lightning/r/{object}/{id}/view",
            instance_url.trim_end_matches('/')
        )
    })
}

/// The request's page on this admin page (its id percent-encoded: Thena's
/// ids are the caller's text).
pub fn history_href(connection: &str, request_id: &str) -> String {
    let id = percent_encoding::utf8_percent_encode(request_id, percent_encoding::NON_ALPHANUMERIC);
    format!("/connections/{connection}/requests/{id}")
}

/// How a request is shown in any list; `sf_id` is the record written, when
/// the row itself knows it.
pub fn cell(
    c: &Connection,
    id: &str,
    known: Option<&RequestState>,
    sf_id: Option<&str>,
) -> RequestCell {
    let sf = |object: &str, v: Option<&str>| {
        v.and_then(|v| record_link(&c.tokens.instance_url, object, v))
    };
    RequestCell {
        href: history_href(&c.name, id),
        id: id.to_string(),
        title: known.and_then(|k| k.title.clone()).unwrap_or_default(),
        requestor: known.and_then(|k| k.requestor.clone()).unwrap_or_default(),
        record: sf(
            "Request__c",
            sf_id.or(known.and_then(|k| k.sf_id.as_deref())),
        ),
        contact: sf("Contact", known.and_then(|k| k.contact_id.as_deref())),
        account: sf("Account", known.and_then(|k| k.account_id.as_deref())),
        thena: known
            .and_then(|k| k.web_link.clone())
            .filter(|l| l.starts_with("https://") || l.starts_with("http://")),
    }
}

/// What the store knows of these requests, by id (one query per page).
pub async fn known(
    app: &App,
    connection: &str,
    ids: impl Iterator<Item = String>,
) -> Result<std::collections::HashMap<String, RequestState>, StoreError> {
    let mut ids: Vec<String> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(app
        .store
        .request_states(connection, &ids)
        .await?
        .into_iter()
        .map(|r| (r.request_id.clone(), r))
        .collect())
}

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    q: Option<String>,
}

/// `GET /connections/{name}/requests?q=`: requests by id, title or requestor.
pub async fn search(
    AxState(app): AxState<App>,
    Path(name): Path<String>,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
    s: Session,
) -> AdminResult {
    let q = q
        .map(|Query(q)| q)
        .unwrap_or_default()
        .q
        .unwrap_or_default();
    let q: String = q.trim().chars().take(200).collect();
    let c = app
        .store
        .connection(&name)
        .await
        .map_err(|e| missing(s.chrome(), &e))?;
    let found = app.store.search_requests(&name, &q, super::PAGE).await?;
    let rows = found
        .iter()
        .map(|r| (cell(&c, &r.request_id, Some(r), None), state_label(r.state)))
        .collect();
    Ok(render(
        StatusCode::OK,
        &SearchPage {
            chrome: s.chrome(),
            name,
            q,
            rows,
        },
    ))
}

/// `GET /connections/{name}/requests/{id}`: a request's own page, with each
/// delivery received and each sync, skip or failure with its reason.
pub async fn history(
    AxState(app): AxState<App>,
    Path((name, id)): Path<(String, String)>,
    s: Session,
) -> AdminResult {
    let c = app
        .store
        .connection(&name)
        .await
        .map_err(|e| missing(s.chrome(), &e))?;
    let state = app.store.request_state(&name, &id).await?;
    let deliveries = app.store.deliveries_of(&name, &id, HISTORY).await?;
    let activity = app.store.activity_of(&name, &id, HISTORY).await?;
    if state.is_none() && deliveries.is_empty() {
        return Ok(not_known(s, &name, &id));
    }
    let page = RequestPage {
        chrome: s.chrome(),
        name: name.clone(),
        req: cell(&c, &id, state.as_ref(), None),
        state: state
            .as_ref()
            .map(|k| state_label(k.state))
            .unwrap_or_default(),
        state_tone: state.as_ref().map(|k| state_tone(k.state)).unwrap_or(""),
        reason: state
            .as_ref()
            .and_then(|k| k.reason.clone())
            .unwrap_or_default(),
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryRow {
                at: when_ms(d.received_ms),
                action: d.action,
                result: delivery_result(&d.result).to_string(),
            })
            .collect(),
        history: activity
            .into_iter()
            .map(|a| HistoryRow {
                at: when(&a.at),
                tone: tone_of(&a.outcome),
                outcome: a.outcome,
                detail: a.detail.unwrap_or_default(),
            })
            .collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

fn not_known(s: Session, name: &str, id: &str) -> Response {
    super::errors::error_page(
        StatusCode::NOT_FOUND,
        Some(s.chrome()),
        "No such request",
        &format!(
            "No webhook for a request '{}' has reached this connection.",
            id.chars().take(80).collect::<String>()
        ),
        &format!("Search for it on the page of {name}, by its id, title or requestor's email."),
    )
}

/// The badge colour of an activity's outcome.
pub fn tone_of(outcome: &str) -> &'static str {
    match outcome {
        "synced" => "ok",
        "skipped" => "warn",
        "failed" | "dead_letter" => "bad",
        _ => "busy",
    }
}

/// A request's state, in the page's words.
pub fn state_label(state: ReqState) -> String {
    match state {
        ReqState::Pending => "queued",
        ReqState::Synced => "synced",
        ReqState::Skipped => "skipped",
        ReqState::Failed => "failed",
        ReqState::OutOfScope => "out of scope",
    }
    .to_string()
}

/// A request state's badge colour.
fn state_tone(state: ReqState) -> &'static str {
    match state {
        ReqState::Synced => "ok",
        ReqState::Skipped => "warn",
        ReqState::Failed => "bad",
        ReqState::Pending => "busy",
        ReqState::OutOfScope => "",
    }
}

/// What ingest made of a delivery, in the page's words.
fn delivery_result(result: &str) -> &str {
    match result {
        "queued" => "queued for Salesforce",
        "duplicate" => "duplicate: received before, ignored",
        "stale" => "older than a version already received, ignored",
        "out_of_scope" => "request created before the connection, not synced",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::{history_href, record_link};

    #[test]
    fn record_links_only_for_plain_ids() {
        assert_eq!(
            record_link(
                "https://acme.my.salesforce.com/",
                "Request__c",
                "a00Em0000000001AAA"
            )
            .as_deref(),
            Some("https://acme.my.salesforce.com/lightning/r/Request__c/a00Em0000000001AAA/view")
        );
        assert_eq!(
            record_link("https://x", "Request__c", "a0\"><script>"),
            None
        );
        assert_eq!(
            record_link("javascript:alert(1)", "Request__c", "a00"),
            None
        );
    }

    #[test]
    fn a_requests_page_address_encodes_its_id() {
        assert_eq!(
            history_href("acme", "REQ-1/../x?y"),
            "/connections/acme/requests/REQ%2D1%2F%2E%2E%2Fx%3Fy"
        );
    }
}
