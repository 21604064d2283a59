//! One token refresh at a time per connection, across processes sharing a
//! store: two replicas (two stores on one database) whose sessions expire at
//! once, in an org that rotates refresh tokens (where presenting a spent
//! refresh token revokes the whole family). Both carry on; Salesforce saw one
//! refresh; the stored refresh token still works. Run on SQLite and PostgreSQL.

use salesforce::{OAuthApp, Secret};
use serde_json::json;
use test_support::app::LocalConnector;
use thena_sf::config::Config;
use thena_sf::connect::{self, ConnectRequest, Credentials};
use thena_sf::store::Store;

async fn race(a: Store, b: Store) {
    let seed = serde_json::from_value(json!({
        "users": [{"username": "admin@example.com", "password": "emulator"}],
        "connected_apps": [{"client_id": "rot-app", "client_secret": "rot-secret", "rotate_refresh_tokens": true}],
        "accounts": [{"Name": "Acme"}]
    }))
    .unwrap();
    let emu = test_support::emulator::start_with(seed).await;
    // The web flow, answered over HTTP, for a first refresh token.
    let app = OAuthApp {
        login_url: emu.base_url.clone(),
        client_id: "rot-app".into(),
        client_secret: Some(Secret::new("rot-secret")),
        redirect_uri: "http://127.0.0.1/cb".into(),
    };
    let tokens = test_support::emulator::web_flow_tokens(&app).await;
    assert!(tokens.refresh_token.is_some());
    let config = Config::default();
    connect::connect(
        &a,
        &config,
        ConnectRequest {
            name: "acme".into(),
            login_url: emu.base_url.clone(),
            client_id: "rot-app".into(),
            client_secret: Some(Secret::new("rot-secret")),
            credentials: Credentials::Tokens(tokens),
            webhook_token: None,
            signing_secrets: Vec::new(),
        },
    )
    .await
    .unwrap();

    for round in 0..3 {
        let ca = connect::client_for(&a, &a.connection("acme").await.unwrap(), &config);
        let cb = connect::client_for(&b, &b.connection("acme").await.unwrap(), &config);
        let token_calls = || {
            emu.emulator
                .stats
                .lock()
                .get("oauth.token")
                .copied()
                .unwrap_or(0)
        };
        let before = token_calls();
        emu.emulator.auth.lock().expire_all();
        let (x, y) = tokio::join!(
            ca.query("SELECT Id FROM Account"),
            cb.query("SELECT Id FROM Account")
        );
        x.unwrap_or_else(|e| panic!("round {round}: replica A: {e}"));
        y.unwrap_or_else(|e| panic!("round {round}: replica B: {e}"));
        assert_eq!(
            token_calls() - before,
            1,
            "round {round}: one refresh for both replicas"
        );
    }
    // The stored refresh token is the live one.
    let stored = a.connection("acme").await.unwrap();
    let rt = stored.tokens.refresh_token.unwrap();
    app.refresh(&reqwest::Client::new(), &rt)
        .await
        .expect("the stored refresh token still works");
    emu.shutdown().await.unwrap();
}

/// Two replicas' stores on one fresh SQLite file or PostgreSQL database.
async fn race_on(postgres: bool) {
    let c = LocalConnector::open(postgres).await;
    race(c.store.clone(), c.another_replica().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_at_a_time_across_replicas_sqlite() {
    race_on(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_at_a_time_across_replicas_postgres() {
    race_on(true).await;
}
