//! What a step does with its claimed requests, decided without I/O: each
//! resolved request becomes a record to send, or an unchanged one (written
//! exactly so before: marked synced without a call), or a skip with its
//! reason. Requests the resolver left undecided wait for the next step.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::domain::mapping::{self, Lengths, Links};
use crate::domain::resolve::{How, Outcome};
use crate::provision::schema;
use crate::store::queue::{Claimed, RequestState, Synced};

/// A record to upsert.
pub struct ToSend<'a> {
    pub claimed: &'a Claimed,
    pub links: Links,
    /// How the requestor's Contact was found (for the activity's detail).
    pub how: How,
    pub record: Value,
    /// The record's content hash, stored once Salesforce took it.
    pub hash: String,
}

#[derive(Default)]
pub struct Plan<'a> {
    pub send: Vec<ToSend<'a>>,
    /// Written before exactly so: marked synced, not sent again.
    pub unchanged: Vec<Synced>,
    /// Requests with no Contact or Account, and why.
    pub skipped: Vec<(&'a Claimed, &'a str)>,
}

/// The content hash a record is compared by.
pub fn hash(v: &Value) -> String {
    crate::crypto::sha256_hex(v.to_string().as_bytes())
}

/// The requestor a synced request is remembered by: this snapshot's, else
/// the one stored with the request.
pub fn requestor_key(c: &Claimed, states: &HashMap<String, RequestState>) -> String {
    c.snapshot
        .requestor
        .set()
        .map(|p| p.key())
        .or_else(|| {
            states
                .get(&c.request_id)
                .and_then(|s| s.requestor_key.clone())
        })
        .unwrap_or_default()
}

/// The requests a step may leave for the next one, should their
/// requestors need Salesforce ([`crate::domain::resolve::Resolver::leave`]):
/// those that arrived less than `young_ms` ago and that the last warm did
/// not look up (`warmed`: request and version). A retry on demand is never
/// left.
pub fn may_wait(
    batch: &[Claimed],
    warmed: &HashSet<(String, i64)>,
    now_ms: i64,
    young_ms: i64,
) -> HashSet<String> {
    batch
        .iter()
        .filter(|c| c.attempts >= 0 && now_ms - c.enqueued_at_ms < young_ms)
        .filter(|c| !warmed.contains(&(c.request_id.clone(), c.version)))
        .map(|c| c.request_id.clone())
        .collect()
}

/// Decides what each claimed request of `batch` becomes.
pub fn plan<'a>(
    batch: &'a [Claimed],
    outcomes: &'a HashMap<String, Outcome>,
    states: &HashMap<String, RequestState>,
    categories: &HashMap<String, String>,
    lengths: &Lengths,
) -> Plan<'a> {
    let mut plan = Plan::default();
    for c in batch {
        match outcomes.get(&c.request_id) {
            Some(Outcome::Linked(links, how)) => {
                let mut rec = mapping::record(&c.snapshot, links, categories, lengths);
                rec.insert("attributes".into(), json!({"type": schema::OBJECT}));
                let record = Value::Object(rec);
                let h = hash(&record);
                let written = states
                    .get(&c.request_id)
                    .filter(|s| s.sent_hash.as_deref() == Some(h.as_str()))
                    .and_then(|s| s.sf_id.clone());
                match written {
                    Some(sf_id) => plan.unchanged.push(Synced {
                        claimed: c.clone(),
                        sf_id,
                        contact: links.contact.clone(),
                        account: links.account.clone(),
                        requestor_key: requestor_key(c, states),
                        sent_hash: h,
                        detail: "unchanged: not sent again".into(),
                    }),
                    None => plan.send.push(ToSend {
                        claimed: c,
                        links: links.clone(),
                        how: *how,
                        record,
                        hash: h,
                    }),
                }
            }
            Some(Outcome::Skipped(reason)) => plan.skipped.push((c, reason.as_str())),
            None => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::Snapshot;
    use crate::domain::time::Ts;

    fn claimed(id: &str, enqueued_at_ms: i64, attempts: i64) -> Claimed {
        Claimed {
            request_id: id.into(),
            snapshot: Snapshot::new(id.into(), Ts(0), Ts(0)),
            version: 1,
            attempts,
            enqueued_at_ms,
            claimed_at_ms: enqueued_at_ms,
        }
    }

    #[test]
    fn young_requests_not_yet_looked_up_may_wait_for_the_next_step() {
        let now = 10_000;
        let batch = [
            claimed("known", now - 300, 0),
            claimed("old", now - 200, 0),
            claimed("young", now - 50, 0),
            claimed("warmed", now - 40, 0),
            claimed("retry", now - 10, -1),
        ];
        let warmed = HashSet::from([("warmed".to_string(), 1)]);
        let left = may_wait(&batch, &warmed, now, 125);
        assert_eq!(left, HashSet::from(["young".to_string()]));
    }
}
