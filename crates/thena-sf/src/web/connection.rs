//! A connection's page: usage, queue and counts; activity with links to the
//! records; skipped requests and dead letters with their actions; the
//! doctor with Fix; the category map; a new webhook token; Disconnect.

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::Session;
use super::errors::{error_page, failure, missing, AdminError, AdminResult};
use super::form::{csrf_field, ConnPosted};
use super::requests::{cell, known, tone_of, when};
use super::views::{
    ActivityRow, CheckRow, ConnectionPage, DeadRow, DisconnectPage, Pager, SkippedRow, Tab,
    TokenPage, TokenRollPage,
};
use super::PAGE;
use super::{render, App};
use crate::connect;
use crate::operations::{self, OperationError};
use crate::store::{Connection, ReqState, StoreError};

#[derive(Deserialize, Default)]
pub struct PageQuery {
    tab: Option<String>,
    page: Option<i64>,
}

/// What an action did, for the page it leads back to.
fn notice_text(notice: &str, n: u64) -> Option<String> {
    let s = if n == 1 { "" } else { "s" };
    Some(match notice {
        "retried-skipped" => {
            format!("{n} skipped request{s} put back in the queue: they are resolved afresh now.")
        }
        "retried-dead" => format!("{n} dead letter{s} put back in the queue."),
        "discarded" => format!("{n} dead letter{s} discarded."),
        "fixed" if n == 0 => "The org's setup was checked: nothing needed fixing.".into(),
        "fixed" => format!("The org's setup was repaired: {n} change{s} made."),
        "checked" if n == 0 => "The doctor ran: every check passes.".into(),
        "checked" => format!("The doctor ran: {n} check{s} fail."),
        "revoked-old-token" => "The previous webhook token no longer works.".into(),
        _ => return None,
    })
}

pub async fn page(
    AxState(app): AxState<App>,
    Path(name): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
    s: Session,
) -> Response {
    // A malformed query string shows the page as it is by default.
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let c = match app.store.connection(&name).await {
        Ok(c) => c,
        Err(e) => return missing(s.chrome(), &e),
    };
    match render_page(&app, &s, &c, &q).await {
        Ok(r) => r,
        Err(e) => failure(&e.to_string()),
    }
}

async fn render_page(
    app: &App,
    s: &Session,
    c: &Connection,
    q: &PageQuery,
) -> Result<Response, StoreError> {
    let name = &c.name;
    let store = &app.store;
    let h = super::live::health(app, c).await?;
    let tab = ["skipped", "failed", "setup"]
        .into_iter()
        .find(|t| q.tab.as_deref() == Some(*t))
        .unwrap_or("activity")
        .to_string();
    let page = q.page.unwrap_or(1).max(1);
    let offset = (page - 1) * PAGE;
    let rows = match tab.as_str() {
        "skipped" => skipped_tab(app, c, offset, h.skipped).await?,
        "failed" => failed_tab(app, c, offset, h.failed).await?,
        "setup" => setup_tab(app, name).await?,
        _ => activity_tab(app, c, offset).await?,
    };
    let pager = pager(name, &tab, page, &rows);
    let doctor = rows.doctor;
    let webhook_url = app.config.webhook_url(name);
    Ok(render(
        StatusCode::OK,
        &ConnectionPage {
            chrome: s.chrome(),
            name: name.clone(),
            instance_url: c.tokens.instance_url.clone(),
            thena_app: c.thena_app.as_ref().map(thena_app_line),
            state: h.state,
            webhook_url,
            last_webhook: h.last_webhook,
            last_written: h.last_written,
            previous_token_until: c
                .previous_token
                .as_ref()
                .filter(|(_, u)| *u > chrono::Utc::now().timestamp_millis())
                .map(|(_, u)| until(*u)),
            connected_at: c.connected_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            usage: h.usage,
            usage_pct: h.usage_pct,
            queued: h.queued,
            synced: h.synced,
            skipped: h.skipped,
            failed: h.failed,
            notice: store.take_flash(&s.id_hash).await?,
            tabs: tabs(&tab, h.skipped, h.failed),
            tab,
            checks_ok: rows.checks.iter().all(|k| k.ok),
            cannot_fix: rows
                .checks
                .iter()
                .filter(|k| !k.ok && !k.fixable)
                .map(|k| k.name.clone())
                .collect(),
            activity: rows.activity,
            skipped_rows: rows.skipped,
            dead_rows: rows.dead,
            checks: rows.checks,
            checked_at: doctor
                .as_ref()
                .map(|d| d.checked_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            fix_helps: doctor.as_ref().is_some_and(|d| d.fix_helps()),
            categories: rows.categories,
            pager,
            q: String::new(),
        },
    ))
}

/// The links to the pages before and after `page` of a tab.
fn pager(name: &str, tab: &str, page: i64, rows: &TabRows) -> Pager {
    let offset = (page - 1) * PAGE;
    let more = match rows.total {
        Some(t) => offset + rows.shown < t,
        None => rows.shown == PAGE,
    };
    let link = |p: i64| format!("/connections/{name}?tab={tab}&page={p}");
    Pager {
        page,
        prev: (page > 1).then(|| link(page - 1)),
        next: more.then(|| link(page + 1)),
    }
}

/// What the open tab shows, and how many rows (for the pager: `total`
/// when known, else a full page means there may be more).
#[derive(Default)]
struct TabRows {
    activity: Vec<ActivityRow>,
    skipped: Vec<SkippedRow>,
    dead: Vec<DeadRow>,
    checks: Vec<CheckRow>,
    doctor: Option<crate::provision::DoctorResult>,
    categories: Vec<(String, String)>,
    shown: i64,
    total: Option<i64>,
}

async fn skipped_tab(
    app: &App,
    c: &Connection,
    offset: i64,
    total: i64,
) -> Result<TabRows, StoreError> {
    let skipped: Vec<SkippedRow> = app
        .store
        .requests_in_state(&c.name, ReqState::Skipped, PAGE, offset)
        .await?
        .into_iter()
        .map(|r| SkippedRow {
            req: cell(c, &r.request_id, Some(&r), None),
            reason: r.reason.unwrap_or_default(),
            at: when(&r.updated_at),
        })
        .collect();
    Ok(TabRows {
        shown: skipped.len() as i64,
        total: Some(total),
        skipped,
        ..Default::default()
    })
}

async fn failed_tab(
    app: &App,
    c: &Connection,
    offset: i64,
    total: i64,
) -> Result<TabRows, StoreError> {
    let letters = app.store.dead_letters(&c.name, PAGE, offset).await?;
    let known = known(app, &c.name, letters.iter().map(|d| d.request_id.clone())).await?;
    let dead: Vec<DeadRow> = letters
        .into_iter()
        .map(|d| DeadRow {
            id: d.id,
            req: cell(c, &d.request_id, known.get(&d.request_id), None),
            code: d.code,
            message: d.message,
            fields: d.fields,
            at: when(&d.failed_at),
        })
        .collect();
    Ok(TabRows {
        shown: dead.len() as i64,
        total: Some(total),
        dead,
        ..Default::default()
    })
}

async fn setup_tab(app: &App, name: &str) -> Result<TabRows, StoreError> {
    // The last stored result: viewing the page costs no API call.
    let doctor = crate::provision::last_result(&app.store, name).await?;
    let checks = doctor
        .iter()
        .flat_map(|d| d.checks.iter().cloned())
        .map(|k| CheckRow {
            name: k.name,
            ok: k.ok,
            detail: k.detail,
            fixable: !k.ok && k.fixable,
            hint: k.hint.filter(|_| !k.fixable).unwrap_or_default(),
        })
        .collect();
    Ok(TabRows {
        categories: app.store.category_fields(name).await?,
        checks,
        doctor,
        total: Some(0),
        ..Default::default()
    })
}

async fn activity_tab(app: &App, c: &Connection, offset: i64) -> Result<TabRows, StoreError> {
    let rows = app.store.activity(&c.name, PAGE, offset).await?;
    let known = known(app, &c.name, rows.iter().map(|a| a.request_id.clone())).await?;
    let activity: Vec<ActivityRow> = rows
        .into_iter()
        .map(|a| ActivityRow {
            req: cell(
                c,
                &a.request_id,
                known.get(&a.request_id),
                a.sf_id.as_deref(),
            ),
            at: when(&a.at),
            tone: tone_of(&a.outcome),
            outcome: a.outcome,
            detail: a.detail.unwrap_or_default(),
        })
        .collect();
    Ok(TabRows {
        shown: activity.len() as i64,
        activity,
        ..Default::default()
    })
}

fn tabs(open: &str, skipped: i64, failed: i64) -> Vec<Tab> {
    [
        ("activity", "Activity".to_string()),
        ("skipped", format!("Skipped ({skipped})")),
        ("failed", format!("Failed ({failed})")),
        ("setup", "Setup & doctor".to_string()),
    ]
    .into_iter()
    .map(|(key, label)| Tab {
        key,
        label,
        active: open == key,
    })
    .collect()
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// One request or dead letter; absent: all of them.
    request_id: Option<String>,
    id: Option<i64>,
}

csrf_field!(ActionForm, RollForm);

/// Back to the connection's tab, with what the action did kept for the
/// session's next page (a flash: the URL says nothing of it).
async fn back(app: &App, s: &Session, name: &str, tab: &str, notice: &str, n: u64) -> Response {
    if let Some(text) = notice_text(notice, n) {
        if let Err(e) = app.store.set_flash(&s.id_hash, &text).await {
            tracing::warn!(error = %e, "the notice for the next page was not kept");
        }
    }
    Redirect::to(&format!("/connections/{name}?tab={tab}")).into_response()
}

/// Answers a queue action: back to its tab, saying how many it touched; the
/// worker is woken when there is new work for it.
async fn after(
    app: &App,
    f: &ConnPosted<ActionForm>,
    n: u64,
    (tab, notice): (&str, &str),
    wake: bool,
) -> Response {
    if wake {
        app.wake(&f.conn.name);
    }
    back(app, &f.session, &f.conn.name, tab, notice, n).await
}

pub async fn retry_skipped(AxState(app): AxState<App>, f: ConnPosted<ActionForm>) -> AdminResult {
    let one = f.form.request_id.as_deref().filter(|r| !r.is_empty());
    let n = app.store.retry_skipped(&f.conn.name, one).await?;
    Ok(after(&app, &f, n, ("skipped", "retried-skipped"), true).await)
}

pub async fn retry_dead(AxState(app): AxState<App>, f: ConnPosted<ActionForm>) -> AdminResult {
    let n = app.store.retry_dead(&f.conn.name, f.form.id).await?;
    Ok(after(&app, &f, n, ("failed", "retried-dead"), true).await)
}

pub async fn discard_dead(AxState(app): AxState<App>, f: ConnPosted<ActionForm>) -> AdminResult {
    let n = app.store.discard_dead(&f.conn.name, f.form.id).await?;
    Ok(after(&app, &f, n, ("failed", "discarded"), false).await)
}

pub async fn fix(AxState(app): AxState<App>, f: ConnPosted<ActionForm>) -> Response {
    let (s, c, name) = (&f.session, &f.conn, &f.conn.name);
    let client = connect::client_for(&app.store, c, &app.config);
    let result = async {
        let user = connect::user_id(&c.tokens)?;
        let categories = app.store.category_fields(name).await?;
        let report = connect::provision_with_retries(&client, &categories, &user).await?;
        app.store.mark_provisioned(name).await?;
        crate::provision::check_and_record(
            &client,
            &app.store,
            name,
            &categories,
            app.config.api_budget_share,
        )
        .await?;
        Ok::<_, crate::Error>(report)
    }
    .await;
    match result {
        Ok(report) => {
            app.wake(name);
            let n = report.changes.len() as u64;
            back(&app, s, name, "setup", "fixed", n).await
        }
        Err(e) => {
            let x = super::flow::explain(&e);
            error_page(StatusCode::OK, Some(s.chrome()), &x.title, &x.what, &x.todo)
        }
    }
}

/// "Check now": runs the doctor and keeps its result.
pub async fn check(AxState(app): AxState<App>, f: ConnPosted<ActionForm>) -> AdminResult {
    let name = &f.conn.name;
    let client = connect::client_for(&app.store, &f.conn, &app.config);
    let categories = app.store.category_fields(name).await?;
    let result = crate::provision::check_and_record(
        &client,
        &app.store,
        name,
        &categories,
        app.config.api_budget_share,
    )
    .await;
    if let Some(u) = client.api_usage() {
        app.metrics.set_usage(name, u.used, u.max);
    }
    let failed = result?.checks.iter().filter(|c| !c.ok).count() as u64;
    Ok(back(&app, &f.session, name, "setup", "checked", failed).await)
}

/// The grace periods a roll offers, in hours (0: the old token stops at once).
/// A time to come, as people read it.
fn until(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub struct RollForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    grace_hours: i64,
}

/// "New webhook token": asks first, with how long the old one keeps working.
pub async fn roll_token_page(
    AxState(app): AxState<App>,
    Path(name): Path<String>,
    s: Session,
) -> Response {
    if let Err(e) = app.store.connection(&name).await {
        return missing(s.chrome(), &e);
    }
    render(
        StatusCode::OK,
        &TokenRollPage {
            chrome: s.chrome(),
            name,
        },
    )
}

/// Makes a new webhook token, shown once; the old one keeps working for
/// the grace picked.
pub async fn rotate_token(AxState(app): AxState<App>, f: ConnPosted<RollForm>) -> AdminResult {
    let (s, name, hours) = (&f.session, f.conn.name.clone(), f.form.grace_hours);
    let rolled = match operations::roll_token(&app.store, &name, hours).await {
        Ok(r) => r,
        Err(OperationError::Store(e)) => return Err(e.into()),
        Err(e @ OperationError::Grace(_)) => {
            return Ok(error_page(
                StatusCode::BAD_REQUEST,
                Some(s.chrome()),
                "No such grace period",
                &e.to_string(),
                "Go back and pick one of the choices offered.",
            ))
        }
    };
    serve_anew(&app, &name).await?;
    Ok(render(
        StatusCode::OK,
        &TokenPage {
            chrome: s.chrome(),
            webhook_url: app.config.webhook_url(&name),
            connection: name,
            token: rolled.token,
            old_until: rolled.old_until_ms.map(until),
        },
    ))
}

/// "Revoke old token now": the token a roll replaced stops working at once.
pub async fn revoke_old_token(
    AxState(app): AxState<App>,
    f: ConnPosted<ActionForm>,
) -> AdminResult {
    let name = &f.conn.name;
    app.store.revoke_previous_token(name).await?;
    serve_anew(&app, name).await?;
    tracing::info!(connection = %name, "the previous webhook token was revoked");
    Ok(back(&app, &f.session, name, "setup", "revoked-old-token", 1).await)
}

/// Serves the connection as now stored (its webhook credentials changed).
async fn serve_anew(app: &App, name: &str) -> Result<(), AdminError> {
    let c = app.store.connection(name).await?;
    app.add_connection(&c);
    Ok(())
}

pub async fn disconnect_page(
    AxState(app): AxState<App>,
    Path(name): Path<String>,
    s: Session,
) -> Response {
    if let Err(e) = app.store.connection(&name).await {
        return missing(s.chrome(), &e);
    }
    let queued = app.store.queued(&name).await.unwrap_or(0);
    render(
        StatusCode::OK,
        &DisconnectPage {
            chrome: s.chrome(),
            name,
            queued,
        },
    )
}

pub async fn disconnect(AxState(app): AxState<App>, f: ConnPosted<ActionForm>) -> AdminResult {
    let (s, c) = (&f.session, &f.conn);
    let revoked = operations::disconnect(&app.store, &app.config, c).await?;
    app.remove_connection(&c.name);
    Ok(match revoked {
        Ok(()) => Redirect::to("/integrations").into_response(),
        Err(e) => error_page(
            StatusCode::OK,
            Some(s.chrome()),
            "Disconnected, but the token was not revoked",
            &format!("The connection was removed here, but Salesforce's revoke call failed: {e}"),
            "Revoke the connector's access in Salesforce: Setup → Connected Apps OAuth Usage, or the user's Connections settings.",
        ),
    })
}

/// One line on the Thena webhook app feeding the connection (platform).
fn thena_app_line(a: &crate::store::ThenaApp) -> String {
    let when = a.at.format("%Y-%m-%d %H:%M UTC");
    let org = a.org_id.as_deref().unwrap_or("an unnamed organisation");
    if !a.feeding() {
        return format!("Thena's webhook app was uninstalled at {when} (organisation {org}): no platform events arrive until it is installed again.");
    }
    let teams = if a.team_ids.is_empty() {
        "no team listed".to_string()
    } else {
        format!("teams {}", a.team_ids.join(", "))
    };
    format!("Thena's webhook app feeds this connection: organisation {org}, {teams} (last event {} at {when}). Platform events of any other organisation are acknowledged and not applied.", a.event)
}
