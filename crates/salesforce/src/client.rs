//! The REST client: one org, one session. Refreshes the access token once per
//! expiry however many calls notice it (single flight), persists rotated
//! tokens through a [`TokenSink`] before using them, reads `Sforce-Limit-Info`
//! on every answer, and turns errors into [`Error`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, Error, Result};
use crate::json;
use crate::oauth::{now_ms, OAuthApp, TokenSet};
use crate::transport::{unanswered, Transport};
use crate::types::{ApiUsage, Describe, RecordResult};
use crate::Secret;

/// Where refreshed (and rotated) tokens are stored. Called inside the refresh,
/// before the new token is used: a rotated refresh token is never only in memory.
pub trait TokenSink: Send + Sync {
    fn persist<'a>(
        &'a self,
        tokens: &'a TokenSet,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<(), String>> + Send + 'a>>;

    /// Called before refreshing `held`, under the client's own single-flight lock.
    /// A sink shared by several processes takes its own lock here (released by
    /// [`TokenSink::end_refresh`]) and answers with tokens another process
    /// refreshed meanwhile, which the client then uses instead of refreshing:
    /// so a rotated refresh token is never spent twice.
    fn begin_refresh<'a>(
        &'a self,
        held: &'a TokenSet,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Option<TokenSet>, String>> + Send + 'a>>
    {
        let _ = held;
        Box::pin(async { Ok(None) })
    }

    /// Called after a refresh begun with `Ok(None)` ends, stored or failed.
    fn end_refresh(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

/// The most records one sObject Collections call takes.
pub const COLLECTION_LIMIT: usize = 200;

#[derive(Clone)]
pub struct ClientConfig {
    /// API version without the `v`, e.g. "67.0".
    pub api_version: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Lifetime assumed for an access token when the token response has no `expires_in`.
    pub assumed_token_lifetime: Duration,
    /// Extra trusted CAs and a proxy.
    pub transport: Transport,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            api_version: "67.0".into(),
            timeout: Duration::from_secs(60),
            assumed_token_lifetime: Duration::from_secs(2 * 3600),
            transport: Transport::default(),
        }
    }
}

struct Session {
    tokens: TokenSet,
    /// Bumped on every refresh, so a caller can tell whether someone else refreshed.
    generation: u64,
}

struct Inner {
    http: reqwest::Client,
    app: Option<OAuthApp>,
    config: ClientConfig,
    session: RwLock<Session>,
    refresh_lock: tokio::sync::Mutex<()>,
    sink: Option<Arc<dyn TokenSink>>,
    usage: Mutex<Option<ApiUsage>>,
    describes: Mutex<HashMap<String, Arc<Describe>>>,
    calls: AtomicU64,
    /// Describe calls made, and the microseconds they took.
    describe_calls: AtomicU64,
    describe_micros: AtomicU64,
    refreshes: AtomicU64,
    /// For sessions from the password grant (no refresh token): log in again instead.
    password_login: Mutex<Option<(String, Secret)>>,
}

/// A Salesforce org, as one connected user sees it. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("instance_url", &self.instance_url())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client over an existing session. Without `app` it cannot refresh.
    pub fn new(
        tokens: TokenSet,
        app: Option<OAuthApp>,
        sink: Option<Arc<dyn TokenSink>>,
        config: ClientConfig,
    ) -> Client {
        Client::with_http(
            config.transport.http_client(config.timeout),
            tokens,
            app,
            sink,
            config,
        )
    }

    pub fn with_http(
        http: reqwest::Client,
        tokens: TokenSet,
        app: Option<OAuthApp>,
        sink: Option<Arc<dyn TokenSink>>,
        config: ClientConfig,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                http,
                app,
                config,
                session: RwLock::new(Session {
                    tokens,
                    generation: 0,
                }),
                refresh_lock: tokio::sync::Mutex::new(()),
                sink,
                usage: Mutex::new(None),
                describes: Mutex::new(HashMap::new()),
                calls: AtomicU64::new(0),
                describe_calls: AtomicU64::new(0),
                describe_micros: AtomicU64::new(0),
                refreshes: AtomicU64::new(0),
                password_login: Mutex::new(None),
            }),
        }
    }

    /// Lets a session from the password grant (which has no refresh token)
    /// be renewed by logging in again.
    pub fn set_password_login(&self, username: String, password: Secret) {
        *self.inner.password_login.lock() = Some((username, password));
    }

    pub fn instance_url(&self) -> String {
        self.inner.session.read().tokens.instance_url.clone()
    }

    pub fn api_version(&self) -> &str {
        &self.inner.config.api_version
    }

    pub fn tokens(&self) -> TokenSet {
        self.inner.session.read().tokens.clone()
    }

    /// The org's API usage from the last `Sforce-Limit-Info` header seen.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        *self.inner.usage.lock()
    }

    /// API calls this client made (REST and SOAP, not OAuth).
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// Describe calls this client made (among [`Client::calls`]) and how
    /// long they took: setup, which a caller timing its own work can leave out.
    pub fn describing(&self) -> (u64, std::time::Duration) {
        let micros = self.inner.describe_micros.load(Ordering::Relaxed);
        (
            self.inner.describe_calls.load(Ordering::Relaxed),
            std::time::Duration::from_micros(micros),
        )
    }

    /// Token refreshes this client made.
    pub fn refreshes(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    fn refresh_due(&self) -> bool {
        let s = self.inner.session.read();
        let lifetime = s
            .tokens
            .expires_in_secs
            .map(|secs| Duration::from_secs(secs).mul_f64(0.9))
            .unwrap_or(self.inner.config.assumed_token_lifetime / 2);
        let age = Duration::from_millis(now_ms().saturating_sub(s.tokens.issued_at_ms));
        age >= lifetime && s.tokens.refresh_token.is_some()
    }

    /// Refreshes the access token, unless another caller already did since
    /// `seen_generation`. One refresh at a time.
    pub async fn refresh(&self, seen_generation: Option<u64>) -> Result<()> {
        let _guard = self.inner.refresh_lock.lock().await;
        let (generation, refresh_token) = {
            let s = self.inner.session.read();
            (s.generation, s.tokens.refresh_token.clone())
        };
        if seen_generation.is_some_and(|g| g != generation) {
            return Ok(());
        }
        if let Some(sink) = &self.inner.sink {
            let held = self.inner.session.read().tokens.clone();
            let newer = sink.begin_refresh(&held).await.map_err(|e| {
                Error::Config(format!("could not coordinate the token refresh: {e}"))
            })?;
            if let Some(newer) = newer {
                // Another process refreshed (and stored) meanwhile: use its tokens.
                let mut s = self.inner.session.write();
                s.tokens = newer;
                s.generation += 1;
                return Ok(());
            }
        }
        let result = self.refresh_now(refresh_token).await;
        if let Some(sink) = &self.inner.sink {
            sink.end_refresh().await;
        }
        result
    }

    /// The refresh itself: the token endpoint, then the sink, then the session.
    async fn refresh_now(&self, refresh_token: Option<Secret>) -> Result<()> {
        let app = self.inner.app.as_ref().ok_or_else(|| {
            Error::Config("this connection cannot refresh its token: no connected app".into())
        })?;
        let login = self.inner.password_login.lock().clone();
        let fresh = match (refresh_token, login) {
            (Some(rt), _) => {
                let mut t = app.refresh(&self.inner.http, &rt).await?;
                if t.refresh_token.is_none() {
                    t.refresh_token = Some(rt);
                }
                t
            }
            (None, Some((user, password))) => {
                app.password(&self.inner.http, &user, &password).await?
            }
            (None, None) => {
                return Err(Error::OAuth {
                    status: 401,
                    error: "invalid_grant".into(),
                    description: "the session expired and there is no refresh token: reconnect"
                        .into(),
                })
            }
        };
        if let Some(sink) = &self.inner.sink {
            sink.persist(&fresh)
                .await
                .map_err(|e| Error::Config(format!("could not store the refreshed token: {e}")))?;
        }
        let mut s = self.inner.session.write();
        s.tokens = fresh;
        s.generation += 1;
        self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_string();
        }
        let base = self.instance_url();
        if path.starts_with("/services/") {
            format!("{base}{path}")
        } else {
            format!(
                "{base}/services/data/v{}/{}",
                self.inner.config.api_version,
                path.trim_start_matches('/')
            )
        }
    }

    fn note_usage(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(u) = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse)
        {
            *self.inner.usage.lock() = Some(u);
        }
    }

    /// One HTTP exchange with the org: counted, its usage header read, in a
    /// `salesforce` span (method and path; never the query, which holds SOQL).
    async fn exchange(
        &self,
        req: reqwest::RequestBuilder,
        method: &Method,
        path: &str,
    ) -> Result<(u16, bytes::Bytes)> {
        use tracing::Instrument;
        let path = path.split('?').next().unwrap_or("");
        let span = tracing::info_span!(
            "salesforce",
            method = %method,
            path = %path,
            status = tracing::field::Empty
        );
        async {
            self.inner.calls.fetch_add(1, Ordering::Relaxed);
            let resp = req.send().await.map_err(|e| unanswered(&e))?;
            let status = resp.status().as_u16();
            tracing::Span::current().record("status", status);
            self.note_usage(resp.headers());
            let bytes = resp.bytes().await.map_err(|e| unanswered(&e))?;
            Ok((status, bytes))
        }
        .instrument(span)
        .await
    }

    /// Sends one request; refreshes once and retries on INVALID_SESSION_ID.
    /// Returns the status and the body (JSON `null` for an empty body).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        if self.refresh_due() {
            let generation = self.inner.session.read().generation;
            self.refresh(Some(generation)).await?;
        }
        let mut refreshed = false;
        loop {
            let (token, generation) = {
                let s = self.inner.session.read();
                (s.tokens.access_token.clone(), s.generation)
            };
            let mut req = self
                .inner
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(token.expose());
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let (status, bytes) = self.exchange(req, &method, path).await?;
            let value: Value = if bytes.is_empty() {
                Value::Null
            } else {
                match serde_json::from_slice(&bytes) {
                    Ok(v) => v,
                    // A front door or proxy answers in HTML: the status says what it is.
                    Err(_) if !(200..300).contains(&status) => {
                        return Err(Error::Api(non_json_error(status, &bytes)))
                    }
                    Err(_) => {
                        return Err(Error::Protocol(format!(
                            "{status} answer was not JSON: {}",
                            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                        )))
                    }
                }
            };
            if (200..300).contains(&status) || status == 300 {
                return Ok((status, value));
            }
            let err = api_error(status, &value);
            if status == 401 && !refreshed && self.inner.app.is_some() {
                refreshed = true;
                self.refresh(Some(generation)).await?;
                continue;
            }
            return Err(Error::Api(err));
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(Method::GET, path, None, &[])
            .await
            .map(|(_, v)| v)
    }

    /// Runs a query and follows `nextRecordsUrl` to the end.
    pub async fn query(&self, soql: &str) -> Result<Vec<Map<String, Value>>> {
        let page = self.get(&query_path(soql)).await?;
        self.all_records(page).await
    }

    /// A query answer's records, following `nextRecordsUrl` to the end.
    pub(crate) async fn all_records(&self, mut page: Value) -> Result<Vec<Map<String, Value>>> {
        let mut out = Vec::new();
        loop {
            if let Some(Value::Array(records)) = page.get_mut("records").map(Value::take) {
                out.extend(records.into_iter().filter_map(|r| match r {
                    Value::Object(m) => Some(m),
                    _ => None,
                }));
            }
            match json::text(&page, "nextRecordsUrl") {
                Some(next) if page.get("done") != Some(&Value::Bool(true)) => {
                    page = self.get(next).await?
                }
                _ => return Ok(out),
            }
        }
    }

    /// Runs a SOSL search (`FIND {...} RETURNING ...`): its `searchRecords`
    /// (also a bare array, as old API versions answer).
    pub async fn search(&self, sosl: &str) -> Result<Vec<Map<String, Value>>> {
        let q: String = form_urlencoded::byte_serialize(sosl.as_bytes()).collect();
        let v = self.get(&format!("search?q={q}")).await?;
        let records = match v {
            Value::Object(mut m) => m.remove("searchRecords").unwrap_or(Value::Null),
            other => other,
        };
        match records {
            Value::Array(a) => Ok(a
                .into_iter()
                .filter_map(|r| match r {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect()),
            _ => Err(Error::Protocol(
                "search answer without searchRecords".into(),
            )),
        }
    }

    /// `SELECT COUNT() ...`
    pub async fn count(&self, soql: &str) -> Result<u64> {
        let v = self.get(&query_path(soql)).await?;
        v.get("totalSize")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::Protocol("query answer without totalSize".into()))
    }

    /// Creates one record and returns its id.
    pub async fn create(&self, object: &str, body: &Value) -> Result<String> {
        self.create_with(object, body, &[]).await
    }

    /// [`Client::create`] with extra headers (such as `Sforce-Duplicate-Rule-Header`).
    pub async fn create_with(
        &self,
        object: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<String> {
        let (_, v) = self
            .send(
                Method::POST,
                &format!("sobjects/{object}"),
                Some(body),
                headers,
            )
            .await?;
        json::text(&v, "id")
            .map(str::to_string)
            .ok_or_else(|| Error::Protocol("create answer without id".into()))
    }

    pub async fn update(&self, object: &str, id: &str, body: &Value) -> Result<()> {
        self.send(
            Method::PATCH,
            &format!("sobjects/{object}/{id}"),
            Some(body),
            &[],
        )
        .await
        .map(|_| ())
    }

    pub async fn delete(&self, object: &str, id: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("sobjects/{object}/{id}"),
            None,
            &[],
        )
        .await
        .map(|_| ())
    }

    /// Creates records by sObject Collections (each record carries `attributes.type`),
    /// in calls of at most 200; one result per record, in order.
    pub async fn create_many(
        &self,
        records: &[Value],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>> {
        self.create_many_with(records, all_or_none, &[]).await
    }

    /// [`Client::create_many`] with extra headers.
    pub async fn create_many_with(
        &self,
        records: &[Value],
        all_or_none: bool,
        headers: &[(&str, &str)],
    ) -> Result<Vec<RecordResult>> {
        let mut out = Vec::with_capacity(records.len());
        for chunk in records.chunks(COLLECTION_LIMIT) {
            let body = json!({"allOrNone": all_or_none, "records": chunk});
            let (_, v) = self
                .send(Method::POST, "composite/sobjects", Some(&body), headers)
                .await?;
            out.extend(RecordResult::parse_list(&v, chunk.len())?);
        }
        Ok(out)
    }

    /// Upserts records of one object on an external-id field by sObject
    /// Collections, in calls of at most 200; one result per record, in order.
    pub async fn upsert_many(
        &self,
        object: &str,
        ext_field: &str,
        records: &[Value],
    ) -> Result<Vec<RecordResult>> {
        let mut out = Vec::with_capacity(records.len());
        for chunk in records.chunks(COLLECTION_LIMIT) {
            let body = json!({"allOrNone": false, "records": chunk});
            let (_, v) = self
                .send(
                    Method::PATCH,
                    &format!("composite/sobjects/{object}/{ext_field}"),
                    Some(&body),
                    &[],
                )
                .await?;
            out.extend(RecordResult::parse_list(&v, chunk.len())?);
        }
        Ok(out)
    }

    /// Describes an object, from the cache when it was described before.
    pub async fn describe(&self, object: &str) -> Result<Arc<Describe>> {
        if let Some(d) = self
            .inner
            .describes
            .lock()
            .get(&object.to_ascii_lowercase())
        {
            return Ok(d.clone());
        }
        let started = std::time::Instant::now();
        let v = self.get(&format!("sobjects/{object}/describe")).await;
        let micros = started.elapsed().as_micros() as u64;
        self.inner.describe_calls.fetch_add(1, Ordering::Relaxed);
        self.inner
            .describe_micros
            .fetch_add(micros, Ordering::Relaxed);
        let d = Arc::new(Describe::from_json(&v?)?);
        self.inner
            .describes
            .lock()
            .insert(object.to_ascii_lowercase(), d.clone());
        Ok(d)
    }

    /// Forgets cached describes (after a schema change).
    pub fn invalidate_describes(&self) {
        self.inner.describes.lock().clear();
    }

    pub async fn limits(&self) -> Result<Value> {
        self.get("limits").await
    }

    /// The connected user's identity (`user_id`, `organization_id`, `username`).
    pub async fn identity(&self) -> Result<Value> {
        let url = self.inner.session.read().tokens.id_url.clone();
        self.get(&url).await
    }

    /// Sends a Metadata API SOAP body (`<createMetadata>...`) and returns the
    /// operation's response element. Refreshes once on INVALID_SESSION_ID.
    pub async fn soap(&self, operation_xml: &str) -> Result<crate::xml::El> {
        let mut refreshed = false;
        loop {
            let (token, generation) = {
                let s = self.inner.session.read();
                (s.tokens.access_token.clone(), s.generation)
            };
            let envelope = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Header xmlns="http://soap.sforce.com/2006/04/metadata"><SessionHeader><sessionId>{}</sessionId></SessionHeader></soapenv:Header><soapenv:Body xmlns="http://soap.sforce.com/2006/04/metadata">{operation_xml}</soapenv:Body></soapenv:Envelope>"#,
                crate::xml::escape(token.expose())
            );
            let url = self.url(&format!(
                "/services/Soap/m/{}",
                self.inner.config.api_version
            ));
            let req = self
                .inner
                .http
                .post(url)
                .header("content-type", "text/xml; charset=UTF-8")
                .header("SOAPAction", "\"\"")
                .body(envelope);
            let (status, bytes) = self
                .exchange(req, &Method::POST, "/services/Soap/m")
                .await?;
            let doc = match crate::xml::parse(&bytes) {
                Ok(d) => d,
                // An outage answers with whatever body it has: a 5xx is retryable whatever it says.
                Err(_) if status >= 500 || status == 429 => {
                    return Err(Error::Api(ApiError {
                        status,
                        code: "SERVER_UNAVAILABLE".into(),
                        message: format!("the Metadata API answered {status}"),
                        ..Default::default()
                    }));
                }
                Err(e) => return Err(Error::Protocol(format!("SOAP answer ({status}): {e}"))),
            };
            let body = doc
                .child("Body")
                .ok_or_else(|| Error::Protocol("SOAP answer without a Body".into()))?;
            if let Some(fault) = body.child("Fault") {
                let code = fault
                    .text_of("faultcode")
                    .unwrap_or("")
                    .rsplit(':')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let message = fault.text_of("faultstring").unwrap_or("").to_string();
                if code == "INVALID_SESSION_ID" && !refreshed && self.inner.app.is_some() {
                    refreshed = true;
                    self.refresh(Some(generation)).await?;
                    continue;
                }
                return Err(Error::Api(ApiError {
                    status,
                    code,
                    message,
                    ..Default::default()
                }));
            }
            if !(200..300).contains(&status) {
                return Err(Error::Api(ApiError {
                    status,
                    code: format!("HTTP_{status}"),
                    message: "SOAP call failed".into(),
                    ..Default::default()
                }));
            }
            return body
                .children
                .first()
                .cloned()
                .ok_or_else(|| Error::Protocol("empty SOAP Body".into()));
        }
    }
}

pub(crate) fn query_path(soql: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(soql.as_bytes()).collect();
    format!("query?q={q}")
}

/// An error answer that is not JSON (Salesforce's front door answers 414
/// and 431 in HTML; proxies answer 5xx pages): classified by its status.
fn non_json_error(status: u16, body: &[u8]) -> ApiError {
    let code = match status {
        414 => "URI_TOO_LONG".to_string(),
        431 => "REQUEST_HEADER_FIELDS_TOO_LARGE".to_string(),
        s if s >= 500 => "SERVER_UNAVAILABLE".to_string(),
        s => format!("HTTP_{s}"),
    };
    let text: String = String::from_utf8_lossy(&body[..body.len().min(200)])
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    ApiError {
        status,
        code,
        message: format!("the answer was not JSON: {text}"),
        ..Default::default()
    }
}

/// A REST error body (`[{message, errorCode, fields}]`) as an [`ApiError`].
pub(crate) fn api_error(status: u16, v: &Value) -> ApiError {
    let first = v.as_array().and_then(|a| a.first()).unwrap_or(v);
    ApiError {
        status,
        code: json::text_or(
            first,
            "errorCode",
            if status >= 500 {
                "SERVER_ERROR"
            } else {
                "HTTP_ERROR"
            },
        ),
        message: json::text_or(first, "message", ""),
        fields: json::strings(first, "fields"),
        duplicates: duplicate_result(first).map(|d| {
            Box::new(crate::error::Duplicates {
                rule: json::text(d, "duplicateRule").map(str::to_string),
                records: json::list(d, "matchResults")
                    .iter()
                    .flat_map(|m| {
                        let entity = json::text_or(m, "entityType", "");
                        json::list(m, "matchRecords").iter().filter_map(move |r| {
                            let id = r.get("record")?.get("Id")?.as_str()?;
                            Some((entity.clone(), id.to_string()))
                        })
                    })
                    .collect(),
            })
        }),
    }
}

/// The duplicate result of an error item, under either spelling.
fn duplicate_result(item: &Value) -> Option<&Value> {
    item.get("duplicateResut")
        .or_else(|| item.get("duplicateResult"))
}

/// Sent with Contact creation: lets an alert-only duplicate rule save
/// (API 52.0+); a Block rule still refuses (salesforce-api.md §9.3).
pub const ALLOW_DUPLICATE_SAVE: (&str, &str) = (
    "Sforce-Duplicate-Rule-Header",
    "allowSave=true; includeRecordDetails=false; runAsCurrentUser=false",
);

/// Convenience: a `Secret` from a token string.
pub fn secret(s: &str) -> Secret {
    Secret::new(s)
}
