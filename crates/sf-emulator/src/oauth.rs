//! The OAuth 2.0 endpoints: the authorize page (log in, Approve or Deny), the
//! token endpoint's grants, revoke, the identity URL and userinfo.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::auth::{self, Issued, OAuthError};
use crate::http::{bearer, escape_html, sf_json};
use crate::state::Emulator;

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn oauth_error(e: OAuthError) -> Response {
    let status = if e.error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    sf_json(
        status,
        &json!({"error": e.error, "error_description": e.description}),
    )
}

fn error_page(title: &str, detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html><head><title>OAuth Error</title></head><body><h1>OAuth Error</h1><p><b>{}</b></p><p>{}</p></body></html>",
            escape_html(title),
            escape_html(detail)
        )),
    )
        .into_response()
}

/// A 302 Found, as Salesforce redirects to the callback.
fn found(url: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", s.finish())
}

/// Checks the authorize parameters common to the page and its form.
fn check_authorize(em: &Emulator, p: &HashMap<String, String>) -> Result<(), Response> {
    let client_id = p.get("client_id").map(String::as_str).unwrap_or("");
    let redirect = p.get("redirect_uri").map(String::as_str).unwrap_or("");
    let auth = em.auth.lock();
    let Some(app) = auth.app(client_id) else {
        return Err(error_page("invalid_client_id", "client identifier invalid"));
    };
    if !app.accepts_callback(redirect) {
        return Err(error_page(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    if p.get("response_type").map(String::as_str) != Some("code") {
        let state = p.get("state").cloned().unwrap_or_default();
        return Err(found(&with_query(
            redirect,
            &[
                ("error", "unsupported_response_type"),
                ("error_description", "response type not supported"),
                ("state", &state),
            ],
        ))
        .into_response());
    }
    Ok(())
}

const CARRIED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "login_hint",
];

fn login_page(p: &HashMap<String, String>, message: Option<&str>) -> Response {
    let hidden: String = CARRIED
        .iter()
        .filter_map(|k| {
            p.get(*k).map(|v| {
                format!(
                    "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                    escape_html(v)
                )
            })
        })
        .collect();
    let app = escape_html(p.get("client_id").map(String::as_str).unwrap_or(""));
    let scope = escape_html(
        p.get("scope")
            .map(String::as_str)
            .unwrap_or("api refresh_token"),
    );
    let username = escape_html(
        p.get("login_hint")
            .or_else(|| p.get("username"))
            .map(String::as_str)
            .unwrap_or(""),
    );
    let msg = message
        .map(|m| {
            format!(
                "<p id=\"error\" class=\"error\" role=\"alert\">{}</p>",
                escape_html(m)
            )
        })
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Login | Salesforce (emulator)</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f3f6f9;display:flex;justify-content:center;padding-top:8vh;margin:0}}
main{{background:#fff;border:1px solid #d8dde6;border-radius:8px;padding:2rem;width:22rem;box-shadow:0 2px 6px rgba(0,0,0,.06)}}
h1{{font-size:1.3rem;margin:0 0 .2rem}} p.sub{{color:#54698d;margin:0 0 1.2rem;font-size:.9rem}}
label{{display:block;font-size:.85rem;color:#3e3e3c;margin:.8rem 0 .3rem}}
input[type=text],input[type=password]{{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #c9c9c9;border-radius:4px;font-size:1rem}}
.scopes{{background:#f3f6f9;border-radius:4px;padding:.6rem;font-size:.85rem;margin-top:1rem}}
.buttons{{display:flex;gap:.6rem;margin-top:1.2rem}} button{{flex:1;padding:.6rem;border-radius:4px;font-size:1rem;cursor:pointer;border:1px solid #0176d3}}
#approve{{background:#0176d3;color:#fff}} #deny{{background:#fff;color:#0176d3}} .error{{color:#c23934;font-size:.9rem}}
</style></head>
<body><main>
<h1>Salesforce emulator</h1><p class="sub">Log in to allow access by <b>{app}</b></p>
{msg}
<form method="post" action="/services/oauth2/authorize">
{hidden}
<label for="username">Username</label><input type="text" id="username" name="username" value="{username}" autocomplete="username">
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password">
<div class="scopes">This app asks to: <b>{scope}</b></div>
<div class="buttons"><button type="submit" id="deny" name="action" value="deny">Deny</button><button type="submit" id="approve" name="action" value="approve">Allow</button></div>
</form></main></body></html>"#
    ))
    .into_response()
}

pub async fn authorize_page(
    State(em): State<Arc<Emulator>>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check_authorize(&em, &p) {
        return r;
    }
    login_page(&p, None)
}

pub async fn authorize_submit(
    State(em): State<Arc<Emulator>>,
    body: axum::body::Bytes,
) -> Response {
    let p = form(&body);
    if let Err(r) = check_authorize(&em, &p) {
        return r;
    }
    let redirect = p.get("redirect_uri").cloned().unwrap_or_default();
    let state = p.get("state").cloned().unwrap_or_default();
    let mut params: Vec<(&str, &str)> = Vec::new();
    if p.get("action").map(String::as_str) != Some("approve") {
        params.push(("error", "access_denied"));
        params.push(("error_description", "end-user denied authorization"));
        if !state.is_empty() {
            params.push(("state", &state));
        }
        return found(&with_query(&redirect, &params)).into_response();
    }
    let user = {
        let auth = em.auth.lock();
        auth.login(
            p.get("username").map(String::as_str).unwrap_or(""),
            p.get("password").map(String::as_str).unwrap_or(""),
        )
        .map(|c| c.user_id.clone())
    };
    let Some(user_id) = user else {
        return login_page(&p, Some("Please check your username and password. If you still can't log in, contact your Salesforce administrator."));
    };
    if !app_permits(
        &em,
        p.get("client_id").map(String::as_str).unwrap_or(""),
        &user_id,
    ) {
        // What Salesforce sends back for a user the app is not approved for
        // (salesforce-api.md §9.8).
        params.push(("error", "OAUTH_APP_ACCESS_DENIED"));
        params.push(("error_description", NOT_APPROVED));
        if !state.is_empty() {
            params.push(("state", &state));
        }
        return found(&with_query(&redirect, &params)).into_response();
    }
    let code = em.auth.lock().issue_code(
        p.get("client_id").map(String::as_str).unwrap_or(""),
        &redirect,
        p.get("code_challenge").filter(|c| !c.is_empty()).cloned(),
        &user_id,
        p.get("scope").map(String::as_str).unwrap_or(""),
    );
    params.push(("code", &code));
    if !state.is_empty() {
        params.push(("state", &state));
    }
    em.count("oauth.authorize");
    found(&with_query(&redirect, &params)).into_response()
}

const NOT_APPROVED: &str = "user is not admin approved to access this app";

/// Whether the app's policy lets this user use it (Permitted Users).
fn app_permits(em: &Emulator, client_id: &str, user_id: &str) -> bool {
    let profile = em.profile_name_of(user_id).unwrap_or_default();
    em.auth
        .lock()
        .app(client_id)
        .is_none_or(|a| a.permits_profile(&profile))
}

/// The password grant, as the org's and the app's policies allow it.
fn password_grant(
    em: &Emulator,
    client_id: &str,
    secret: Option<&str>,
    username: &str,
    password: &str,
) -> Result<auth::Issued, auth::OAuthError> {
    if !em.settings.password_flow {
        // Blocked flows look exactly like wrong credentials (§9.8).
        return Err(auth::AUTH_FAILURE);
    }
    let user = em
        .auth
        .lock()
        .login(username, password)
        .map(|c| c.user_id.clone());
    if let Some(user_id) = user {
        if !app_permits(em, client_id, &user_id) {
            return Err(auth::OAuthError {
                error: "invalid_app_access",
                description: NOT_APPROVED,
            });
        }
    }
    em.auth
        .lock()
        .password_grant(client_id, secret, username, password)
}

/// Client credentials from the form or from HTTP Basic auth.
fn client_credentials(
    headers: &HeaderMap,
    p: &HashMap<String, String>,
) -> (String, Option<String>) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) {
            if let Some((id, secret)) = String::from_utf8_lossy(&decoded).split_once(':') {
                return (id.to_string(), Some(secret.to_string()));
            }
        }
    }
    (
        p.get("client_id").cloned().unwrap_or_default(),
        p.get("client_secret").filter(|s| !s.is_empty()).cloned(),
    )
}

fn token_response(em: &Emulator, issued: &Issued) -> Response {
    let base = em.base_url();
    let id_url = format!("{base}/id/{}/{}", em.org.read().org_id, issued.user_id);
    let issued_at = issued.issued_at_ms.to_string();
    let secret = em
        .auth
        .lock()
        .app(&issued.client_id)
        .map(|a| a.client_secret.clone())
        .unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(format!("{id_url}{issued_at}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut body = json!({
        "access_token": issued.access_token,
        "signature": signature,
        "scope": if issued.scope.is_empty() { "api refresh_token".to_string() } else { issued.scope.clone() },
        "instance_url": base,
        "id": id_url,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if let Some(rt) = &issued.refresh_token {
        body["refresh_token"] = json!(rt);
    }
    sf_json(StatusCode::OK, &body)
}

pub async fn token(
    State(em): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    em.count("oauth.token");
    let p = form(&body);
    let (client_id, secret) = client_credentials(&headers, &p);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") == "password" {
        return match password_grant(
            &em,
            &client_id,
            secret.as_deref(),
            get("username"),
            get("password"),
        ) {
            Ok(issued) => token_response(&em, &issued),
            Err(e) => oauth_error(e),
        };
    }
    let result = {
        let mut auth = em.auth.lock();
        match get("grant_type") {
            "authorization_code" => auth.exchange_code(
                get("code"),
                &client_id,
                secret.as_deref(),
                get("redirect_uri"),
                p.get("code_verifier").map(String::as_str),
            ),
            "refresh_token" => auth.refresh(get("refresh_token"), &client_id, secret.as_deref()),
            "client_credentials" => auth.client_credentials(&client_id, secret.as_deref()),
            _ => Err(auth::BAD_GRANT_TYPE),
        }
    };
    match result {
        Ok(issued) => token_response(&em, &issued),
        Err(e) => oauth_error(e),
    }
}

fn do_revoke(em: &Emulator, token: Option<&String>) -> Response {
    em.count("oauth.revoke");
    match token {
        Some(t) if em.auth.lock().revoke(t) => StatusCode::OK.into_response(),
        _ => sf_json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_token", "error_description": "invalid token"}),
        ),
    }
}

pub async fn revoke(State(em): State<Arc<Emulator>>, body: axum::body::Bytes) -> Response {
    do_revoke(&em, form(&body).get("token"))
}

pub async fn revoke_get(
    State(em): State<Arc<Emulator>>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    do_revoke(&em, p.get("token"))
}

fn user_facts(
    em: &Emulator,
    user_id: &str,
) -> Option<(String, String, String, Option<String>, String)> {
    let org = em.org.read();
    let t = org.table("User")?;
    let row = t.get(user_id)?;
    let s = |f: &str| {
        org.get_field("User", row, f)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    Some((
        s("Username")?,
        s("Name").unwrap_or_default(),
        s("Email").unwrap_or_default(),
        s("FirstName"),
        s("LastName").unwrap_or_default(),
    ))
}

fn session_user(em: &Emulator, headers: &HeaderMap) -> Option<String> {
    let token = bearer(headers)?;
    em.auth.lock().session(&token).map(|s| s.user_id.clone())
}

pub async fn identity(
    State(em): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((org_id, user_id)): Path<(String, String)>,
) -> Response {
    em.count("oauth.identity");
    let Some(session_user) = session_user(&em, &headers) else {
        return crate::http::invalid_session();
    };
    if !session_user.eq_ignore_ascii_case(&user_id)
        || !org_id.eq_ignore_ascii_case(&em.org.read().org_id)
    {
        return sf_json(
            StatusCode::FORBIDDEN,
            &json!({"error": "Bad_Id", "error_description": "Bad id"}),
        );
    }
    let Some((username, name, email, first, last)) = user_facts(&em, &user_id) else {
        return crate::http::not_found();
    };
    let base = em.base_url();
    let v = &em.config.api_version_max;
    let org = em.org.read().org_id.clone();
    sf_json(
        StatusCode::OK,
        &json!({
            "id": format!("{base}/id/{org}/{user_id}"),
            "asserted_user": true,
            "user_id": user_id,
            "organization_id": org,
            "username": username,
            "nick_name": username.split('@').next().unwrap_or(""),
            "display_name": name,
            "email": email,
            "first_name": first,
            "last_name": last,
            "active": true,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "urls": {
                "enterprise": format!("{base}/services/Soap/c/{v}/{org}"),
                "metadata": format!("{base}/services/Soap/m/{v}/{org}"),
                "partner": format!("{base}/services/Soap/u/{v}/{org}"),
                "rest": format!("{base}/services/data/v{v}/"),
                "sobjects": format!("{base}/services/data/v{v}/sobjects/"),
                "query": format!("{base}/services/data/v{v}/query/"),
                "limits": format!("{base}/services/data/v{v}/limits/"),
                "profile": format!("{base}/{user_id}"),
            },
            "is_app_installed": true,
        }),
    )
}

pub async fn userinfo(State(em): State<Arc<Emulator>>, headers: HeaderMap) -> Response {
    em.count("oauth.userinfo");
    let Some(user_id) = session_user(&em, &headers) else {
        return (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    };
    let Some((username, name, email, first, last)) = user_facts(&em, &user_id) else {
        return crate::http::not_found();
    };
    let base = em.base_url();
    let org = em.org.read().org_id.clone();
    sf_json(
        StatusCode::OK,
        &json!({
            "sub": format!("{base}/id/{org}/{user_id}"),
            "user_id": user_id,
            "organization_id": org,
            "preferred_username": username,
            "nickname": username.split('@').next().unwrap_or(""),
            "name": name,
            "email": email,
            "email_verified": true,
            "given_name": first,
            "family_name": last,
            "zoneinfo": "Etc/UTC",
            "locale": "en_US",
            "active": true,
            "user_type": "STANDARD",
            "updated_at": "2026-01-01T00:00:00Z",
        }),
    )
}
