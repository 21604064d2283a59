//! One sync step: claim the due snapshots, look their requestors up and
//! resolve them, map, send (with new Contacts in the same call when they
//! fit), and record each record's answer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use salesforce::{Action, RecordResult};
use serde_json::Value;
use tracing::{info, warn};

use super::{now_ms, together, SyncError, Worker, CATEGORY_FIELDS_CEILING, PARALLEL_CALLS};
use crate::domain::mapping::{self, Lengths, Links};
use crate::domain::resolve::{Outcome, Request};
use crate::provision::{self, schema};
use crate::store::queue::{Claimed, RequestState, Synced};
use crate::store::StoreError;
use crate::sync::plan::{self, ToSend};
use crate::sync::results::{self, Verdict};
use crate::sync::{resolve_io, ride};

impl Worker {
    /// Claims the due snapshots and sends them; then the API usage and
    /// budget. One step, whatever the pace: tests drive a worker with it.
    pub async fn send_due(&mut self) {
        let limit = self.settings.claim.max(self.settings.batch) as i64;
        let batch = match self.store.due(&self.name, limit).await {
            Ok(b) => b,
            Err(e) => {
                warn!(connection = %self.name, error = %e, "cannot claim a batch");
                return;
            }
        };
        if batch.is_empty() {
            return;
        }
        self.step(&batch).await;
        self.metrics
            .set_api_calls(&self.name, self.calls_before + self.client.calls());
        if let Some(u) = self.client.api_usage() {
            self.metrics.set_usage(&self.name, u.used, u.max);
        }
        self.check_budget().await;
    }

    /// Sends one claimed batch, within a `batch` span, and logs what came of it.
    pub(super) async fn step(&mut self, batch: &[Claimed]) {
        use tracing::Instrument;
        let started = Instant::now();
        let calls = self.client.calls();
        let describing = self.client.describing();
        self.tally = results::Tally::default();
        self.answered = None;
        let span = tracing::info_span!("batch", connection = %self.name, records = batch.len());
        async {
            match self.process(batch).await {
                Ok(()) => {}
                Err(SyncError::Salesforce(e)) => self.on_call_error(batch, e).await,
                // Its records stay queued as they are: the next step reads them again.
                Err(SyncError::Store(e)) => {
                    warn!(connection = %self.name, error = %e, "the store failed during a step; its records stay queued");
                    self.wait(Duration::from_secs(1)).await;
                }
                // As a call that cannot succeed: retried a few times, then dead letters.
                Err(SyncError::Setup(text)) => {
                    self.on_call_error(batch, salesforce::Error::Protocol(text))
                        .await
                }
            }
        }
        .instrument(span.clone())
        .await;
        let took = started.elapsed();
        // The pace allows for the time until the write is in Salesforce
        // (what the budget bounds), not for recording it afterwards, nor
        // for describes: a connection's first step and one after a
        // re-provision make them, the steps the pace plans for do not.
        let (described, describe_took) = self.client.describing();
        let to_write = self.answered.map_or(took, |(at, _)| at - started);
        self.pace.step_took(
            to_write.saturating_sub(describe_took - describing.1),
            self.client.calls() - calls - (described - describing.0),
        );
        let t = self.tally;
        span.in_scope(|| {
            info!(
                connection = %self.name,
                records = batch.len(),
                synced = t.synced,
                unchanged = t.unchanged,
                skipped = t.skipped,
                failed = t.failed,
                retried = t.retried(batch.len()),
                calls = self.client.calls() - calls,
                ms = took.as_millis() as u64,
                to_write_ms = to_write.as_millis() as u64,
                "batch done"
            )
        });
    }

    /// Counts `n` records of a step's `outcome` ("synced", "skipped", "failed").
    pub(super) fn count(&mut self, outcome: &str, n: u64) {
        match outcome {
            "synced" => self.tally.synced += n,
            "skipped" => self.tally.skipped += n,
            "failed" => self.tally.failed += n,
            _ => {}
        }
        self.metrics.outcome(&self.name, outcome, n);
    }

    /// Before a step, when a requestor too old to wait for the next step
    /// needs Salesforce, the queue's new requestors are looked up, all in
    /// one go (their Contacts are made in the step's write; otherwise their
    /// lookups ride in that write, `sync::ride`): the step that sends them
    /// then finds them in the resolver's memory and makes only its upserts,
    /// so its time, which the wait must leave room for, stays one call's.
    /// Whether it ran (false: nothing arrived since the last one, or no
    /// old requestor needs Salesforce).
    pub(super) async fn warm(&mut self) -> bool {
        let seen = self.arrivals.load(Ordering::Relaxed);
        if self.warmed_at == Some(seen) {
            return false;
        }
        self.warmed_at = Some(seen);
        let Ok(batch) = self.store.due(&self.name, self.settings.claim as i64).await else {
            return true;
        };
        // A retry on demand asks afresh in its own step, once.
        let batch: Vec<Claimed> = batch.into_iter().filter(|c| c.attempts >= 0).collect();
        let Ok(states) = self.states(&batch).await else {
            return true;
        };
        let requests = requests_of(&batch, &states);
        let public = self.settings.public_domains.clone();
        // Only when a record too old to wait for the next step needs
        // Salesforce: the younger ones' lookups ride in this step's write.
        let ride_ms = self.pace.ride_limit().map_or(0, |l| l.as_millis() as i64);
        let now = now_ms();
        let asking = resolve_io::asking(requests.clone(), public.clone(), &self.cache);
        let old = |c: &Claimed| now - c.enqueued_at_ms >= ride_ms && asking.contains(&c.request_id);
        if !batch.iter().any(old) {
            return false;
        }
        self.warmed = batch
            .iter()
            .map(|c| (c.request_id.clone(), c.version))
            .collect();
        // Looked up only: the step makes the new Contacts in its write. An
        // error here meets the step again, which handles it.
        let none = std::collections::HashSet::new();
        if let Ok(looked) =
            resolve_io::look_up(&self.client, requests, public, &mut self.cache, &none).await
        {
            looked.finish(&mut self.cache, &HashMap::new());
        }
        true
    }

    /// The stored state of each claimed request.
    pub(super) async fn states(
        &self,
        batch: &[Claimed],
    ) -> Result<HashMap<String, RequestState>, StoreError> {
        let ids: Vec<String> = batch.iter().map(|c| c.request_id.clone()).collect();
        Ok(self
            .store
            .request_states(&self.name, &ids)
            .await?
            .into_iter()
            .map(|s| (s.request_id.clone(), s))
            .collect())
    }

    /// One step: read the requests' state, resolve, plan, send, record.
    pub(super) async fn process(&mut self, batch: &[Claimed]) -> Result<(), SyncError> {
        let states = self.states(batch).await?;
        // Records whose requestors need Salesforce and that are young
        // enough to wait for the next step are left for it: their lookups
        // ride in this step's write, and the next step only writes them.
        let (may_wait, ride) = self.riders(batch, &states).await;
        let public = self.settings.public_domains.clone();
        let requests = requests_of(batch, &states);
        let looked =
            resolve_io::look_up(&self.client, requests, public, &mut self.cache, &may_wait).await?;
        let riders: HashSet<String> = looked.left().iter().cloned().collect();
        self.looked_until_ms = looked_until(batch, &riders, false);
        // New Contacts go in the records' upsert call when they can.
        let (outcomes, mut pending) = if looked.new_contacts().is_empty() {
            (looked.finish(&mut self.cache, &HashMap::new()), None)
        } else {
            // Made one subrequest each when lookups ride: room for them.
            let one_by_one = ride.is_some() && looked.new_contacts().len() <= together::ONE_BY_ONE;
            let name = if one_by_one {
                together::placeholder_one
            } else {
                together::placeholder
            };
            (looked.provisional(name), Some(looked))
        };
        let outcomes: HashMap<String, Outcome> = outcomes.into_iter().collect();
        let (categories, unmapped) = self.category_fields(batch, &outcomes).await?;
        let lengths = self.lengths().await?;
        let first = plan::plan(batch, &outcomes, &states, &categories, &lengths);
        let created_first: HashMap<String, Outcome>;
        let riding = ride.as_ref().map_or(0, ride::Ride::len);
        let plan = match pending.take_if(|_| !together::fits(&first.send, true, riding)) {
            None => first,
            // Too large (with the ride), or text Salesforce would read as a
            // reference: the Contacts are made first, as their own call.
            Some(looked) => {
                drop(first);
                created_first = self.create_then_finish(looked).await?;
                plan::plan(batch, &created_first, &states, &categories, &lengths)
            }
        };
        // Records with nothing to send (unchanged since the last write, or
        // skipped) are recorded after the write, off its path.
        let plan::Plan {
            send,
            unchanged,
            skipped,
        } = plan;
        let contacts = pending.is_some();
        let ride = ride.filter(|r| !riders.is_empty() && together::fits(&send, contacts, r.len()));
        let (sent, landed) = match (pending, ride) {
            _ if send.is_empty() => (Vec::new(), false),
            (None, None) => (self.send(send).await, false),
            (looked, ride) => self.send_together(send, looked, ride).await?,
        };
        if !sent.is_empty() {
            self.answered = Some((Instant::now(), now_ms()));
        }
        if landed {
            self.looked_until_ms = looked_until(batch, &riders, true);
        }
        if !skipped.is_empty() {
            self.store.mark_skipped_many(&self.name, &skipped).await?;
            self.count("skipped", skipped.len() as u64);
        }
        self.tally.unchanged += unchanged.len() as u64;
        self.record(sent, unchanged, &states, &unmapped).await
    }

    /// The records that may wait for the next step, and the lookups that
    /// ride for them in this step's write: none when those would not fit
    /// beside the write (they are then looked up now, with the others).
    async fn riders(
        &mut self,
        batch: &[Claimed],
        states: &HashMap<String, RequestState>,
    ) -> (HashSet<String>, Option<ride::Ride>) {
        // Without a ride, the young wait for the next step's warm, as the
        // records that came since the last one.
        let young_ms = (self.settings.latency_budget / 4).as_millis() as i64;
        let young = plan::may_wait(batch, &self.warmed, now_ms(), young_ms);
        let Some(limit) = self.pace.ride_limit() else {
            return (young, None);
        };
        let may_ride = plan::may_wait(batch, &self.warmed, now_ms(), limit.as_millis() as i64);
        let public = self.settings.public_domains.clone();
        let requests = requests_of(batch, states);
        let left = resolve_io::leaving(requests.clone(), public.clone(), &self.cache, &may_ride);
        if left.is_empty() {
            return (young, None);
        }
        let left: HashSet<String> = left.into_iter().collect();
        let requests = requests
            .into_iter()
            .filter(|r| left.contains(&r.request_id))
            .collect();
        let prepared = ride::prepare(&self.client, requests, public, &mut self.cache).await;
        // The write's upserts, at most (new Contacts, if any, are made
        // first when the ride leaves them no room).
        let upserts = (batch.len() - left.len()).div_ceil(salesforce::COLLECTION_LIMIT);
        match prepared.ok().flatten() {
            Some(r) if upserts + r.len() <= salesforce::composite::MAX_QUERIES => {
                (may_ride, Some(r))
            }
            _ => (young, None),
        }
    }

    /// The outcomes of a looked-up batch, its new Contacts created first
    /// by their own call.
    pub(super) async fn create_then_finish(
        &mut self,
        looked: resolve_io::LookedUp,
    ) -> Result<HashMap<String, Outcome>, SyncError> {
        let new = looked.new_contacts().to_vec();
        let allow = self.settings.allow_duplicate_save;
        let created = resolve_io::create_contacts(&self.client, &new, allow).await?;
        Ok(looked
            .finish(&mut self.cache, &created)
            .into_iter()
            .collect())
    }

    /// The length of each text field of `Request__c`, from its (cached) describe.
    pub(super) async fn lengths(&self) -> Result<Lengths, salesforce::Error> {
        let describe = self.client.describe(schema::OBJECT).await?;
        Ok(Lengths(
            describe
                .fields
                .iter()
                .filter(|f| f.field_type != "reference" && f.field_type != "picklist")
                // An auto-number Name is the org's to set (Lengths::names_records).
                .filter(|f| f.name != "Name" || f.createable)
                .map(|f| (f.name.clone(), f.length))
                .collect(),
        ))
    }

    /// One Collections call per 200 records, a few at once; a failed call
    /// affects only its own records. Failed calls are handled once per kind
    /// of failure, not once per call: chunks sent together often fail
    /// together (a schema error re-provisions once, an expired session
    /// pauses once). The records Salesforce answered for, with the answers.
    pub(super) async fn send<'a>(
        &mut self,
        to_send: Vec<ToSend<'a>>,
    ) -> Vec<(ToSend<'a>, RecordResult)> {
        let mut chunks: Vec<Vec<_>> = Vec::new();
        let mut rest = to_send;
        while !rest.is_empty() {
            chunks.push(
                rest.drain(..rest.len().min(salesforce::COLLECTION_LIMIT))
                    .collect(),
            );
        }
        let answers = self.upsert_chunks(&chunks).await;
        let mut sent = Vec::new();
        let mut failed: Vec<(Action, salesforce::Error, Vec<Claimed>)> = Vec::new();
        for (chunk, answer) in chunks.into_iter().zip(answers) {
            match answer {
                Ok(results) => sent.extend(chunk.into_iter().zip(results)),
                Err(e) => {
                    let claimed = chunk.iter().map(|t| t.claimed.clone());
                    match failed.iter_mut().find(|f| f.0 == e.action()) {
                        Some(f) => f.2.extend(claimed),
                        None => failed.push((e.action(), e, claimed.collect())),
                    }
                }
            }
        }
        for (_, e, claimed) in failed {
            self.on_call_error(&claimed, e).await;
        }
        sent
    }

    /// Upserts each chunk (at most [`PARALLEL_CALLS`] calls in flight);
    /// the answers in the chunks' order.
    pub(super) async fn upsert_chunks(
        &mut self,
        chunks: &[Vec<ToSend<'_>>],
    ) -> Vec<Result<Vec<salesforce::RecordResult>, salesforce::Error>> {
        let mut answers: Vec<Option<_>> = (0..chunks.len()).map(|_| None).collect();
        let mut calls = tokio::task::JoinSet::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if calls.len() >= PARALLEL_CALLS {
                if let Some(Ok((j, a))) = calls.join_next().await {
                    answers[j] = Some(a);
                }
            }
            let records: Vec<Value> = chunk.iter().map(|t| t.record.clone()).collect();
            let client = self.client.clone();
            // Spawned calls stay inside the step's `batch` span.
            let call = async move {
                let a = client
                    .upsert_many(schema::OBJECT, schema::EXTERNAL_ID, &records)
                    .await;
                (i, a)
            };
            calls.spawn(tracing::Instrument::in_current_span(call));
        }
        while let Some(joined) = calls.join_next().await {
            if let Ok((j, a)) = joined {
                answers[j] = Some(a);
            }
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(salesforce::Error::Protocol("the call's task ended".into()))
                })
            })
            .collect()
    }

    /// Acts on each record's answer; the synced ones are stored in one transaction.
    pub(super) async fn record(
        &mut self,
        sent: Vec<(ToSend<'_>, RecordResult)>,
        unchanged: Vec<Synced>,
        states: &HashMap<String, RequestState>,
        unmapped: &HashMap<String, Vec<String>>,
    ) -> Result<(), SyncError> {
        let mut reprovision = false;
        let mut synced = Vec::with_capacity(sent.len());
        for (t, res) in sent {
            let c = t.claimed;
            let (verdict, first) = results::verdict(&res, c.attempts, self.settings.max_attempts);
            let text = format!("{}: {}", first.status_code, first.message);
            match verdict {
                Verdict::Synced { created } => synced.push(Synced {
                    claimed: c.clone(),
                    sf_id: res.id.clone().unwrap_or_default(),
                    contact: t.links.contact.clone(),
                    account: t.links.account.clone(),
                    requestor_key: plan::requestor_key(c, states),
                    sent_hash: t.hash,
                    detail: results::synced_detail(
                        created,
                        t.how,
                        unmapped.get(&c.request_id).map(Vec::as_slice),
                        &mapping::rejected_links(&c.snapshot),
                    ),
                }),
                Verdict::Relink => {
                    // The linked Contact or Account is gone: forget it and resolve again.
                    if let Some(e) = c.snapshot.requestor.set().and_then(|p| p.email.clone()) {
                        self.cache.forget_person(&e);
                    }
                    self.cache.forget_links(&t.links);
                    let _ = self.store.forget_link(&self.name, &c.request_id).await;
                    self.store.retry_later(&self.name, c, 0, &text).await?
                }
                Verdict::Retry => {
                    let after = self.backoff(c.attempts);
                    self.store.retry_later(&self.name, c, after, &text).await?
                }
                Verdict::Reprovision => {
                    reprovision = true;
                    let after = self.backoff(c.attempts.min(2));
                    self.store.retry_later(&self.name, c, after, &text).await?
                }
                Verdict::DeadLetter => {
                    warn!(
                        connection = %self.name,
                        request = %c.request_id,
                        code = %first.status_code,
                        error = %first.message,
                        "Salesforce refused a record for good: dead letter"
                    );
                    self.count("failed", 1);
                    self.store
                        .dead_letter(
                            &self.name,
                            c,
                            &first.status_code,
                            &first.message,
                            &first.fields,
                        )
                        .await?
                }
            }
        }
        let settled = synced.len();
        synced.extend(unchanged);
        self.store.mark_synced_many(&self.name, &synced).await?;
        self.written(&synced[..settled]);
        if reprovision {
            self.reprovision().await;
        }
        Ok(())
    }

    /// Counts the records written, and how long each waited since its
    /// acknowledgement (the metric; the oldest for the pace).
    fn written(&mut self, synced: &[Synced]) {
        self.count("synced", synced.len() as u64);
        let now = self.answered.map_or_else(now_ms, |(_, ms)| ms);
        let mut oldest = 0;
        for s in synced {
            let waited = (now - s.claimed.enqueued_at_ms).max(0) as u64;
            self.metrics.latency(waited);
            oldest = oldest.max(waited);
        }
        if !synced.is_empty() {
            self.pace.wrote(Duration::from_millis(oldest));
        }
    }

    /// Fields for the categories of the records that will be sent (never for
    /// skipped ones), within the per-event and per-connection caps; what is
    /// over them is returned per request, to be noted on its activity.
    pub(super) async fn category_fields(
        &mut self,
        batch: &[Claimed],
        outcomes: &HashMap<String, Outcome>,
    ) -> Result<(HashMap<String, String>, HashMap<String, Vec<String>>), SyncError> {
        let per_event = self.settings.max_categories_per_event;
        let sent = |c: &&Claimed| matches!(outcomes.get(&c.request_id), Some(Outcome::Linked(..)));
        let mut names: Vec<String> = batch
            .iter()
            .filter(sent)
            .flat_map(|c| c.snapshot.category_names().into_iter().take(per_event))
            .collect();
        names.sort();
        names.dedup();
        let categories: HashMap<String, String> = if names.is_empty() {
            HashMap::new()
        } else {
            let cap = self
                .settings
                .max_category_fields
                .min(CATEGORY_FIELDS_CEILING);
            match provision::ensure_categories(
                &self.client,
                &self.store,
                &self.name,
                &self.user_id,
                &names,
                cap,
            )
            .await
            {
                Ok(m) => m.into_iter().collect(),
                Err(crate::Error::Salesforce(e)) => return Err(e.into()),
                Err(crate::Error::Provision(provision::ProvisionError::Salesforce(e))) => {
                    return Err(e.into())
                }
                Err(crate::Error::Store(e)) => return Err(e.into()),
                Err(e) => {
                    warn!(connection = %self.name, error = %e, "category fields could not be created");
                    return Err(SyncError::Setup(e.to_string()));
                }
            }
        };
        let unmapped = batch
            .iter()
            .filter(sent)
            .filter_map(|c| {
                let over: Vec<String> = c
                    .snapshot
                    .category_names()
                    .into_iter()
                    .filter(|n| !categories.contains_key(n))
                    .collect();
                (!over.is_empty()).then(|| (c.request_id.clone(), over))
            })
            .collect();
        Ok((categories, unmapped))
    }
}

/// The latest acknowledgement time of `batch` whose requestors are looked
/// up: all of them once the riders' lookups landed (or when none rode);
/// otherwise just before the oldest rider's.
fn looked_until(batch: &[Claimed], riders: &HashSet<String>, landed: bool) -> i64 {
    let latest = batch.iter().map(|c| c.enqueued_at_ms).max().unwrap_or(0);
    if landed || riders.is_empty() {
        return latest;
    }
    batch
        .iter()
        .filter(|c| riders.contains(&c.request_id))
        .map(|c| c.enqueued_at_ms - 1)
        .min()
        .unwrap_or(latest)
}

/// What the resolver needs of each claimed request.
pub(super) fn requests_of(
    batch: &[Claimed],
    states: &HashMap<String, RequestState>,
) -> Vec<Request> {
    batch
        .iter()
        .map(|c| {
            let previous = states.get(&c.request_id).and_then(|s| {
                Some((
                    s.requestor_key.clone()?,
                    Links {
                        contact: s.contact_id.clone()?,
                        account: s.account_id.clone()?,
                    },
                ))
            });
            Request {
                request_id: c.request_id.clone(),
                requestor: c.snapshot.requestor.set().cloned(),
                team_name: c.snapshot.team_name.set().cloned(),
                previous,
                fresh: c.attempts < 0,
            }
        })
        .collect()
}
