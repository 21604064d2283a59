//! sObject Collections: create, update and delete (`/composite/sobjects`) and
//! upsert by external id (`/composite/sobjects/Obj/Field`). At most 200
//! records; per-record results in order; `allOrNone` rolls everything back
//! when one record fails.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{rec_error_item, Req};
use crate::dml::{Caller, RecError, Upserted};
use crate::http::{not_found, sf_error, sf_json};
use crate::org::Org;
use crate::table::Row;

const MAX_RECORDS: usize = 200;

struct Batch {
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

fn parse_batch(req: &Req) -> Result<Batch, Response> {
    let body = req.json_object("SObjectCollectionRequest")?;
    let all_or_none = match body.get("allOrNone") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(super::parser_error(&format!(
                "Cannot deserialize instance of boolean from {other} value"
            )))
        }
    };
    let records = match body.get("records") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| match r {
                Value::Object(m) => Ok(m.clone()),
                _ => Err(super::parser_error(
                    "Cannot deserialize instance of SObject from VALUE_STRING value",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                "The records field is required",
                &[],
            ))
        }
    };
    if records.len() > MAX_RECORDS {
        return Err(sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            &format!("record limit reached. cannot submit more than {MAX_RECORDS} records into this call"),
            &[],
        ));
    }
    Ok(Batch {
        all_or_none,
        records,
    })
}

fn record_type(r: &Map<String, Value>) -> Option<&str> {
    r.get("attributes")?.get("type")?.as_str()
}

/// What to do to undo one applied record.
enum Undo {
    Remove { object: String, id: String },
    Restore { object: String, row: Row },
}

fn rollback(org: &mut Org, undo: Vec<Undo>) {
    for u in undo.into_iter().rev() {
        match u {
            Undo::Remove { object, id } => {
                if let Some(t) = org.table_mut(&object) {
                    t.remove(&id);
                }
            }
            Undo::Restore { object, row } => {
                if let Some(t) = org.table_mut(&object) {
                    t.put(row);
                }
            }
        }
    }
    org.perm_generation += 1;
}

fn rolled_back() -> Value {
    json!({"success": false, "errors": [{
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
        "fields": [],
    }]})
}

fn lock_error(id: &str) -> RecError {
    RecError::new(
        "UNABLE_TO_LOCK_ROW",
        format!("unable to obtain exclusive access to this record or 1 records: {id}"),
        vec![],
    )
}

fn failure(e: &RecError) -> Value {
    json!({"success": false, "errors": [rec_error_item(e)]})
}

/// Runs `op` over each record, collecting results; applies allOrNone.
fn run_batch(
    req: &Req,
    batch: Batch,
    mut op: impl FnMut(
        &mut Org,
        &Caller,
        &Map<String, Value>,
        &mut Vec<Undo>,
    ) -> Result<Value, RecError>,
) -> Response {
    let mut org = req.em.org.write();
    let access = req.em.access_for(&org, &req.user);
    let caller = req.caller(&access);
    let mut undo = Vec::new();
    let mut results = Vec::with_capacity(batch.records.len());
    let mut failed = false;
    for r in &batch.records {
        let res = if req.em.faults.lock().lock() {
            Err(lock_error(
                r.get("Id").and_then(Value::as_str).unwrap_or(""),
            ))
        } else {
            op(&mut org, &caller, r, &mut undo)
        };
        match res {
            Ok(v) => results.push(Ok(v)),
            Err(e) => {
                failed = true;
                results.push(Err(e));
                if batch.all_or_none {
                    break;
                }
            }
        }
    }
    if batch.all_or_none && failed {
        rollback(&mut org, undo);
        let mut out: Vec<Value> = results
            .iter()
            .map(|r| r.as_ref().map_or_else(failure, |_| rolled_back()))
            .collect();
        while out.len() < batch.records.len() {
            out.push(rolled_back());
        }
        return sf_json(StatusCode::OK, &Value::Array(out));
    }
    sf_json(
        StatusCode::OK,
        &Value::Array(
            results
                .iter()
                .map(|r| r.as_ref().map_or_else(failure, Clone::clone))
                .collect(),
        ),
    )
}

fn body_without_attributes(r: &Map<String, Value>) -> Map<String, Value> {
    r.iter()
        .filter(|(k, _)| k.as_str() != "attributes")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The batch of a create or update, whose every record names its type
/// (`attributes.type`), as Salesforce requires there.
fn typed_batch(req: &Req) -> Result<Batch, Response> {
    let batch = parse_batch(req)?;
    if batch.records.iter().any(|r| record_type(r).is_none()) {
        return Err(sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            "Must send a concrete entity type in attributes.type",
            &[],
        ));
    }
    Ok(batch)
}

pub fn create(req: &Req) -> Response {
    let batch = match typed_batch(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    run_batch(req, batch, |org, caller, r, undo| {
        let object = record_type(r).unwrap_or_default();
        if r.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
            return Err(RecError::new(
                "INVALID_FIELD",
                "cannot specify Id in an insert call",
                vec!["Id".into()],
            ));
        }
        let name = org
            .table(object)
            .map(|t| t.def.name.clone())
            .ok_or_else(|| crate::dml::invalid_type(object))?;
        let id = org.create(object, &body_without_attributes(r), caller)?;
        undo.push(Undo::Remove {
            object: name,
            id: id.clone(),
        });
        Ok(json!({"id": id, "success": true, "errors": []}))
    })
}

pub fn update(req: &Req) -> Response {
    let batch = match typed_batch(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    run_batch(req, batch, |org, caller, r, undo| {
        let object = record_type(r).unwrap_or_default();
        let id = r.get("Id").and_then(Value::as_str).ok_or_else(|| {
            RecError::new(
                "MISSING_ARGUMENT",
                "Id not specified in an update call",
                vec![],
            )
        })?;
        let name = org
            .table(object)
            .map(|t| t.def.name.clone())
            .ok_or_else(|| crate::dml::invalid_type(object))?;
        let before = org
            .table(object)
            .and_then(|t| t.get(id))
            .cloned()
            .ok_or_else(|| RecError::new("ENTITY_IS_DELETED", "entity is deleted", vec![]))?;
        let mut body = body_without_attributes(r);
        body.remove("Id");
        org.update(object, id, &body, caller)?;
        let id18 = before[0].as_str().unwrap_or_default().to_string();
        undo.push(Undo::Restore {
            object: name,
            row: before,
        });
        Ok(json!({"id": id18, "success": true, "errors": []}))
    })
}

pub fn delete(req: &Req) -> Response {
    let ids: Vec<String> = req
        .query
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "ids parameter is required",
            &[],
        );
    }
    if ids.len() > MAX_RECORDS {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
            &[],
        );
    }
    let all_or_none = req
        .query
        .get("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut org = req.em.org.write();
    let exists = |org: &Org, id: &str| {
        org.object_of_id(id)
            .and_then(|o| org.table(o))
            .is_some_and(|t| t.contains(id))
    };
    if all_or_none && ids.iter().any(|id| !exists(&org, id)) {
        let out: Vec<Value> = ids
            .iter()
            .map(|id| if exists(&org, id) { rolled_back() } else { json!({"id": id, "success": false, "errors": [rec_error_item(&RecError::new("ENTITY_IS_DELETED", "entity is deleted", vec![]))]}) })
            .collect();
        return sf_json(StatusCode::OK, &Value::Array(out));
    }
    let out: Vec<Value> = ids
        .iter()
        .map(|id| {
            let res = match org.object_of_id(id).map(str::to_string) {
                Some(obj) if exists(&org, id) => org.delete(&obj, id),
                _ => Err(RecError::new(
                    "ENTITY_IS_DELETED",
                    "entity is deleted",
                    vec![],
                )),
            };
            match res {
                Ok(()) => json!({"id": id, "success": true, "errors": []}),
                Err(e) => json!({"id": id, "success": false, "errors": [rec_error_item(&e)]}),
            }
        })
        .collect();
    sf_json(StatusCode::OK, &Value::Array(out))
}

pub fn upsert(req: &Req, obj: &str, field: &str) -> Response {
    let batch = match parse_batch(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (name, slot) = {
        let org = req.em.org.read();
        let Some(t) = org.table(obj) else {
            return not_found();
        };
        let access = req.em.access_for(&org, &req.user);
        match t.def.slot(field).filter(|s| crate::dml::visible(&t.def.name, &t.def.fields[*s], &access)) {
            Some(s) => (t.def.name.clone(), s),
            None => return sf_error(StatusCode::BAD_REQUEST, "INVALID_FIELD", &format!("Field name provided, {field} does not match an External ID, Salesforce Id, or indexed field for {}", t.def.name), &[]),
        }
    };
    if let Some(bad) = batch
        .records
        .iter()
        .find(|r| !record_type(r).is_some_and(|t| t.eq_ignore_ascii_case(&name)))
    {
        let got = record_type(bad).unwrap_or("(none)");
        return sf_error(StatusCode::BAD_REQUEST, "INVALID_TYPE", &format!("Record type {got} does not match the type {name} of the upsert call; every record needs attributes.type {name}"), &[]);
    }
    // Two records with the same external id in one call both fail.
    let key_of = |r: &Map<String, Value>| -> Option<String> {
        r.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .and_then(|(_, v)| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    };
    let mut counts = std::collections::HashMap::new();
    for r in &batch.records {
        if let Some(k) = key_of(r) {
            *counts.entry(k.to_lowercase()).or_insert(0usize) += 1;
        }
    }
    let field_name = field.to_string();
    run_batch(req, batch, |org, caller, r, undo| {
        let Some(key) = key_of(r) else {
            return Err(RecError::new(
                "MISSING_ARGUMENT",
                format!("{field_name} not specified"),
                vec![field_name.clone()],
            ));
        };
        if counts.get(&key.to_lowercase()).copied().unwrap_or(0) > 1 {
            return Err(RecError::new(
                "DUPLICATE_EXTERNAL_ID",
                format!("Duplicate external id specified: {key}"),
                vec![field_name.clone()],
            ));
        }
        let before: Option<Row> = org
            .table(&name)
            .and_then(|t| t.lookup(slot, &crate::value::Val::text(key.as_str())))
            .and_then(|rows| rows.first().map(|r| (*r).clone()));
        let mut body = body_without_attributes(r);
        body.retain(|k, _| !k.eq_ignore_ascii_case(&field_name));
        let upserted = org.upsert(&name, &field_name, &key, &body, caller, false)?;
        if let Some(j) = req.em.journal.lock().as_mut() {
            j.push(crate::state::Written {
                at: std::time::Instant::now(),
                object: name.clone(),
                key: key.clone(),
                fields: body,
            });
        }
        match upserted {
            Upserted::Created(id) => {
                undo.push(Undo::Remove {
                    object: name.clone(),
                    id: id.clone(),
                });
                Ok(json!({"id": id, "success": true, "errors": [], "created": true}))
            }
            Upserted::Updated(id) => {
                if let Some(row) = before {
                    undo.push(Undo::Restore {
                        object: name.clone(),
                        row,
                    });
                }
                Ok(json!({"id": id, "success": true, "errors": [], "created": false}))
            }
            Upserted::Multiple(ids) => Err(RecError::new(
                "DUPLICATE_EXTERNAL_ID",
                format!("{field_name}: more than one record found for external id field: {ids:?}"),
                vec![field_name.clone()],
            )),
        }
    })
}
