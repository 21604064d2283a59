//! Reliability and security: a fault soak over two orgs, a daily limit that
//! runs out mid-stream, a corpus of hostile payloads, and no secret in logs,
//! metrics or error bodies after a full run.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sf_emulator::{EmulatorConfig, FaultSpec, Seed};
use test_support::app::{quick_settings, LocalConnector};
use thena_sf::app::App;
use thena_sf::store::{ConnStatus, Store};
use thena_sf::sync::Settings;

const TOKEN: &str = "reliability-token-5f1b2c-0123456789abcdef0123456789";

fn seed() -> Seed {
    serde_json::from_value(json!({
        "accounts": [{"Name": "Acme Corp"}],
        "contacts": [{"LastName": "Known", "Email": "known@acme.io", "AccountName": "Acme Corp"}]
    }))
    .unwrap()
}

struct Env {
    app: App,
    c: LocalConnector,
    orgs: Vec<sf_emulator::Running>,
}

test_support::reads_as_connector!(Env);

async fn env(orgs: Vec<EmulatorConfig>, api_timeout_secs: u64) -> Env {
    env_on(orgs, api_timeout_secs, false).await
}

/// The connector in-process over a fresh store: SQLite, or PostgreSQL when `postgres`.
async fn env_on(orgs: Vec<EmulatorConfig>, api_timeout_secs: u64, postgres: bool) -> Env {
    let mut c = LocalConnector::open(postgres).await;
    c.config.api_timeout_secs = api_timeout_secs;
    let mut running = Vec::new();
    for (i, mut config) in orgs.into_iter().enumerate() {
        config.seed = seed();
        let emu = test_support::emulator::start(config).await;
        c.connect_emulator(&format!("org{i}"), &emu.base_url, Some(TOKEN))
            .await;
        running.push(emu);
    }
    // Short, so that the streams below take many calls (the daily limit
    // test runs an org out of them mid-stream).
    let settings = Settings {
        backoff_cap: Duration::from_millis(500),
        ..quick_settings(60)
    };
    let app = c.start(settings).await;
    Env {
        app,
        c,
        orgs: running,
    }
}

fn event(id: &str, version: i64, email: &str) -> Value {
    let created = chrono::Utc::now().timestamp_millis() + 1000;
    json!({"action": "UPDATE", "request": {"requestId": id, "createdAt": created, "updatedAt": created + version * 1000, "requestor": {"name": "Someone", "email": email}}, "AI_requestTitle": format!("{id} v{version}")})
}

async fn post_many(url: &str, events: Vec<Value>) {
    let http = reqwest::Client::new();
    let queue = std::sync::Arc::new(parking_lot::Mutex::new(events));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, queue, url) = (http.clone(), queue.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            while let Some(e) = {
                let next = queue.lock().pop();
                next
            } {
                let r = http
                    .post(&url)
                    .header("Authorization", TOKEN)
                    .json(&e)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn settled(store: &Store, conn: &str, n: i64, within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let c = store.counts(conn).await.unwrap();
        if c.synced == n && c.queued == 0 {
            return t.elapsed();
        }
        assert!(t.elapsed() < within, "{conn} not settled: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_soak_over_twenty_thousand_events_converges_without_starving_the_other_org() {
    soak(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_soak_on_postgres() {
    soak(true).await;
}

async fn soak(postgres: bool) {
    let faulty = EmulatorConfig {
        latency: Duration::from_millis(5),
        ..Default::default()
    };
    let e = env_on(vec![faulty, EmulatorConfig::default()], 2, postgres).await;
    // Faults from here on: the sync is soaked, not the connect.
    e.orgs[0].emulator.faults.lock().set(
        FaultSpec::parse("503=0.2,lock=0.05,latency=300ms@0.1,hang=0.1,expire=10,seed=11").unwrap(),
    );
    let (a, b) = (
        format!("{}/webhooks/thena/org0", e.app.url()),
        format!("{}/webhooks/thena/org1", e.app.url()),
    );
    let mut events = Vec::new();
    for i in 0..4000 {
        for v in 1..=5 {
            events.push(event(
                &format!("S-{i}"),
                v,
                if i % 2 == 0 {
                    "known@acme.io"
                } else {
                    "soak.new@acme.io"
                },
            ));
        }
    }
    use rand::seq::SliceRandom;
    events.shuffle(&mut rand::thread_rng());
    let clean: Vec<Value> = (0..500)
        .map(|i| event(&format!("C-{i}"), 1, "known@acme.io"))
        .collect();
    let soak = tokio::spawn({
        let a = a.clone();
        async move { post_many(&a, events).await }
    });
    post_many(&b, clean).await;
    let clean_time = settled(&e.store, "org1", 500, Duration::from_secs(60)).await;
    soak.await.unwrap();
    settled(&e.store, "org0", 4000, Duration::from_secs(300)).await;
    // Verify with the faults off (the check's own calls must not fail).
    e.orgs[0].emulator.faults.lock().set(FaultSpec::default());
    let conn = e.store.connection("org0").await.unwrap();
    let client = e.client(&conn.name).await;
    assert_eq!(
        client
            .count("SELECT COUNT() FROM Request__c")
            .await
            .unwrap(),
        4000,
        "exactly once"
    );
    assert_eq!(
        client
            .count("SELECT COUNT() FROM Request__c WHERE Title__c LIKE '%v5'")
            .await
            .unwrap(),
        4000,
        "latest state"
    );
    assert_eq!(
        client
            .count("SELECT COUNT() FROM Contact WHERE Email = 'soak.new@acme.io'")
            .await
            .unwrap(),
        1,
        "no duplicate Contact"
    );
    assert!(
        e.store
            .dead_letters("org0", 10, 0)
            .await
            .unwrap()
            .is_empty(),
        "retries stayed under the cap"
    );
    let injected = e.orgs[0].emulator.faults.lock().injected.clone();
    for kind in ["503", "lock", "latency", "hang", "expire"] {
        assert!(
            injected.get(kind).copied().unwrap_or(0) > 0,
            "{kind} was injected: {injected:?}"
        );
    }
    println!(
        "soak ({}): 20000 events, faults {injected:?}; the clean org settled in {clean_time:?} meanwhile",
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_limit_that_runs_out_pauses_that_org_only_then_it_catches_up() {
    let e = env(
        vec![
            EmulatorConfig {
                daily_api_limit: 24,
                ..Default::default()
            },
            EmulatorConfig::default(),
        ],
        60,
    )
    .await;
    // Connecting and provisioning used about 15 of org0's 24 calls; it runs out mid-stream.
    let (a, b) = (
        format!("{}/webhooks/thena/org0", e.app.url()),
        format!("{}/webhooks/thena/org1", e.app.url()),
    );
    for round in 0..10 {
        post_many(
            &a,
            (0..20)
                .map(|i| event(&format!("L-{round}-{i}"), 1, "known@acme.io"))
                .collect(),
        )
        .await;
        post_many(
            &b,
            (0..20)
                .map(|i| event(&format!("M-{round}-{i}"), 1, "known@acme.io"))
                .collect(),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    settled(&e.store, "org1", 200, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while e.store.connection("org0").await.unwrap().status != ConnStatus::Paused {
        assert!(Instant::now() < deadline, "org0 never paused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(e.store.counts("org0").await.unwrap().synced < 200);
    // A new day (or a higher limit): it resumes by itself and catches up.
    e.orgs[0].emulator.usage.lock().set_limit(100_000);
    settled(&e.store, "org0", 200, Duration::from_secs(60)).await;
    assert_eq!(
        e.store.connection("org0").await.unwrap().status,
        ConnStatus::Healthy
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_payloads_get_the_right_status_and_change_nothing() {
    let e = env(vec![EmulatorConfig::default()], 60).await;
    let url = format!("{}/webhooks/thena/org0", e.app.url());
    let http = reqwest::Client::new();
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    let created = chrono::Utc::now().timestamp_millis() + 1000;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty", vec![], 400),
        ("not json", b"<xml/>".to_vec(), 400),
        ("invalid utf-8", vec![0xff, 0xfe, b'{', 0x80], 400),
        ("deep nesting", deep.into_bytes(), 400),
        ("wrong types", br#"{"action":["UPDATE"],"request":{"requestId":{},"createdAt":true,"updatedAt":null}}"#.to_vec(), 400),
        ("number id too big for text? no: fine but missing times", br#"{"action":"UPDATE","request":{"requestId":1e400}}"#.to_vec(), 400),
        ("huge id", format!(r#"{{"action":"UPDATE","request":{{"requestId":"{}","createdAt":{created},"updatedAt":{created}}}}}"#, "x".repeat(300)).into_bytes(), 400),
    ];
    for (what, body, want) in cases {
        let r = http
            .post(&url)
            .header("Authorization", TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{what}");
        if want == 400 {
            let v: Value = r.json().await.unwrap();
            assert!(
                v["path"].is_string() && v["message"].is_string(),
                "{what}: {v}"
            );
        }
    }
    // Over 1 MiB: refused from its Content-Length, before the body is read
    // (a client still writing it may see the connection close, so the
    // answer is read before any of the body is sent).
    let path = "/webhooks/thena/org0";
    let base = e.app.url();
    let status = test_support::status_for_length(&base, path, TOKEN, 1024 * 1024 + 1);
    assert_eq!(status.await, 413);
    assert_eq!(
        e.store.counts("org0").await.unwrap(),
        Default::default(),
        "nothing stored"
    );
    // Accepted but hostile content: script tags, SOQL injection in names and domains, huge strings.
    let nasty = [
        (
            "H-1",
            json!({"name": "Robert'); DROP TABLE Contact;--", "email": "x' OR Email != '@acme.io"}),
            "<script>alert(1)</script>",
            "Acme Corp' OR Name != '",
        ),
        (
            "H-2",
            json!({"name": "\\' OR 1=1 --", "email": "bob%_@acme.io"}),
            "<img src=x onerror=alert(1)>",
            "Acme Corp",
        ),
        (
            "H-3",
            json!({"name": "Zoë \u{0}\u{202e}", "email": "known@acme.io"}),
            &"long ".repeat(50_000)[..],
            "Acme Corp",
        ),
    ];
    for (id, requestor, text, team) in &nasty {
        let body = json!({"action": "UPDATE", "request": {"requestId": id, "createdAt": created, "updatedAt": created + 1, "requestor": requestor, "customer": {"teamName": team}, "messageText": text}, "AI_requestTitle": text});
        let r = http
            .post(&url)
            .header("Authorization", TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = e.store.counts("org0").await.unwrap();
        if c.synced + c.skipped == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conn = e.store.connection("org0").await.unwrap();
    let client = e.client(&conn.name).await;
    // H-1's "email" has spaces: no address a real org accepts, so it is no
    // email (and its workspace name matches nothing): skipped, no Contact.
    assert_eq!(
        client.count("SELECT COUNT() FROM Contact").await.unwrap(),
        2,
        "injection created nothing unexpected (1 seeded + 1 new)"
    );
    let h1 = e
        .store
        .request_states("org0", &["H-1".into()])
        .await
        .unwrap();
    assert_eq!(h1[0].state, "skipped");
    assert!(
        h1[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("is not one Salesforce accepts"),
        "{:?}",
        h1[0].reason
    );
    for r in client
        .query("SELECT Message_Text__c, Title__c FROM Request__c")
        .await
        .unwrap()
    {
        let html = r["Message_Text__c"].as_str().unwrap_or("");
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.chars().count() <= 131_072
                && r["Title__c"].as_str().unwrap_or("").chars().count() <= 255
        );
    }
}
