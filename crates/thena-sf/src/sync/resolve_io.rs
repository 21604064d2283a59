//! Runs the resolver's queries and Contact creations against Salesforce.

use std::collections::HashMap;
use std::time::Instant;

use salesforce::Client;
use serde_json::{json, Map, Value};

use crate::domain::resolve::{
    AccountRow, Cache, ContactRow, Outcome, PublicDomains, Request, Resolver,
};

/// Values per `IN (...)` list (keeps a query well under Salesforce's length limit).
const IN_CHUNK: usize = 200;
/// Domains per query (each is an `Email LIKE` clause).
const LIKE_CHUNK: usize = 100;

fn s(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

fn contact_row(m: &Map<String, Value>) -> ContactRow {
    ContactRow {
        id: s(m, "Id").unwrap_or_default(),
        account_id: s(m, "AccountId"),
        email: s(m, "Email"),
        name: s(m, "Name"),
        created: s(m, "CreatedDate").unwrap_or_default(),
        account_created: m
            .get("Account")
            .and_then(|a| a.get("CreatedDate"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Resolves a batch: at most one query per step and one collection create.
pub async fn resolve(
    client: &Client,
    requests: Vec<Request>,
    public: PublicDomains,
    cache: &mut Cache,
) -> Result<Vec<(String, Outcome)>, salesforce::Error> {
    let now = Instant::now();
    let mut r = Resolver::new(requests, public, cache, now);
    // Each step is one query per IN_CHUNK distinct values, however many requests share them.
    let emails = r.emails_to_look_up();
    let mut rows = Vec::new();
    for chunk in emails.chunks(IN_CHUNK) {
        if let Some(q) = Resolver::contacts_by_email_soql(chunk) {
            rows.extend(client.query(&q).await?.iter().map(contact_row));
        }
    }
    r.on_contacts_by_email(&rows);
    let domains = r.domains_to_look_up();
    let mut rows = Vec::new();
    for chunk in domains.chunks(LIKE_CHUNK) {
        if let Some(q) = Resolver::contacts_by_domain_soql(chunk) {
            rows.extend(client.query(&q).await?.iter().map(contact_row));
        }
    }
    r.on_contacts_by_domain(&rows);
    let teams = r.team_names_to_look_up();
    let mut accounts_found = Vec::new();
    for chunk in teams.chunks(IN_CHUNK) {
        if let Some(q) = Resolver::accounts_by_name_soql(chunk) {
            accounts_found.extend(client.query(&q).await?.iter().map(|m| AccountRow {
                id: s(m, "Id").unwrap_or_default(),
                name: s(m, "Name").unwrap_or_default(),
                created: s(m, "CreatedDate").unwrap_or_default(),
            }));
        }
    }
    r.on_accounts_by_name(&accounts_found);
    let (accounts, names) = r.names_to_look_up();
    let mut rows = Vec::new();
    for a in accounts.chunks(IN_CHUNK) {
        for n in names.chunks(IN_CHUNK) {
            if let Some(q) = Resolver::contacts_by_name_soql(a, n) {
                rows.extend(client.query(&q).await?.iter().map(contact_row));
            }
        }
    }
    r.on_contacts_by_name(&rows);
    let new = r.contacts_to_create().to_vec();
    if !new.is_empty() {
        let records: Vec<Value> = new
            .iter()
            .map(|c| {
                let mut v = json!({"attributes": {"type": "Contact"}, "LastName": c.last_name, "AccountId": c.account_id});
                if let Some(f) = &c.first_name {
                    v["FirstName"] = json!(f);
                }
                if let Some(e) = &c.email {
                    v["Email"] = json!(e);
                }
                v
            })
            .collect();
        let results = client.create_many(&records, false).await?;
        let mut by_key = HashMap::new();
        for (c, res) in new.iter().zip(results) {
            let v = match (res.success, res.id) {
                (true, Some(id)) => Ok(id),
                _ => Err(res
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.status_code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")),
            };
            by_key.insert(c.key.clone(), v);
        }
        r.on_created(&by_key);
    }
    Ok(r.finish(cache, now))
}
