//! Runs the resolver's queries and Contact creations against Salesforce.

use std::collections::HashMap;
use std::time::Instant;

use salesforce::Client;
use serde_json::{json, Map, Value};

use crate::domain::resolve::{
    AccountRow, Cache, ContactRow, Outcome, PublicDomains, Request, Resolver,
};

/// Values per `IN (...)` list.
const IN_CHUNK: usize = 200;
/// SOQL characters of one list's values. A real org may refuse a WHERE
/// clause over 4,000 characters (salesforce-api.md §9.4: the SOQL guide's
/// "strings in WHERE clauses", read strictly as Salesforce's own packaging
/// library does); the rest of the clause fits in the remainder.
const WHERE_CHARS: usize = 3_800;
/// URL-encoded bytes of one list's values. A real org takes a request line
/// of at most 16,384 bytes (414 past it, §9.4): two such lists and the
/// query stay under 15 KB whatever script the values are in.
const LIST_BYTES: usize = 7_000;
/// A value longer than this matches no field the lookups read (Contact
/// Email 80, Name 121, Account Name 255): it is not looked up at all.
const LONGEST_VALUE: usize = 255;

/// How a value sits in its query: in an `IN ('a','b')` list, or as one
/// `Email LIKE '%@d' OR` term.
#[derive(Clone, Copy)]
pub(super) enum ListKind {
    In,
    Like,
}

/// A value's weight in a query: (SOQL characters, URL-encoded bytes), its
/// quotes, escapes and separator included.
fn weight(v: &str, kind: ListKind) -> (usize, usize) {
    let (mut chars, mut bytes) = match kind {
        // `'v',` → `%27v%27%2C`
        ListKind::In => (3, 9),
        // `Email LIKE '%@v' OR ` → `Email+LIKE+%27%25%40v%27+OR+`
        ListKind::Like => (20, 30),
    };
    for c in v.chars() {
        let escaped = matches!(c, '\\' | '\'') || matches!((kind, c), (ListKind::Like, '%' | '_'));
        if escaped {
            chars += 1;
            bytes += 3;
        }
        chars += 1;
        bytes += if c.is_ascii_alphanumeric() || "*-._ ".contains(c) {
            1
        } else {
            3 * c.len_utf8()
        };
    }
    (chars, bytes)
}

/// Splits `values` into lists of at most `max_count` values, [`WHERE_CHARS`]
/// characters and [`LIST_BYTES`] encoded bytes, leaving out values too long
/// to match.
pub(super) fn sized(values: &[String], max_count: usize, kind: ListKind) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let (mut chars, mut bytes) = (0, 0);
    for v in values.iter().filter(|v| v.chars().count() <= LONGEST_VALUE) {
        let (c, b) = weight(v, kind);
        let full = out.last().is_none_or(|l| {
            l.len() >= max_count || chars + c > WHERE_CHARS || bytes + b > LIST_BYTES
        });
        if full {
            out.push(Vec::new());
            (chars, bytes) = (0, 0);
        }
        chars += c;
        bytes += b;
        out.last_mut().expect("pushed").push(v.clone());
    }
    out
}

/// A text field of a returned record.
pub(super) fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

pub(super) fn contact_row(m: &Map<String, Value>) -> ContactRow {
    ContactRow {
        id: text(m, "Id").unwrap_or_default(),
        account_id: text(m, "AccountId"),
        email: text(m, "Email"),
        name: text(m, "Name"),
        created: text(m, "CreatedDate").unwrap_or_default(),
    }
}

/// Resolves a batch: at most one query per step and one collection create.
pub async fn resolve(
    client: &Client,
    requests: Vec<Request>,
    public: PublicDomains,
    cache: &mut Cache,
    allow_duplicate_save: bool,
) -> Result<Vec<(String, Outcome)>, salesforce::Error> {
    let now = Instant::now();
    let mut r = Resolver::new(requests, public, cache, now);
    // Each step is one query per IN_CHUNK distinct values, however many requests share them.
    let emails = r.emails_to_look_up();
    let mut rows = Vec::new();
    for chunk in sized(&emails, IN_CHUNK, ListKind::In) {
        if let Some(q) = Resolver::contacts_by_email_soql(&chunk) {
            rows.extend(client.query(&q).await?.iter().map(contact_row));
        }
    }
    r.on_contacts_by_email(&rows);
    let domains = r.domains_to_look_up();
    let fresh = r.any_fresh();
    r.on_domain_accounts(super::domains::accounts(client, &domains, cache, fresh).await?);
    let teams = r.team_names_to_look_up();
    let mut accounts_found = Vec::new();
    let person = if teams.is_empty() {
        false
    } else {
        super::domains::person_accounts(client, cache).await?
    };
    for chunk in sized(&teams, IN_CHUNK, ListKind::In) {
        if let Some(q) = Resolver::accounts_by_name_soql(&chunk, person) {
            accounts_found.extend(client.query(&q).await?.iter().map(|m| AccountRow {
                id: text(m, "Id").unwrap_or_default(),
                name: text(m, "Name").unwrap_or_default(),
                created: text(m, "CreatedDate").unwrap_or_default(),
            }));
        }
    }
    r.on_accounts_by_name(&accounts_found);
    let (accounts, names) = r.names_to_look_up(cache);
    let mut rows = Vec::new();
    for a in sized(&accounts, IN_CHUNK, ListKind::In) {
        for n in sized(&names, IN_CHUNK, ListKind::In) {
            if let Some(q) = Resolver::contacts_by_name_soql(&a, &n) {
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
        // New orgs have the standard duplicate rules on, alerting: without
        // the header an API create that resembles any Contact or Lead fails.
        let headers: &[(&str, &str)] = if allow_duplicate_save {
            &[salesforce::client::ALLOW_DUPLICATE_SAVE]
        } else {
            &[]
        };
        let results = client.create_many_with(&records, false, headers).await?;
        let mut by_key = HashMap::new();
        for ((c, record), res) in new.iter().zip(&records).zip(results) {
            let v = match (res.success, res.id) {
                (true, Some(id)) => Ok(id),
                _ if res
                    .errors
                    .iter()
                    .any(|e| e.status_code == "DUPLICATES_DETECTED") =>
                {
                    duplicate(
                        client,
                        record,
                        headers,
                        c.email.as_deref().unwrap_or(&c.last_name),
                    )
                    .await?
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The request line a query makes, as the client sends it.
    fn request_line(soql: &str) -> usize {
        let q: String = form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        "GET /services/data/v67.0/query?q= HTTP/1.1".len() + q.len()
    }

    /// The characters of a query's WHERE clause.
    fn where_chars(soql: &str) -> usize {
        let w = soql.split_once(" WHERE ").map_or("", |(_, w)| w);
        let end = [" GROUP BY ", " ORDER BY "]
            .iter()
            .filter_map(|k| w.find(k))
            .min()
            .unwrap_or(w.len());
        w[..end].chars().count()
    }

    /// Lists are cut by their real length: 200 short emails are one query.
    #[test]
    fn everyday_emails_fill_a_whole_list() {
        let emails: Vec<String> = (0..200)
            .map(|i| format!("firstname.lastname{i}@company{i}.example.com"))
            .collect();
        assert_eq!(
            sized(&emails, IN_CHUNK, ListKind::In).len(),
            3,
            "9,000 characters"
        );
        let short: Vec<String> = (0..200).map(|i| format!("p{i}@acme{i}.io")).collect();
        assert_eq!(sized(&short, IN_CHUNK, ListKind::In).len(), 1);
    }

    proptest! {
        /// Whatever the values (any script, any length), every query the
        /// resolver makes fits a real org's request line, and every value
        /// that could match is asked for exactly once.
        #[test]
        fn every_query_fits_the_front_door(values in proptest::collection::vec(".{0,300}", 0..400)) {
            let ids: Vec<String> = (0..200).map(|i| format!("001Em{i:013}")).collect();
            let ids = sized(&ids, IN_CHUNK, ListKind::In).remove(0);
            let mut asked = 0;
            for chunk in sized(&values, IN_CHUNK, ListKind::In) {
                for q in [
                    Resolver::contacts_by_email_soql(&chunk),
                    Resolver::accounts_by_name_soql(&chunk, true),
                ].into_iter().flatten() {
                    prop_assert!(request_line(&q) <= 16_384, "{} bytes", request_line(&q));
                    prop_assert!(where_chars(&q) <= 4_000, "{} characters", where_chars(&q));
                }
                let q = Resolver::contacts_by_name_soql(&ids, &chunk).expect("two lists");
                prop_assert!(request_line(&q) <= 16_384, "{} bytes", request_line(&q));
                asked += chunk.len();
            }
            for chunk in sized(&values, IN_CHUNK, ListKind::Like) {
                if let Some(q) = Resolver::domain_counts_soql(&chunk, true) {
                    prop_assert!(request_line(&q) <= 16_384, "{} bytes", request_line(&q));
                    prop_assert!(where_chars(&q) <= 4_000, "{} characters", where_chars(&q));
                }
                for part in chunk.chunks(20) {
                    if let Some(q) = Resolver::domain_search_sosl(part, true) {
                        prop_assert!(request_line(&q) <= 16_384, "{} bytes", request_line(&q));
                    }
                }
            }
            prop_assert_eq!(asked, values.iter().filter(|v| v.chars().count() <= LONGEST_VALUE).count());
        }
    }
}
