//! Replicas benchmark: events per second accepted and synced by 1, 2 and 3
//! `thena-sf serve` processes sharing one PostgreSQL, beside one process on
//! SQLite, against the in-process emulator at 50 ms per API call
//! (`BENCH_LATENCY_MS`). Load: 32 clients, each event to the next replica.
//!
//! `cargo bench -p thena-sf --bench replicas_bench` for the real run; the test
//! command runs a quick version so that it cannot rot.

use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use serde_json::{json, Value};
use test_support::app::{connect_orgs, open_store, org_token};
use test_support::cli;
use test_support::connector::terminate;
use test_support::pg;
use test_support::process::spawn_listening;
use thena_sf::config::Config;

struct Sizes {
    connections: usize,
    requests: usize,
    versions: usize,
}

struct Proc(Child, String);

impl Drop for Proc {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

fn serve(dir: &Path, database_url: Option<&str>) -> Proc {
    let cli = cli!(dir);
    let mut config = "listen = \"127.0.0.1:0\"\nlease_ttl_secs = 3\n".to_string();
    if let Some(u) = database_url {
        config += &format!("database_url = \"{u}\"\n");
    }
    cli.write_config(&config);
    let (child, url) = spawn_listening(cli.command().arg("serve").env("RUST_LOG", "error"));
    Proc(child, url)
}

fn event(c: usize, r: usize, v: usize, created: i64) -> Value {
    json!({"action": "UPDATE", "request": {"requestId": format!("C{c}-R{r}"), "createdAt": created, "updatedAt": created + 1 + v as i64,
        "status": "OPEN", "requestor": {"id": "U1", "name": "Known", "email": format!("known@org{c}.example")},
        "customer": {"teamName": format!("Org {c}")}}, "AI_requestTitle": format!("v{v}")})
}

struct Row {
    setup: String,
    accepted_per_s: f64,
    synced_per_s: f64,
    ack_p99_ms: f64,
    settle_s: f64,
    calls: u64,
}

async fn measure(s: &Sizes, replicas: usize, postgres: bool, latency: Duration) -> Row {
    let seed: sf_emulator::Seed = serde_json::from_value(json!({
        "accounts": (0..s.connections).map(|i| json!({"Name": format!("Org {i}"), "Website": format!("org{i}.example")})).collect::<Vec<_>>(),
        "contacts": (0..s.connections).map(|i| json!({"LastName": "Known", "Email": format!("known@org{i}.example"), "AccountName": format!("Org {i}")})).collect::<Vec<_>>(),
    })).unwrap();
    let emu = sf_emulator::start(
        "127.0.0.1:0",
        sf_emulator::EmulatorConfig {
            seed,
            latency,
            daily_api_limit: 1_000_000_000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let root = test_support::TempDir::new("thena-sf-rbench");
    let db = if postgres {
        Some(pg::TempDb::create().await)
    } else {
        None
    };
    let store = open_store(&root.join("r0"), db.as_ref().map(|d| d.url.as_str())).await;
    let cfg = Config {
        data_dir: root.join("setup"),
        ..Config::default()
    };
    // Requests created before the last connection are out of scope.
    let created = connect_orgs(&store, &cfg, &emu.base_url, s.connections).await;
    if !postgres {
        // The SQLite file belongs to the one process from here on.
        drop(store);
    }
    let procs: Vec<Proc> = (0..replicas)
        .map(|i| {
            serve(
                &root.join(format!("r{i}")),
                db.as_ref().map(|d| d.url.as_str()),
            )
        })
        .collect();
    // Let the replicas divide the leases before the clock starts.
    tokio::time::sleep(Duration::from_millis(if replicas > 1 {
        2_500
    } else {
        300
    }))
    .await;
    let calls_before: u64 = emu.emulator.stats.lock().values().sum();
    let mut events = Vec::new();
    for c in 0..s.connections {
        for r in 0..s.requests {
            for v in 0..s.versions {
                events.push((c, event(c, r, v, created)));
            }
        }
    }
    events.shuffle(&mut rand::thread_rng());
    let total = events.len();
    let events = Arc::new(events);
    let urls: Arc<Vec<String>> = Arc::new(procs.iter().map(|p| p.1.clone()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..32 {
        let (events, urls, next, http) = (events.clone(), urls.clone(), next.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut turn = k;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((c, body)) = events.get(i) else {
                    break;
                };
                turn += 1;
                let url = &urls[turn % urls.len()];
                let t = Instant::now();
                let r = http
                    .post(format!("{url}/webhooks/thena/org{c}"))
                    .bearer_auth(org_token(*c))
                    .json(body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let accepted = t0.elapsed();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
    // Synced: every request's latest version in Salesforce (read from the store's states).
    let check = open_store(&root.join("r0"), db.as_ref().map(|d| d.url.as_str())).await;
    let want = (s.requests) as i64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut done = true;
        for c in 0..s.connections {
            let counts = check.counts(&format!("org{c}")).await.unwrap();
            if counts.synced != want || counts.pending != 0 {
                done = false;
                break;
            }
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "did not settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled = t0.elapsed();
    let calls: u64 = emu.emulator.stats.lock().values().sum::<u64>() - calls_before;
    drop(procs);
    let _ = emu.shutdown().await;
    Row {
        setup: format!(
            "{replicas} × thena-sf serve, {}",
            if postgres { "PostgreSQL" } else { "SQLite" }
        ),
        accepted_per_s: total as f64 / accepted.as_secs_f64(),
        synced_per_s: total as f64 / settled.as_secs_f64(),
        ack_p99_ms: p99,
        settle_s: settled.as_secs_f64(),
        calls,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let s = if full {
        Sizes {
            connections: 30,
            requests: 200,
            versions: 5,
        }
    } else {
        Sizes {
            connections: 4,
            requests: 10,
            versions: 2,
        }
    };
    let latency = Duration::from_millis(
        std::env::var("BENCH_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let events = s.connections * s.requests * s.versions;
    println!(
        "replicas benchmark ({}): {} connections × {} requests × {} versions = {events} events, 32 clients, API latency {} ms",
        if full { "full" } else { "quick smoke mode; `cargo bench -p thena-sf --bench replicas_bench` for the real run" },
        s.connections, s.requests, s.versions, latency.as_millis()
    );
    println!("| setup | events accepted/s | ack p99 | events synced/s (ack of the first → last request in Salesforce) | settled in | API calls |");
    println!("|---|---|---|---|---|---|");
    let runs: Vec<(usize, bool)> = vec![(1, false), (1, true), (2, true), (3, true)];
    for (n, pgsql) in runs {
        let r = rt.block_on(measure(&s, n, pgsql, latency));
        println!(
            "| {} | {:.0} | {:.1} ms | {:.0} | {:.1} s | {} |",
            r.setup, r.accepted_per_s, r.ack_p99_ms, r.synced_per_s, r.settle_s, r.calls
        );
    }
}
