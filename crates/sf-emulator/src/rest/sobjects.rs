//! Single-record calls: create, retrieve, update, delete, and retrieve or
//! upsert by external id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{rec_error, Req};
use crate::dml::{RecError, Upserted};
use crate::http::{not_found, sf_error, sf_json};

fn lock_error() -> Response {
    sf_error(
        StatusCode::BAD_REQUEST,
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record or 1 records: ",
        &[],
    )
}

/// A create's or update's body, once the fault injector lets the write
/// through (else its injected lock error).
fn body_to_write(req: &Req, obj: &str) -> Result<serde_json::Map<String, Value>, Response> {
    let body = req.json_object(obj)?;
    if req.em.faults.lock().lock() {
        return Err(lock_error());
    }
    Ok(body)
}

pub fn create(req: &Req, obj: &str) -> Response {
    let body = match body_to_write(req, obj) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut org = req.em.org.write();
    if org.table(obj).is_none() {
        return not_found();
    }
    let access = req.em.access_for(&org, &req.user);
    if body.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
        return rec_error(&RecError::new("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: Id. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", vec!["Id".into()]));
    }
    let caller = req.caller(&access);
    match org.create(obj, &body, &caller) {
        Ok(id) => {
            let name = org
                .table(obj)
                .map(|t| t.def.name.clone())
                .unwrap_or_default();
            let mut resp = sf_json(
                StatusCode::CREATED,
                &json!({"id": id, "success": true, "errors": []}),
            );
            if let Ok(loc) = HeaderValue::from_str(&format!(
                "/services/data/v{}/sobjects/{name}/{id}",
                req.version
            )) {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            resp
        }
        Err(e) => rec_error(&e),
    }
}

fn wanted_fields(req: &Req) -> Option<Vec<String>> {
    req.query.get("fields").map(|f| {
        f.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

pub fn retrieve(req: &Req, obj: &str, id: &str) -> Response {
    let org = req.em.org.read();
    let Some(table) = org.table(obj) else {
        return not_found();
    };
    let access = req.em.access_for(&org, &req.user);
    let fields = wanted_fields(req);
    if let Some(fs) = &fields {
        for f in fs {
            if !table
                .def
                .field(f)
                .is_some_and(|d| crate::dml::visible(&table.def.name, d, &access))
            {
                return sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!("No such column '{f}' on sobject of type {}", table.def.name),
                    &[],
                );
            }
        }
    }
    if crate::ids::canonical15(id).is_none() {
        return sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {id}"),
            &[],
        );
    }
    match table.get(id) {
        Some(row) => sf_json(
            StatusCode::OK,
            &org.record_json(obj, row, &access, &req.version, fields.as_deref()),
        ),
        None => not_found(),
    }
}

pub fn update(req: &Req, obj: &str, id: &str) -> Response {
    let body = match body_to_write(req, obj) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut org = req.em.org.write();
    let Some(table) = org.table(obj) else {
        return not_found();
    };
    if !table.contains(id) {
        return not_found();
    }
    let access = req.em.access_for(&org, &req.user);
    let caller = req.caller(&access);
    match org.update(obj, id, &body, &caller) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => rec_error(&e),
    }
}

pub fn delete(req: &Req, obj: &str, id: &str) -> Response {
    let mut org = req.em.org.write();
    let Some(table) = org.table(obj) else {
        return not_found();
    };
    if !table.contains(id) {
        return not_found();
    }
    match org.delete(obj, id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => rec_error(&e),
    }
}

fn multiple(req: &Req, obj: &str, ids: &[String]) -> Response {
    let urls: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!(format!(
                "/services/data/v{}/sobjects/{obj}/{id}",
                req.version
            ))
        })
        .collect();
    sf_json(StatusCode::MULTIPLE_CHOICES, &Value::Array(urls))
}

pub fn retrieve_by_external_id(req: &Req, obj: &str, field: &str, value: &str) -> Response {
    let org = req.em.org.read();
    let Some(table) = org.table(obj) else {
        return not_found();
    };
    let access = req.em.access_for(&org, &req.user);
    let Some(slot) = table.def.slot(field).filter(|s| {
        let f = &table.def.fields[*s];
        (f.external_id || f.name == "Id") && crate::dml::visible(&table.def.name, f, &access)
    }) else {
        return sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {field}"),
            &[],
        );
    };
    let rows: Vec<_> = match table.lookup(slot, &crate::value::Val::text(value)) {
        Some(r) => r,
        None => table
            .iter()
            .filter(|r| {
                r[slot]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
            .collect(),
    };
    match rows.as_slice() {
        [] => not_found(),
        [row] => sf_json(
            StatusCode::OK,
            &org.record_json(
                obj,
                row,
                &access,
                &req.version,
                wanted_fields(req).as_deref(),
            ),
        ),
        many => {
            let ids: Vec<String> = many
                .iter()
                .filter_map(|r| r[0].as_str().map(str::to_string))
                .collect();
            multiple(req, &table.def.name, &ids)
        }
    }
}

pub fn upsert(req: &Req, obj: &str, field: &str, value: &str) -> Response {
    let body = match req.json_object(obj) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(k) = body
        .keys()
        .find(|k| k.eq_ignore_ascii_case(field) || k.eq_ignore_ascii_case("Id"))
    {
        return rec_error(&RecError::new(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!("Unable to create/update fields: {k}. The external ID field and Id must not be in the body of an upsert by external ID; the value is taken from the URL."),
            vec![k.clone()],
        ));
    }
    if req.em.faults.lock().lock() {
        return lock_error();
    }
    let update_only = req
        .query
        .get("updateOnly")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut org = req.em.org.write();
    let Some(name) = org.table(obj).map(|t| t.def.name.clone()) else {
        return not_found();
    };
    let access = req.em.access_for(&org, &req.user);
    let caller = req.caller(&access);
    match org.upsert(obj, field, value, &body, &caller, update_only) {
        // API 46.0 and later (every served version) answer with `created`; an update is 200.
        Ok(Upserted::Created(id)) => sf_json(
            StatusCode::CREATED,
            &json!({"id": id, "success": true, "errors": [], "created": true}),
        ),
        Ok(Upserted::Updated(id)) => sf_json(
            StatusCode::OK,
            &json!({"id": id, "success": true, "errors": [], "created": false}),
        ),
        Ok(Upserted::Multiple(ids)) => multiple(req, &name, &ids),
        Err(e) => rec_error(&e),
    }
}
