//! The admin login: an Argon2-hashed password, sessions kept in the store
//! (the cookie only as its hash), a CSRF token per session, and a brake on
//! repeated wrong passwords.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use parking_lot::Mutex;
use serde::Deserialize;

use super::views::{Chrome, LoginPage};
use super::{render, App};
use crate::config::Config;
use crate::crypto;
use crate::Error;

pub const COOKIE: &str = "thena_sf_session";
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Wrong passwords allowed from one address within [`BRAKE_WINDOW`].
const BRAKE_TRIES: u32 = 5;
const BRAKE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Password verifications (Argon2, about 19 MiB each) running at once; the
/// rest wait up to [`VERIFY_WAIT`], then get 429.
const VERIFYING_AT_ONCE: usize = 2;
const VERIFY_WAIT: Duration = Duration::from_secs(5);

/// The admin page's password and its state in memory.
pub struct Admin {
    password_hash: String,
    /// Sessions are bound to this fingerprint of the password hash: a new
    /// password ends them all.
    fingerprint: String,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Login attempts from everyone: a token bucket (tokens, last refill).
    bucket: Mutex<(f64, Instant)>,
    logins_per_minute: f64,
    verifying: tokio::sync::Semaphore,
}

/// Hashes a password as an Argon2id PHC string.
pub fn hash_password(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Invalid(format!("cannot hash the password: {e}")))
}

impl Admin {
    /// The configured password hash; else the one in `<data_dir>/admin-password.hash`;
    /// else a new password, written to `<data_dir>/initial-admin-password` (never logged).
    pub fn load(config: &Config) -> Result<Admin, Error> {
        let hash = match &config.admin_password_hash {
            Some(h) => h.clone(),
            None => {
                let path = config.data_dir.join("admin-password.hash");
                match std::fs::read_to_string(&path) {
                    Ok(h) => h.trim().to_string(),
                    Err(_) => {
                        let password = crypto::new_token()
                            .trim_start_matches("tsf_")
                            .chars()
                            .take(24)
                            .collect::<String>();
                        let hash = hash_password(&password)?;
                        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                            Error::Invalid(format!(
                                "cannot create {}: {e}",
                                config.data_dir.display()
                            ))
                        })?;
                        let first = config.data_dir.join("initial-admin-password");
                        crypto::write_private(&first, format!("{password}\n").as_bytes())
                            .and_then(|_| crypto::write_private(&path, hash.as_bytes()))
                            .map_err(|e| {
                                Error::Invalid(format!("cannot write {}: {e}", path.display()))
                            })?;
                        tracing::info!(
                            file = %first.display(),
                            "the admin page's password was generated into this file; `thena-sf admin-password` sets your own"
                        );
                        hash
                    }
                }
            }
        };
        PasswordHash::new(&hash).map_err(|e| {
            Error::Invalid(format!(
                "admin_password_hash is not an Argon2 PHC string ({e}); make one with `thena-sf admin-password --hash-only`"
            ))
        })?;
        let per_minute = f64::from(config.limits.logins_per_minute.max(1));
        Ok(Admin {
            fingerprint: crypto::token_hash(&hash)[..16].to_string(),
            password_hash: hash,
            failures: Mutex::new(HashMap::new()),
            bucket: Mutex::new((per_minute, Instant::now())),
            logins_per_minute: per_minute,
            verifying: tokio::sync::Semaphore::new(VERIFYING_AT_ONCE),
        })
    }

    /// Takes one login attempt from the bucket all addresses share.
    fn take_global(&self) -> bool {
        let mut b = self.bucket.lock();
        let now = Instant::now();
        let refill = now.duration_since(b.1).as_secs_f64() * self.logins_per_minute / 60.0;
        b.0 = (b.0 + refill).min(self.logins_per_minute);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Counts an attempt from `ip` before its password is verified (so that
    /// concurrent attempts cannot slip past the brake), or says how many
    /// seconds it must wait.
    fn reserve(&self, ip: IpAddr) -> Result<u32, u64> {
        let mut f = self.failures.lock();
        let e = f.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= BRAKE_WINDOW {
            *e = (0, Instant::now());
        }
        if e.0 >= BRAKE_TRIES {
            return Err((BRAKE_WINDOW - e.1.elapsed()).as_secs() + 1);
        }
        e.0 += 1;
        Ok(BRAKE_TRIES - e.0)
    }

    /// A right password clears the address's count.
    fn succeeded(&self, ip: IpAddr) {
        self.failures.lock().remove(&ip);
    }
}

/// A logged-in admin.
#[derive(Clone)]
pub struct Session {
    pub id_hash: String,
    pub csrf: String,
}

impl Session {
    pub fn chrome(&self) -> Chrome {
        Chrome {
            csrf: self.csrf.clone(),
            logged_in: true,
        }
    }
}

/// A session's CSRF token, derived from its cookie value: the store keeps
/// only hashes of both, so a copy of the store gives neither.
fn csrf_for(session_id: &str) -> String {
    crypto::token_hash(&format!("csrf:{session_id}"))
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The session of a request, or the answer to give instead (the login page for a page,
/// 403 for a form).
pub async fn session(app: &App, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(id) = cookie_value(headers) else {
        return Err(Redirect::to("/login").into_response());
    };
    let id_hash = crypto::token_hash(&id);
    let csrf = csrf_for(&id);
    match app
        .store
        .session_csrf(&id_hash, &app.admin.fingerprint)
        .await
    {
        Ok(Some(stored)) if crypto::token_matches(&csrf, &stored) => Ok(Session { id_hash, csrf }),
        Ok(_) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(super::errors::failure(&e.to_string())),
    }
}

/// A page's admin session as an extractor: without one, the browser goes
/// to the login page.
impl axum::extract::FromRequestParts<App> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Session, Response> {
        session(app, &parts.headers).await
    }
}

/// Checks a form: the session, the origin, and the CSRF token it carries.
pub async fn form_session(app: &App, headers: &HeaderMap, csrf: &str) -> Result<Session, Response> {
    if !same_origin(app, headers) {
        return Err(forbidden(
            "This form came from another site, so it was refused.",
        ));
    }
    let s = session(app, headers).await?;
    if !crypto::token_matches(csrf, &crypto::token_hash(&s.csrf)) {
        return Err(forbidden(
            "This form's security token is missing or out of date (was the page open in an old tab?). Reload the page and try again.",
        ));
    }
    Ok(s)
}

fn forbidden(why: &str) -> Response {
    super::errors::error_page(
        StatusCode::FORBIDDEN,
        None,
        "Refused",
        why,
        "Go back, reload the page and submit it again.",
    )
}

/// A form posted from another site carries its Origin; ours must be the
/// configured `public_url` (the Host header is the client's to say, so it
/// counts only when no public URL was configured).
fn same_origin(app: &App, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin == app.config.base_url() {
        return true;
    }
    if !app.config.public_url_derived {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

pub(super) fn session_cookie(app: &App, value: &str, max_age: u64) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if app.config.is_https() {
            "; Secure"
        } else {
            ""
        }
    )
}

pub async fn login_page(State(app): State<App>, headers: HeaderMap) -> Response {
    if session(&app, &headers).await.is_ok() {
        return Redirect::to("/integrations").into_response();
    }
    render(StatusCode::OK, &LoginPage::new(None))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    password: String,
}

pub async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&app, &headers) {
        return forbidden("This login came from another site, so it was refused.");
    }
    let too_many = |message: String| {
        render(
            StatusCode::TOO_MANY_REQUESTS,
            &LoginPage::new(Some(message)),
        )
    };
    let left = match app.admin.reserve(peer.ip()) {
        Ok(left) => left,
        Err(wait) => {
            return too_many(format!(
                "Too many wrong passwords from your address. Try again in {} minutes.",
                wait.div_ceil(60)
            ))
        }
    };
    if !app.admin.take_global() {
        return too_many(
            "Too many logins are being tried right now. Try again in a minute.".into(),
        );
    }
    // At most a few Argon2 verifications at once: each takes ~19 MiB.
    let Ok(Ok(_slot)) = tokio::time::timeout(VERIFY_WAIT, app.admin.verifying.acquire()).await
    else {
        return too_many("The server is busy checking other logins. Try again in a moment.".into());
    };
    if !verify(app.admin.password_hash.clone(), form.password).await {
        tracing::warn!(peer = %peer.ip(), "a wrong admin password");
        let minutes = BRAKE_WINDOW.as_secs() / 60;
        let message = match left {
            0 => format!("That password is not right. Logins from your address now wait {minutes} minutes."),
            1 => format!("That password is not right. One more wrong password, and logins from your address wait {minutes} minutes."),
            _ => "That password is not right.".into(),
        };
        return render(StatusCode::UNAUTHORIZED, &LoginPage::new(Some(message)));
    }
    app.admin.succeeded(peer.ip());
    start_session(&app).await
}

/// Checks a password against the Argon2 hash, off the async threads.
async fn verify(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A new admin session: stored (as hashes), its cookie set, on to Integrations.
async fn start_session(app: &App) -> Response {
    let id = crypto::new_token();
    let csrf_hash = crypto::token_hash(&csrf_for(&id));
    let expires = chrono::Utc::now().timestamp_millis() + SESSION_LIFETIME.as_millis() as i64;
    if let Err(e) = app
        .store
        .create_session(
            &crypto::token_hash(&id),
            &csrf_hash,
            &app.admin.fingerprint,
            expires,
        )
        .await
    {
        return super::errors::failure(&e.to_string());
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session_cookie(app, &id, SESSION_LIFETIME.as_secs()),
            ),
            (header::LOCATION, "/integrations".to_string()),
        ],
    )
        .into_response()
}
