//! What tests that run `thena-sf` as a process share: the command with a
//! config and key, `connect` to an emulator as its admin, `serve` on a free
//! port (its URL read from the first line it prints), and a client for the
//! emulator's org.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// A fixed test key (base64 of 0..32), so every process opens the same store.
pub const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// `thena-sf --config <data>/c.toml`, with the test key.
pub fn thena(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_thena-sf"));
    c.arg("--config")
        .arg(data.join("c.toml"))
        .env("THENA_SF_SECRET_KEY", KEY_B64)
        .env_remove("THENA_SF_CONFIG");
    c
}

/// `connect <name>` to the emulator at `base` as its admin, with `token`; panics on failure.
pub fn connect(data: &Path, name: &str, base: &str, token: &str, extra: &[&str]) -> Output {
    let out = connect_command(data, name, base, token)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The command [`connect`] runs, to add to it or to expect it to fail.
pub fn connect_command(data: &Path, name: &str, base: &str, token: &str) -> Command {
    let mut c = thena(data);
    c.args([
        "connect",
        name,
        "--login-url",
        base,
        "--client-id",
        "local-client",
        "--client-secret",
        "local-secret",
        "--username",
        "admin@example.com",
        "--password",
        "emulator",
        "--webhook-token",
        token,
    ]);
    c
}

/// Starts `serve` on a free port; the process and its URL.
pub fn serve(data: &Path) -> (Child, String) {
    let mut c = thena(data);
    c.stderr(Stdio::null());
    serve_command(c)
}

/// Starts `serve` on a free port from a prepared command (environment,
/// stderr); the process and its URL.
pub fn serve_command(mut command: Command) -> (Child, String) {
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    // Keep draining stdout so the process never blocks on it.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    (child, url)
}

/// A client for the emulator's org as admin@example.com.
pub async fn org_client(base: &str) -> salesforce::Client {
    let app = salesforce::OAuthApp {
        login_url: base.into(),
        client_id: "local-client".into(),
        client_secret: Some(salesforce::Secret::new("local-secret")),
        redirect_uri: String::new(),
    };
    let t = app
        .password(
            &reqwest::Client::new(),
            "admin@example.com",
            &salesforce::Secret::new("emulator"),
        )
        .await
        .unwrap();
    salesforce::Client::new(t, Some(app), None, salesforce::ClientConfig::default())
}
