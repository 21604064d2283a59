//! Parses a Thena request webhook body into a [`Snapshot`]. Required:
//! `action`, `request.requestId`, `request.createdAt`, `request.updatedAt`;
//! everything else may be missing (leave alone) or null (clear). Unknown
//! fields are ignored. Errors name the JSON path of the problem.
//!
//! Thena documents only the top level of the body, so the parser is
//! tolerant (shared/reference/thena-webhook.md, "how the parser must be
//! tolerant"): every field in camelCase or snake_case (and Thena v3's names
//! where they mean the same), `closedAt`/`closedBy` inside `request` or at
//! the top level, people as objects or plain names, any `action`.

use serde_json::Value;

pub use super::json::PayloadError;
use super::json::{err, kind, Obj};
use crate::domain::snapshot::{Category, Csat, Message, Patch, Person, Snapshot};
use crate::domain::time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Escalate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub action: Action,
    pub snapshot: Snapshot,
}

pub(super) fn person(o: &Obj) -> Result<Person, PayloadError> {
    Ok(Person {
        id: o.opt_text("id")?,
        name: o.opt_text("name")?,
        email: o.opt_text("email")?.map(|e| e.trim().to_string()),
    })
}

/// `assignedTo` / `closedBy`: a person's name, from an object or a plain string.
pub(super) fn name_of(o: &Obj, keys: &[&'static str]) -> Result<Patch<String>, PayloadError> {
    let key = o.alias(keys);
    match o.raw(key) {
        Some(Value::String(_)) => o.text(key),
        _ => Ok(match o.obj(key)? {
            Patch::Set(p) => match p.opt_text("name")?.or(p.opt_text("email")?) {
                Some(n) => Patch::Set(n),
                None => Patch::Null,
            },
            Patch::Null => Patch::Null,
            Patch::Absent => Patch::Absent,
        }),
    }
}

fn thread(o: &Obj, keys: &[&'static str]) -> Result<Patch<Vec<Message>>, PayloadError> {
    o.each(o.alias(keys), |item, here| {
        let msg = Obj::of(item, here)?;
        let user = match msg.obj("user")? {
            Patch::Set(u) => (u.opt_text("id")?, u.opt_text("name")?),
            _ => (None, None),
        };
        let ts = match msg.raw("ts") {
            Some(Value::String(s)) => time::slack_ts(s).or_else(|| time::parse_str(s)),
            Some(v @ Value::Number(_)) => time::parse(v).ok(),
            _ => None,
        };
        Ok(Some(Message {
            user_id: user.0,
            user_name: user.1,
            text: msg.opt_text("text")?.unwrap_or_default(),
            ts,
        }))
    })
}

fn tags(o: &Obj) -> Result<Patch<Vec<String>>, PayloadError> {
    if let Some(Value::String(s)) = o.raw("AI_generatedTags") {
        let v: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        return Ok(Patch::list(v));
    }
    let tags = o.each("AI_generatedTags", |t, here| match t {
        Value::String(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Value::String(_) | Value::Null => Ok(None),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(err(
            &here,
            format!("expected a string, got {}", kind(other)),
        )),
    })?;
    Ok(match tags {
        Patch::Set(v) => Patch::list(v),
        other => other,
    })
}

/// One custom field's values: objects with a `name` (or `value`), or strings.
fn category_values(c: &Obj) -> Result<Vec<String>, PayloadError> {
    let values = c.each("values", |v, here| match v {
        Value::Object(_) => {
            let vo = Obj::of(v, here)?;
            Ok(vo.opt_text("name")?.or(vo.opt_text("value")?))
        }
        Value::String(s) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Value::Null | Value::String(_) => Ok(None),
        other => Err(err(
            &here,
            format!("expected an object or a string, got {}", kind(other)),
        )),
    })?;
    Ok(match values {
        Patch::Set(v) => v,
        _ => Vec::new(),
    })
}

fn categories(o: &Obj) -> Result<Patch<Vec<Category>>, PayloadError> {
    let found = o.each(o.alias(&["customFields", "custom_fields"]), |item, here| {
        let c = Obj::of(item, here)?;
        let name_key = c.alias(&["category_name", "categoryName"]);
        let Some(name) = c
            .opt_text(name_key)?
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
        else {
            return Err(err(&c.at(name_key), "is required for each custom field"));
        };
        Ok(Some(Category {
            name,
            values: category_values(&c)?,
        }))
    })?;
    // The same category twice: one field with the values of both.
    Ok(match found {
        Patch::Set(list) => {
            let mut out: Vec<Category> = Vec::new();
            for c in list {
                match out.iter_mut().find(|x| x.name == c.name) {
                    Some(existing) => existing.values.extend(c.values),
                    None => out.push(c),
                }
            }
            Patch::Set(out)
        }
        other => other,
    })
}

/// Parses a webhook body.
pub fn parse(body: &[u8]) -> Result<Event, PayloadError> {
    parse_value(&super::json::from_slice(body)?)
}

/// Parses a webhook body already read as JSON.
pub fn parse_value(root: &Value) -> Result<Event, PayloadError> {
    let Value::Object(map) = root else {
        return Err(err("$", format!("expected an object, got {}", kind(root))));
    };
    let top = Obj {
        map,
        path: String::new(),
    };
    let action = action_of(&top)?;
    let req = match top.obj("request")? {
        Patch::Set(r) => r,
        _ => return Err(err("request", "is required")),
    };
    let request_id = request_id_of(&req)?;
    let requestor = requestor_of(&req)?;
    let team_name = match req.obj("customer")? {
        Patch::Set(c) => c.text(c.alias(&["teamName", "team_name"]))?,
        Patch::Null => Patch::Null,
        Patch::Absent => Patch::Absent,
    };
    let csat = csat_of(&req)?;
    // `closedAt` / `closedBy` inside `request` win; the top level is the fallback.
    let closed = |keys: &[&'static str]| if req.has(keys) { &req } else { &top };
    let closed_at_keys = &["closedAt", "closed_at"];
    let closed_by_keys = &["closedBy", "closed_by"];
    let assigned_keys = &["assignedTo", "assigned_to"];
    let snapshot = Snapshot {
        request_id,
        created_at: req.required_time(req.alias(&["createdAt", "created_at"]))?,
        updated_at: req.required_time(req.alias(&["updatedAt", "updated_at"]))?,
        status: req.text("status")?,
        closed_at: {
            let o = closed(closed_at_keys);
            o.time(o.alias(closed_at_keys))?
        },
        closed_by: name_of(closed(closed_by_keys), closed_by_keys)?,
        requestor,
        team_name,
        permalink: req.text(req.alias(&["permalink", "original_message_permalink"]))?,
        request_link: req.text(req.alias(&["requestLink", "request_link"]))?,
        internal_link: req
            .text(req.alias(&["internalNotificationLink", "internal_notification_link"]))?,
        message_text: req.text(req.alias(&[
            "messageText",
            "message_text",
            "original_message_text",
        ]))?,
        customer_thread: thread(&req, &["customerThread", "customer_thread"])?,
        internal_thread: thread(&req, &["internalThread", "internal_thread"])?,
        csat,
        categories: categories(&req)?,
        title: top.text("AI_requestTitle")?,
        summary: top.text("AI_requestSummary")?,
        urgency: top.text("AI_requestUrgency")?,
        sentiment: top.text("AI_requestSentiment")?,
        tags: tags(&top)?,
        assigned_to: if top.has(assigned_keys) || !req.has(assigned_keys) {
            name_of(&top, assigned_keys)?
        } else {
            name_of(&req, assigned_keys)?
        },
    };
    Ok(Event { action, snapshot })
}

/// The event's action: CREATE, ESCALATE, or (anything else) an update.
fn action_of(top: &Obj<'_>) -> Result<Action, PayloadError> {
    // Any action: CREATE is a create; everything else (UPDATE, ESCALATE,
    // values never seen before) is an update of the same upsert.
    Ok(match top.raw("action") {
        Some(Value::String(s)) => match s.trim().to_ascii_uppercase().as_str() {
            "CREATE" => Action::Create,
            "ESCALATE" => Action::Escalate,
            _ => Action::Update,
        },
        None | Some(Value::Null) => return Err(err("action", "is required")),
        Some(other) => {
            return Err(err(
                "action",
                format!("expected a string, got {}", kind(other)),
            ))
        }
    })
}

/// `request.requestId` (or its other spellings): a non-empty string of at
/// most 255 characters, or a number kept with its exact digits.
fn request_id_of(req: &Obj<'_>) -> Result<String, PayloadError> {
    let id_key = req.alias(&["requestId", "request_id", "id"]);
    let id_path = req.at(id_key);
    Ok(match req.raw(id_key) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => s.trim().to_string(),
        Some(Value::String(s)) if s.len() > 255 => {
            return Err(err(&id_path, "is longer than 255 characters"))
        }
        // A number keeps its exact digits (no float round trip).
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => return Err(err("request.requestId", "is required")),
        Some(Value::String(_)) => return Err(err(&id_path, "is empty")),
        Some(other) => {
            return Err(err(
                &id_path,
                format!("expected a string or a number, got {}", kind(other)),
            ))
        }
    })
}

/// The requestor, or (Thena v3) the message's author.
fn requestor_of(req: &Obj<'_>) -> Result<Patch<Person>, PayloadError> {
    Ok(match req.obj("requestor")? {
        Patch::Set(p) => Patch::Set(person(&p)?),
        Patch::Null => Patch::Null,
        // Thena v3 names the message's author instead.
        Patch::Absent if req.has(&["original_message_user_id", "original_message_user_name"]) => {
            Patch::Set(Person {
                id: req.opt_text("original_message_user_id")?,
                name: req.opt_text("original_message_user_name")?,
                email: None,
            })
        }
        Patch::Absent => Patch::Absent,
    })
}

/// The CSAT score and feedback; neither given clears it.
fn csat_of(req: &Obj<'_>) -> Result<Patch<Csat>, PayloadError> {
    Ok(match req.obj("csat")? {
        Patch::Set(c) => {
            let score = match c.raw("score") {
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => c.opt_text("score")?,
            };
            let feedback = c.opt_text("feedback")?;
            if score.is_none() && feedback.is_none() {
                Patch::Null
            } else {
                Patch::Set(Csat { score, feedback })
            }
        }
        Patch::Null => Patch::Null,
        Patch::Absent => Patch::Absent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Ts;

    pub const SAMPLE: &str = include_str!("../../samples/contract-example.json");

    #[test]
    fn parses_the_contract_example() {
        let e = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(e.action, Action::Update);
        let s = e.snapshot;
        assert_eq!(s.request_id, "REQ-2041");
        assert_eq!(s.updated_at.iso(), "2026-11-24T11:02:31Z");
        assert_eq!(s.closed_at, Patch::Null);
        assert_eq!(
            s.requestor.set().unwrap().email.as_deref(),
            Some("harsh@acme.io")
        );
        assert_eq!(s.team_name, Patch::Set("Acme Corp".into()));
        assert_eq!(
            s.customer_thread.set().unwrap()[0].user_name.as_deref(),
            Some("Harsh Vardhan")
        );
        assert_eq!(s.csat.set().unwrap().score.as_deref(), Some("4"));
        let cats = s.categories.set().unwrap();
        assert_eq!(cats[0].name, "Product");
        assert_eq!(
            cats[0].values,
            ["Request Management", "Marketing Automation"]
        );
        assert_eq!(
            s.tags,
            Patch::Set(vec!["bug".into(), "dashboard".into(), "outage".into()])
        );
        assert_eq!(s.assigned_to, Patch::Set("Priya Raman".into()));
        assert_eq!(s.title, Patch::Set("Dashboard returns HTTP 500".into()));
        assert_eq!(
            s.permalink.set().unwrap(),
            "https://acme.slack.com/archives/C0123ACME/p1764000000000100"
        );
    }

    #[test]
    fn minimal_payload_and_variants() {
        let e = parse(br#"{"action":"create","request":{"requestId":2041,"createdAt":1764000000,"updatedAt":"2026-11-24 11:02:31"},"AI_generatedTags":"a, b,,c"}"#).unwrap();
        assert_eq!(e.action, Action::Create);
        assert_eq!(e.snapshot.request_id, "2041");
        assert_eq!(e.snapshot.created_at, Ts(1_764_000_000_000));
        assert!(e.snapshot.title.is_absent() && e.snapshot.requestor.is_absent());
        assert_eq!(
            e.snapshot.tags,
            Patch::Set(vec!["a".into(), "b".into(), "c".into()])
        );
        let e = parse(br#"{"action":"UPDATE","request":{"requestId":"R","createdAt":1,"updatedAt":2,"requestor":{"name":"X","email":""},"closedBy":"Sam"},"unknown":{"deep":[1,2]}}"#).unwrap();
        assert_eq!(
            e.snapshot.requestor.set().unwrap().email,
            None,
            "empty email is no email"
        );
        assert_eq!(e.snapshot.closed_by, Patch::Set("Sam".into()));
    }

    /// Spellings of the canonical request below, each what Thena may send.
    const VARIANTS: [(&str, &str); 7] = [
        (
            "snake_case everywhere",
            r#"{"action":"UPDATE","request":{"request_id":"REQ-7","created_at":"2026-11-24T10:15:00Z","updated_at":"2026-11-24T11:00:00Z",
          "status":"OPEN","closed_at":"2026-11-24T11:00:00Z","closed_by":{"name":"Sam"},
          "requestor":{"id":"U1","name":"Harsh Vardhan","email":"harsh@acme.io"},"customer":{"team_name":"Acme Corp"},
          "permalink":"https://acme.slack.com/p1","request_link":"https://app.thena.ai/r/7","internal_notification_link":"https://v.slack.com/p2",
          "message_text":"hello","customer_thread":[{"user":{"id":"U1","name":"H"},"text":"t","ts":"1764000300.000200"}],
          "internal_thread":[],"custom_fields":[{"categoryName":"Product","values":[{"name":"A","value":"A"}]}]},
          "AI_requestTitle":"T","assigned_to":{"id":"U9","name":"Priya"}}"#,
        ),
        (
            "closed_* at the top level, people as strings",
            r#"{"action":"UPDATE","request":{"requestId":"REQ-7","createdAt":"2026-11-24T10:15:00Z","updatedAt":"2026-11-24T11:00:00Z",
          "status":"OPEN","requestor":{"id":"U1","name":"Harsh Vardhan","email":"harsh@acme.io"},"customer":{"teamName":"Acme Corp"},
          "permalink":"https://acme.slack.com/p1","requestLink":"https://app.thena.ai/r/7","internalNotificationLink":"https://v.slack.com/p2",
          "messageText":"hello","customerThread":[{"user":{"id":"U1","name":"H"},"text":"t","ts":"1764000300.000200"}],
          "internalThread":[],"customFields":[{"category_name":"Product","values":[{"name":"A","value":"A"}]}]},
          "closed_at":"2026-11-24T11:00:00Z","closed_by":"Sam","AI_requestTitle":"T","assignedTo":"Priya"}"#,
        ),
        (
            "v3 names",
            r#"{"action":"UPDATE","request":{"id":"REQ-7","created_at":"2026-11-24T10:15:00Z","updated_at":"2026-11-24T11:00:00Z",
          "status":"OPEN","closedAt":"2026-11-24T11:00:00Z","closedBy":"Sam",
          "requestor":{"id":"U1","name":"Harsh Vardhan","email":"harsh@acme.io"},"customer":{"teamName":"Acme Corp"},
          "original_message_permalink":"https://acme.slack.com/p1","requestLink":"https://app.thena.ai/r/7","internalNotificationLink":"https://v.slack.com/p2",
          "original_message_text":"hello","customerThread":[{"user":{"id":"U1","name":"H"},"text":"t","ts":"1764000300.000200"}],
          "internalThread":[],"custom_fields":[{"category_name":"Product","values":[{"name":"A","value":"A"}],"manual":true}],"sub_status":{"name":"x"}},
          "AI_requestTitle":"T","assignedTo":{"id":"U9","name":"Priya"}}"#,
        ),
        (
            "an escalation",
            r#"{"action":"ESCALATE","request":{"requestId":"REQ-7","createdAt":"2026-11-24T10:15:00Z","updatedAt":"2026-11-24T11:00:00Z",
          "status":"OPEN","closedAt":"2026-11-24T11:00:00Z","closedBy":{"name":"Sam"},
          "requestor":{"id":"U1","name":"Harsh Vardhan","email":"harsh@acme.io"},"customer":{"teamName":"Acme Corp"},
          "permalink":"https://acme.slack.com/p1","requestLink":"https://app.thena.ai/r/7","internalNotificationLink":"https://v.slack.com/p2",
          "messageText":"hello","customerThread":[{"user":{"id":"U1","name":"H"},"text":"t","ts":"1764000300.000200"}],
          "internalThread":[],"customFields":[{"category_name":"Product","values":[{"name":"A","value":"A"}]}]},
          "AI_requestTitle":"T","assignedTo":{"id":"U9","name":"Priya"},"activity":[{"x":1}],"channelId":"C1","channelName":"ext"}"#,
        ),
        (
            "an action never seen before",
            r#"{"action":"request_reopened","request":{"requestId":"REQ-7","createdAt":"2026-11-24T10:15:00Z","updatedAt":"2026-11-24T11:00:00Z",
          "status":"OPEN","closedAt":"2026-11-24T11:00:00Z","closedBy":{"name":"Sam"},
          "requestor":{"id":"U1","name":"Harsh Vardhan","email":"harsh@acme.io"},"customer":{"teamName":"Acme Corp"},
          "permalink":"https://acme.slack.com/p1","requestLink":"https://app.thena.ai/r/7","internalNotificationLink":"https://v.slack.com/p2",
          "messageText":"hello","customerThread":[{"user":{"id":"U1","name":"H"},"text":"t","ts":"1764000300.000200"}],
          "internalThread":[],"customFields":[{"category_name":"Product","values":[{"name":"A","value":"A"}]}]},
          "AI_requestTitle":"T","assignedTo":{"id":"U9","name":"Priya"},"somethingNew":{"a":[1]}}"#,
        ),
        (
            "inside request wins over the top level",
            r#"{"action":"UPDATE","request":{"requestId":"REQ-7","createdAt":"2026-11-24T10:15:00Z","updatedAt":"2026-11-24T11:00:00Z",
          "status":"OPEN","closedAt":"2026-11-24T11:00:00Z","closedBy":{"name":"Sam"},
          "requestor":{"id":"U1","name":"Harsh Vardhan","email":"harsh@acme.io"},"customer":{"teamName":"Acme Corp"},
          "permalink":"https://acme.slack.com/p1","requestLink":"https://app.thena.ai/r/7","internalNotificationLink":"https://v.slack.com/p2",
          "messageText":"hello","customerThread":[{"user":{"id":"U1","name":"H"},"text":"t","ts":"1764000300.000200"}],
          "internalThread":[],"customFields":[{"category_name":"Product","values":[{"name":"A","value":"A"}]}]},
          "closedAt":"2020-01-01T00:00:00Z","closedBy":"Someone Else","AI_requestTitle":"T","assignedTo":{"id":"U9","name":"Priya"}}"#,
        ),
        (
            "first non-null spelling wins",
            r#"{"action":"UPDATE","request":{"requestId":null,"request_id":"REQ-7","createdAt":"2026-11-24T10:15:00Z","updatedAt":"2026-11-24T11:00:00Z",
          "status":"OPEN","closedAt":"2026-11-24T11:00:00Z","closedBy":{"name":"Sam"},
          "requestor":{"id":"U1","name":"Harsh Vardhan","email":"harsh@acme.io"},"customer":{"teamName":"Acme Corp"},
          "permalink":"https://acme.slack.com/p1","requestLink":"https://app.thena.ai/r/7","internalNotificationLink":"https://v.slack.com/p2",
          "messageText":null,"message_text":"hello","customerThread":[{"user":{"id":"U1","name":"H"},"text":"t","ts":"1764000300.000200"}],
          "internalThread":[],"customFields":[{"category_name":"Product","values":[{"name":"A","value":"A"}]}]},
          "AI_requestTitle":"T","assignedTo":{"id":"U9","name":"Priya"}}"#,
        ),
    ];

    /// Every spelling Thena may use gives the same snapshot, so the same
    /// `Request__c` (shared/reference/thena-webhook.md, the tolerant parser).
    #[test]
    fn every_variant_thena_may_send_gives_the_same_request() {
        let canonical = parse(
            br#"{"action":"UPDATE","request":{"requestId":"REQ-7","createdAt":"2026-11-24T10:15:00Z","updatedAt":"2026-11-24T11:00:00Z",
            "status":"OPEN","closedAt":"2026-11-24T11:00:00Z","closedBy":{"name":"Sam"},
            "requestor":{"id":"U1","name":"Harsh Vardhan","email":"harsh@acme.io"},"customer":{"teamName":"Acme Corp"},
            "permalink":"https://acme.slack.com/p1","requestLink":"https://app.thena.ai/r/7","internalNotificationLink":"https://v.slack.com/p2",
            "messageText":"hello","customerThread":[{"user":{"id":"U1","name":"H"},"text":"t","ts":"1764000300.000200"}],
            "internalThread":[],"customFields":[{"category_name":"Product","values":[{"name":"A","value":"A"}]}]},
            "AI_requestTitle":"T","assignedTo":{"id":"U9","name":"Priya"}}"#,
        )
        .unwrap()
        .snapshot;
        for (what, body) in VARIANTS {
            let got = parse(body.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got.snapshot, canonical, "{what}");
        }
    }

    #[test]
    fn the_v3_author_stands_in_for_a_missing_requestor() {
        let e = parse(br#"{"action":"CREATE","request":{"id":9,"created_at":1,"updated_at":2,"original_message_user_id":"U5","original_message_user_name":"Ann Lee"}}"#).unwrap();
        assert_eq!(e.snapshot.request_id, "9");
        let p = e.snapshot.requestor.set().unwrap();
        assert_eq!(
            (p.id.as_deref(), p.name.as_deref()),
            (Some("U5"), Some("Ann Lee"))
        );
    }

    #[test]
    fn errors_name_the_path() {
        let cases: [(&str, &str); 10] = [
            ("[]", "$"),
            ("{nope", "$"),
            (r#"{"request":{}}"#, "action"),
            (r#"{"action":7,"request":{}}"#, "action"),
            (r#"{"action":"UPDATE"}"#, "request"),
            (
                r#"{"action":"UPDATE","request":{"createdAt":1,"updatedAt":2}}"#,
                "request.requestId",
            ),
            (
                r#"{"action":"UPDATE","request":{"requestId":"R","updatedAt":2}}"#,
                "request.createdAt",
            ),
            (
                r#"{"action":"UPDATE","request":{"requestId":"R","createdAt":1,"updatedAt":"soon"}}"#,
                "request.updatedAt",
            ),
            (
                r#"{"action":"UPDATE","request":{"requestId":"R","createdAt":1,"updatedAt":2,"customerThread":[{"text":{}}]}}"#,
                "request.customerThread[0].text",
            ),
            (
                r#"{"action":"UPDATE","request":{"requestId":"R","createdAt":1,"updatedAt":2,"customFields":[{"values":[]}]}}"#,
                "request.customFields[0].category_name",
            ),
        ];
        for (body, path) in cases {
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.path, path, "{body}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_any_json_shape(v in arb_json()) {
            let body = serde_json::json!({"action": "UPDATE", "request": v.clone(), "AI_requestTitle": v.clone(), "assignedTo": v});
            let _ = parse(body.to_string().as_bytes());
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::String)
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::hash_map(
                    prop_oneof![
                        Just("requestId".to_string()),
                        Just("createdAt".to_string()),
                        Just("updatedAt".to_string()),
                        Just("requestor".to_string()),
                        Just("customFields".to_string()),
                        ".{0,6}".prop_map(|s| s)
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
