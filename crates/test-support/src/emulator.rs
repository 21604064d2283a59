//! The emulator as tests use it: started on port 0, its built-in Connected
//! App (`local-client`) and admin user, and a Salesforce client logged in as
//! that admin by the password grant.

use salesforce::{Client, ClientConfig, OAuthApp, Pkce, Secret, TokenSet};
use serde_json::Value;
use sf_emulator::{EmulatorConfig, Running, Seed};

/// The emulator's built-in Connected App.
pub const CLIENT_ID: &str = "local-client";
pub const CLIENT_SECRET: &str = "local-secret";
/// The emulator's built-in System Administrator and its password.
pub const ADMIN: &str = "admin@example.com";
pub const PASSWORD: &str = "emulator";

/// An emulator on a free port of 127.0.0.1.
pub async fn start(config: EmulatorConfig) -> Running {
    sf_emulator::start("127.0.0.1:0", config)
        .await
        .expect("the emulator starts")
}

/// An emulator on a free port with `seed` (the seed file's JSON).
pub async fn start_seeded(seed: Value) -> Running {
    start_with(seed_of(seed)).await
}

/// An emulator on a free port with `seed`.
pub async fn start_with(seed: Seed) -> Running {
    start(EmulatorConfig {
        seed,
        ..Default::default()
    })
    .await
}

/// A seed from its JSON, as `--seed` reads it.
pub fn seed_of(seed: Value) -> Seed {
    serde_json::from_value(seed).expect("a valid seed")
}

/// The form of a password grant by the built-in app for `username`.
pub fn password_form<'a>(username: &'a str, password: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("grant_type", "password"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("username", username),
        ("password", password),
    ]
}

/// The built-in app of the emulator at `base`, as the client's OAuth app.
pub fn oauth_app(base: &str) -> OAuthApp {
    OAuthApp {
        login_url: base.into(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(Secret::new(CLIENT_SECRET)),
        redirect_uri: String::new(),
    }
}

/// A client for the org at `base`, logged in as its admin.
pub async fn org_client(base: &str) -> Client {
    org_client_as(base, ADMIN, PASSWORD, ClientConfig::default()).await
}

/// A client for the org at `base`, logged in as `username`, with `config`.
pub async fn org_client_as(
    base: &str,
    username: &str,
    password: &str,
    config: ClientConfig,
) -> Client {
    let app = oauth_app(base);
    let tokens = app
        .password(&reqwest::Client::new(), username, &Secret::new(password))
        .await
        .expect("the emulator's password grant");
    Client::new(tokens, Some(app), None, config)
}

/// `connect <name>` to the emulator at `base` as its admin: the arguments of
/// the connector's command line, for a test to add to.
pub fn connect_args(name: &str, base: &str) -> Vec<String> {
    [
        "connect",
        name,
        "--login-url",
        base,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--username",
        ADMIN,
        "--password",
        PASSWORD,
    ]
    .map(String::from)
    .to_vec()
}

/// The web flow's authorization code for `client_id`, approved by the admin
/// at the emulator's login page (the form a browser would post).
pub async fn authorization_code(base: &str, client_id: &str, redirect_uri: &str) -> String {
    approved_code(base, client_id, redirect_uri, None).await
}

/// [`authorization_code`] for a flow with PKCE: `challenge` is the S256
/// challenge of the verifier the code is later exchanged with.
pub async fn authorization_code_pkce(
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    challenge: &str,
) -> String {
    approved_code(base, client_id, redirect_uri, Some(challenge)).await
}

/// Tokens for `app` by the web flow with PKCE, approved by the admin: the
/// grant that gives a refresh token (the password grant does not).
pub async fn web_flow_tokens(app: &OAuthApp) -> TokenSet {
    let pkce = Pkce::generate();
    let code = authorization_code_pkce(
        &app.login_url,
        &app.client_id,
        &app.redirect_uri,
        &pkce.challenge,
    )
    .await;
    app.exchange_code(&reqwest::Client::new(), &code, &pkce.verifier)
        .await
        .expect("the emulator exchanges its own code")
}

async fn approved_code(
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    challenge: Option<&str>,
) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let mut form = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "api refresh_token"),
        ("username", ADMIN),
        ("password", PASSWORD),
        ("action", "approve"),
    ];
    if let Some(c) = challenge {
        form.extend([("code_challenge", c), ("code_challenge_method", "S256")]);
    }
    let r = http
        .post(format!("{base}/services/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .expect("the authorize page answers");
    let location = r.headers()["location"].to_str().expect("a redirect");
    reqwest::Url::parse(location)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code in the redirect")
        .1
        .into_owned()
}

/// A Metadata API SOAP request: `op_xml` (one operation) in an envelope
/// with `session` as its session header.
pub fn metadata_envelope(session: &str, op_xml: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Header xmlns="http://soap.sforce.com/2006/04/metadata"><SessionHeader><sessionId>{session}</sessionId></SessionHeader></soapenv:Header><soapenv:Body xmlns="http://soap.sforce.com/2006/04/metadata">{op_xml}</soapenv:Body></soapenv:Envelope>"#
    )
}

/// Adds a required Text field `full_name` (`Object.Field__c`) through the
/// Metadata API, as an admin might: a field the connector cannot fill.
pub async fn add_required_field(client: &Client, full_name: &str) {
    let label = full_name
        .rsplit('.')
        .next()
        .unwrap_or(full_name)
        .trim_end_matches("__c");
    let saved = client
        .metadata_save(
            salesforce::metadata::Save::Create,
            &[salesforce::metadata::Component {
                kind: "CustomField",
                full_name: full_name.into(),
                body: format!("<label>{label}</label><length>20</length><required>true</required><type>Text</type>"),
            }],
        )
        .await
        .expect("the Metadata API answers");
    assert!(saved[0].success, "{saved:?}");
}
