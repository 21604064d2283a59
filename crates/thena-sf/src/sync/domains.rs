//! The company-domain step against Salesforce: which Account each email
//! domain belongs to (the most Contacts there; ties to the oldest Account).
//!
//! New domains are counted by one grouped aggregate per 100 domains (one row
//! per Account however many Contacts match; see
//! [`Resolver::domain_counts_soql`] for how a row is told to a domain). On
//! an org too large to scan (`QUERY_TIMEOUT`: a leading-wildcard LIKE uses
//! no index, salesforce-api.md §9.5) domains are found by SOSL instead, 20
//! per search, from then on. Answers are remembered across batches
//! (bounded, expiring); a person's retry asks afresh. Person accounts are
//! never a company (§9.7).

use std::collections::HashMap;
use std::time::Instant;

use salesforce::{Client, Error};
use serde_json::{Map, Value};

use super::lookup::{contact_row, sized, text, ListKind};
use crate::domain::resolve::{domain_of, Cache, ContactRow, DomainCounts, Resolver};

/// Domains per aggregate query (each an `Email LIKE` clause; the list is
/// also sized to fit a real org's request line).
pub(super) const LIKE_CHUNK: usize = 100;

/// Domains per SOSL search (each a quoted phrase; FIND text stays far
/// under its 4,000-character limit, salesforce-api.md §9.4).
const SEARCH_CHUNK: usize = 20;

/// One domain aggregate asked ahead (`ahead.rs`): its domains and its rows
/// (or error).
pub type DomainAnswer = (Vec<String>, Result<Vec<Map<String, Value>>, Error>);

/// Whether the org has person accounts: Account's describe, once per worker.
pub async fn person_accounts(client: &Client, cache: &mut Cache) -> Result<bool, Error> {
    if let Some(p) = cache.person_accounts {
        return Ok(p);
    }
    let d = client.describe("Account").await?;
    let has = d.fields.iter().any(|f| f.name == "IsPersonAccount");
    cache.person_accounts = Some(has);
    Ok(has)
}

/// The Account of each domain that has one.
pub async fn accounts(
    client: &Client,
    domains: &[String],
    cache: &mut Cache,
    fresh: bool,
    ahead: &[DomainAnswer],
) -> Result<HashMap<String, String>, Error> {
    let now = Instant::now();
    let mut found = HashMap::new();
    let mut ask = Vec::new();
    for d in domains {
        match cache.domain(d, now).filter(|_| !fresh) {
            Some(Some(a)) => {
                found.insert(d.clone(), a);
            }
            Some(None) => {}
            None => ask.push(d.clone()),
        }
    }
    if ask.is_empty() {
        return Ok(found);
    }
    let person = person_accounts(client, cache).await?;
    let counts = counts(client, &ask, cache, person, ahead).await?;
    let tied = Resolver::tied_accounts(&counts);
    let mut created = HashMap::new();
    if let Some(q) = salesforce::soql::in_list("Id", &tied) {
        for m in client
            .query(&format!("SELECT Id, CreatedDate FROM Account WHERE {q}"))
            .await?
        {
            if let (Some(id), Some(c)) = (text(&m, "Id"), text(&m, "CreatedDate")) {
                created.insert(id, c);
            }
        }
    }
    let best = Resolver::best_by_domain(&counts, &created);
    for d in &ask {
        cache.remember_domain(d, best.get(d).map(String::as_str), now);
    }
    found.extend(best);
    Ok(found)
}

/// One grouped aggregate: Contacts per Account at each domain, and the
/// domains whose rows could not be told apart (an Account with Contacts at
/// two of them: its lowest and highest emails are at different domains).
async fn aggregate(
    client: &Client,
    domains: &[String],
    person: bool,
) -> Result<(DomainCounts, Vec<String>), Error> {
    let Some(q) = Resolver::domain_counts_soql(domains, person) else {
        return Ok((DomainCounts::new(), Vec::new()));
    };
    Ok(tally(&client.query(&q).await?, domains))
}

/// An aggregate's rows as counts per domain, and the mixed domains.
fn tally(rows: &[Map<String, Value>], domains: &[String]) -> (DomainCounts, Vec<String>) {
    let mut counts = DomainCounts::new();
    let mut mixed = std::collections::BTreeSet::new();
    for m in rows {
        let (Some(account), Some(n)) = (text(m, "AccountId"), m.get("n").and_then(Value::as_u64))
        else {
            continue;
        };
        let lo = text(m, "lo").as_deref().and_then(domain_of);
        let hi = text(m, "hi").as_deref().and_then(domain_of);
        match (lo, hi) {
            (Some(l), Some(h)) if l == h && domains.contains(&l) => {
                *counts.entry(l).or_default().entry(account).or_default() += n as usize;
            }
            (Some(l), Some(h)) if l == h => {}
            (l, h) if domains.len() > 1 => {
                mixed.extend(l.into_iter().chain(h).filter(|d| domains.contains(d)));
            }
            _ => {}
        }
    }
    (counts, mixed.into_iter().collect())
}

/// Whether the org would not scan its Contacts by domain: it answered
/// `QUERY_TIMEOUT`, or nothing within the client's timeout. A real org may
/// run a scan for about two minutes before it says `QUERY_TIMEOUT`
/// (salesforce-api.md §9.5, "Timeouts"), longer than the client waits; read
/// as anything else, the same scan would be asked again and time out again.
pub(super) fn scan_refused(e: &Error) -> bool {
    match e {
        Error::Api(a) => a.code == "QUERY_TIMEOUT",
        Error::TimedOut(_) => true,
        _ => false,
    }
}

/// Domains are searched (SOSL) from now on: the org's Contacts are too many
/// to scan.
pub(super) fn search_from_now_on(cache: &mut Cache) {
    if !cache.search_domains {
        tracing::info!("the org's Contacts are too many to scan by domain; searching domains with SOSL from now on");
        cache.search_domains = true;
    }
}

/// Contacts per Account at each domain: by aggregate queries, or by search
/// once the org has answered an aggregate with `QUERY_TIMEOUT`.
async fn counts(
    client: &Client,
    domains: &[String],
    cache: &mut Cache,
    person: bool,
    ahead: &[DomainAnswer],
) -> Result<DomainCounts, Error> {
    let (mut counts, domains) = counted_ahead(domains, cache, ahead);
    let mut left: Vec<String> = Vec::new();
    for chunk in sized(&domains, LIKE_CHUNK, ListKind::Like) {
        if cache.search_domains {
            left.extend(chunk);
            continue;
        }
        match aggregate(client, &chunk, person).await {
            Ok((found, mixed)) => {
                counts.extend(found);
                // An Account with Contacts at two of these domains: each asked alone.
                for d in mixed {
                    counts.remove(&d);
                    let (one, _) = aggregate(client, std::slice::from_ref(&d), person).await?;
                    counts.extend(one);
                }
            }
            Err(e) if scan_refused(&e) => {
                search_from_now_on(cache);
                left.extend(chunk);
            }
            Err(e) => return Err(e),
        }
    }
    for chunk in left.chunks(SEARCH_CHUNK) {
        let (found, full) = search(client, chunk, person).await?;
        counts.extend(found);
        if full && chunk.len() > 1 {
            // The search's 2,000 answers may have left some domains out: those are searched alone.
            let missed: Vec<String> = chunk
                .iter()
                .filter(|d| !counts.contains_key(*d))
                .cloned()
                .collect();
            for d in missed {
                counts.extend(search(client, std::slice::from_ref(&d), person).await?.0);
            }
        }
    }
    Ok(counts)
}

/// The counts of the domains asked ahead, and the domains left to ask (not
/// asked ahead, asked in vain, or mixed with another of their aggregate's).
fn counted_ahead(
    domains: &[String],
    cache: &mut Cache,
    ahead: &[DomainAnswer],
) -> (DomainCounts, Vec<String>) {
    let mut counts = DomainCounts::new();
    let mut left: Vec<String> = domains.to_vec();
    for (chunk, answer) in ahead {
        match answer {
            Ok(rows) => {
                let (found, mixed) = tally(rows, chunk);
                left.retain(|d| !chunk.contains(d) || mixed.contains(d));
                counts.extend(
                    found
                        .into_iter()
                        .filter(|(d, _)| domains.contains(d) && !mixed.contains(d)),
                );
            }
            Err(e) if scan_refused(e) => search_from_now_on(cache),
            Err(_) => {}
        }
    }
    (counts, left)
}

/// One SOSL search over some domains: Contacts per Account at each, and
/// whether it answered as many records as a search can (2,000).
async fn search(
    client: &Client,
    domains: &[String],
    person: bool,
) -> Result<(DomainCounts, bool), Error> {
    let Some(q) = Resolver::domain_search_sosl(domains, person) else {
        return Ok((DomainCounts::new(), false));
    };
    let rows: Vec<ContactRow> = client.search(&q).await?.iter().map(contact_row).collect();
    Ok((
        Resolver::count_by_domain(&rows, domains),
        rows.len() >= 2_000,
    ))
}
