//! `POST /composite`: up to 25 subrequests in one API call, run in order,
//! each answered with its own status and body; a later subrequest may use an
//! earlier one's answer through `@{referenceId.path}`.
//!
//! As Salesforce documents it ("Send Multiple Requests Using Composite" and
//! "Composite Subrequest Result", REST API guide:
//! https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html
//! and …/resources-composite-subrequest-result.html; salesforce-api.md §2.4
//! notes the result shape):
//! - the whole series counts as one call toward the API limits;
//! - at most 25 subrequests, at most 5 of them queries or sObject
//!   Collections;
//! - subrequests may be sObject resources, Query/QueryAll and sObject
//!   Collections; they inherit Accept, Authorization and Content-Type, which
//!   they must not set themselves (the whole request is refused);
//! - a referenceId starts with a letter or a digit and holds only letters,
//!   digits and underscores (API 54+);
//! - with `allOrNone` a failing subrequest rolls everything back and every
//!   other subrequest answers 400 `PROCESSING_HALTED`; without it, only the
//!   subrequests whose references cannot be resolved fail ("Invalid
//!   reference specified. No value for schoolRt.records[0].Id found in
//!   schoolRt", as captured from a real org in CumulusCI's tests).
//!
//! The error codes and messages of the limits are not documented
//! ([UNVERIFIED]: `INVALID_INPUT` here). A rollback restores the org as it
//! was before the composite call, so a write by another client in between
//! would be undone too: the emulator has no transactions.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::Req;
use crate::http::{sf_error, sf_json};

const MAX_SUBREQUESTS: usize = 25;
const MAX_QUERIES_AND_COLLECTIONS: usize = 5;
const ROLLED_BACK: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

/// One subrequest as sent.
struct Sub {
    method: Method,
    url: String,
    reference_id: String,
    body: Option<Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// One subrequest's answer.
struct Answer {
    status: u16,
    body: Value,
    headers: Map<String, Value>,
}

impl Answer {
    fn halted(message: &str) -> Answer {
        Answer {
            status: 400,
            body: json!([{"errorCode": "PROCESSING_HALTED", "message": message}]),
            headers: Map::new(),
        }
    }
}

fn invalid(message: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, "INVALID_INPUT", message, &[])
}

pub async fn run(req: &Req<'_>) -> Response {
    let body = match req.json_object("CompositeRequest") {
        Ok(b) => b,
        Err(r) => return r,
    };
    let all_or_none = body.get("allOrNone").and_then(Value::as_bool) == Some(true);
    let subs = match parse(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    req.em.count(&shape(&subs));
    let before = all_or_none.then(|| req.em.org.read().clone());
    let mut answers: Vec<(String, Answer)> = Vec::with_capacity(subs.len());
    let mut failed = None;
    for (i, sub) in subs.iter().enumerate() {
        if failed.is_some() {
            answers.push((sub.reference_id.clone(), Answer::halted(ROLLED_BACK)));
            continue;
        }
        let answer = match resolve_refs(sub, &answers) {
            Ok((url, body)) => execute(req, sub, &url, body).await,
            Err(e) => Answer::halted(&e),
        };
        if all_or_none && answer.status >= 400 {
            failed = Some(i);
        }
        answers.push((sub.reference_id.clone(), answer));
    }
    if let (Some(failed), Some(before)) = (failed, before) {
        *req.em.org.write() = before;
        for (i, (_, a)) in answers.iter_mut().enumerate() {
            if i != failed {
                *a = Answer::halted(ROLLED_BACK);
            }
        }
    }
    let results: Vec<Value> = answers
        .into_iter()
        .map(|(r, a)| json!({"body": a.body, "httpHeaders": a.headers, "httpStatusCode": a.status, "referenceId": r}))
        .collect();
    sf_json(StatusCode::OK, &json!({ "compositeResponse": results }))
}

/// The subrequests, or why the whole request is refused.
fn parse(body: &Map<String, Value>) -> Result<Vec<Sub>, Response> {
    let Some(Value::Array(items)) = body.get("compositeRequest") else {
        return Err(invalid(
            "compositeRequest: a list of subrequests is required",
        ));
    };
    if items.is_empty() || items.len() > MAX_SUBREQUESTS {
        return Err(invalid(&format!(
            "compositeRequest holds {} subrequests; a composite request holds 1 to {MAX_SUBREQUESTS}",
            items.len()
        )));
    }
    let subs = items.iter().map(sub).collect::<Result<Vec<_>, _>>()?;
    let heavy = subs.iter().filter(|s| query_or_collection(&s.url)).count();
    if heavy > MAX_QUERIES_AND_COLLECTIONS {
        return Err(invalid(&format!(
            "{heavy} subrequests are queries or sObject Collections; a composite request may hold at most {MAX_QUERIES_AND_COLLECTIONS}"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = subs.iter().find(|s| !seen.insert(s.reference_id.as_str())) {
        return Err(invalid(&format!(
            "Duplicate referenceId '{}': each subrequest needs its own",
            dup.reference_id
        )));
    }
    Ok(subs)
}

fn sub(v: &Value) -> Result<Sub, Response> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let method = match text("method").as_deref() {
        Some(m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE")) => {
            Method::from_bytes(m.as_bytes()).expect("a known method")
        }
        other => {
            return Err(invalid(&format!(
                "a subrequest's method is one of GET, POST, PUT, PATCH, DELETE, not {}",
                other.unwrap_or("missing")
            )))
        }
    };
    let url = text("url").ok_or_else(|| invalid("a subrequest's url is required"))?;
    let reference_id =
        text("referenceId").ok_or_else(|| invalid("a subrequest's referenceId is required"))?;
    let mut headers = Vec::new();
    if let Some(Value::Object(h)) = v.get("httpHeaders") {
        for (k, val) in h {
            if ["accept", "authorization", "content-type"]
                .contains(&k.to_ascii_lowercase().as_str())
            {
                return Err(invalid(&format!(
                    "a subrequest may not set {k}: it takes the composite request's"
                )));
            }
            let val = val.as_str().unwrap_or_default();
            match (HeaderName::try_from(k.as_str()), HeaderValue::from_str(val)) {
                (Ok(n), Ok(hv)) => headers.push((n, hv)),
                _ => return Err(invalid(&format!("the subrequest header {k} is malformed"))),
            }
        }
    }
    Ok(Sub {
        method,
        url,
        reference_id,
        body: v.get("body").cloned(),
        headers,
    })
}

/// What a composite call carried, for `/_emulator/stats`: its subrequests'
/// kinds, once each, in order of first appearance (`composite[upsert,query]`).
fn shape(subs: &[Sub]) -> String {
    let mut kinds: Vec<&str> = Vec::new();
    for s in subs {
        let path = s.url.split('?').next().unwrap_or("");
        let kind = match (&s.method, query_or_collection(&s.url)) {
            (_, true) if path.contains("/query") => "query",
            (&Method::PATCH, true) => "upsert",
            (&Method::POST, true) => "create",
            (_, true) => "collection",
            _ => "other",
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    format!("composite[{}]", kinds.join(","))
}

/// Queries (and their next pages) and sObject Collections: at most five.
fn query_or_collection(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or("");
    super::segments(path).is_some_and(|segs| {
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        matches!(
            s.get(1..).unwrap_or_default(),
            ["query" | "queryAll", ..] | ["composite", "sobjects", ..]
        )
    })
}

/// Whether a referenceId has the shape API 54+ takes.
fn valid_reference_id(r: &str) -> bool {
    r.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The url and body with every `@{ref.path}` replaced by what it names in
/// an earlier answer, or the halting message.
fn resolve_refs(sub: &Sub, done: &[(String, Answer)]) -> Result<(String, Option<Value>), String> {
    if !valid_reference_id(&sub.reference_id) {
        return Err(format!(
            "Provided referenceId ('{}') must start with a letter or a number, and it can contain only letters, numbers and underscores ('_').",
            sub.reference_id
        ));
    }
    let answers: HashMap<&str, &Answer> = done.iter().map(|(r, a)| (r.as_str(), a)).collect();
    let url = substitute(&sub.url, &answers)?;
    let body = match &sub.body {
        Some(b) => Some(substitute_json(b, &answers)?),
        None => None,
    };
    Ok((url, body))
}

fn substitute_json(v: &Value, answers: &HashMap<&str, &Answer>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(substitute(s, answers)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute_json(x, answers))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), substitute_json(x, answers)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Replaces each `@{expr}` in `s`.
fn substitute(s: &str, answers: &HashMap<&str, &Answer>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let expr = &rest[start + 2..start + len];
        out.push_str(&lookup(expr, answers)?);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What `ref.a.b[0].c` names in `ref`'s answer, as text.
fn lookup(expr: &str, answers: &HashMap<&str, &Answer>) -> Result<String, String> {
    let end = expr.find(['.', '[']).unwrap_or(expr.len());
    let reference = &expr[..end];
    let missing =
        || format!("Invalid reference specified. No value for {expr} found in {reference}");
    let answer = answers
        .get(reference)
        .filter(|a| a.status < 400)
        .ok_or_else(missing)?;
    let mut at = &answer.body;
    let mut path = &expr[end..];
    while !path.is_empty() {
        if let Some(p) = path.strip_prefix('.') {
            let n = p.find(['.', '[']).unwrap_or(p.len());
            at = at.get(&p[..n]).ok_or_else(missing)?;
            path = &p[n..];
        } else if let Some(p) = path.strip_prefix('[') {
            let n = p.find(']').ok_or_else(missing)?;
            let i: usize = p[..n].trim().parse().map_err(|_| missing())?;
            at = at.get(i).ok_or_else(missing)?;
            path = &p[n + 1..];
        } else {
            return Err(missing());
        }
    }
    match at {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(missing()),
    }
}

/// Runs one subrequest through the REST dispatcher, without a second gate:
/// the composite call was counted once.
async fn execute(req: &Req<'_>, sub: &Sub, url: &str, body: Option<Value>) -> Answer {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let unsupported = || Answer {
        status: 400,
        body: json!([{"errorCode": "INVALID_INPUT", "message": format!("{url} is not a resource a composite subrequest can use")}]),
        headers: Map::new(),
    };
    let Some(mut segs) = super::segments(path) else {
        return unsupported();
    };
    let version = match super::version(req.em, &segs.remove(0)) {
        Ok(v) => v,
        Err(resp) => return read(resp).await,
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if !matches!(
        s.as_slice(),
        ["sobjects" | "query" | "queryAll", ..] | ["composite", "sobjects", ..]
    ) {
        return unsupported();
    }
    let mut headers: HeaderMap = req.headers.clone();
    headers.remove(axum::http::header::CONTENT_LENGTH);
    for (k, v) in &sub.headers {
        headers.insert(k.clone(), v.clone());
    }
    let inner = Req {
        em: req.em,
        user: req.user.clone(),
        version,
        method: sub.method.clone(),
        query: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        headers,
        body: body
            .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap_or_default()))
            .unwrap_or_default(),
    };
    read(super::answered(super::dispatch(&inner, &segs)).await).await
}

/// A subrequest's response as its result: status, JSON body, headers (no
/// Content-Length or Content-Type, which composite answers do not repeat).
async fn read(resp: Response) -> Answer {
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for (k, v) in resp.headers() {
        let name = k.as_str();
        if name != "content-type" && name != "content-length" {
            if let Ok(v) = v.to_str() {
                headers.insert(canonical(name), json!(v));
            }
        }
    }
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

/// `location` → `Location`, as Salesforce spells its headers.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: Value) -> Answer {
        Answer {
            status: 200,
            body,
            headers: Map::new(),
        }
    }

    #[test]
    fn references_name_fields_and_list_items() {
        let q = answer(json!({"totalSize": 1, "records": [{"Id": "001A", "n": 3}]}));
        let c = answer(json!([{"id": "003B", "success": true}]));
        let answers: HashMap<&str, &Answer> = [("q", &q), ("c", &c)].into();
        assert_eq!(
            substitute("/x/@{q.records[0].Id}?n=@{q.records[0].n}", &answers).unwrap(),
            "/x/001A?n=3"
        );
        assert_eq!(substitute("@{c[0].id}", &answers).unwrap(), "003B");
        assert_eq!(
            substitute("@{q.records[1].Id}", &answers).unwrap_err(),
            "Invalid reference specified. No value for q.records[1].Id found in q"
        );
        assert!(substitute("@{later.id}", &answers).is_err());
    }

    #[test]
    fn reference_ids_have_the_api_54_shape() {
        assert!(valid_reference_id("refAccount_1"));
        assert!(valid_reference_id("1st"));
        assert!(!valid_reference_id("_x"));
        assert!(!valid_reference_id("Link-1"));
        assert!(!valid_reference_id(""));
    }

    #[test]
    fn queries_and_collections_are_told_apart() {
        assert!(query_or_collection(
            "/services/data/v67.0/query/?q=SELECT+Id+FROM+Account"
        ));
        assert!(query_or_collection("/services/data/v67.0/query/01gx-2000"));
        assert!(query_or_collection(
            "/services/data/v67.0/composite/sobjects/Request__c/RequestId__c"
        ));
        assert!(!query_or_collection(
            "/services/data/v67.0/sobjects/Contact"
        ));
    }
}
