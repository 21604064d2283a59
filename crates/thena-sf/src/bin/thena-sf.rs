//! `thena-sf`: the connector's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use salesforce::Secret;
use thena_sf::config::Config;
use thena_sf::connect::{self, ConnectRequest, Credentials};
use thena_sf::crypto::SecretBox;
use thena_sf::provision;
use thena_sf::store::Store;

#[derive(Parser)]
#[command(
    name = "thena-sf",
    version,
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
    Connect {
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
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Create or repair the Request__c object, its fields, access and the Account layout.
    Provision { name: String },
    /// Check the org's setup; exit 0 only when every check passes.
    Doctor {
        name: String,
        /// Repair what can be repaired, then check again.
        #[arg(long)]
        fix: bool,
    },
}

struct App {
    config: Config,
    store: Store,
}

async fn open(cli: &Cli) -> anyhow::Result<App> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    let secrets = SecretBox::load(&config.data_dir)?;
    let store = Store::open(&config.data_dir, secrets).await?;
    for c in connect::connect_declared(&store, &config).await? {
        eprintln!("connected {} from the config file", c.name);
    }
    Ok(App { config, store })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let app = open(&cli).await?;
    match cli.command {
        Command::Connect {
            name,
            login_url,
            client_id,
            client_secret,
            username,
            password,
            refresh_token,
            webhook_token,
            json,
        } => {
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
            };
            let c = connect::connect(&app.store, &app.config, req)
                .await
                .context("connecting")?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "name": c.name,
                        "webhook_url": c.webhook_url,
                        "webhook_token": c.webhook_token.expose(),
                        "instance_url": c.instance_url,
                        "connected_at": thena_sf::store::ts(c.connected_at),
                        "provisioned": c.provision.changes,
                    })
                );
            } else {
                println!("Connected {} ({}).", c.name, c.instance_url);
                print!("{}", c.provision);
                println!(
                    "Requests created from {} on are synced.",
                    thena_sf::store::ts(c.connected_at)
                );
                println!();
                println!(
                    "Paste these into Thena's webhook settings (the token is shown only now):"
                );
                println!("  Webhook URL:   {}", c.webhook_url);
                println!("  Authorization: {}", c.webhook_token.expose());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Provision { name } => {
            let conn = app.store.connection(&name).await?;
            let client = connect::client_for(&app.store, &conn, &app.config);
            let categories = app.store.category_fields(&name).await?;
            let report =
                provision::provision(&client, &categories, &connect::user_id(&client.tokens())?)
                    .await?;
            app.store.mark_provisioned(&name).await?;
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { name, fix } => {
            let conn = app.store.connection(&name).await?;
            let client = connect::client_for(&app.store, &conn, &app.config);
            let categories = app.store.category_fields(&name).await?;
            let mut checks =
                provision::doctor(&client, &categories, app.config.api_budget_share).await;
            if fix && checks.iter().any(|c| !c.ok) {
                let report = provision::provision(
                    &client,
                    &categories,
                    &connect::user_id(&client.tokens())?,
                )
                .await?;
                println!("Fixed:");
                print!("{report}");
                checks = provision::doctor(&client, &categories, app.config.api_budget_share).await;
            }
            for c in &checks {
                println!(
                    "{} {:<34} {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                );
                if let Some(h) = &c.hint {
                    println!("     {:<34} fix: {h}", "");
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
    }
}
