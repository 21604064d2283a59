//! The REST API under `/services/data/vNN.N/`: one handler that checks the
//! version, passes the gate, and dispatches on method and path segments (both
//! trailing-slash forms, percent-decoded segments).

mod collections;
mod composite;
mod describe;
mod query;
mod search;
mod sobjects;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::dml::RecError;
use crate::http::{bearer, not_found, sf_error, sf_json, with_limit_info};
use crate::server::ConnControl;
use crate::state::Emulator;

/// The first version the emulator serves.
pub const MIN_VERSION: u32 = 50;

/// One authenticated API request, as handlers see it.
pub struct Req<'a> {
    pub em: &'a Emulator,
    pub user: String,
    /// "67.0"
    pub version: String,
    pub method: Method,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req<'_> {
    /// `Sforce-Duplicate-Rule-Header: allowSave=true` (API 52.0+).
    pub fn allow_save(&self) -> bool {
        self.headers
            .get("sforce-duplicate-rule-header")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').any(|kv| {
                    kv.split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("allowSave")
                            && v.trim().eq_ignore_ascii_case("true")
                    })
                })
            })
    }

    /// The caller of a DML call: this request's user, with `access` (its
    /// field access) and its duplicate-rule header.
    pub fn caller<'a>(
        &'a self,
        access: &'a crate::security::FieldAccess,
    ) -> crate::dml::Caller<'a> {
        crate::dml::Caller {
            user_id: &self.user,
            access,
            allow_save: self.allow_save(),
        }
    }

    /// The body as a JSON object, or Salesforce's JSON_PARSER_ERROR.
    pub fn json_object(&self, what: &str) -> Result<Map<String, Value>, Response> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(parser_error(&format!(
                "Cannot deserialize instance of {what} from {} value or request may be missing a required field at [line:1, column:1]",
                if other.is_array() { "START_ARRAY" } else { "VALUE_STRING" }
            ))),
            Err(e) => Err(parser_error(&format!("Unexpected character in JSON: {e}"))),
        }
    }
}

pub fn parser_error(message: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", message, &[])
}

/// A DML error as a single-record call answers it.
pub fn rec_error(e: &RecError) -> Response {
    let status = if e.status_code == "NOT_FOUND" {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut item = json!({"message": e.message, "errorCode": e.status_code, "fields": e.fields});
    if let Some(d) = &e.duplicates {
        // Spelled `duplicateResut` (sic), as real orgs send it (salesforce-api.md §9.3).
        item["duplicateResut"] = json!({
            "allowSave": d.allow_save,
            "duplicateRule": d.rule,
            "duplicateRuleEntityType": d.entity,
            "errorMessage": e.message,
            "matchResults": d.records.iter().map(|(object, id)| json!({
                "entityType": object, "errors": [], "matchEngine": "FuzzyMatchEngine",
                "matchRecords": [{"additionalInformation": [], "fieldDiffs": [], "matchConfidence": 100.0,
                    "record": {"attributes": {"type": object, "url": format!("/services/data/v67.0/sobjects/{object}/{id}")}, "Id": id}}],
                "rule": format!("Standard_{object}_Match_Rule_v1_1"), "size": 1, "success": true
            })).collect::<Vec<_>>(),
        });
    }
    sf_json(status, &json!([item]))
}

pub fn rec_error_item(e: &RecError) -> Value {
    json!({"statusCode": e.status_code, "message": e.message, "fields": e.fields})
}

fn release_name(v: u32) -> String {
    // API 67.0 is Summer '26; three releases a year (Summer, Spring, Winter), going back.
    let idx = 67i64 - v as i64;
    let season = ["Summer", "Spring", "Winter"][idx.rem_euclid(3) as usize];
    let year = 26 - idx.div_euclid(3);
    format!("{season} '{:02}", year.rem_euclid(100))
}

fn max_version(em: &Emulator) -> u32 {
    em.config
        .api_version_max
        .split('.')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(67)
}

/// `GET /services/data/`: the versions served, without authentication.
pub async fn versions(State(em): State<Arc<Emulator>>) -> Response {
    em.count("versions");
    let list: Vec<Value> = (MIN_VERSION..=max_version(&em))
        .map(|v| json!({"label": release_name(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")}))
        .collect();
    sf_json(StatusCode::OK, &Value::Array(list))
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

/// The decoded segments of a path under `/services/data/` (the version
/// first, a trailing slash dropped), or None for a path elsewhere.
fn segments(path: &str) -> Option<Vec<String>> {
    let raw = path.strip_prefix("/services/data/")?;
    let mut segs: Vec<String> = raw.split('/').map(decode).collect();
    if segs.len() > 1 && segs.last().is_some_and(String::is_empty) {
        segs.pop();
    }
    Some(segs)
}

/// A short name for the endpoint, for `/_emulator/stats`.
fn kind(method: &Method, segs: &[String]) -> &'static str {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (method.as_str(), s.as_slice()) {
        (_, []) => "rest.resources",
        (_, ["limits"]) => "rest.limits",
        (_, ["sobjects"]) => "rest.describeGlobal",
        (_, ["sobjects", _, "describe"]) => "rest.describe",
        ("POST", ["sobjects", _] | ["sobjects", _, "Id"]) => "rest.create",
        (_, ["sobjects", _]) => "rest.sobject",
        ("GET", ["sobjects", _, _]) => "rest.retrieve",
        ("PATCH", ["sobjects", _, _]) => "rest.update",
        ("DELETE", ["sobjects", _, _]) => "rest.delete",
        ("PATCH", ["sobjects", _, _, _]) => "rest.upsert",
        ("GET", ["sobjects", _, _, _]) => "rest.retrieveByExternalId",
        (_, ["query" | "queryAll", ..]) => "rest.query",
        (_, ["search"]) => "rest.search",
        ("POST", ["composite", "sobjects"]) => "composite.create",
        ("PATCH", ["composite", "sobjects"]) => "composite.update",
        ("DELETE", ["composite", "sobjects"]) => "composite.delete",
        ("PATCH", ["composite", "sobjects", _, _]) => "composite.upsert",
        ("POST", ["composite"]) => "composite",
        _ => "rest.other",
    }
}

pub async fn handle(
    State(em): State<Arc<Emulator>>,
    conn: Option<Extension<ConnControl>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut segs = segments(uri.path()).unwrap_or_else(|| vec![String::new()]);
    let version_seg = segs.remove(0);
    let version = match version(&em, &version_seg) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let token = bearer(&headers);
    let user = match em
        .gate(
            kind(&method, &segs),
            token.as_deref(),
            conn.as_ref().map(|c| &c.0),
        )
        .await
    {
        Ok(u) => u,
        Err(resp) => return with_limit_info(resp, &em.limit_info()),
    };
    let query: HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let req = Req {
        em: &em,
        user,
        version,
        method,
        query,
        headers,
        body,
    };
    let resp = match (req.method.as_str(), segs.as_slice()) {
        ("POST", [c]) if c == "composite" => composite::run(&req).await,
        _ => answered(dispatch(&req, &segs)).await,
    };
    with_limit_info(resp, &em.limit_info())
}

/// An answer a real org gives only after a while (a query it ran until it
/// gave up): it is sent that long after the request.
#[derive(Debug, Clone, Copy)]
pub struct AnswerAfter(pub std::time::Duration);

/// Waits out the [`AnswerAfter`] a response carries, then gives it.
pub async fn answered(resp: Response) -> Response {
    if let Some(AnswerAfter(d)) = resp.extensions().get::<AnswerAfter>().copied() {
        tokio::time::sleep(d).await;
    }
    resp
}

/// `v67.0` or `latest` as the version served, or why not.
fn version(em: &Emulator, seg: &str) -> Result<String, Response> {
    let max = max_version(em);
    if seg.eq_ignore_ascii_case("latest") {
        return Ok(format!("{max}.0"));
    }
    match seg
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b)))
    {
        Some((major, "0")) if (MIN_VERSION..=max).contains(&major) => Ok(format!("{major}.0")),
        Some((major, _)) if (21..=30).contains(&major) => Err(sf_error(
            StatusCode::GONE,
            "API_VERSION_RETIRED",
            "This version of the API has been retired",
            &[],
        )),
        _ => Err(not_found()),
    }
}

fn method_not_allowed(method: &Method, allowed: &str) -> Response {
    sf_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
        &[],
    )
}

fn dispatch(req: &Req, segs: &[String]) -> Response {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    match s.as_slice() {
        [] => resources(req),
        ["limits"] => match m {
            "GET" => limits(req),
            _ => method_not_allowed(&req.method, "GET,HEAD"),
        },
        ["sobjects"] => describe::global(req),
        ["sobjects", obj] => match m {
            "GET" => describe::basic(req, obj),
            "POST" => sobjects::create(req, obj),
            _ => method_not_allowed(&req.method, "GET,POST,HEAD"),
        },
        ["sobjects", obj, "describe"] => describe::object(req, obj),
        ["sobjects", obj, "Id"] if m == "POST" => sobjects::create(req, obj),
        ["sobjects", obj, id] => match m {
            "GET" => sobjects::retrieve(req, obj, id),
            "PATCH" => sobjects::update(req, obj, id),
            "DELETE" => sobjects::delete(req, obj, id),
            _ => method_not_allowed(&req.method, "GET,PATCH,DELETE,HEAD"),
        },
        ["sobjects", obj, field, value] => match m {
            "GET" => sobjects::retrieve_by_external_id(req, obj, field, value),
            "PATCH" => sobjects::upsert(req, obj, field, value),
            _ => method_not_allowed(&req.method, "GET,PATCH,HEAD"),
        },
        ["query" | "queryAll"] => query::run(req),
        ["search"] => match m {
            "GET" => search::run(req),
            _ => method_not_allowed(&req.method, "GET,HEAD"),
        },
        ["query" | "queryAll", locator] => query::more(req, locator),
        ["composite", "sobjects"] => match m {
            "POST" => collections::create(req),
            "PATCH" => collections::update(req),
            "DELETE" => collections::delete(req),
            _ => method_not_allowed(&req.method, "POST,PATCH,DELETE"),
        },
        ["composite"] => method_not_allowed(&req.method, "POST"),
        ["composite", "sobjects", obj, field] => match m {
            "PATCH" => collections::upsert(req, obj, field),
            _ => method_not_allowed(&req.method, "PATCH"),
        },
        _ => not_found(),
    }
}

fn resources(req: &Req) -> Response {
    let b = format!("/services/data/v{}", req.version);
    sf_json(
        StatusCode::OK,
        &json!({
            "sobjects": format!("{b}/sobjects"),
            "query": format!("{b}/query"),
            "queryAll": format!("{b}/queryAll"),
            "search": format!("{b}/search"),
            "limits": format!("{b}/limits"),
            "composite": format!("{b}/composite"),
        }),
    )
}

fn limits(req: &Req) -> Response {
    let (used, max) = {
        let mut u = req.em.usage.lock();
        (u.used(std::time::Instant::now()), u.limit())
    };
    let records: usize = req.em.org.read().tables().map(|t| t.len()).sum();
    let data_mb_used = (records * 2 / 1024) as u64;
    sf_json(
        StatusCode::OK,
        &json!({
            "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024u64.saturating_sub(data_mb_used)},
            "FileStorageMB": {"Max": 1024, "Remaining": 1024},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "SingleEmail": {"Max": 5000, "Remaining": 5000},
        }),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn release_names() {
        assert_eq!(super::release_name(67), "Summer '26");
        assert_eq!(super::release_name(66), "Spring '26");
        assert_eq!(super::release_name(65), "Winter '26");
        assert_eq!(super::release_name(64), "Summer '25");
    }
}
