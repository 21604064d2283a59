//! SOQL escaping, checked against the emulator's SOQL parser: for every input,
//! the parsed literal equals the input, and a LIKE pattern matches only it.

use proptest::prelude::*;
use salesforce::soql;
use sf_emulator::soql::ast::{Cond, Literal};
use sf_emulator::soql::literal::{decode, decode_like, like_matches};

fn literal_of(query: &str) -> (String, bool) {
    let q = sf_emulator::soql::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    match q.filter {
        Some(Cond::Cmp {
            value: Literal::Str { raw, .. },
            ..
        }) => (raw, false),
        Some(Cond::Like { raw, .. }) => (raw, true),
        other => panic!("unexpected filter {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn quoted_literals_parse_back_to_the_input(s in any::<String>()) {
        let (raw, _) = literal_of(&format!("SELECT Id FROM Contact WHERE LastName = {}", soql::quote(&s)));
        prop_assert_eq!(decode(&raw).unwrap(), s);
    }

    #[test]
    fn like_patterns_match_exactly_the_input(s in any::<String>(), tail in "[a-z%_]{1,3}") {
        let (raw, is_like) = literal_of(&format!("SELECT Id FROM Contact WHERE Email LIKE {}", soql::like("", &s, "")));
        prop_assert!(is_like);
        let pattern = decode_like(&raw).unwrap();
        prop_assert!(like_matches(&pattern, &s));
        let longer = format!("{s}{tail}");
        prop_assert!(!like_matches(&pattern, &longer));
    }

    #[test]
    fn suffix_patterns_match_any_prefix(domain in "[a-z0-9._%-]{1,20}", user in "[a-z0-9._%+-]{1,12}") {
        let (raw, _) = literal_of(&format!("SELECT Id FROM Contact WHERE Email LIKE {}", soql::like("%@", &domain, "")));
        let pattern = decode_like(&raw).unwrap();
        let email = format!("{user}@{domain}");
        prop_assert!(like_matches(&pattern, &email));
        let other = format!("{user}@x{domain}");
        prop_assert!(!like_matches(&pattern, &other));
    }

    #[test]
    fn in_lists_keep_every_value(values in proptest::collection::vec(any::<String>(), 1..6)) {
        let clause = soql::in_list("Email", &values).unwrap();
        let q = sf_emulator::soql::parse(&format!("SELECT Id FROM Contact WHERE {clause}")).unwrap();
        let Some(Cond::In { values: lits, .. }) = q.filter else { panic!("{clause}") };
        let decoded: Vec<String> = lits.iter().map(|l| match l { Literal::Str { raw, .. } => decode(raw).unwrap(), other => panic!("{other:?}") }).collect();
        prop_assert_eq!(decoded, values);
    }
}

/// End to end over HTTP: names that break naive escaping find exactly their record.
#[tokio::test]
async fn nasty_names_round_trip_through_a_live_org() {
    let emu = test_support::emulator::start(Default::default()).await;
    let client = test_support::emulator::org_client(&emu.base_url).await;
    let names = [
        "O'Brien",
        r"back\slash",
        "100%_sure",
        "Zoë Ünïcödé 日本",
        "quote\" and 'both'",
        "new\nline\ttab",
        "' OR Name != '",
        r"\'; DELETE",
        "%",
        "_",
    ];
    for n in names {
        client
            .create("Contact", &serde_json::json!({"LastName": n}))
            .await
            .unwrap();
    }
    for n in names {
        let found = client
            .query(&format!(
                "SELECT LastName FROM Contact WHERE LastName = {}",
                soql::quote(n)
            ))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{n:?}");
        assert_eq!(found[0]["LastName"], n);
        let like = client
            .query(&format!(
                "SELECT LastName FROM Contact WHERE LastName LIKE {}",
                soql::like("", n, "")
            ))
            .await
            .unwrap();
        assert_eq!(like.len(), 1, "LIKE {n:?}");
    }
}
