//! Runs the resolver's queries and Contact creations against Salesforce.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use salesforce::Client;
use serde_json::{json, Value};

use crate::domain::resolve::{
    AccountRow, Cache, ContactRow, NewContact, Outcome, PublicDomains, Request, Resolver,
};

use super::lookup::{account_row, contact_row, sized, ListKind, IN_CHUNK};
/// A batch looked up: every step asked, the new Contacts decided, none made.
pub struct LookedUp {
    r: Resolver,
    now: Instant,
    /// The requests of `may_wait` left out: they need Salesforce.
    left: Vec<String>,
}

impl LookedUp {
    /// The requests left out for a later step (they need Salesforce).
    pub fn left(&self) -> &[String] {
        &self.left
    }

    /// The Contacts to create, in the order placeholders count them.
    pub fn new_contacts(&self) -> &[NewContact] {
        self.r.contacts_to_create()
    }

    /// Each request's outcome, a request waiting for a new Contact linked
    /// to `placeholder(i)`.
    pub fn provisional(&self, placeholder: impl Fn(usize) -> String) -> Vec<(String, Outcome)> {
        self.r.provisional(placeholder)
    }

    /// The outcomes, once the new Contacts are made (their ids, or why not,
    /// by key; none given: the waiting requests stay open). Remembers what
    /// was found.
    pub fn finish(
        mut self,
        cache: &mut Cache,
        created: &HashMap<String, Result<String, String>>,
    ) -> Vec<(String, Outcome)> {
        if !created.is_empty() {
            self.r.on_created(created);
        }
        self.r.finish(cache, self.now)
    }
}

/// The requests of `may_wait` that [`look_up`] would leave out (they need
/// Salesforce), from the cache alone: no call.
pub fn leaving(
    requests: Vec<Request>,
    public: PublicDomains,
    cache: &Cache,
    may_wait: &HashSet<String>,
) -> Vec<String> {
    Resolver::new(requests, public, cache, Instant::now()).leave(may_wait)
}

/// The requests whose lookups ask Salesforce ([`Resolver::asking_ids`]). No call.
pub fn asking(requests: Vec<Request>, public: PublicDomains, cache: &Cache) -> HashSet<String> {
    Resolver::new(requests, public, cache, Instant::now())
        .asking_ids()
        .collect()
}

/// Looks a batch up (the steps' queries asked ahead together), deciding
/// which Contacts to create without creating them. The requests of
/// `may_wait` that need Salesforce are left out ([`Resolver::leave`]).
pub async fn look_up(
    client: &Client,
    requests: Vec<Request>,
    public: PublicDomains,
    cache: &mut Cache,
    may_wait: &HashSet<String>,
) -> Result<LookedUp, salesforce::Error> {
    let now = Instant::now();
    let mut r = Resolver::new(requests, public, cache, now);
    let left = r.leave(may_wait);
    // Each step is one query per IN_CHUNK distinct values, however many
    // requests share them; the steps' queries go ahead together.
    let emails = r.emails_to_look_up();
    let ahead = super::ahead::ask(client, &r, cache, &emails).await?;
    let mut looked = after_ahead(client, r, cache, ahead, now).await?;
    looked.left = left;
    Ok(looked)
}

/// The resolver's steps once the queries asked ahead are answered: each
/// takes its rows from `ahead` when they cover what it asks, and asks
/// Salesforce itself otherwise.
pub async fn after_ahead(
    client: &Client,
    mut r: Resolver,
    cache: &mut Cache,
    ahead: super::ahead::Ahead,
    now: Instant,
) -> Result<LookedUp, salesforce::Error> {
    r.on_contacts_by_email(&ahead.emails);
    let domains = r.domains_to_look_up();
    let fresh = r.any_fresh();
    r.on_domain_accounts(
        super::domains::accounts(client, &domains, cache, fresh, &ahead.domains).await?,
    );
    let teams = r.team_names_to_look_up();
    let accounts_found = match ahead.teams_for(&teams) {
        Some(rows) => rows,
        None => accounts_by_name(client, cache, &teams).await?,
    };
    r.on_accounts_by_name(&accounts_found);
    let (accounts, names) = r.names_to_look_up(cache);
    let rows = match ahead.names_for(&accounts, &names) {
        Some(rows) => rows,
        None => contacts_by_name(client, &accounts, &names).await?,
    };
    r.on_contacts_by_name(&rows);
    Ok(LookedUp {
        r,
        now,
        left: Vec::new(),
    })
}

/// Accounts named like the workspaces, asked now (not ahead).
async fn accounts_by_name(
    client: &Client,
    cache: &mut Cache,
    teams: &[String],
) -> Result<Vec<AccountRow>, salesforce::Error> {
    let mut found = Vec::new();
    if teams.is_empty() {
        return Ok(found);
    }
    let person = super::domains::person_accounts(client, cache).await?;
    for chunk in sized(teams, IN_CHUNK, ListKind::In) {
        if let Some(q) = Resolver::accounts_by_name_soql(&chunk, person) {
            found.extend(client.query(&q).await?.iter().map(account_row));
        }
    }
    Ok(found)
}

/// Contacts of these names on these Accounts, asked now (not ahead).
async fn contacts_by_name(
    client: &Client,
    accounts: &[String],
    names: &[String],
) -> Result<Vec<ContactRow>, salesforce::Error> {
    let mut rows = Vec::new();
    for a in sized(accounts, IN_CHUNK, ListKind::In) {
        for n in sized(names, IN_CHUNK, ListKind::In) {
            if let Some(q) = Resolver::contacts_by_name_soql(&a, &n) {
                rows.extend(client.query(&q).await?.iter().map(contact_row));
            }
        }
    }
    Ok(rows)
}

/// Creates the Contacts the resolver asked for, in calls of 200: each one's
/// new id, or why Salesforce refused it, by the resolver's key.
pub async fn create_contacts(
    client: &Client,
    new: &[NewContact],
    allow_duplicate_save: bool,
) -> Result<HashMap<String, Result<String, String>>, salesforce::Error> {
    let records: Vec<Value> = new.iter().map(contact_record).collect();
    let headers = creation_headers(allow_duplicate_save);
    let results = client.create_many_with(&records, false, headers).await?;
    created(client, new, &results, allow_duplicate_save).await
}

/// A new Contact as sObject Collections takes it.
pub fn contact_record(c: &NewContact) -> Value {
    let mut v = json!({"attributes": {"type": "Contact"}, "LastName": c.last_name, "AccountId": c.account_id});
    if let Some(f) = &c.first_name {
        v["FirstName"] = json!(f);
    }
    if let Some(e) = &c.email {
        v["Email"] = json!(e);
    }
    v
}

/// New orgs have the standard duplicate rules on, alerting: without this
/// header an API create that resembles any Contact or Lead fails.
pub fn creation_headers(allow_duplicate_save: bool) -> &'static [(&'static str, &'static str)] {
    if allow_duplicate_save {
        &[salesforce::client::ALLOW_DUPLICATE_SAVE]
    } else {
        &[]
    }
}

/// Each new Contact's id, or why Salesforce refused it, by the resolver's
/// key, from the creation's per-record results (one per Contact, in order).
pub async fn created(
    client: &Client,
    new: &[NewContact],
    results: &[salesforce::RecordResult],
    allow_duplicate_save: bool,
) -> Result<HashMap<String, Result<String, String>>, salesforce::Error> {
    let headers = creation_headers(allow_duplicate_save);
    let mut by_key = HashMap::new();
    for (c, res) in new.iter().zip(results) {
        let v = match (res.success, &res.id) {
            (true, Some(id)) => Ok(id.clone()),
            _ if res
                .errors
                .iter()
                .any(|e| e.status_code == "DUPLICATES_DETECTED") =>
            {
                let who = c.email.as_deref().unwrap_or(&c.last_name);
                duplicate(client, &contact_record(c), headers, who).await?
            }
            _ => Err(salesforce::RecordError::summary(&res.errors)),
        };
        by_key.insert(c.key.clone(), v);
    }
    Ok(by_key)
}

/// A Contact a duplicate rule refused: Collections says no more than that,
/// so it is created once more alone, whose error names the rule and the
/// matched records (salesforce-api.md §9.3). A matched Contact becomes the
/// requestor; otherwise the reason names the rule and the record.
async fn duplicate(
    client: &Client,
    record: &Value,
    headers: &[(&str, &str)],
    who: &str,
) -> Result<Result<String, String>, salesforce::Error> {
    let mut body = record.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("attributes");
    }
    match client.create_with("Contact", &body, headers).await {
        Ok(id) => Ok(Ok(id)),
        Err(salesforce::Error::Api(a)) if a.code == "DUPLICATES_DETECTED" => {
            let d = a.duplicates.unwrap_or_default();
            if let Some((_, id)) = d.records.iter().find(|(o, _)| o == "Contact") {
                return Ok(Ok(id.clone()));
            }
            let rule = d.rule.as_deref().unwrap_or("a duplicate rule");
            let matched = d
                .records
                .iter()
                .map(|(o, id)| format!("{o} {id}"))
                .collect::<Vec<_>>()
                .join(", ");
            Ok(Err(format!(
                "Salesforce's duplicate rule {rule} refused a new Contact for {who}{}; merge or convert that record (or let the rule allow saves), then retry",
                if matched.is_empty() { String::new() } else { format!(": it matches {matched}") }
            )))
        }
        Err(e) if e.action() == salesforce::Action::GiveUp => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}
