//! Thena platform events (tickets), parsed into the same [`Snapshot`] a
//! request webhook gives, so that everything below the parser is the same
//! (shared/reference/thena-platform-events.md). The envelope is recognised by
//! `eventType`, bare or wrapped in `message`; `eventId` is the idempotency key.
//! Ticket events map onto `Request__c` by the reference's table
//! ([`ticket`]); comments and CSAT change a ticket beside its versioned
//! state, and installation events record the organisation ([`side`]); events
//! we do not use are acknowledged and counted, not stored.

mod side;
mod ticket;

use serde_json::{Map, Value};

use super::json::{err, Obj, PayloadError};
use crate::domain::comments::CommentChange;
use crate::domain::snapshot::{Patch, Snapshot, Source};
use ticket::Ctx;

/// What a platform event changes of one ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The idempotency key (`None` for a request webhook, which has none).
    pub event_id: Option<String>,
    /// The envelope's Thena organisation, when it names one.
    pub org_id: Option<String>,
    /// How the snapshot is applied: [`Source::Ticket`] (versioned) or
    /// [`Source::Side`] (a comment or CSAT).
    pub source: Source,
    pub snapshot: Snapshot,
    /// A comment added, edited or removed (kept by the connector).
    pub comment: Option<CommentChange>,
}

/// What a platform event asks of the connector.
#[derive(Debug, Clone, PartialEq)]
pub enum Platform {
    /// Apply this change to one ticket.
    Change(Box<Change>),
    /// The webhook app was installed, reinstalled, changed or uninstalled:
    /// record it on the connection (`app:*`, snake_case).
    Installation {
        event_type: String,
        org_id: Option<String>,
        team_ids: Vec<String>,
    },
    /// Acknowledged and counted, not stored: an event type we do not use
    /// (account, user, organization, reactions, SLA, ...), or a ticket
    /// event without a ticket (or a comment without a ticket id) in it.
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

/// Ticket events that only acknowledge: nothing in them is on `Request__c`.
const UNUSED_TICKET_EVENTS: [&str; 5] = [
    "ticket:csat:sent",
    "ticket:sla:breached",
    "ticket:sla:breach_warning",
    "ticket:comment:reaction:added",
    "ticket:comment:reaction:removed",
];

/// Parses a platform event (call when [`is_platform`] is true).
pub fn parse(root: &Value) -> Result<Platform, PayloadError> {
    let Some(env) = envelope(root) else {
        // Installation lifecycle events: `event_type`, snake_case.
        let event_type = root
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or("app event")
            .chars()
            .take(80)
            .collect();
        let (org_id, team_ids) = side::installation(root);
        return Ok(Platform::Installation {
            event_type,
            org_id,
            team_ids,
        });
    };
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
    let ignored = Platform::Ignored {
        event_type: event_type.clone(),
    };
    if !event_type.starts_with("ticket:") || UNUSED_TICKET_EVENTS.contains(&event_type.as_str()) {
        return Ok(ignored);
    }
    let ctx = Ctx {
        stamp: match top.time("timestamp")? {
            Patch::Set(t) => Some(t),
            _ => None,
        },
        actor: match top.obj("actor")? {
            Patch::Set(a) => a.opt_text("email")?.or(a.opt_text("id")?),
            _ => None,
        },
    };
    let made = if event_type.starts_with("ticket:comment") {
        comment_event(&event_type, &payload, &ctx)?
    } else if event_type == "ticket:csat:received" {
        csat_event(&payload, &ctx)?
    } else {
        ticket_event(&event_type, &payload, &ctx)?
    };
    Ok(match made {
        Some((source, snapshot, comment)) => Platform::Change(Box::new(Change {
            event_id: Some(event_id),
            org_id: top.opt_text("orgId")?,
            source,
            snapshot,
            comment,
        })),
        None => ignored,
    })
}

/// What one event makes: how it applies, the snapshot, a comment change.
type Made = Option<(Source, Snapshot, Option<CommentChange>)>;

fn ticket_event(event_type: &str, payload: &Obj, ctx: &Ctx) -> Result<Made, PayloadError> {
    if matches!(event_type, "ticket:deleted" | "ticket:archived") {
        let Some(t) = ticket::ticket_at(payload, &["previousTicket", "ticket"])? else {
            return Ok(None);
        };
        let label = if event_type == "ticket:deleted" {
            "Deleted"
        } else {
            "Archived"
        };
        // Kept in Salesforce, with the status the reference names; versioned by the envelope.
        let created = ticket::created_of(&t, ctx)?;
        let mut s = Snapshot::new(ticket::id_of(&t)?, created, ctx.stamp.unwrap_or(created));
        s.status = Patch::Set(label.to_string());
        return Ok(Some((Source::Ticket, s, None)));
    }
    let Some(t) = ticket::ticket_at(payload, &["ticket"])? else {
        return Ok(None);
    };
    let previous = ticket::ticket_at(payload, &["previousTicket"])?;
    let mut s = ticket::ticket(&t, ctx)?;
    ticket::closing(&mut s, previous.as_ref(), ctx)?;
    let mut first = None;
    if event_type == "ticket:created" {
        if let Patch::Set(c) = payload.obj("comment")? {
            if s.message_text.is_absent() {
                s.message_text = c.text("content")?;
            }
            first = side::comment(&c, false, Some(s.created_at), ctx.actor.as_deref())?;
        }
    }
    Ok(Some((Source::Ticket, s, first)))
}

/// `ticket:comment:added` / `:created` / `:updated` put a comment,
/// `:deleted` removes it; without a ticket id or a comment id, skipped.
fn comment_event(event_type: &str, payload: &Obj, ctx: &Ctx) -> Result<Made, PayloadError> {
    let Patch::Set(c) = payload.obj("comment")? else {
        return Ok(None);
    };
    let Some(ticket_id) = side::ticket_id(payload, Some(&c))? else {
        return Ok(None);
    };
    let removed = event_type == "ticket:comment:deleted";
    let Some(change) = side::comment(&c, removed, ctx.stamp, ctx.actor.as_deref())? else {
        return Ok(None);
    };
    let at = ctx.stamp.unwrap_or(crate::domain::time::Ts(0));
    Ok(Some((
        Source::Side,
        Snapshot::new(ticket_id, at, at),
        Some(change),
    )))
}

/// `ticket:csat:received`: Csat__c, when the payload has a score or feedback.
fn csat_event(payload: &Obj, ctx: &Ctx) -> Result<Made, PayloadError> {
    let inner = match payload.obj("csat")? {
        Patch::Set(c) => Some(c),
        _ => None,
    };
    let (Some(ticket_id), Some(csat)) = (
        side::ticket_id(payload, inner.as_ref())?,
        side::csat(payload)?,
    ) else {
        return Ok(None);
    };
    let at = ctx.stamp.unwrap_or(crate::domain::time::Ts(0));
    let mut s = Snapshot::new(ticket_id, at, at);
    s.csat = Patch::Set(csat);
    Ok(Some((Source::Side, s, None)))
}

/// Parses a body as JSON once, for the route that takes both formats.
pub fn json(body: &[u8]) -> Result<Value, PayloadError> {
    super::json::from_slice(body)
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
            Platform::Change(c) => c.snapshot,
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
            (
                "ticket:comment:reaction:added",
                serde_json::json!({"comment": {"id": "c"}, "ticketId": "T"}),
            ),
            ("ticket:csat:received", serde_json::json!({"ticketId": "T"})),
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

    fn change(v: Value) -> Change {
        match parse(&v).unwrap() {
            Platform::Change(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn comments_put_and_remove_by_id_in_every_documented_place() {
        let added = change(
            serde_json::json!({"eventId": "E1", "eventType": "ticket:comment:added", "timestamp": "2026-11-24T10:20:00Z",
            "orgId": "OG1", "actor": {"email": "priya@vendor.example"},
            "payload": {"ticketId": "CT-1", "comment": {"id": "CM1", "contentHtml": "<p>On it &amp; looking</p>", "commentType": "note"}}}),
        );
        assert_eq!(added.source, Source::Side);
        assert_eq!(added.snapshot.request_id, "CT-1");
        assert_eq!(added.org_id.as_deref(), Some("OG1"));
        let Some(CommentChange::Put(c)) = added.comment else {
            panic!()
        };
        assert_eq!((c.text.as_str(), c.internal), ("On it & looking", true));
        assert_eq!(
            c.author.as_deref(),
            Some("priya@vendor.example"),
            "the actor when the comment names no author"
        );
        let created = change(
            serde_json::json!({"eventId": "E2", "eventType": "ticket:comment:created",
            "payload": {"comment": {"id": "CM2", "entityId": "CT-2", "content": "hi", "customerContactId": "CC1", "createdAt": 1764000000, "author": {"name": "Harsh"}}}}),
        );
        let Some(CommentChange::Put(c)) = created.comment else {
            panic!()
        };
        assert_eq!(
            (
                created.snapshot.request_id.as_str(),
                c.internal,
                c.author.as_deref()
            ),
            ("CT-2", false, Some("Harsh"))
        );
        let deleted = change(
            serde_json::json!({"eventId": "E3", "eventType": "ticket:comment:deleted",
            "payload": {"ticket": {"id": "CT-1"}, "comment": {"id": "CM1"}}}),
        );
        assert_eq!(deleted.comment, Some(CommentChange::Remove("CM1".into())));
        let first = change(
            serde_json::json!({"eventId": "E4", "eventType": "ticket:created",
            "payload": {"ticket": ticket(serde_json::json!({})), "comment": {"id": "CM0", "content": "first", "customerContactId": "CC1"}}}),
        );
        assert_eq!(first.source, Source::Ticket);
        assert!(
            matches!(first.comment, Some(CommentChange::Put(ref c)) if c.text == "first" && !c.internal)
        );
    }

    #[test]
    fn csat_scores_at_payload_or_under_csat() {
        for payload in [
            serde_json::json!({"ticketId": "CT-1", "score": 5, "feedback": "great"}),
            serde_json::json!({"csat": {"ticketId": "CT-1", "rating": "5", "comment": "great"}}),
        ] {
            let c = change(
                serde_json::json!({"eventId": "E", "eventType": "ticket:csat:received", "payload": payload}),
            );
            assert_eq!(c.source, Source::Side);
            assert_eq!(c.snapshot.request_id, "CT-1");
            assert_eq!(
                c.snapshot.csat,
                Patch::Set(crate::domain::snapshot::Csat {
                    score: Some("5".into()),
                    feedback: Some("great".into())
                })
            );
        }
    }

    #[test]
    fn installation_events_name_the_organisation_and_teams() {
        let v = serde_json::json!({"event_type": "app:installation", "installation_id": "I", "organization_id": "OG1", "team_ids": ["T1", "T2"], "bot_token": "secret"});
        assert!(is_platform(&v));
        assert_eq!(
            parse(&v).unwrap(),
            Platform::Installation {
                event_type: "app:installation".into(),
                org_id: Some("OG1".into()),
                team_ids: vec!["T1".into(), "T2".into()]
            }
        );
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
