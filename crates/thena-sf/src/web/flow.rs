//! Connecting an org from the browser: pick where, consent on Salesforce's
//! page (state + PKCE), come back to the callback, watch the setup, copy the
//! webhook URL and token into Thena.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use parking_lot::Mutex;
use salesforce::{OAuthApp, Pkce, Secret};
use serde::Deserialize;

use super::auth::{session, Session};
use super::errors::{error_page, error_page_to, failure};
use super::form::{csrf_field, ConnPosted, Posted};
use super::views::{ConnectPage, Place, SetupPage, StepView};
use super::{render, App};
use crate::connect::{self, ConnectRequest, Credentials, Step};
use crate::crypto;
use crate::store::OAuthFlow;

/// How long a started flow may take to come back.
const FLOW_LIFETIME_MS: i64 = 10 * 60 * 1000;
const SCOPE: &str = "api refresh_token";

/// A setup under way (or finished) after a callback; lives in memory, bound to its session.
pub struct SetupJob {
    session_hash: String,
    connection: String,
    steps: Vec<StepView>,
    running: bool,
    changes: Vec<String>,
    warnings: Vec<String>,
    webhook_url: String,
    token: Option<Secret>,
    reconnected: bool,
    error: Option<Explained>,
}

/// What went wrong, for a person: a title, what happened, what to do.
#[derive(Clone)]
pub struct Explained {
    pub title: String,
    pub what: String,
    pub todo: String,
}

fn explained(title: &str, what: impl Into<String>, todo: &str) -> Explained {
    Explained {
        title: title.into(),
        what: what.into(),
        todo: todo.into(),
    }
}

/// What an authorize-step refusal with a known cause means, and what to do
/// (salesforce-api.md §9.8).
fn refusal_cause(error: &str, description: &str) -> Option<(&'static str, &'static str)> {
    let d = description.to_ascii_lowercase();
    if error == "OAUTH_APP_ACCESS_DENIED" || d.contains("not admin approved") {
        return Some((
            "Your Salesforce user is not approved for this app",
            "The app only lets pre-authorized users in. In Salesforce Setup → External Client App Manager → your app → Policies → App Policies, add the profile or permission set of the user who connects (or set Permitted Users to \"All users may self-authorize\"). For an older Connected App: Setup → Connected Apps → Manage → Edit Policies, then Manage Profiles. Then start again. docs/external-client-app.md has every step.",
        ));
    }
    if d.contains("must be installed") || d.contains("not installed") {
        return Some((
            "The app is not installed in this org",
            "Since September 2025 Salesforce only lets users authorize apps installed in the org. An admin installs it in Setup → Connected Apps OAuth Usage → Install (an External Client App is installed in the org it was created in), or grants the user \"Approve Uninstalled Connected Apps\". Then start again.",
        ));
    }
    None
}

/// Explains an error of connecting or provisioning.
pub fn explain(e: &crate::Error) -> Explained {
    use salesforce::Error as Sf;
    let sf = match e {
        crate::Error::Salesforce(s) => Some(s),
        crate::Error::Provision(crate::provision::ProvisionError::Salesforce(s)) => Some(s),
        _ => None,
    };
    match sf {
        Some(Sf::Api(a))
            if matches!(
                a.code.as_str(),
                "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED"
            ) =>
        {
            explained(
                "The Salesforce user cannot use the API",
                format!("Salesforce said: {}", a.message),
                "Connect with a user whose profile or permission set has \"API Enabled\" (Enterprise, Unlimited, Developer and Performance editions have the API), then start again.",
            )
        }
        Some(Sf::Api(a)) if a.code.starts_with("INSUFFICIENT_ACCESS") => explained(
            "The Salesforce user may not change the org's setup",
            format!("Salesforce said: {}", a.message),
            "Setting up needs a user with \"Customize Application\" and \"Modify All Data\" (a System Administrator). Reconnect with such a user, or have an admin grant them, then use Fix on the connection's page.",
        ),
        Some(Sf::OAuth { error, description, .. }) if error == "invalid_app_access" => explained(
            "Your Salesforce user is not approved for this app",
            format!("Salesforce said {error}: {description}"),
            "In Salesforce Setup → External Client App Manager → your app → Policies, add the connecting user's profile or permission set to the app's pre-authorized users, then start again.",
        ),
        Some(Sf::OAuth { error, description, .. }) if error == "invalid_grant" => explained(
            "Salesforce did not accept the sign-in",
            format!("Salesforce said: {description}. The authorization code expired (they last a few minutes) or was already used."),
            "Start the connection again and approve it on Salesforce's page.",
        ),
        Some(Sf::OAuth { error, description, .. }) => explained(
            "Salesforce refused the sign-in",
            format!("Salesforce said {error}: {description}"),
            "Check that the Connected App's consumer key and secret in the connector's config are right and that its callback URL is this page's callback URL, then start again.",
        ),
        Some(Sf::Transport(m) | Sf::TimedOut(m)) => explained(
            "Salesforce could not be reached",
            m.clone(),
            "Check the login domain and this server's network access to Salesforce, then start again.",
        ),
        _ => explained(
            "Connecting did not finish",
            e.to_string(),
            "Fix what the message says, then start again; an interrupted setup can be completed with Fix on the connection's page.",
        ),
    }
}

fn places(app: &App) -> Vec<Place> {
    let oauth = app.config.oauth.is_some();
    let no_app = "needs a Connected App: set [oauth] client_id (and client_secret) in the connector's config".to_string();
    let mut v = vec![
        Place {
            value: "production",
            label: "Production",
            hint: if oauth {
                "login.salesforce.com".into()
            } else {
                no_app.clone()
            },
            available: oauth,
        },
        Place {
            value: "sandbox",
            label: "Sandbox",
            hint: if oauth {
                "test.salesforce.com".into()
            } else {
                no_app.clone()
            },
            available: oauth,
        },
        Place {
            value: "custom",
            label: "My Domain",
            hint: if oauth {
                "your org's login domain, e.g. acme.my.salesforce.com".into()
            } else {
                no_app
            },
            available: oauth,
        },
    ];
    if let Some(e) = &app.config.emulator {
        v.push(Place {
            value: "emulator",
            label: "Local emulator",
            hint: e.login_url.clone(),
            available: true,
        });
    }
    v
}

/// The login URL of a custom (My Domain) login host, if it is a Salesforce one.
fn custom_login_url(domain: &str) -> Option<String> {
    let d = domain
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let ok_chars = !d.is_empty()
        && d.len() <= 253
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    // Not `.force.com`: Salesforce Sites live there, and anyone can make one.
    let salesforce = [".salesforce.com", ".salesforce.mil", ".sfcrmproducts.cn"]
        .iter()
        .any(|s| d.ends_with(s));
    (ok_chars && salesforce && !d.contains("..")).then(|| format!("https://{d}"))
}

/// The OAuth app (with our callback) for a login URL: the emulator's, or the configured Connected App.
fn oauth_app(app: &App, login_url: &str) -> Option<OAuthApp> {
    let redirect_uri = app.config.oauth_callback_url();
    if let Some(e) = app
        .config
        .emulator
        .as_ref()
        .filter(|e| e.login_url.trim_end_matches('/') == login_url)
    {
        return Some(OAuthApp {
            login_url: login_url.into(),
            client_id: e.client_id.clone(),
            client_secret: Some(Secret::new(e.client_secret.clone())),
            redirect_uri,
        });
    }
    let o = app.config.oauth.as_ref()?;
    Some(OAuthApp {
        login_url: login_url.into(),
        client_id: o.client_id.clone(),
        client_secret: o.secret().ok().flatten().map(Secret::new),
        redirect_uri,
    })
}

#[derive(Deserialize, Default)]
pub struct ConnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    place: String,
    #[serde(default)]
    domain: String,
    /// "Connect it again anyway": ticked after the warning that the org
    /// already has a connection.
    #[serde(default)]
    same_org_ok: Option<String>,
    /// Set by us, never read from the form: the connection the org already
    /// has (the form then warns and offers the box above).
    #[serde(skip)]
    same_org_as: Option<String>,
}

fn connect_form(app: &App, s: &Session, f: &ConnectForm, error: Option<String>) -> Response {
    let places = places(app);
    let place = if f.place.is_empty() {
        places
            .iter()
            .find(|p| p.available)
            .map(|p| p.value.to_string())
            .unwrap_or_default()
    } else {
        f.place.clone()
    };
    render(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &ConnectPage {
            chrome: s.chrome(),
            places,
            // A first name that matches where it connects to (not
            // "production" when only the emulator is offered).
            name: match (f.name.is_empty(), place.as_str()) {
                (false, _) => f.name.clone(),
                (true, "custom") => "my-domain".into(),
                (true, p) => p.to_string(),
            },
            place,
            domain: f.domain.clone(),
            error,
            callback_url: app.config.oauth_callback_url(),
            oauth_configured: app.config.oauth.is_some(),
            same_org_as: f.same_org_as.clone(),
        },
    )
}

pub async fn connect_page(State(app): State<App>, headers: HeaderMap) -> Response {
    match session(&app, &headers).await {
        Ok(s) => connect_form(&app, &s, &ConnectForm::default(), None),
        Err(r) => r,
    }
}

pub async fn start(State(app): State<App>, posted: Posted<ConnectForm>) -> Response {
    let Posted {
        session: s,
        form: f,
    } = posted;
    let name = f.name.trim().to_string();
    if !connect::valid_name(&name) {
        return connect_form(&app, &s, &f, Some("The name must be 1 to 64 letters, digits, '-' or '_' (it becomes part of the webhook URL).".into()));
    }
    match app.store.connection(&name).await {
        Ok(_) => {
            return connect_form(&app, &s, &f, Some(format!("A connection named '{name}' exists. Pick another name, or open it and use Reconnect.")))
        }
        Err(crate::store::StoreError::NoConnection(_)) => {}
        Err(e) => return failure(&e.to_string()),
    }
    let login_url = match f.place.as_str() {
        "production" => "https://login.salesforce.com".to_string(),
        "sandbox" => "https://test.salesforce.com".to_string(),
        "custom" => match custom_login_url(&f.domain) {
            Some(u) => u,
            None => {
                return connect_form(&app, &s, &f, Some(format!("'{}' is not a Salesforce login domain. Enter your My Domain, such as acme.my.salesforce.com.", f.domain)))
            }
        },
        "emulator" => match &app.config.emulator {
            Some(e) => e.login_url.trim_end_matches('/').to_string(),
            None => return connect_form(&app, &s, &f, Some("The emulator is not enabled on this server.".into())),
        },
        _ => return connect_form(&app, &s, &f, Some("Choose where to connect: Production, Sandbox or My Domain.".into())),
    };
    begin(&app, &s, &name, &login_url, f.same_org_ok.is_some()).await
}

/// Records a flow (state, PKCE verifier) and sends the browser to Salesforce's consent page.
async fn begin(app: &App, s: &Session, name: &str, login_url: &str, same_org_ok: bool) -> Response {
    let Some(oauth) = oauth_app(app, login_url) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(s.chrome()),
            "No Connected App is configured",
            "Connecting a Production, Sandbox or My Domain org needs a Salesforce Connected App, and the connector's config names none.",
            "Create a Connected App in Salesforce (OAuth scopes: api, refresh_token; callback URL: this server's /oauth/callback), put its consumer key and secret under [oauth] in the config, and restart.",
        );
    };
    let state = crypto::new_token();
    let pkce = Pkce::generate();
    let flow = OAuthFlow {
        session_hash: s.id_hash.clone(),
        connection: name.to_string(),
        login_url: login_url.to_string(),
        client_id: oauth.client_id.clone(),
        verifier: pkce.verifier.clone(),
        created_at_ms: chrono::Utc::now().timestamp_millis(),
        same_org_ok,
    };
    if let Err(e) = app
        .store
        .put_oauth_flow(&crypto::token_hash(&state), &flow)
        .await
    {
        return failure(&e.to_string());
    }
    Redirect::to(&oauth.authorize_url(&state, &pkce, SCOPE)).into_response()
}

csrf_field!(ConnectForm);

pub async fn reconnect(State(app): State<App>, f: ConnPosted<super::form::CsrfForm>) -> Response {
    begin(&app, &f.session, &f.conn.name, &f.conn.login_url, false).await
}

#[derive(Deserialize, Default)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn start_again(s: Option<&Session>, title: &str, what: &str) -> Response {
    error_page_to(
        StatusCode::BAD_REQUEST,
        s.map(Session::chrome),
        title,
        what,
        "Nothing was connected. Start again from Integrations → Set up.",
        ("Start again", "/connect"),
    )
}

pub async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A query string that cannot be read carries no state either.
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(_) => {
            return start_again(None, "You are not logged in", "Salesforce sent you back here, but this browser has no admin session (it may have expired). Log in first.")
        }
    };
    let flow = match taken_flow(&app, &s, q.state.as_deref()).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Some(err) = q.error {
        return refused(&s, &err, &q.error_description.unwrap_or_default());
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return start_again(
            Some(&s),
            "Salesforce sent no authorization code",
            "The answer had neither a code nor an error.",
        );
    };
    let Some(oauth) = oauth_app(&app, &flow.login_url) else {
        return start_again(
            Some(&s),
            "No Connected App is configured",
            "The config no longer names the app this connection was started with.",
        );
    };
    let http = app.config.http_client(std::time::Duration::from_secs(30));
    match oauth.exchange_code(&http, &code, &flow.verifier).await {
        Ok(tokens) => match same_org(&app, &flow, &tokens).await {
            Some(other) => {
                // Nothing is kept of this sign-in: its grant is given back.
                if let Some(t) = tokens.refresh_token.as_ref() {
                    let _ = oauth.revoke(&http, t).await;
                }
                warn_same_org(&app, &s, &flow, &tokens, other)
            }
            None => start_setup(&app, &s, &flow, &oauth, tokens),
        },
        Err(e) => {
            let x = explain(&crate::Error::Salesforce(e));
            error_page(
                StatusCode::BAD_REQUEST,
                Some(s.chrome()),
                &x.title,
                &x.what,
                &x.todo,
            )
        }
    }
}

/// Another connection to the org these tokens are for, unless the admin
/// chose to connect it again (a reconnect of the same connection is not
/// another). Two connections to one org write each request to it twice.
async fn same_org(app: &App, flow: &OAuthFlow, tokens: &salesforce::TokenSet) -> Option<String> {
    if flow.same_org_ok {
        return None;
    }
    // A store that cannot answer does not stop the connection (the warning
    // is a courtesy; the setup that follows reports the store's failure).
    connect::other_connection_to(&app.store, &flow.connection, tokens)
        .await
        .ok()
        .flatten()
}

/// The Connect form again, as it was filled, saying which connection the
/// org already has, with the box to connect it again anyway.
fn warn_same_org(
    app: &App,
    s: &Session,
    flow: &OAuthFlow,
    tokens: &salesforce::TokenSet,
    other: String,
) -> Response {
    let (place, domain) = place_of(app, &flow.login_url);
    let form = ConnectForm {
        name: flow.connection.clone(),
        place,
        domain,
        same_org_as: Some(other.clone()),
        ..Default::default()
    };
    let msg = format!(
        "This Salesforce org ({}) is already connected as '{other}'. A second connection would write each request to it twice. Nothing was connected: open '{other}' and use Reconnect, or tick the box below and connect again.",
        tokens.instance_url
    );
    connect_form(app, s, &form, Some(msg))
}

/// The Connect form's choice for a login URL: (place, My Domain).
fn place_of(app: &App, login_url: &str) -> (String, String) {
    let emulator = app
        .config
        .emulator
        .as_ref()
        .map(|e| e.login_url.trim_end_matches('/'));
    match login_url {
        "https://login.salesforce.com" => ("production".into(), String::new()),
        "https://test.salesforce.com" => ("sandbox".into(), String::new()),
        u if Some(u) == emulator => ("emulator".into(), String::new()),
        u => (
            "custom".into(),
            u.trim_start_matches("https://").to_string(),
        ),
    }
}

/// The flow this session started with `state`: single use, same session,
/// under 10 minutes old; else the page that says why not.
async fn taken_flow(app: &App, s: &Session, state: Option<&str>) -> Result<OAuthFlow, Response> {
    let Some(state) = state.filter(|st| !st.is_empty()) else {
        return Err(start_again(Some(s), "This sign-in cannot be trusted", "Salesforce's answer carried no state, so it cannot be matched to a connection you started."));
    };
    let flow = match app.store.take_oauth_flow(&crypto::token_hash(state), &s.id_hash).await {
        Ok(crate::store::FlowTaken::Taken(f)) => f,
        // Not consumed: the session that started it can still finish it.
        Ok(crate::store::FlowTaken::OtherSession) => {
            return Err(start_again(Some(s), "This sign-in cannot be trusted", "It was started from another session."))
        }
        Ok(crate::store::FlowTaken::Unknown) => {
            return Err(start_again(Some(s), "This sign-in cannot be trusted", "Its state is unknown or was already used: each connection attempt can come back only once."))
        }
        Err(e) => return Err(failure(&e.to_string())),
    };
    if chrono::Utc::now().timestamp_millis() - flow.created_at_ms > FLOW_LIFETIME_MS {
        return Err(start_again(
            Some(s),
            "This sign-in took too long",
            "More than 10 minutes passed between starting and approving.",
        ));
    }
    Ok(flow)
}

/// Salesforce answered with an error instead of a code: what it means.
fn refused(s: &Session, err: &str, desc: &str) -> Response {
    if err == "access_denied" {
        return error_page_to(
            StatusCode::BAD_REQUEST,
            Some(s.chrome()),
            "Access was denied",
            "Salesforce's page was answered with Deny, so the connector got no access and nothing was connected.",
            "Start again and choose Allow. If your org's admin blocks the app, ask them to approve it (Setup → Connected Apps OAuth Usage).",
            ("Start again", "/connect"),
        );
    }
    if let Some((title, todo)) = refusal_cause(err, desc) {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(s.chrome()),
            title,
            &format!("Salesforce said {err}: {desc}. Nothing was connected."),
            todo,
        );
    }
    start_again(
        Some(s),
        "Salesforce did not grant access",
        &format!("Salesforce said {err}: {desc}"),
    )
}

/// Starts the setup job (store, provision, start syncing) and sends the
/// browser to its page, which shows the steps as they run.
fn start_setup(
    app: &App,
    s: &Session,
    flow: &OAuthFlow,
    oauth: &OAuthApp,
    tokens: salesforce::TokenSet,
) -> Response {
    let job_id = crypto::new_token();
    let job = Arc::new(Mutex::new(SetupJob {
        session_hash: s.id_hash.clone(),
        connection: flow.connection.clone(),
        steps: vec![
            StepView { label: format!("Signed in to Salesforce ({})", tokens.instance_url), state: "done" },
            StepView { label: "Store the connection, its tokens encrypted".into(), state: "running" },
            StepView { label: "Create Request__c, its fields, field access and the Requests list on Account layouts".into(), state: "waiting" },
            StepView { label: "Start syncing".into(), state: "waiting" },
        ],
        running: true,
        changes: Vec::new(),
        warnings: Vec::new(),
        webhook_url: app.config.webhook_url(&flow.connection),
        token: None,
        reconnected: false,
        error: None,
    }));
    app.setups.lock().insert(job_id.clone(), job.clone());
    let req = ConnectRequest {
        name: flow.connection.clone(),
        login_url: flow.login_url.clone(),
        client_id: oauth.client_id.clone(),
        client_secret: oauth.client_secret.clone(),
        credentials: Credentials::Tokens(tokens),
        webhook_token: None,
        signing_secrets: Vec::new(),
    };
    tokio::spawn(run_setup(app.clone(), job, req));
    Redirect::to(&format!("/setup/{job_id}")).into_response()
}

fn set_step(job: &Mutex<SetupJob>, i: usize, state: &'static str) {
    if let Some(s) = job.lock().steps.get_mut(i) {
        s.state = state;
    }
}

async fn run_setup(app: App, job: Arc<Mutex<SetupJob>>, req: ConnectRequest) {
    let name = req.name.clone();
    let j = job.clone();
    let on_step = move |step: Step| match step {
        Step::Storing => set_step(&j, 1, "running"),
        Step::Provisioning => {
            set_step(&j, 1, "done");
            set_step(&j, 2, "running");
        }
    };
    let result = connect::connect_observed(&app.store, &app.config, req, &on_step).await;
    let result = match result {
        Ok(c) => match app.store.connection(&name).await {
            Ok(conn) => {
                set_step(&job, 2, "done");
                app.add_connection(&conn);
                set_step(&job, 3, "done");
                // The connection page shows the doctor's stored result.
                let client = connect::client_for(&app.store, &conn, &app.config);
                let categories = app.store.category_fields(&name).await.unwrap_or_default();
                if let Err(e) = crate::provision::check_and_record(
                    &client,
                    &app.store,
                    &name,
                    &categories,
                    app.config.api_budget_share,
                )
                .await
                {
                    tracing::warn!(connection = %name, error = %e, "the doctor's first result was not stored");
                }
                Ok(c)
            }
            Err(e) => Err(crate::Error::from(e)),
        },
        Err(e) => Err(e),
    };
    let mut j = job.lock();
    j.running = false;
    match result {
        Ok(c) => {
            j.changes = c.provision.changes;
            j.warnings = c.provision.warnings;
            j.token = c.webhook_token;
            j.reconnected = c.reconnected;
        }
        Err(e) => {
            tracing::warn!(connection = %name, error = %e, "connecting from the admin page failed");
            for s in j.steps.iter_mut().filter(|s| s.state == "running") {
                s.state = "failed";
            }
            j.error = Some(explain(&e));
        }
    }
}

pub async fn setup_page(
    State(app): State<App>,
    Path(job_id): Path<String>,
    s: Session,
) -> Response {
    let job = app.setups.lock().get(&job_id).cloned();
    let Some(job) = job.filter(|j| j.lock().session_hash == s.id_hash) else {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(s.chrome()),
            "No such setup",
            "This setup is unknown here (the server may have restarted).",
            "Open Integrations: the connection is listed there if it was stored.",
        );
    };
    let mut j = job.lock();
    if let Some(x) = j.error.clone() {
        return error_page(StatusCode::OK, Some(s.chrome()), &x.title, &x.what, &x.todo);
    }
    let token = if j.running {
        None
    } else {
        j.token.take().map(|t| t.expose().to_string())
    };
    render(
        StatusCode::OK,
        &SetupPage {
            chrome: s.chrome(),
            connection: j.connection.clone(),
            running: j.running,
            steps: j.steps.clone(),
            changes: j.changes.clone(),
            warnings: j.warnings.clone(),
            webhook_url: j.webhook_url.clone(),
            token,
            reconnected: j.reconnected,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::custom_login_url;

    #[test]
    fn custom_domains_must_be_salesforce_hosts() {
        assert_eq!(
            custom_login_url("acme.my.salesforce.com").as_deref(),
            Some("https://acme.my.salesforce.com")
        );
        assert_eq!(
            custom_login_url(" https://acme--uat.sandbox.my.salesforce.com/ ").as_deref(),
            Some("https://acme--uat.sandbox.my.salesforce.com")
        );
        for bad in [
            "",
            "evil.com",
            "salesforce.com.evil.com",
            "acme.my.salesforce.com/x",
            "a b.salesforce.com",
            "http://x.salesforce.com",
            "x..salesforce.com",
            "attacker.my.site.force.com",
            "evil.force.com",
        ] {
            assert_eq!(custom_login_url(bad), None, "{bad}");
        }
    }
}
