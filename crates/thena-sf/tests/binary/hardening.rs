//! The attacks of the hardening review, replayed against `thena-sf serve` as
//! a process (memory is read from its `/proc/<pid>/status`): a login race, slow
//! and unauthenticated clients, metric-label growth, a category flood, a
//! password change, file modes, and the smaller ones. docs/reliability.md
//! lists each with its figure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use test_support::Fetch;
use test_support::{cli, emulator};

const TOKEN: &str = "hardening-token-0123456789abcdef0123456789";
const PASSWORD: &str = "correct horse battery staple";

struct Served {
    child: Child,
    url: String,
    data: PathBuf,
    emu: sf_emulator::Running,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// An emulator, a connection `acme` made by `connect`, and `serve` with `extra` config.
async fn served(tag: &str, extra: &str) -> Served {
    let seed: sf_emulator::Seed = serde_json::from_value(json!({
        "accounts": [{"Name": "Acme Corp"}],
        "contacts": [{"LastName": "Known", "Email": "known@acme.io", "AccountName": "Acme Corp"}]
    }))
    .unwrap();
    let emu = test_support::emulator::start_with(seed).await;
    let data = std::env::temp_dir().join(format!("thena-sf-hard-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let hash = thena_sf::web::hash_password(PASSWORD).unwrap();
    let cli = cli!(&data);
    cli.write_config(&format!("admin_password_hash = \"{hash}\"\n{extra}\n"));
    cli.connect("acme", &emu.base_url, TOKEN, &[]);
    let (child, url) = cli.serve();
    Served {
        child,
        url,
        data,
        emu,
    }
}

/// Peak resident memory of a process, in MiB (VmHWM).
fn peak_mib(pid: u32) -> u64 {
    let mib = test_support::process::proc_mib(pid, "VmHWM:");
    assert!(mib > 0.0, "the peak memory of {pid} is readable");
    mib as u64
}

fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Finding 1: 200 concurrent wrong passwords from one address. At most the
/// brake's five reach Argon2; the rest get 429; memory stays flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_race_is_braked_before_argon2_and_memory_stays_flat() {
    let s = served("login", "").await;
    let before = peak_mib(s.child.id());
    let http = http();
    let tries = (0..200).map(|_| {
        let (http, url) = (http.clone(), s.url.clone());
        tokio::spawn(async move {
            http.post(format!("{url}/login"))
                .form(&[("password", "wrong-wrong-wrong")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let mut codes = Vec::new();
    for t in tries {
        codes.push(t.await.unwrap());
    }
    let wrong = codes.iter().filter(|c| **c == 401).count();
    let braked = codes.iter().filter(|c| **c == 429).count();
    assert!(wrong <= 5, "{wrong} verifications ran (the brake allows 5)");
    assert_eq!(wrong + braked, 200, "{codes:?}");
    let after = peak_mib(s.child.id());
    eprintln!("login race: {wrong} × 401, {braked} × 429; peak memory {before} → {after} MiB");
    // Two Argon2 verifications at once take about 40 MiB; the race took gigabytes.
    assert!(
        after < before + 160,
        "memory grew from {before} to {after} MiB"
    );
}

fn raw(url: &str) -> TcpStream {
    let addr = url.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the server closes the connection; true if it did (not a timeout).
fn closed_by_server(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn status_line(s: &mut TcpStream) -> String {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line
}

/// Finding 2: unauthenticated bodies are refused from the headers, before
/// the body is read; slow headers, slow bodies and idle connections are cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_slow_clients_hold_nothing() {
    let s = served(
        "slow",
        "[limits]\nheader_read_timeout_secs = 1\nbody_read_timeout_secs = 1\n",
    )
    .await;
    let before = peak_mib(s.child.id());
    let url = s.url.clone();
    let answers = tokio::task::spawn_blocking(move || {
        let mut conns = Vec::new();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..300 {
            let mut c = raw(&url);
            write!(c, "POST /webhooks/thena/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048575\r\n\r\n").unwrap();
            let _ = c.write_all(&chunk);
            conns.push(c);
        }
        conns.iter_mut().map(status_line).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(
        answers.iter().all(|l| l.contains(" 401 ")),
        "{:?}",
        &answers[..3]
    );
    let after = peak_mib(s.child.id());
    eprintln!("300 unauthenticated 1 MiB bodies: peak memory {before} → {after} MiB");
    assert!(
        after < before + 60,
        "memory grew from {before} to {after} MiB"
    );

    let url = s.url.clone();
    tokio::task::spawn_blocking(move || {
        // Headers that never finish: closed after the header deadline.
        let mut c = raw(&url);
        c.write_all(b"POST /webhooks/thena/acme HTTP/1.1\r\nHost: x\r\n").unwrap();
        assert!(closed_by_server(c), "a slow-header connection stays open");
        // An idle keep-alive connection: closed too.
        let mut c = raw(&url);
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(status_line(&mut c).contains(" 200 "));
        assert!(closed_by_server(c), "an idle connection stays open");
        // An authenticated body that stalls: 408 after the body deadline.
        let mut c = raw(&url);
        write!(c, "POST /webhooks/thena/acme HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n{{\"action\"").unwrap();
        assert!(status_line(&mut c).contains(" 408 "));
    })
    .await
    .unwrap();
}

/// Finding 5: names anyone can put in the URL never become metric labels;
/// `/metrics` can require a bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_stay_bounded_and_metrics_can_need_a_token() {
    let s = served("metrics", "metrics_token = \"metrics-secret-0123456789\"\n").await;
    let http = http();
    let big = vec![b'x'; 1024 * 1024 + 10];
    for i in 0..200 {
        // The answer comes from the headers, so the server may close before
        // the client has written its body: a broken pipe is that answer too.
        let r = http
            .post(format!("{}/webhooks/thena/name-{i}", s.url))
            .body(big.clone())
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status(), 404);
        }
    }
    // A fresh client: the server closed the connections it answered from the headers.
    let http = fresh_client();
    let r = http.get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 401, "metrics need the token");
    let text = http
        .get(format!("{}/metrics", s.url))
        .bearer_auth("metrics-secret-0123456789")
        .fetch_text()
        .await;
    assert!(!text.contains("name-1"), "a caller's name became a label");
    assert!(text.contains("thena_sf_events_received_total{connection=\"(unknown)\",result=\"unknown_connection\"}"), "{text}");
    assert!(text.len() < 16 * 1024, "{} bytes", text.len());
}

/// Finding 3: a request that will be skipped creates no field; one that is
/// sent creates at most the per-event cap, and the connection never more
/// than its cap; what is over is noted on the activity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_flood_creates_only_capped_fields_for_sent_records() {
    let s = served(
        "flood",
        "[limits]\nmax_categories_per_event = 20\nmax_category_fields = 30\n",
    )
    .await;
    let http = http();
    let fields = |n: usize, tag: &str| -> Vec<Value> {
        (0..n).map(|i| json!({"category_name": format!("{tag} {i}"), "values": [{"name": "v", "value": "v"}]})).collect()
    };
    let now = chrono::Utc::now().timestamp_millis() + 1000;
    let post = |id: &str, email: &str, cats: Vec<Value>| {
        let body = json!({"action": "UPDATE", "request": {"requestId": id, "createdAt": now, "updatedAt": now + 1,
            "requestor": {"name": "X", "email": email}, "customer": {"teamName": "Nobody Inc"}, "customFields": cats}});
        let (http, url) = (http.clone(), s.url.clone());
        async move {
            let r = test_support::post_webhook(&http, &url, "acme", TOKEN, &body).await;
            r.status().as_u16()
        }
    };
    let describe_count = || async {
        let sf = emulator::org_client(&s.emu.base_url).await;
        sf.invalidate_describes();
        sf.describe("Request__c").await.unwrap().fields.len()
    };
    let base_fields = describe_count().await;
    assert_eq!(
        post("SKIPPED", "nobody@unknown.example", fields(5000, "A")).await,
        200
    );
    assert_eq!(
        post("SENT-1", "known@acme.io", fields(5000, "B")).await,
        200
    );
    assert_eq!(post("SENT-2", "known@acme.io", fields(40, "C")).await, 200);
    let store = open_store(&s.data).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = store.counts("acme").await.unwrap();
        if c.pending == 0 && c.synced == 2 && c.skipped == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let added = describe_count().await - base_fields;
    assert_eq!(
        added, 30,
        "20 from SENT-1, 10 more up to the connection's cap; none from SKIPPED"
    );
    let activity = store.activity("acme", 10, 0).await.unwrap();
    let sent1 = activity.iter().find(|a| a.request_id == "SENT-1").unwrap();
    assert!(
        sent1
            .detail
            .as_deref()
            .unwrap()
            .contains("4980 categories not mapped"),
        "{sent1:?}"
    );
    let sent2 = activity.iter().find(|a| a.request_id == "SENT-2").unwrap();
    assert!(
        sent2
            .detail
            .as_deref()
            .unwrap()
            .contains("30 categories not mapped"),
        "{sent2:?}"
    );
}

async fn open_store(data: &Path) -> thena_sf::store::Store {
    test_support::app::open_store(data, None).await
}

async fn login(url: &str, origin: Option<&str>) -> (u16, Option<String>) {
    let mut req = http()
        .post(format!("{url}/login"))
        .form(&[("password", PASSWORD)]);
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    let r = req.send().await.unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    (r.status().as_u16(), cookie)
}

async fn page_status(url: &str, cookie: &str) -> u16 {
    http()
        .get(format!("{url}/integrations"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Findings 6, 7 and 8: a new password ends every session; the store is
/// private and repaired at start; origins are checked against `public_url`;
/// the CSP limits where forms go; signatures' timestamps cannot overflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_files_origins_and_signatures() {
    let mut s = served("misc", "").await;
    let (status, cookie) = login(&s.url, None).await;
    assert_eq!(status, 303);
    let cookie = cookie.unwrap();
    assert_eq!(page_status(&s.url, &cookie).await, 200);
    let csp = http()
        .get(format!("{}/login", s.url))
        .send()
        .await
        .unwrap()
        .headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("form-action 'self' https://*.salesforce.com"),
        "{csp}"
    );

    // 7: private files, and repaired when someone opened them up.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.data), 0o700);
    for f in ["thena-sf.db", "thena-sf.db-wal", "thena-sf.db-shm"] {
        assert_eq!(mode(&s.data.join(f)), 0o600, "{f}");
    }
    let db = s.data.join("thena-sf.db");
    let raw_db = std::fs::read(&db).unwrap();
    assert!(
        !String::from_utf8_lossy(&raw_db).contains(&cookie[cookie.find('=').unwrap() + 1..]),
        "the session cookie is in the store"
    );

    // 6: a new password ends every session.
    let out = cli!(&s.data)
        .command()
        .arg("admin-password")
        .env("THENA_SF_ADMIN_PASSWORD", "another long password 42")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        page_status(&s.url, &cookie).await,
        303,
        "the old session still works"
    );

    std::fs::set_permissions(&s.data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _ = s.child.kill();
    let _ = s.child.wait();
    // 8: with a configured public_url, an Origin that only matches the Host is refused.
    let config = std::fs::read_to_string(s.data.join("c.toml")).unwrap();
    std::fs::write(
        s.data.join("c.toml"),
        format!("public_url = \"https://thena-sf.example.com\"\n{config}"),
    )
    .unwrap();
    (s.child, s.url) = cli!(&s.data).serve();
    assert_eq!(mode(&s.data), 0o700, "repaired at start");
    assert_eq!(mode(&db), 0o600, "repaired at start");
    let (status, _) = login(&s.url, Some(&s.url)).await;
    assert_eq!(status, 403, "an origin matching only the Host header");
    let (status, _) = login(&s.url, Some("https://thena-sf.example.com")).await;
    assert_ne!(status, 403);
}

/// Finding 8: a signing window compared without overflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extreme_signature_timestamp_is_refused() {
    let s = served("sig", "").await;
    cli!(&s.data).connect(
        "signed",
        &s.emu.base_url,
        TOKEN,
        // The org "acme" already syncs: a second connection, on purpose.
        &[
            "--signing-secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "--same-org-ok",
        ],
    );
    for ts in [i64::MIN.to_string(), i64::MAX.to_string()] {
        let r = http()
            .post(format!("{}/webhooks/thena/signed", s.url))
            .bearer_auth(TOKEN)
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", &ts)
            .header("webhook-signature", "v1,AAAA")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{ts}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("5-minute window"),
            "{body}"
        );
    }
}
