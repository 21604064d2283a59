//! Asking ahead: one batch's resolution queries sent together.
//!
//! The resolver's steps depend on each other: the domain step asks only for
//! the emails that found no Contact, and the workspace step only for what the
//! domain step left. Asked one after another, each step costs an API call.
//! Asked ahead, each step's query covers every open request, a superset of
//! what the step will ask. Up to five of them travel in one `POST /composite`
//! call, which counts as one API call ("Send Multiple Requests Using
//! Composite", REST API guide; see `sf-emulator/src/rest/composite.rs`).
//! The workspace Contacts are asked by their Accounts' names
//! (`Account.Name IN (...)`), since the Accounts' ids are not known yet.
//!
//! Each step takes its rows from here when they cover what it asks; otherwise
//! it asks Salesforce itself, as it did before: after a failed query, after
//! lists too long for one query, or for an Account the cache remembers under
//! a name it no longer has.

use std::collections::HashSet;
use std::time::Instant;

use salesforce::{Client, Error};
use serde_json::{Map, Value};

use super::domains::{person_accounts, scan_refused, search_from_now_on, DomainAnswer, LIKE_CHUNK};
use super::lookup::{
    account_row, contact_row, sized, sized_within, ListKind, IN_CHUNK, LIST_BYTES, WHERE_CHARS,
};
use crate::domain::resolve::{AccountRow, Cache, ContactRow, Resolver};

/// What was asked ahead for one batch.
#[derive(Default)]
pub struct Ahead {
    /// Contacts by email (not a guess: the email step asks exactly this).
    pub emails: Vec<ContactRow>,
    /// Contacts per Account at the domains of every open email.
    pub domains: Vec<DomainAnswer>,
    /// Accounts named like every open workspace: the workspaces (lowercased)
    /// and the rows.
    teams: Option<(HashSet<String>, Vec<AccountRow>)>,
    /// Contacts of every open requestor's name on those Accounts: the names
    /// (lowercased) and the rows.
    names: Option<(HashSet<String>, Vec<ContactRow>)>,
}

/// The queries of one batch's asking ahead, not yet answered: asked by
/// themselves ([`ask`]) or riding in a write's composite call (`sync::ride`).
pub struct Asking {
    soql: Vec<String>,
    emails: usize,
    domain_chunks: Vec<Vec<String>>,
    teams: Vec<String>,
    team_chunks: usize,
    names: Vec<String>,
    names_asked: bool,
}

/// Asks the email step's queries, and every later step's that can be known
/// now, in as few calls as the composite limits allow.
pub async fn ask(
    client: &Client,
    r: &Resolver,
    cache: &mut Cache,
    emails: &[String],
) -> Result<Ahead, Error> {
    let Some(asking) = prepare(client, r, cache, emails).await? else {
        return Ok(Ahead::default());
    };
    let answers = client.query_many(&asking.soql).await.inspect_err(|e| {
        // A call that carried a scan by domain and timed out: the scan is why.
        if asking.scans() && scan_refused(e) {
            search_from_now_on(cache);
        }
    })?;
    asking.read(answers, cache)
}

/// The queries asking ahead makes for this batch; `None` when the cache
/// knows all it would ask. May ask whether the org has person accounts
/// (once per worker).
pub async fn prepare(
    client: &Client,
    r: &Resolver,
    cache: &mut Cache,
    emails: &[String],
) -> Result<Option<Asking>, Error> {
    let now = Instant::now();
    let fresh = r.any_fresh();
    let domains: Vec<String> = if cache.search_domains {
        Vec::new()
    } else {
        r.domains_ahead()
            .into_iter()
            .filter(|d| fresh || cache.domain(d, now).is_none())
            .collect()
    };
    let names = r.names_ahead(cache);
    // Nothing the cache does not know: nothing to ask.
    if emails.is_empty() && domains.is_empty() && names.is_empty() && !r.any_team_unknown(cache) {
        return Ok(None);
    }
    let teams = r.teams_ahead();
    let person = if domains.is_empty() && teams.is_empty() {
        false
    } else {
        person_accounts(client, cache).await?
    };
    let email_q: Vec<String> = sized(emails, IN_CHUNK, ListKind::In)
        .iter()
        .filter_map(|c| Resolver::contacts_by_email_soql(c))
        .collect();
    let domain_chunks = sized(&domains, LIKE_CHUNK, ListKind::Like);
    let team_chunks = sized(&teams, IN_CHUNK, ListKind::In);
    let names_q = names_query(&teams, &names);
    let mut soql = email_q.clone();
    soql.extend(
        domain_chunks
            .iter()
            .filter_map(|c| Resolver::domain_counts_soql(c, person)),
    );
    soql.extend(
        team_chunks
            .iter()
            .filter_map(|c| Resolver::accounts_by_name_soql(c, person)),
    );
    let names_asked = names_q.is_some();
    soql.extend(names_q);
    Ok(Some(Asking {
        soql,
        emails: email_q.len(),
        domain_chunks,
        teams,
        team_chunks: team_chunks.len(),
        names,
        names_asked,
    }))
}

impl Asking {
    /// The queries, in the order [`Asking::read`] takes their answers.
    pub fn soql(&self) -> &[String] {
        &self.soql
    }

    /// Whether they scan Contacts by domain (a scan a large org may not
    /// answer in time).
    pub fn scans(&self) -> bool {
        !self.domain_chunks.is_empty()
    }

    /// What was asked, from the answers (one per query, in order).
    pub fn read(
        self,
        answers: Vec<Result<Vec<Map<String, Value>>, Error>>,
        cache: &mut Cache,
    ) -> Result<Ahead, Error> {
        let mut answers = answers.into_iter();
        let mut ahead = Ahead::default();
        for _ in 0..self.emails {
            let rows = answers.next().expect("one answer per query")?;
            ahead.emails.extend(rows.iter().map(contact_row));
        }
        for chunk in self.domain_chunks {
            let answer = answers.next().expect("one answer per query");
            if answer.is_ok() {
                cache.scans_answered = true;
            }
            ahead.domains.push((chunk, answer));
        }
        let team_rows: Result<Vec<_>, _> = (0..self.team_chunks)
            .map(|_| answers.next().expect("one answer per query"))
            .collect();
        if let Ok(rows) = team_rows {
            let rows = rows.iter().flatten().map(account_row).collect();
            ahead.teams = Some((lower(&self.teams), rows));
        }
        if let (true, Some(Ok(rows))) = (self.names_asked, answers.next()) {
            ahead.names = Some((lower(&self.names), rows.iter().map(contact_row).collect()));
        }
        Ok(ahead)
    }
}

/// The workspace Contacts' query, when each of its two lists fits half a
/// query's room (one query; more would rather wait for the Accounts' ids).
fn names_query(teams: &[String], names: &[String]) -> Option<String> {
    let half = (WHERE_CHARS / 2, LIST_BYTES / 2);
    let t = sized_within(teams, IN_CHUNK, ListKind::In, half);
    let n = sized_within(names, IN_CHUNK, ListKind::In, half);
    match (t.as_slice(), n.as_slice()) {
        ([t], [n]) if t.len() == teams.len() && n.len() == names.len() => {
            Resolver::contacts_by_team_and_name_soql(t, n)
        }
        _ => None,
    }
}

fn lower(values: &[String]) -> HashSet<String> {
    values.iter().map(|v| v.trim().to_lowercase()).collect()
}

impl Ahead {
    /// The Accounts named like `asked`, if asked ahead.
    pub fn teams_for(&self, asked: &[String]) -> Option<Vec<AccountRow>> {
        let (known, rows) = self.teams.as_ref()?;
        let asked = lower(asked);
        asked.is_subset(known).then(|| {
            rows.iter()
                .filter(|r| asked.contains(&r.name.trim().to_lowercase()))
                .cloned()
                .collect()
        })
    }

    /// The Contacts of `names` on `accounts`, if asked ahead: every name was
    /// asked and every Account is one the workspace query found by its name.
    pub fn names_for(&self, accounts: &[String], names: &[String]) -> Option<Vec<ContactRow>> {
        let (known, rows) = self.names.as_ref()?;
        let (_, team_rows) = self.teams.as_ref()?;
        let found: HashSet<&str> = team_rows.iter().map(|r| r.id.as_str()).collect();
        let names = lower(names);
        let covered = names.is_subset(known) && accounts.iter().all(|a| found.contains(a.as_str()));
        covered.then(|| {
            rows.iter()
                .filter(|r| r.account_id.as_ref().is_some_and(|a| accounts.contains(a)))
                .filter(|r| {
                    r.name
                        .as_ref()
                        .is_some_and(|n| names.contains(&n.trim().to_lowercase()))
                })
                .cloned()
                .collect()
        })
    }
}
