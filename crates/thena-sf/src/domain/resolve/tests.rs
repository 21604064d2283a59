//! The resolver against an in-memory org: every rule, and the query count.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;

#[derive(Default)]
struct FakeOrg {
    accounts: Vec<AccountRow>,
    contacts: Vec<ContactRow>,
    queries: usize,
    created: usize,
}

impl FakeOrg {
    fn account(&mut self, id: &str, name: &str, created: &str) {
        self.accounts.push(AccountRow {
            id: id.into(),
            name: name.into(),
            created: created.into(),
        });
    }

    fn contact(
        &mut self,
        id: &str,
        account: Option<&str>,
        email: Option<&str>,
        name: &str,
        created: &str,
    ) {
        self.contacts.push(ContactRow {
            id: id.into(),
            account_id: account.map(str::to_string),
            email: email.map(str::to_string),
            name: Some(name.into()),
            created: created.into(),
        });
    }

    /// The best Account of each of `domains`, as the domain query finds it.
    fn domain_accounts(&self, domains: &[String]) -> HashMap<String, String> {
        let rows: Vec<ContactRow> = self
            .contacts
            .iter()
            .filter(|c| {
                c.account_id.is_some()
                    && c.email
                        .as_deref()
                        .and_then(domain_of)
                        .is_some_and(|d| domains.contains(&d))
            })
            .cloned()
            .collect();
        let counts = Resolver::count_by_domain(&rows, domains);
        let created: HashMap<String, String> = self
            .accounts
            .iter()
            .map(|a| (a.id.clone(), a.created.clone()))
            .collect();
        Resolver::best_by_domain(&counts, &created)
    }

    /// Creates `new` Contacts (one call for all): their ids by key.
    fn create(&mut self, new: Vec<NewContact>) -> HashMap<String, Result<String, String>> {
        let mut results = HashMap::new();
        if !new.is_empty() {
            self.queries += 1;
        }
        for n in new {
            self.created += 1;
            let id = format!("003NEW{}", self.contacts.len());
            let name = match &n.first_name {
                Some(f) => format!("{f} {}", n.last_name),
                None => n.last_name.clone(),
            };
            self.contact(
                &id,
                Some(&n.account_id),
                n.email.as_deref(),
                &name,
                "2026-12-01",
            );
            results.insert(n.key, Ok(id));
        }
        results
    }

    /// Runs a batch the way the pipeline does, answering each query from memory.
    fn resolve(&mut self, requests: Vec<Request>, cache: &mut Cache) -> Vec<(String, Outcome)> {
        let now = Instant::now();
        let mut r = Resolver::new(requests, PublicDomains::default(), cache, now);
        let emails = r.emails_to_look_up();
        if !emails.is_empty() {
            assert!(Resolver::contacts_by_email_soql(&emails).is_some());
            self.queries += 1;
            let rows: Vec<ContactRow> = self
                .contacts
                .iter()
                .filter(|c| {
                    c.email
                        .as_deref()
                        .is_some_and(|e| emails.contains(&e.to_lowercase()))
                })
                .cloned()
                .collect();
            r.on_contacts_by_email(&rows);
        }
        let domains = r.domains_to_look_up();
        if !domains.is_empty() {
            self.queries += 1;
            r.on_domain_accounts(self.domain_accounts(&domains));
        }
        let teams = r.team_names_to_look_up();
        if !teams.is_empty() {
            self.queries += 1;
            let rows: Vec<AccountRow> = self
                .accounts
                .iter()
                .filter(|a| teams.iter().any(|t| t.eq_ignore_ascii_case(a.name.trim())))
                .cloned()
                .collect();
            r.on_accounts_by_name(&rows);
        }
        let (accounts, names) = r.names_to_look_up(cache);
        if !accounts.is_empty() {
            self.queries += 1;
            let rows: Vec<ContactRow> = self
                .contacts
                .iter()
                .filter(|c| {
                    c.account_id.as_ref().is_some_and(|a| accounts.contains(a))
                        && c.name
                            .as_ref()
                            .is_some_and(|n| names.iter().any(|m| m.eq_ignore_ascii_case(n)))
                })
                .cloned()
                .collect();
            r.on_contacts_by_name(&rows);
        }
        let results = self.create(r.contacts_to_create().to_vec());
        r.on_created(&results);
        r.finish(cache, now)
    }
}

fn person(name: &str, email: Option<&str>) -> Person {
    Person {
        id: Some(format!("U{}", name.len())),
        name: Some(name.into()),
        email: email.map(str::to_string),
    }
}

fn req(id: &str, p: Option<Person>, team: Option<&str>) -> Request {
    Request {
        request_id: id.into(),
        requestor: p,
        team_name: team.map(str::to_string),
        previous: None,
        fresh: false,
    }
}

fn cache() -> Cache {
    Cache::new(1000, Duration::from_secs(600))
}

fn org() -> FakeOrg {
    let mut o = FakeOrg::default();
    o.account("001OLD", "Acme Corp", "2020-01-01");
    o.account("001NEW", "Acme Corp", "2024-01-01");
    o.account("001GLX", "Globex", "2021-01-01");
    o.contact(
        "003A",
        Some("001GLX"),
        Some("Harsh@Acme.io"),
        "Harsh Vardhan",
        "2022-01-01",
    );
    o.contact(
        "003B",
        Some("001GLX"),
        Some("b@globex.com"),
        "B",
        "2022-01-01",
    );
    o.contact(
        "003C",
        Some("001GLX"),
        Some("c@globex.com"),
        "C",
        "2022-01-02",
    );
    o.contact(
        "003D",
        Some("001NEW"),
        Some("d@globex.com"),
        "D",
        "2022-01-03",
    );
    o
}

fn linked(o: &Outcome) -> (&str, &str, How) {
    match o {
        Outcome::Linked(l, h) => (l.contact.as_str(), l.account.as_str(), *h),
        Outcome::Skipped(why) => panic!("skipped: {why}"),
    }
}

#[test]
fn a_known_contact_by_email_case_insensitive() {
    let mut o = org();
    let out = o.resolve(
        vec![req(
            "R1",
            Some(person("Harsh Vardhan", Some("harsh@ACME.io"))),
            None,
        )],
        &mut cache(),
    );
    assert_eq!(linked(&out[0].1), ("003A", "001GLX", How::ContactByEmail));
    assert_eq!(o.queries, 1);
    // Plus-addressing is a different address: not that Contact, but the same company.
    let out = o.resolve(
        vec![req(
            "R2",
            Some(person("Harsh Vardhan", Some("harsh+support@acme.io"))),
            None,
        )],
        &mut cache(),
    );
    let (contact, account, how) = linked(&out[0].1);
    assert_eq!((account, how), ("001GLX", How::DomainNewContact));
    assert_ne!(contact, "003A");
}

#[test]
fn several_contacts_with_one_email_prefer_one_with_an_account_then_the_oldest() {
    let mut o = org();
    o.contact("003X", None, Some("dup@globex.com"), "Dup", "2019-01-01");
    o.contact(
        "003Y",
        Some("001GLX"),
        Some("dup@globex.com"),
        "Dup",
        "2023-01-01",
    );
    o.contact(
        "003Z",
        Some("001NEW"),
        Some("DUP@globex.com"),
        "Dup",
        "2022-01-01",
    );
    let out = o.resolve(
        vec![req("R", Some(person("Dup", Some("dup@globex.com"))), None)],
        &mut cache(),
    );
    assert_eq!(linked(&out[0].1), ("003Z", "001NEW", How::ContactByEmail));
}

#[test]
fn company_domain_picks_the_account_with_most_contacts_and_creates_one_contact() {
    let mut o = org();
    let out = o.resolve(
        vec![req(
            "R",
            Some(person("Mary Ann Lee", Some("mary@globex.com"))),
            None,
        )],
        &mut cache(),
    );
    let (contact, account, how) = linked(&out[0].1);
    assert_eq!(
        (account, how),
        ("001GLX", How::DomainNewContact),
        "2 contacts at 001GLX beat 1 at 001NEW"
    );
    let c = o.contacts.iter().find(|c| c.id == contact).unwrap();
    assert_eq!(c.name.as_deref(), Some("Mary Ann Lee"));
    assert_eq!(c.email.as_deref(), Some("mary@globex.com"));
    // Ties go to the oldest account.
    let mut t = FakeOrg::default();
    t.account("001B", "B", "2022-01-01");
    t.account("001A", "A", "2021-01-01");
    t.contact("003B", Some("001B"), Some("x@tie.io"), "X", "2020");
    t.contact("003A", Some("001A"), Some("y@tie.io"), "Y", "2020");
    let out = t.resolve(
        vec![req("R", Some(person("Z", Some("z@tie.io"))), None)],
        &mut cache(),
    );
    assert_eq!(linked(&out[0].1).1, "001A");
}

#[test]
fn public_mail_never_matches_a_company() {
    let mut o = org();
    o.contact(
        "003G",
        Some("001GLX"),
        Some("someone@gmail.com"),
        "S",
        "2020",
    );
    o.contact("003H", Some("001GLX"), Some("other@gmx.de"), "O", "2020");
    for email in ["new@gmail.com", "new@GMX.net", "new@proton.me"] {
        let out = o.resolve(
            vec![req("R", Some(person("New Person", Some(email))), None)],
            &mut cache(),
        );
        let Outcome::Skipped(why) = &out[0].1 else {
            panic!("{email} matched a company: {out:?}")
        };
        assert!(why.contains("is a public mail domain"), "{why}");
    }
}

#[test]
fn workspace_name_match_reuses_or_creates_a_contact_without_email() {
    let mut o = org();
    o.contact("003W", Some("001OLD"), None, "Sam Lee", "2020");
    let out = o.resolve(
        vec![
            req(
                "R1",
                Some(person("Sam Lee", Some("sam@gmail.com"))),
                Some("  acme corp "),
            ),
            req(
                "R2",
                Some(Person {
                    id: Some("U77".into()),
                    name: None,
                    email: None,
                }),
                Some("ACME CORP"),
            ),
        ],
        &mut cache(),
    );
    assert_eq!(
        linked(&out[0].1),
        ("003W", "001OLD", How::WorkspaceContact),
        "two Accounts named Acme Corp: the oldest"
    );
    let (c, a, how) = linked(&out[1].1);
    assert_eq!((a, how), ("001OLD", How::WorkspaceNewContact));
    let created = o.contacts.iter().find(|x| x.id == c).unwrap();
    assert_eq!(
        (created.name.as_deref(), created.email.as_deref()),
        (Some("U77"), None),
        "no name: LastName is the Slack id"
    );
}

#[test]
fn nothing_found_says_why() {
    let mut o = org();
    let out = o.resolve(
        vec![req(
            "R",
            Some(person("Foo Bar", Some("x@y.com"))),
            Some("Foo"),
        )],
        &mut cache(),
    );
    assert_eq!(
        out[0].1,
        Outcome::Skipped(
            "no Contact for x@y.com, no Account with Contacts at y.com, no Account named 'Foo'"
                .into()
        )
    );
    let out = o.resolve(vec![req("R", None, None)], &mut cache());
    assert_eq!(
        out[0].1,
        Outcome::Skipped(
            "the requestor has no email, the request names no customer workspace".into()
        )
    );
}

#[test]
fn two_hundred_requests_from_three_new_people_make_three_contacts_in_few_queries() {
    let mut o = org();
    let people = [
        person("Ann One", Some("ann@globex.com")),
        person("Bob Two", Some("BOB@globex.com")),
        person("Cat Three", Some("cat@globex.com")),
    ];
    let reqs: Vec<Request> = (0..200)
        .map(|i| {
            req(
                &format!("R{i}"),
                Some(people[i % 3].clone()),
                Some("Globex"),
            )
        })
        .collect();
    let out = o.resolve(reqs, &mut cache());
    assert_eq!(o.created, 3);
    assert!(o.queries <= 3, "email, domain, create: {}", o.queries);
    let contacts: std::collections::HashSet<&str> = out.iter().map(|(_, x)| linked(x).0).collect();
    assert_eq!(contacts.len(), 3);
}

#[test]
fn earlier_links_and_the_cache_cost_no_query() {
    let mut o = org();
    let mut c = cache();
    let p = person("Harsh Vardhan", Some("harsh@acme.io"));
    let mut r = req("R", Some(p.clone()), None);
    r.previous = Some((
        p.key(),
        Links {
            contact: "003PREV".into(),
            account: "001PREV".into(),
        },
    ));
    let out = o.resolve(vec![r.clone()], &mut c);
    assert_eq!(linked(&out[0].1), ("003PREV", "001PREV", How::Reused));
    assert_eq!(o.queries, 0);
    // A changed requestor is resolved again; then the cache answers.
    r.requestor = Some(person("Ann One", Some("b@globex.com")));
    o.resolve(vec![r.clone()], &mut c);
    assert_eq!(o.queries, 1);
    r.previous = None;
    let out = o.resolve(vec![r], &mut c);
    assert_eq!(linked(&out[0].1), ("003B", "001GLX", How::ContactByEmail));
    assert_eq!(o.queries, 1, "a known requestor costs no query");
}

#[test]
fn a_contact_created_before_a_crash_is_found_not_duplicated() {
    let mut o = org();
    let reqs = vec![req(
        "R",
        Some(person("New Hire", Some("new@globex.com"))),
        None,
    )];
    o.resolve(reqs.clone(), &mut cache());
    assert_eq!(o.created, 1);
    // The process died before recording the link: a fresh cache, the same request.
    let out = o.resolve(reqs, &mut cache());
    assert_eq!(o.created, 1, "found by email, not created again");
    assert_eq!(linked(&out[0].1).2, How::ContactByEmail);
    // Same for a name-only Contact on a workspace Account.
    let reqs = vec![req(
        "W",
        Some(Person {
            id: None,
            name: Some("Zed O'Brien".into()),
            email: None,
        }),
        Some("Globex"),
    )];
    o.resolve(reqs.clone(), &mut cache());
    o.resolve(reqs, &mut cache());
    assert_eq!(o.created, 2);
}

#[test]
fn a_contact_without_an_account_is_reused_not_duplicated() {
    let mut o = org();
    o.contact("003NOACC", None, Some("lone@globex.com"), "Lone", "2020");
    let out = o.resolve(
        vec![req(
            "R",
            Some(person("Lone", Some("lone@globex.com"))),
            None,
        )],
        &mut cache(),
    );
    assert_eq!(
        linked(&out[0].1),
        ("003NOACC", "001GLX", How::ContactByEmail)
    );
    assert_eq!(o.created, 0);
}

#[test]
fn queries_escape_every_literal() {
    let q = Resolver::contacts_by_email_soql(&["o'brien@x.io".into(), "back\\slash@x.io".into()])
        .unwrap();
    assert!(
        q.contains(r"'o\'brien@x.io'") && q.contains(r"'back\\slash@x.io'"),
        "{q}"
    );
    let q = Resolver::domain_counts_soql(&["100%_sure.io".into()], true).unwrap();
    assert!(
        q.contains(r"Email LIKE '%@100\%\_sure.io'") && q.contains("IsPersonAccount = false"),
        "{q}"
    );
    let q = Resolver::domain_search_sosl(&["acme.io".into(), "a-b.io".into()], false).unwrap();
    assert!(
        q.contains(r#"FIND {"acme.io" OR "a\-b.io"} IN EMAIL FIELDS"#),
        "{q}"
    );
    let q = Resolver::accounts_by_name_soql(&["O'Reilly & Sons".into()], false).unwrap();
    assert!(q.contains(r"Name IN ('O\'Reilly & Sons')"), "{q}");
    assert!(Resolver::contacts_by_email_soql(&[]).is_none());
    for q in [
        Resolver::contacts_by_email_soql(&["a'b@c.d".into()]).unwrap(),
        Resolver::domain_counts_soql(&["x'y.z".into(), "a.io".into()], false).unwrap(),
        Resolver::contacts_by_name_soql(&["001A".into()], &["O'Neil".into()]).unwrap(),
    ] {
        sf_emulator::soql::parse(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}

#[test]
fn names_split_into_first_and_last() {
    assert_eq!(
        split_name(&person("Harsh Vardhan", None)),
        (Some("Harsh".into()), "Vardhan".into())
    );
    assert_eq!(split_name(&person("Cher", None)), (None, "Cher".into()));
    assert_eq!(
        split_name(&person("  Mary  Ann   Lee ", None)),
        (Some("Mary Ann".into()), "Lee".into())
    );
    assert_eq!(
        split_name(&Person {
            id: None,
            name: Some("   ".into()),
            email: Some("jo@x.io".into())
        }),
        (None, "jo".into())
    );
}

#[test]
fn internationalised_domains_match_their_company() {
    let mut o = FakeOrg::default();
    o.account("001BU", "Bücher GmbH", "2020");
    o.contact(
        "003BU",
        Some("001BU"),
        Some("anna@Bücher.de"),
        "Anna",
        "2020",
    );
    let out = o.resolve(
        vec![req(
            "R",
            Some(person("Jörg Müller", Some("JOERG@bücher.DE"))),
            None,
        )],
        &mut cache(),
    );
    let (contact, account, how) = linked(&out[0].1);
    assert_eq!((account, how), ("001BU", How::DomainNewContact));
    let c = o.contacts.iter().find(|c| c.id == contact).unwrap();
    assert_eq!(c.name.as_deref(), Some("Jörg Müller"));
    assert_eq!(c.email.as_deref(), Some("joerg@bücher.de"));
}

#[test]
fn a_requestor_that_matched_nothing_is_not_asked_about_again_unless_retried() {
    let mut o = org();
    let mut c = cache();
    let lost = || {
        req(
            "R",
            Some(person("Lost Soul", Some("lost@nowhere.example"))),
            Some("Nowhere"),
        )
    };
    let first = o.resolve(vec![lost()], &mut c);
    assert!(matches!(&first[0].1, Outcome::Skipped(_)));
    let queries = o.queries;
    let again = o.resolve(vec![lost()], &mut c);
    assert_eq!(again[0].1, first[0].1, "the same reason");
    assert_eq!(
        o.queries, queries,
        "no query for a requestor that just matched nothing"
    );
    // The Account appears; a retry on demand asks again and finds it.
    o.account("001NW", "Nowhere", "2025");
    let mut retried = lost();
    retried.fresh = true;
    let out = o.resolve(vec![retried], &mut c);
    assert_eq!(linked(&out[0].1).1, "001NW");
}

#[test]
fn emails_salesforce_would_refuse_and_names_cut_in_utf16_units() {
    assert!(valid_email("fig@pig.c") && valid_email("ñandú@例え.jp"));
    for bad in [
        "fig@pig",
        "@x.io",
        "a@@b.io",
        "a b@c.io",
        "a@b..io",
        &format!("{}@acme.io", "a".repeat(73)),
    ] {
        assert!(!valid_email(bad), "{bad}");
    }
    assert_eq!(
        take_utf16("😀😀😀", 5),
        "😀😀",
        "a surrogate pair is never split"
    );
    let (first, last) = split_name(&Person {
        id: None,
        name: Some(format!("{} {}", "😀".repeat(30), "𠮟".repeat(50))),
        email: None,
    });
    assert_eq!(first.unwrap().encode_utf16().count(), 40);
    assert_eq!(last.encode_utf16().count(), 80);
}

#[test]
fn a_workspace_and_the_contacts_made_there_are_remembered_across_batches() {
    let mut o = org();
    let mut c = cache();
    let first = o.resolve(
        vec![req("R1", Some(person("Sam Lee", None)), Some("Acme Corp"))],
        &mut c,
    );
    let (contact, account, how) = linked(&first[0].1);
    assert_eq!((account, how), ("001OLD", How::WorkspaceNewContact));
    let contact = contact.to_string();
    let asked = o.queries;
    // The same person again, and a new person at the same workspace: the
    // workspace's Account is not asked about again, nor the person.
    let out = o.resolve(
        vec![
            req("R2", Some(person("Sam Lee", None)), Some("acme corp")),
            req("R3", Some(person("Kim Park", None)), Some("Acme Corp")),
        ],
        &mut c,
    );
    assert_eq!(
        linked(&out[0].1),
        (contact.as_str(), "001OLD", How::WorkspaceContact),
        "the Contact made earlier is now the one of that name: one wording"
    );
    assert_eq!(linked(&out[1].1).2, How::WorkspaceNewContact);
    assert_eq!(
        o.queries - asked,
        2,
        "the name lookup and the creation only"
    );
    // A workspace with no Account is not asked about again for a while.
    let asked = o.queries;
    o.resolve(
        vec![req("R4", Some(person("A B", None)), Some("Nowhere"))],
        &mut c,
    );
    o.resolve(
        vec![req("R5", Some(person("C D", None)), Some("Nowhere"))],
        &mut c,
    );
    assert_eq!(o.queries - asked, 1);
    // A retry on demand asks afresh; a Contact that is gone is forgotten.
    let mut fresh = req("R6", Some(person("Sam Lee", None)), Some("Acme Corp"));
    fresh.fresh = true;
    let asked = o.queries;
    o.resolve(vec![fresh], &mut c);
    assert_eq!(o.queries - asked, 2, "the workspace and the name");
    c.forget_links(&Links {
        contact: contact.clone(),
        account: "001OLD".into(),
    });
    assert_eq!(c.team("Acme Corp", Instant::now()), None);
}

#[test]
fn requests_that_need_salesforce_may_wait_unless_all_do() {
    let c = cache();
    let p = person("Harsh Vardhan", Some("harsh@acme.io"));
    let mut known = req("known", Some(p.clone()), None);
    known.previous = Some((
        p.key(),
        Links {
            contact: "003PREV".into(),
            account: "001PREV".into(),
        },
    ));
    let new = |id: &str| req(id, Some(person("New One", Some("new@acme.io"))), None);
    let may_wait = HashSet::from(["young".to_string(), "known".to_string()]);
    let ids = |reqs: Vec<Request>| {
        let mut r = Resolver::new(reqs, PublicDomains::default(), &c, Instant::now());
        r.leave(&may_wait);
        r.provisional(|_| String::new())
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(vec![known, new("old"), new("young")]),
        ["known", "old"],
        "the young one that needs Salesforce waits; one the links answer goes"
    );
    assert_eq!(
        ids(vec![new("old"), new("young")]),
        ["old", "young"],
        "all need Salesforce: the lookups are made anyway, so nothing waits"
    );
}

#[test]
fn a_requestor_the_cache_knows_has_no_contact_needs_no_lookup_and_does_not_wait() {
    let mut c = cache();
    let now = Instant::now();
    c.remember_no_contact("known.gap@acme.io", now);
    let new = |id: &str, email: &str| req(id, Some(person("New One", Some(email))), None);
    let reqs = vec![
        new("gap", "known.gap@acme.io"),
        new("young", "new@acme.io"),
        new("old", "other@acme.io"),
    ];
    let mut r = Resolver::new(reqs.clone(), PublicDomains::default(), &c, now);
    let asking: HashSet<String> = r.asking_ids().collect();
    assert_eq!(
        asking,
        HashSet::from(["young".to_string(), "old".to_string()]),
        "its email was looked up already (a ride, a warm): nothing to ask"
    );
    let may_wait = HashSet::from(["gap".to_string(), "young".to_string()]);
    assert_eq!(
        r.leave(&may_wait),
        ["young"],
        "only the young one that asks Salesforce waits"
    );
}
