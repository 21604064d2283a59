//! Lookups that ride along: the requests a step leaves for the next one
//! (young, their requestors not yet looked up: [`plan::may_wait`]) have
//! their queries sent in this step's write, one `POST /composite` for both
//! (`together.rs`). The next step finds them in the resolver's memory and
//! only writes: a step with new people costs one call, not a lookup call
//! and a write call. When they do not fit in the write (five queries or
//! Collections per composite), or nothing is written, they are asked by
//! themselves.
//!
//! [`plan::may_wait`]: crate::sync::plan::may_wait

use std::collections::{HashMap, HashSet};

use salesforce::composite::SubResult;
use tracing::warn;

use super::step::requests_of;
use super::Worker;
use crate::store::queue::{Claimed, RequestState};
use crate::sync::resolve_io::{self, Prepared};

/// The lookups of the requests a step left for the next one.
pub(super) struct Ride {
    prepared: Prepared,
    /// The requests (and versions) they are for.
    requests: HashSet<(String, i64)>,
}

impl Ride {
    /// Queries the ride adds to a call.
    pub(super) fn queries(&self) -> usize {
        self.prepared.soql().len()
    }

    pub(super) fn soql(&self) -> &[String] {
        self.prepared.soql()
    }
}

impl Worker {
    /// The lookups of the requests of `batch` named in `left`, planned (none
    /// when there is nothing to ask).
    pub(super) async fn ride(
        &mut self,
        batch: &[Claimed],
        states: &HashMap<String, RequestState>,
        left: &[String],
    ) -> Option<Ride> {
        if left.is_empty() {
            return None;
        }
        let left: HashSet<&String> = left.iter().collect();
        let claimed: Vec<Claimed> = batch
            .iter()
            .filter(|c| left.contains(&c.request_id))
            .cloned()
            .collect();
        let requests = requests_of(&claimed, states);
        let public = self.settings.public_domains.clone();
        let prepared = resolve_io::prepare(&self.client, requests, public, &mut self.cache)
            .await
            .ok()?;
        let requests = claimed
            .iter()
            .map(|c| (c.request_id.clone(), c.version))
            .collect();
        Some(Ride { prepared, requests })
    }

    /// Asks a ride's queries by themselves (they did not fit in the write).
    pub(super) async fn ride_alone(&mut self, ride: Option<Ride>) {
        let Some(ride) = ride else {
            return;
        };
        if ride.queries() == 0 {
            return self.ride_answered(ride, Vec::new()).await;
        }
        match self.client.query_many(ride.soql()).await {
            Ok(answers) => self.ride_answered(ride, answers).await,
            Err(e) => warn!(connection = %self.name, error = %e, "the next step's lookups failed"),
        }
    }

    /// Takes a ride's answers from the write's composite (one per query).
    pub(super) async fn ride_arrived(&mut self, ride: Ride, answers: Vec<SubResult>) {
        let mut rows = Vec::with_capacity(answers.len());
        for a in answers {
            rows.push(self.client.records(a).await);
        }
        self.ride_answered(ride, rows).await;
    }

    /// Remembers what the answers found (the next step's requestors): those
    /// requests are looked up. An error leaves them to their step.
    async fn ride_answered(
        &mut self,
        ride: Ride,
        answers: Vec<Result<Vec<serde_json::Map<String, serde_json::Value>>, salesforce::Error>>,
    ) {
        let looked = ride
            .prepared
            .answered(&self.client, &mut self.cache, answers)
            .await;
        match looked {
            Ok(looked) => {
                looked.finish(&mut self.cache, &HashMap::new());
                self.warmed = ride.requests;
            }
            Err(e) => warn!(connection = %self.name, error = %e, "the next step's lookups failed"),
        }
    }
}
