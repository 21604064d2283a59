//! Never refusing inside Thena's retry window: two `thena-sf serve` replicas
//! on one PostgreSQL reached through a proxy the test can cut. While the
//! database is gone (60 s) every delivery is still answered 200 from each
//! replica's local spool; a replica with a non-empty spool is SIGKILLed and
//! started again; when the database is back, every acknowledged event
//! reaches Salesforce exactly once with its newest state.

use test_support::pg;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::{cli, emulator, TempDir};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "outage-token-0123456789abcdef0123456789";
const OUTAGE: Duration = Duration::from_secs(60);

/// A TCP proxy to PostgreSQL that can go down: then it drops every open
/// connection and refuses new ones, as a failover or a crash does.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(tx);
        let (d, g) = (down.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cut = g.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            down,
            generation,
        }
    }

    fn cut(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

fn data_dir(tag: &str, db: &str) -> TempDir {
    let d = TempDir::new(&format!("thena-sf-outage-{tag}"));
    cli!(&d).write_config(&format!("database_url = \"{db}\"\nlease_ttl_secs = 2\n"));
    d
}

async fn spool_len(url: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("thena_sf_spool_events "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Deliveries alternate between the two replicas, as a load balancer would.
fn alternate(i: usize, a: &str, b: &str) -> String {
    if i.is_multiple_of(2) { a } else { b }.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_ridden_out_by_the_spool_and_nothing_is_lost() {
    let db = pg::TempDb::create().await;
    let (server, name) = db.url.rsplit_once('/').unwrap();
    let target = server.rsplit('@').next().unwrap().to_string();
    let proxy = Proxy::start(target).await;
    let via_proxy = format!(
        "{}@127.0.0.1:{}/{name}",
        server.rsplit_once('@').unwrap().0,
        proxy.port
    );
    let emu = emulator::start_seeded(json!({
        "accounts": [{"Name": "Acme Corp"}],
        "contacts": [{"LastName": "Known", "Email": "known@acme.io", "AccountName": "Acme Corp"}]
    }))
    .await;
    let (da, db_dir) = (data_dir("a", &via_proxy), data_dir("b", &via_proxy));
    cli!(&da).connect("acme", &emu.base_url, TOKEN, &[]);
    let (mut a, url_a) = cli!(&da).serve();
    let (mut b, mut url_b) = cli!(&db_dir).serve();

    let created = chrono::Utc::now().timestamp_millis() + 1000;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut newest: std::collections::BTreeMap<String, u64> = Default::default();
    let mut version = 0u64;
    let mut send = |url: String, i: usize| {
        version += 1;
        let id = format!("OUT-{}", i % 40);
        newest.insert(id.clone(), version);
        let body = json!({"action": "UPDATE", "request": {"requestId": id, "createdAt": created,
            "updatedAt": created + version as i64, "requestor": {"name": "Known", "email": "known@acme.io"}},
            "AI_requestTitle": format!("v{version}")});
        let http = http.clone();
        async move {
            let r = http
                .post(format!("{url}/webhooks/thena/acme"))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mut i = 0;
    for _ in 0..40 {
        let url = alternate(i, &url_a, &url_b);
        assert_eq!(send(url, i).await.0, 200);
        i += 1;
    }

    // The database goes away; deliveries keep being acknowledged.
    proxy.cut(true);
    let until = Instant::now() + OUTAGE;
    let mut spooled = 0;
    while Instant::now() < until {
        let url = alternate(i, &url_a, &url_b);
        let (s, v) = send(url, i).await;
        assert_eq!(s, 200, "refused during the outage: {v}");
        if v["status"] == "spooled" {
            spooled += 1;
        }
        i += 1;
        // Thena's pace, not a flood: the spool's size is not what is tested.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(spooled > 0, "nothing went to the spool");
    let waiting_b = spool_len(&url_b).await;
    assert!(waiting_b > 0, "replica B's spool is empty");
    eprintln!(
        "outage: {} deliveries during {} s, {spooled} spooled; B holds {waiting_b}",
        i - 40,
        OUTAGE.as_secs()
    );
    // B dies with events in its spool.
    b.kill().unwrap();
    b.wait().unwrap();

    // The database is back; B starts again and replays what its predecessor spooled.
    proxy.cut(false);
    let restarted = cli!(&db_dir).serve();
    b = restarted.0;
    url_b = restarted.1;
    for _ in 0..20 {
        let url = alternate(i, &url_a, &url_b);
        assert_eq!(send(url, i).await.0, 200);
        i += 1;
    }

    // Every request once in Salesforce, with its newest acknowledged state.
    let sf = emulator::org_client(&emu.base_url).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = sf
            .query("SELECT RequestId__c, Title__c FROM Request__c")
            .await
            .unwrap();
        let got: std::collections::BTreeMap<String, String> = rows
            .iter()
            .map(|r| {
                (
                    r["RequestId__c"].as_str().unwrap().to_string(),
                    r["Title__c"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want: std::collections::BTreeMap<String, String> = newest
            .iter()
            .map(|(k, v)| (k.clone(), format!("v{v}")))
            .collect();
        if got == want && rows.len() == want.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not converged: {} rows; missing or old: {:?}",
            rows.len(),
            want.iter()
                .filter(|(k, v)| got.get(*k) != Some(v))
                .take(5)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(spool_len(&url_a).await, 0);
    assert_eq!(spool_len(&url_b).await, 0);
    let leftover: Vec<_> = std::fs::read_dir(db_dir.join("spool"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftover.len(),
        1,
        "the dead replica's spool was replayed and removed: {leftover:?}"
    );
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
}
