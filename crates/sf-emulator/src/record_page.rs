//! A record's page, where Salesforce's Lightning UI would show it
//! (`/lightning/r/{object}/{id}/view`), so that links to records work
//! against the emulator. Plain HTML, every field the org's first user sees.
//! Not an API call: not counted, no token needed (the emulator is local).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use crate::http::escape_html;
use crate::state::Emulator;

pub async fn view(
    State(em): State<Arc<Emulator>>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let user = em
        .auth
        .lock()
        .credentials
        .first()
        .map(|c| c.user_id.clone())
        .unwrap_or_default();
    let org = em.org.read();
    let record = org.table(&object).and_then(|t| {
        crate::ids::canonical15(&id)?;
        t.get(&id).map(|row| {
            let access = em.access_for(&org, &user);
            org.record_json(&t.def.name, row, &access, &em.config.api_version_max, None)
        })
    });
    let Some(Value::Object(fields)) = record else {
        return (
            StatusCode::NOT_FOUND,
            Html(format!(
                "<!doctype html><title>Not found</title><h1>No {} record {}</h1>",
                escape_html(&object),
                escape_html(&id)
            )),
        )
            .into_response();
    };
    let name = fields
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or(&id)
        .to_string();
    let mut rows = String::new();
    for (k, v) in fields.iter().filter(|(k, _)| *k != "attributes") {
        let text = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        rows.push_str(&format!(
            "<tr><th>{}</th><td id=\"field-{}\">{}</td></tr>",
            escape_html(k),
            escape_html(k),
            escape_html(&text)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name} | {object} | Salesforce emulator</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:0;background:#f3f3f3}}header{{background:#032d60;color:#fff;padding:12px 24px}}\
         main{{margin:24px;background:#fff;border-radius:6px;padding:16px 24px;box-shadow:0 1px 2px #0002}}\
         th{{text-align:left;color:#555;font-weight:500;padding:6px 24px 6px 0;vertical-align:top}}td{{padding:6px 0}}</style></head>\
         <body><header>Salesforce emulator</header><main><p>{object}</p><h1 id=\"record-name\">{name}</h1>\
         <table>{rows}</table></main></body></html>",
        name = escape_html(&name),
        object = escape_html(&object),
    ))
    .into_response()
}
