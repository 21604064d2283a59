//! The pages' templates (in `templates/`) and the data each one shows.
//! Askama escapes every value for HTML; nothing here marks text as safe.

use askama::Template;

/// What every page's frame needs: whether to show the navigation, and the CSRF token
/// for the log-out form.
#[derive(Clone, Default)]
pub struct Chrome {
    pub csrf: String,
    pub logged_in: bool,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub error: Option<String>,
}

impl LoginPage {
    pub fn new(error: Option<String>) -> LoginPage {
        LoginPage {
            chrome: Chrome::default(),
            error,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub title: String,
    pub what: String,
    pub todo: String,
    /// The page's one button: where it goes and what it says.
    pub back: String,
    pub back_label: String,
}

/// A connection as the Integrations page lists it.
pub struct ConnRow {
    pub name: String,
    pub instance_url: String,
    pub state: State,
    /// When the last webhook arrived ("none yet").
    pub last_webhook: String,
    pub queued: i64,
    pub synced: i64,
    pub skipped: i64,
    pub failed: i64,
}

/// A connection's state, as a badge (its tone is the CSS class).
pub use crate::operations::State;

#[derive(Template)]
#[template(path = "integrations.html")]
pub struct IntegrationsPage {
    pub chrome: Chrome,
    pub rows: Vec<ConnRow>,
    /// Accepted events waiting in this replica's spool for the store.
    pub spooled: u64,
}

/// One choice of where to connect.
pub struct Place {
    pub value: &'static str,
    pub label: &'static str,
    pub hint: String,
    pub available: bool,
}

#[derive(Template)]
#[template(path = "connect.html")]
pub struct ConnectPage {
    pub chrome: Chrome,
    pub places: Vec<Place>,
    pub name: String,
    pub place: String,
    pub domain: String,
    pub error: Option<String>,
    pub callback_url: String,
    /// Whether an app for real orgs is configured (the steps are folded then).
    pub oauth_configured: bool,
    /// The connection the org already has, after the callback found one.
    pub same_org_as: Option<String>,
}

/// One step of a setup, as shown while it runs.
#[derive(Clone)]
pub struct StepView {
    pub label: String,
    /// done, running, waiting, failed
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "setup.html")]
pub struct SetupPage {
    pub chrome: Chrome,
    pub connection: String,
    pub running: bool,
    pub steps: Vec<StepView>,
    pub changes: Vec<String>,
    /// What setup could not do (a layout Salesforce would not change).
    pub warnings: Vec<String>,
    pub webhook_url: String,
    /// Shown on the first view only.
    pub token: Option<String>,
    pub reconnected: bool,
}

#[derive(Template)]
#[template(path = "token.html")]
pub struct TokenPage {
    pub chrome: Chrome,
    pub connection: String,
    pub webhook_url: String,
    pub token: String,
    /// When the replaced token stops working; None: it already has.
    pub old_until: Option<String>,
}

/// "New webhook token": how long the old one keeps working.
#[derive(Template)]
#[template(path = "token_roll.html")]
pub struct TokenRollPage {
    pub chrome: Chrome,
    pub name: String,
}

/// A tab of the connection page.
pub struct Tab {
    pub key: &'static str,
    pub label: String,
    pub active: bool,
}

/// A request wherever a list shows one (`templates/request_cell.html`).
pub struct RequestCell {
    pub id: String,
    /// Its history page here.
    pub href: String,
    pub title: String,
    pub requestor: String,
    /// Its record, Contact and Account in Salesforce, and its page in Thena.
    pub record: Option<String>,
    pub contact: Option<String>,
    pub account: Option<String>,
    pub thena: Option<String>,
}

pub struct ActivityRow {
    pub at: String,
    pub req: RequestCell,
    pub outcome: String,
    pub tone: &'static str,
    pub detail: String,
}

pub struct SkippedRow {
    pub req: RequestCell,
    pub reason: String,
    pub at: String,
}

pub struct DeadRow {
    pub id: i64,
    pub req: RequestCell,
    pub code: String,
    pub message: String,
    pub fields: String,
    pub at: String,
}

pub struct CheckRow {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub hint: String,
    /// Fails, and Fix repairs it.
    pub fixable: bool,
}

/// Paging of a list: the page shown and links to its neighbours.
pub struct Pager {
    pub page: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "connection.html")]
pub struct ConnectionPage {
    pub chrome: Chrome,
    pub name: String,
    pub instance_url: String,
    pub webhook_url: String,
    pub state: State,
    pub connected_at: String,
    /// When the last webhook arrived, and the last record was written.
    pub last_webhook: String,
    pub last_written: String,
    /// When the token a roll replaced stops working, while it still works.
    pub previous_token_until: Option<String>,
    pub usage: String,
    pub usage_pct: u64,
    pub queued: i64,
    pub synced: i64,
    pub skipped: i64,
    pub failed: i64,
    pub notice: Option<String>,
    pub tabs: Vec<Tab>,
    pub tab: String,
    pub activity: Vec<ActivityRow>,
    pub skipped_rows: Vec<SkippedRow>,
    pub dead_rows: Vec<DeadRow>,
    pub checks: Vec<CheckRow>,
    pub checks_ok: bool,
    /// When the doctor's shown result was taken; None: it has not run yet.
    pub checked_at: Option<String>,
    /// Whether Fix would repair something that fails.
    pub fix_helps: bool,
    /// Failing checks Fix cannot repair (a person must act).
    pub cannot_fix: Vec<String>,
    pub categories: Vec<(String, String)>,
    /// What Thena's installation events said of its webhook app, if any.
    pub thena_app: Option<String>,
    pub pager: Pager,
    /// The search box's text (empty on this page).
    pub q: String,
}

#[derive(Template)]
#[template(path = "disconnect.html")]
pub struct DisconnectPage {
    pub chrome: Chrome,
    pub name: String,
    pub queued: i64,
}

/// Requests found by id, title or requestor.
#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub chrome: Chrome,
    pub name: String,
    pub q: String,
    /// Each request found, with its state.
    pub rows: Vec<(RequestCell, String)>,
}

pub struct DeliveryRow {
    pub at: String,
    pub action: String,
    pub result: String,
}

pub struct HistoryRow {
    pub at: String,
    pub outcome: String,
    pub tone: &'static str,
    pub detail: String,
}

/// One request's page: what it is, each delivery, each sync step.
#[derive(Template)]
#[template(path = "request.html")]
pub struct RequestPage {
    pub chrome: Chrome,
    pub name: String,
    pub req: RequestCell,
    /// Its state now ("" when only duplicates or out-of-scope deliveries came).
    pub state: String,
    /// The state badge's colour.
    pub state_tone: &'static str,
    pub reason: String,
    pub deliveries: Vec<DeliveryRow>,
    pub history: Vec<HistoryRow>,
}
