//! The `sf-emulator` binary: its first line, its seed, and a clean shutdown on
//! SIGTERM that saves `--state`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::emulator::password_form;
use test_support::process::{first_line, url_in};

#[test]
fn prints_its_address_serves_the_seed_and_saves_state_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("sf-emulator-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("seed.json");
    std::fs::write(
        &seed,
        r#"{"users": [{"username": "ops@example.com", "password": "pw", "last_name": "Ops"}],
            "accounts": [{"Name": "Acme Corp", "Website": "acme.io"}],
            "contacts": [{"LastName": "Vardhan", "FirstName": "Harsh", "Email": "harsh@acme.io", "AccountName": "Acme Corp"}]}"#,
    )
    .unwrap();
    let state = dir.join("state.json");
    let _ = std::fs::remove_file(&state);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
        .args(["--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .arg("--state")
        .arg(&state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    assert!(
        line.starts_with("sf-emulator listening on http://127.0.0.1:"),
        "{line}"
    );
    let base = url_in(&line);

    let http = reqwest::blocking::Client::new();
    let t: Value = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&password_form("ops@example.com", "pw"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = t["access_token"]
        .as_str()
        .expect("the seeded user logs in")
        .to_string();
    let q: Value = http
        .get(format!("{base}/services/data/v67.0/query"))
        .query(&[(
            "q",
            "SELECT Name, Account.Name FROM Contact WHERE Email = 'harsh@acme.io'",
        )])
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(q["records"][0]["Name"], "Harsh Vardhan");
    assert_eq!(q["records"][0]["Account"]["Name"], "Acme Corp");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit: {status}");
    let saved = std::fs::read_to_string(&state).expect("state saved at shutdown");
    assert!(saved.contains("harsh@acme.io"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_closed_standard_output_does_not_stop_it() {
    // Regression: it wrote its banner with `?` and exited on EPIPE when the
    // reader had gone, taking the server down with it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/_emulator/health"))
            .send()
        {
            assert!(r.status().is_success());
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "it exited");
        assert!(Instant::now() < deadline, "never served");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after writing to a closed pipe"
    );
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
        .args(["--faults", "503=9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0 and 1"));
    let out = Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
        .args(["--seed", "/nonexistent/seed.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read seed file"));
}
