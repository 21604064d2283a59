//! Configuration: a TOML file, then `THENA_SF_*` environment variables, with
//! sensible defaults for everything but secrets.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the HTTP server listens.
    pub listen: String,
    /// The URL Thena reaches this server at (for webhook URLs shown to admins).
    pub public_url: String,
    /// The store and key file live here.
    pub data_dir: PathBuf,
    /// The Salesforce API version used.
    pub api_version: String,
    /// Pause a connection above this share of its org's daily API limit.
    pub api_budget_share: f64,
    /// Give up on one Salesforce call after this many seconds (then retry with backoff).
    pub api_timeout_secs: u64,
    /// Connections declared for unattended deployments; connected on start if missing.
    pub connections: Vec<DeclaredConnection>,
}

/// A connection declared in the config file (refresh-token based).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredConnection {
    pub name: String,
    pub login_url: String,
    pub client_id: String,
    /// The secret itself, or `client_secret_env` naming a variable that holds it.
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub refresh_token: Option<String>,
    pub refresh_token_env: Option<String>,
    pub webhook_token: Option<String>,
    pub webhook_token_env: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            api_version: "67.0".into(),
            api_budget_share: 0.9,
            api_timeout_secs: 60,
            connections: Vec::new(),
        }
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

impl Config {
    /// Reads the file (if any), then applies `THENA_SF_LISTEN`, `THENA_SF_PUBLIC_URL`,
    /// `THENA_SF_DATA_DIR` and `THENA_SF_API_BUDGET_SHARE`.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        if let Ok(v) = std::env::var("THENA_SF_LISTEN") {
            c.listen = v;
        }
        if let Ok(v) = std::env::var("THENA_SF_PUBLIC_URL") {
            c.public_url = v;
        }
        if let Ok(v) = std::env::var("THENA_SF_DATA_DIR") {
            c.data_dir = PathBuf::from(v);
        }
        if let Ok(v) = std::env::var("THENA_SF_API_BUDGET_SHARE") {
            c.api_budget_share = v.parse().map_err(|_| {
                ConfigError::Invalid(format!("THENA_SF_API_BUDGET_SHARE={v} is not a number"))
            })?;
        }
        if !(0.0..=1.0).contains(&c.api_budget_share) {
            return Err(ConfigError::Invalid(format!(
                "api_budget_share must be between 0 and 1, not {}",
                c.api_budget_share
            )));
        }
        c.public_url = c.public_url.trim_end_matches('/').to_string();
        Ok(c)
    }

    pub fn webhook_url(&self, connection: &str) -> String {
        format!("{}/webhooks/thena/{connection}", self.public_url)
    }
}

impl DeclaredConnection {
    fn pick(
        &self,
        direct: &Option<String>,
        env: &Option<String>,
        what: &str,
    ) -> Result<Option<String>, ConfigError> {
        match (direct, env) {
            (Some(v), _) => Ok(Some(v.clone())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_file() {
        let c = Config::default();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(
            c.webhook_url("acme"),
            "http://127.0.0.1:8080/webhooks/thena/acme"
        );
        let dir = std::env::temp_dir().join(format!("thena-sf-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, "public_url = \"https://sync.example/\"\n[[connections]]\nname = \"acme\"\nlogin_url = \"https://login.salesforce.com\"\nclient_id = \"x\"\nrefresh_token = \"r\"\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(
            c.webhook_url("acme"),
            "https://sync.example/webhooks/thena/acme"
        );
        assert_eq!(c.connections[0].refresh_token().unwrap(), "r");
        std::fs::write(&p, "listen = 5\n").unwrap();
        assert!(Config::load(Some(&p))
            .unwrap_err()
            .to_string()
            .contains("not valid"));
        std::fs::write(&p, "bogus = 1\n").unwrap();
        assert!(Config::load(Some(&p))
            .unwrap_err()
            .to_string()
            .contains("bogus"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
