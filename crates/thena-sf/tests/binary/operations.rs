//! Running where companies run it: Salesforce reached through the company's
//! CA (the emulator's `--tls` CA given by `SSL_CERT_FILE`, `SSL_CERT_DIR` or
//! `ca_file`) and through its proxy (`HTTPS_PROXY` or the `proxy` key, a
//! CONNECT proxy started here that counts what passed), for `connect` and
//! `serve` run as processes.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use sf_emulator::EmulatorConfig;
use test_support::process::{says, spawn_listening};
use test_support::{cli, emulator, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "ops-token-0123456789abcdef0123456789abcdef";

fn dir(tag: &str) -> TempDir {
    let d = TempDir::new(&format!("thena-sf-ops-{tag}"));
    config(&d, "");
    d
}

/// Writes `<data>/c.toml`: the store under `data`, then `extra`.
fn config(data: &Path, extra: &str) {
    cli!(data).write_config(extra);
}

/// The seed: the admin, one Account and one Contact at it.
fn one_contact() -> serde_json::Value {
    json!({
        "users": [{"username": "admin@example.com", "password": "emulator", "last_name": "Admin"}],
        "accounts": [{"Name": "Acme Corp"}],
        "contacts": [{"LastName": "Harsh", "Email": "harsh@acme.io", "AccountName": "Acme Corp"}]
    })
}

/// An emulator serving HTTPS with a CA of its own, seeded with one Contact.
async fn tls_emulator() -> sf_emulator::Running {
    let seed = emulator::seed_of(one_contact());
    sf_emulator::start(
        "127.0.0.1:0",
        EmulatorConfig {
            seed,
            tls: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Runs a prepared command to its end off the async runtime.
async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn requests_in(emu: &sf_emulator::Running) -> usize {
    emu.emulator
        .org
        .read()
        .table("Request__c")
        .map_or(0, |t| t.len())
}

/// Serves with `env`, posts one webhook for `id`, and waits until the
/// emulator holds `expect` requests.
async fn serve_and_sync(
    data: &Path,
    env: &[(&str, &str)],
    emu: &sf_emulator::Running,
    id: &str,
    expect: usize,
) {
    let mut c = cli!(data).serve_command();
    c.envs(env.iter().copied())
        .stderr(if std::env::var_os("OPS_DEBUG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    let (mut child, url) = spawn_listening(&mut c);
    let now = chrono::Utc::now().timestamp_millis();
    let body = json!({"action": "UPDATE", "request": {"requestId": id, "createdAt": now + 10, "updatedAt": now + 20, "requestor": {"name": "Harsh", "email": "harsh@acme.io"}}});
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = test_support::post_webhook(&http, &url, "acme", TOKEN, &body).await;
    assert!(r.status().is_success(), "{}", r.status());
    let deadline = Instant::now() + Duration::from_secs(30);
    while requests_in(emu) < expect {
        assert!(
            Instant::now() < deadline,
            "{id} never reached the org through {env:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_serve_trust_the_ca_given_each_way() {
    let emu = tls_emulator().await;
    let base = emu.base_url.clone();
    let d = dir("ca");
    let certs = d.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = certs.join("emulator-ca.pem");
    std::fs::write(&ca, emu.ca_pem.as_ref().unwrap()).unwrap();

    // Untrusted: the error says so and names the settings.
    let mut c = cli!(&d).connect_command("acme", &base, TOKEN);
    c.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    let out = run(c).await;
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("is not trusted"), "{said}");
    assert!(
        said.contains("ca_file") && said.contains("SSL_CERT_FILE"),
        "{said}"
    );

    // Each way of giving the CA: connect, then serve and sync one request.
    let ca_s = ca.display().to_string();
    let certs_s = certs.display().to_string();
    let ways: [(&str, Vec<(&str, &str)>); 3] = [
        ("ssl-cert-file", vec![("SSL_CERT_FILE", ca_s.as_str())]),
        ("ssl-cert-dir", vec![("SSL_CERT_DIR", certs_s.as_str())]),
        ("ca-file", vec![("THENA_SF_CA_FILE", ca_s.as_str())]),
    ];
    for (n, (way, env)) in ways.iter().enumerate() {
        let data = d.join(way);
        std::fs::create_dir_all(&data).unwrap();
        // The config key itself (THENA_SF_CA_FILE is its variable).
        let extra = if *way == "ca-file" {
            format!("ca_file = {:?}\n", ca_s)
        } else {
            String::new()
        };
        config(&data, &extra);
        let env: Vec<(&str, &str)> = if *way == "ca-file" {
            vec![]
        } else {
            env.clone()
        };
        let mut c = cli!(&data).connect_command("acme", &base, TOKEN);
        c.envs(env.iter().copied());
        let out = run(c).await;
        assert!(out.status.success(), "{way}: {}", text(&out));
        serve_and_sync(&data, &env, &emu, &format!("CA-{way}"), n + 1).await;
    }
    emu.shutdown().await.unwrap();
}

/// Each tunnel's target and the `Proxy-Authorization` it came with.
type Tunnels = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A CONNECT proxy on 127.0.0.1 that records each tunnel's target and the
/// `Proxy-Authorization` it was asked with; with `require` set, it answers
/// 407 to any other.
struct Proxy {
    url: String,
    tunnels: Tunnels,
}

async fn proxy(require: Option<&'static str>) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tunnels = Arc::new(Mutex::new(Vec::new()));
    let seen = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(tunnel(sock, seen.clone(), require));
        }
    });
    Proxy { url, tunnels }
}

async fn tunnel(mut client: TcpStream, seen: Tunnels, require: Option<&'static str>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut lines = head.split("\r\n");
    let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    let auth = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_string());
    if first.first() != Some(&"CONNECT") || first.len() < 2 {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    }
    let target = first[1].to_string();
    seen.lock().push((target.clone(), auth.clone()));
    if require.is_some() && auth.as_deref() != require {
        let _ = client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm=\"test\"\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_ok()
    {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_calls_go_through_the_proxy_named() {
    let emu = tls_emulator().await;
    let base = emu.base_url.clone();
    let target = base.trim_start_matches("https://").to_string();
    let d = dir("proxy");
    let ca = d.join("ca.pem");
    std::fs::write(&ca, emu.ca_pem.as_ref().unwrap()).unwrap();
    let ca_s = ca.display().to_string();
    let open = proxy(None).await;

    // HTTPS_PROXY: connect and serve tunnel through it, to the org only.
    let env = [
        ("SSL_CERT_FILE", ca_s.as_str()),
        ("HTTPS_PROXY", open.url.as_str()),
        ("NO_PROXY", ""),
    ];
    let mut c = cli!(&d).connect_command("acme", &base, TOKEN);
    c.envs(env);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out));
    let after_connect = open.tunnels.lock().len();
    assert!(after_connect > 0, "connect did not use HTTPS_PROXY");
    serve_and_sync(&d, &env, &emu, "PX-1", 1).await;
    let all = open.tunnels.lock().clone();
    assert!(all.len() > after_connect, "serve did not use HTTPS_PROXY");
    assert!(all.iter().all(|(t, _)| *t == target), "{all:?}");

    // NO_PROXY names the org: nothing passes through the proxy.
    let before = open.tunnels.lock().len();
    let bypass = [
        ("SSL_CERT_FILE", ca_s.as_str()),
        ("HTTPS_PROXY", open.url.as_str()),
        ("NO_PROXY", "127.0.0.1"),
    ];
    serve_and_sync(&d, &bypass, &emu, "PX-2", 2).await;
    assert_eq!(open.tunnels.lock().len(), before, "NO_PROXY was ignored");

    // The `proxy` key, with credentials, wins over HTTPS_PROXY; the
    // credentials reach the proxy and nothing the connector prints.
    let guarded = proxy(Some("Basic dXNlcjpwcm94eS1zM2NyZXQ=")).await;
    let keyed = guarded.url.replace("http://", "http://user:proxy-s3cret@");
    config(&d, &format!("proxy = {keyed:?}\nca_file = {ca_s:?}\n"));
    let before = open.tunnels.lock().len();
    let mut c = cli!(&d).command();
    c.env("HTTPS_PROXY", &open.url)
        .env("RUST_LOG", "debug")
        .args(["doctor", "acme"]);
    let out = run(c).await;
    let used = guarded.tunnels.lock().clone();
    assert!(out.status.success(), "{}\n{used:?}", text(&out));
    assert!(!text(&out).contains("proxy-s3cret"), "{}", text(&out));
    assert_eq!(open.tunnels.lock().len(), before);
    let used = guarded.tunnels.lock().clone();
    assert!(!used.is_empty() && used.iter().all(|(t, a)| *t == target && a.is_some()));

    // A proxy that refuses the tunnel is named as the reason.
    config(
        &d,
        &format!("proxy = {:?}\nca_file = {ca_s:?}\n", guarded.url),
    );
    let mut c = cli!(&d).command();
    c.args(["doctor", "acme"]);
    let out = run(c).await;
    says(&out, false, "proxy refused");
    emu.shutdown().await.unwrap();
}

/// Sends SIGTERM and waits for the process to end.
fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// A plain emulator with one Contact, connected as `acme` in a fresh store.
async fn connected(tag: &str, extra_config: &str) -> (sf_emulator::Running, TempDir) {
    let emu = emulator::start_seeded(one_contact()).await;
    let d = dir(tag);
    config(&d, extra_config);
    let out = run(cli!(&d).connect_command("acme", &emu.base_url, TOKEN)).await;
    assert!(out.status.success(), "{}", text(&out));
    (emu, d)
}

/// Posts one webhook for `id` (and one with a wrong token), then waits until
/// the emulator holds `expect` requests.
async fn deliver(url: &str, emu: &sf_emulator::Running, id: &str, expect: usize) {
    let now = chrono::Utc::now().timestamp_millis();
    let body = json!({"action": "UPDATE", "request": {"requestId": id, "createdAt": now + 10, "updatedAt": now + 20, "requestor": {"name": "Harsh", "email": "harsh@acme.io"}}});
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for (token, want) in [("not-the-token", 401), (TOKEN, 200)] {
        let r = test_support::post_webhook(&http, url, "acme", token, &body).await;
        assert_eq!(r.status().as_u16(), want);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while requests_in(emu) < expect {
        assert!(Instant::now() < deadline, "{id} never reached the org");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_say_what_happened_one_line_per_event_without_secrets() {
    use std::io::Read;
    let (emu, d) = connected("logs", "log_format = \"json\"\n").await;
    let mut c = cli!(&d).serve_command();
    c.env_remove("RUST_LOG").stderr(Stdio::piped());
    let (mut child, url) = spawn_listening(&mut c);
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    deliver(&url, &emu, "LOG-1", 1).await;
    // A stop finishes the batch in flight, its log line included.
    tokio::task::spawn_blocking(move || stop(child))
        .await
        .unwrap();
    let log = log.join().unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |msg: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == msg)
            .unwrap_or_else(|| panic!("no {msg:?} line at the default level in:\n{log}"))
    };
    let started = find("worker started");
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["fields"]["connection"], "acme");
    let batch = lines
        .iter()
        .find(|l| l["fields"]["message"] == "batch done" && l["fields"]["synced"] == 1)
        .unwrap_or_else(|| panic!("no batch line with a synced record in:\n{log}"));
    assert_eq!(batch["fields"]["connection"], "acme");
    assert!(batch["fields"]["calls"].as_u64().unwrap() >= 1, "{batch}");
    assert!(batch["fields"]["ms"].is_u64(), "{batch}");
    let refused = find("request refused");
    assert_eq!(refused["fields"]["status"], 401);
    assert_eq!(refused["span"]["path"], "/webhooks/thena/acme");
    assert_eq!(refused["span"]["connection"], "acme");
    assert!(refused["fields"]["latency_ms"].is_u64());
    // A successful delivery is not logged at the default level.
    assert!(!lines
        .iter()
        .any(|l| l["fields"]["message"] == "request answered"));
    for secret in [TOKEN, "emulator", "local-secret"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    emu.shutdown().await.unwrap();
}

/// An OTLP/HTTP collector in this process: every span it receives.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>,
    raw: Arc<Mutex<Vec<u8>>>,
}

async fn collector() -> Collector {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let spans = Arc::new(Mutex::new(Vec::new()));
    let raw = Arc::new(Mutex::new(Vec::new()));
    let (s, r) = (spans.clone(), raw.clone());
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                r.lock().extend_from_slice(&body);
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        s.lock().extend(ss.spans);
                    }
                }
                ""
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Collector { url, spans, raw }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_follow_a_webhook_to_its_commit_and_a_batch_to_salesforce() {
    let (emu, d) = connected("traces", "").await;
    let otel = collector().await;
    let mut c = cli!(&d).serve_command();
    c.env("OTEL_EXPORTER_OTLP_ENDPOINT", &otel.url)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stderr(Stdio::null());
    let (child, url) = spawn_listening(&mut c);
    deliver(&url, &emu, "TRACE-1", 1).await;
    // Stopping flushes what the exporter still holds.
    tokio::task::spawn_blocking(move || stop(child))
        .await
        .unwrap();
    let spans = otel.spans.lock().clone();
    let named = |n: &'static str| spans.iter().filter(move |s| s.name == n);
    let attr = |s: &opentelemetry_proto::tonic::trace::v1::Span, k: &str| {
        s.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.clone())
            .and_then(|v| v.value)
            .map(|v| format!("{v:?}"))
            .unwrap_or_default()
    };
    let webhook = named("request")
        .find(|s| {
            attr(s, "path").contains("/webhooks/thena/acme") && attr(s, "status").contains("200")
        })
        .unwrap_or_else(|| {
            panic!(
                "no webhook request span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert!(
        named("commit")
            .any(|s| s.parent_span_id == webhook.span_id && s.trace_id == webhook.trace_id),
        "no commit span under the webhook's"
    );
    let batch = named("batch")
        .find(|s| attr(s, "connection").contains("acme"))
        .expect("a batch span");
    let calls: Vec<_> = named("salesforce")
        .filter(|s| s.trace_id == batch.trace_id)
        .collect();
    assert!(!calls.is_empty(), "no Salesforce call span under the batch");
    assert!(
        calls
            .iter()
            .any(|s| attr(s, "path").contains("composite/sobjects")),
        "{calls:?}"
    );
    let raw = String::from_utf8_lossy(&otel.raw.lock()).to_string();
    for secret in [TOKEN, "emulator\"", "local-secret", "SELECT"] {
        assert!(!raw.contains(secret), "{secret} exported in a span");
    }
    emu.shutdown().await.unwrap();
}
