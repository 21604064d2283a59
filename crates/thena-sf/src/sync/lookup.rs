//! How lookups are sized and read: values per `IN (...)` or `LIKE` list
//! within a real org's limits on a query's WHERE clause and request line,
//! and the rows' fields read back. Shared by the requestor lookups
//! (`resolve_io`) and the company-domain step (`domains`).

use serde_json::{Map, Value};

use crate::domain::resolve::{AccountRow, ContactRow};

/// Values per `IN (...)` list.
pub(super) const IN_CHUNK: usize = 200;
/// SOQL characters of one list's values. A real org may refuse a WHERE
/// clause over 4,000 characters (salesforce-api.md §9.4: the SOQL guide's
/// "strings in WHERE clauses", read strictly as Salesforce's own packaging
/// library does); the rest of the clause fits in the remainder.
pub(super) const WHERE_CHARS: usize = 3_800;
/// URL-encoded bytes of one list's values. A real org takes a request line
/// of at most 16,384 bytes (414 past it, §9.4): two such lists and the
/// query stay under 15 KB whatever script the values are in.
pub(super) const LIST_BYTES: usize = 7_000;
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
    sized_within(values, max_count, kind, (WHERE_CHARS, LIST_BYTES))
}

/// [`sized`] within a share of a query's room, `(characters, bytes)`: for a
/// query with two lists, each takes half.
pub(super) fn sized_within(
    values: &[String],
    max_count: usize,
    kind: ListKind,
    (max_chars, max_bytes): (usize, usize),
) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let (mut chars, mut bytes) = (0, 0);
    for v in values.iter().filter(|v| v.chars().count() <= LONGEST_VALUE) {
        let (c, b) = weight(v, kind);
        let full = out
            .last()
            .is_none_or(|l| l.len() >= max_count || chars + c > max_chars || bytes + b > max_bytes);
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

pub(super) fn account_row(m: &Map<String, Value>) -> AccountRow {
    AccountRow {
        id: text(m, "Id").unwrap_or_default(),
        name: text(m, "Name").unwrap_or_default(),
        created: text(m, "CreatedDate").unwrap_or_default(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::resolve::Resolver;
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
