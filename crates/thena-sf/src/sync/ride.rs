//! Lookups riding in a write: the requestors of records too young to need
//! writing yet are looked up in the same `POST /composite` call that writes
//! the step's other records, so the next step writes them without a lookup
//! call of its own.
//!
//! Why: a record whose requestor is new needs a lookup and then a write,
//! both within the latency budget. Asked in a call of their own before each
//! step, lookups cost a call per step whenever new people arrive (most
//! steps, at everyday rates). Riding, the step's one call carries this
//! step's writes and the next step's lookups (docs/benchmarks.md, "What 100
//! events/s can reach", session 13; the composite's limits: at most five
//! subrequests that are queries or sObject Collections: "Send Multiple
//! Requests Using Composite", REST API guide,
//! https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html,
//! as `sf-emulator/src/rest/composite.rs` enforces it).
//!
//! A ride goes only when it fits beside the write, and never with a scan by
//! domain before the org has answered one (a large org answers a scan it
//! will refuse only after minutes, and the write would wait for it).

use std::time::Instant;

use salesforce::{Client, Error, SubResult, Subrequest};

use super::ahead::{self, Asking};
use super::resolve_io;
use crate::domain::resolve::{Cache, PublicDomains, Request, Resolver};

/// The lookups of the records left for the next step, ready to ride.
pub struct Ride {
    r: Resolver,
    now: Instant,
    asking: Asking,
}

/// The lookups `requests` need (`None`: the cache knows them all, or they
/// would scan an org that has not yet answered a scan).
pub async fn prepare(
    client: &Client,
    requests: Vec<Request>,
    public: PublicDomains,
    cache: &mut Cache,
) -> Result<Option<Ride>, Error> {
    let now = Instant::now();
    let r = Resolver::new(requests, public, cache, now);
    let emails = r.emails_to_look_up();
    let Some(asking) = ahead::prepare(client, &r, cache, &emails).await? else {
        return Ok(None);
    };
    if asking.scans() && !cache.scans_answered {
        return Ok(None);
    }
    Ok(Some(Ride { r, now, asking }))
}

impl Ride {
    /// Its queries as subrequests (`r0`, `r1`, ...).
    pub fn subrequests(&self) -> Vec<Subrequest> {
        self.asking
            .soql()
            .iter()
            .enumerate()
            .map(|(i, q)| Subrequest::query(format!("r{i}"), q))
            .collect()
    }

    /// How many subrequests it adds (all count among the composite's five
    /// queries or Collections).
    pub fn len(&self) -> usize {
        self.asking.soql().len()
    }

    /// Takes the answers (one per subrequest, in order) and resolves the
    /// riders as far as they go without creating Contacts: the cache
    /// remembers what was found, and the next step finds it there.
    pub async fn land(
        self,
        client: &Client,
        cache: &mut Cache,
        answers: Vec<SubResult>,
    ) -> Result<(), Error> {
        let mut rows = Vec::with_capacity(answers.len());
        for a in answers {
            rows.push(client.records(a).await);
        }
        let ahead = self.asking.read(rows, cache)?;
        let looked = resolve_io::after_ahead(client, self.r, cache, ahead, self.now).await?;
        looked.finish(cache, &Default::default());
        Ok(())
    }
}
