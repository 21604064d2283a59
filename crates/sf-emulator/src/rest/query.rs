//! `/query` and `/queryAll`: run SOQL and page the answer through
//! `nextRecordsUrl` (2000 per batch by default, `Sforce-Query-Options: batchSize=N`).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::Req;
use crate::http::{sf_error, sf_json};
use crate::soql;

fn batch_size(req: &Req) -> usize {
    req.headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
        })
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map(|n| n.clamp(200, 2000))
        .unwrap_or(2000)
}

fn page(total: usize, records: Vec<Value>, next: Option<String>) -> Response {
    let mut body = json!({"totalSize": total, "done": next.is_none(), "records": records});
    if let Some(n) = next {
        body["nextRecordsUrl"] = json!(n);
    }
    sf_json(StatusCode::OK, &body)
}

pub fn run(req: &Req) -> Response {
    if req.method != axum::http::Method::GET {
        return sf_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            &format!(
                "HTTP Method '{}' not allowed. Allowed are GET,HEAD",
                req.method
            ),
            &[],
        );
    }
    let Some(q) = req.query.get("q") else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
            &[],
        );
    };
    let parsed = match soql::parse(q) {
        Ok(p) => p,
        Err(e) => return sf_error(StatusCode::BAD_REQUEST, e.code, &e.message, &[]),
    };
    let org = req.em.org.read();
    let access = req.em.access_for(&org, &req.user);
    let limit = req.em.settings.scan_timeout_rows;
    let out = match soql::eval::execute_within(&org, &parsed, q, &access, &req.version, limit) {
        Ok(o) => o,
        Err(e) => return sf_error(StatusCode::BAD_REQUEST, e.code, &e.message, &[]),
    };
    drop(org);
    if let Some(limit) = req.em.settings.scan_timeout_rows {
        // A large org's optimizer gives up on a scan no index narrows: a
        // leading-wildcard LIKE on Contact.Email is one (salesforce-api.md
        // §9.5; body text from third-party catalogues, UNVERIFIED).
        if out.examined > limit {
            let mut resp = sf_error(
                StatusCode::BAD_REQUEST,
                "QUERY_TIMEOUT",
                "Your query request was running for too long.",
                &[],
            );
            let wait = req.em.settings.scan_timeout_wait_ms;
            if wait > 0 {
                resp.extensions_mut()
                    .insert(super::AnswerAfter(std::time::Duration::from_millis(wait)));
            }
            return resp;
        }
    }
    let size = batch_size(req);
    let total = out.total_size;
    let mut records = out.records;
    if records.len() <= size {
        return page(total, records, None);
    }
    let first: Vec<Value> = records.drain(..size).collect();
    let locator = req.em.cursors.lock().open(size, records);
    let next = format!("/services/data/v{}/query/{locator}-{size}", req.version);
    page(total, first, Some(next))
}

pub fn more(req: &Req, locator: &str) -> Response {
    let invalid = || {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
            &[],
        )
    };
    let Some((loc, pos)) = locator
        .rsplit_once('-')
        .and_then(|(l, p)| Some((l, p.parse::<usize>().ok()?)))
    else {
        return invalid();
    };
    let taken = req.em.cursors.lock().take(loc, pos, batch_size(req));
    match taken {
        Some((records, total, done)) => {
            let next = (!done).then(|| {
                format!(
                    "/services/data/v{}/query/{loc}-{}",
                    req.version,
                    pos + records.len()
                )
            });
            page(total, records, next)
        }
        None => invalid(),
    }
}
