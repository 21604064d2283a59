//! `thena-sf`: the connector's command line, a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use salesforce::Secret;
use thena_sf::config::Config;
use thena_sf::connect::{self, ConnectRequest, Credentials};
use thena_sf::operations;
use thena_sf::provision;
use thena_sf::store::Store;

/// The accept path allocates for every event (parse, merge, serialise);
/// mimalloc spends less CPU on that than the system allocator
/// (docs/benchmarks.md, ingest profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `thena-sf --version`: the crate's version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("THENA_SF_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "thena-sf",
    version = VERSION,
    about = "Syncs Thena requests into Salesforce"
)]
struct Cli {
    /// Config file (TOML).
    #[arg(long, global = true, env = "THENA_SF_CONFIG")]
    config: Option<PathBuf>,
    /// Where the store and key file live (default ./data).
    #[arg(long, global = true, env = "THENA_SF_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect an org, set it up, and print the webhook URL and token for Thena.
    Connect(ConnectArgs),
    /// Create or repair the Request__c object, its fields, access and the Account layout.
    Provision { name: String },
    /// Check the org's setup; exit 0 only when every check passes.
    Doctor {
        name: String,
        /// Repair what can be repaired, then check again.
        #[arg(long)]
        fix: bool,
    },
    /// Serve webhooks and sync every connection.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080; port 0 picks one).
        #[arg(long, env = "THENA_SF_LISTEN")]
        listen: Option<String>,
    },
    /// Run the whole product on the built-in emulator with sample requests.
    #[cfg(feature = "demo")]
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Stop after printing the table.
        #[arg(long)]
        exit: bool,
    },
    /// Show each connection's state, queue and counts.
    Status { name: Option<String> },
    /// Remove a connection and revoke its refresh token.
    Disconnect { name: String },
    /// Make a new webhook token for Thena (printed once).
    RollToken {
        name: String,
        /// Hours the old token keeps working: 0, 1, 24 or 168.
        #[arg(long, default_value_t = 24)]
        grace_hours: i64,
    },
    /// Copy this store (SQLite) into an empty PostgreSQL database, to run several replicas.
    /// Stop the connector first; use the same THENA_SF_SECRET_KEY (or secret.key) afterwards.
    CopyStore {
        /// postgres://user@host:port/db
        #[arg(long)]
        to: String,
    },
    /// Set the admin page's password (read from THENA_SF_ADMIN_PASSWORD or the first line of stdin).
    AdminPassword {
        /// Only print the Argon2 hash, for `admin_password_hash` in the config.
        #[arg(long)]
        hash_only: bool,
    },
    /// Dead letters: records Salesforce refused for good.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Requests skipped for want of a Contact or Account.
    Skipped {
        #[command(subcommand)]
        action: SkippedAction,
    },
}

#[derive(clap::Args)]
struct ConnectArgs {
    name: String,
    /// https://login.salesforce.com, https://test.salesforce.com, a My Domain, or the emulator's URL.
    #[arg(long)]
    login_url: String,
    #[arg(long)]
    client_id: String,
    #[arg(long, env = "THENA_SF_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Password grant (developer orgs and the emulator), with --password.
    #[arg(long, requires = "password", conflicts_with = "refresh_token")]
    username: Option<String>,
    #[arg(long, env = "THENA_SF_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[arg(long, env = "THENA_SF_REFRESH_TOKEN", hide_env_values = true)]
    refresh_token: Option<String>,
    /// Use this webhook token instead of generating one.
    #[arg(long, env = "THENA_SF_WEBHOOK_TOKEN", hide_env_values = true)]
    webhook_token: Option<String>,
    /// Require Standard Webhooks signatures with this secret (`whsec_...`); repeat for rotation.
    #[arg(
        long = "signing-secret",
        env = "THENA_SF_SIGNING_SECRET",
        hide_env_values = true
    )]
    signing_secrets: Vec<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// Connect even though another connection already syncs this org (each
    /// request is then written by both).
    #[arg(long)]
    same_org_ok: bool,
}

#[derive(Subcommand)]
enum DlqAction {
    List {
        name: String,
    },
    /// Put one dead letter (by id) or all back in the queue.
    Retry {
        name: String,
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Drop one dead letter (by id) or all.
    Discard {
        name: String,
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(Subcommand)]
enum SkippedAction {
    List {
        name: String,
    },
    /// Try one skipped request (by request id) or all again.
    Retry {
        name: String,
        request_id: Option<String>,
        #[arg(long, conflicts_with = "request_id")]
        all: bool,
    },
}

struct App {
    config: Config,
    store: Store,
}

async fn open(cli: &Cli, mut config: Config) -> anyhow::Result<App> {
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    if config.database_url.is_some()
        && config.secret_key.is_none()
        && !config.data_dir.join("secret.key").exists()
    {
        anyhow::bail!("a PostgreSQL store is shared by replicas: set THENA_SF_SECRET_KEY (base64 of 32 bytes), the same on every replica");
    }
    let secrets = config.secrets()?;
    let store = Store::open_config(&config, secrets).await?;
    for c in connect::connect_declared(&store, &config).await? {
        tracing::info!(connection = %c.name, "connected {} from the config file", c.name);
    }
    Ok(App { config, store })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match start(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the config, sets up logs and traces (before the runtime: the OTLP
/// exporter sends from a thread of its own), runs the command, then flushes
/// the spans still held.
fn start(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    // The demo tells its own story on stdout: its logs stay at warnings
    // unless asked for.
    let level = match &cli.command {
        #[cfg(feature = "demo")]
        Command::Demo { .. } if config.log_level == "info" => "warn",
        _ => config.log_level.as_str(),
    };
    let telemetry =
        thena_sf::telemetry::init(level, config.log_format, config.otlp_endpoint.as_deref())?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(run(cli, config));
    drop(runtime);
    telemetry.shutdown();
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Prints a line; a closed standard output must not stop a server.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

fn one_or_all<T>(one: Option<T>, all: bool, what: &str) -> anyhow::Result<Option<T>> {
    match (one, all) {
        (Some(x), false) => Ok(Some(x)),
        (None, true) => Ok(None),
        _ => anyhow::bail!("name one {what} or pass --all"),
    }
}

#[cfg(feature = "demo")]
async fn demo(
    cli: &Cli,
    mut config: Config,
    listen: String,
    exit: bool,
) -> anyhow::Result<ExitCode> {
    config.listen = listen;
    let fresh = cli.data_dir.is_none();
    config.data_dir = match &cli.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("thena-sf-demo-{}", std::process::id())),
    };
    let store = Store::open(&config.data_dir, config.secrets()?).await?;
    let d = thena_sf::demo::run(config.clone(), store)
        .await
        .context("running the demo")?;
    say("Sample deliveries:");
    for (what, answer) in &d.deliveries {
        say(&format!("  {what:<72} -> {answer}"));
    }
    say("");
    say(&thena_sf::demo::render(&d.rows));
    if !exit {
        say(&format!("thena-sf listening on {}", d.app.url()));
        say(&format!(
            "  webhook URL:   {}/webhooks/thena/{}",
            d.app.url(),
            thena_sf::demo::CONNECTION
        ));
        say(&format!("  Authorization: {}", d.webhook_token.expose()));
        say("  send one more webhook:");
        say(&format!(
            "    {}",
            thena_sf::demo::example_curl(
                &d.app.url(),
                d.webhook_token.expose(),
                chrono::Utc::now()
            )
        ));
        say(&format!("  metrics:       {}/metrics", d.app.url()));
        say(&format!(
            "  admin page:    {}/ (password: {}, for this demo only)",
            d.app.url(),
            d.admin_password.expose()
        ));
        say(&format!(
            "  emulator:      {} (admin@example.com / emulator)",
            d.emulator.base_url
        ));
        say("Ctrl-C to stop.");
        shutdown_signal().await;
    }
    d.app.shutdown().await;
    let _ = d.emulator.shutdown().await;
    if fresh {
        let _ = std::fs::remove_dir_all(&config.data_dir);
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "demo")]
    if let Command::Demo { listen, exit } = &cli.command {
        return demo(&cli, config, listen.clone(), *exit).await;
    }
    let app = open(&cli, config).await?;
    match cli.command {
        Command::Connect(args) => connect_cmd(&app, args).await,
        Command::Provision { name } => provision_cmd(&app, name).await,
        Command::Doctor { name, fix } => doctor(&app, name, fix).await,
        Command::Serve { listen } => serve(&app, listen).await,
        #[cfg(feature = "demo")]
        Command::Demo { .. } => unreachable!("handled above"),
        Command::CopyStore { to } => copy_store(&app, to).await,
        Command::AdminPassword { hash_only } => admin_password(&app, hash_only).await,
        Command::Status { name } => status(&app, name).await,
        Command::Disconnect { name } => disconnect(&app, name).await,
        Command::RollToken { name, grace_hours } => roll_token(&app, name, grace_hours).await,
        Command::Dlq { action } => dlq(&app, action).await,
        Command::Skipped { action } => skipped(&app, action).await,
    }
}

/// Connects an org, sets it up, and prints the webhook URL and token.
async fn connect_cmd(app: &App, args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let ConnectArgs {
        name,
        login_url,
        client_id,
        client_secret,
        username,
        password,
        refresh_token,
        webhook_token,
        signing_secrets,
        json,
        same_org_ok,
    } = args;
    let credentials = match (username, password, refresh_token) {
        (Some(u), Some(p), None) => Credentials::Password {
            username: u,
            password: Secret::new(p),
        },
        (None, _, Some(rt)) => Credentials::RefreshToken(Secret::new(rt)),
        _ => anyhow::bail!("give either --username and --password, or --refresh-token"),
    };
    let req = ConnectRequest {
        name,
        login_url,
        client_id,
        client_secret: client_secret.map(Secret::new),
        credentials,
        webhook_token,
        signing_secrets,
    };
    let c = connect::connect_new(&app.store, &app.config, req, same_org_ok)
        .await
        .context("connecting")?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "name": c.name,
                "webhook_url": c.webhook_url,
                "webhook_token": c.webhook_token.as_ref().map(|t| t.expose()),
                "reconnected": c.reconnected,
                "instance_url": c.instance_url,
                "connected_at": thena_sf::store::ts(c.connected_at),
                "provisioned": c.provision.changes,
                "warnings": c.provision.warnings,
            })
        );
    } else {
        println!(
            "{} {} ({}).",
            if c.reconnected {
                "Reconnected"
            } else {
                "Connected"
            },
            c.name,
            c.instance_url
        );
        print!("{}", c.provision);
        println!(
            "Requests created from {} on are synced.",
            thena_sf::store::ts(c.connected_at)
        );
        println!();
        match &c.webhook_token {
            Some(t) => {
                println!(
                    "Paste these into Thena's webhook settings (the token is shown only now):"
                );
                println!("  Webhook URL:   {}", c.webhook_url);
                println!("  Authorization: {}", t.expose());
            }
            None => println!("The webhook URL and token are unchanged: {}", c.webhook_url),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Create or repair the org's setup; prints what changed.
async fn provision_cmd(app: &App, name: String) -> anyhow::Result<ExitCode> {
    let conn = app.store.connection(&name).await?;
    let client = connect::client_for(&app.store, &conn, &app.config);
    let categories = app.store.category_fields(&name).await?;
    let report =
        provision::provision(&client, &categories, &connect::user_id(&client.tokens())?).await?;
    app.store.mark_provisioned(&name).await?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// Checks the org's setup (and repairs it with `--fix`); exit 0 only when all pass.
async fn doctor(app: &App, name: String, fix: bool) -> anyhow::Result<ExitCode> {
    let conn = app.store.connection(&name).await?;
    let client = connect::client_for(&app.store, &conn, &app.config);
    let categories = app.store.category_fields(&name).await?;
    let share = app.config.api_budget_share;
    let mut checks = provision::check_and_record(&client, &app.store, &name, &categories, share)
        .await?
        .checks;
    if fix && checks.iter().any(|c| !c.ok && c.fixable) {
        let report =
            provision::provision(&client, &categories, &connect::user_id(&client.tokens())?)
                .await?;
        println!("Fixed:");
        print!("{report}");
        checks = provision::check_and_record(&client, &app.store, &name, &categories, share)
            .await?
            .checks;
    }
    for c in &checks {
        println!(
            "{} {:<34} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
        if let Some(h) = &c.hint {
            let label = if c.fixable {
                "fix:"
            } else {
                "to do (--fix cannot):"
            };
            println!("     {:<34} {label} {h}", "");
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    println!("{} checks, {failed} failed", checks.len());
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Serves webhooks and the admin page, and syncs, until SIGINT or SIGTERM.
async fn serve(app: &App, listen: Option<String>) -> anyhow::Result<ExitCode> {
    let mut config = app.config.clone();
    if let Some(l) = listen {
        config.listen = l;
    }
    let settings = thena_sf::sync::Settings::from_config(&config);
    let running = thena_sf::app::App::start(config, app.store.clone(), settings).await?;
    say(&format!("thena-sf listening on {}", running.url()));
    if let Some(m) = running.metrics_addr {
        say(&format!("metrics on http://{m}/metrics"));
    }
    say(&format!(
        "  admin page: {}/",
        running.state.config.base_url()
    ));
    let first = running.state.config.data_dir.join("initial-admin-password");
    if first.exists() {
        say(&format!(
            "  its password is in {} (`thena-sf admin-password` sets your own)",
            first.display()
        ));
    }
    shutdown_signal().await;
    tracing::info!("shutting down: finishing the batches in flight");
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Copies this store into an empty PostgreSQL database.
async fn copy_store(app: &App, to: String) -> anyhow::Result<ExitCode> {
    let secrets = app.config.secrets()?;
    let target = Store::open_postgres(&to, secrets).await?;
    for (table, n) in app.store.copy_into(&target).await? {
        say(&format!("  {table:<16} {n} rows"));
    }
    say(&format!(
        "copied into {}; now set database_url to it (and keep the same secret key) on every replica",
        thena_sf::store::redact_url(&to)
    ));
    Ok(ExitCode::SUCCESS)
}

/// Sets the admin page's password (or prints its hash).
async fn admin_password(app: &App, hash_only: bool) -> anyhow::Result<ExitCode> {
    let password = match std::env::var("THENA_SF_ADMIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if password.chars().count() < 12 {
        anyhow::bail!("the admin password must have at least 12 characters");
    }
    let hash = thena_sf::web::hash_password(&password)?;
    if hash_only {
        println!("{hash}");
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&app.config.data_dir)?;
    let path = app.config.data_dir.join("admin-password.hash");
    let tmp = path.with_extension("hash.tmp");
    let _ = std::fs::remove_file(&tmp);
    thena_sf::crypto::write_private(&tmp, hash.as_bytes())?;
    std::fs::rename(&tmp, &path)?;
    // A new password ends every session, here and on every replica.
    let ended = app.store.delete_all_sessions().await?;
    if ended > 0 {
        say(&format!(
            "ended {ended} admin session(s) made with the old password"
        ));
    }
    let _ = std::fs::remove_file(app.config.data_dir.join("initial-admin-password"));
    if app.config.admin_password_hash.is_some() {
        eprintln!(
            "note: admin_password_hash in the config takes precedence over {}",
            path.display()
        );
    }
    say(&format!(
        "the admin password was set ({}); restart `thena-sf serve` to use it",
        path.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Each connection's state, queue and counts.
async fn status(app: &App, name: Option<String>) -> anyhow::Result<ExitCode> {
    let conns = app.store.connections().await?;
    let mut shown = 0;
    for c in conns
        .iter()
        .filter(|c| name.as_deref().is_none_or(|n| n == c.name))
    {
        shown += 1;
        let h = operations::health(&app.store, &app.config, c).await?;
        println!("{} ({})", c.name, c.tokens.instance_url);
        println!("  state:        {}", h.state.label);
        if let Some(why) = &h.state.reason {
            println!("                {why}");
        }
        println!(
            "  connected:    {} (requests created before are not synced)",
            thena_sf::store::ts(c.connected_at)
        );
        println!(
            "  last webhook: {}",
            operations::health::last_webhook(&h.last)
        );
        println!(
            "  last written: {}",
            operations::health::last_written(&h.last)
        );
        println!("  queue:        {} waiting", h.counts.queued);
        println!(
            "  requests:     {} synced, {} skipped, {} pending, {} out of scope",
            h.counts.synced, h.counts.skipped, h.counts.pending, h.counts.out_of_scope
        );
        println!("  dead letters: {}", h.counts.dead_letters);
    }
    if shown == 0 {
        anyhow::bail!(
            "no connection{}",
            name.map(|n| format!(" named '{n}'")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes a connection and revokes its refresh token.
async fn disconnect(app: &App, name: String) -> anyhow::Result<ExitCode> {
    let c = app.store.connection(&name).await?;
    match operations::disconnect(&app.store, &app.config, &c).await? {
        Ok(()) => {
            say(&format!(
                "'{name}' disconnected; its refresh token was revoked."
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            say(&format!(
                "'{name}' disconnected here, but Salesforce's revoke call failed: {e}"
            ));
            say("Revoke the connector's access in Salesforce: Setup → Connected Apps OAuth Usage.");
            Ok(ExitCode::from(1))
        }
    }
}

/// A new webhook token for Thena, printed once; the old one works for the grace.
async fn roll_token(app: &App, name: String, grace_hours: i64) -> anyhow::Result<ExitCode> {
    let rolled = operations::roll_token(&app.store, &name, grace_hours).await?;
    println!("webhook URL:   {}", app.config.webhook_url(&name));
    println!("webhook token: {}", rolled.token);
    match rolled
        .old_until_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
    {
        Some(t) => say(&format!(
            "The old token keeps working until {} UTC: put the new one in Thena before then.",
            t.format("%Y-%m-%d %H:%M")
        )),
        None => say("The old token no longer works: put the new one in Thena now."),
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists skipped requests or puts them back in the queue.
async fn skipped(app: &App, action: SkippedAction) -> anyhow::Result<ExitCode> {
    match action {
        SkippedAction::List { name } => {
            app.store.connection(&name).await?;
            let rows = app
                .store
                .requests_in_state(&name, thena_sf::store::ReqState::Skipped, 1000, 0)
                .await?;
            for r in &rows {
                println!(
                    "{}  {}  {}",
                    r.updated_at,
                    r.request_id,
                    r.reason.as_deref().unwrap_or("")
                );
            }
            println!("{} skipped", rows.len());
            Ok(ExitCode::SUCCESS)
        }
        SkippedAction::Retry {
            name,
            request_id,
            all,
        } => {
            let id = one_or_all(request_id, all, "request id")?;
            let n = app.store.retry_skipped(&name, id.as_deref()).await?;
            println!(
                "{n} skipped requests put back in the queue (a running `serve` picks them up)"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Lists dead letters, or retries or discards them.
async fn dlq(app: &App, action: DlqAction) -> anyhow::Result<ExitCode> {
    match action {
        DlqAction::List { name } => {
            app.store.connection(&name).await?;
            let dead = app.store.dead_letters(&name, 1000, 0).await?;
            for d in &dead {
                let fields = if d.fields.is_empty() {
                    String::new()
                } else {
                    format!(" (fields: {})", d.fields)
                };
                println!(
                    "{:>6}  {}  {}  {}: {}{fields}",
                    d.id, d.failed_at, d.request_id, d.code, d.message
                );
            }
            println!("{} dead letters", dead.len());
            Ok(ExitCode::SUCCESS)
        }
        DlqAction::Retry { name, id, all } => {
            let id = one_or_all(id, all, "dead letter id")?;
            let n = app.store.retry_dead(&name, id).await?;
            println!("{n} dead letters put back in the queue (a running `serve` picks them up)");
            Ok(ExitCode::SUCCESS)
        }
        DlqAction::Discard { name, id, all } => {
            let id = one_or_all(id, all, "dead letter id")?;
            let n = app.store.discard_dead(&name, id).await?;
            println!("{n} dead letters discarded");
            Ok(ExitCode::SUCCESS)
        }
    }
}
