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

use std::collections::HashMap;

use salesforce::composite::{Subrequest, MAX_QUERIES};
use salesforce::{Method, RecordResult, COLLECTION_LIMIT};
use serde_json::{json, Value};
use tracing::warn;

use super::{SyncError, Worker};
use crate::domain::resolve::{NewContact, Outcome};
use crate::provision::schema;
use crate::sync::plan::{self, ToSend};
use crate::sync::resolve_io::{self, LookedUp};

const CONTACTS: &str = "nc";

/// The reference a record waiting for new Contact `i` carries.
pub(super) fn placeholder(i: usize) -> String {
    format!("@{{{CONTACTS}[{i}].id}}")
}

fn waits(t: &ToSend) -> bool {
    t.links.contact.starts_with("@{")
}

/// Whether the records can go with the new Contacts in one call: beside the
/// creation, at most four upsert calls of 200 (five Collections per
/// composite), and no text but the placeholders that reads as a reference.
pub(super) fn fits(send: &[ToSend]) -> bool {
    let waiting = send.iter().filter(|t| waits(t)).count();
    let chunks = |n: usize| n.div_ceil(COLLECTION_LIMIT);
    let calls = chunks(waiting) + chunks(send.len() - waiting);
    calls < MAX_QUERIES
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
    /// Sends the planned records and the new Contacts in one call; returns
    /// the records Salesforce answered for (new Contacts' ids in place)
    /// and every request's final outcome.
    pub(super) async fn send_together<'a>(
        &mut self,
        send: Vec<ToSend<'a>>,
        looked: LookedUp,
    ) -> Result<Vec<(ToSend<'a>, RecordResult)>, SyncError> {
        let new = looked.new_contacts().to_vec();
        let headers = resolve_io::creation_headers(self.settings.allow_duplicate_save);
        let (subs, chunks) = subrequests(&new, headers, send);
        let mut answers = self.client.composite(&subs, false).await?.into_iter();
        let made = answers
            .next()
            .expect("one answer per subrequest")
            .into_result();
        let contacts_answered = made.is_ok();
        let created = match made {
            Ok(body) => {
                let results = RecordResult::parse_list(&body, new.len())?;
                let allow = self.settings.allow_duplicate_save;
                resolve_io::created(&self.client, &new, &results, allow).await?
            }
            // The waiting records stay queued: the next step makes their Contacts.
            Err(e) => {
                warn!(connection = %self.name, error = %e, "new Contacts were not created");
                HashMap::new()
            }
        };
        let outcomes: HashMap<String, Outcome> = looked
            .finish(&mut self.cache, &created)
            .into_iter()
            .collect();
        let ids: Vec<Option<&String>> = new
            .iter()
            .map(|c| created.get(&c.key).and_then(|r| r.as_ref().ok()))
            .collect();
        let mut sent = Vec::new();
        let mut again = Vec::new();
        for ((wait, chunk), answer) in chunks.into_iter().zip(answers) {
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
        Ok(sent)
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

/// `@{nc[3].id}` → 3.
fn index(reference: &str) -> Option<usize> {
    reference
        .strip_prefix(&format!("@{{{CONTACTS}["))?
        .split(']')
        .next()?
        .parse()
        .ok()
}

/// The composite's subrequests: the Contacts' creation first, then the
/// upserts, ready records before those that wait for a new Contact; with
/// the chunks each upsert carries (and whether they wait).
#[allow(clippy::type_complexity)]
fn subrequests<'a>(
    new: &[NewContact],
    headers: &[(&str, &str)],
    send: Vec<ToSend<'a>>,
) -> (Vec<Subrequest>, Vec<(bool, Vec<ToSend<'a>>)>) {
    let (waiting, ready): (Vec<_>, Vec<_>) = send.into_iter().partition(|t| waits(t));
    let records: Vec<_> = new.iter().map(resolve_io::contact_record).collect();
    let mut subs = vec![Subrequest {
        method: Method::POST,
        path: "composite/sobjects".into(),
        reference_id: CONTACTS.into(),
        body: Some(json!({"allOrNone": false, "records": records})),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }];
    let mut chunks: Vec<(bool, Vec<ToSend<'a>>)> = Vec::new();
    for (wait, mut group) in [(false, ready), (true, waiting)] {
        while !group.is_empty() {
            let chunk: Vec<_> = group.drain(..group.len().min(COLLECTION_LIMIT)).collect();
            subs.push(upsert(format!("u{}", chunks.len()), &chunk));
            chunks.push((wait, chunk));
        }
    }
    (subs, chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_name_their_contact() {
        assert_eq!(placeholder(3), "@{nc[3].id}");
        assert_eq!(index(&placeholder(17)), Some(17));
        assert_eq!(index("003000000000001AAA"), None);
    }
}
