//! OAuth over HTTP: the authorize page and its errors, every grant, revoke,
//! identity and userinfo.

use crate::common::*;
use serde_json::Value;
use sf_emulator::{ConnectedApp, EmulatorConfig, Seed};
use test_support::emulator::{authorization_code, password_form, start_seeded, ADMIN, PASSWORD};
use test_support::Fetch;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn token(org: &Org, form: &[(&str, &str)]) -> (u16, Value) {
    let r = org
        .http
        .post(org.url("/services/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A refresh by the seeded app `rot` (which rotates refresh tokens).
async fn refresh_rot(org: &Org, refresh_token: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", "rot"),
        ("client_secret", "s"),
    ];
    token(org, &form).await
}

#[tokio::test]
async fn authorize_page_errors_say_what_is_wrong() {
    let org = Org::start(EmulatorConfig::default()).await;
    let http = no_redirects();
    let page = |q: &str| {
        http.get(org.url(&format!("/services/oauth2/authorize?{q}")))
            .send()
    };
    let r = page("response_type=code&client_id=nope&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_client_id"));
    let r = page(
        "response_type=code&client_id=local-client&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("redirect_uri_mismatch"));
    let r = page("response_type=token&client_id=local-client&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&state=s").await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("error=unsupported_response_type"));
    let r = page("response_type=code&client_id=local-client&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&state=%3Cscript%3E").await.unwrap();
    let html = r.text().await.unwrap();
    assert!(
        html.contains("&lt;script&gt;") && !html.contains("<script>"),
        "parameters are escaped in the page"
    );
}

#[tokio::test]
async fn approve_exchange_refresh_revoke_with_basic_auth_and_pkce() {
    let org = Org::start(EmulatorConfig::default()).await;
    let http = no_redirects();
    let verifier = "a-verifier-that-is-long-enough-for-pkce-0123456789";
    let challenge = sf_emulator::auth::pkce_challenge(verifier);
    let form = [
        ("response_type", "code"),
        ("client_id", "local-client"),
        ("redirect_uri", "http://localhost:7777/cb"),
        ("state", "xyz"),
        ("scope", "api refresh_token"),
        ("code_challenge", challenge.as_str()),
        ("username", "admin@example.com"),
        ("password", "emulator"),
        ("action", "approve"),
    ];
    let r = http
        .post(org.url("/services/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with("http://localhost:7777/cb?code=") && loc.ends_with("&state=xyz"),
        "{loc}"
    );
    let code: String = form_urlencoded::parse(loc.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let r = org
        .http
        .post(org.url("/services/oauth2/token"))
        .basic_auth("local-client", Some("local-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:7777/cb"),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    assert!(
        t.get("expires_in").is_none(),
        "Salesforce sends no expires_in"
    );
    let (s, again) = token(
        &org,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "local-client"),
            ("client_secret", "local-secret"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        again.get("refresh_token").is_none(),
        "no rotation by default"
    );
    let access = again["access_token"].as_str().unwrap().to_string();
    // identity and userinfo
    let id: Value = org
        .http
        .get(t["id"].as_str().unwrap())
        .bearer_auth(&access)
        .fetch_json()
        .await;
    assert_eq!(id["username"], "admin@example.com");
    assert!(id["urls"]["rest"]
        .as_str()
        .unwrap()
        .ends_with("/services/data/v67.0/"));
    let ui: Value = org
        .http
        .get(org.url("/services/oauth2/userinfo"))
        .bearer_auth(&access)
        .fetch_json()
        .await;
    assert_eq!(ui["preferred_username"], "admin@example.com");
    assert_eq!(ui["sub"], t["id"]);
    // revoke the refresh token: its sessions end, and refresh fails
    let r = org
        .http
        .post(org.url("/services/oauth2/revoke"))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = org
        .http
        .get(org.data("/limits"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (s, e) = token(
        &org,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "local-client"),
        ],
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    let r = org
        .http
        .post(org.url("/services/oauth2/revoke"))
        .form(&[("token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn grants_and_their_errors() {
    let seed = Seed {
        connected_apps: vec![
            ConnectedApp::default_app(),
            ConnectedApp {
                client_id: "rot".into(),
                client_secret: "s".into(),
                callback_urls: vec!["https://app.example/cb".into()],
                rotate_refresh_tokens: true,
                require_secret: true,
                ..ConnectedApp::default_app()
            },
        ],
        ..Default::default()
    };
    let org = Org {
        token: String::new(),
        ..Org::start(EmulatorConfig::default()).await
    };
    let (s, t) = token(
        &org,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "local-client"),
            ("client_secret", "local-secret"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert!(t["access_token"].as_str().unwrap().starts_with("00D"));
    assert_eq!(t["issued_at"].as_str().unwrap().len(), 13);
    // Refusals, each with OAuth's error (and, for a bad code, Salesforce's words).
    type Form<'a> = &'a [(&'a str, &'a str)];
    let refused: [(Form, u16, &str, Option<&str>); 3] = [
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "local-client"),
                ("client_secret", "wrong"),
            ],
            401,
            "invalid_client",
            None,
        ),
        (
            &[("grant_type", "magic"), ("client_id", "local-client")],
            400,
            "unsupported_grant_type",
            None,
        ),
        (
            &[
                ("grant_type", "authorization_code"),
                ("code", "made-up"),
                ("client_id", "local-client"),
                ("redirect_uri", "http://127.0.0.1/cb"),
            ],
            400,
            "invalid_grant",
            Some("invalid authorization code"),
        ),
    ];
    for (form, status, error, description) in refused {
        let (s, e) = token(&org, form).await;
        assert_eq!((s, e["error"].as_str()), (status, Some(error)), "{form:?}");
        if let Some(d) = description {
            assert_eq!(e["error_description"].as_str(), Some(d), "{form:?}");
        }
    }

    // A seeded app with rotation and a fixed callback.
    let org = Org::start(EmulatorConfig {
        seed,
        ..Default::default()
    })
    .await;
    let code = authorization_code(&org.emu.base_url, "rot", "https://app.example/cb").await;
    let (s, e) = token(
        &org,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "rot"),
            ("redirect_uri", "https://app.example/cb"),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("invalid_client")),
        "this app requires its secret"
    );
    let code = authorization_code(&org.emu.base_url, "rot", "https://app.example/cb").await;
    let (s, t) = token(
        &org,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "rot"),
            ("client_secret", "s"),
            ("redirect_uri", "https://app.example/cb"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let (_, t2) = refresh_rot(&org, &rt1).await;
    let rt2 = t2["refresh_token"].as_str().expect("rotated").to_string();
    assert_ne!(rt1, rt2);
    let (s, _) = refresh_rot(&org, &rt1).await;
    assert_eq!(s, 400, "the old refresh token is spent");
}

#[tokio::test]
async fn reset_empties_the_org_but_keeps_sessions() {
    let org = Org::start(EmulatorConfig::default()).await;
    org.custom_object("Req__c", &[("Key__c", &ext_field(true))])
        .await;
    org.post("/sobjects/Account", serde_json::json!({"Name": "A"}))
        .await;
    org.admin("reset", serde_json::json!({})).await;
    let (s, v) = org.query("SELECT COUNT() FROM Account").await;
    assert_eq!(
        (s, v["totalSize"].as_u64()),
        (200, Some(0)),
        "the session still works after a reset"
    );
    let (s, _) = org.get("/sobjects/Req__c/describe").await;
    assert_eq!(s, 404, "custom objects are gone");
}

/// OAuth policies as orgs have them in 2026 (salesforce-api.md §9.8): an
/// admin-approved app refuses users of other profiles at the authorize step
/// and at the token endpoint, and an org that blocks the username-password
/// flow answers it exactly like wrong credentials.
#[tokio::test]
async fn admin_approved_apps_and_a_blocked_password_flow() {
    let seed: Seed = serde_json::from_value(serde_json::json!({
        "users": [
            {"username": "admin@example.com", "password": "emulator"},
            {"username": "rep@example.com", "password": "emulator", "profile": "Standard User"}
        ],
        "connected_apps": [{
            "client_id": "eca", "client_secret": "s",
            "admin_approved": true, "preauthorized_profiles": ["System Administrator"]
        }, {"client_id": "local-client", "client_secret": "local-secret"}]
    }))
    .unwrap();
    let org = Org::start(EmulatorConfig {
        seed,
        ..Default::default()
    })
    .await;
    let http = no_redirects();
    let approve = |user: &'static str| {
        http.post(org.url("/services/oauth2/authorize"))
            .form(&[
                ("response_type", "code"),
                ("client_id", "eca"),
                ("redirect_uri", "http://localhost:7777/cb"),
                ("state", "s1"),
                ("username", user),
                ("password", "emulator"),
                ("action", "approve"),
            ])
            .send()
    };
    let r = approve("rep@example.com").await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.contains("error=OAUTH_APP_ACCESS_DENIED")
            && loc.contains("user+is+not+admin+approved+to+access+this+app")
            && loc.ends_with("state=s1"),
        "{loc}"
    );
    let r = approve("admin@example.com").await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("code="));
    let grant = |client: &'static str, secret: &'static str, user: &'static str| {
        let org = &org;
        async move {
            token(
                org,
                &[
                    ("grant_type", "password"),
                    ("client_id", client),
                    ("client_secret", secret),
                    ("username", user),
                    ("password", "emulator"),
                ],
            )
            .await
        }
    };
    let (s, body) = grant("eca", "s", "rep@example.com").await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_app_access")),
        "{body}"
    );
    assert_eq!(grant("eca", "s", "admin@example.com").await.0, 200);
    assert_eq!(
        grant("local-client", "local-secret", "rep@example.com")
            .await
            .0,
        200,
        "other apps are open"
    );

    let blocked = start_seeded(serde_json::json!({"org": {"password_flow": false}})).await;
    let r = org
        .http
        .post(format!("{}/services/oauth2/token", blocked.base_url))
        .form(&password_form(ADMIN, PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "authentication failure");
}
