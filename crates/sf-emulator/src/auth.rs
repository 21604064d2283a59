//! Users, connected apps, authorization codes and tokens: the logic behind
//! the OAuth endpoints, kept apart from HTTP.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ConnectedApp;

/// An OAuth error as the token endpoint answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    pub error: &'static str,
    pub description: &'static str,
}

const fn oauth_err(error: &'static str, description: &'static str) -> OAuthError {
    OAuthError { error, description }
}

pub const AUTH_FAILURE: OAuthError = oauth_err("invalid_grant", "authentication failure");
pub const BAD_REFRESH: OAuthError = oauth_err("invalid_grant", "expired access/refresh token");
pub const BAD_CODE: OAuthError = oauth_err("invalid_grant", "invalid authorization code");
pub const EXPIRED_CODE: OAuthError = oauth_err("invalid_grant", "expired authorization code");
pub const BAD_CLIENT_ID: OAuthError = oauth_err("invalid_client_id", "client identifier invalid");
pub const BAD_CLIENT: OAuthError = oauth_err("invalid_client", "invalid client credentials");
pub const REDIRECT_MISMATCH: OAuthError = oauth_err(
    "redirect_uri_mismatch",
    "redirect_uri must match configuration",
);
pub const BAD_GRANT_TYPE: OAuthError =
    oauth_err("unsupported_grant_type", "grant type not supported");
pub const BAD_VERIFIER: OAuthError = oauth_err("invalid_request", "invalid code verifier");
pub const MISSING_VERIFIER: OAuthError = oauth_err("invalid_grant", "invalid code verifier");

/// Authorization codes live this long (Salesforce: 15 minutes).
pub const CODE_TTL: Duration = Duration::from_secs(15 * 60);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    user_id: String,
    scope: String,
    expires_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub client_id: String,
    pub expires_ms: u64,
    /// The refresh token this session came from, so revoking it revokes the session.
    pub refresh: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefreshGrant {
    user_id: String,
    client_id: String,
    scope: String,
    /// Tokens rotated from one another share a family (the first token of it).
    #[serde(default)]
    family: String,
}

/// A successful token answer (before the server adds URLs).
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub issued_at_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthStore {
    pub credentials: Vec<Credential>,
    #[serde(skip)]
    pub apps: Vec<ConnectedApp>,
    codes: HashMap<String, CodeGrant>,
    sessions: HashMap<String, Session>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    /// Refresh tokens spent by rotation, and their family: presenting one again
    /// revokes the whole family, as Salesforce's refresh token rotation does.
    #[serde(default)]
    spent: HashMap<String, String>,
    #[serde(skip)]
    pub token_ttl: Duration,
}

/// base64url(SHA-256(verifier)) without padding, as PKCE S256 defines it.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl AuthStore {
    pub fn app(&self, client_id: &str) -> Option<&ConnectedApp> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    /// Checks a client id and (when given or required) its secret.
    pub fn check_client(
        &self,
        client_id: &str,
        secret: Option<&str>,
        secret_required: bool,
    ) -> Result<&ConnectedApp, OAuthError> {
        let app = self.app(client_id).ok_or(BAD_CLIENT_ID)?;
        match secret {
            Some(s) if s != app.client_secret => Err(BAD_CLIENT),
            None if secret_required => Err(BAD_CLIENT),
            _ => Ok(app),
        }
    }

    pub fn login(&self, username: &str, password: &str) -> Option<&Credential> {
        self.credentials
            .iter()
            .find(|c| c.username.eq_ignore_ascii_case(username) && c.password == password)
    }

    /// Issues a single-use authorization code after the user approved.
    pub fn issue_code(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        challenge: Option<String>,
        user_id: &str,
        scope: &str,
    ) -> String {
        let code = format!("aPrx{}==", random(60));
        self.codes.insert(
            code.clone(),
            CodeGrant {
                client_id: client_id.into(),
                redirect_uri: redirect_uri.into(),
                challenge,
                user_id: user_id.into(),
                scope: scope.into(),
                expires_ms: now_ms() + CODE_TTL.as_millis() as u64,
            },
        );
        code
    }

    fn wants_refresh(scope: &str) -> bool {
        scope.is_empty()
            || scope
                .split_whitespace()
                .any(|s| s == "refresh_token" || s == "offline_access" || s == "full")
    }

    fn issue(
        &mut self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        with_refresh: bool,
        refresh: Option<String>,
    ) -> Issued {
        let refresh_token = if with_refresh {
            let rt = format!("5Aep861{}", random(80));
            self.refresh_tokens.insert(
                rt.clone(),
                RefreshGrant {
                    user_id: user_id.into(),
                    client_id: client_id.into(),
                    scope: scope.into(),
                    family: rt.clone(),
                },
            );
            Some(rt)
        } else {
            None
        };
        let access_token = format!("{}!AQ{}", &crate::org::ORG_ID[..15], random(96));
        let issued_at_ms = now_ms();
        self.sessions.insert(
            access_token.clone(),
            Session {
                user_id: user_id.into(),
                client_id: client_id.into(),
                expires_ms: issued_at_ms + self.token_ttl.as_millis() as u64,
                refresh: refresh_token.clone().or(refresh),
            },
        );
        Issued {
            access_token,
            refresh_token,
            user_id: user_id.into(),
            client_id: client_id.into(),
            scope: scope.into(),
            issued_at_ms,
        }
    }

    /// The authorization-code grant.
    pub fn exchange_code(
        &mut self,
        code: &str,
        client_id: &str,
        secret: Option<&str>,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<Issued, OAuthError> {
        let require = self.app(client_id).is_some_and(|a| a.require_secret);
        self.check_client(client_id, secret, require)?;
        // Single use: the code is gone whatever happens next.
        let grant = self.codes.remove(code).ok_or(BAD_CODE)?;
        if grant.client_id != client_id {
            return Err(BAD_CODE);
        }
        if grant.expires_ms < now_ms() {
            return Err(EXPIRED_CODE);
        }
        if grant.redirect_uri != redirect_uri {
            return Err(REDIRECT_MISMATCH);
        }
        if let Some(challenge) = &grant.challenge {
            let verifier = verifier.ok_or(MISSING_VERIFIER)?;
            if pkce_challenge(verifier) != *challenge {
                return Err(BAD_VERIFIER);
            }
        }
        let with_refresh = Self::wants_refresh(&grant.scope);
        Ok(self.issue(&grant.user_id, client_id, &grant.scope, with_refresh, None))
    }

    /// The refresh-token grant, rotating the refresh token when the app asks for it.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<Issued, OAuthError> {
        let app = self.check_client(client_id, secret, false)?.clone();
        if let Some(family) = self.spent.get(refresh_token).cloned() {
            self.revoke_family(&family);
            return Err(BAD_REFRESH);
        }
        let grant = self
            .refresh_tokens
            .get(refresh_token)
            .cloned()
            .ok_or(BAD_REFRESH)?;
        if grant.client_id != client_id {
            return Err(BAD_REFRESH);
        }
        if app.rotate_refresh_tokens {
            self.revoke(refresh_token);
            self.spent
                .insert(refresh_token.to_string(), grant.family.clone());
            let issued = self.issue(&grant.user_id, client_id, &grant.scope, true, None);
            if let Some(g) = issued
                .refresh_token
                .as_ref()
                .and_then(|rt| self.refresh_tokens.get_mut(rt))
            {
                g.family = grant.family.clone();
            }
            Ok(issued)
        } else {
            Ok(self.issue(
                &grant.user_id,
                client_id,
                &grant.scope,
                false,
                Some(refresh_token.to_string()),
            ))
        }
    }

    /// The username-password grant.
    pub fn password_grant(
        &mut self,
        client_id: &str,
        secret: Option<&str>,
        username: &str,
        password: &str,
    ) -> Result<Issued, OAuthError> {
        self.check_client(client_id, secret, true)?;
        let user_id = self
            .login(username, password)
            .ok_or(AUTH_FAILURE)?
            .user_id
            .clone();
        Ok(self.issue(&user_id, client_id, "api", false, None))
    }

    /// The client-credentials grant: a session for the first administrator.
    pub fn client_credentials(
        &mut self,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<Issued, OAuthError> {
        self.check_client(client_id, secret, true)?;
        let user_id = self
            .credentials
            .first()
            .ok_or(AUTH_FAILURE)?
            .user_id
            .clone();
        Ok(self.issue(&user_id, client_id, "api", false, None))
    }

    /// Revokes an access or refresh token; revoking a refresh token ends its sessions.
    pub fn revoke(&mut self, token: &str) -> bool {
        if self.sessions.remove(token).is_some() {
            return true;
        }
        if self.refresh_tokens.remove(token).is_some() {
            self.sessions
                .retain(|_, s| s.refresh.as_deref() != Some(token));
            return true;
        }
        false
    }

    /// Revokes every refresh token of a rotation family, and their sessions.
    fn revoke_family(&mut self, family: &str) {
        let tokens: Vec<String> = self
            .refresh_tokens
            .iter()
            .filter(|(_, g)| g.family == family)
            .map(|(t, _)| t.clone())
            .collect();
        for t in tokens {
            self.revoke(&t);
        }
    }

    /// The session of a bearer token, if it is valid and not expired.
    pub fn session(&self, token: &str) -> Option<&Session> {
        self.sessions.get(token).filter(|s| s.expires_ms > now_ms())
    }

    /// Expires every access token now (refresh tokens stay valid).
    pub fn expire_all(&mut self) -> usize {
        let n = self.sessions.len();
        self.sessions.clear();
        n
    }

    /// Points sessions and grants of old user ids at new ones (after a reset).
    pub fn remap_users(&mut self, old: &[String], new: &[String]) {
        let map: HashMap<&String, &String> = old.iter().zip(new.iter()).collect();
        for s in self.sessions.values_mut() {
            if let Some(n) = map.get(&s.user_id) {
                s.user_id = (*n).clone();
            }
        }
        for r in self.refresh_tokens.values_mut() {
            if let Some(n) = map.get(&r.user_id) {
                r.user_id = (*n).clone();
            }
        }
    }

    /// Drops expired sessions and codes.
    pub fn sweep(&mut self) {
        let now = now_ms();
        self.sessions.retain(|_, s| s.expires_ms > now);
        self.codes.retain(|_, c| c.expires_ms > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "http://127.0.0.1/cb";

    /// A code issued to `client` for the admin, with `challenge` (PKCE).
    fn new_code(s: &mut AuthStore, client: &str, challenge: Option<String>) -> String {
        s.issue_code(
            client,
            CB,
            challenge,
            "005Em0000000001AAA",
            "api refresh_token",
        )
    }

    /// A code issued to `client` (no PKCE) and exchanged: what it issued.
    fn issued(s: &mut AuthStore, client: &str) -> Issued {
        let c = new_code(s, client, None);
        s.exchange_code(&c, client, None, CB, None).unwrap()
    }

    fn store() -> AuthStore {
        AuthStore {
            credentials: vec![Credential {
                username: "admin@example.com".into(),
                password: "emulator".into(),
                user_id: "005Em0000000001AAA".into(),
            }],
            apps: vec![
                ConnectedApp::default_app(),
                ConnectedApp {
                    client_id: "rot".into(),
                    rotate_refresh_tokens: true,
                    ..ConnectedApp::default_app()
                },
            ],
            token_ttl: Duration::from_secs(60),
            ..Default::default()
        }
    }

    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn codes_are_single_use_and_check_pkce_and_redirect() {
        let mut s = store();
        let ch = pkce_challenge("verifier-verifier-verifier-verifier-verifier");
        let code = new_code(&mut s, "local-client", Some(ch.clone()));
        assert_eq!(
            s.exchange_code(&code, "local-client", None, CB, Some("wrong"))
                .unwrap_err(),
            BAD_VERIFIER
        );
        let code = new_code(&mut s, "local-client", Some(ch.clone()));
        assert_eq!(
            s.exchange_code(&code, "local-client", None, CB, None)
                .unwrap_err(),
            MISSING_VERIFIER
        );
        let code = new_code(&mut s, "local-client", Some(ch));
        assert_eq!(
            s.exchange_code(
                &code,
                "local-client",
                None,
                "http://127.0.0.1/other",
                Some("verifier-verifier-verifier-verifier-verifier")
            )
            .unwrap_err(),
            REDIRECT_MISMATCH
        );
        let code = new_code(&mut s, "local-client", None);
        let issued = s
            .exchange_code(&code, "local-client", Some("local-secret"), CB, None)
            .unwrap();
        assert!(issued.refresh_token.is_some());
        assert_eq!(
            s.exchange_code(&code, "local-client", None, CB, None)
                .unwrap_err(),
            BAD_CODE
        );
    }

    #[test]
    fn refresh_rotates_only_when_the_app_says_so() {
        let mut s = store();
        let rt = issued(&mut s, "local-client").refresh_token.unwrap();
        let again = s
            .refresh(&rt, "local-client", Some("local-secret"))
            .unwrap();
        assert!(again.refresh_token.is_none());
        assert!(
            s.refresh(&rt, "local-client", None).is_ok(),
            "non-rotating refresh tokens stay valid"
        );

        let rt = issued(&mut s, "rot").refresh_token.unwrap();
        let rotated = s.refresh(&rt, "rot", None).unwrap().refresh_token.unwrap();
        assert_ne!(rt, rotated);
        let session = s.refresh(&rotated, "rot", None).unwrap();
        // Presenting a spent token again revokes the whole family.
        assert_eq!(s.refresh(&rt, "rot", None).unwrap_err(), BAD_REFRESH);
        assert!(
            s.session(&session.access_token).is_none(),
            "the family's sessions end"
        );
        let newest = session.refresh_token.unwrap();
        assert_eq!(s.refresh(&newest, "rot", None).unwrap_err(), BAD_REFRESH);
    }

    #[test]
    fn revoking_a_refresh_token_ends_its_sessions() {
        let mut s = store();
        let issued = issued(&mut s, "local-client");
        assert!(s.session(&issued.access_token).is_some());
        assert!(s.revoke(issued.refresh_token.as_deref().unwrap()));
        assert!(s.session(&issued.access_token).is_none());
        assert!(!s.revoke("nope"));
    }

    #[test]
    fn password_grant_needs_the_secret_and_right_password() {
        let mut s = store();
        assert_eq!(
            s.password_grant("local-client", None, "admin@example.com", "emulator")
                .unwrap_err(),
            BAD_CLIENT
        );
        assert_eq!(
            s.password_grant(
                "local-client",
                Some("local-secret"),
                "admin@example.com",
                "x"
            )
            .unwrap_err(),
            AUTH_FAILURE
        );
        assert!(s
            .password_grant(
                "local-client",
                Some("local-secret"),
                "ADMIN@example.com",
                "emulator"
            )
            .is_ok());
        assert_eq!(
            s.password_grant("nope", Some("x"), "a", "b").unwrap_err(),
            BAD_CLIENT_ID
        );
    }
}
