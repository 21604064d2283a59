//! Conformance: the real jsforce (npm) and simple-salesforce (PyPI) clients
//! drive an emulator started in-process. `scripts/install-test-deps.sh`
//! installs both at pinned versions (the README's test command runs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use sf_emulator::EmulatorConfig;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    println!("{what}:\n{stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_accepts_the_emulator() {
    let dir = repo_root().join("conformance/jsforce");
    assert!(
        dir.join("node_modules/jsforce").exists(),
        "jsforce is not installed: run scripts/install-test-deps.sh (the README's test command does)"
    );
    let emu = sf_emulator::start("127.0.0.1:0", EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let mut cmd = Command::new("node");
    cmd.arg("--test")
        .arg("conformance.test.mjs")
        .current_dir(&dir)
        .env("SF_EMULATOR_URL", &emu.base_url);
    let what = format!("jsforce conformance against {}", emu.base_url);
    tokio::task::spawn_blocking(move || run(cmd, &what))
        .await
        .expect("runner");
    emu.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_accepts_the_emulator_over_tls() {
    let root = repo_root();
    let python = std::env::var("SF_CONFORMANCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/conformance-venv/bin/python"));
    assert!(
        python.exists(),
        "simple-salesforce is not installed at {}: run scripts/install-test-deps.sh",
        python.display()
    );
    let dir = std::env::temp_dir().join(format!("sf-emulator-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = dir.join("emulator-ca.pem");
    let config = EmulatorConfig {
        tls: true,
        tls_cert_out: Some(ca.clone()),
        ..Default::default()
    };
    let emu = sf_emulator::start("127.0.0.1:0", config)
        .await
        .expect("emulator starts");
    assert!(emu.base_url.starts_with("https://"));
    let mut cmd = Command::new(python);
    cmd.args(["-m", "unittest", "-v", "test_conformance"])
        .current_dir(root.join("conformance/simple_salesforce"))
        .env("SF_EMULATOR_URL", &emu.base_url)
        .env("SF_EMULATOR_CA", &ca);
    let what = format!("simple-salesforce conformance against {}", emu.base_url);
    tokio::task::spawn_blocking(move || run(cmd, &what))
        .await
        .expect("runner");
    emu.shutdown().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(dir);
}
