//! The client against the emulator over real HTTP.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use salesforce::metadata::{self, FieldKind, Save};
use salesforce::{
    Action, Client, ClientConfig, Error, LoginEnv, OAuthApp, Pkce, Secret, TokenSet, TokenSink,
};
use serde_json::{json, Value};
use sf_emulator::{ConnectedApp, EmulatorConfig, Seed};
use test_support::Fetch;

fn app(base: &str) -> OAuthApp {
    OAuthApp {
        login_url: LoginEnv::Custom(base.to_string()).url(),
        redirect_uri: "http://127.0.0.1:9/callback".into(),
        ..test_support::emulator::oauth_app(base)
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<TokenSet>>);

impl TokenSink for Recorder {
    fn persist<'a>(
        &'a self,
        tokens: &'a TokenSet,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.0.lock().push(tokens.clone());
            Ok(())
        })
    }
}

/// Logs in through the authorize page (as a browser would) and exchanges the code.
async fn web_login(app: &OAuthApp) -> TokenSet {
    let pkce = Pkce::generate();
    let url = app.authorize_url("st", &pkce, "api refresh_token");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(&url).fetch_text().await;
    let mut form: Vec<(String, String)> = Vec::new();
    for part in page.split("<input type=\"hidden\" name=\"").skip(1) {
        let (name, rest) = part.split_once("\" value=\"").unwrap();
        let value = rest
            .split_once('"')
            .unwrap()
            .0
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
        form.push((name.into(), value));
    }
    form.extend([
        ("username".into(), test_support::emulator::ADMIN.into()),
        ("password".into(), test_support::emulator::PASSWORD.into()),
        ("action".into(), "approve".into()),
    ]);
    let r = http
        .post(format!("{}/services/oauth2/authorize", app.login_url))
        .form(&form)
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let code: String = form_urlencoded::parse(loc.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    app.exchange_code(&reqwest::Client::new(), &code, &pkce.verifier)
        .await
        .unwrap()
}

#[tokio::test]
async fn connect_by_password_and_query_with_paging() {
    let emu = test_support::emulator::start(Default::default()).await;
    let client = test_support::emulator::org_client(&emu.base_url).await;
    assert!(client.tokens().org_and_user().unwrap().0.starts_with("00D"));
    let records: Vec<Value> = (0..450).map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("P{i}"), "Email": format!("p{i}@x.io")})).collect();
    let results = client.create_many(&records, true).await.unwrap();
    assert_eq!(results.len(), 450);
    assert!(results.iter().all(|r| r.success && r.id.is_some()));
    assert_eq!(client.calls(), 3, "450 records in 3 calls of at most 200");
    let all = client.query("SELECT Id, Email FROM Contact").await.unwrap();
    assert_eq!(all.len(), 450);
    assert_eq!(
        client.count("SELECT COUNT() FROM Contact").await.unwrap(),
        450
    );
    let usage = client.api_usage().unwrap();
    assert_eq!((usage.used, usage.max), (client.calls(), 100_000));
    let err = client.query("SELECT Nope FROM Contact").await.unwrap_err();
    assert_eq!(
        (err.code(), err.action()),
        (Some("INVALID_FIELD"), Action::FixSchema)
    );
    let limits = client.limits().await.unwrap();
    assert!(limits["DailyApiRequests"]["Max"].as_u64().unwrap() > 0);
}

/// Queries go together, five per composite call; each answers with its own
/// records or its own error.
#[tokio::test]
async fn queries_go_together_five_per_composite_call() {
    let emu = test_support::emulator::start(Default::default()).await;
    let client = test_support::emulator::org_client(&emu.base_url).await;
    let records: Vec<Value> = (0..6)
        .map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("P{i}")}))
        .collect();
    client.create_many(&records, true).await.unwrap();
    let mut soql: Vec<String> = (0..6)
        .map(|i| format!("SELECT Id, LastName FROM Contact WHERE LastName = 'P{i}'"))
        .collect();
    soql.insert(2, "SELECT Nope FROM Contact".into());
    let calls = client.calls();
    let answers = client.query_many(&soql).await.unwrap();
    assert_eq!(client.calls() - calls, 2, "seven queries in two calls");
    assert_eq!(answers.len(), 7);
    for (i, a) in answers.iter().enumerate() {
        match (i, a) {
            (2, Err(e)) => assert_eq!(e.code(), Some("INVALID_FIELD")),
            (_, Ok(rows)) => {
                let n = if i < 2 { i } else { i - 1 };
                assert_eq!(rows[0]["LastName"], format!("P{n}").as_str());
            }
            (_, other) => panic!("query {i}: {other:?}"),
        }
    }
    // Text that reads like a reference stays text: the query is URL-encoded.
    let like_a_reference = vec![
        "SELECT Id FROM Contact WHERE LastName = 'x@{q0.records[0].Id}'".to_string(),
        soql[0].clone(),
    ];
    let answers = client.query_many(&like_a_reference).await.unwrap();
    assert!(answers[0].as_ref().unwrap().is_empty(), "{:?}", answers[0]);
    let one = client.query_many(&soql[..1]).await.unwrap();
    assert_eq!(
        one[0].as_ref().unwrap().len(),
        1,
        "a lone query goes by itself"
    );
}

#[tokio::test]
async fn web_flow_then_transparent_single_flight_refresh() {
    let emu = test_support::emulator::start(Default::default()).await;
    let app = app(&emu.base_url);
    let tokens = web_login(&app).await;
    assert!(tokens.refresh_token.is_some());
    let sink = Arc::new(Recorder::default());
    let client = Client::new(
        tokens,
        Some(app),
        Some(sink.clone()),
        ClientConfig::default(),
    );
    assert_eq!(
        client.count("SELECT COUNT() FROM Account").await.unwrap(),
        0
    );
    emu.emulator.auth.lock().expire_all();
    // Ten calls notice the expired token at once: one refresh serves them all.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.count("SELECT COUNT() FROM Account").await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), 0);
    }
    assert_eq!(client.refreshes(), 1, "single flight");
    assert_eq!(sink.0.lock().len(), 1, "the refreshed token was persisted");
    let token_calls = emu
        .emulator
        .stats
        .lock()
        .get("oauth.token")
        .copied()
        .unwrap_or(0);
    assert_eq!(token_calls, 2, "one code exchange and one refresh");
    // Metadata calls refresh too.
    emu.emulator.auth.lock().expire_all();
    let read = client
        .metadata_read("Layout", &["Account-Account Layout"])
        .await
        .unwrap();
    assert!(read[0].is_some());
    assert_eq!(client.refreshes(), 2);
}

#[tokio::test]
async fn rotated_refresh_tokens_are_persisted_and_a_revoked_grant_means_reconnect() {
    let seed = Seed {
        connected_apps: vec![ConnectedApp {
            rotate_refresh_tokens: true,
            ..ConnectedApp::default_app()
        }],
        ..Default::default()
    };
    let emu = test_support::emulator::start_with(seed).await;
    let app = app(&emu.base_url);
    let tokens = web_login(&app).await;
    let first_rt = tokens.refresh_token.clone().unwrap();
    let sink = Arc::new(Recorder::default());
    let client = Client::new(
        tokens,
        Some(app.clone()),
        Some(sink.clone()),
        ClientConfig::default(),
    );
    emu.emulator.auth.lock().expire_all();
    client.count("SELECT COUNT() FROM Account").await.unwrap();
    let stored = sink.0.lock().last().cloned().unwrap();
    let rotated = stored.refresh_token.clone().unwrap();
    assert_ne!(
        rotated, first_rt,
        "the rotated refresh token was handed to the sink"
    );
    assert_eq!(client.tokens().refresh_token.unwrap(), rotated);
    // Revoke: the next refresh fails with invalid_grant, which means "reconnect".
    app.revoke(&reqwest::Client::new(), &rotated).await.unwrap();
    let err = client
        .count("SELECT COUNT() FROM Account")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OAuth { .. }), "{err:?}");
    assert_eq!(err.action(), Action::Reconnect);
    assert!(
        !format!("{err:?} {err}").contains(rotated.expose()),
        "no secret in errors"
    );
}

/// Makes the emulator inject `spec` (`FaultSpec`'s syntax; "" for none)
/// into the calls that follow.
fn inject(emu: &sf_emulator::Running, spec: &str) {
    let spec = sf_emulator::FaultSpec::parse(spec).unwrap();
    emu.emulator.faults.lock().set(spec);
}

#[tokio::test]
async fn faults_and_limits_are_classified() {
    let emu = test_support::emulator::start(EmulatorConfig {
        daily_api_limit: 2,
        ..Default::default()
    })
    .await;
    let client = test_support::emulator::org_client(&emu.base_url).await;
    inject(&emu, "503=1");
    let err = client.limits().await.unwrap_err();
    assert_eq!(err.action(), Action::Retry);
    inject(&emu, "");
    client.limits().await.unwrap();
    client.limits().await.unwrap();
    let err = client.limits().await.unwrap_err();
    assert_eq!(
        (err.code(), err.action()),
        (Some("REQUEST_LIMIT_EXCEEDED"), Action::PauseForDay)
    );
    emu.emulator.usage.lock().set_limit(1000);
    inject(&emu, "lock=1");
    let res = client
        .create_many(
            &[json!({"attributes": {"type": "Account"}, "Name": "A"})],
            false,
        )
        .await
        .unwrap();
    assert_eq!(res[0].action(), Some(Action::Retry));
    inject(&emu, "reset=1");
    let err = client.limits().await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert_eq!(err.action(), Action::Retry);
}

/// No answer within the client's timeout is its own error, so a caller can
/// read it as what a slow org means (a large org's scan answers
/// `QUERY_TIMEOUT` only after minutes); it is retried like any unanswered call.
#[tokio::test]
async fn a_call_unanswered_within_the_timeout_says_it_timed_out() {
    let emu = test_support::emulator::start(EmulatorConfig::default()).await;
    let config = ClientConfig {
        timeout: std::time::Duration::from_secs(1),
        ..ClientConfig::default()
    };
    let client = test_support::emulator::org_client_as(
        &emu.base_url,
        test_support::emulator::ADMIN,
        test_support::emulator::PASSWORD,
        config,
    )
    .await;
    inject(&emu, "hang=1");
    let err = client.limits().await.unwrap_err();
    assert!(matches!(err, Error::TimedOut(_)), "{err:?}");
    assert_eq!(err.action(), Action::Retry);
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn metadata_objects_fields_and_access_then_upsert_by_collection() {
    let emu = test_support::emulator::start(Default::default()).await;
    let client = test_support::emulator::org_client(&emu.base_url).await;
    let obj = metadata::custom_object(
        "Request__c",
        "Request",
        "Requests",
        metadata::NameField::AutoNumber {
            label: "Request Number",
            display_format: "REQ-{000000}",
        },
    );
    let r = client.metadata_save(Save::Upsert, &[obj]).await.unwrap();
    assert!(r[0].success && r[0].created);
    let fields: Vec<_> = (0..12)
        .map(|i| {
            metadata::custom_field(
                "Request__c",
                &format!("F{i}__c"),
                &format!("F{i}"),
                &FieldKind::Text { length: 10 },
                false,
                false,
            )
        })
        .chain([metadata::custom_field(
            "Request__c",
            "RequestId__c",
            "Request ID",
            &FieldKind::Text { length: 255 },
            true,
            true,
        )])
        .collect();
    let r = client.metadata_save(Save::Upsert, &fields).await.unwrap();
    assert_eq!(r.len(), 13, "13 fields in two calls of at most ten");
    assert!(r.iter().all(|x| x.success), "{r:?}");
    let names: Vec<(String, bool)> = (0..12)
        .map(|i| (format!("Request__c.F{i}__c"), true))
        .chain([("Request__c.RequestId__c".to_string(), true)])
        .collect();
    let r = client
        .metadata_save(
            Save::Upsert,
            &[metadata::profile(
                "Admin",
                &names,
                &["Request__c".to_string()],
            )],
        )
        .await
        .unwrap();
    assert!(r[0].success, "{r:?}");
    let (described, _) = client.describing();
    let d = client.describe("Request__c").await.unwrap();
    assert!(d.field("RequestId__c").unwrap().external_id);
    // Counted once, with its time (callers timing their own work leave it
    // out); the second describe comes from the cache, neither a call nor time.
    let (after, took) = client.describing();
    assert_eq!(after - described, 1);
    assert!(!took.is_zero());
    let calls = client.calls();
    client.describe("Request__c").await.unwrap();
    assert_eq!(
        (client.calls(), client.describing()),
        (calls, (after, took))
    );
    let records: Vec<Value> = (0..250).map(|i| json!({"attributes": {"type": "Request__c"}, "RequestId__c": format!("R{i}"), "F0__c": if i == 7 { "far too long" } else { "ok" }})).collect();
    let res = client
        .upsert_many("Request__c", "RequestId__c", &records)
        .await
        .unwrap();
    assert_eq!(res.len(), 250);
    assert!(!res[7].success);
    assert_eq!(res[7].errors[0].status_code, "STRING_TOO_LONG");
    assert_eq!(res[7].action(), Some(Action::GiveUp));
    assert_eq!(res.iter().filter(|r| r.created == Some(true)).count(), 249);
    let bad = client
        .metadata_save(
            Save::Create,
            &[metadata::custom_field(
                "Request__c",
                "F0__c",
                "F0",
                &FieldKind::Text { length: 10 },
                false,
                false,
            )],
        )
        .await
        .unwrap();
    assert!(!bad[0].success);
    assert_eq!(bad[0].errors[0].status_code, "DUPLICATE_DEVELOPER_NAME");
    let missing = client
        .metadata_read("CustomObject", &["Nope__c", "Request__c"])
        .await
        .unwrap();
    assert!(missing[0].is_none() && missing[1].is_some());
}

#[tokio::test]
async fn without_expires_in_the_token_is_refreshed_before_it_expires() {
    let emu = test_support::emulator::start(Default::default()).await;
    let app = app(&emu.base_url);
    let mut tokens = web_login(&app).await;
    assert_eq!(
        tokens.expires_in_secs, None,
        "Salesforce sends no expires_in"
    );
    // A session issued longer ago than half the assumed lifetime.
    let config = ClientConfig {
        assumed_token_lifetime: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    tokens.issued_at_ms -= 31 * 60 * 1000;
    let sink = Arc::new(Recorder::default());
    let client = Client::new(tokens, Some(app), Some(sink.clone()), config);
    client.count("SELECT COUNT() FROM Account").await.unwrap();
    assert_eq!(
        client.refreshes(),
        1,
        "refreshed before the call, not after a 401"
    );
    assert_eq!(
        emu.emulator.stats.lock().get("rest.query").copied(),
        Some(1),
        "the query went out once"
    );
    client.count("SELECT COUNT() FROM Account").await.unwrap();
    assert_eq!(
        client.refreshes(),
        1,
        "a fresh token is not refreshed again"
    );
}

#[tokio::test]
async fn the_client_never_follows_a_redirect() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A server that would receive the redirected request (with the bearer token).
    let hits = Arc::new(AtomicUsize::new(0));
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let h = hits.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // It answers like a healthy org: a client that followed the redirect would succeed.
        while let Ok((mut s, _)) = target.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").await;
        }
    });
    // An "org" that answers every call with a redirect to it.
    let org = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let org_addr = org.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = org.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let resp = format!("HTTP/1.1 302 Found\r\nLocation: http://{target_addr}/steal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let tokens = TokenSet {
        access_token: Secret::new("00D!token"),
        refresh_token: None,
        instance_url: format!("http://{org_addr}"),
        id_url: format!("http://{org_addr}/id/00D/005"),
        issued_at_ms: 4_102_444_800_000,
        expires_in_secs: None,
    };
    let client = Client::new(tokens, None, None, ClientConfig::default());
    let err = client
        .limits()
        .await
        .expect_err("a redirect is an error, not followed");
    assert!(matches!(err, Error::Api(_) | Error::Protocol(_)), "{err:?}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the redirect target was never contacted"
    );
}
