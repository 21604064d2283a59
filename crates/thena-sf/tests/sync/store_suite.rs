//! One store test-suite, run against both backends: SQLite (a fresh file) and
//! PostgreSQL (a fresh database on the machine's server, from
//! `THENA_SF_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/test`;
//! `.ci/run` makes sure it runs).

use std::time::Duration;

use salesforce::{Secret, TokenSet};
use serde_json::{json, Value};
use test_support::app::LocalConnector;
use thena_sf::domain::snapshot::Snapshot;
use thena_sf::store::ingest::{IngestItem, Ingested};
use thena_sf::store::queue::{Claimed, Synced};
use thena_sf::store::{ConnStatus, Connection, FlowTaken, OAuthFlow, ReqState, Store, StoreError};

/// A fresh store of each backend; the second opens the same database again
/// (another replica).
async fn stores(backend: &str) -> (Store, Store, LocalConnector) {
    let c = LocalConnector::open(backend != "sqlite").await;
    (c.store.clone(), c.another_replica().await, c)
}

fn connection(name: &str) -> Connection {
    Connection {
        name: name.into(),
        login_url: "https://login.salesforce.com".into(),
        client_id: "cid".into(),
        client_secret: Some(Secret::new("client-secret-zz91")),
        tokens: TokenSet {
            access_token: Secret::new("access-token-zz92"),
            refresh_token: Some(Secret::new("refresh-token-zz93")),
            instance_url: "https://acme.my.salesforce.com".into(),
            id_url: "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA".into(),
            issued_at_ms: 1,
            expires_in_secs: None,
        },
        webhook_token_hash: "hash".into(),
        signing_secret: None,
        password_login: None,
        connected_at: chrono::DateTime::from_timestamp_millis(1_000).unwrap(),
        status: ConnStatus::Healthy,
        status_reason: None,
        provisioned_at: None,
        thena_app: None,
        previous_token: None,
    }
}

/// A snapshot; Thena's numeric times here are seconds (the parser takes seconds or milliseconds).
fn snap(id: &str, updated: i64, title: &str) -> Snapshot {
    let body = json!({"action": "UPDATE", "request": {"requestId": id, "createdAt": 5_000, "updatedAt": updated,
        "requestor": {"name": "Ann", "email": "ann@acme.io"}}, "AI_requestTitle": title});
    thena_sf::thena::webhook::parse(body.to_string().as_bytes())
        .unwrap()
        .snapshot
}

/// A request event for connection "acme" (connected at 1 s), delivery `key`.
fn item(key: &str, rid: &str, updated: i64, title: &str) -> IngestItem {
    IngestItem {
        connection: "acme".into(),
        event_key: key.into(),
        snapshot: snap(rid, updated, title),
        connected_at_ms: 1_000,
        source: Default::default(),
        comment: None,
    }
}

fn synced(c: &Claimed) -> Synced {
    Synced {
        claimed: c.clone(),
        sf_id: "a00000000000001AAA".into(),
        contact: "003000000000001AAA".into(),
        account: "001000000000001AAA".into(),
        requestor_key: "ann@acme.io".into(),
        sent_hash: "h".into(),
        detail: "created".into(),
    }
}

async fn connections_and_secrets(s: &Store) {
    s.put_connection(&connection("acme")).await.unwrap();
    // A token roll with a grace keeps the replaced hash until then; one
    // without, or a revoke, keeps nothing.
    let before = s.connection("acme").await.unwrap().webhook_token_hash;
    s.roll_webhook_token("acme", "h-new", Some(42))
        .await
        .unwrap();
    let c = s.connection("acme").await.unwrap();
    assert_eq!(c.webhook_token_hash, "h-new");
    assert_eq!(c.previous_token, Some((before, 42)));
    s.revoke_previous_token("acme").await.unwrap();
    assert_eq!(s.connection("acme").await.unwrap().previous_token, None);
    s.roll_webhook_token("acme", "h-newer", Some(43))
        .await
        .unwrap();
    s.roll_webhook_token("acme", "h-last", None).await.unwrap();
    assert_eq!(s.connection("acme").await.unwrap().previous_token, None);
    let c = s.connection("acme").await.unwrap();
    assert_eq!(c.tokens.access_token.expose(), "access-token-zz92");
    assert_eq!(c.client_secret.unwrap().expose(), "client-secret-zz91");
    let mut t = c.tokens.clone();
    t.access_token = Secret::new("access-token-2");
    t.refresh_token = None;
    t.issued_at_ms = 99;
    s.save_tokens("acme", &t).await.unwrap();
    let c = s.connection("acme").await.unwrap();
    assert_eq!(c.tokens.access_token.expose(), "access-token-2");
    assert_eq!(
        c.tokens.refresh_token.unwrap().expose(),
        "refresh-token-zz93",
        "a refresh without a new refresh token keeps the old one"
    );
    assert_eq!(s.connection_state("acme").await.unwrap().1, 99);
    s.set_status("acme", ConnStatus::Paused, Some("budget"))
        .await
        .unwrap();
    assert_eq!(
        s.connection("acme").await.unwrap().status,
        ConnStatus::Paused
    );
    // Secrets are sealed: no plaintext in any column.
    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT access_token_enc FROM connections")
        .fetch_all(s.pool())
        .await
        .unwrap();
    assert!(!rows[0].windows(14).any(|w| w == b"access-token-2"));
    s.add_category_field("acme", "Product", "Product__c")
        .await
        .unwrap();
    s.add_category_field("acme", "Product", "Other__c")
        .await
        .unwrap();
    assert_eq!(
        s.category_fields("acme").await.unwrap(),
        vec![("Product".to_string(), "Product__c".to_string())]
    );
    assert!(matches!(
        s.connection("nope").await,
        Err(StoreError::NoConnection(_))
    ));
}

async fn queue_rules(s: &Store) {
    s.put_connection(&connection("acme")).await.unwrap();
    assert_eq!(s.last_seen("acme").await.unwrap().webhook_ms, None);
    let at = 1_000; // connected_at
    assert_eq!(
        s.ingest("acme", "e1", &snap("R1", 6_000, "v1"), at)
            .await
            .unwrap(),
        Ingested::Queued
    );
    assert_eq!(
        s.ingest("acme", "e1", &snap("R1", 6_000, "v1"), at)
            .await
            .unwrap(),
        Ingested::Duplicate
    );
    let heard = s.last_seen("acme").await.unwrap().webhook_ms;
    assert!(heard.is_some_and(|ms| ms > 1_700_000_000_000), "{heard:?}");
    assert_eq!(
        s.ingest("acme", "e2", &snap("R1", 7_000, "v2"), at)
            .await
            .unwrap(),
        Ingested::Queued
    );
    assert_eq!(
        s.ingest("acme", "e3", &snap("R1", 6_500, "old"), at)
            .await
            .unwrap(),
        Ingested::Stale
    );
    assert_eq!(
        s.ingest("acme", "e4", &snap("R0", 6_000, "x"), 9_000_000_000)
            .await
            .unwrap(),
        Ingested::OutOfScope
    );
    past(now_ms()).await; // the claim comes after the arrivals, on the clock too
    let due = s.due("acme", 10).await.unwrap();
    assert_eq!(due.len(), 1, "versions coalesce into one snapshot");
    assert_eq!(due[0].version, 2);
    assert_eq!(
        due[0].snapshot.updated_at.0, 7_000_000,
        "seconds, as Thena may send them"
    );
    // A newer version arrives while this one is in flight: it stays pending.
    s.ingest("acme", "e5", &snap("R1", 8_000, "v3"), at)
        .await
        .unwrap();
    s.mark_synced_many("acme", &[synced(&due[0])])
        .await
        .unwrap();
    let due2 = s.due("acme", 10).await.unwrap();
    assert_eq!((due2.len(), due2[0].version), (1, 3));
    assert!(
        due2[0].enqueued_at_ms >= due[0].claimed_at_ms,
        "the newer version waits since it came, after the claim, not since the written one"
    );
    s.mark_synced_many("acme", &[synced(&due2[0])])
        .await
        .unwrap();
    assert!(s.due("acme", 10).await.unwrap().is_empty());
    let st = s.request_state("acme", "R1").await.unwrap().unwrap();
    assert_eq!(
        (st.state.as_str(), st.sf_id.as_deref()),
        ("synced", Some("a00000000000001AAA"))
    );
    // Skipped, retried; dead-lettered, retried, discarded.
    s.ingest("acme", "e6", &snap("R2", 6_000, "s"), at)
        .await
        .unwrap();
    s.ingest("acme", "e7", &snap("R3", 6_000, "d"), at)
        .await
        .unwrap();
    let due = s.due("acme", 10).await.unwrap();
    let (r2, r3) = (&due[0], &due[1]);
    s.mark_skipped("acme", r2, "no Account named 'X'")
        .await
        .unwrap();
    s.dead_letter("acme", r3, "BAD", "refused", &["Status__c".into()])
        .await
        .unwrap();
    assert!(
        s.due("acme", 10).await.unwrap().is_empty(),
        "parked and dead are not due"
    );
    let c = s.counts("acme").await.unwrap();
    assert_eq!(
        (c.synced, c.skipped, c.failed, c.out_of_scope),
        (1, 1, 1, 1)
    );
    assert_eq!(
        s.requests_in_state("acme", ReqState::Skipped, 10, 0)
            .await
            .unwrap()[0]
            .reason
            .as_deref(),
        Some("no Account named 'X'")
    );
    assert_eq!(s.retry_skipped("acme", Some("R2")).await.unwrap(), 1);
    // Retried: queued again, no longer counted as skipped (it counted twice).
    let c = s.counts("acme").await.unwrap();
    assert_eq!((c.pending, c.skipped), (1, 0), "{c:?}");
    assert!(s
        .requests_in_state("acme", ReqState::Skipped, 10, 0)
        .await
        .unwrap()
        .is_empty());
    let dead = s.dead_letters("acme", 10, 0).await.unwrap();
    assert_eq!((dead.len(), dead[0].code.as_str()), (1, "BAD"));
    assert_eq!(s.retry_dead("acme", Some(dead[0].id)).await.unwrap(), 1);
    assert_eq!(s.due("acme", 10).await.unwrap().len(), 2);
    let due = s.due("acme", 10).await.unwrap();
    s.dead_letter("acme", &due[1], "BAD", "again", &[])
        .await
        .unwrap();
    assert_eq!(s.discard_dead("acme", None).await.unwrap(), 1);
    let activity = s.activity("acme", 100, 0).await.unwrap();
    assert!(activity.len() >= 5);
    assert!(
        activity[0].id > activity[activity.len() - 1].id,
        "newest first"
    );
    // A connection deleted takes its queue and history with it.
    s.delete_connection("acme").await.unwrap();
    assert!(s.due("acme", 10).await.unwrap().is_empty());
    assert_eq!(s.counts("acme").await.unwrap(), Default::default());
}

async fn sessions_and_flows(s: &Store) {
    let far = chrono::Utc::now().timestamp_millis() + 60_000;
    s.create_session("h1", "csrf1", "pw1", far).await.unwrap();
    s.create_session("h0", "csrf0", "pw1", 1).await.unwrap();
    assert_eq!(
        s.session_csrf("h1", "pw1").await.unwrap().as_deref(),
        Some("csrf1")
    );
    assert_eq!(s.session_csrf("h0", "pw1").await.unwrap(), None, "expired");
    assert_eq!(
        s.session_csrf("h1", "pw2").await.unwrap(),
        None,
        "made with another password"
    );
    // A flash is shown once.
    s.set_flash("h1", "3 dead letters discarded.")
        .await
        .unwrap();
    assert_eq!(
        s.take_flash("h1").await.unwrap().as_deref(),
        Some("3 dead letters discarded.")
    );
    assert_eq!(s.take_flash("h1").await.unwrap(), None);
    s.delete_session("h1").await.unwrap();
    assert_eq!(s.session_csrf("h1", "pw1").await.unwrap(), None);
    s.create_session("h2", "csrf2", "pw1", far).await.unwrap();
    assert_eq!(s.delete_all_sessions().await.unwrap(), 1);
    assert_eq!(s.session_csrf("h2", "pw1").await.unwrap(), None);
    let flow = OAuthFlow {
        session_hash: "h".into(),
        connection: "acme".into(),
        login_url: "https://login.salesforce.com".into(),
        client_id: "cid".into(),
        verifier: Secret::new("verifier-zz94"),
        created_at_ms: chrono::Utc::now().timestamp_millis(),
        same_org_ok: true,
    };
    s.put_oauth_flow("state-hash", &flow).await.unwrap();
    assert!(
        matches!(
            s.take_oauth_flow("state-hash", "other").await.unwrap(),
            FlowTaken::OtherSession
        ),
        "another session's state is refused and not consumed"
    );
    let FlowTaken::Taken(got) = s.take_oauth_flow("state-hash", "h").await.unwrap() else {
        panic!("the owner takes it")
    };
    assert_eq!(got.verifier.expose(), "verifier-zz94");
    assert!(got.same_org_ok);
    assert!(
        matches!(
            s.take_oauth_flow("state-hash", "h").await.unwrap(),
            FlowTaken::Unknown
        ),
        "single use"
    );
}

/// Leases on both backends; the fence against a stale replica's acknowledgements
/// on PostgreSQL only (a SQLite store belongs to one process: there is no other
/// replica to be stale against, and the check would cost SQLite its write lock).
async fn leases_fence_stale_replicas(a: &Store, b: &Store) {
    let fenced = a.backend() == thena_sf::store::Backend::Postgres;
    a.put_connection(&connection("acme")).await.unwrap();
    a.set_replica("replica-a");
    b.set_replica("replica-b");
    assert_eq!(a.heartbeat(10_000).await.unwrap(), 1);
    assert_eq!(b.heartbeat(10_000).await.unwrap(), 2);
    let ttl = 400;
    let ea = a.try_acquire("acme", ttl).await.unwrap().expect("free");
    assert_eq!(b.try_acquire("acme", ttl).await.unwrap(), None, "held by A");
    a.ingest("acme", "e1", &snap("R1", 6_000, "v1"), 1_000)
        .await
        .unwrap();
    let claimed = a.due("acme", 10).await.unwrap();
    // A stalls past its lease; B takes over with a newer epoch.
    tokio::time::sleep(Duration::from_millis(ttl as u64 + 50)).await;
    let eb = b
        .try_acquire("acme", ttl * 20)
        .await
        .unwrap()
        .expect("expired");
    assert!(eb > ea);
    assert!(
        a.renew_leases(ttl).await.unwrap().is_empty(),
        "A sees it lost the lease"
    );
    if fenced {
        // A's late acknowledgement is refused, and changes nothing.
        let late = a.mark_synced_many("acme", &[synced(&claimed[0])]).await;
        assert!(matches!(late, Err(StoreError::LeaseLost(_))), "{late:?}");
        assert!(a.lease_lost("acme"));
        assert_eq!(b.due("acme", 10).await.unwrap().len(), 1);
        let skip = a.mark_skipped("acme", &claimed[0], "x").await;
        assert!(matches!(skip, Err(StoreError::LeaseLost(_))));
    } else {
        // The lease loop marks a lost lease; from then on this process refuses too.
        a.mark_lost("acme");
        let late = a.mark_synced_many("acme", &[synced(&claimed[0])]).await;
        assert!(matches!(late, Err(StoreError::LeaseLost(_))), "{late:?}");
    }
    // B, the owner, acknowledges.
    let claimed = b.due("acme", 10).await.unwrap();
    b.mark_synced_many("acme", &[synced(&claimed[0])])
        .await
        .unwrap();
    assert_eq!(b.counts("acme").await.unwrap().synced, 1);
    let leases = a.leases().await.unwrap();
    assert_eq!(
        (leases[0].owner.as_str(), leases[0].epoch),
        ("replica-b", eb)
    );
    // Given back, it is free at once.
    b.release_lease("acme").await.unwrap();
    assert!(a.try_acquire("acme", ttl).await.unwrap().is_some());
    b.leave().await.unwrap();
    assert_eq!(a.heartbeat(10_000).await.unwrap(), 1);
}

async fn concurrent_ingest_keeps_the_newest(a: &Store, b: &Store) {
    a.put_connection(&connection("acme")).await.unwrap();
    // Two replicas ingest interleaved versions of the same 50 requests at once.
    let run = |s: Store, parity: i64| async move {
        for v in 0..20i64 {
            let items: Vec<IngestItem> = (0..50)
                .rev()
                .map(|r| {
                    let n = v * 2 + parity;
                    item(
                        &format!("R{r}-v{n}"),
                        &format!("R{r}"),
                        10_000 + n,
                        &format!("v{n}"),
                    )
                })
                .collect();
            s.ingest_many(&items).await.unwrap();
        }
    };
    let (x, y) = tokio::join!(
        tokio::spawn(run(a.clone(), 0)),
        tokio::spawn(run(b.clone(), 1))
    );
    x.unwrap();
    y.unwrap();
    let due = a.due("acme", 100).await.unwrap();
    assert_eq!(due.len(), 50);
    for d in due {
        assert_eq!(
            d.snapshot.updated_at.0, 10_039_000,
            "{} kept its newest version",
            d.request_id
        );
    }
}

/// One group decides each event as if it came alone, in arrival order:
/// duplicates, a stale version within the group, versions coalesced (SQLite
/// takes such a group in a few multi-row statements; PostgreSQL one event at
/// a time).
async fn a_group_decides_as_events_one_by_one(s: &Store) {
    s.put_connection(&connection("acme")).await.unwrap();
    let got = s
        .ingest_many(&[
            item("a", "G1", 10_002, "two"),
            item("b", "G1", 10_001, "one"),
            item("a", "G1", 10_002, "two again"),
            item("c", "G2", 10_001, "g2"),
            item("d", "G1", 10_003, "three"),
        ])
        .await
        .unwrap();
    use thena_sf::store::ingest::Ingested::*;
    assert_eq!(got, vec![Queued, Stale, Duplicate, Queued, Queued]);
    let got = s
        .ingest_many(&[
            item("e", "G2", 10_000, "older"),
            item("c", "G2", 10_001, "g2"),
        ])
        .await
        .unwrap();
    assert_eq!(got, vec![Stale, Duplicate]);
    let due = s.due("acme", 10).await.unwrap();
    assert_eq!(due.len(), 2);
    let g1 = due.iter().find(|d| d.request_id == "G1").unwrap();
    assert_eq!(g1.snapshot.updated_at.0, 10_003_000);
    assert_eq!(
        g1.snapshot.title,
        thena_sf::domain::snapshot::Patch::Set("three".into())
    );
    // Every delivery is logged with what ingest made of it, in arrival order,
    // and the request is described by its newest version.
    let log = s.deliveries_of("acme", "G1", 10).await.unwrap();
    let results: Vec<&str> = log.iter().rev().map(|d| d.result.as_str()).collect();
    assert_eq!(results, ["queued", "stale", "duplicate", "queued"]);
    assert!(log.iter().all(|d| d.action == "request update"), "{log:?}");
    let found = s.search_requests("acme", "THREE", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].request_id, "G1");
    assert_eq!(found[0].title.as_deref(), Some("three"));
    assert_eq!(found[0].requestor.as_deref(), Some("ann@acme.io"));
    let by_requestor = s.search_requests("acme", "ANN@acme", 10).await.unwrap();
    assert_eq!(by_requestor.len(), 2);
    assert_eq!(
        s.search_requests("acme", "G2", 10).await.unwrap()[0].request_id,
        "G2"
    );
    assert!(s.search_requests("acme", "%", 10).await.unwrap().is_empty());
    assert!(s.search_requests("acme", "_", 10).await.unwrap().is_empty());
}

/// Transactions that read and then write (retrying dead letters, the
/// fenced acknowledgements) succeed while another replica writes at the
/// same time. On SQLite a deferred transaction failed at once with
/// "database is locked" when another connection wrote between its read and
/// its write (an admin's Retry answered 500 under load).
async fn read_then_write_while_others_write(a: &Store, b: &Store) {
    a.put_connection(&connection("acme")).await.unwrap();
    let item = |r: usize, v: i64| item(&format!("W{r}-v{v}"), &format!("W{r}"), 10_000 + v, "t");
    let first: Vec<IngestItem> = (0..60).map(|r| item(r, 0)).collect();
    a.ingest_many(&first).await.unwrap();
    for c in a.due("acme", 100).await.unwrap() {
        a.dead_letter("acme", &c, "X", "refused", &[])
            .await
            .unwrap();
    }
    let ids: Vec<i64> = a
        .dead_letters("acme", 100, 0)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids.len(), 60);
    let writer = {
        let b = b.clone();
        tokio::spawn(async move {
            for v in 1..=60i64 {
                let items: Vec<IngestItem> = (100..130).map(|r| item(r, v)).collect();
                b.ingest_many(&items).await.unwrap();
            }
        })
    };
    for id in ids {
        a.retry_dead("acme", Some(id)).await.unwrap();
    }
    writer.await.unwrap();
    assert_eq!(a.dead_letters("acme", 100, 0).await.unwrap().len(), 0);
}

/// A connection's figures agree with each other while another replica
/// settles its requests: each request is either queued (and pending) or
/// synced, never both and never neither. The admin page once showed a
/// retried request as queued and synced at once (CI, `the_whole_flow_and_the_actions_over_http`),
/// because the queue and the states were read in two statements.
async fn figures_agree_while_requests_settle(a: &Store, b: &Store) {
    const N: i64 = 120;
    a.put_connection(&connection("acme")).await.unwrap();
    let items: Vec<IngestItem> = (0..N)
        .map(|r| item(&format!("F{r}"), &format!("F{r}"), 10_000, "t"))
        .collect();
    a.ingest_many(&items).await.unwrap();
    let settler = {
        let b = b.clone();
        tokio::spawn(async move {
            for c in b.due("acme", N).await.unwrap() {
                b.mark_synced_many("acme", &[synced(&c)]).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    loop {
        let c = a.counts("acme").await.unwrap();
        assert_eq!(c.queued, c.pending, "read {reads}: {c:?}");
        assert_eq!(c.pending + c.synced, N, "read {reads}: {c:?}");
        reads += 1;
        if c.synced == N {
            break;
        }
    }
    settler.await.unwrap();
    assert!(reads > 1, "the reads overlapped the settling");
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Waits (yielding) until the clock has passed `ms`.
async fn past(ms: i64) {
    while now_ms() <= ms {
        tokio::task::yield_now().await;
    }
}

/// The pace reads how long the due snapshots have waited. A new version of a
/// skipped (parked) request waits from its own arrival, not from the first
/// version's, which was not waiting to be sent (it made the worker send at
/// once, in small steps); a version over one still unsent keeps the earlier
/// arrival (acknowledged first). A snapshot waiting out a retry's delay is
/// not due: it is neither counted nor the oldest, only the next to come due.
async fn what_waits_is_what_the_pace_reads(s: &Store) {
    s.put_connection(&connection("acme")).await.unwrap();
    s.ingest_many(&[
        item("s1", "SKIP", 10_000, "t"),
        item("w1", "WAIT", 10_000, "t"),
    ])
    .await
    .unwrap();
    let first = s.due("acme", 10).await.unwrap();
    let skip = first.iter().find(|c| c.request_id == "SKIP").unwrap();
    s.mark_skipped("acme", skip, "no Account named 'X'")
        .await
        .unwrap();
    past(skip.enqueued_at_ms).await;
    let before = now_ms();
    s.ingest_many(&[
        item("s2", "SKIP", 11_000, "t"),
        item("w2", "WAIT", 11_000, "t"),
    ])
    .await
    .unwrap();
    let due = s.due("acme", 10).await.unwrap();
    let at = |id: &str| {
        due.iter()
            .find(|c| c.request_id == id)
            .unwrap()
            .enqueued_at_ms
    };
    let wait = first.iter().find(|c| c.request_id == "WAIT").unwrap();
    assert!(at("SKIP") >= before, "{} < {before}", at("SKIP"));
    assert_eq!(
        at("WAIT"),
        wait.enqueued_at_ms,
        "still unsent: its first arrival"
    );

    let skip_v2 = due.iter().find(|c| c.request_id == "SKIP").unwrap();
    s.retry_later("acme", skip_v2, 60_000, "UNABLE_TO_LOCK_ROW: busy")
        .await
        .unwrap();
    let now = now_ms();
    let shape = s.due_shape("acme", now, 0).await.unwrap();
    let (n, oldest, soonest) = (shape.due, shape.oldest, shape.soonest);
    assert_eq!(
        (n, oldest),
        (1, Some(wait.enqueued_at_ms)),
        "only WAIT is due"
    );
    assert_eq!(
        shape.unlooked, oldest,
        "none looked up: the oldest is unlooked"
    );
    let looked = s.due_shape("acme", now, wait.enqueued_at_ms).await.unwrap();
    assert_eq!(
        (looked.due, looked.unlooked),
        (1, None),
        "WAIT acknowledged no later than the worker looked up"
    );
    assert!(soonest.is_some_and(|t| t >= now + 59_000), "{soonest:?}");
    let all = s.queued("acme").await.unwrap();
    assert_eq!(all, 2, "the queue still holds both");
}

/// A version skipped or refused while a newer one came in flight leaves the
/// newer one pending, as a written one does: the request is not shown as
/// skipped or failed while it is queued, and the newer snapshot waits since
/// the claim, not since the decided version's arrival.
async fn a_version_decided_while_a_newer_came_leaves_the_newer_waiting(s: &Store) {
    s.put_connection(&connection("acme")).await.unwrap();
    s.ingest_many(&[
        item("s1", "SKIP", 10_000, "t"),
        item("d1", "DEAD", 10_000, "t"),
    ])
    .await
    .unwrap();
    past(now_ms()).await;
    let claimed = s.due("acme", 10).await.unwrap();
    s.ingest_many(&[
        item("s2", "SKIP", 11_000, "t"),
        item("d2", "DEAD", 11_000, "t"),
    ])
    .await
    .unwrap();
    let of = |id: &str| claimed.iter().find(|c| c.request_id == id).unwrap();
    s.mark_skipped("acme", of("SKIP"), "no Account named 'X'")
        .await
        .unwrap();
    s.dead_letter("acme", of("DEAD"), "BAD", "refused", &[])
        .await
        .unwrap();
    let c = s.counts("acme").await.unwrap();
    assert_eq!(
        (c.pending, c.queued, c.skipped, c.failed),
        (2, 2, 0, 0),
        "{c:?}"
    );
    for d in s.due("acme", 10).await.unwrap() {
        assert_eq!(d.version, 2, "{}", d.request_id);
        assert!(
            d.enqueued_at_ms >= of(&d.request_id).claimed_at_ms,
            "{}: waits since the claim",
            d.request_id
        );
    }
}

/// Skips recorded together (after a step's write, in one transaction): each
/// is parked with its own reason, and one whose newer version came meanwhile
/// leaves that version waiting.
async fn skips_recorded_together_keep_each_reason(s: &Store) {
    s.put_connection(&connection("acme")).await.unwrap();
    s.ingest_many(&[
        item("a1", "A", 10_000, "t"),
        item("b1", "B", 10_000, "t"),
        item("c1", "C", 10_000, "t"),
    ])
    .await
    .unwrap();
    past(now_ms()).await;
    let claimed = s.due("acme", 10).await.unwrap();
    s.ingest_many(&[item("b2", "B", 11_000, "t")])
        .await
        .unwrap();
    let of = |id: &str| claimed.iter().find(|c| c.request_id == id).unwrap();
    let skips = [
        (of("C"), "no Account named 'C'"),
        (of("A"), "no Account named 'A'"),
        (of("B"), "no Account named 'B'"),
    ];
    s.mark_skipped_many("acme", &skips).await.unwrap();
    let c = s.counts("acme").await.unwrap();
    assert_eq!((c.skipped, c.queued), (2, 1), "{c:?}");
    let due: Vec<(String, i64)> = s
        .due("acme", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.request_id, d.version))
        .collect();
    assert_eq!(due, [("B".to_string(), 2)]);
    let mut reasons: Vec<(String, Option<String>)> = s
        .requests_in_state("acme", ReqState::Skipped, 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.request_id, r.reason))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("A".to_string(), Some("no Account named 'A'".to_string())),
            ("C".to_string(), Some("no Account named 'C'".to_string())),
        ]
    );
}

/// A SQLite store copied into PostgreSQL keeps everything, secrets included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_copies_into_postgres() {
    let (from, _, _dir) = stores("sqlite").await;
    let (to, _, _db) = stores("postgres").await;
    from.put_connection(&connection("acme")).await.unwrap();
    from.add_category_field("acme", "Product", "Product__c")
        .await
        .unwrap();
    for i in 0..30 {
        from.ingest(
            "acme",
            &format!("e{i}"),
            &snap(&format!("R{i}"), 6_000, "t"),
            1_000,
        )
        .await
        .unwrap();
    }
    let due = from.due("acme", 5).await.unwrap();
    from.mark_synced_many("acme", &[synced(&due[0])])
        .await
        .unwrap();
    from.dead_letter("acme", &due[1], "BAD", "refused", &[])
        .await
        .unwrap();
    from.mark_skipped("acme", &due[2], "no Account")
        .await
        .unwrap();
    let copied = from.copy_into(&to).await.unwrap();
    assert!(
        copied.iter().any(|(t, n)| *t == "pending" && *n == 28),
        "{copied:?}"
    );
    assert_eq!(
        to.connection("acme")
            .await
            .unwrap()
            .tokens
            .access_token
            .expose(),
        "access-token-zz92"
    );
    assert_eq!(
        to.counts("acme").await.unwrap(),
        from.counts("acme").await.unwrap()
    );
    assert_eq!(
        to.due("acme", 100).await.unwrap().len(),
        27,
        "the skipped one stays parked"
    );
    assert_eq!(to.category_fields("acme").await.unwrap().len(), 1);
    let dead = to.dead_letters("acme", 10, 0).await.unwrap();
    assert_eq!(
        dead[0].id,
        from.dead_letters("acme", 10, 0).await.unwrap()[0].id
    );
    // New rows continue after the copied ids; a second copy is refused.
    let more = to.due("acme", 1).await.unwrap();
    to.dead_letter("acme", &more[0], "BAD", "x", &[])
        .await
        .unwrap();
    assert!(to.dead_letters("acme", 10, 0).await.unwrap()[0].id > dead[0].id);
    assert!(from.copy_into(&to).await.is_err());
}

/// A platform event as the webhook would store it.
fn platform_item(body: Value) -> IngestItem {
    let thena_sf::thena::platform::Platform::Change(c) =
        thena_sf::thena::platform::parse(&body).unwrap()
    else {
        panic!("not a change: {body}")
    };
    IngestItem {
        connection: "acme".into(),
        event_key: c.event_id.clone().unwrap(),
        snapshot: c.snapshot,
        connected_at_ms: 1_000,
        source: c.source,
        comment: c.comment,
    }
}

fn comment_event(id: &str, comment: &str, at: i64) -> Value {
    json!({"eventId": id, "eventType": "ticket:comment:added", "timestamp": at,
           "payload": {"ticketId": "CT-1", "comment": {"id": comment, "content": format!("text of {comment}"), "customerContactId": "C", "createdAt": at}}})
}

/// Comments are kept per ticket (bounded), carried by the ticket's first
/// event when they came first, and queued as thread changes over what the
/// request holds, keeping its created and updated times.
async fn comments_and_side_changes(s: &Store) {
    s.put_connection(&connection("acme")).await.unwrap();
    // A CSAT score for a ticket not seen has nothing to wait in: it is said not to apply.
    let csat = json!({"eventId": "S0", "eventType": "ticket:csat:received", "timestamp": 6_000,
        "payload": {"ticketId": "CT-1", "score": 5}});
    assert_eq!(
        s.ingest_many(&[platform_item(csat)]).await.unwrap(),
        [Ingested::OutOfScope]
    );
    let early = s
        .ingest_many(&[platform_item(comment_event("E0", "CM0", 6_000))])
        .await
        .unwrap();
    assert_eq!(early, [Ingested::Queued]);
    assert!(
        s.due("acme", 10).await.unwrap().is_empty(),
        "waits for its ticket"
    );
    let created = json!({"eventId": "E1", "eventType": "ticket:created", "timestamp": 7_000,
        "payload": {"ticket": {"id": "CT-1", "title": "t", "createdAt": 5_000, "updatedAt": 7_000}}});
    s.ingest_many(&[platform_item(created)]).await.unwrap();
    let due = s.due("acme", 10).await.unwrap();
    let thread = due[0].snapshot.customer_thread.set().unwrap();
    assert_eq!(thread.len(), 1);
    s.mark_synced_many("acme", &[synced(&due[0])])
        .await
        .unwrap();
    let many: Vec<IngestItem> = (0..520)
        .map(|i| {
            platform_item(comment_event(
                &format!("E-{i}"),
                &format!("CM{i:03}"),
                10_000 + i,
            ))
        })
        .collect();
    s.ingest_many(&many).await.unwrap();
    let due = s.due("acme", 10).await.unwrap();
    let snap = &due[0].snapshot;
    let thread = snap.customer_thread.set().unwrap();
    assert_eq!(thread.len(), 500, "the newest 500 are kept");
    assert_eq!(thread.last().unwrap().text, "text of CM519");
    assert_eq!(
        (snap.created_at.0, snap.updated_at.0),
        (5_000_000, 7_000_000),
        "the ticket's own times"
    );
    assert_eq!(
        snap.title,
        thena_sf::domain::snapshot::Patch::Absent,
        "no ticket field is rewritten"
    );
    s.record_thena_app(
        "acme",
        &thena_sf::store::ThenaApp {
            org_id: Some("OG".into()),
            team_ids: vec!["T".into()],
            event: "app:installation".into(),
            at: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.connection("acme")
            .await
            .unwrap()
            .thena_app
            .unwrap()
            .org_id
            .as_deref(),
        Some("OG")
    );
    s.delete_connection("acme").await.unwrap();
    s.put_connection(&connection("acme")).await.unwrap();
    assert!(s.connection("acme").await.unwrap().thena_app.is_none());
    let again = json!({"eventId": "E9", "eventType": "ticket:created", "timestamp": 7_000,
        "payload": {"ticket": {"id": "CT-1", "createdAt": 5_000, "updatedAt": 7_000}}});
    s.ingest_many(&[platform_item(again)]).await.unwrap();
    let due = s.due("acme", 10).await.unwrap();
    assert_eq!(
        due[0].snapshot.customer_thread,
        thena_sf::domain::snapshot::Patch::Null,
        "a deleted connection keeps no comments"
    );
}

/// A snapshot stored by a newer connector (a later format) is parked with
/// the reason, never misread, and the queue goes on.
async fn a_newer_snapshot_format_is_parked_not_misread(s: &Store) {
    s.put_connection(&connection("acme")).await.unwrap();
    s.ingest("acme", "e1", &snap("R1", 6_000, "v1"), 1_000)
        .await
        .unwrap();
    let newer = thena_sf::store::format::encode(&snap("R2", 6_000, "v2")).replacen(
        "{\"v\":1,",
        "{\"v\":9,",
        1,
    );
    sqlx::query(
        "INSERT INTO pending (connection, request_id, snapshot, updated_at_ms, enqueued_at_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind("acme")
    .bind("R2")
    .bind(&newer)
    .bind(6_000_000i64)
    .bind(0i64)
    .execute(s.pool())
    .await
    .unwrap();
    let due = s.due("acme", 10).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|c| c.request_id.as_str()).collect();
    assert_eq!(ids, ["R1"], "the row it cannot read is left out");
    let why: Option<String> = sqlx::query_scalar(
        "SELECT last_error FROM pending WHERE connection = $1 AND request_id = $2 AND parked = 1",
    )
    .bind("acme")
    .bind("R2")
    .fetch_one(s.pool())
    .await
    .unwrap();
    let why = why.unwrap_or_default();
    assert!(
        why.contains("format 9") && why.contains("newer connector"),
        "{why}"
    );
    assert_eq!(s.due("acme", 10).await.unwrap().len(), 1, "not wedged");
}

/// Each check as a test per backend: `one` checks take a store, `two` take
/// two replicas' stores on one database.
macro_rules! suite {
    ($backend:ident; one: $($one:ident),*; two: $($two:ident),* $(;)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $one() {
                    let (s, _, _guard) = super::stores(stringify!($backend)).await;
                    super::$one(&s).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $two() {
                    let (a, b, _guard) = super::stores(stringify!($backend)).await;
                    super::$two(&a, &b).await;
                }
            )*
        }
    };
}

/// The suite on both backends.
macro_rules! suites {
    (one: $($one:ident),*; two: $($two:ident),* $(;)?) => {
        suite!(sqlite; one: $($one),*; two: $($two),*);
        suite!(postgres; one: $($one),*; two: $($two),*);
    };
}

suites!(
    one: connections_and_secrets, queue_rules, sessions_and_flows, comments_and_side_changes,
        a_group_decides_as_events_one_by_one, a_newer_snapshot_format_is_parked_not_misread,
        what_waits_is_what_the_pace_reads, a_version_decided_while_a_newer_came_leaves_the_newer_waiting,
        skips_recorded_together_keep_each_reason;
    two: leases_fence_stale_replicas, read_then_write_while_others_write,
        concurrent_ingest_keeps_the_newest, figures_agree_while_requests_settle;
);
