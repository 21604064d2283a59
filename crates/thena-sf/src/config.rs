//! Configuration: the defaults, a TOML file, then `THENA_SF_*` environment
//! variables, layered once by `figment`; sensible defaults for everything
//! but secrets, which are typed as [`Secret`].

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use salesforce::Secret;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the HTTP server listens.
    pub listen: String,
    /// The URL Thena and admins reach this server at (webhook URLs, the OAuth callback).
    /// Empty: `http://` and the address listened on.
    pub public_url: String,
    /// The store (SQLite) and key file live here.
    pub data_dir: PathBuf,
    /// `postgres://user@host:port/db`: keep the store in PostgreSQL (several replicas
    /// may share it) instead of SQLite under `data_dir`.
    pub database_url: Option<Secret>,
    /// The Salesforce API version used.
    pub api_version: String,
    /// Pause a connection above this share of its org's daily API limit.
    pub api_budget_share: f64,
    /// Give up on one Salesforce call after this many seconds (then retry with backoff).
    pub api_timeout_secs: u64,
    /// How long a replica's lease on a connection lasts without renewal (PostgreSQL,
    /// several replicas): a replica that dies hands its connections over after this.
    pub lease_ttl_secs: u64,
    /// Connections declared for unattended deployments; connected on start if missing.
    pub connections: Vec<DeclaredConnection>,
    /// The admin page's password, as an Argon2 PHC string (`thena-sf admin-password --hash-only`).
    /// Unset: a password is generated at first start into `<data_dir>/initial-admin-password`.
    pub admin_password_hash: Option<String>,
    /// The Connected App the admin page connects Production, Sandbox and My Domain orgs with.
    pub oauth: Option<OAuthClient>,
    /// Offer the local emulator as a place to connect to (development and demos).
    pub emulator: Option<EmulatorLogin>,
    /// `/metrics` wants `Authorization: Bearer <this>` when set (else it is open,
    /// for local use; or serve it on `metrics_listen` only).
    pub metrics_token: Option<Secret>,
    /// Serve `/metrics` on this address instead of the main one.
    pub metrics_listen: Option<String>,
    /// Send `Sforce-Duplicate-Rule-Header: allowSave=true` when creating
    /// Contacts, so a new org's alerting duplicate rules let them save
    /// (false: the org's alert rules stop the connector too; a Block rule
    /// always does, and the request is skipped with the rule's name).
    pub allow_duplicate_save: bool,
    /// Acknowledgement to written in Salesforce, at most, in milliseconds:
    /// within it the connector waits for calls to fill (fewer API calls at
    /// everyday rates). A flood, which no budget can hold, is coalesced.
    pub latency_budget_ms: u64,
    /// From this many events a second, arrivals are a flood (a backlog
    /// replayed, an import): each request's versions are coalesced into one
    /// write (waiting up to 20 s) instead of being held to the budget.
    pub flood_events_per_second: u32,
    /// What one client, and all of them, may hold of the server.
    pub limits: Limits,
    /// A PEM file of certificate authorities to trust for Salesforce calls,
    /// besides the system's (and `SSL_CERT_FILE` / `SSL_CERT_DIR`) and the
    /// built-in roots: a TLS-inspecting proxy's CA, or a private CA.
    pub ca_file: Option<PathBuf>,
    /// Send Salesforce calls through this proxy (`http://[user:pass@]host:port`);
    /// unset, `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and `NO_PROXY` apply.
    pub proxy: Option<Secret>,
    /// Hosts the `proxy` key does not apply to (comma-separated, as `NO_PROXY`).
    pub no_proxy: Option<String>,
    /// Log filter: `info` (one line per meaningful event), `debug`, or a
    /// `RUST_LOG`-style list; `RUST_LOG` itself wins when set.
    pub log_level: String,
    /// `text` for people, `json` (one object per line) for log collectors.
    pub log_format: crate::telemetry::LogFormat,
    /// Export traces over OTLP/HTTP to this collector (`http://host:4318`);
    /// off when unset. `OTEL_EXPORTER_OTLP_ENDPOINT` sets it too.
    pub otlp_endpoint: Option<String>,
    /// This replica's name in the lease table (`THENA_SF_REPLICA_ID`); unset,
    /// `<hostname>-<pid>-<random>`. A stable one lets a restart resume its leases.
    pub replica_id: Option<String>,
    /// The key that seals secrets at rest, base64 of 32 bytes: only from
    /// `THENA_SF_SECRET_KEY` (never the file); unset, `<data_dir>/secret.key`.
    #[serde(skip)]
    pub secret_key: Option<Secret>,
    /// How Salesforce is reached, built from `ca_file`, `proxy` and `no_proxy`.
    #[serde(skip)]
    pub transport: salesforce::Transport,
    /// Set at start when `public_url` was empty and is the listen address:
    /// then (only) the Host header tells which origin a form comes from.
    #[serde(skip)]
    pub public_url_derived: bool,
}

/// Bounds that keep slow, unauthenticated or flooding clients from taking
/// the server's memory or connections (docs/reliability.md, hostile input).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A request's headers must arrive within this (also ends idle keep-alive connections).
    pub header_read_timeout_secs: u64,
    /// An authenticated webhook's body must arrive within this.
    pub body_read_timeout_secs: u64,
    /// Any request is answered (or given up with 408) within this.
    pub request_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Webhook bodies read at once (only authenticated requests read one).
    pub max_bodies_in_flight: usize,
    /// Custom categories mapped from one event; the rest are noted, not mapped.
    pub max_categories_per_event: usize,
    /// Category fields the connector may create on `Request__c` per connection
    /// (a real org allows 500 to 800 custom fields per object).
    pub max_category_fields: usize,
    /// Login attempts per minute from everyone together.
    pub logins_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 20,
            request_timeout_secs: 120,
            max_connections: 1024,
            max_bodies_in_flight: 64,
            max_categories_per_event: 50,
            max_category_fields: 100,
            logins_per_minute: 30,
        }
    }
}

/// A Salesforce Connected App (consumer key and secret).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_secret_env: Option<String>,
}

/// The emulator offered on the Connect page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorLogin {
    pub login_url: String,
    #[serde(default = "default_emulator_client")]
    pub client_id: String,
    #[serde(default = "default_emulator_secret")]
    pub client_secret: String,
}

fn default_emulator_client() -> String {
    "local-client".into()
}

fn default_emulator_secret() -> String {
    "local-secret".into()
}

/// A connection declared in the config file (refresh-token based).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredConnection {
    pub name: String,
    pub login_url: String,
    pub client_id: String,
    /// The secret itself, or `client_secret_env` naming a variable that holds it.
    pub client_secret: Option<Secret>,
    pub client_secret_env: Option<String>,
    pub refresh_token: Option<Secret>,
    pub refresh_token_env: Option<String>,
    pub webhook_token: Option<Secret>,
    pub webhook_token_env: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_url: String::new(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            api_version: "67.0".into(),
            api_budget_share: 0.9,
            api_timeout_secs: 60,
            lease_ttl_secs: 15,
            connections: Vec::new(),
            admin_password_hash: None,
            oauth: None,
            emulator: None,
            metrics_token: None,
            metrics_listen: None,
            allow_duplicate_save: true,
            latency_budget_ms: 500,
            flood_events_per_second: 1_500,
            limits: Limits::default(),
            ca_file: None,
            proxy: None,
            no_proxy: None,
            replica_id: None,
            secret_key: None,
            log_level: "info".into(),
            log_format: crate::telemetry::LogFormat::Text,
            otlp_endpoint: None,
            transport: salesforce::Transport::default(),
            public_url_derived: false,
        }
    }
}

/// A layer's error, named by where the value came from: the file, or the
/// `THENA_SF_*` variable.
fn layer_error(e: figment::Error, file: Option<&Path>) -> ConfigError {
    let from_env = e
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.contains("environment"));
    let key = e
        .path
        .iter()
        .filter(|p| p.as_str() != "default")
        .cloned()
        .collect::<Vec<_>>();
    match (from_env, file) {
        (true, _) | (false, None) => ConfigError::Invalid(format!(
            "THENA_SF_{}: {}",
            key.join("__").to_uppercase(),
            e.kind
        )),
        (false, Some(p)) => ConfigError::Parse {
            path: p.display().to_string(),
            message: match key.is_empty() {
                true => e.kind.to_string(),
                false => format!("{}: {}", key.join("."), e.kind),
            },
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The keys a `THENA_SF_<KEY>` variable may set (`THENA_SF_LIMITS__<KEY>`
/// for `[limits]`); the rest of `THENA_SF_*` belongs to the command line
/// (`THENA_SF_CONFIG`, a `connect`'s secrets) or is read below.
const FROM_ENV: &[&str] = &[
    "listen",
    "public_url",
    "data_dir",
    "database_url",
    "api_version",
    "api_budget_share",
    "api_timeout_secs",
    "lease_ttl_secs",
    "admin_password_hash",
    "metrics_token",
    "metrics_listen",
    "allow_duplicate_save",
    "latency_budget_ms",
    "flood_events_per_second",
    "ca_file",
    "proxy",
    "no_proxy",
    "log_level",
    "log_format",
    "otlp_endpoint",
    "replica_id",
];

impl Config {
    /// Layers, built once: the defaults, then the file (if any), then the
    /// `THENA_SF_<KEY>` variables (`figment`); then the few variables that
    /// make a section (`THENA_SF_OAUTH_CLIENT_ID`, `THENA_SF_EMULATOR_URL`),
    /// the key that seals secrets and OpenTelemetry's own. The command
    /// line's flags go over the result.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut layers = Figment::new();
        if let Some(p) = file {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?;
            layers = layers.merge(Toml::string(&text));
        }
        let env = Env::prefixed("THENA_SF_").split("__").filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            FROM_ENV.contains(&k.as_str()) || k.starts_with("limits.")
        });
        let mut c: Config = layers
            .merge(env)
            .extract()
            .map_err(|e| layer_error(e, file))?;
        c.replica_id = c.replica_id.filter(|v| !v.trim().is_empty());
        c.apply_env();
        c.transport = c.transport()?;
        c.telemetry_from_env()?;
        c.check()?;
        c.public_url = c.public_url.trim_end_matches('/').to_string();
        Ok(c)
    }

    /// The variables that make a section, and the sealing key (never in the file).
    fn apply_env(&mut self) {
        let var = |k: &str| std::env::var(k).ok();
        self.secret_key = var(crate::crypto::KEY_ENV).map(Secret::new);
        if let Some(id) = var("THENA_SF_OAUTH_CLIENT_ID") {
            self.oauth = Some(OAuthClient {
                client_id: id,
                client_secret: None,
                client_secret_env: Some("THENA_SF_OAUTH_CLIENT_SECRET".into()),
            });
        }
        if let Some(url) = var("THENA_SF_EMULATOR_URL") {
            self.emulator = Some(EmulatorLogin {
                login_url: url,
                client_id: default_emulator_client(),
                client_secret: default_emulator_secret(),
            });
        }
    }

    /// Refuses values out of range, with the key and the value.
    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !(0.0..=1.0).contains(&self.api_budget_share) {
            return bad(format!(
                "api_budget_share must be between 0 and 1, not {}",
                self.api_budget_share
            ));
        }
        if !(10..=60_000).contains(&self.latency_budget_ms) {
            return bad(format!(
                "latency_budget_ms must be between 10 and 60000, not {}",
                self.latency_budget_ms
            ));
        }
        if let Some(u) = self.database_url.as_ref().map(Secret::expose) {
            if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                return bad(format!(
                    "database_url must be a postgres:// URL, not {}",
                    redact_url(u)
                ));
            }
        }
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            return bad(format!(
                "public_url must start with https:// or http://, not {url}"
            ));
        }
        for d in &self.connections {
            if let Some(t) = &d.webhook_token {
                if t.expose().trim().chars().count() < 32 {
                    return bad(format!(
                        "connection {}: webhook_token needs at least 32 characters",
                        d.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// `ca_file`, `proxy` and `no_proxy`, checked and built.
    fn transport(&self) -> Result<salesforce::Transport, ConfigError> {
        let mut t = salesforce::Transport::default();
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::Invalid(format!("ca_file {}: cannot read it: {e}", path.display()))
            })?;
            t = t
                .with_ca_pem(&pem)
                .map_err(|e| ConfigError::Invalid(format!("ca_file {}: {e}", path.display())))?;
        }
        if let Some(p) = &self.proxy {
            t = t
                .with_proxy(p.expose(), self.no_proxy.as_deref())
                .map_err(|e| ConfigError::Invalid(format!("proxy: {e}")))?;
        }
        Ok(t)
    }

    /// The standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, over `otlp_endpoint`.
    fn telemetry_from_env(&mut self) -> Result<(), ConfigError> {
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ] {
            if let Ok(v) = std::env::var(var) {
                if !v.is_empty() {
                    self.otlp_endpoint = Some(v);
                    break;
                }
            }
        }
        if let Some(e) = &self.otlp_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "otlp_endpoint must be an http:// or https:// URL, not {e}"
                )));
            }
        }
        Ok(())
    }

    /// The box that seals secrets: `THENA_SF_SECRET_KEY`, else the key file
    /// under `data_dir`.
    pub fn secrets(&self) -> Result<crate::crypto::SecretBox, crate::crypto::CryptoError> {
        crate::crypto::SecretBox::with_key(&self.data_dir, self.secret_key.as_ref())
    }

    /// An HTTP client for Salesforce calls, with this config's trust and proxy.
    pub fn http_client(&self, timeout: std::time::Duration) -> reqwest::Client {
        self.transport.http_client(timeout)
    }

    /// The URL this server is reached at: `public_url`, or the listen address.
    pub fn base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.clone()
        }
    }

    pub fn webhook_url(&self, connection: &str) -> String {
        format!("{}/webhooks/thena/{connection}", self.base_url())
    }

    /// Where Salesforce sends the browser back after consent.
    pub fn oauth_callback_url(&self) -> String {
        format!("{}/oauth/callback", self.base_url())
    }

    /// Whether the admin page is served over https (then its cookie is `Secure`).
    pub fn is_https(&self) -> bool {
        self.base_url().starts_with("https://")
    }
}

impl OAuthClient {
    pub fn secret(&self) -> Result<Option<String>, ConfigError> {
        match (&self.client_secret, &self.client_secret_env) {
            (Some(v), _) => Ok(Some(v.expose().to_string())),
            (None, Some(var)) => Ok(std::env::var(var).ok()),
            (None, None) => Ok(None),
        }
    }
}

impl DeclaredConnection {
    fn pick(
        &self,
        direct: &Option<Secret>,
        env: &Option<String>,
        what: &str,
    ) -> Result<Option<String>, ConfigError> {
        match (direct, env) {
            (Some(v), _) => Ok(Some(v.expose().to_string())),
            (None, Some(var)) => std::env::var(var).map(Some).map_err(|_| {
                ConfigError::Invalid(format!(
                    "connection {}: {what}_env names {var}, which is not set",
                    self.name
                ))
            }),
            (None, None) => Ok(None),
        }
    }

    pub fn client_secret(&self) -> Result<Option<String>, ConfigError> {
        self.pick(
            &self.client_secret,
            &self.client_secret_env,
            "client_secret",
        )
    }

    pub fn refresh_token(&self) -> Result<String, ConfigError> {
        self.pick(
            &self.refresh_token,
            &self.refresh_token_env,
            "refresh_token",
        )?
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "connection {} needs refresh_token or refresh_token_env",
                self.name
            ))
        })
    }

    pub fn webhook_token(&self) -> Result<Option<String>, ConfigError> {
        self.pick(
            &self.webhook_token,
            &self.webhook_token_env,
            "webhook_token",
        )
    }
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // Jail's closure returns figment's own (large) error type.
    #[allow(clippy::result_large_err)]
    fn defaults_and_file() {
        let c = Config::default();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(
            c.webhook_url("acme"),
            "http://127.0.0.1:8080/webhooks/thena/acme"
        );
        // In a jail: the environment test beside it sets THENA_SF_* variables,
        // which would reach this load too (seen once as a flaky failure).
        figment::Jail::expect_with(|jail| {
            let p = jail.directory().join("c.toml");
            std::fs::write(&p, "public_url = \"https://sync.example/\"\n[[connections]]\nname = \"acme\"\nlogin_url = \"https://login.salesforce.com\"\nclient_id = \"x\"\nrefresh_token = \"r\"\n").unwrap();
            let c = Config::load(Some(&p)).unwrap();
            assert_eq!(
                c.webhook_url("acme"),
                "https://sync.example/webhooks/thena/acme"
            );
            assert_eq!(c.connections[0].refresh_token().unwrap(), "r");
            std::fs::write(&p, "listen = 5\n").unwrap();
            let e = Config::load(Some(&p)).unwrap_err().to_string();
            assert!(e.contains("not valid"), "{e}");
            std::fs::write(&p, "bogus = 1\n").unwrap();
            let e = Config::load(Some(&p)).unwrap_err().to_string();
            assert!(e.contains("bogus"), "{e}");
            Ok(())
        });
    }

    /// FROM_ENV is kept by hand: every key of the file is in it, or is a
    /// section the environment cannot spell as one variable (named here).
    /// serde names every key when it refuses an unknown one.
    #[test]
    fn every_plain_key_of_the_file_can_come_from_the_environment() {
        const SECTIONS: &[&str] = &["connections", "oauth", "emulator", "limits"];
        let e = figment::Figment::from(figment::providers::Serialized::default("zz_unknown", 1))
            .extract::<Config>()
            .unwrap_err()
            .to_string();
        let listed = e
            .split("one of ")
            .nth(1)
            .and_then(|l| l.split(" for key").next());
        let keys: Vec<&str> = listed
            .unwrap_or_else(|| panic!("serde names the keys: {e}"))
            .split(", ")
            .map(|k| k.trim_matches(|c: char| c == '`' || c.is_whitespace()))
            .collect();
        assert!(keys.len() > 20, "{keys:?}");
        let missing: Vec<&&str> = keys
            .iter()
            .filter(|k| !FROM_ENV.contains(k) && !SECTIONS.contains(k))
            .collect();
        assert!(
            missing.is_empty(),
            "keys no THENA_SF_* variable sets: {missing:?}"
        );
    }

    #[test]
    // Jail's closure returns figment's own (large) error type.
    #[allow(clippy::result_large_err)]
    fn every_key_comes_from_the_environment_over_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "listen = \"127.0.0.1:1\"\nlatency_budget_ms = 300\n",
            )?;
            jail.set_env("THENA_SF_LISTEN", "0.0.0.0:9000");
            jail.set_env("THENA_SF_LIMITS__MAX_CONNECTIONS", "7");
            jail.set_env("THENA_SF_API_BUDGET_SHARE", "0.5");
            jail.set_env("THENA_SF_DATABASE_URL", "postgres://u@h/db");
            jail.set_env("THENA_SF_LOG_FORMAT", "json");
            jail.set_env("THENA_SF_REPLICA_ID", " ");
            // The command line's own variables are not keys.
            jail.set_env("THENA_SF_CONFIG", "elsewhere.toml");
            jail.set_env("THENA_SF_PASSWORD", "not a key");
            let c = Config::load(Some(Path::new("c.toml"))).expect("loads");
            assert_eq!(c.listen, "0.0.0.0:9000", "the variable over the file");
            assert_eq!(c.latency_budget_ms, 300, "the file's, no variable");
            assert_eq!(c.limits.max_connections, 7);
            assert_eq!(c.limits.max_bodies_in_flight, 64, "the default");
            assert_eq!(c.api_budget_share, 0.5);
            assert_eq!(
                c.database_url.as_ref().map(Secret::expose),
                Some("postgres://u@h/db")
            );
            assert_eq!(c.log_format, crate::telemetry::LogFormat::Json);
            assert_eq!(c.replica_id, None, "blank is unset");
            jail.set_env("THENA_SF_API_BUDGET_SHARE", "lots");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("THENA_SF_API_BUDGET_SHARE"), "{e}");
            Ok(())
        });
    }
}
