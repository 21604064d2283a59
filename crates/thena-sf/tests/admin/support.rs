//! What the admin page's tests share: an emulator, the connector serving its
//! admin page (the emulator offered as a place to connect), and a client for
//! the emulator's org as its admin.

use std::time::Duration;

use salesforce::Client;
use serde_json::{json, Value};
use sf_emulator::Seed;
use test_support::app::{quick_settings, LocalConnector};
use thena_sf::app::App;
use thena_sf::config::{Config, EmulatorLogin};
use thena_sf::store::review::Counts;
use thena_sf::store::Store;
use thena_sf::sync::Settings;

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub struct Site {
    pub emu: sf_emulator::Running,
    pub app: App,
    /// The connector's store, configuration and folder (`s.store`, `s.dir`).
    pub c: LocalConnector,
    /// The emulator's org, as admin@example.com (to arrange and check things).
    pub sf: Client,
}

test_support::reads_as_connector!(Site);

pub fn seed() -> Seed {
    serde_json::from_value(json!({
        "users": [
            {"username": "admin@example.com", "password": "emulator"},
            {"username": "rep@example.com", "password": "emulator", "last_name": "Rep", "profile": "Standard User"}
        ],
        "accounts": [{"Name": "Acme Corp", "Website": "acme.io"}],
        "contacts": [
            {"FirstName": "Harsh", "LastName": "Vardhan", "Email": "harsh@acme.io", "AccountName": "Acme Corp"}
        ]
    }))
    .unwrap()
}

#[derive(Default)]
pub struct Options {
    pub public_url: String,
    /// Whether a Connected App for real orgs is configured.
    pub oauth: bool,
}

pub async fn site(opts: Options) -> Site {
    let emu = test_support::emulator::start_with(seed()).await;
    let mut c = LocalConnector::sqlite().await;
    c.config = Config {
        public_url: opts.public_url,
        admin_password_hash: Some(thena_sf::web::hash_password(ADMIN_PASSWORD).unwrap()),
        emulator: Some(EmulatorLogin {
            login_url: emu.base_url.clone(),
            client_id: test_support::emulator::CLIENT_ID.into(),
            client_secret: test_support::emulator::CLIENT_SECRET.into(),
        }),
        oauth: opts.oauth.then(|| thena_sf::config::OAuthClient {
            client_id: "real-app".into(),
            client_secret: Some("real-secret".into()),
            client_secret_env: None,
        }),
        ..c.config
    };
    let settings = Settings {
        pause_recheck: Settings::default().pause_recheck,
        ..quick_settings(100)
    };
    let app = c.start(settings).await;
    let sf = test_support::emulator::org_client(&emu.base_url).await;
    Site { emu, app, c, sf }
}

/// A Thena webhook body for `id`, from `email` at the workspace `team`.
pub fn webhook(id: &str, name: &str, email: &str, team: &str, status: &str) -> Value {
    let created = chrono::Utc::now().timestamp_millis() + 1;
    json!({
        "action": "UPDATE",
        "request": {"requestId": id, "createdAt": created, "updatedAt": created + 1, "status": status,
                    "requestor": {"id": "U1", "name": name, "email": email}, "customer": {"teamName": team}},
        "AI_requestTitle": format!("Request {id}")
    })
}

/// Makes `Status__c` a restricted picklist with only "Open" (or opens it up again):
/// requests in other states then fail for good, as a customer's admin could cause.
pub async fn restrict_status(sf: &Client, restricted: bool) {
    let values = if restricted {
        vec!["Open".to_string()]
    } else {
        vec!["Open".to_string(), "In Progress".to_string()]
    };
    let field = salesforce::metadata::custom_field(
        "Request__c",
        "Status__c",
        "Status",
        &salesforce::metadata::FieldKind::Picklist { values, restricted },
        false,
        false,
    );
    sf.metadata_save(salesforce::metadata::Save::Upsert, &[field])
        .await
        .unwrap();
}

/// Posts a Thena webhook for the connection `acme` of the connector at `base`,
/// with `token`; the HTTP status.
pub async fn post(base: &str, token: &str, body: &Value) -> u16 {
    let http = reqwest::Client::new();
    let r = test_support::post_webhook(&http, base, "acme", token, body).await;
    r.status().as_u16()
}

/// Waits (30 s at most) until `acme`'s counts satisfy `ok`; returns them.
pub async fn wait_for(store: &Store, ok: impl Fn(&Counts) -> bool) -> Counts {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = store.counts("acme").await.unwrap();
        if ok(&c) {
            return c;
        }
        assert!(std::time::Instant::now() < deadline, "{c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
