//! The OAuth 2.0 web-server flow (with PKCE), refresh, password grant and
//! revoke, against Production, Sandbox, a My Domain or any login URL.

use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::transport::unanswered;
use crate::Secret;

/// Where users log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginEnv {
    Production,
    Sandbox,
    /// A My Domain or any other login URL (the emulator's, in tests).
    Custom(String),
}

impl LoginEnv {
    pub fn url(&self) -> String {
        match self {
            LoginEnv::Production => "https://login.salesforce.com".into(),
            LoginEnv::Sandbox => "https://test.salesforce.com".into(),
            LoginEnv::Custom(u) => u.trim_end_matches('/').to_string(),
        }
    }
}

/// A PKCE verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: Secret,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Pkce {
        let mut bytes = [0u8; 48];
        rand::thread_rng().fill_bytes(&mut bytes);
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Pkce::from_verifier(verifier)
    }

    pub fn from_verifier(verifier: String) -> Pkce {
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier: Secret::new(verifier),
            challenge,
        }
    }
}

/// What the token endpoint gives back.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    /// Present on the first grant; on refresh only when the org rotates refresh tokens.
    pub refresh_token: Option<Secret>,
    pub instance_url: String,
    /// The identity URL (`.../id/{org}/{user}`).
    pub id_url: String,
    pub issued_at_ms: u64,
    /// Salesforce usually sends none; the client then assumes a lifetime.
    pub expires_in_secs: Option<u64>,
}

impl TokenSet {
    /// The org id and user id, from the identity URL.
    pub fn org_and_user(&self) -> Option<(String, String)> {
        let mut parts = self.id_url.trim_end_matches('/').rsplit('/');
        let user = parts.next()?.to_string();
        let org = parts.next()?.to_string();
        Some((org, user))
    }
}

#[derive(Deserialize)]
struct RawToken {
    access_token: String,
    refresh_token: Option<String>,
    instance_url: String,
    id: String,
    issued_at: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawError {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// A connected app, as the connector uses it.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub login_url: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub redirect_uri: String,
}

impl OAuthApp {
    /// The URL to send the browser to.
    pub fn authorize_url(&self, state: &str, pkce: &Pkce, scope: &str) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("prompt", "login consent");
        format!(
            "{}/services/oauth2/authorize?{}",
            self.login_url,
            q.finish()
        )
    }

    fn with_client<'a>(&'a self, form: &mut Vec<(&'a str, String)>) {
        form.push(("client_id", self.client_id.clone()));
        if let Some(s) = &self.client_secret {
            form.push(("client_secret", s.expose().to_string()));
        }
    }

    async fn token(&self, http: &reqwest::Client, form: Vec<(&str, String)>) -> Result<TokenSet> {
        let url = format!("{}/services/oauth2/token", self.login_url);
        let resp = http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| unanswered(&e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| unanswered(&e))?;
        if !(200..300).contains(&status) {
            return Err(match serde_json::from_slice::<RawError>(&body) {
                Ok(e) => Error::OAuth {
                    status,
                    error: e.error,
                    description: e.error_description,
                },
                Err(_) => Error::Protocol(format!(
                    "token endpoint answered {status} with no OAuth error"
                )),
            });
        }
        let raw: RawToken = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("token response: {e}")))?;
        Ok(TokenSet {
            access_token: Secret::new(raw.access_token),
            refresh_token: raw.refresh_token.map(Secret::new),
            instance_url: raw.instance_url.trim_end_matches('/').to_string(),
            id_url: raw.id,
            issued_at_ms: raw
                .issued_at
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(now_ms),
            expires_in_secs: raw.expires_in.and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            }),
        })
    }

    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        verifier: &Secret,
    ) -> Result<TokenSet> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("code_verifier", verifier.expose().to_string()),
        ];
        self.with_client(&mut form);
        self.token(http, form).await
    }

    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &Secret,
    ) -> Result<TokenSet> {
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose().to_string()),
        ];
        self.with_client(&mut form);
        self.token(http, form).await
    }

    /// The username-password grant (development orgs and the emulator).
    pub async fn password(
        &self,
        http: &reqwest::Client,
        username: &str,
        password: &Secret,
    ) -> Result<TokenSet> {
        let mut form = vec![
            ("grant_type", "password".to_string()),
            ("username", username.to_string()),
            ("password", password.expose().to_string()),
        ];
        self.with_client(&mut form);
        self.token(http, form).await
    }

    /// Revokes a token (a refresh token ends its sessions too).
    pub async fn revoke(&self, http: &reqwest::Client, token: &Secret) -> Result<()> {
        let url = format!("{}/services/oauth2/revoke", self.login_url);
        let resp = http
            .post(&url)
            .form(&[("token", token.expose())])
            .send()
            .await
            .map_err(|e| unanswered(&e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(Error::OAuth {
                status,
                error: "invalid_token".into(),
                description: "the token was not revoked".into(),
            }),
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
