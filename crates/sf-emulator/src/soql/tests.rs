//! Evaluator tests against a small org, and the escaping round trip.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::{eval, parse};
use crate::dml::Caller;
use crate::org::Org;
use crate::security::FieldAccess;

fn org_with_contacts(n: usize) -> Org {
    let (mut org, _) = Org::new();
    let access = FieldAccess::default();
    let caller = Caller {
        user_id: "005Em0000000001IAA",
        access: &access,
        allow_save: true,
    };
    let acme = org
        .create(
            "Account",
            json!({"Name": "Acme"}).as_object().unwrap(),
            &caller,
        )
        .unwrap();
    for i in 0..n {
        let body = json!({"LastName": format!("Person {i}"), "Email": format!("p{i}@acme.io"), "AccountId": if i % 2 == 0 { json!(acme) } else { Value::Null }});
        org.create("Contact", body.as_object().unwrap(), &caller)
            .unwrap();
    }
    org
}

fn run(org: &Org, soql: &str) -> eval::Output {
    let q = parse(soql).unwrap_or_else(|e| panic!("{soql}: {e}"));
    eval::execute(org, &q, soql, &FieldAccess::default(), "67.0")
        .unwrap_or_else(|e| panic!("{soql}: {e}"))
}

#[test]
fn equality_and_in_on_email_are_answered_from_the_index() {
    let org = org_with_contacts(5000);
    let one = run(
        &org,
        "SELECT Id, Email FROM Contact WHERE Email = 'P4321@ACME.IO'",
    );
    assert_eq!(one.total_size, 1);
    assert_eq!(one.records[0]["Email"], "p4321@acme.io");
    assert_eq!(one.examined, 1, "an index lookup, not a scan of 5000 rows");
    let some = run(&org, "SELECT Id FROM Contact WHERE Email IN ('p1@acme.io', 'p2@acme.io', 'nobody@x.io') AND LastName != null");
    assert_eq!((some.total_size, some.examined), (2, 2));
    let by_name = run(&org, "SELECT Id FROM Contact WHERE Name = 'person 7'");
    assert_eq!((by_name.total_size, by_name.examined), (1, 1));
    let scan = run(
        &org,
        "SELECT Id FROM Contact WHERE LastName LIKE 'Person 1%'",
    );
    assert_eq!(scan.examined, 5000);
    assert_eq!(scan.total_size, 1111);
}

#[test]
fn parent_paths_counts_ordering_limit_offset() {
    let org = org_with_contacts(10);
    let r = run(&org, "SELECT Email, Account.Name FROM Contact WHERE Account.Name = 'acme' ORDER BY Email DESC LIMIT 2 OFFSET 1");
    assert_eq!(r.records.len(), 2);
    assert_eq!(r.records[0]["Email"], "p6@acme.io");
    assert_eq!(r.records[0]["Account"]["Name"], "Acme");
    let nulls_first = run(
        &org,
        "SELECT Email, AccountId FROM Contact ORDER BY AccountId, Email LIMIT 1",
    );
    assert_eq!(
        nulls_first.records[0]["AccountId"],
        Value::Null,
        "nulls sort first by default"
    );
    let nulls_last = run(
        &org,
        "SELECT AccountId FROM Contact ORDER BY AccountId NULLS LAST LIMIT 1",
    );
    assert_ne!(nulls_last.records[0]["AccountId"], Value::Null);
    assert_eq!(
        run(&org, "SELECT COUNT() FROM Contact WHERE AccountId = null").total_size,
        5
    );
    assert_eq!(
        run(
            &org,
            "SELECT COUNT() FROM Contact WHERE NOT Email LIKE 'p1%'"
        )
        .total_size,
        9
    );
    assert_eq!(
        run(
            &org,
            "SELECT COUNT() FROM Contact WHERE Email NOT IN ('p1@acme.io')"
        )
        .total_size,
        9
    );
    assert_eq!(
        run(
            &org,
            "select count() from CONTACT where EMAIL like '%@ACME.IO'"
        )
        .total_size,
        10,
        "names and keywords are case-insensitive"
    );
    let missing_parent = run(
        &org,
        "SELECT Account.Name FROM Contact WHERE Email = 'p1@acme.io'",
    );
    assert_eq!(missing_parent.records[0]["Account"], Value::Null);
}

#[test]
fn comparisons_on_dates_numbers_and_ids() {
    let org = org_with_contacts(3);
    assert_eq!(
        run(
            &org,
            "SELECT COUNT() FROM Contact WHERE CreatedDate > 2000-01-01T00:00:00Z"
        )
        .total_size,
        3
    );
    assert_eq!(
        run(
            &org,
            "SELECT COUNT() FROM Contact WHERE CreatedDate < 2000-01-01T00:00:00Z"
        )
        .total_size,
        0
    );
    let first = run(&org, "SELECT Id FROM Contact LIMIT 1");
    let id18 = first.records[0]["Id"].as_str().unwrap().to_string();
    let by15 = run(
        &org,
        &format!("SELECT Id FROM Contact WHERE Id = '{}'", &id18[..15]),
    );
    assert_eq!(by15.total_size, 1, "a 15-character id finds the record");
    assert_eq!(
        run(
            &org,
            &format!(
                "SELECT COUNT() FROM Contact WHERE Id IN ('{}')",
                id18.to_lowercase()
            )
        )
        .total_size,
        1
    );
}

#[test]
fn errors_name_the_field_or_object() {
    let org = org_with_contacts(1);
    let e = fails(&org, "SELECT Id, Nope FROM Contact");
    assert_eq!(e.code, "INVALID_FIELD");
    assert!(e
        .message
        .contains("No such column 'Nope' on entity 'Contact'"));
    assert!(e.message.contains("ERROR at Row:1:Column:12"));
    let e = fails(&org, "SELECT Id FROM Nope__c");
    assert_eq!(e.code, "INVALID_TYPE");
    let e = fails(&org, "SELECT Foo.Name FROM Contact");
    assert!(e.message.contains("Didn't understand relationship 'Foo'"));
}

/// Escapes a value for a SOQL string literal as Salesforce documents it.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

proptest! {
    #[test]
    fn any_escaped_string_parses_back_to_itself(s in any::<String>()) {
        let soql = format!("SELECT Id FROM Contact WHERE LastName = '{}'", escape(&s));
        let q = parse(&soql).unwrap();
        let Some(super::ast::Cond::Cmp { value: super::ast::Literal::Str { raw, .. }, .. }) = q.filter else { panic!("{soql}") };
        prop_assert_eq!(super::literal::decode(&raw).unwrap(), s);
    }

    #[test]
    fn escaped_like_patterns_match_only_themselves(s in "[a-z%_'\\\\]{0,12}") {
        let like = escape(&s).replace('%', "\\%").replace('_', "\\_");
        let pat = super::literal::decode_like(&like).unwrap();
        prop_assert!(super::literal::like_matches(&pat, &s));
        let longer = format!("{}x", s);
        prop_assert!(!super::literal::like_matches(&pat, &longer));
    }

    #[test]
    fn the_parser_never_panics(s in any::<String>()) {
        let _ = parse(&s);
        let _ = parse(&format!("SELECT Id FROM Contact WHERE {s}"));
    }
}

fn fails(org: &Org, soql: &str) -> super::SoqlError {
    let q = parse(soql).unwrap_or_else(|e| panic!("{soql}: {e}"));
    match eval::execute(org, &q, soql, &FieldAccess::default(), "67.0") {
        Ok(_) => panic!("{soql} was answered"),
        Err(e) => e,
    }
}

#[test]
fn aggregates_group_count_order_and_filter_as_salesforce_answers_them() {
    let org = org_with_contacts(10);
    let q = run(&org, "SELECT AccountId, COUNT(Id) n, MAX(Email) FROM Contact WHERE Email LIKE '%@acme.io' GROUP BY AccountId ORDER BY COUNT(Id) DESC LIMIT 5");
    assert_eq!(q.total_size, 2, "one group with an Account, one without");
    let top = &q.records[0];
    assert_eq!(top["attributes"], json!({"type": "AggregateResult"}));
    assert_eq!(top["n"], 5);
    assert!(top["AccountId"]
        .as_str()
        .is_some_and(|a| a.starts_with("001")));
    assert_eq!(top["expr0"], "p8@acme.io", "unaliased aggregates are exprN");
    assert!(q.records[1]["AccountId"].is_null());
    let having = run(&org, "SELECT AccountId, COUNT(Id) FROM Contact WHERE AccountId != null GROUP BY AccountId HAVING COUNT(Id) > 5");
    assert_eq!(having.total_size, 0);
    let all = run(
        &org,
        "SELECT COUNT(Id) total, COUNT_DISTINCT(AccountId) accounts FROM Contact",
    );
    assert_eq!(
        (
            all.records[0]["total"].clone(),
            all.records[0]["accounts"].clone()
        ),
        (json!(10), json!(1))
    );
    let counted = run(&org, "SELECT COUNT() FROM Contact WHERE AccountId != null");
    assert_eq!((counted.total_size, counted.records.len()), (5, 0));
    for (soql, says) in [
        (
            "SELECT AccountId, Email, COUNT(Id) FROM Contact GROUP BY AccountId",
            "Field must be grouped or aggregated: Email",
        ),
        (
            "SELECT COUNT() FROM Contact ORDER BY Email",
            "ORDER BY cannot be used with COUNT()",
        ),
        (
            "SELECT COUNT(Id) FROM Contact LIMIT 1",
            "LIMIT is not allowed",
        ),
        (
            "SELECT AccountId, COUNT(Id) FROM Contact GROUP BY AccountId ORDER BY Email",
            "Ordered field must be grouped",
        ),
    ] {
        let e = fails(&org, soql);
        assert_eq!(e.code, "MALFORMED_QUERY", "{soql}");
        assert!(e.message.contains(says), "{soql}: {}", e.message);
    }
    let many = org_with_contacts(2500);
    let e = fails(&many, "SELECT Email, COUNT(Id) FROM Contact GROUP BY Email");
    assert!(
        e.message.contains("does not support queryMore"),
        "{}",
        e.message
    );
}
