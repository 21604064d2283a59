//! Several replicas on one PostgreSQL: three `thena-sf serve` processes, one
//! emulator, 50 connections, 20,000 events sent to whichever replica (as a
//! load balancer would), one replica killed with SIGKILL midway and started
//! again. Every request ends in Salesforce exactly once with its latest
//! state, no Contact is duplicated, and the work was spread over the replicas.

use test_support::app::{connect_orgs, org_token};
use test_support::pg;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use serde_json::{json, Value};
use sf_emulator::{EmulatorConfig, Seed};
use test_support::process::{spawn_listening, Listening};
use test_support::{cli, TempDir};
use thena_sf::config::Config;
use thena_sf::connect::{self, ConnectRequest};

const CONNECTIONS: usize = 50;
const REQUESTS: usize = 100;
const VERSIONS: usize = 4;

type Replica = Listening;

/// A replica's data folder with its config: the shared database `db`.
fn replica_dir(dir: &Path, db: &str) -> PathBuf {
    cli!(dir).write_config(&format!(
        "listen = \"127.0.0.1:0\"\ndatabase_url = \"{db}\"\nlease_ttl_secs = 2\n"
    ));
    dir.to_path_buf()
}

fn start(dir: &Path) -> Replica {
    let (child, url) = spawn_listening(
        cli!(dir)
            .command()
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit()),
    );
    Replica { url, child }
}

fn seed() -> Seed {
    let accounts: Vec<Value> = (0..CONNECTIONS)
        .map(|i| json!({"Name": format!("Org {i}"), "Website": format!("org{i}.example")}))
        .collect();
    let contacts: Vec<Value> = (0..CONNECTIONS)
        .map(|i| json!({"LastName": format!("Known {i}"), "Email": format!("known@org{i}.example"), "AccountName": format!("Org {i}")}))
        .collect();
    serde_json::from_value(json!({"accounts": accounts, "contacts": contacts})).unwrap()
}

/// Request `r` of connection `c`, version `v`: five new people per connection, and the known one.
fn event(c: usize, r: usize, v: usize, created: i64) -> Value {
    let person = r % 6;
    let email = if person == 0 {
        format!("known@org{c}.example")
    } else {
        format!("person{person}@org{c}.example")
    };
    json!({
        "action": "UPDATE",
        "request": {"requestId": format!("C{c}-R{r}"), "createdAt": created, "updatedAt": created + 1 + v as i64,
                    "status": if v + 1 == VERSIONS { "CLOSED" } else { "OPEN" },
                    "requestor": {"id": format!("U{person}"), "name": format!("Person {person}"), "email": email},
                    "customer": {"teamName": format!("Org {c}")}},
        "AI_requestTitle": format!("C{c}-R{r} v{v}")
    })
}

/// Sums a counter of a replica's /metrics by outcome.
async fn synced_by(url: &str) -> u64 {
    let Ok(r) = reqwest::get(format!("{url}/metrics")).await else {
        return 0;
    };
    r.text()
        .await
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("thena_sf_requests_total") && l.contains("outcome=\"synced\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_fifty_orgs_one_killed_nothing_lost_or_doubled() {
    let db = pg::TempDb::create().await;
    let emu = sf_emulator::start(
        "127.0.0.1:0",
        EmulatorConfig {
            seed: seed(),
            latency: Duration::from_millis(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let root = TempDir::new("thena-sf-replicas");

    // 50 connections (each an org), made once into the shared store.
    let store = test_support::app::open_store(Path::new(""), Some(&db.url)).await;
    let cfg = Config {
        data_dir: root.join("setup"),
        ..Config::default()
    };
    // Requests created before the last connection are out of scope.
    let created = connect_orgs(&store, &cfg, &emu.base_url, CONNECTIONS).await;

    let configs: Vec<PathBuf> = (0..3)
        .map(|i| replica_dir(&root.join(format!("r{i}")), &db.url))
        .collect();
    let mut replicas: Vec<Replica> = configs.iter().map(|c| start(c)).collect();
    let urls: Arc<parking_lot::RwLock<Vec<String>>> = Arc::new(parking_lot::RwLock::new(
        replicas.iter().map(|r| r.url.clone()).collect(),
    ));

    // 20,000 events, shuffled, from 32 clients, each to the next replica; a delivery
    // that is not acknowledged (the replica died) goes again to another, as Thena retries.
    let mut events: Vec<(usize, Value)> = Vec::new();
    for c in 0..CONNECTIONS {
        for r in 0..REQUESTS {
            for v in 0..VERSIONS {
                events.push((c, event(c, r, v, created)));
            }
        }
    }
    events.shuffle(&mut rand::thread_rng());
    let total = events.len();
    assert_eq!(total, 20_000);
    let events = Arc::new(events);
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for k in 0..32 {
        let (events, next, sent, retries, urls, http) = (
            events.clone(),
            next.clone(),
            sent.clone(),
            retries.clone(),
            urls.clone(),
            http.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut turn = k;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((c, body)) = events.get(i) else {
                    break;
                };
                loop {
                    turn += 1;
                    let url = {
                        let u = urls.read();
                        u[turn % u.len()].clone()
                    };
                    let ok = http
                        .post(format!("{url}/webhooks/thena/org{c}"))
                        .bearer_auth(org_token(*c))
                        .json(body)
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    if ok {
                        break;
                    }
                    retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Midway: every replica holds leases and has synced; then one dies.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sent.load(Ordering::Relaxed) < total / 2 {
        assert!(Instant::now() < deadline, "sending stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leases = store.leases().await.unwrap();
    let owners: BTreeMap<String, usize> = leases.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l.owner.clone()).or_default() += 1;
        m
    });
    let mut before: Vec<u64> = Vec::new();
    for r in &replicas {
        before.push(synced_by(&r.url).await);
    }
    let victim = 1;
    let killed_url = replicas[victim].url.clone();
    unsafe_kill(&mut replicas[victim].child);
    urls.write().retain(|u| *u != killed_url);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarted = start(&configs[victim]);
    urls.write().push(restarted.url.clone());
    replicas[victim] = restarted;
    for c in clients {
        c.await.unwrap();
    }

    // Everything settles: each connection's 100 requests synced, nothing pending.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = true;
        for c in 0..CONNECTIONS {
            let counts = store.counts(&format!("org{c}")).await.unwrap();
            if counts.synced != REQUESTS as i64 || counts.pending != 0 {
                done = false;
                break;
            }
        }
        if done {
            break;
        }
        if Instant::now() > deadline {
            let mut why = Vec::new();
            for c in 0..CONNECTIONS {
                let name = format!("org{c}");
                let counts = store.counts(&name).await.unwrap();
                if counts.synced != REQUESTS as i64 || counts.pending != 0 {
                    let now = chrono::Utc::now().timestamp_millis();
                    why.push(format!(
                        "{name}: {counts:?}; due, oldest due, next delay's end: {:?}",
                        store.due_shape(&name, now, 0).await.unwrap()
                    ));
                }
            }
            panic!(
                "did not settle: {why:#?}\nleases: {:#?}",
                store.leases().await.unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut after: Vec<u64> = Vec::new();
    for r in &replicas {
        after.push(synced_by(&r.url).await);
    }
    let final_owners: std::collections::BTreeSet<String> = store
        .leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.owner)
        .collect();

    // Salesforce holds each request exactly once, with its latest state.
    let sf = { test_support::emulator::org_client(&emu.base_url).await };
    let rows = sf
        .query("SELECT RequestId__c, Title__c, Status__c FROM Request__c")
        .await
        .unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        let id = r["RequestId__c"].as_str().unwrap().to_string();
        assert_eq!(
            r["Title__c"].as_str().unwrap(),
            format!("{id} v{}", VERSIONS - 1),
            "latest state of {id}"
        );
        assert_eq!(r["Status__c"].as_str().unwrap(), "Closed");
        *seen.entry(id).or_default() += 1;
    }
    assert_eq!(
        seen.len(),
        CONNECTIONS * REQUESTS,
        "every request is in Salesforce"
    );
    assert!(seen.values().all(|n| *n == 1), "no request twice");
    let contacts = sf.query("SELECT Email FROM Contact").await.unwrap();
    let mut emails: HashMap<String, usize> = HashMap::new();
    for c in &contacts {
        *emails
            .entry(c["Email"].as_str().unwrap_or("").to_lowercase())
            .or_default() += 1;
    }
    assert_eq!(
        emails.len(),
        CONNECTIONS * 6,
        "the known person and five new ones per org"
    );
    assert!(emails.values().all(|n| *n == 1), "no Contact duplicated");
    let dead: usize = {
        let mut n = 0;
        for c in 0..CONNECTIONS {
            n += store
                .dead_letters(&format!("org{c}"), 10, 0)
                .await
                .unwrap()
                .len();
        }
        n
    };
    assert_eq!(dead, 0);

    // The work was spread: all three held leases and synced before the kill, and
    // afterwards the restarted replica took its share back.
    println!(
        "leases before the kill: {owners:?}; synced per replica before: {before:?}, after (the restarted one from zero): {after:?}; \
         retried deliveries: {}; lease owners at the end: {}",
        retries.load(Ordering::Relaxed),
        final_owners.len()
    );
    assert_eq!(owners.len(), 3, "three replicas held leases: {owners:?}");
    assert!(
        owners.values().all(|n| *n >= 10),
        "spread evenly: {owners:?}"
    );
    assert!(
        before.iter().all(|n| *n > 0),
        "each replica synced: {before:?}"
    );
    assert_eq!(
        final_owners.len(),
        3,
        "the restarted replica took its share"
    );
    drop(replicas);
    emu.shutdown().await.unwrap();
}

fn unsafe_kill(child: &mut Child) {
    assert!(Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let _ = child.wait();
}

/// Two replicas in-process on one database: a connection made on one is
/// served at once by the other, and a webhook token changed on one takes
/// effect on the other within a lease tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_tokens_changed_on_one_replica_reach_the_others() {
    use thena_sf::app::App;
    let db = pg::TempDb::create().await;
    let emu = test_support::emulator::start_with(seed()).await;
    let root = TempDir::new("thena-sf-replicas2");
    let mut apps = Vec::new();
    for i in 0..2 {
        let store = test_support::app::open_store(Path::new(""), Some(&db.url)).await;
        let config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: root.join(format!("r{i}")),
            lease_ttl_secs: 1,
            ..Config::default()
        };
        apps.push(App::start(config, store, Default::default()).await.unwrap());
    }
    // Made on replica 0 (as its admin page or CLI would).
    let req = ConnectRequest::emulator_admin(
        "late",
        &emu.base_url,
        Some("tok-old-0123456789abcdef0123456789".to_string()),
    );
    connect::connect(&apps[0].state.store, &apps[0].state.config, req)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let post = |url: String, token: &'static str, id: &str| {
        http.post(format!("{url}/webhooks/thena/late"))
            .bearer_auth(token)
            .json(&event(
                0,
                id.len(),
                0,
                chrono::Utc::now().timestamp_millis() + 1_000,
            ))
            .send()
    };
    // Replica 1 has never heard of it, and serves it at once.
    let r = post(apps[1].url(), "tok-old-0123456789abcdef0123456789", "a")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    // A new token set on replica 0 reaches replica 1 within a tick.
    apps[0]
        .state
        .store
        .roll_webhook_token(
            "late",
            &thena_sf::crypto::token_hash("tok-new-0123456789abcdef0123456789"),
            None,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let new = post(apps[1].url(), "tok-new-0123456789abcdef0123456789", "bb")
            .await
            .unwrap()
            .status()
            .as_u16();
        let old = post(apps[1].url(), "tok-old-0123456789abcdef0123456789", "ccc")
            .await
            .unwrap()
            .status()
            .as_u16();
        if (new, old) == (200, 401) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica 1 still has the old token: new {new}, old {old}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for a in apps {
        a.shutdown().await;
    }
    emu.shutdown().await.unwrap();
}
