//! `sf-emulator`: a local Salesforce org on one address (login host and instance).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sf_emulator::{EmulatorConfig, FaultSpec, Seed};

#[derive(Parser)]
#[command(
    name = "sf-emulator",
    version,
    about = "A local Salesforce API emulator that real Salesforce clients accept"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8410")]
    listen: String,
    /// Serve HTTPS with a certificate made at start (simple-salesforce only speaks https).
    #[arg(long)]
    tls: bool,
    /// Write the PEM of the CA that signed the TLS certificate here, for clients to trust.
    #[arg(long, requires = "tls")]
    tls_cert_out: Option<PathBuf>,
    /// JSON file with users, connected apps, accounts and contacts to start with.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Load the org from this file at start (if it exists) and save it at shutdown.
    #[arg(long)]
    state: Option<PathBuf>,
    /// API calls allowed in any rolling 24 hours.
    #[arg(long, default_value_t = 100_000)]
    daily_api_limit: u64,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, default_value_t = 7200)]
    token_ttl_secs: u64,
    /// Latency added to every API call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Faults to inject, e.g. "503=0.2,lock=0.05,latency=200ms@0.1,hang=0.01,reset=0.01,seed=7".
    #[arg(long)]
    faults: Option<String>,
    /// The newest API version served.
    #[arg(long, default_value = "67.0")]
    api_version_max: String,
    /// A query no index answers that scans more than N rows fails with
    /// QUERY_TIMEOUT, as on a large real org (off by default).
    #[arg(long, value_name = "N")]
    scan_timeout_rows: Option<usize>,
    /// With --scan-timeout-rows: how long such a query runs before the
    /// QUERY_TIMEOUT answer (a real org: up to about two minutes).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    scan_timeout_wait_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let faults = args
        .faults
        .as_deref()
        .map(FaultSpec::parse)
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("--faults")?
        .unwrap_or_default();
    let mut seed = args
        .seed
        .as_deref()
        .map(Seed::from_file)
        .transpose()
        .map_err(anyhow::Error::msg)?
        .unwrap_or_default();
    if let Some(n) = args.scan_timeout_rows {
        seed.org.scan_timeout_rows = Some(n);
        seed.org.scan_timeout_wait_ms = args.scan_timeout_wait_ms;
    }
    let config = EmulatorConfig {
        tls: args.tls,
        tls_cert_out: args.tls_cert_out,
        seed,
        state_file: args.state,
        daily_api_limit: args.daily_api_limit,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        latency: Duration::from_millis(args.latency_ms),
        faults,
        api_version_max: args.api_version_max,
    };
    let running = sf_emulator::start(&args.listen, config).await?;
    // The banner is for whoever reads standard output; nobody may (a test that
    // reads one line and closes the pipe), and that must not stop the server.
    let banner = format!(
        "sf-emulator listening on {}\n  log in as admin@example.com / emulator; client id local-client, secret local-secret\n",
        running.base_url
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|_| out.flush());
    drop(out);
    shutdown_signal().await;
    eprintln!("sf-emulator: shutting down");
    running.shutdown().await.map_err(anyhow::Error::msg)?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
