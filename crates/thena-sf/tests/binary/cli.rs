//! The `thena-sf` binary: connect (password grant and refresh token, JSON
//! output), provision, doctor with and without --fix, a shared --data-dir, and
//! connections declared in the config file.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sf_emulator::EmulatorConfig;
use test_support::emulator::{self, connect_args};
use test_support::process::{first_line, says, spawn_listening, text, url_in};
use test_support::Fetch;
use test_support::TempDir;

fn dir(tag: &str) -> TempDir {
    TempDir::new(&format!("thena-sf-cli-{tag}"))
}

/// `thena-sf --data-dir <data> <args>`, without a key or config from the environment.
fn command(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_thena-sf"));
    c.arg("--data-dir")
        .arg(data)
        .env_remove("THENA_SF_SECRET_KEY")
        .env_remove("THENA_SF_CONFIG");
    c
}

fn thena<S: AsRef<OsStr>>(data: &Path, args: impl IntoIterator<Item = S>) -> Output {
    command(data).args(args).output().unwrap()
}

/// `connect <name>` to the emulator at `base` as its admin, plus `extra`, off the runtime's threads.
async fn connect_cli(data: &Path, name: &str, base: &str, extra: &[&str]) -> Output {
    let data = data.to_path_buf();
    let mut args = connect_args(name, base);
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || thena(&data, args))
        .await
        .unwrap()
}

/// `thena-sf <args>` off the runtime's threads.
async fn thena_async(data: &Path, args: &[&str]) -> Output {
    let data = data.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || thena(&data, args))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_provision_doctor_fix() {
    let emu = emulator::start(EmulatorConfig::default()).await;
    let base = emu.base_url.clone();
    let d = dir("main");
    let data = d.to_path_buf();
    let out = connect_cli(&data, "acme", &base, &["--json"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["webhook_url"],
        "http://127.0.0.1:8080/webhooks/thena/acme"
    );
    assert!(v["webhook_token"].as_str().unwrap().starts_with("tsf_"));
    assert_eq!(v["instance_url"], base.as_str());
    assert!(v["connected_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        std::fs::metadata(data.join("secret.key")).is_ok(),
        "a key file was made"
    );

    let out = thena_async(&data, &["provision", "acme"]).await;
    assert!(out.status.success());
    assert!(text(&out).contains("nothing to change"), "{}", text(&out));

    let doctor = |fix: bool| {
        let args: &[&str] = if fix {
            &["doctor", "acme", "--fix"]
        } else {
            &["doctor", "acme"]
        };
        thena_async(&data, args)
    };
    let out = doctor(false).await;
    says(&out, true, ", 0 failed");

    // Remove the layout's related list: the doctor fails with the FAQ's symptom, --fix repairs it.
    emu.emulator.org.write().layouts.values_mut().for_each(|l| {
        l.related_lists.retain(|r| r != "Request__c.Account__c");
        l.body_xml = l.body_xml.replace(
            "<relatedList>Request__c.Account__c</relatedList>",
            "<relatedList>RelatedNoteList</relatedList>",
        );
    });
    let out = doctor(false).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("I can't see requests in the Account view"),
        "{}",
        text(&out)
    );
    let out = doctor(true).await;
    says(&out, true, "added the Requests related list");

    // Nothing secret in what the commands printed (besides the one-time token of connect).
    let secret_key = std::fs::read(data.join("secret.key")).unwrap();
    assert_eq!(secret_key.len(), 32);
    emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_by_refresh_token_and_from_the_config_file() {
    let emu = emulator::start(EmulatorConfig::default()).await;
    let base = emu.base_url.clone();
    // A refresh token from the web flow.
    let app = salesforce::OAuthApp {
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        ..emulator::oauth_app(&base)
    };
    let tokens = emulator::web_flow_tokens(&app).await;
    let rt = tokens
        .refresh_token
        .expect("a refresh token")
        .expose()
        .to_string();

    let d = dir("rt");
    let data = d.to_path_buf();
    let out = thena_async(
        &data,
        &[
            "connect",
            "globex",
            "--login-url",
            &base,
            "--client-id",
            emulator::CLIENT_ID,
            "--client-secret",
            emulator::CLIENT_SECRET,
            "--refresh-token",
            &rt,
            "--webhook-token",
            "my-token-0123456789abcdef0123456789",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("Webhook URL:   http://127.0.0.1:8080/webhooks/thena/globex")
            && t.contains("Authorization: my-token"),
        "{t}"
    );
    assert!(!t.contains(&rt), "the refresh token is never printed");

    // A connection declared in the config file is connected on first use.
    let d2 = dir("cfg");
    let cfg = d2.join("thena-sf.toml");
    std::fs::write(&cfg, format!("public_url = \"https://sync.example\"\n[[connections]]\nname = \"initech\"\nlogin_url = \"{base}\"\nclient_id = \"local-client\"\nclient_secret = \"local-secret\"\nrefresh_token_env = \"INITECH_RT\"\n")).unwrap();
    let out = tokio::task::spawn_blocking({
        let (data, cfg, rt) = (d2.join("data"), cfg.clone(), rt.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_thena-sf"))
                .arg("--config")
                .arg(&cfg)
                .arg("--data-dir")
                .arg(&data)
                .args(["doctor", "initech"])
                .env("INITECH_RT", &rt)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    says(&out, true, "connected initech from the config file");

    let out = thena_async(&data, &["doctor", "nope"]).await;
    says(&out, false, "no connection named 'nope'");
    emu.shutdown().await.unwrap();
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let d = dir("bad");
    // Webhook tokens anyone could guess are refused, by flag or variable.
    for (flag, env) in [
        (Some(""), None),
        (Some("abc"), None),
        (None, Some("short-token")),
    ] {
        let mut cmd = command(&d);
        cmd.args([
            "connect",
            "ok",
            "--login-url",
            "https://x.example",
            "--client-id",
            "x",
            "--refresh-token",
            "y",
        ]);
        if let Some(f) = flag {
            cmd.args(["--webhook-token", f]);
        }
        if let Some(e) = env {
            cmd.env("THENA_SF_WEBHOOK_TOKEN", e);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        assert!(
            text(&out).contains("needs at least 32"),
            "{flag:?} {env:?}: {}",
            text(&out)
        );
    }
    let out = thena(
        &d,
        [
            "connect",
            "bad name!",
            "--login-url",
            "https://x.example",
            "--client-id",
            "x",
            "--refresh-token",
            "y",
        ],
    );
    says(&out, false, "must be 1 to 64 letters");
    let out = thena(
        &d,
        [
            "connect",
            "ok",
            "--login-url",
            "http://evil.example",
            "--client-id",
            "x",
            "--refresh-token",
            "y",
        ],
    );
    assert!(text(&out).contains("must be https"), "{}", text(&out));
    let out = thena(
        &d,
        [
            "connect",
            "ok",
            "--login-url",
            "https://x.example",
            "--client-id",
            "x",
        ],
    );
    assert!(
        text(&out).contains("--username and --password, or --refresh-token"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_syncs_and_stops_cleanly_on_sigterm() {
    let emu = emulator::start(EmulatorConfig::default()).await;
    let base = emu.base_url.clone();
    let d = dir("serve");
    let data = d.to_path_buf();
    let out = connect_cli(
        &data,
        "acme",
        &base,
        &[
            "--webhook-token",
            "tok-0123456789abcdef0123456789-cli",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let mut child = command(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    assert!(
        line.starts_with("thena-sf listening on http://127.0.0.1:"),
        "{line}"
    );
    let url = url_in(&line);
    let post = |token: String, id: &'static str| {
        let url = url.clone();
        async move {
            let now = chrono::Utc::now().timestamp_millis();
            let body = serde_json::json!({"action": "CREATE", "request": {"requestId": id, "createdAt": now + 10, "updatedAt": now + 20,
                "requestor": {"name": "Someone New", "email": "someone@gmail.com"}, "customer": {"teamName": "Nobody"}}});
            let http = reqwest::Client::new();
            let r = test_support::post_webhook(&http, &url, "acme", &token, &body).await;
            r.status().as_u16()
        }
    };
    assert_eq!(
        post("tok-0123456789abcdef0123456789-cli".into(), "SRV-1").await,
        200
    );
    assert_eq!(
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    // It is skipped (public mail, no workspace match): `status` and `skipped list` say so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = thena_async(&data, &["skipped", "list", "acme"]).await;
        if text(&out).contains("SRV-1") {
            assert!(
                text(&out).contains("gmail.com is a public mail domain"),
                "{}",
                text(&out)
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never skipped: {}",
            text(&out)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = thena_async(&data, &["status", "acme"]).await;
    assert!(text(&out).contains("0 synced, 1 skipped"), "{}", text(&out));
    assert!(text(&out).contains("last webhook: 20"), "{}", text(&out));

    // A new token from the command line: the running server takes it (from
    // the store, on its next lease tick) and keeps the old one for the grace.
    let out = thena_async(&data, &["roll-token", "acme", "--grace-hours", "1"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let new = text(&out)
        .lines()
        .find_map(|l| l.strip_prefix("webhook token: "))
        .expect("the new token is printed")
        .trim()
        .to_string();
    assert!(
        text(&out).contains("The old token keeps working until"),
        "{}",
        text(&out)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while post(new.clone(), "SRV-2").await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never took the new token"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        post("tok-0123456789abcdef0123456789-cli".into(), "SRV-3").await,
        200,
        "the old one, in its grace"
    );
    let out = thena_async(&data, &["roll-token", "acme", "--grace-hours", "5"]).await;
    says(&out, false, "not a grace period offered");
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "clean exit: {status}");
    // Disconnect from the command line: gone here, its token revoked there.
    let out = thena_async(&data, &["disconnect", "acme"]).await;
    says(&out, true, "its refresh token was revoked");
    let out = thena_async(&data, &["status", "acme"]).await;
    says(&out, false, "no connection named 'acme'");
    emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_metrics_errors_or_pages_after_a_full_run() {
    use std::io::Read;
    use std::process::Stdio;

    let emu = emulator::start_seeded(serde_json::json!({"users": [{"username": "admin@example.com", "password": "pw-9f8e7d6c-secret", "last_name": "Admin"}], "accounts": [{"Name": "Acme Corp"}], "contacts": [{"LastName": "Harsh", "Email": "harsh@acme.io", "AccountName": "Acme Corp"}]})).await;
    let base = emu.base_url.clone();
    let d = dir("secrets");
    let data = d.to_path_buf();
    let token = "whk-secret-7c1f0a9d-0123456789abcdef0123456789";
    let mut connect = connect_args("acme", &base);
    connect[11] = "pw-9f8e7d6c-secret".into();
    connect.extend(["--webhook-token".into(), token.into()]);
    let out = tokio::task::spawn_blocking({
        let data = data.clone();
        move || {
            command(&data)
                .args(connect)
                .env("RUST_LOG", "trace")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success());
    let (mut child, url) = spawn_listening(
        command(&data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "trace")
            // The JSON lines carry every span's fields: they are grepped too.
            .env("THENA_SF_LOG_FORMAT", "json")
            .stderr(Stdio::piped()),
    );
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let http = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp_millis();
    let mut bodies = String::new();
    for i in 0..5 {
        let body = serde_json::json!({"action": "UPDATE", "request": {"requestId": format!("SEC-{i}"), "createdAt": now + 10, "updatedAt": now + 20, "requestor": {"name": "Harsh", "email": "harsh@acme.io"}}});
        let r = test_support::post_webhook(&http, &url, "acme", token, &body).await;
        bodies.push_str(&r.text().await.unwrap());
    }
    for bad in [
        ("wrong", "{}"),
        (token, "{not json"),
        (token, r#"{"action":"UPDATE","request":{}}"#),
    ] {
        let r = http
            .post(format!("{url}/webhooks/thena/acme"))
            .header("Authorization", bad.0)
            .body(bad.1)
            .send()
            .await
            .unwrap();
        bodies.push_str(&r.text().await.unwrap());
    }
    // Expire the session mid-run so a refresh (a re-login) happens and is logged.
    emu.emulator.auth.lock().expire_all();
    let body = serde_json::json!({"action": "UPDATE", "request": {"requestId": "SEC-9", "createdAt": now + 10, "updatedAt": now + 30}});
    test_support::post_webhook(&http, &url, "acme", token, &body).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let metrics = loop {
        let m = http.get(format!("{url}/metrics")).fetch_text().await;
        if m.contains("outcome=\"synced\"} 5") || std::time::Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(metrics.contains("outcome=\"synced\"} 5"), "{metrics}");
    // The admin page, logged in with the password generated at first start.
    let admin_password = std::fs::read_to_string(data.join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(format!("{url}/login"))
        .form(&[("password", admin_password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let session = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut pages = String::new();
    for path in [
        "/integrations",
        "/connect",
        "/connections/acme",
        "/connections/acme?tab=skipped",
        "/connections/acme?tab=failed",
        "/connections/acme?tab=setup",
        "/connections/acme/disconnect",
        "/oauth/callback?code=x&state=y",
    ] {
        let r = browser
            .get(format!("{url}{path}"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500, "{path}");
        pages.push_str(&r.text().await.unwrap());
    }
    assert!(pages.contains("SEC-0"), "the pages show the run");
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap();
    let logs = log.join().unwrap()
        + &String::from_utf8_lossy(&out.stderr)
        + &String::from_utf8_lossy(&out.stdout).replace(token, "");
    assert!(
        logs.len() > 1000,
        "trace logs were captured ({} bytes)",
        logs.len()
    );
    // Every secret the run handled.
    let sessions: Vec<String> = emu
        .emulator
        .auth
        .lock()
        .credentials
        .iter()
        .map(|c| c.password.clone())
        .collect();
    let store = thena_sf::store::Store::open(
        &data,
        thena_sf::crypto::SecretBox::with_key(&data, None).unwrap(),
    )
    .await
    .unwrap();
    let conn = store.connection("acme").await.unwrap();
    let mut secrets = vec![
        token.to_string(),
        "local-secret".to_string(),
        conn.tokens.access_token.expose().to_string(),
        admin_password.clone(),
        session.split_once('=').unwrap().1.to_string(),
    ];
    secrets.extend(sessions);
    for s in &secrets {
        for (where_, text) in [
            ("logs", &logs),
            ("metrics", &metrics),
            ("responses", &bodies),
            ("admin pages", &pages),
        ] {
            assert!(
                !text.contains(s.as_str()),
                "a secret ({} chars) appears in the {where_}",
                s.len()
            );
        }
    }
    emu.shutdown().await.unwrap();
}

/// Against an org with three Account layouts over three profiles, `connect`
/// names each layout it changed; against an org that blocks the
/// username-password flow, `--password` explains what that answer means.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_names_each_layout_and_a_blocked_password_flow_explains_itself() {
    let emu = emulator::start_seeded(serde_json::json!({
        "layouts": [
            {"object": "Account", "name": "Support Layout", "profiles": ["Standard User"]},
            {"object": "Account", "name": "Partner Layout", "profiles": ["Partner Manager"]}
        ]
    }))
    .await;
    let d = dir("layouts");
    let out = connect_cli(&d, "acme", &emu.base_url, &[]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for l in [
        "Account-Account Layout",
        "Account-Support Layout",
        "Account-Partner Layout",
    ] {
        assert!(
            t.contains(&format!(
                "added the Requests related list to the layout {l}"
            )),
            "{l}: {t}"
        );
    }

    let blocked =
        emulator::start_seeded(serde_json::json!({"org": {"password_flow": false}})).await;
    let d = dir("blocked");
    let out = connect_cli(&d, "acme", &blocked.base_url, &[]).await;
    let t = text(&out);
    assert!(!out.status.success());
    for part in [
        "authentication failure",
        "blocks the OAuth username-password flow",
        "--refresh-token",
        "docs/external-client-app.md",
    ] {
        assert!(t.contains(part), "{part}: {t}");
    }
}

#[test]
fn version_names_the_build_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_thena-sf"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        v.starts_with(&format!("thena-sf {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    // Built from this checkout: the commit is the one git names.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(
        !head.is_empty() && v.ends_with(&format!("(commit {head})")),
        "{v} vs {head}"
    );
}

/// `connect` refuses a second connection to an org that already has one
/// (nothing is stored) unless `--same-org-ok`; connecting the same name
/// again is a reconnect and is not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_to_one_org_needs_same_org_ok() {
    let emu = emulator::start(EmulatorConfig::default()).await;
    let base = emu.base_url.clone();
    let d = dir("same-org");
    let data = d.to_path_buf();
    let out = connect_cli(&data, "acme", &base, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = connect_cli(&data, "acme-again", &base, &[]).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("already connected as 'acme'") && text(&out).contains("--same-org-ok"),
        "{}",
        text(&out)
    );
    let out = thena_async(&data, &["status", "acme-again"]).await;
    assert!(!out.status.success(), "nothing was stored: {}", text(&out));
    let out = connect_cli(&data, "acme", &base, &[]).await;
    assert!(out.status.success(), "a reconnect: {}", text(&out));
    let out = connect_cli(&data, "acme-again", &base, &["--same-org-ok"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = thena_async(&data, &["status", "acme-again"]).await;
    assert!(out.status.success(), "{}", text(&out));
}
