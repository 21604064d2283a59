//! Crash test: the connector is killed with SIGKILL at random moments while
//! events stream in, and restarted each time. Afterwards every acknowledged
//! request is in Salesforce exactly once with its latest state, no Contact is
//! duplicated, and nothing is stuck. On SQLite, and on PostgreSQL (where each
//! restart is a new replica that must wait out the dead one's lease).

use test_support::pg;

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use test_support::process::spawn_listening;
use test_support::{cli, TempDir};

const TOKEN: &str = "crash-token-0123456789-0123456789abcdef0123456789";
const REQUESTS: usize = 1000;
const VERSIONS: i64 = 5;
const KILLS: usize = 10;

fn serve(data: &std::path::Path, port: u16) -> Child {
    // A stable replica name (as a StatefulSet gives): each restart resumes the
    // lease at once, so kills land mid-batch on PostgreSQL too.
    let (child, _) = spawn_listening(
        cli!(data)
            .command()
            .env("THENA_SF_REPLICA_ID", "crash-replica")
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::null()),
    );
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    crash(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing_on_postgres() {
    let db = pg::TempDb::create().await;
    crash(Some(&db.url)).await;
}

async fn crash(database_url: Option<&str>) {
    let seed: sf_emulator::Seed = serde_json::from_value(json!({
        "accounts": [{"Name": "Acme Corp"}, {"Name": "Globex"}],
        "contacts": [{"LastName": "Known", "Email": "known@acme.io", "AccountName": "Acme Corp"}, {"LastName": "G", "Email": "g@globex.example", "AccountName": "Globex"}]
    }))
    .unwrap();
    let emu = sf_emulator::start(
        "127.0.0.1:0",
        sf_emulator::EmulatorConfig {
            seed,
            latency: Duration::from_millis(15),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = TempDir::new(&format!("thena-sf-crash-{}", database_url.is_some()));
    let data = dir.to_path_buf();
    let cli = cli!(&data);
    cli.write_config(&match database_url {
        Some(u) => format!("database_url = \"{u}\"\nlease_ttl_secs = 2\n"),
        None => String::new(),
    });
    cli.connect("acme", &emu.base_url, TOKEN, &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // 1000 requests × 5 versions, shuffled; a third from 30 new people at company domains
    // (so Contacts are created while the connector may die).
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let created = chrono::Utc::now().timestamp_millis() + 1000;
    let mut events = Vec::new();
    for i in 0..REQUESTS {
        let requestor = match i % 3 {
            0 => {
                json!({"name": format!("New Person{}", (i / 3) % 30), "email": format!("new{}@acme.io", (i / 3) % 30)})
            }
            1 => json!({"name": "Known", "email": "known@acme.io"}),
            _ => json!({"name": "G", "email": "g@globex.example"}),
        };
        for v in 1..=VERSIONS {
            events.push(json!({"action": "UPDATE", "request": {"requestId": format!("K-{i}"), "createdAt": created, "updatedAt": created + v * 1000, "requestor": requestor}, "AI_requestTitle": format!("K-{i} v{v}")}));
        }
    }
    events.shuffle(&mut rng);
    let total = events.len();

    let child = Arc::new(Mutex::new(Some(serve(&data, port))));
    let acked: Arc<Mutex<HashMap<String, i64>>> = Arc::new(Mutex::new(HashMap::new()));
    let queue = Arc::new(Mutex::new(events));
    let mut posters = Vec::new();
    for _ in 0..8 {
        let (queue, acked) = (queue.clone(), acked.clone());
        posters.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            loop {
                let Some(e) = queue.lock().pop() else { break };
                // Like Thena: retry until the delivery is acknowledged.
                loop {
                    match http
                        .post(format!("http://127.0.0.1:{port}/webhooks/thena/acme"))
                        .header("Authorization", TOKEN)
                        .json(&e)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => {
                            let id = e["request"]["requestId"].as_str().unwrap().to_string();
                            let v = e["request"]["updatedAt"].as_i64().unwrap();
                            let mut a = acked.lock();
                            let cur = a.entry(id).or_insert(0);
                            *cur = (*cur).max(v);
                            break;
                        }
                        // 503: the store could not commit (the contract's only 5xx); Thena retries it.
                        Ok(r) if r.status() == 503 => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        Ok(r) => {
                            let status = r.status();
                            panic!(
                                "unexpected {status}: {}",
                                r.text().await.unwrap_or_default()
                            )
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        }));
    }
    // Kill at random moments while events stream and batches run; restart each time.
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..600))).await;
        let mut c = child.lock().take().unwrap();
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        *child.lock() = Some(serve(&data, port));
    }
    for p in posters {
        p.await.unwrap();
    }
    assert_eq!(acked.lock().len(), REQUESTS);

    // Let the last process settle, then check Salesforce.
    let store = test_support::app::open_store(&data, database_url).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = store.counts("acme").await.unwrap();
        if c.queued == 0 && c.pending == 0 && c.synced as usize == REQUESTS {
            break;
        }
        assert!(Instant::now() < deadline, "stuck after the kills: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let conn = store.connection("acme").await.unwrap();
    let client = thena_sf::connect::client_for(&store, &conn, &thena_sf::config::Config::default());
    let rows = client
        .query("SELECT RequestId__c, Title__c FROM Request__c")
        .await
        .unwrap();
    assert_eq!(rows.len(), REQUESTS, "every request exactly once");
    let latest = acked.lock().clone();
    for r in &rows {
        let id = r["RequestId__c"].as_str().unwrap();
        let want_v = (latest[id] - created) / 1000;
        assert_eq!(
            r["Title__c"].as_str().unwrap(),
            format!("{id} v{want_v}"),
            "latest acknowledged state wins"
        );
    }
    for p in 0..30 {
        let n = client
            .count(&format!(
                "SELECT COUNT() FROM Contact WHERE Email = 'new{p}@acme.io'"
            ))
            .await
            .unwrap();
        assert_eq!(n, 1, "new{p}@acme.io duplicated or missing");
    }
    assert!(store.dead_letters("acme", 10, 0).await.unwrap().is_empty());
    println!(
        "crash test ({}): {total} events, {KILLS} SIGKILLs, 0 lost, 0 duplicated",
        if database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let mut c = child.lock().take().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
}
