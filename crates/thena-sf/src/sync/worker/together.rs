//! New Contacts made in the step's write: one `POST /composite` carries the
//! Contacts to create (an sObject Collections create, `nc`) and the
//! records' upserts. A record that waits for a new Contact names it by
//! reference (`"Requestor__c": "@{nc[3].id}"`, REST API guide, "Send
//! Multiple Requests Using Composite"). So a step with new people is still
//! one API call, not two.
//!
//! Records that wait for a Contact go in upsert calls of their own: a
//! Contact Salesforce refuses halts only the subrequest that names it
//! (`PROCESSING_HALTED`). Those records are then decided again from the
//! creation's answers: linked (a duplicate rule matched an existing
//! Contact) and sent, or skipped with the reason. Salesforce reads any
//! `@{` in a body as a reference, so a batch whose text holds one goes the
//! old way (create, then upsert), as does one too large for one call.
//!
//! The same call carries the lookups riding for the next step
//! (`sync::ride`) when they fit; its query answers come last.

use std::collections::HashMap;

use salesforce::composite::{Subrequest, MAX_QUERIES};
use salesforce::{Method, RecordResult, SubResult, COLLECTION_LIMIT};
use serde_json::{json, Value};
use tracing::warn;

use super::{SyncError, Worker};
use crate::domain::resolve::{NewContact, Outcome};
use crate::provision::schema;
use crate::sync::plan::{self, ToSend};
use crate::sync::resolve_io::{self, LookedUp};
use crate::sync::ride::Ride;

const CONTACTS: &str = "nc";

/// The reference a record waiting for new Contact `i` carries.
pub(super) fn placeholder(i: usize) -> String {
    format!("@{{{CONTACTS}[{i}].id}}")
}

/// New Contacts made one subrequest each (`POST sobjects/Contact`), at
/// most: those are not among the composite's five Collections or queries,
/// so a ride keeps the room. More go as one Collections create.
pub(super) const ONE_BY_ONE: usize = 12;

/// The reference a record waiting for new Contact `i` carries when each
/// Contact is its own subrequest (`nc3`).
pub(super) fn placeholder_one(i: usize) -> String {
    format!("@{{{CONTACTS}{i}.id}}")
}

fn waits(t: &ToSend) -> bool {
    t.links.contact.starts_with("@{")
}

/// Whether the records can go in one composite call with the new Contacts'
/// creation (`contacts`) and `queries` riding lookups (the upserts then
/// merged, [`subrequests`]): at most five subrequests that are Collections
/// or queries, and no text but the placeholders that reads as a reference.
pub(super) fn fits(send: &[ToSend], contacts: bool, queries: usize) -> bool {
    let waiting = send.iter().filter(|t| waits(t)).count();
    let chunks = |n: usize| n.div_ceil(COLLECTION_LIMIT);
    let upserts = match queries {
        0 => chunks(waiting) + chunks(send.len() - waiting),
        _ => chunks(send.len()),
    };
    let creation = contacts && !one_by_one(send);
    let heavy = upserts + usize::from(creation) + queries;
    heavy <= MAX_QUERIES
        && send
            .iter()
            .all(|t| t.record.to_string().matches("@{").count() == usize::from(waits(t)))
}

fn upsert(reference: String, chunk: &[ToSend]) -> Subrequest {
    let records: Vec<Value> = chunk.iter().map(|t| t.record.clone()).collect();
    Subrequest {
        method: Method::PATCH,
        path: format!(
            "composite/sobjects/{}/{}",
            schema::OBJECT,
            schema::EXTERNAL_ID
        ),
        reference_id: reference,
        body: Some(json!({"allOrNone": false, "records": records})),
        headers: Vec::new(),
    }
}

/// A waiting record with its Contact's id in place of the reference.
fn with_contact<'a>(mut t: ToSend<'a>, contact: &str) -> ToSend<'a> {
    if let Value::Object(m) = &mut t.record {
        for v in m.values_mut() {
            if v.as_str() == Some(t.links.contact.as_str()) {
                *v = Value::String(contact.to_string());
            }
        }
    }
    t.links.contact = contact.to_string();
    t.hash = plan::hash(&t.record);
    t
}

impl Worker {
    /// Sends the planned records in one composite call, with the new
    /// Contacts of `looked` and the lookups of `ride`; returns the records
    /// Salesforce answered for (new Contacts' ids in place), and whether
    /// the ride's lookups landed.
    pub(super) async fn send_together<'a>(
        &mut self,
        send: Vec<ToSend<'a>>,
        looked: Option<LookedUp>,
        ride: Option<Ride>,
    ) -> Result<(Vec<(ToSend<'a>, RecordResult)>, bool), SyncError> {
        let new = looked
            .as_ref()
            .map_or(Vec::new(), |l| l.new_contacts().to_vec());
        let headers = resolve_io::creation_headers(self.settings.allow_duplicate_save);
        let one_by_one = one_by_one(&send);
        let (mut subs, chunks) = subrequests(&new, headers, send, ride.is_some());
        subs.extend(ride.iter().flat_map(Ride::subrequests));
        let mut answers = self.client.composite(&subs, false).await?.into_iter();
        let (created, contacts_answered) = match (looked.is_some(), one_by_one) {
            (false, _) => (HashMap::new(), true),
            (true, false) => self.made(&new, answers.next()).await?,
            (true, true) => {
                let results = answers.by_ref().take(new.len()).map(as_record_result);
                let results: Vec<RecordResult> = results.collect();
                let allow = self.settings.allow_duplicate_save;
                let made = resolve_io::created(&self.client, &new, &results, allow).await?;
                (made, true)
            }
        };
        let outcomes: HashMap<String, Outcome> = looked
            .map(|l| l.finish(&mut self.cache, &created))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let ids: Vec<Option<&String>> = new
            .iter()
            .map(|c| created.get(&c.key).and_then(|r| r.as_ref().ok()))
            .collect();
        let mut sent = Vec::new();
        let mut again = Vec::new();
        for ((wait, chunk), answer) in chunks.into_iter().zip(answers.by_ref()) {
            let answer = answer
                .into_result()
                .and_then(|b| RecordResult::parse_list(&b, chunk.len()));
            match answer {
                Ok(results) => sent.extend(chunk.into_iter().zip(results).map(|(t, r)| {
                    let i = wait.then(|| index(&t.links.contact)).flatten();
                    match i.and_then(|i| ids[i]) {
                        Some(id) => (with_contact(t, id), r),
                        None => (t, r),
                    }
                })),
                // Halted with a Contact that was refused: decided again. When
                // the creation failed as a whole, they stay queued as they are.
                Err(e) if wait && e.code() == Some("PROCESSING_HALTED") => {
                    if contacts_answered {
                        again.extend(chunk);
                    }
                }
                Err(e) => {
                    let claimed: Vec<_> = chunk.iter().map(|t| t.claimed.clone()).collect();
                    self.on_call_error(&claimed, e).await;
                }
            }
        }
        self.decide_again(again, &outcomes, &mut sent).await?;
        let landed = match ride {
            Some(r) => self.land(r, answers.collect()).await,
            None => false,
        };
        Ok((sent, landed))
    }

    /// The new Contacts' ids (or why not) from the creation's answer, and
    /// whether it answered at all.
    async fn made(
        &mut self,
        new: &[NewContact],
        answer: Option<SubResult>,
    ) -> Result<(HashMap<String, Result<String, String>>, bool), SyncError> {
        let made = answer.expect("one answer per subrequest").into_result();
        match made {
            Ok(body) => {
                let results = RecordResult::parse_list(&body, new.len())?;
                let allow = self.settings.allow_duplicate_save;
                let created = resolve_io::created(&self.client, new, &results, allow).await?;
                Ok((created, true))
            }
            // The waiting records stay queued: the next step makes their Contacts.
            Err(e) => {
                warn!(connection = %self.name, error = %e, "new Contacts were not created");
                Ok((HashMap::new(), false))
            }
        }
    }

    /// Takes a ride's answers into the resolver's memory; whether they landed.
    async fn land(&mut self, ride: Ride, answers: Vec<SubResult>) -> bool {
        match ride.land(&self.client, &mut self.cache, answers).await {
            Ok(()) => true,
            Err(e) => {
                warn!(connection = %self.name, error = %e, "the lookups that rode in a write failed; the next step looks up again");
                false
            }
        }
    }

    /// Records halted with their Contact: linked now (a duplicate rule's
    /// match) and sent by themselves, skipped with the reason, or left queued.
    async fn decide_again<'a>(
        &mut self,
        halted: Vec<ToSend<'a>>,
        outcomes: &HashMap<String, Outcome>,
        sent: &mut Vec<(ToSend<'a>, RecordResult)>,
    ) -> Result<(), SyncError> {
        let mut resend = Vec::new();
        for t in halted {
            match outcomes.get(&t.claimed.request_id) {
                Some(Outcome::Linked(links, _)) => {
                    let contact = links.contact.clone();
                    resend.push(with_contact(t, &contact));
                }
                Some(Outcome::Skipped(reason)) => {
                    self.store
                        .mark_skipped(&self.name, t.claimed, reason)
                        .await?;
                    self.count("skipped", 1);
                }
                _ => {}
            }
        }
        if !resend.is_empty() {
            sent.extend(self.send(resend).await);
        }
        Ok(())
    }
}

/// `@{nc[3].id}` or `@{nc3.id}` → 3.
fn index(reference: &str) -> Option<usize> {
    let rest = reference.strip_prefix(&format!("@{{{CONTACTS}"))?;
    let digits = rest.strip_prefix('[').unwrap_or(rest);
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// The composite's subrequests: the Contacts' creation first (if any), then the
/// upserts, ready records before those that wait for a new Contact, in
/// chunks of their own unless `merge` (a ride needs the room: a refused
/// Contact then halts its chunk's ready records too, and they are sent
/// again by themselves); with the chunks each upsert carries (and whether
/// any waits).
#[allow(clippy::type_complexity)]
fn subrequests<'a>(
    new: &[NewContact],
    headers: &[(&str, &str)],
    send: Vec<ToSend<'a>>,
    merge: bool,
) -> (Vec<Subrequest>, Vec<(bool, Vec<ToSend<'a>>)>) {
    let (waiting, ready): (Vec<_>, Vec<_>) = send.into_iter().partition(|t| waits(t));
    let mut subs = creation(new, headers, one_by_one(&waiting));
    let groups = if merge {
        vec![ready.into_iter().chain(waiting).collect()]
    } else {
        vec![ready, waiting]
    };
    let mut chunks: Vec<(bool, Vec<ToSend<'a>>)> = Vec::new();
    for mut group in groups {
        while !group.is_empty() {
            let chunk: Vec<_> = group.drain(..group.len().min(COLLECTION_LIMIT)).collect();
            subs.push(upsert(format!("u{}", chunks.len()), &chunk));
            chunks.push((chunk.iter().any(waits), chunk));
        }
    }
    (subs, chunks)
}

/// Whether the waiting records name their Contacts one subrequest each.
fn one_by_one(send: &[ToSend]) -> bool {
    send.iter()
        .any(|t| waits(t) && !t.links.contact.contains('['))
}

/// The subrequests that make the new Contacts: one Collections create
/// (`nc`), or one `POST sobjects/Contact` each (`nc0`, `nc1`, ...).
fn creation(new: &[NewContact], headers: &[(&str, &str)], one_by_one: bool) -> Vec<Subrequest> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if new.is_empty() {
        return Vec::new();
    }
    if !one_by_one {
        let records: Vec<_> = new.iter().map(resolve_io::contact_record).collect();
        return vec![Subrequest {
            method: Method::POST,
            path: "composite/sobjects".into(),
            reference_id: CONTACTS.into(),
            body: Some(json!({"allOrNone": false, "records": records})),
            headers,
        }];
    }
    new.iter()
        .enumerate()
        .map(|(i, c)| {
            let mut body = resolve_io::contact_record(c);
            if let Some(o) = body.as_object_mut() {
                o.remove("attributes");
            }
            Subrequest {
                method: Method::POST,
                path: "sobjects/Contact".into(),
                reference_id: format!("{CONTACTS}{i}"),
                body: Some(body),
                headers: headers.clone(),
            }
        })
        .collect()
}

/// A single create's answer as a Collections item.
fn as_record_result(answer: SubResult) -> RecordResult {
    match answer.into_result() {
        Ok(body) => RecordResult {
            id: body.get("id").and_then(Value::as_str).map(str::to_string),
            success: true,
            created: Some(true),
            errors: Vec::new(),
        },
        Err(e) => {
            let (code, message, fields) = match e {
                salesforce::Error::Api(a) => (a.code, a.message, a.fields),
                e => ("UNKNOWN".to_string(), e.to_string(), Vec::new()),
            };
            RecordResult {
                id: None,
                success: false,
                created: None,
                errors: vec![salesforce::RecordError {
                    status_code: code,
                    message,
                    fields,
                }],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mapping::Links;
    use crate::domain::resolve::How;
    use crate::domain::snapshot::Snapshot;
    use crate::domain::time::Ts;
    use crate::store::queue::Claimed;

    fn to_send<'a>(c: &'a Claimed, contact: &str) -> ToSend<'a> {
        ToSend {
            claimed: c,
            links: Links {
                contact: contact.into(),
                account: "001A".into(),
            },
            how: How::Reused,
            record: json!({"Requestor__c": contact}),
            hash: String::new(),
        }
    }

    /// A real org refuses a composite call with more than five Collections
    /// or queries (the emulator too: `api.rs`); a ride goes only within them.
    #[test]
    fn a_ride_fits_within_five_collections_or_queries() {
        let c = Claimed {
            request_id: "R".into(),
            snapshot: Snapshot::new("R".into(), Ts(0), Ts(0)),
            version: 1,
            attempts: 0,
            enqueued_at_ms: 0,
            claimed_at_ms: 0,
        };
        let ready = || to_send(&c, "003A");
        assert!(fits(&[ready()], false, 4), "one upsert and four queries");
        assert!(!fits(&[ready()], false, 5), "six");
        let one = || to_send(&c, &placeholder_one(0));
        assert!(
            fits(&[ready(), one()], true, 4),
            "Contacts one subrequest each, and one shared upsert"
        );
        let many = || to_send(&c, &placeholder(0));
        assert!(
            !fits(&[ready(), many()], true, 4),
            "a Collections create leaves room for three queries"
        );
        assert!(fits(&[ready(), many()], true, 3));
        assert!(
            fits(&[ready(), many()], true, 0),
            "no ride: the create and two upserts"
        );
    }

    #[test]
    fn placeholders_name_their_contact() {
        assert_eq!(placeholder(3), "@{nc[3].id}");
        assert_eq!(index(&placeholder(17)), Some(17));
        assert_eq!(placeholder_one(3), "@{nc3.id}");
        assert_eq!(index(&placeholder_one(11)), Some(11));
        assert_eq!(index("003000000000001AAA"), None);
    }
}
