//! How an emulator is configured: from the command line, or by tests and the
//! connector's demo that start one in-process.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::faults::FaultSpec;

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Serve HTTPS with a self-signed certificate made at start.
    pub tls: bool,
    /// Where to write the certificate's PEM, so clients can trust it.
    pub tls_cert_out: Option<PathBuf>,
    pub seed: Seed,
    /// Load the org from this file at start (if it exists) and save it at shutdown.
    pub state_file: Option<PathBuf>,
    /// API calls allowed in any rolling 24 hours.
    pub daily_api_limit: u64,
    /// Lifetime of access tokens.
    pub token_ttl: Duration,
    /// Added to every API call, like the round trip to a real org.
    pub latency: Duration,
    pub faults: FaultSpec,
    /// The newest API version served, e.g. "67.0".
    pub api_version_max: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            tls: false,
            tls_cert_out: None,
            seed: Seed::default(),
            state_file: None,
            daily_api_limit: 100_000,
            token_ttl: Duration::from_secs(2 * 3600),
            latency: Duration::ZERO,
            faults: FaultSpec::default(),
            api_version_max: "67.0".to_string(),
        }
    }
}

/// The user an org gets when its seed names none.
pub const DEFAULT_USERNAME: &str = "admin@example.com";
pub const DEFAULT_PASSWORD: &str = "emulator";

/// Users, connected apps and records to start an org with (`--seed FILE`).
/// With no users or apps, the defaults are `admin@example.com` / `emulator`
/// and the app `local-client` / `local-secret`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub connected_apps: Vec<ConnectedApp>,
    /// Account records, as REST bodies (`{"Name": "Acme", "Website": "acme.io"}`).
    #[serde(default)]
    pub accounts: Vec<Map<String, Value>>,
    /// Contact records; an extra `"AccountName"` links the contact to the seeded account of that name.
    #[serde(default)]
    pub contacts: Vec<Map<String, Value>>,
    /// Extra page layouts and the profiles they are assigned to (a profile
    /// named here that does not exist is created). The object's default
    /// layout keeps every profile that no seeded layout claims.
    #[serde(default)]
    pub layouts: Vec<SeedLayout>,
    /// Org-wide settings that differ between orgs.
    #[serde(default)]
    pub org: OrgSettings,
    /// Person accounts, made before the business accounts
    /// (`{"FirstName", "LastName", "PersonEmail"}`; needs `org.person_accounts`).
    #[serde(default)]
    pub person_accounts: Vec<Map<String, Value>>,
    /// Lead records (`{"LastName": "Lee", "Company": "Acme", "Email": "ann@acme.io"}`).
    #[serde(default)]
    pub leads: Vec<Map<String, Value>>,
    /// The standard duplicate rules' action on create: `"alert"` (a new
    /// org's), `"block"` or `"off"`, for `"Contact"` and `"Lead"`.
    #[serde(default)]
    pub duplicate_rules: crate::duplicates::Rules,
}

/// `{"object": "Account", "name": "Support Layout", "profiles": ["Standard User"]}`:
/// the layout `Account-Support Layout`, assigned to those profiles.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedLayout {
    pub object: String,
    pub name: String,
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Installed by a managed package: it cannot be changed
    /// (`CANNOT_MODIFY_MANAGED_OBJECT`), as such layouts are locked in a real org.
    #[serde(default)]
    pub managed: bool,
}

/// Settings a real org may have either way. The defaults are a new org's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSettings {
    /// "Allow OAuth Username-Password Flows". Off in orgs created since
    /// Summer '23 (salesforce-api.md §9.8); on here by default so that the
    /// real clients' conformance suites and headless tests can log in.
    #[serde(default = "yes")]
    pub password_flow: bool,
    /// A query no index answers that scans more rows than this fails with
    /// `QUERY_TIMEOUT`, as a large real org's does (§9.5); off by default.
    #[serde(default)]
    pub scan_timeout_rows: Option<usize>,
    /// How long such a query runs before Salesforce answers `QUERY_TIMEOUT`,
    /// in milliseconds. A real org gives up on query execution after about
    /// two minutes (§9.5, "Timeouts"), which is longer than many clients
    /// wait; 0 (the default) answers at once.
    #[serde(default)]
    pub scan_timeout_wait_ms: u64,
    /// Person accounts enabled: `Account.IsPersonAccount`,
    /// `Account.PersonContactId`, `Contact.IsPersonAccount` exist (§9.7).
    #[serde(default)]
    pub person_accounts: bool,
    /// A custom object's Name keeps its data type: a save that switches it
    /// between Text and Auto Number fails. Off by default (Setup lets an
    /// admin switch it, and the Metadata API carries the change) [UNVERIFIED:
    /// some orgs or deploys are reported not to apply the switch]; on, it
    /// plays such an org.
    #[serde(default)]
    pub name_type_locked: bool,
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            password_flow: true,
            scan_timeout_rows: None,
            scan_timeout_wait_ms: 0,
            person_accounts: false,
            name_type_locked: false,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default = "default_last_name")]
    pub last_name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// "System Administrator" (default) or "Standard User".
    #[serde(default = "default_profile")]
    pub profile: String,
}

fn default_last_name() -> String {
    "User".to_string()
}

fn default_profile() -> String {
    "System Administrator".to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectedApp {
    pub client_id: String,
    pub client_secret: String,
    /// Allowed callback URLs. Empty: any loopback URL (http://127.0.0.1:*/..., http://localhost:*/...).
    #[serde(default)]
    pub callback_urls: Vec<String>,
    /// Issue a new refresh token on every refresh (and invalidate the old one).
    #[serde(default)]
    pub rotate_refresh_tokens: bool,
    /// Whether the web-server flow must send the client secret (PKCE clients may not).
    #[serde(default)]
    pub require_secret: bool,
    /// Permitted Users = "Admin approved users are pre-authorized": only users
    /// of `preauthorized_profiles` may use the app (salesforce-api.md §9.8).
    #[serde(default)]
    pub admin_approved: bool,
    /// Profile names (e.g. "System Administrator") pre-authorized for an admin-approved app.
    #[serde(default)]
    pub preauthorized_profiles: Vec<String>,
}

impl ConnectedApp {
    pub fn default_app() -> ConnectedApp {
        ConnectedApp {
            client_id: "local-client".into(),
            client_secret: "local-secret".into(),
            callback_urls: vec![],
            rotate_refresh_tokens: false,
            require_secret: false,
            admin_approved: false,
            preauthorized_profiles: vec![],
        }
    }

    /// Whether a user of the profile named `profile` may use this app.
    pub fn permits_profile(&self, profile: &str) -> bool {
        !self.admin_approved
            || self
                .preauthorized_profiles
                .iter()
                .any(|p| p.eq_ignore_ascii_case(profile))
    }

    pub fn accepts_callback(&self, uri: &str) -> bool {
        if self.callback_urls.is_empty() {
            return url_is_loopback(uri);
        }
        self.callback_urls.iter().any(|c| c == uri)
    }
}

fn url_is_loopback(uri: &str) -> bool {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"));
    let Some(rest) = rest else { return false };
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Seed {
    pub fn from_file(path: &std::path::Path) -> Result<Seed, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read seed file {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("invalid seed file {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_app_accepts_only_loopback_callbacks() {
        let app = ConnectedApp::default_app();
        assert!(app.accepts_callback("http://127.0.0.1:8080/oauth/callback"));
        assert!(app.accepts_callback("http://localhost:3000/cb"));
        assert!(app.accepts_callback("http://[::1]:3000/cb"));
        assert!(!app.accepts_callback("https://evil.example/cb"));
        assert!(!app.accepts_callback("http://127.0.0.1.evil.example/cb"));
    }
}
