//! Emulator benchmark: an org of 1,000,000 contacts (seeded), then
//! sObject Collections upserts of 200 records and SOQL lookups by Email,
//! measured over HTTP against the `sf-emulator` binary, with its peak memory.
//!
//! `cargo bench -p sf-emulator` runs the full size. Without `--bench` (as
//! `cargo test --all-targets` runs it) it runs a quick smoke version, so the
//! harness cannot rot. `EMULATOR_BENCH_CONTACTS=N` overrides the org size.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::emulator;
use test_support::process::{proc_mib, spawn_listening, Listening};
use test_support::Fetch;

struct Sizes {
    contacts: usize,
    upsert_calls: usize,
    lookups: usize,
    clients: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut sizes = if full {
        Sizes {
            contacts: 1_000_000,
            upsert_calls: 200,
            lookups: 20_000,
            clients: 4,
        }
    } else {
        Sizes {
            contacts: 2_000,
            upsert_calls: 5,
            lookups: 200,
            clients: 2,
        }
    };
    if let Some(n) = std::env::var("EMULATOR_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        sizes.contacts = n;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(sizes, full));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

type Emulator = Listening;

fn start_emulator(seed: &std::path::Path) -> (Emulator, Duration) {
    let started = Instant::now();
    let (child, url) = spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--daily-api-limit",
                "1000000000",
                "--seed",
            ])
            .arg(seed)
            .stderr(Stdio::inherit()),
    );
    (Emulator { child, url }, started.elapsed())
}

async fn soap(http: &reqwest::Client, url: &str, token: &str, op: &str) {
    let env = emulator::metadata_envelope(token, op);
    let body = http
        .post(format!("{url}/services/Soap/m/67.0"))
        .header("content-type", "text/xml")
        .body(env)
        .fetch_text()
        .await;
    assert!(body.contains("<success>true</success>"), "{body}");
}

async fn run(s: Sizes, full: bool) {
    let dir = std::env::temp_dir().join(format!("sf-emulator-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("seed.json");
    {
        let accounts = (s.contacts / 10).max(1);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&seed).unwrap());
        write!(f, "{{\"accounts\":[").unwrap();
        for a in 0..accounts {
            write!(
                f,
                "{}{{\"Name\":\"Company {a}\",\"Website\":\"c{a}.example\"}}",
                if a > 0 { "," } else { "" }
            )
            .unwrap();
        }
        write!(f, "],\"contacts\":[").unwrap();
        for c in 0..s.contacts {
            write!(f, "{}{{\"LastName\":\"Person {c}\",\"Email\":\"p{c}@c{}.example\",\"AccountName\":\"Company {}\"}}", if c > 0 { "," } else { "" }, c % accounts, c % accounts).unwrap();
        }
        write!(f, "]}}").unwrap();
    }
    let (emu, load_time) = start_emulator(&seed);
    let pid = emu.child.id();
    let rss_after_load = proc_mib(pid, "VmRSS:");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()
        .unwrap();
    let tok: Value = http
        .post(format!("{}/services/oauth2/token", emu.url))
        .form(&emulator::password_form(
            emulator::ADMIN,
            emulator::PASSWORD,
        ))
        .fetch_json()
        .await;
    let token = tok["access_token"].as_str().unwrap().to_string();
    soap(&http, &emu.url, &token, r#"<createMetadata><metadata xsi:type="CustomObject"><fullName>Request__c</fullName><label>Request</label><nameField><label>Number</label><type>AutoNumber</type><displayFormat>R-{000000}</displayFormat></nameField><pluralLabel>Requests</pluralLabel><deploymentStatus>Deployed</deploymentStatus><sharingModel>ReadWrite</sharingModel><fields><fullName>RequestId__c</fullName><externalId>true</externalId><label>Request ID</label><length>255</length><type>Text</type><unique>true</unique></fields><fields><fullName>Title__c</fullName><label>Title</label><length>255</length><type>Text</type></fields><fields><fullName>Summary__c</fullName><label>Summary</label><length>32768</length><type>Html</type><visibleLines>10</visibleLines></fields></metadata></createMetadata>"#).await;
    soap(&http, &emu.url, &token, r#"<upsertMetadata><metadata xsi:type="Profile"><fullName>Admin</fullName><fieldPermissions><editable>true</editable><field>Request__c.RequestId__c</field><readable>true</readable></fieldPermissions><fieldPermissions><editable>true</editable><field>Request__c.Title__c</field><readable>true</readable></fieldPermissions><fieldPermissions><editable>true</editable><field>Request__c.Summary__c</field><readable>true</readable></fieldPermissions></metadata></upsertMetadata>"#).await;

    // Collections upserts: each call 200 records, half of them updates of earlier ones.
    let upsert_url = format!(
        "{}/services/data/v67.0/composite/sobjects/Request__c/RequestId__c",
        emu.url
    );
    let mut lat = Vec::new();
    let started = Instant::now();
    for call in 0..s.upsert_calls {
        let records: Vec<Value> = (0..200)
            .map(|i| {
                let n = call * 100 + i;
                json!({"attributes": {"type": "Request__c"}, "RequestId__c": format!("REQ-{n}"), "Title__c": format!("Title {n} v{call}"), "Summary__c": "<p>Customer reports the dashboard failing with <b>500</b> errors.</p>"})
            })
            .collect();
        let t = Instant::now();
        let res: Value = http
            .patch(&upsert_url)
            .bearer_auth(&token)
            .json(&json!({"allOrNone": false, "records": records}))
            .fetch_json()
            .await;
        lat.push(t.elapsed());
        assert!(
            res.as_array().unwrap().iter().all(|r| r["success"] == true),
            "{res}"
        );
    }
    let upsert_elapsed = started.elapsed();
    lat.sort();
    let upsert_calls_per_sec = s.upsert_calls as f64 / upsert_elapsed.as_secs_f64();

    // SOQL lookups by Email, from concurrent clients.
    let lookups_each = s.lookups / s.clients;
    let token = Arc::new(token);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..s.clients {
        let http = http.clone();
        let url = emu.url.clone();
        let token = token.clone();
        let contacts = s.contacts;
        let accounts = (contacts / 10).max(1);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(lookups_each);
            for i in 0..lookups_each {
                let c = (i * 7919 + client * 104_729) % contacts;
                let soql = format!(
                    "SELECT Id, AccountId FROM Contact WHERE Email = 'p{c}@c{}.example'",
                    c % accounts
                );
                let t = Instant::now();
                let v: Value = http
                    .get(format!("{url}/services/data/v67.0/query"))
                    .query(&[("q", soql)])
                    .bearer_auth(token.as_str())
                    .fetch_json()
                    .await;
                lat.push(t.elapsed());
                assert_eq!(v["totalSize"], 1, "{v}");
            }
            lat
        }));
    }
    let mut qlat = Vec::new();
    for t in tasks {
        qlat.extend(t.await.unwrap());
    }
    let lookup_elapsed = started.elapsed();
    qlat.sort();
    let lookups_per_sec = qlat.len() as f64 / lookup_elapsed.as_secs_f64();

    // For contrast: a LIKE on the email domain cannot use an index.
    let t = Instant::now();
    let v: Value = http
        .get(format!("{}/services/data/v67.0/query", emu.url))
        .query(&[(
            "q",
            "SELECT Id, AccountId FROM Contact WHERE Email LIKE '%@c1.example'",
        )])
        .bearer_auth(token.as_str())
        .fetch_json()
        .await;
    let scan = t.elapsed();
    assert!(v["totalSize"].as_u64().unwrap() >= 1);
    let peak = proc_mib(pid, "VmHWM:");
    let rss_end = proc_mib(pid, "VmRSS:");
    drop(emu);
    let _ = std::fs::remove_dir_all(&dir);

    let mode = if full {
        "full"
    } else {
        "quick (smoke) mode; `cargo bench -p sf-emulator` for the real run"
    };
    println!("sf-emulator benchmark, {mode}");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| contacts in the org | {} (+{} accounts) |",
        s.contacts,
        (s.contacts / 10).max(1)
    );
    println!(
        "| start with seed (load and index) | {:.1} s |",
        load_time.as_secs_f64()
    );
    println!("| collections upsert, 200 records a call | {:.1} calls/s = {:.0} records/s (p50 {:.1} ms, p99 {:.1} ms, {} calls, 1 client) |", upsert_calls_per_sec, upsert_calls_per_sec * 200.0, percentile(&lat, 0.5).as_secs_f64() * 1e3, percentile(&lat, 0.99).as_secs_f64() * 1e3, s.upsert_calls);
    println!("| SOQL lookup by Email (index) | {:.0} queries/s (p50 {:.2} ms, p99 {:.2} ms, {} queries, {} clients) |", lookups_per_sec, percentile(&qlat, 0.5).as_secs_f64() * 1e3, percentile(&qlat, 0.99).as_secs_f64() * 1e3, qlat.len(), s.clients);
    println!(
        "| SOQL `Email LIKE '%@domain'` (full scan) | {:.1} ms |",
        scan.as_secs_f64() * 1e3
    );
    println!(
        "| emulator memory | {:.0} MiB resident after load, {:.0} MiB at the end, {:.0} MiB peak (VmHWM, includes parsing the seed) |",
        rss_after_load, rss_end, peak
    );
}
