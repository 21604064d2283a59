//! The company-domain step against Salesforce: which Account each email
//! domain belongs to (the most Contacts there; ties to the oldest Account).
//!
//! SOQL cannot group by an email's domain, so each new domain is one
//! aggregate query answering a few rows, however many Contacts match. On an
//! org too large to scan (`QUERY_TIMEOUT`: a leading-wildcard LIKE uses no
//! index, salesforce-api.md §9.5) the domains of a batch are found by one
//! SOSL search instead, from then on. Answers are remembered across batches
//! (bounded, expiring); a person's retry asks afresh. Person accounts are
//! never a company (§9.7).

use std::collections::HashMap;
use std::time::Instant;

use salesforce::{Client, Error};
use serde_json::{Map, Value};

use crate::domain::resolve::{Cache, ContactRow, DomainCounts, Resolver};

/// Domains per SOSL search (each a quoted phrase; FIND text stays far
/// under its 4,000-character limit, salesforce-api.md §9.4).
const SEARCH_CHUNK: usize = 20;

fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

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
    let counts = counts(client, &ask, cache, person).await?;
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

/// Contacts per Account at each domain: by aggregate queries, or by search
/// once the org has answered an aggregate with `QUERY_TIMEOUT`.
async fn counts(
    client: &Client,
    domains: &[String],
    cache: &mut Cache,
    person: bool,
) -> Result<DomainCounts, Error> {
    let mut counts = DomainCounts::new();
    let mut left = domains;
    while let Some((d, rest)) = left.split_first().filter(|_| !cache.search_domains) {
        match client.query(&Resolver::domain_counts_soql(d, person)).await {
            Ok(rows) => {
                let per: HashMap<String, usize> = rows
                    .iter()
                    .filter_map(|m| Some((text(m, "AccountId")?, m.get("n")?.as_u64()? as usize)))
                    .collect();
                if !per.is_empty() {
                    counts.insert(d.clone(), per);
                }
                left = rest;
            }
            Err(Error::Api(e)) if e.code == "QUERY_TIMEOUT" => {
                tracing::info!("the org's Contacts are too many to scan by domain; searching domains with SOSL from now on");
                cache.search_domains = true;
            }
            Err(e) => return Err(e),
        }
    }
    for chunk in left.chunks(SEARCH_CHUNK) {
        let Some(q) = Resolver::domain_search_sosl(chunk, person) else {
            continue;
        };
        let rows: Vec<ContactRow> = client
            .search(&q)
            .await?
            .iter()
            .map(|m| ContactRow {
                id: text(m, "Id").unwrap_or_default(),
                account_id: text(m, "AccountId"),
                email: text(m, "Email"),
                name: None,
                created: String::new(),
                account_created: None,
            })
            .collect();
        counts.extend(Resolver::count_by_domain(&rows, chunk));
    }
    Ok(counts)
}
