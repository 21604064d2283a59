//! A ticket's fields as a [`Snapshot`] (the reference's §7): status,
//! priority and sentiment in every documented shape, the requestor, custom
//! fields as categories, and the closed fields derived from a status move.

use serde_json::Value;

use super::super::json::{err, kind, Obj, PayloadError};
use super::super::webhook::name_of;
use crate::domain::snapshot::{Category, Patch, Person, Snapshot};
use crate::domain::time::Ts;

/// What the envelope says that a ticket's fields may need.
pub(super) struct Ctx {
    pub stamp: Option<Ts>,
    pub actor: Option<String>,
}

pub(super) fn ticket_at<'a>(
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

pub(super) fn id_of(t: &Obj) -> Result<String, PayloadError> {
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

pub(super) fn created_of(t: &Obj, ctx: &Ctx) -> Result<Ts, PayloadError> {
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
pub(super) fn named(
    t: &Obj,
    flat: &'static str,
    nested: &'static str,
) -> Result<Patch<String>, PayloadError> {
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
pub(super) fn ticket(t: &Obj, ctx: &Ctx) -> Result<Snapshot, PayloadError> {
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
            Patch::list(v)
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
pub(super) fn closing(
    s: &mut Snapshot,
    previous: Option<&Obj>,
    ctx: &Ctx,
) -> Result<(), PayloadError> {
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
