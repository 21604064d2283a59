//! Connecting an org: from OAuth tokens to a stored connection (secrets
//! sealed), provisioned, with a webhook URL and token for Thena.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use salesforce::{Client, ClientConfig, OAuthApp, Secret, TokenSet, TokenSink};

use crate::config::Config;
use crate::crypto;
use crate::provision::{self, Report};
use crate::store::{ConnStatus, Connection, Store};
use crate::Error;

/// How the first tokens are obtained.
pub enum Credentials {
    /// The password grant: development orgs and the emulator.
    Password { username: String, password: Secret },
    /// A refresh token obtained elsewhere.
    RefreshToken(Secret),
    /// Tokens already exchanged (the web page's OAuth callback).
    Tokens(TokenSet),
}

pub struct ConnectRequest {
    pub name: String,
    pub login_url: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub credentials: Credentials,
    /// Use this webhook token instead of generating one.
    pub webhook_token: Option<String>,
    /// Standard Webhooks signing secrets (`whsec_...`); several for rotation. Empty: none.
    pub signing_secrets: Vec<String>,
}

impl ConnectRequest {
    /// Connects to an emulator as its default admin through its default connected
    /// app (the demo, tests and benchmarks).
    #[cfg(feature = "demo")]
    pub fn emulator_admin(
        name: &str,
        login_url: &str,
        webhook_token: Option<String>,
    ) -> ConnectRequest {
        let app = sf_emulator::ConnectedApp::default_app();
        ConnectRequest {
            name: name.into(),
            login_url: login_url.into(),
            client_id: app.client_id,
            client_secret: Some(Secret::new(app.client_secret)),
            credentials: Credentials::Password {
                username: sf_emulator::DEFAULT_USERNAME.into(),
                password: Secret::new(sf_emulator::DEFAULT_PASSWORD),
            },
            webhook_token,
            signing_secrets: Vec::new(),
        }
    }
}

/// What a successful connect hands back: what to paste into Thena.
#[derive(Debug)]
pub struct Connected {
    pub name: String,
    pub webhook_url: String,
    /// The new webhook token; `None` on a reconnect that kept the old one.
    pub webhook_token: Option<Secret>,
    /// Whether this replaced the credentials of an existing connection.
    pub reconnected: bool,
    pub instance_url: String,
    pub connected_at: DateTime<Utc>,
    pub provision: Report,
}

/// Stores refreshed tokens of one connection, and makes sure only one client
/// (in any process sharing the store) refreshes them at a time.
pub struct StoreSink {
    pub store: Store,
    pub connection: String,
    /// Names this client's hold on the refresh lock (unique per client: the replica and a random part).
    pub holder: String,
}

/// How long a refresh may hold the lock before others assume it died.
const REFRESH_LOCK_MS: i64 = 30_000;

impl TokenSink for StoreSink {
    fn persist<'a>(
        &'a self,
        tokens: &'a TokenSet,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.store
                .save_tokens(&self.connection, tokens)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn begin_refresh<'a>(
        &'a self,
        held: &'a TokenSet,
    ) -> Pin<Box<dyn Future<Output = Result<Option<TokenSet>, String>> + Send + 'a>> {
        Box::pin(async move {
            let deadline = std::time::Instant::now()
                + std::time::Duration::from_millis(REFRESH_LOCK_MS as u64 + 5_000);
            loop {
                let claimed = self
                    .store
                    .claim_refresh(&self.connection, &self.holder, REFRESH_LOCK_MS)
                    .await
                    .map_err(|e| e.to_string())?;
                // Someone refreshed since these tokens were issued: take theirs. (Checked
                // after claiming, so that a refresh finished in between is not missed.)
                let (_, issued) = self
                    .store
                    .connection_state(&self.connection)
                    .await
                    .map_err(|e| e.to_string())?;
                if issued > held.issued_at_ms as i64 {
                    if claimed {
                        self.end_refresh().await;
                    }
                    let c = self
                        .store
                        .connection(&self.connection)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok(Some(c.tokens));
                }
                if claimed {
                    return Ok(None);
                }
                if std::time::Instant::now() > deadline {
                    return Err("another process holds the refresh lock and never finished".into());
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    }

    fn end_refresh(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Err(e) = self
                .store
                .release_refresh(&self.connection, &self.holder)
                .await
            {
                tracing::warn!(connection = %self.connection, error = %e, "cannot release the refresh lock");
            }
        })
    }
}

/// Whether a connection name is usable in URLs and the store.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A client for a stored connection that stores its refreshed tokens.
pub fn client_for(store: &Store, conn: &Connection, config: &Config) -> Client {
    let app = conn.oauth_app("");
    let sink: Arc<dyn TokenSink> = Arc::new(StoreSink {
        store: store.clone(),
        connection: conn.name.clone(),
        holder: format!("{}-{:08x}", store.replica(), rand::random::<u32>()),
    });
    let client = Client::new(
        conn.tokens.clone(),
        Some(app),
        Some(sink),
        ClientConfig {
            api_version: config.api_version.clone(),
            timeout: std::time::Duration::from_secs(config.api_timeout_secs.max(1)),
            transport: config.transport.clone(),
            ..Default::default()
        },
    );
    if let Some((user, password)) = &conn.password_login {
        client.set_password_login(user.clone(), password.clone());
    }
    client
}

/// The connected user's id, from the identity URL of the tokens.
pub fn user_id(tokens: &TokenSet) -> Result<String, Error> {
    tokens.org_and_user().map(|(_, u)| u).ok_or_else(|| {
        Error::Invalid(format!(
            "the token response's identity URL {} names no user",
            tokens.id_url
        ))
    })
}

/// A step of [`connect_observed`], for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Tokens obtained; the connection (secrets sealed) is being stored.
    Storing,
    /// Stored; the org is being provisioned.
    Provisioning,
}

/// Obtains tokens, stores the connection, provisions the org.
pub async fn connect(
    store: &Store,
    config: &Config,
    req: ConnectRequest,
) -> Result<Connected, Error> {
    connect_observed(store, config, req, &|_| {}).await
}

/// [`connect`], telling `on_step` as it goes.
pub async fn connect_observed(
    store: &Store,
    config: &Config,
    req: ConnectRequest,
    on_step: &(dyn Fn(Step) + Send + Sync),
) -> Result<Connected, Error> {
    connect_inner(store, config, req, on_step, true).await
}

/// [`connect`] for the command line: a new connection to an org that
/// already has one is refused (nothing stored) unless `same_org_ok`: two
/// connections to one org write each request to it twice. The admin page
/// asks the same before it connects (`web::flow`).
pub async fn connect_new(
    store: &Store,
    config: &Config,
    req: ConnectRequest,
    same_org_ok: bool,
) -> Result<Connected, Error> {
    connect_inner(store, config, req, &|_| {}, same_org_ok).await
}

/// Another connection to the org these tokens are for, when connecting
/// `name` would add one (None for a reconnect of `name`).
pub async fn other_connection_to(
    store: &Store,
    name: &str,
    tokens: &TokenSet,
) -> Result<Option<String>, crate::store::StoreError> {
    let Some((org, _)) = tokens.org_and_user() else {
        return Ok(None);
    };
    let conns = store.connections().await?;
    if conns.iter().any(|c| c.name == name) {
        return Ok(None);
    }
    Ok(conns
        .into_iter()
        .find(|c| c.tokens.org_and_user().is_some_and(|(o, _)| o == org))
        .map(|c| c.name))
}

/// The connection already named so (a reconnect), or none; refuses a new
/// name for an org another connection already writes to, unless told.
async fn existing_for(
    store: &Store,
    name: &str,
    tokens: &TokenSet,
    same_org_ok: bool,
) -> Result<Option<Connection>, Error> {
    let existing = match store.connection(name).await {
        Ok(c) => Some(c),
        Err(crate::store::StoreError::NoConnection(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if existing.is_none() && !same_org_ok {
        if let Some(other) = other_connection_to(store, name, tokens).await? {
            return Err(Error::Invalid(format!(
                "this Salesforce org ({}) is already connected as '{other}': a second connection would write each request to it twice. Reconnect '{other}' instead, or pass --same-org-ok to connect it again anyway",
                tokens.instance_url
            )));
        }
    }
    Ok(existing)
}

/// The webhook token to show (a new one, or none on a reconnect that keeps
/// its token) and the hash to store.
fn webhook_token(given: Option<String>, existing: &Option<Connection>) -> (Option<String>, String) {
    let new_token = match (given, existing) {
        (Some(t), _) => Some(t),
        (None, Some(_)) => None,
        (None, None) => Some(crypto::new_token()),
    };
    let hash = match (&new_token, existing) {
        (Some(t), _) => crypto::token_hash(t),
        (None, Some(e)) => e.webhook_token_hash.clone(),
        (None, None) => unreachable!("a new connection always gets a token"),
    };
    (new_token, hash)
}

async fn connect_inner(
    store: &Store,
    config: &Config,
    req: ConnectRequest,
    on_step: &(dyn Fn(Step) + Send + Sync),
    same_org_ok: bool,
) -> Result<Connected, Error> {
    let login_url = check_request(&req)?;
    let app = OAuthApp {
        login_url: login_url.clone(),
        client_id: req.client_id.clone(),
        client_secret: req.client_secret.clone(),
        redirect_uri: String::new(),
    };
    let (tokens, password_login) = log_in(config, &app, req.credentials).await?;
    let user = user_id(&tokens)?;
    on_step(Step::Storing);
    // Connecting an existing name is a reconnect: the forward-looking cut-off,
    // the webhook token (unless a new one is given) and the signing secrets stay.
    let existing = existing_for(store, &req.name, &tokens, same_org_ok).await?;
    let (new_token, webhook_token_hash) = webhook_token(req.webhook_token, &existing);
    let signing_secret = if req.signing_secrets.is_empty() {
        existing.as_ref().and_then(|e| e.signing_secret.clone())
    } else {
        Some(Secret::new(req.signing_secrets.join(" ")))
    };
    let conn = Connection {
        name: req.name.clone(),
        login_url,
        client_id: req.client_id,
        client_secret: req.client_secret,
        tokens,
        webhook_token_hash,
        signing_secret,
        password_login,
        connected_at: existing.as_ref().map_or_else(Utc::now, |e| e.connected_at),
        status: ConnStatus::Healthy,
        status_reason: None,
        provisioned_at: None,
        thena_app: None,
        previous_token: None,
    };
    store.put_connection(&conn).await?;
    on_step(Step::Provisioning);
    let report = set_up(store, config, &conn, &user).await?;
    tracing::info!(
        connection = %conn.name,
        instance = %conn.tokens.instance_url,
        reconnected = existing.is_some(),
        changes = report.changes.len(),
        "connected"
    );
    Ok(Connected {
        webhook_url: config.webhook_url(&conn.name),
        webhook_token: new_token.map(Secret::new),
        reconnected: existing.is_some(),
        instance_url: conn.tokens.instance_url.clone(),
        connected_at: conn.connected_at,
        provision: report,
        name: conn.name,
    })
}

/// Refuses a bad name, a guessable webhook token or a plain-http login URL
/// (off this machine); the login URL without its trailing slash.
fn check_request(req: &ConnectRequest) -> Result<String, Error> {
    if !valid_name(&req.name) {
        return Err(Error::Invalid(format!(
            "connection name '{}' must be 1 to 64 letters, digits, '-' or '_'",
            req.name
        )));
    }
    if let Some(t) = &req.webhook_token {
        check_webhook_token(t)?;
    }
    let login_url = req.login_url.trim_end_matches('/').to_string();
    if !(login_url.starts_with("https://")
        || login_url.starts_with("http://127.")
        || login_url.starts_with("http://localhost"))
    {
        return Err(Error::Invalid(format!(
            "login URL {login_url} must be https (plain http only on this machine)"
        )));
    }
    Ok(login_url)
}

/// Tokens from the credentials given, and the password login to keep (a
/// password-grant session renews itself by logging in again).
async fn log_in(
    config: &Config,
    app: &OAuthApp,
    credentials: Credentials,
) -> Result<(TokenSet, Option<(String, Secret)>), Error> {
    let http = config.http_client(std::time::Duration::from_secs(30));
    Ok(match credentials {
        Credentials::Password { username, password } => {
            let t = app
                .password(&http, &username, &password)
                .await
                .map_err(|e| explain_login(e, true))?;
            (t, Some((username, password)))
        }
        Credentials::RefreshToken(rt) => {
            let mut t = app
                .refresh(&http, &rt)
                .await
                .map_err(|e| explain_login(e, false))?;
            if t.refresh_token.is_none() {
                t.refresh_token = Some(rt);
            }
            (t, None)
        }
        Credentials::Tokens(t) => (t, None),
    })
}

/// Provisions a stored connection's org and marks it provisioned.
async fn set_up(
    store: &Store,
    config: &Config,
    conn: &Connection,
    user: &str,
) -> Result<provision::Report, Error> {
    let client = client_for(store, conn, config);
    let categories = store.category_fields(&conn.name).await?;
    let report = provision_with_retries(&client, &categories, user).await?;
    store.mark_provisioned(&conn.name).await?;
    Ok(report)
}

/// The shortest webhook token accepted from a person (config, flag or
/// variable); generated ones are longer.
pub const MIN_WEBHOOK_TOKEN: usize = 32;

/// Refuses a webhook token anyone could guess: empty, short, or blank.
pub fn check_webhook_token(t: &str) -> Result<(), Error> {
    let n = t.trim().chars().count();
    if n < MIN_WEBHOOK_TOKEN {
        return Err(Error::Invalid(format!(
            "the webhook token has {n} characters; it needs at least {MIN_WEBHOOK_TOKEN} (leave it out to get a generated one)"
        )));
    }
    Ok(())
}

/// Turns the token endpoint's refusals that have a known cause in 2026's
/// orgs into what to do (salesforce-api.md §9.8; docs/external-client-app.md).
fn explain_login(e: salesforce::Error, password: bool) -> Error {
    let salesforce::Error::OAuth {
        error, description, ..
    } = &e
    else {
        return e.into();
    };
    match error.as_str() {
        "invalid_grant" if password && description == "authentication failure" => Error::Invalid(format!(
            "Salesforce refused the username and password ({error}: {description}). It answers this both for wrong \
             credentials and when the org blocks the OAuth username-password flow, which orgs created since Summer '23 do \
             by default and External Client Apps always do. Check the username and password (append the security token \
             if the org asks for one), or connect without a password: from the admin page (Integrations → Set up), or \
             with --refresh-token. See docs/external-client-app.md."
        )),
        "invalid_app_access" => Error::Invalid(format!(
            "Salesforce says this user is not approved for the app ({error}: {description}). In Setup → External \
             Client App Manager → your app → Policies, set Permitted Users to \"Admin approved users are pre-authorized\" \
             and add the integration user's profile or permission set (for a Connected App: Setup → Connected Apps → \
             Manage → Edit Policies, then Profiles); then connect again. See docs/external-client-app.md."
        )),
        _ => e.into(),
    }
}

/// Provisions, retrying passing faults (a 503 while connecting should not fail the connect).
pub async fn provision_with_retries(
    client: &Client,
    categories: &[(String, String)],
    user: &str,
) -> Result<provision::Report, Error> {
    let mut attempt = 0;
    loop {
        match provision::provision(client, categories, user).await {
            Err(provision::ProvisionError::Salesforce(e))
                if e.action() == salesforce::Action::Retry && attempt < 8 =>
            {
                tokio::time::sleep(salesforce::error::backoff(
                    attempt,
                    std::time::Duration::from_millis(200),
                    std::time::Duration::from_secs(5),
                ))
                .await;
                attempt += 1;
            }
            other => return Ok(other?),
        }
    }
}

/// Connects the config file's declared connections that the store does not have yet.
pub async fn connect_declared(store: &Store, config: &Config) -> Result<Vec<Connected>, Error> {
    let mut done = Vec::new();
    for d in &config.connections {
        match store.connection(&d.name).await {
            Ok(_) => continue,
            Err(crate::store::StoreError::NoConnection(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let cfg_err = |e: crate::config::ConfigError| Error::Invalid(e.to_string());
        let req = ConnectRequest {
            name: d.name.clone(),
            login_url: d.login_url.clone(),
            client_id: d.client_id.clone(),
            client_secret: d.client_secret().map_err(cfg_err)?.map(Secret::new),
            credentials: Credentials::RefreshToken(Secret::new(
                d.refresh_token().map_err(cfg_err)?,
            )),
            webhook_token: d.webhook_token().map_err(cfg_err)?,
            signing_secrets: Vec::new(),
        };
        done.push(connect(store, config, req).await?);
    }
    Ok(done)
}
