//! Connector benchmarks against the emulator (50 ms per API call by default),
//! with a naive integration measured in the same run for comparison.
//!
//! `cargo bench -p thena-sf --bench connector_bench` runs the full sizes;
//! without `--bench` (as `cargo test --all-targets` runs it) a quick version
//! runs so the harness cannot rot. `BENCH_LATENCY_MS` sets the API latency;
//! `BENCH_ONLY=3,5` runs only those workloads; `BENCH_RATES=100` only that
//! steady rate; `BENCH_INGEST_CLIENTS=128` sets the ingest's clients (32);
//! `THENA_SF_TEST_LOGS=1` shows the connector's log (`RUST_LOG` chooses).
//!
//! Workloads: (1) ingest, (2) near real time at 50 events/s, (3) a burst of
//! 10,000 requests from 2,000 requestors updated 5 times each (50,000 events),
//! (4) draining 1,000,000 pending snapshots, (5) the burst on an org of
//! 1,000,000 Contacts whose scans time out (`--scan-timeout-rows 200000`),
//! (6) steady rates of 10, 100, 600 and 2,000 events/s for 30 s each,
//! against the latency-bounded lower bound.

use std::collections::HashSet;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use salesforce::{Client, Secret};
use serde_json::{json, Value};
use test_support::process::{cpu_secs, proc_mib};
use test_support::{cli, TempDir};

struct Sizes {
    ingest_events: usize,
    nrt_seconds: u64,
    burst_requests: usize,
    burst_requestors: usize,
    naive_sample: usize,
    scale_pending: usize,
    scale_window: Duration,
}

const TOKEN: &str = "bench-token-0123456789abcdef0123456789";

fn sizes(full: bool) -> Sizes {
    if full {
        Sizes {
            ingest_events: 20_000,
            nrt_seconds: 30,
            burst_requests: 10_000,
            burst_requestors: 2_000,
            naive_sample: 500,
            scale_pending: 1_000_000,
            scale_window: Duration::from_secs(60),
        }
    } else {
        Sizes {
            ingest_events: 300,
            nrt_seconds: 2,
            burst_requests: 200,
            burst_requestors: 60,
            naive_sample: 20,
            scale_pending: 2_000,
            scale_window: Duration::from_secs(3),
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1].as_secs_f64()
        * 1000.0
}

/// The org of a benchmark: accounts with domains and known contacts.
fn seed(accounts: usize, contacts_per_account: usize) -> sf_emulator::Seed {
    let accts: Vec<Value> = (0..accounts)
        .map(|a| json!({"Name": format!("Company {a}"), "Website": format!("c{a}.example")}))
        .collect();
    let contacts: Vec<Value> = (0..accounts)
        .flat_map(|a| (0..contacts_per_account).map(move |c| json!({"LastName": format!("Known {a}-{c}"), "Email": format!("known{c}@c{a}.example"), "AccountName": format!("Company {a}")})))
        .collect();
    serde_json::from_value(json!({"accounts": accts, "contacts": contacts})).unwrap()
}

/// The burst's companies (as [`seed`] makes them, with their known
/// Contacts) among `contacts` Contacts in all, the rest at 10 per small
/// company: most of a large org's companies are small.
fn write_large_seed(path: &Path, accounts: usize, contacts: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let small = (contacts / 10).max(1);
    write!(f, "{{\"accounts\":[").unwrap();
    for a in 0..accounts {
        write!(
            f,
            "{}{{\"Name\":\"Company {a}\",\"Website\":\"c{a}.example\"}}",
            if a > 0 { "," } else { "" }
        )
        .unwrap();
    }
    for a in 0..small {
        write!(f, ",{{\"Name\":\"Small {a}\"}}").unwrap();
    }
    write!(f, "],\"contacts\":[").unwrap();
    let mut first = true;
    let mut sep = |f: &mut std::io::BufWriter<std::fs::File>| {
        if !std::mem::take(&mut first) {
            write!(f, ",").unwrap();
        }
    };
    for a in 0..accounts {
        for c in 0..2 {
            sep(&mut f);
            write!(f, "{{\"LastName\":\"Known {a}-{c}\",\"Email\":\"known{c}@c{a}.example\",\"AccountName\":\"Company {a}\"}}").unwrap();
        }
    }
    for c in 0..contacts.saturating_sub(accounts * 2) {
        sep(&mut f);
        write!(f, "{{\"LastName\":\"Person {c}\",\"Email\":\"p{c}@s{}.example\",\"AccountName\":\"Small {}\"}}", c % small, c % small).unwrap();
    }
    write!(f, "]}}").unwrap();
}

/// API calls per endpoint since `before` (OAuth and the version list left out).
fn calls_by_endpoint(
    emu: &sf_emulator::Running,
    before: &std::collections::BTreeMap<String, u64>,
) -> Vec<String> {
    emu.emulator
        .stats
        .lock()
        .iter()
        .filter(|(k, _)| !k.starts_with("oauth") && k.as_str() != "versions")
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect()
}

struct Connector {
    child: Child,
    url: String,
    data: TempDir,
}

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh data folder with a connection `bench` to the emulator at `emulator`.
fn connected(emulator: &str, tag: &str) -> TempDir {
    let data = TempDir::new(&format!("thena-sf-bench-{tag}"));
    let cli = cli!(&data);
    cli.write_config("");
    cli.connect("bench", emulator, TOKEN, &["--json"]);
    data
}

/// Connects a fresh store to the emulator and starts `thena-sf serve`.
fn start_connector(emulator: &str, tag: &str) -> Connector {
    let data = connected(emulator, tag);
    let (child, url) = cli!(&data).serve();
    Connector { child, url, data }
}

async fn open_store(data: &Path) -> thena_sf::store::Store {
    test_support::app::open_store(data, None).await
}

async fn wait_settled(
    store: &thena_sf::store::Store,
    total: usize,
    deadline: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let c = store.counts("bench").await.unwrap();
        let done = (c.synced + c.skipped + c.failed + c.out_of_scope) as usize;
        if done >= total && c.queued == 0 && c.pending == 0 {
            return started.elapsed();
        }
        assert!(started.elapsed() < deadline, "not settled: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn event(id: &str, created_ms: i64, version: i64, requestor: &Value, team: &str) -> Value {
    json!({
        "action": "UPDATE",
        "request": {"requestId": id, "createdAt": created_ms, "updatedAt": created_ms + version * 1000, "status": if version >= 5 { "CLOSED" } else { "IN_PROGRESS" },
                    "requestor": requestor, "customer": {"teamName": team}, "messageText": "Hi *team*, the dashboard is down <https://x.example|link>"},
        "AI_requestTitle": format!("{id} v{version}"), "AI_requestSummary": "The customer reports an outage.", "AI_requestUrgency": "High"
    })
}

/// Delivers one webhook; the connector must accept it.
async fn deliver(http: &reqwest::Client, url: &str, body: &Value) {
    let r = http
        .post(url)
        .header("Authorization", TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Posts events with `concurrency` clients; returns each acknowledgement's latency and its time.
async fn post_all(url: &str, events: Vec<Value>, concurrency: usize) -> Vec<(Duration, Instant)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let events = Arc::new(parking_lot::Mutex::new(
        events.into_iter().rev().collect::<Vec<_>>(),
    ));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, events, url) = (
            http.clone(),
            events.clone(),
            format!("{url}/webhooks/thena/bench"),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let Some(e) = events.lock().pop() else { break };
                let t = Instant::now();
                deliver(&http, &url, &e).await;
                lat.push((t.elapsed(), Instant::now()));
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

struct Report(Vec<String>);

impl Report {
    fn row(&mut self, s: String) {
        println!("{s}");
        self.0.push(s);
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(sizes(full), full));
}

async fn run(s: Sizes, full: bool) {
    let latency = Duration::from_millis(
        std::env::var("BENCH_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50),
    );
    let emu_config = |seed| sf_emulator::EmulatorConfig {
        seed,
        latency,
        daily_api_limit: 1_000_000_000,
        ..Default::default()
    };
    // `BENCH_ONLY=3,5` runs only those workloads.
    let only = std::env::var("BENCH_ONLY").ok();
    let want = |n: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x.trim() == n))
    };
    let mut report = Report(Vec::new());
    report.row(format!(
        "connector benchmark ({}), API latency {} ms",
        if full {
            "full"
        } else {
            "quick smoke mode; `cargo bench -p thena-sf --bench connector_bench` for the real run"
        },
        latency.as_millis()
    ));
    report.row("| workload | measure | ours | naive | lower bound | notes |".into());
    report.row("|---|---|---|---|---|---|".into());

    // 1. Ingest. `BENCH_INGEST_CLIENTS` sets how many clients post at once (32).
    let clients: usize = std::env::var("BENCH_INGEST_CLIENTS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(32);
    if want("1") {
        let emu = test_support::emulator::start(emu_config(seed(10, 2))).await;
        let conn = start_connector(&emu.base_url, "ingest");
        let now = chrono::Utc::now().timestamp_millis() + 1000;
        let requestor = json!({"name": "Known", "email": "known0@c0.example"});
        let events: Vec<Value> = (0..s.ingest_events)
            .map(|i| event(&format!("I-{i}"), now, 1, &requestor, "Company 0"))
            .collect();
        let cpu_before = cpu_secs(conn.child.id());
        let t = Instant::now();
        let mut lat: Vec<Duration> = post_all(&conn.url, events, clients)
            .await
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        let secs = t.elapsed().as_secs_f64();
        let cpu = (cpu_secs(conn.child.id()) - cpu_before).max(0.01);
        lat.sort();
        report.row(format!(
            "| 1. ingest | events acknowledged durably per second ({clients} clients) | {:.0}/s | | | p50 {:.1} ms, p99 {:.1} ms ack latency; {} events; the connector used {:.1} CPU-seconds: {:.0} events per connector CPU-second (the load generator and the emulator share the 2 cores) |",
            s.ingest_events as f64 / secs,
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            s.ingest_events,
            cpu,
            s.ingest_events as f64 / cpu
        ));
        drop(conn);
        emu.shutdown().await.unwrap();
    }

    // 2. Near real time at 50 events per second.
    if want("2") {
        let emu = test_support::emulator::start(emu_config(seed(10, 2))).await;
        let conn = start_connector(&emu.base_url, "nrt");
        let store = open_store(&conn.data).await;
        let http = reqwest::Client::new();
        let now = chrono::Utc::now().timestamp_millis() + 1000;
        let n = (s.nrt_seconds * 50) as usize;
        let mut acks = Vec::with_capacity(n);
        let started = Instant::now();
        for i in 0..n {
            let due = started + Duration::from_millis(i as u64 * 20);
            tokio::time::sleep_until(due.into()).await;
            let requestor =
                json!({"name": "Known", "email": format!("known{}@c{}.example", i % 2, i % 10)});
            let r = http
                .post(format!("{}/webhooks/thena/bench", conn.url))
                .header("Authorization", TOKEN)
                .json(&event(&format!("N-{i}"), now, 1, &requestor, ""))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            acks.push((format!("N-{i}"), chrono::Utc::now()));
        }
        wait_settled(&store, n, Duration::from_secs(120)).await;
        let ids: Vec<String> = acks.iter().map(|(i, _)| i.clone()).collect();
        let states = store.request_states("bench", &ids).await.unwrap();
        let mut lat: Vec<Duration> = acks
            .iter()
            .filter_map(|(id, ack)| {
                let st = states.iter().find(|s| &s.request_id == id)?;
                let synced = thena_sf::store::parse_ts(&st.updated_at)?;
                (synced - *ack).to_std().ok()
            })
            .collect();
        lat.sort();
        // Visible by SOQL: every record is there.
        let client = test_support::emulator::org_client(&emu.base_url).await;
        let visible = client
            .count("SELECT COUNT() FROM Request__c WHERE RequestId__c LIKE 'N-%'")
            .await
            .unwrap();
        assert_eq!(visible as usize, n);
        report.row(format!("| 2. near real time | acknowledgement → in Salesforce, at 50 events/s | p50 {:.0} ms, p99 {:.0} ms | | {} ms (one API call) | {} events over {} s, all visible by SOQL |", pct(&lat, 0.5), pct(&lat, 0.99), latency.as_millis(), n, s.nrt_seconds));
        drop(conn);
        emu.shutdown().await.unwrap();
    }

    // 3. Burst, and the naive integration on a sample of the same events.
    let accounts = (s.burst_requestors / 10).max(4);
    let mix = build_burst(&s, accounts);
    if want("3") {
        let emu = test_support::emulator::start(emu_config(seed(accounts, 2))).await;
        let conn = start_connector(&emu.base_url, "burst");
        let store = open_store(&conn.data).await;
        let before = emu.emulator.usage.lock().used(Instant::now());
        let t = Instant::now();
        post_all(&conn.url, mix.events.clone(), 32).await;
        let ingest = t.elapsed();
        wait_settled(&store, s.burst_requests, Duration::from_secs(900)).await;
        let settle = t.elapsed();
        let calls = emu.emulator.usage.lock().used(Instant::now()) - before;
        let by_endpoint = calls_by_endpoint(&emu, &Default::default());
        let peak = proc_mib(conn.child.id(), "VmHWM:");
        let counts = store.counts("bench").await.unwrap();
        drop(conn);
        emu.shutdown().await.unwrap();

        // The naive integration, on a sample of the same events in the same order.
        let emu = test_support::emulator::start(emu_config(seed(accounts, 2))).await;
        let (naive_calls, naive_time) =
            naive(&emu, &mix.events[..s.naive_sample.min(mix.events.len())]).await;
        emu.shutdown().await.unwrap();
        let events = mix.events.len() as f64;
        let per_event_naive = naive_calls as f64 / s.naive_sample as f64;
        let lb = mix.lower_bound;
        report.row(format!(
            "| 3. burst | Salesforce API calls for {} events ({} requests, {} requestors) | {calls} ({:.4}/event) | {:.0} ({per_event_naive:.2}/event, from a {}-event sample) | {lb} | ours/lower bound {:.2}x; naive/ours {:.0}x |",
            mix.events.len(),
            s.burst_requests,
            s.burst_requestors,
            calls as f64 / events,
            per_event_naive * events,
            s.naive_sample,
            calls as f64 / lb as f64,
            per_event_naive * events / calls as f64
        ));
        report.row(format!(
            "| 3. burst | time until everything is settled | {:.1} s (ingest {:.1} s) | {:.0} s (extrapolated) | | {} synced, {} skipped, {} failed |",
            settle.as_secs_f64(),
            ingest.as_secs_f64(),
            naive_time.as_secs_f64() / s.naive_sample as f64 * events,
            counts.synced,
            counts.skipped,
            counts.failed
        ));
        report.row(format!("| 3. burst | connector peak memory (VmHWM) | {peak:.0} MiB | | | the connector process alone |"));
        report.row(format!(
            "| 3. burst | calls by endpoint (including connect and provisioning) | {} | | | |",
            by_endpoint.join(", ")
        ));
    }

    // 5. The burst on an org of a million Contacts, too large to scan: a
    // query no index answers fails past the scan limit (QUERY_TIMEOUT).
    if want("5") {
        let (contacts, timeout) = if full {
            (1_000_000, 200_000)
        } else {
            (3_000, 1_000)
        };
        let file = std::env::temp_dir().join(format!(
            "thena-sf-bench-million-{}.json",
            std::process::id()
        ));
        write_large_seed(&file, accounts, contacts);
        let mut big = sf_emulator::Seed::from_file(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        big.org.scan_timeout_rows = Some(timeout);
        let loading = Instant::now();
        let emu = test_support::emulator::start(emu_config(big)).await;
        let load = loading.elapsed();
        let conn = start_connector(&emu.base_url, "million");
        let store = open_store(&conn.data).await;
        // The same burst, made now: the connection is forward-looking, and
        // loading the org took longer than the first burst's events wait.
        let mix = build_burst(&s, accounts);
        let before = emu.emulator.usage.lock().used(Instant::now());
        let stats_before = emu.emulator.stats.lock().clone();
        let t = Instant::now();
        post_all(&conn.url, mix.events.clone(), 32).await;
        wait_settled(&store, s.burst_requests, Duration::from_secs(900)).await;
        let settle = t.elapsed();
        let calls = emu.emulator.usage.lock().used(Instant::now()) - before;
        let by_endpoint = calls_by_endpoint(&emu, &stats_before);
        let counts = store.counts("bench").await.unwrap();
        assert_eq!(counts.out_of_scope, 0, "the burst is measured, not cut off");
        drop(conn);
        emu.shutdown().await.unwrap();
        report.row(format!(
            "| 5. large org | API calls and time to settle the burst ({} events) on {contacts} Contacts with a {timeout}-row scan limit | {calls} calls, {:.1} s | | {} | {}; {} synced, {} skipped, {} failed, {} out of scope; the emulator loaded the org in {:.0} s |",
            mix.events.len(),
            settle.as_secs_f64(),
            mix.lower_bound,
            by_endpoint.join(", "),
            counts.synced,
            counts.skipped,
            counts.failed,
            counts.out_of_scope,
            load.as_secs_f64()
        ));
    }

    // 4. Scale: a backlog of pending snapshots.
    if want("4") {
        let emu = test_support::emulator::start(emu_config(seed(10, 2))).await;
        let data = connected(&emu.base_url, "scale");
        let fill = Instant::now();
        backlog(&data, s.scale_pending).await;
        let fill = fill.elapsed();
        let store = open_store(&data).await;
        let (mut child, _) = cli!(&data).serve();
        let t = Instant::now();
        tokio::time::sleep(s.scale_window).await;
        let synced = store.counts("bench").await.unwrap().synced;
        let rate = synced as f64 / t.elapsed().as_secs_f64();
        let peak = proc_mib(child.id(), "VmHWM:");
        let _ = child.kill();
        let _ = child.wait();
        emu.shutdown().await.unwrap();
        report.row(format!(
            "| 4. scale | draining {} pending snapshots | {rate:.0} records/s over {:.0} s ({synced} synced); {peak:.0} MiB peak | | {:.0} records/s ({} ms per 200-record call) | backlog written in {:.0} s; at this rate it drains in {:.0} min |",
            s.scale_pending,
            s.scale_window.as_secs_f64(),
            200.0 / latency.as_secs_f64(),
            latency.as_millis(),
            fill.as_secs_f64(),
            s.scale_pending as f64 / rate.max(1.0) / 60.0
        ));
    }
    // 6. Steady rates, within the latency budget.
    if want("6") {
        let (mut rates, secs): (Vec<u64>, u64) = if full {
            (vec![10, 100, 600, 2_000], 30)
        } else {
            (vec![20, 200], 2)
        };
        // `BENCH_RATES=100,600` runs only those rates.
        if let Ok(only) = std::env::var("BENCH_RATES") {
            rates = only
                .split(',')
                .filter_map(|r| r.trim().parse().ok())
                .collect();
        }
        let budget = Duration::from_millis(500);
        for &rate in &rates {
            let r = steady(rate, secs, emu_config(seed(accounts, 2)), accounts, budget).await;
            report.row(format!(
                "| 6. steady {} events/s | API calls for {} events over {secs} s (latency-bounded lower bound {}) | {} calls, {:.2}x the bound | | {} | acknowledgement → in Salesforce p50 {:.0} ms, p99 {:.0} ms (budget {} ms, {} versions written); {} |",
                r.rate, r.events, r.bound, r.calls, r.calls as f64 / r.bound as f64, r.bound, r.p50, r.p99, budget.as_millis(), r.written, r.by_endpoint.join(", ")
            ));
        }
    }
    if full {
        let path =
            std::env::var("BENCH_REPORT").unwrap_or_else(|_| "target/connector-bench.md".into());
        let _ = std::fs::write(&path, report.0.join("\n") + "\n");
        println!("(also written to {path})");
    }
}

struct Burst {
    events: Vec<Value>,
    lower_bound: u64,
}

/// 40% known contacts, 30% new people at a known company domain, 20% public mail
/// matched by workspace name, 10% unmatched; each request updated 5 times, shuffled.
fn build_burst(s: &Sizes, accounts: usize) -> Burst {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let now = chrono::Utc::now().timestamp_millis() + 1000;
    let mut requestors = Vec::new();
    let (mut emails, mut domains, mut teams, mut new_contacts) =
        (HashSet::new(), HashSet::new(), HashSet::new(), 0u64);
    for p in 0..s.burst_requestors {
        let a = p % accounts;
        let (r, team) = match p % 10 {
            0..=3 => (
                json!({"name": format!("Known {a}-{}", p % 2), "email": format!("known{}@c{a}.example", p % 2)}),
                format!("Company {a}"),
            ),
            4..=6 => {
                domains.insert(format!("c{a}.example"));
                new_contacts += 1;
                (
                    json!({"name": format!("New Person{p}"), "email": format!("new{p}@c{a}.example")}),
                    format!("Company {a}"),
                )
            }
            7 | 8 => {
                teams.insert(format!("Company {a}"));
                new_contacts += 1;
                (
                    json!({"name": format!("Gmail Person{p}"), "email": format!("p{p}@gmail.com")}),
                    format!("Company {a}"),
                )
            }
            _ => {
                domains.insert(format!("nowhere{p}.example"));
                teams.insert(format!("Nobody {p}"));
                (
                    json!({"name": format!("Lost {p}"), "email": format!("lost{p}@nowhere{p}.example")}),
                    format!("Nobody {p}"),
                )
            }
        };
        emails.insert(r["email"].as_str().unwrap().to_string());
        requestors.push((r, team));
    }
    let mut events = Vec::new();
    for i in 0..s.burst_requests {
        let (r, team) = &requestors[rng.gen_range(0..requestors.len())];
        for v in 1..=5 {
            events.push(event(&format!("B-{i}"), now, v, r, team));
        }
    }
    events.shuffle(&mut rng);
    let c = |n: usize, per: usize| n.div_ceil(per) as u64;
    // Fewest calls: upserts of every final record, each distinct email looked up once,
    // each company domain and workspace name once, the Contacts created in bulk, one describe.
    let matched = s.burst_requests - s.burst_requests / 10;
    let lower_bound = c(matched, 200)
        + c(emails.len(), 200)
        + c(domains.len(), 100)
        + c(teams.len(), 200)
        + 1
        + c(new_contacts as usize, 200)
        + 1;
    Burst {
        events,
        lower_bound,
    }
}

/// What a customer would write: per event, look the contact up, look the domain
/// up if needed, create the contact if needed, upsert the request. One call at a time.
async fn naive(emu: &sf_emulator::Running, events: &[Value]) -> (u64, Duration) {
    let app = test_support::emulator::oauth_app(&emu.base_url);
    let tokens = app
        .password(
            &reqwest::Client::new(),
            test_support::emulator::ADMIN,
            &Secret::new(test_support::emulator::PASSWORD),
        )
        .await
        .unwrap();
    let setup = Client::new(tokens.clone(), Some(app.clone()), None, Default::default());
    let user = tokens.org_and_user().unwrap().1;
    thena_sf::provision::provision(&setup, &[], &user)
        .await
        .unwrap();
    let client = Client::new(tokens, Some(app), None, Default::default());
    let q = salesforce::soql::quote;
    let t = Instant::now();
    for e in events {
        let email = e["request"]["requestor"]["email"].as_str().unwrap_or("");
        let team = e["request"]["customer"]["teamName"].as_str().unwrap_or("");
        let mut found = client
            .query(&format!(
                "SELECT Id, AccountId FROM Contact WHERE Email = {} LIMIT 1",
                q(email)
            ))
            .await
            .unwrap();
        if found
            .first()
            .and_then(|c| c.get("AccountId"))
            .is_none_or(Value::is_null)
        {
            let domain = email.rsplit('@').next().unwrap_or("");
            let mut account = None;
            if !domain.ends_with("gmail.com") {
                let rows = client
                    .query(&format!(
                        "SELECT AccountId FROM Contact WHERE Email LIKE {} LIMIT 1",
                        salesforce::soql::like("%@", domain, "")
                    ))
                    .await
                    .unwrap();
                account = rows
                    .first()
                    .and_then(|r| r.get("AccountId"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            if account.is_none() {
                let rows = client
                    .query(&format!(
                        "SELECT Id FROM Account WHERE Name = {} LIMIT 1",
                        q(team)
                    ))
                    .await
                    .unwrap();
                account = rows
                    .first()
                    .and_then(|r| r.get("Id"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            if let Some(a) = account {
                let id = client.create("Contact", &json!({"LastName": e["request"]["requestor"]["name"], "Email": email, "AccountId": a})).await.unwrap();
                found = vec![serde_json::from_value(json!({"Id": id, "AccountId": a})).unwrap()];
            }
        }
        if let Some(c) = found.first() {
            let rid = e["request"]["requestId"].as_str().unwrap();
            let body = json!({"Name": rid, "Title__c": e["AI_requestTitle"], "Requestor__c": c["Id"], "Account__c": c["AccountId"]});
            client
                .send(
                    reqwest::Method::PATCH,
                    &format!("sobjects/Request__c/RequestId__c/{rid}"),
                    Some(&body),
                    &[],
                )
                .await
                .unwrap();
        }
    }
    (client.calls(), t.elapsed())
}

/// Writes a backlog of pending snapshots straight into the store (setup, not measured).
async fn backlog(data: &Path, n: usize) {
    let store = open_store(data).await;
    let conn = store.connection("bench").await.unwrap();
    let created = conn.connected_at.timestamp_millis() + 1000;
    let pool = store.pool();
    let now = chrono::Utc::now().timestamp_millis();
    for chunk_start in (0..n).step_by(10_000) {
        let mut tx = pool.begin().await.unwrap();
        for i in chunk_start..(chunk_start + 10_000).min(n) {
            let id = format!("S-{i}");
            let snap = json!({"request_id": id, "created_at": created, "updated_at": created + 1000, "title": format!("Backlog {i}"),
                              "requestor": {"id": "U1", "name": "Known 0-0", "email": format!("known{}@c{}.example", i % 2, i % 10)}});
            sqlx::query("INSERT INTO pending (connection, request_id, snapshot, updated_at_ms, enqueued_at_ms) VALUES ('bench', $1, $2, $3, $4)")
                .bind(&id)
                .bind(snap.to_string())
                .bind(created + 1000)
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO requests (connection, request_id, state, latest_updated_ms, updated_at) VALUES ('bench', $1, 'pending', $2, $3)")
                .bind(&id)
                .bind(created + 1000)
                .bind(thena_sf::store::ts(chrono::Utc::now()))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

/// One steady-rate run's figures.
struct Steady {
    rate: u64,
    events: usize,
    calls: u64,
    bound: u64,
    written: usize,
    p50: f64,
    p99: f64,
    by_endpoint: Vec<String>,
}

/// The requestor mix of the burst (see [`build_burst`]) for person `p`.
fn requestor(p: usize, accounts: usize) -> (Value, String, &'static str) {
    let a = p % accounts;
    match p % 10 {
        0..=3 => (
            json!({"name": format!("Known {a}-{}", p % 2), "email": format!("known{}@c{a}.example", p % 2)}),
            format!("Company {a}"),
            "known",
        ),
        4..=6 => (
            json!({"name": format!("New Person{p}"), "email": format!("new{p}@c{a}.example")}),
            format!("Company {a}"),
            "domain",
        ),
        7 | 8 => (
            json!({"name": format!("Gmail Person{p}"), "email": format!("p{p}@gmail.com")}),
            format!("Company {a}"),
            "workspace",
        ),
        _ => (
            json!({"name": format!("Lost {p}"), "email": format!("lost{p}@nowhere{p}.example")}),
            format!("Nobody {p}"),
            "lost",
        ),
    }
}

/// Workload 6: events at `rate` a second for `secs`, each request updated
/// about three times (its versions 0.3 to 6 s apart), one requestor per five
/// requests. Every write is timed by the emulator's journal, so each acknowledged
/// version's latency is the time until Salesforce held it (or a newer one).
async fn steady(
    rate: u64,
    secs: u64,
    config: sf_emulator::EmulatorConfig,
    accounts: usize,
    budget: Duration,
) -> Steady {
    let emu = test_support::emulator::start(config).await;
    let conn = start_connector(&emu.base_url, &format!("steady{rate}"));
    let store = open_store(&conn.data).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(rate);
    let created = chrono::Utc::now().timestamp_millis() + 1000;
    let requests = ((rate * secs) as usize / 3).max(1);
    // (seconds from the start, request, version)
    let mut plan: Vec<(f64, usize, i64)> = Vec::with_capacity(requests * 3);
    for j in 0..requests {
        let t = j as f64 * 3.0 / rate as f64;
        let t2 = t + rng.gen_range(0.3..3.0);
        let t3 = t2 + rng.gen_range(0.3..3.0);
        plan.extend([(t, j, 1), (t2, j, 2), (t3, j, 3)]);
    }
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
    let people: Vec<_> = (0..requests.div_ceil(5))
        .map(|p| requestor(p, accounts))
        .collect();
    *emu.emulator.journal.lock() = Some(Vec::new());
    let before = emu.emulator.usage.lock().used(Instant::now());
    let stats_before = emu.emulator.stats.lock().clone();
    let http = reqwest::Client::new();
    let url = format!("{}/webhooks/thena/bench", conn.url);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(plan.len());
    for (t, j, v) in &plan {
        tokio::time::sleep_until((started + Duration::from_secs_f64(*t)).into()).await;
        let (who, team, _) = &people[j / 5];
        let body = event(&format!("S{rate}-{j}"), created, *v, who, team);
        let (http, url, j, v) = (http.clone(), url.clone(), *j, *v);
        tasks.push(tokio::spawn(async move {
            deliver(&http, &url, &body).await;
            (j, v, Instant::now())
        }));
    }
    let mut acks = Vec::with_capacity(tasks.len());
    for t in tasks {
        acks.push(t.await.unwrap());
    }
    wait_settled(&store, requests, Duration::from_secs(300)).await;
    let calls = emu.emulator.usage.lock().used(Instant::now()) - before;
    let by_endpoint = calls_by_endpoint(&emu, &stats_before);
    let journal = emu.emulator.journal.lock().take().unwrap_or_default();
    drop(conn);
    emu.shutdown().await.unwrap();

    // Each request's writes: (when, the version Salesforce then held).
    let prefix = format!("S{rate}-");
    let mut writes: std::collections::HashMap<usize, Vec<(Instant, i64)>> = Default::default();
    for w in journal.iter().filter(|w| w.object == "Request__c") {
        let Some(j) = w.key.strip_prefix(&prefix).and_then(|j| j.parse().ok()) else {
            continue;
        };
        let at = w
            .fields
            .get("requestUpdatedAt__c")
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        let Some(at) = at else { continue };
        let v = (at.timestamp_millis() - created + 999).div_euclid(1000);
        writes.entry(j).or_default().push((w.at, v));
    }
    let mut lat: Vec<Duration> = acks
        .iter()
        .filter_map(|(j, v, ack)| {
            let w = writes.get(j)?.iter().find(|(_, held)| held >= v)?;
            Some(w.0.saturating_duration_since(*ack))
        })
        .collect();
    lat.sort();
    Steady {
        rate,
        events: plan.len(),
        calls,
        bound: steady_bound(&plan, &people, budget),
        written: lat.len(),
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        by_endpoint,
    }
}

/// The latency-bounded lower bound: every record written within the budget
/// of its acknowledgement, so one upsert per 200 distinct requests that
/// arrived in each budget window; one query per resolution step per 200
/// distinct values (100 domains); the Contacts created in calls of 200; the
/// describe.
fn steady_bound(
    plan: &[(f64, usize, i64)],
    people: &[(Value, String, &str)],
    budget: Duration,
) -> u64 {
    let c = |n: usize, per: usize| n.div_ceil(per) as u64;
    let kind = |j: usize| people[j / 5].2;
    let mut windows: std::collections::BTreeMap<u64, HashSet<usize>> = Default::default();
    for (t, j, _) in plan.iter().filter(|(_, j, _)| kind(*j) != "lost") {
        windows
            .entry((t / budget.as_secs_f64()) as u64)
            .or_default()
            .insert(*j);
    }
    let upserts: u64 = windows.values().map(|w| c(w.len(), 200)).sum();
    let (mut emails, mut domains, mut teams, mut new) =
        (HashSet::new(), HashSet::new(), HashSet::new(), 0);
    for (who, team, k) in people {
        let email = who["email"].as_str().unwrap_or_default();
        emails.insert(email);
        match *k {
            "domain" => {
                domains.insert(email.rsplit('@').next().unwrap_or_default());
                new += 1;
            }
            "workspace" => {
                teams.insert(team.as_str());
                new += 1;
            }
            "lost" => {
                domains.insert(email.rsplit('@').next().unwrap_or_default());
                teams.insert(team.as_str());
            }
            _ => {}
        }
    }
    upserts
        + c(emails.len(), 200)
        + c(domains.len(), 100)
        + c(teams.len(), 200)
        + 1
        + c(new, 200)
        + 1
}
