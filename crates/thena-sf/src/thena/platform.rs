//! Thena platform events (tickets), parsed into the same [`Snapshot`] a
//! request webhook gives, so that everything below the parser is the same
//! (shared/reference/thena-platform-events.md). The envelope is recognised by
//! `eventType`, bare or wrapped in `message`; `eventId` is the idempotency key.
//! Ticket events map onto `Request__c` by the reference's table; events we do
//! not use are acknowledged and counted, not stored.

use serde_json::{Map, Value};

use super::json::{err, kind, Obj, PayloadError};
use super::webhook::name_of;
use crate::domain::snapshot::{Category, Patch, Person, Snapshot};
use crate::domain::time::Ts;

/// What a platform event asks of the connector.
#[derive(Debug, Clone, PartialEq)]
pub enum Platform {
    /// Upsert this ticket's state; `event_id` deduplicates.
    Ticket {
        event_id: String,
        snapshot: Box<Snapshot>,
    },
    /// Acknowledged and counted, not stored: an event type we do not use
    /// (account, user, organization, installation, reactions, SLA, ...), or
    /// a ticket event without a ticket in it.
    Ignored { event_type: String },
}

/// Whether a body is a platform event (rather than a request webhook).
pub fn is_platform(root: &Value) -> bool {
    envelope(root).is_some() || root.get("event_type").is_some()
}

/// The envelope: the body itself, or its `message` (an object, or a string
/// holding JSON), when that is where `eventType` is.
fn envelope(root: &Value) -> Option<std::borrow::Cow<'_, Map<String, Value>>> {
    let Value::Object(m) = root else { return None };
    if m.contains_key("eventType") {
        return Some(std::borrow::Cow::Borrowed(m));
    }
    match m.get("message") {
        Some(Value::Object(inner)) if inner.contains_key("eventType") => {
            Some(std::borrow::Cow::Borrowed(inner))
        }
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(inner)) if inner.contains_key("eventType") => {
                Some(std::borrow::Cow::Owned(inner))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Parses a platform event (call when [`is_platform`] is true).
pub fn parse(root: &Value) -> Result<Platform, PayloadError> {
    // Installation lifecycle events (`event_type`, snake_case): nothing to sync.
    if let (None, Some(t)) = (envelope(root), root.get("event_type")) {
        return Ok(Platform::Ignored {
            event_type: t.as_str().unwrap_or("app event").to_string(),
        });
    }
    let env = envelope(root).ok_or_else(|| err("eventType", "is required"))?;
    let top = Obj {
        map: &env,
        path: String::new(),
    };
    let event_type = top
        .opt_text("eventType")?
        .ok_or_else(|| err("eventType", "is required"))?;
    let event_id = top
        .opt_text("eventId")?
        .ok_or_else(|| err("eventId", "is required"))?;
    let payload = match top.obj("payload")? {
        Patch::Set(p) => p,
        _ => return Err(err("payload", "is required")),
    };
    let stamp = match top.time("timestamp")? {
        Patch::Set(t) => Some(t),
        _ => None,
    };
    let ignored = || {
        Ok(Platform::Ignored {
            event_type: event_type.clone(),
        })
    };
    if !event_type.starts_with("ticket:")
        || event_type.starts_with("ticket:comment")
        || matches!(
            event_type.as_str(),
            "ticket:csat:sent"
                | "ticket:csat:received"
                | "ticket:sla:breached"
                | "ticket:sla:breach_warning"
        )
    {
        return ignored();
    }
    let actor = match top.obj("actor")? {
        Patch::Set(a) => a.opt_text("email")?.or(a.opt_text("id")?),
        _ => None,
    };
    let ctx = Ctx { stamp, actor };
    let snapshot = match event_type.as_str() {
        "ticket:deleted" | "ticket:archived" => {
            let Some(t) = ticket_at(&payload, &["previousTicket", "ticket"])? else {
                return ignored();
            };
            let label = if event_type == "ticket:deleted" {
                "Deleted"
            } else {
                "Archived"
            };
            // Kept in Salesforce, with the status the reference names; versioned by the envelope.
            let mut s = Snapshot::new(
                id_of(&t)?,
                created_of(&t, &ctx)?,
                ctx.stamp.unwrap_or(created_of(&t, &ctx)?),
            );
            s.status = Patch::Set(label.to_string());
            s
        }
        _ => {
            let Some(t) = ticket_at(&payload, &["ticket"])? else {
                return ignored();
            };
            let previous = ticket_at(&payload, &["previousTicket"])?;
            let mut s = ticket(&t, &ctx)?;
            closing(&mut s, previous.as_ref(), &ctx)?;
            if event_type == "ticket:created" && s.message_text.is_absent() {
                if let Patch::Set(c) = payload.obj("comment")? {
                    s.message_text = c.text("content")?;
                }
            }
            s
        }
    };
    Ok(Platform::Ticket {
        event_id,
        snapshot: Box::new(snapshot),
    })
}

/// What the envelope says that a ticket's fields may need.
struct Ctx {
    stamp: Option<Ts>,
    actor: Option<String>,
}

fn ticket_at<'a>(
    payload: &Obj<'a>,
    keys: &[&'static str],
) -> Result<Option<Obj<'a>>, PayloadError> {
    for k in keys {
        if let Patch::Set(t) = payload.obj(k)? {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

fn id_of(t: &Obj) -> Result<String, PayloadError> {
    match t.raw("id") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => {
            Ok(s.trim().to_string())
        }
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if s.len() > 255 => {
            Err(err(&t.at("id"), "is longer than 255 characters"))
        }
        Some(other) if !other.is_null() && !other.is_string() => Err(err(
            &t.at("id"),
            format!("expected a string, got {}", kind(other)),
        )),
        _ => Err(err(&t.at("id"), "is required")),
    }
}

fn created_of(t: &Obj, ctx: &Ctx) -> Result<Ts, PayloadError> {
    match t.time(t.alias(&["createdAt", "created_at"]))? {
        Patch::Set(ts) => Ok(ts),
        _ => ctx.stamp.ok_or_else(|| {
            err(
                &t.at("createdAt"),
                "is required (or the envelope's timestamp)",
            )
        }),
    }
}

/// `statusName`, else `status` as a string, else `status.name` (likewise priority, sentiment).
fn named(t: &Obj, flat: &'static str, nested: &'static str) -> Result<Patch<String>, PayloadError> {
    if t.raw(flat).is_some() {
        return t.text(flat);
    }
    match t.raw(nested) {
        Some(Value::Object(_)) => match t.obj(nested)? {
            Patch::Set(o) => o.text("name"),
            Patch::Null => Ok(Patch::Null),
            Patch::Absent => Ok(Patch::Absent),
        },
        _ => t.text(nested),
    }
}

/// A ticket's fields as a snapshot (the reference's §7).
fn ticket(t: &Obj, ctx: &Ctx) -> Result<Snapshot, PayloadError> {
    let created = created_of(t, ctx)?;
    let updated = match t.time(t.alias(&["updatedAt", "updated_at"]))? {
        Patch::Set(ts) => ts,
        _ => ctx.stamp.unwrap_or(created),
    };
    let mut s = Snapshot::new(id_of(t)?, created, updated);
    s.status = named(t, "statusName", "status")?;
    s.urgency = named(t, "priorityName", "priority")?;
    s.sentiment = named(t, "sentimentName", "sentiment")?;
    s.title = match t.text("aiGeneratedTitle")? {
        Patch::Set(v) => Patch::Set(v),
        _ => t.text("title")?,
    };
    s.summary = t.text("aiGeneratedSummary")?;
    s.message_text = t.text("description")?;
    s.assigned_to = name_of(t, &["assignedAgent"])?;
    s.tags = match t.array("tags")? {
        Patch::Set((items, _)) => {
            let v: Vec<String> = items
                .iter()
                .filter_map(|x| x.as_str())
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect();
            if v.is_empty() {
                Patch::Null
            } else {
                Patch::Set(v)
            }
        }
        Patch::Null => Patch::Null,
        Patch::Absent => Patch::Absent,
    };
    s.categories = match t.obj("customFields")? {
        Patch::Set(o) => Patch::Set(
            o.map
                .iter()
                .filter_map(|(k, v)| {
                    let value = match v {
                        Value::String(x) => x.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some(Category {
                        name: k.trim().to_string(),
                        values: vec![value],
                    })
                })
                .filter(|c| !c.name.is_empty())
                .collect(),
        ),
        Patch::Null => Patch::Null,
        Patch::Absent => Patch::Absent,
    };
    s.requestor = requestor(t)?;
    // The customer's company is the ticket's account name, never `teamName`
    // (that is the vendor's own support team).
    s.team_name = match t.raw("account") {
        Some(Value::String(_)) | Some(Value::Null) => t.text("account")?,
        _ => Patch::Absent,
    };
    let closed_at = t.alias(&["closedAt", "closed_at"]);
    s.closed_at = t.time(closed_at)?;
    s.closed_by = name_of(t, &["closedBy", "closed_by"])?;
    Ok(s)
}

fn requestor(t: &Obj) -> Result<Patch<Person>, PayloadError> {
    let customer = match t.obj("customer")? {
        Patch::Set(c) => Some((c.opt_text("id")?, c.opt_text("name")?, c.opt_text("email")?)),
        _ => None,
    };
    let (id, name, email) = customer.unwrap_or((None, None, None));
    let email = email
        .or(t.opt_text("customerContactEmail")?)
        .or(t.opt_text("requestorEmail")?)
        .map(|e| e.trim().to_string());
    let name = name.or_else(|| {
        let first = t.opt_text("customerContactFirstName").ok().flatten();
        let last = t.opt_text("customerContactLastName").ok().flatten();
        match (first, last) {
            (None, None) => None,
            (f, l) => Some(
                format!("{} {}", f.unwrap_or_default(), l.unwrap_or_default())
                    .trim()
                    .to_string(),
            ),
        }
    });
    if id.is_none() && name.is_none() && email.is_none() {
        return Ok(Patch::Absent);
    }
    Ok(Patch::Set(Person { id, name, email }))
}

/// Whether a status name means Closed (the table that maps it to Status__c).
fn is_closed(status: &Patch<String>) -> bool {
    status
        .set()
        .is_some_and(|s| crate::domain::mapping::status_label(s) == "Closed")
}

/// Without `closedAt`/`closedBy`: a move into Closed is closed at the
/// envelope's time by its actor; a move out of Closed clears both.
fn closing(s: &mut Snapshot, previous: Option<&Obj>, ctx: &Ctx) -> Result<(), PayloadError> {
    if !s.closed_at.is_absent() {
        return Ok(());
    }
    let Some(prev) = previous else { return Ok(()) };
    let before = is_closed(&named(prev, "statusName", "status")?);
    let now = is_closed(&s.status);
    if now && !before {
        s.closed_at = ctx.stamp.map_or(Patch::Absent, Patch::Set);
        if s.closed_by.is_absent() {
            s.closed_by = ctx.actor.clone().map_or(Patch::Absent, Patch::Set);
        }
    } else if before && !now {
        s.closed_at = Patch::Null;
        s.closed_by = Patch::Null;
    }
    Ok(())
}

/// Parses a body as JSON once, for the route that takes both formats.
pub fn json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| err("$", format!("not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ticket(extra: Value) -> Value {
        let mut t = serde_json::json!({"id": "CT-1", "createdAt": "2026-11-24T10:15:00Z", "updatedAt": 1764000000000_i64});
        if let (Value::Object(a), Value::Object(b)) = (&mut t, extra) {
            a.extend(b);
        }
        t
    }

    fn parsed(v: Value) -> Snapshot {
        match parse(&v).unwrap() {
            Platform::Ticket { snapshot, .. } => *snapshot,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_envelope_bare_wrapped_or_as_a_json_string() {
        let env = serde_json::json!({"eventId": "E", "eventType": "ticket:updated", "timestamp": 1, "payload": {"ticket": ticket(serde_json::json!({}))}});
        assert!(is_platform(&env));
        let a = parsed(env.clone());
        let b = parsed(serde_json::json!({"message": env.clone()}));
        let c = parsed(serde_json::json!({"message": env.to_string(), "messageAttributes": {}}));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(!is_platform(
            &serde_json::json!({"action": "UPDATE", "request": {}})
        ));
    }

    #[test]
    fn statuses_priorities_and_agents_in_every_documented_shape() {
        let flat = parsed(
            serde_json::json!({"eventId": "E", "eventType": "ticket:updated", "payload": {"ticket": ticket(serde_json::json!({"statusName": "On Hold", "priorityName": "Low", "assignedAgent": "Sam"}))}}),
        );
        let nested = parsed(
            serde_json::json!({"eventId": "E", "eventType": "ticket:updated", "payload": {"ticket": ticket(serde_json::json!({"status": {"uid": "s1", "name": "On Hold"}, "priority": "Low", "assignedAgent": {"uid": "u", "name": "Sam"}}))}}),
        );
        assert_eq!(flat.status, Patch::Set("On Hold".into()));
        assert_eq!(flat.urgency, nested.urgency);
        assert_eq!(flat.status, nested.status);
        assert_eq!(flat.assigned_to, Patch::Set("Sam".into()));
        assert_eq!(nested.assigned_to, Patch::Set("Sam".into()));
        let cleared = parsed(
            serde_json::json!({"eventId": "E", "eventType": "ticket:assigned", "payload": {"ticket": ticket(serde_json::json!({"assignedAgent": null}))}}),
        );
        assert_eq!(cleared.assigned_to, Patch::Null, "null unassigns");
        let split = parsed(
            serde_json::json!({"eventId": "E", "eventType": "ticket:created", "payload": {"ticket": ticket(serde_json::json!({"customerContactFirstName": "Ann", "customerContactLastName": "Lee", "customerContactEmail": "ann@acme.io", "teamName": "Vendor"}))}}),
        );
        let p = split.requestor.set().unwrap();
        assert_eq!(
            (p.name.as_deref(), p.email.as_deref()),
            (Some("Ann Lee"), Some("ann@acme.io"))
        );
        assert!(
            split.team_name.is_absent(),
            "the vendor's team is never the customer"
        );
    }

    #[test]
    fn events_without_a_ticket_or_of_other_kinds_are_ignored() {
        for (t, payload) in [
            (
                "ticket:comment:added",
                serde_json::json!({"comment": {"id": "c"}}),
            ),
            ("ticket:escalated", serde_json::json!({})),
            ("user:created", serde_json::json!({})),
        ] {
            let v = serde_json::json!({"eventId": "E", "eventType": t, "payload": payload});
            assert!(
                matches!(parse(&v).unwrap(), Platform::Ignored { .. }),
                "{t}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(v) = json(&bytes) {
                if is_platform(&v) {
                    let _ = parse(&v);
                }
            }
        }

        #[test]
        fn never_panics_on_tickets_of_any_field_types(
            status in prop_oneof![Just(Value::Null), Just(Value::Bool(true)), Just(serde_json::json!(3)), Just(serde_json::json!({"name": 5})), ".{0,8}".prop_map(Value::String)],
            id in prop_oneof![Just(Value::Null), Just(serde_json::json!([])), Just(serde_json::json!(12345)), ".{0,300}".prop_map(Value::String)],
            stamp in prop_oneof![Just(Value::Null), Just(serde_json::json!(i64::MIN)), Just(serde_json::json!("x")), Just(serde_json::json!(1))],
        ) {
            let v = serde_json::json!({"eventId": "E", "eventType": "ticket:updated", "timestamp": stamp,
                "payload": {"ticket": {"id": id, "status": status, "createdAt": stamp, "customFields": {"a": status}}}});
            let _ = parse(&v);
        }
    }
}
