//! The Metadata API over SOAP (`/services/Soap/m/NN.N[/orgId]`): parses the
//! envelope (any prefixes, SOAPAction ignored), passes the API gate, runs
//! create/update/upsert/read/list/deleteMetadata, and answers as Salesforce does,
//! with SOAP faults (HTTP 500) for session and limit errors.

pub mod ops;
pub mod xml;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;

use crate::server::ConnControl;
use crate::state::Emulator;
use ops::{MdError, Mode};
use xml::{escape, El};

const MAX_COMPONENTS: usize = 10;

fn soap(status: StatusCode, body_inner: &str) -> Response {
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="http://soap.sforce.com/2006/04/metadata" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{body_inner}</soapenv:Body></soapenv:Envelope>"#
    );
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml;charset=UTF-8"),
        )],
        doc,
    )
        .into_response()
}

/// A SOAP fault; `code` is a Salesforce code (`sf:` is added) or a SOAP code (`soapenv:Client`).
pub fn fault(code: &str, message: &str) -> Response {
    let code = if code.contains(':') {
        code.to_string()
    } else {
        format!("sf:{code}")
    };
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="http://soap.sforce.com/2006/04/metadata"><soapenv:Body><soapenv:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#,
        escape(&code),
        escape(message)
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml;charset=UTF-8"),
        )],
        doc,
    )
        .into_response()
}

fn errors_xml(e: &MdError) -> String {
    let fields: String = e
        .fields
        .iter()
        .map(|f| format!("<fields>{}</fields>", escape(f)))
        .collect();
    format!(
        "<errors>{fields}<message>{}</message><statusCode>{}</statusCode></errors>",
        escape(&e.message),
        e.status_code
    )
}

fn result_xml(op: &str, full: &str, res: &Result<bool, MdError>) -> String {
    let created = if op == "upsertMetadata" {
        format!("<created>{}</created>", matches!(res, Ok(true)))
    } else {
        String::new()
    };
    match res {
        Ok(_) => format!(
            "<result>{created}<fullName>{}</fullName><success>true</success></result>",
            escape(full)
        ),
        Err(e) => format!(
            "<result>{created}{}<fullName>{}</fullName><success>false</success></result>",
            errors_xml(e),
            escape(full)
        ),
    }
}

fn is_admin(em: &Emulator, user: &str) -> bool {
    let org = em.org.read();
    let admin = em.bootstrap.read().admin_profile_id.clone();
    org.table("User")
        .and_then(|t| t.get(user))
        .and_then(|r| org.get_field("User", r, "ProfileId"))
        .and_then(|v| v.as_str())
        .is_some_and(|p| p.eq_ignore_ascii_case(&admin))
}

pub async fn handle(
    State(em): State<Arc<Emulator>>,
    conn: Option<Extension<ConnControl>>,
    body: Bytes,
) -> Response {
    let env = match xml::parse(&body) {
        Ok(e) if e.name == "Envelope" => e,
        Ok(_) => {
            return fault(
                "soapenv:Client",
                "Element {http://schemas.xmlsoap.org/soap/envelope/}Envelope expected",
            )
        }
        Err(e) => {
            return fault(
                "soapenv:Client",
                &format!("Unable to parse the request: {e}"),
            )
        }
    };
    let Some(op) = env.child("Body").and_then(|b| b.children.first()) else {
        return fault("soapenv:Client", "No operation in the SOAP Body");
    };
    let session = env
        .child("Header")
        .and_then(|h| h.child("SessionHeader"))
        .and_then(|s| s.value_of("sessionId"));
    let user = match em
        .gate(
            &format!("metadata.{}", op.name),
            session.as_deref(),
            conn.as_ref().map(|c| &c.0),
        )
        .await
    {
        Ok(u) => u,
        Err(resp) => return match resp.status() {
            StatusCode::UNAUTHORIZED => fault(
                "INVALID_SESSION_ID",
                "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session",
            ),
            StatusCode::FORBIDDEN => fault(
                "REQUEST_LIMIT_EXCEEDED",
                "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.",
            ),
            _ => resp,
        },
    };
    if !is_admin(&em, &user) {
        return fault("INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS: use of the Metadata API requires a user with the ModifyAllData or ModifyMetadata permissions");
    }
    let resp = run(&em, op);
    crate::http::with_limit_info(resp, &em.limit_info())
}

fn run(em: &Emulator, op: &El) -> Response {
    let name = op.name.as_str();
    match name {
        "createMetadata" | "updateMetadata" | "upsertMetadata" => {
            let items: Vec<&El> = op.children_named("metadata").collect();
            if items.len() > MAX_COMPONENTS {
                return fault("EXCEEDED_ID_LIMIT", &format!("EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than {MAX_COMPONENTS} records in this operation"));
            }
            let types: Vec<Option<&str>> = items.iter().map(|m| m.xsi_type()).collect();
            if types.iter().any(Option::is_none) {
                return fault("soapenv:Client", "Every metadata element needs an xsi:type");
            }
            if types.windows(2).any(|w| w[0] != w[1]) {
                return fault("INVALID_TYPE", "INVALID_TYPE: all components in one call must be of the same type");
            }
            let mode = match name {
                "createMetadata" => Mode::Create,
                "updateMetadata" => Mode::Update,
                _ => Mode::Upsert,
            };
            let mut org = em.org.write();
            let results: String = items
                .iter()
                .map(|m| {
                    let full = m.value_of("fullName").unwrap_or_default();
                    let kind = m.xsi_type().unwrap_or_default();
                    let res = if em.settings.name_type_locked && ops::switches_name_type(&org, kind, m) {
                        Err(ops::name_type_locked(&full))
                    } else {
                        ops::save(&mut org, kind, m, mode)
                    };
                    result_xml(name, &full, &res)
                })
                .collect();
            soap(StatusCode::OK, &format!("<{name}Response>{results}</{name}Response>"))
        }
        "readMetadata" => {
            let Some(kind) = op.value_of("type") else { return fault("soapenv:Client", "readMetadata needs a type") };
            let names: Vec<String> = op.children_named("fullNames").map(|n| n.text.trim().to_string()).collect();
            if names.len() > MAX_COMPONENTS {
                return fault("EXCEEDED_ID_LIMIT", &format!("EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than {MAX_COMPONENTS} records in this operation"));
            }
            let org = em.org.read();
            let records: String = names
                .iter()
                .map(|n| match ops::read(&org, &kind, n) {
                    Some(inner) => format!("<records xsi:type=\"{kind}\">{inner}</records>"),
                    None => "<records xsi:nil=\"true\"/>".to_string(),
                })
                .collect();
            soap(StatusCode::OK, &format!("<readMetadataResponse><result>{records}</result></readMetadataResponse>"))
        }
        "listMetadata" => {
            let kinds: Vec<String> = op.children_named("queries").filter_map(|q| q.value_of("type")).collect();
            if kinds.len() > 3 {
                return fault("INVALID_QUERY", "INVALID_QUERY: listMetadata takes at most 3 queries");
            }
            let org = em.org.read();
            let mut results = String::new();
            for kind in &kinds {
                let Some(names) = ops::list(&org, kind) else {
                    return fault("INVALID_TYPE", &format!("INVALID_TYPE: The emulator does not list metadata type {kind}"));
                };
                for n in names {
                    results += &format!(
                        "<result><createdById>005Em0000000001AAA</createdById><createdByName>Emulator Admin</createdByName><createdDate>2026-01-01T00:00:00.000Z</createdDate><fileName>{}</fileName><fullName>{}</fullName><id></id><lastModifiedById>005Em0000000001AAA</lastModifiedById><lastModifiedByName>Emulator Admin</lastModifiedByName><lastModifiedDate>2026-01-01T00:00:00.000Z</lastModifiedDate><manageableState>unmanaged</manageableState><type>{}</type></result>",
                        escape(&format!("{}/{n}", kind.to_ascii_lowercase())),
                        escape(&n),
                        escape(kind)
                    );
                }
            }
            soap(StatusCode::OK, &format!("<listMetadataResponse>{results}</listMetadataResponse>"))
        }
        "deleteMetadata" => {
            let Some(kind) = op.value_of("type") else { return fault("soapenv:Client", "deleteMetadata needs a type") };
            let names: Vec<String> = op.children_named("fullNames").map(|n| n.text.trim().to_string()).collect();
            if names.len() > MAX_COMPONENTS {
                return fault("EXCEEDED_ID_LIMIT", &format!("EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than {MAX_COMPONENTS} records in this operation"));
            }
            let mut org = em.org.write();
            let results: String = names.iter().map(|n| result_xml(name, n, &ops::delete(&mut org, &kind, n).map(|_| false))).collect();
            soap(StatusCode::OK, &format!("<deleteMetadataResponse>{results}</deleteMetadataResponse>"))
        }
        other => fault("soapenv:Client", &format!("No operation available for request {{http://soap.sforce.com/2006/04/metadata}}{other}")),
    }
}
