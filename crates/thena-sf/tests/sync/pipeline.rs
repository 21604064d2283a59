//! The sync pipeline, black box: the connector on port 0 with a fresh store,
//! an emulator, webhooks over HTTP, results read back from Salesforce by SOQL.

use std::time::{Duration, Instant};

use salesforce::{Client, Secret};
use serde_json::{json, Value};
use sf_emulator::{EmulatorConfig, FaultSpec, Seed};
use test_support::app::{quick_settings, LocalConnector, TOKEN};
use test_support::Fetch;
use thena_sf::app::App;
use thena_sf::connect::{self, ConnectRequest, Credentials};
use thena_sf::store::ConnStatus;
use thena_sf::sync::Settings;

struct Harness {
    emu: sf_emulator::Running,
    app: Option<App>,
    c: LocalConnector,
    http: reqwest::Client,
    sf: Client,
}

test_support::reads_as_connector!(Harness);

fn seed() -> Seed {
    serde_json::from_value(json!({
        "accounts": [{"Name": "Acme Corp", "Website": "acme.io"}, {"Name": "Globex Corporation", "Website": "globex.example"}],
        "contacts": [
            {"FirstName": "Harsh", "LastName": "Vardhan", "Email": "harsh@acme.io", "AccountName": "Acme Corp"},
            {"FirstName": "Ann", "LastName": "Lee", "Email": "ann@acme.io", "AccountName": "Acme Corp"}
        ]
    }))
    .unwrap()
}

fn settings() -> Settings {
    quick_settings(100)
}

async fn harness(emu_config: EmulatorConfig) -> Harness {
    harness_where(emu_config, |_| {}).await
}

/// [`harness`], with `worker` changing the app's config after the connection
/// is made (what the worker's client uses, not what connecting used).
async fn harness_where(
    mut emu_config: EmulatorConfig,
    worker: impl FnOnce(&mut thena_sf::config::Config),
) -> Harness {
    if emu_config.seed.accounts.is_empty() {
        emu_config.seed = seed();
    }
    let emu = test_support::emulator::start(emu_config).await;
    let mut c = LocalConnector::sqlite().await;
    c.connect_emulator("acme", &emu.base_url, Some(TOKEN)).await;
    let sf = c.client("acme").await;
    worker(&mut c.config);
    let app = c.start(settings()).await;
    Harness {
        emu,
        app: Some(app),
        c,
        http: reqwest::Client::new(),
        sf,
    }
}

/// Connects `name` to an emulator by the password grant, as admin@example.com.
fn password_connect(
    name: &str,
    login_url: &str,
    password: &str,
    webhook_token: Option<&str>,
) -> ConnectRequest {
    ConnectRequest {
        credentials: Credentials::Password {
            username: sf_emulator::DEFAULT_USERNAME.into(),
            password: Secret::new(password),
        },
        ..ConnectRequest::emulator_admin(name, login_url, webhook_token.map(str::to_string))
    }
}

fn payload(id: &str, updated_ms: i64, extra: Value) -> Value {
    let created = chrono::Utc::now().timestamp_millis() + 1;
    let mut p = json!({
        "action": "UPDATE",
        "request": {"requestId": id, "createdAt": created, "updatedAt": created + updated_ms, "status": "OPEN",
                     "requestor": {"id": "U1", "name": "Harsh Vardhan", "email": "harsh@acme.io"}, "customer": {"teamName": "Acme Corp"}},
        "AI_requestTitle": format!("Title {id} v{updated_ms}")
    });
    merge(&mut p, extra);
    p
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

impl Harness {
    fn app(&self) -> &App {
        self.app.as_ref().unwrap()
    }

    async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!("{}/webhooks/thena/acme", self.app().url()))
            .header("Authorization", TOKEN)
            .json(body);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Posts as a Thena platform webhook app does: the token in the URL.
    async fn post_with_url_token(&self, body: Value) -> (u16, Value) {
        let url = format!("{}/webhooks/thena/acme?token={TOKEN}", self.app().url());
        let r = self.http.post(&url).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until every request is synced, skipped, failed or out of scope.
    async fn settle(&self, ids: &[String]) {
        self.drain("acme", ids).await
    }

    /// Waits until `id` is settled, then reads `fields` of its record.
    async fn synced_row(&self, id: &str, fields: &str) -> serde_json::Map<String, Value> {
        self.settle(&[id.to_string()]).await;
        let filter = format!("WHERE RequestId__c = '{id}'");
        self.requests(fields, &filter).await.remove(0)
    }

    async fn requests(&self, fields: &str, filter: &str) -> Vec<serde_json::Map<String, Value>> {
        self.sf
            .query(&format!("SELECT {fields} FROM Request__c {filter}"))
            .await
            .unwrap()
    }

    /// Asserts that `request`'s record names the Contact of `email` as its requestor.
    async fn assert_requestor(&self, request: &str, email: &str) {
        let soql = format!("SELECT Id FROM Contact WHERE Email = '{email}'");
        let contact = self.sf.query(&soql).await.unwrap();
        let filter = format!("WHERE RequestId__c = '{request}'");
        let row = &self.requests("Requestor__c", &filter).await[0];
        assert_eq!(
            row["Requestor__c"], contact[0]["Id"],
            "{request}'s requestor is the Contact of {email}"
        );
    }

    /// Turns the org's Contact duplicate rule to Block and makes a Lead
    /// that Rita Roe (rita@acme.io) matches; the Lead's id.
    async fn block_duplicates_of_a_lead(&self) -> String {
        self.emu.emulator.org.write().duplicate_rules.contact =
            sf_emulator::duplicates::Action::Block;
        let lead = json!({"LastName": "Roe", "FirstName": "Rita", "Email": "rita@acme.io", "Company": "Acme"});
        self.sf.create("Lead", &lead).await.unwrap()
    }

    /// Why `request` was skipped (asserting it was).
    async fn skipped_why(&self, request: &str) -> String {
        let ids = [request.to_string()];
        let state = self
            .store
            .request_states("acme", &ids)
            .await
            .unwrap()
            .remove(0);
        let why = state.reason.clone().unwrap_or_default();
        assert_eq!(state.state, "skipped", "{request}: {why}");
        why
    }

    /// A request's state in the store (`none` before its first event).
    async fn state(&self, id: &str) -> String {
        let states = self.store.request_states("acme", &[id.to_string()]).await;
        states
            .unwrap()
            .first()
            .map_or("none".into(), |s| s.state.to_string())
    }

    /// The emulator's count of `key` (an endpoint or subrequest kind).
    fn stat(&self, key: &str) -> u64 {
        let stats = self.emu.emulator.stats.lock();
        stats.get(key).copied().unwrap_or(0)
    }

    /// Posts `body` with `headers`; the `status` the connector answered.
    async fn status_of(&self, body: &Value, headers: &[(&str, &str)]) -> String {
        let (_, v) = self.post(body, headers).await;
        v["status"].as_str().unwrap_or_default().to_string()
    }

    fn api_calls(&self) -> u64 {
        self.emu.emulator.usage.lock().used(Instant::now())
    }

    async fn hold(&self) {
        self.store
            .set_status(
                "acme",
                ConnStatus::ReconnectNeeded,
                Some("held by the test"),
            )
            .await
            .unwrap();
    }

    async fn release(&self) {
        self.store
            .set_status("acme", ConnStatus::Healthy, None)
            .await
            .unwrap();
        self.app().wake("acme");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_the_contract_reaches_salesforce() {
    let h = harness(EmulatorConfig::default()).await;
    let mut body: Value =
        serde_json::from_str(include_str!("../../samples/contract-example.json")).unwrap();
    let now = chrono::Utc::now();
    body["request"]["createdAt"] = json!((now + chrono::Duration::seconds(1)).to_rfc3339());
    body["request"]["updatedAt"] = json!((now + chrono::Duration::seconds(2)).to_rfc3339());
    let (s, v) = h.post(&body, &[]).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("queued")), "{v}");
    h.settle(&["REQ-2041".into()]).await;
    let rows = h
        .requests(
            "RequestId__c, Title__c, Summary__c, Urgency__c, Sentiment__c, AiTags__c, Status__c, Assigned_To__c, Csat__c, Permalink__c, requestCreatedAt__c, requestUpdatedAt__c, requestClosedAt__c, requestClosedBy__c, requestInternalNotificationLink__c, requestWebLink__c, Message_Text__c, Customer_Thread__c, Internal_Thread__c, Requestor__r.Email, Account__r.Name, Product__c, Region__c",
            "WHERE RequestId__c = 'REQ-2041'",
        )
        .await;
    let r = &rows[0];
    let s = |k: &str| {
        r[k].as_str()
            .unwrap_or_else(|| panic!("{k} is empty: {r:?}"))
            .to_string()
    };
    assert_eq!(s("Title__c"), "Dashboard returns HTTP 500");
    assert_eq!(s("Status__c"), "In Progress");
    assert_eq!(s("Urgency__c"), "High");
    assert_eq!(s("Sentiment__c"), "Negative");
    assert_eq!(s("AiTags__c"), "bug, dashboard, outage");
    assert_eq!(s("Assigned_To__c"), "Priya Raman");
    assert!(s("Csat__c").contains("4 / 5"));
    assert!(s("Message_Text__c").contains("<a href=\"https://acme.io/dash\">dashboard</a>"));
    assert!(s("Customer_Thread__c").contains("Still broken"));
    assert!(s("Internal_Thread__c").contains("Looking into it"));
    assert_eq!(
        s("requestWebLink__c"),
        "https://app.thena.ai/requests/REQ-2041"
    );
    assert!(s("requestUpdatedAt__c").ends_with('Z'));
    assert_eq!(r["requestClosedAt__c"], Value::Null);
    assert_eq!(r["Requestor__r"]["Email"], "harsh@acme.io");
    assert_eq!(r["Account__r"]["Name"], "Acme Corp");
    assert_eq!(
        s("Product__c"),
        "Request Management; Marketing Automation",
        "a new category got its field before the upsert"
    );
    assert_eq!(s("Region__c"), "EMEA");
    let (s2, v) = h.post(&body, &[]).await;
    assert_eq!(
        (s2, v["status"].as_str()),
        (200, Some("duplicate")),
        "the same body again is a duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_updates_coalesce_into_one_upsert_and_newest_wins() {
    let h = harness(EmulatorConfig::default()).await;
    h.hold().await;
    for v in 1..=10 {
        let (s, _) = h.post(&payload("REQ-C", v * 1000, json!({})), &[]).await;
        assert_eq!(s, 200);
    }
    // Out of order: an older update after the newest, and a repeated delivery
    // (webhook-id is the idempotency key).
    let msg = [("webhook-id", "msg-1")];
    for (updated, extra, headers, want) in [
        (5000, json!({"AI_requestTitle": "stale"}), &[][..], "stale"),
        (11_000, json!({}), &msg[..], "queued"),
        (12_000, json!({}), &msg[..], "duplicate"),
    ] {
        let body = payload("REQ-C", updated, extra);
        assert_eq!(h.status_of(&body, headers).await, want, "version {updated}");
    }
    let upserts_before = h.stat("composite.upsert");
    h.release().await;
    h.settle(&["REQ-C".into()]).await;
    let upserts = h.stat("composite.upsert") - upserts_before;
    assert_eq!(upserts, 1, "twelve events, one write");
    let rows = h
        .requests("Name, Title__c", "WHERE RequestId__c = 'REQ-C'")
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Title__c"], "Title REQ-C v11000");
    assert_eq!(rows[0]["Name"], "REQ-C", "named by its request id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_clears_absent_leaves_alone_and_unchanged_states_cost_nothing() {
    let h = harness(EmulatorConfig::default()).await;
    h.post(
        &payload(
            "REQ-N",
            1000,
            json!({"request": {"closedAt": 1_900_000_000_000i64, "status": "CLOSED"}}),
        ),
        &[],
    )
    .await;
    h.settle(&["REQ-N".into()]).await;
    let r = h
        .requests(
            "requestClosedAt__c, Title__c, Status__c",
            "WHERE RequestId__c = 'REQ-N'",
        )
        .await;
    assert!(r[0]["requestClosedAt__c"].is_string());
    // Re-opened: closedAt null clears it; no title in the payload leaves it alone.
    let mut reopened = payload(
        "REQ-N",
        2000,
        json!({"request": {"closedAt": null, "status": "OPEN"}}),
    );
    reopened.as_object_mut().unwrap().remove("AI_requestTitle");
    h.post(&reopened, &[]).await;
    h.settle(&["REQ-N".into()]).await;
    let r = h
        .requests(
            "requestClosedAt__c, Title__c, Status__c",
            "WHERE RequestId__c = 'REQ-N'",
        )
        .await;
    assert_eq!(r[0]["requestClosedAt__c"], Value::Null);
    assert_eq!(r[0]["Status__c"], "Open");
    assert_eq!(r[0]["Title__c"], "Title REQ-N v1000");
    // The same state again (new delivery, same content): no upsert.
    let calls = h.api_calls();
    let mut same = reopened.clone();
    same["request"]["updatedAt"] = json!(same["request"]["updatedAt"].as_i64().unwrap() + 1);
    h.post(&same, &[]).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    h.settle(&["REQ-N".into()]).await;
    assert!(
        h.api_calls() - calls <= 1,
        "an unchanged record is not sent again ({} calls)",
        h.api_calls() - calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_created_before_the_connection_are_out_of_scope() {
    let h = harness(EmulatorConfig::default()).await;
    let mut old = payload("REQ-OLD", 1000, json!({}));
    old["request"]["createdAt"] = json!("2020-01-01T00:00:00Z");
    let (s, v) = h.post(&old, &[]).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("out_of_scope")));
    assert!(h
        .requests("Id", "WHERE RequestId__c = 'REQ-OLD'")
        .await
        .is_empty());
    let st = h
        .store
        .request_state("acme", "REQ-OLD")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.state, "out_of_scope");
}

/// Requestors that need every resolution step (a known email, a new person
/// at a company domain, a workspace Contact found by name, a new one made
/// there) cost two calls: each step's query goes ahead in one
/// `POST /composite`, and the new Contacts are made in the records' upsert
/// call, the records naming them by reference (REST API guide, "Send Multiple Requests Using
/// Composite"). One step after another, the
/// same batch took six calls (four queries, a creation, an upsert).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resolution_step_is_asked_in_one_call_and_written_in_one() {
    let h = harness(EmulatorConfig::default()).await;
    h.hold().await;
    let person = |name: &str, email: &str| json!({"request": {"requestor": {"name": name, "email": email}, "customer": {"teamName": "Acme Corp"}}});
    let people = [
        ("ST-1", "Harsh Vardhan", "harsh@acme.io"),
        ("ST-2", "Nia New", "nia@acme.io"),
        ("ST-3", "Ann Lee", "ann.lee@gmail.com"),
        ("ST-4", "Gus Gmail", "gus@gmail.com"),
    ];
    for (id, name, email) in people {
        h.post(&payload(id, 1, person(name, email)), &[]).await;
    }
    let stat = |k: &str| h.stat(k);
    let calls = || h.api_calls() - stat("rest.describe");
    let alone = || stat("composite.create") + stat("composite.upsert") + stat("rest.query");
    let (before, before_alone) = (calls(), alone());
    h.release().await;
    let ids: Vec<String> = people.iter().map(|p| p.0.to_string()).collect();
    h.settle(&ids).await;
    assert_eq!(
        calls() - before,
        2,
        "one lookup call, then one write (two new Contacts, four records): {:?}",
        h.emu.emulator.stats.lock()
    );
    assert_eq!(
        alone(),
        before_alone,
        "no query, creation or upsert by itself"
    );
    let rows = h
        .requests(
            "RequestId__c, Requestor__r.Name, Requestor__r.Email, Account__r.Name",
            "ORDER BY RequestId__c",
        )
        .await;
    let of = |i: usize, path: &str| {
        let (rel, field) = path.split_once('.').unwrap();
        rows[i][rel][field].as_str().map(str::to_string)
    };
    for (i, path, want, how) in [
        (0, "Requestor__r.Email", "harsh@acme.io", "by email"),
        (1, "Requestor__r.Email", "nia@acme.io", "new at the domain"),
        (
            2,
            "Requestor__r.Email",
            "ann@acme.io",
            "Ann Lee by name on the workspace Account",
        ),
        (
            3,
            "Requestor__r.Name",
            "Gus Gmail",
            "made on the workspace Account",
        ),
    ] {
        assert_eq!(of(i, path).as_deref(), Some(want), "{how}");
    }
    for i in 0..4 {
        assert_eq!(of(i, "Account__r.Name").as_deref(), Some("Acme Corp"));
    }
}

/// The sync driven by hand, no polling: events taken while the connection is
/// held, then a worker stepped until nothing is due writes each request once,
/// with its newest version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_queue_stepped_until_empty_writes_each_request_once() {
    let h = harness(EmulatorConfig::default()).await;
    h.hold().await;
    let ids: Vec<String> = (0..30).map(|i| format!("HAND-{i}")).collect();
    for id in &ids {
        for v in 1..=2 {
            let status = h.status_of(&payload(id, v * 1000, json!({})), &[]).await;
            assert_eq!(status, "queued", "{id} v{v}");
        }
    }
    let (mut w, _stop) = h.hand_worker("acme", settings()).await;
    let steps = h.step_until_empty(&mut w, "acme").await;
    assert!((1..=5).contains(&steps), "{steps} steps for 30 requests");
    let states = h.store.request_states("acme", &ids).await.unwrap();
    let synced = states.iter().filter(|s| s.state == "synced").count();
    assert_eq!(synced, 30, "{states:?}");
    let rows = h
        .requests("Title__c", "WHERE RequestId__c LIKE 'HAND-%'")
        .await;
    assert_eq!(rows.len(), 30, "each once");
    assert!(rows
        .iter()
        .all(|r| r["Title__c"].as_str().unwrap().ends_with("v2000")));
}

/// Step by step (no pace, no lookup before the step): a young record whose
/// requestor needs Salesforce waits for the next step while the records
/// that need no lookup are written at once; a step of such records only
/// asks and writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_record_that_needs_a_lookup_rides_in_the_others_write() {
    let h = harness(EmulatorConfig::default()).await;
    h.hold().await;
    // A budget long enough that the records stay young.
    let settings = Settings {
        latency_budget: Duration::from_secs(30),
        ..settings()
    };
    let (mut w, _stop) = h.hand_worker("acme", settings).await;
    let stat = |k: &str| h.stat(k);
    let calls = || h.api_calls() - stat("rest.describe");
    let harsh =
        json!({"request": {"requestor": {"name": "Harsh Vardhan", "email": "harsh@acme.io"}}});
    h.post(&payload("WAIT-1", 1, harsh.clone()), &[]).await;
    w.send_due().await;
    assert_eq!(
        h.state("WAIT-1").await,
        "synced",
        "all need Salesforce: asked now"
    );
    h.post(&payload("WAIT-2", 1, harsh), &[]).await;
    let nia = json!({"request": {"requestor": {"name": "Nia New", "email": "nia@acme.io"}}});
    h.post(&payload("WAIT-3", 1, nia), &[]).await;
    let before = calls();
    w.send_due().await;
    assert_eq!(h.state("WAIT-2").await, "synced", "Harsh is remembered");
    assert_eq!(h.state("WAIT-3").await, "pending", "left for the next step");
    assert_eq!(
        calls() - before,
        1,
        "only the write: {:?}",
        h.emu.emulator.stats.lock()
    );
    assert_eq!(
        stat("composite[upsert,query]"),
        1,
        "Nia's lookups rode in the write: {:?}",
        h.emu.emulator.stats.lock()
    );
    // Her lookups landed: the next step makes her Contact and writes her
    // request, in one call.
    w.send_due().await;
    assert_eq!(h.state("WAIT-3").await, "synced");
    assert_eq!(calls() - before, 2, "{:?}", h.emu.emulator.stats.lock());
    assert_eq!(stat("composite[create,upsert]"), 1);
    let row = &h
        .requests(
            "Requestor__r.Email, Account__r.Name",
            "WHERE RequestId__c = 'WAIT-3'",
        )
        .await[0];
    assert_eq!(row["Requestor__r"]["Email"], "nia@acme.io");
    assert_eq!(
        row["Account__r"]["Name"], "Acme Corp",
        "by her email's domain"
    );
}

/// A step that makes new Contacts while lookups ride in its write makes
/// them one subrequest each (the ride needs the composite's room), and the
/// records waiting for them share one upsert with the ready ones. A Contact
/// a Block duplicate rule refuses halts that upsert: the ready record and
/// the one whose match is a Contact are sent again, the one that matches a
/// Lead is skipped with the rule named, and the rider is looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_made_beside_a_ride_are_refused_without_losing_the_rest() {
    let h = harness(EmulatorConfig::default()).await;
    let lead = h.block_duplicates_of_a_lead().await;
    h.hold().await;
    let settings = Settings {
        latency_budget: Duration::from_secs(30),
        ..settings()
    };
    let (mut w, _stop) = h.hand_worker("acme", settings).await;
    let person =
        |name: &str, email: &str| json!({"request": {"requestor": {"name": name, "email": email}}});
    let harsh = person("Harsh Vardhan", "harsh@acme.io");
    h.post(&payload("RIDE-1", 1, harsh.clone()), &[]).await;
    w.send_due().await;
    // Rita (a Lead's match) and Ann Lee (an existing Contact's name on the
    // Account, another email) ride in Harsh's next write.
    h.post(
        &payload("RIDE-2", 1, person("Rita Roe", "rita@acme.io")),
        &[],
    )
    .await;
    h.post(
        &payload("RIDE-3", 1, person("Ann Lee", "ann.lee@acme.io")),
        &[],
    )
    .await;
    h.post(&payload("RIDE-4", 1, harsh), &[]).await;
    w.send_due().await;
    assert_eq!(h.state("RIDE-4").await, "synced");
    assert_eq!(h.state("RIDE-2").await, "pending", "rode");
    // Their Contacts are made beside the next ride (Nia's lookups).
    let nia = person("Nia New", "nia@acme.io");
    h.post(&payload("RIDE-5", 1, nia), &[]).await;
    h.post(
        &payload("RIDE-6", 1, person("Harsh Vardhan", "harsh@acme.io")),
        &[],
    )
    .await;
    w.send_due().await;
    let stats = format!("{:?}", h.emu.emulator.stats.lock());
    assert_eq!(h.stat("composite[other,upsert,query]"), 1, "{stats}");
    assert_eq!(h.state("RIDE-6").await, "synced", "sent again: {stats}");
    let why = h.skipped_why("RIDE-2").await;
    assert!(why.contains(&format!("Lead {lead}")), "{why}");
    h.assert_requestor("RIDE-3", "ann@acme.io").await;
    assert_eq!(h.state("RIDE-5").await, "pending", "Nia rode");
    let before = h.api_calls();
    w.send_due().await;
    assert_eq!(h.state("RIDE-5").await, "synced");
    assert_eq!(
        h.api_calls() - before,
        1,
        "her Contact and her request: one call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_thousand_costs_a_few_dozen_calls() {
    let h = harness(EmulatorConfig::default()).await;
    h.hold().await;
    let people = [
        "harsh@acme.io",
        "ann@acme.io",
        "new1@acme.io",
        "new2@acme.io",
        "x@gmail.com",
    ];
    let ids: Vec<String> = (0..1000).map(|i| format!("B-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let email = people[i % people.len()];
        let (s, _) = h.post(&payload(id, 1000, json!({"request": {"requestor": {"name": format!("Person {}", i % 5), "email": email}}})), &[]).await;
        assert_eq!(s, 200);
    }
    let before = h.api_calls();
    h.release().await;
    h.settle(&ids).await;
    let calls = h.api_calls() - before;
    println!("a burst of 1000 requests from 5 people cost {calls} API calls");
    assert!(
        calls <= 12,
        "1000 requests cost {calls} API calls (5 upserts, a few lookups, one create)"
    );
    let synced = h.store.counts("acme").await.unwrap();
    assert_eq!(synced.synced, 1000, "{synced:?}");
    let contacts =
        h.sf.count("SELECT COUNT() FROM Contact WHERE Email IN ('new1@acme.io', 'new2@acme.io')")
            .await
            .unwrap();
    assert_eq!(
        contacts, 2,
        "one Contact per new person at the company domain"
    );
    // The gmail requestor matched the workspace: a Contact of that name, without email.
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Contact WHERE Name = 'Person 4'")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_resolution_path_end_to_end() {
    let h = harness(EmulatorConfig::default()).await;
    let cases = [
        (
            "P-KNOWN",
            json!({"id": "U1", "name": "Harsh Vardhan", "email": "HARSH@acme.io"}),
            "Acme Corp",
        ),
        (
            "P-DOMAIN",
            json!({"id": "U2", "name": "New Person", "email": "new.person@acme.io"}),
            "Nobody Inc",
        ),
        (
            "P-WORKSPACE",
            json!({"id": "U3", "name": "Gina Gmail", "email": "gina@gmail.com"}),
            " globex corporation ",
        ),
        (
            "P-NOTHING",
            json!({"id": "U4", "name": "Lost", "email": "lost@nowhere.example"}),
            "Nowhere",
        ),
    ];
    for (id, requestor, team) in &cases {
        h.post(
            &payload(
                id,
                1000,
                json!({"request": {"requestor": requestor, "customer": {"teamName": team}}}),
            ),
            &[],
        )
        .await;
    }
    let ids: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    h.settle(&ids).await;
    let rows = h
        .requests(
            "RequestId__c, Requestor__r.Email, Requestor__r.Name, Account__r.Name",
            "ORDER BY RequestId__c",
        )
        .await;
    let by: std::collections::HashMap<String, &serde_json::Map<String, Value>> = rows
        .iter()
        .map(|r| (r["RequestId__c"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(by["P-KNOWN"]["Requestor__r"]["Email"], "harsh@acme.io");
    assert_eq!(by["P-DOMAIN"]["Account__r"]["Name"], "Acme Corp");
    assert_eq!(by["P-DOMAIN"]["Requestor__r"]["Name"], "New Person");
    assert_eq!(
        by["P-WORKSPACE"]["Account__r"]["Name"],
        "Globex Corporation"
    );
    assert_eq!(
        by["P-WORKSPACE"]["Requestor__r"]["Email"],
        Value::Null,
        "a workspace Contact has no email"
    );
    assert!(!by.contains_key("P-NOTHING"));
    let st = h
        .store
        .request_state("acme", "P-NOTHING")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.state, "skipped");
    assert_eq!(st.reason.as_deref(), Some("no Contact for lost@nowhere.example, no Account with Contacts at nowhere.example, no Account named 'Nowhere'"));
    // The Account appears; a retry on demand links it.
    h.sf.create("Account", &json!({"Name": "Nowhere"}))
        .await
        .unwrap();
    assert_eq!(
        h.store
            .retry_skipped("acme", Some("P-NOTHING"))
            .await
            .unwrap(),
        1
    );
    h.app().wake("acme");
    h.settle(&["P-NOTHING".into()]).await;
    let rows = h
        .requests("Account__r.Name", "WHERE RequestId__c = 'P-NOTHING'")
        .await;
    assert_eq!(rows[0]["Account__r"]["Name"], "Nowhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_faults_at_twenty_percent_and_token_expiry_converge_with_nothing_lost() {
    let h = harness(EmulatorConfig::default()).await;
    h.emu
        .emulator
        .faults
        .lock()
        .set(FaultSpec::parse("503=0.1,500=0.05,lock=0.05,expire=4,seed=3").unwrap());
    let ids: Vec<String> = (0..300).map(|i| format!("F-{i}")).collect();
    for id in &ids {
        let (s, _) = h.post(&payload(id, 1000, json!({})), &[]).await;
        assert_eq!(s, 200);
    }
    for id in ids.iter().take(100) {
        h.post(&payload(id, 2000, json!({})), &[]).await;
    }
    h.settle(&ids).await;
    h.emu.emulator.faults.lock().set(FaultSpec::default());
    assert_eq!(h.store.counts("acme").await.unwrap().synced, 300);
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Request__c").await.unwrap(),
        300,
        "exactly once each"
    );
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Request__c WHERE Title__c LIKE '%v2000'")
            .await
            .unwrap(),
        100,
        "the latest state won"
    );
    let injected = h.emu.emulator.faults.lock().injected.clone();
    assert!(
        injected.get("503").copied().unwrap_or(0) > 0
            && injected.get("expire").copied().unwrap_or(0) > 0,
        "{injected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_dead_letters_that_record_only() {
    let h = harness(EmulatorConfig::default()).await;
    // Someone makes Status__c a restricted picklist without "In Progress".
    let restricted = salesforce::metadata::custom_field(
        "Request__c",
        "Status__c",
        "Status",
        &salesforce::metadata::FieldKind::Picklist {
            values: vec!["Open".into()],
            restricted: true,
        },
        false,
        false,
    );
    h.sf.metadata_save(salesforce::metadata::Save::Upsert, &[restricted])
        .await
        .unwrap();
    h.post(&payload("D-OK", 1000, json!({})), &[]).await;
    h.post(
        &payload("D-BAD", 1000, json!({"request": {"status": "IN_PROGRESS"}})),
        &[],
    )
    .await;
    h.settle(&["D-OK".into(), "D-BAD".into()]).await;
    assert_eq!(
        h.requests("Id", "WHERE RequestId__c = 'D-OK'").await.len(),
        1
    );
    let dead = h.store.dead_letters("acme", 10, 0).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].request_id, "D-BAD");
    assert_eq!(dead[0].code, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    assert!(dead[0].message.contains("In Progress"));
    // Fixed in Salesforce, retried from the dead letters: it syncs.
    let open = salesforce::metadata::custom_field(
        "Request__c",
        "Status__c",
        "Status",
        &salesforce::metadata::FieldKind::Picklist {
            values: vec!["Open".into(), "In Progress".into()],
            restricted: false,
        },
        false,
        false,
    );
    h.sf.metadata_save(salesforce::metadata::Save::Upsert, &[open])
        .await
        .unwrap();
    assert_eq!(
        h.store.retry_dead("acme", Some(dead[0].id)).await.unwrap(),
        1
    );
    h.app().wake("acme");
    h.settle(&["D-BAD".into()]).await;
    assert_eq!(
        h.requests("Status__c", "WHERE RequestId__c = 'D-BAD'")
            .await[0]["Status__c"],
        "In Progress"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_budget_pauses_and_resumes() {
    let h = harness(EmulatorConfig {
        daily_api_limit: 1000,
        ..Default::default()
    })
    .await;
    h.emu.emulator.usage.lock().set_used(950, Instant::now());
    h.post(&payload("BUD-1", 1000, json!({})), &[]).await;
    h.settle(&["BUD-1".into()]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.store.connection("acme").await.unwrap().status != ConnStatus::Paused {
        assert!(Instant::now() < deadline, "never paused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.post(&payload("BUD-2", 1000, json!({})), &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.store
            .request_state("acme", "BUD-2")
            .await
            .unwrap()
            .unwrap()
            .state,
        "pending",
        "paused: waits"
    );
    // It says when it looks at the usage again (for the page).
    let deadline = Instant::now() + Duration::from_secs(10);
    while h
        .store
        .last_seen("acme")
        .await
        .unwrap()
        .recheck_ms
        .is_none()
    {
        assert!(Instant::now() < deadline, "never said when it looks again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at = h.store.last_seen("acme").await.unwrap().recheck_ms.unwrap();
    assert!(at > chrono::Utc::now().timestamp_millis() - 1_000);
    h.emu.emulator.usage.lock().set_used(0, Instant::now());
    h.settle(&["BUD-2".into()]).await;
    assert_eq!(
        h.store.connection("acme").await.unwrap().status,
        ConnStatus::Healthy
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_stream_loses_nothing() {
    let mut h = harness(EmulatorConfig {
        latency: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let ids: Vec<String> = (0..400).map(|i| format!("RS-{i}")).collect();
    for id in ids.iter().take(200) {
        h.post(&payload(id, 1000, json!({})), &[]).await;
    }
    h.app.take().unwrap().shutdown().await;
    let app = h.start(settings()).await;
    h.app = Some(app);
    for id in ids.iter().skip(200) {
        let (s, _) = h.post(&payload(id, 1000, json!({})), &[]).await;
        assert_eq!(s, 200);
    }
    h.settle(&ids).await;
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Request__c").await.unwrap(),
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_store_nothing() {
    let h = harness(EmulatorConfig::default()).await;
    let url = format!("{}/webhooks/thena/acme", h.app().url());
    let ok = payload("X-1", 1000, json!({}));
    let r = h.http.post(&url).json(&ok).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");
    let r = h
        .http
        .post(&url)
        .header("Authorization", "Bearer wrong")
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .http
        .post(&url)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "Bearer form accepted");
    let r = h
        .http
        .post(format!("{}/webhooks/thena/nope", h.app().url()))
        .header("Authorization", TOKEN)
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = h
        .http
        .post(&url)
        .header("Authorization", TOKEN)
        .body(r#"{"action":"UPDATE","request":{"requestId":"X","createdAt":"nope","updatedAt":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["path"], "request.createdAt");
    // Over 1 MiB: refused from the headers, before the body is read.
    let path = "/webhooks/thena/acme";
    let base = h.app().url();
    let status = test_support::status_for_length(&base, path, TOKEN, 1024 * 1024 + 1);
    assert_eq!(status.await, 413);
    let states = h
        .store
        .request_states("acme", &["X".to_string()])
        .await
        .unwrap();
    assert!(states.is_empty(), "nothing stored for rejected events");
    let m = h
        .http
        .get(format!("{}/metrics", h.app().url()))
        .fetch_text()
        .await;
    assert!(
        m.contains("thena_sf_events_received_total{connection=\"acme\",result=\"unauthorized\"} 2"),
        "{m}"
    );
    assert!(!m.contains(TOKEN));
    assert_eq!(
        h.http
            .get(format!("{}/readyz", h.app().url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

fn sign(secret_b64: &str, id: &str, ts: i64, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret_b64)
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_with_rotation_and_a_replay_window() {
    let h = harness(EmulatorConfig::default()).await;
    let (old, new) = (
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==",
    );
    let mut conn = h.store.connection("acme").await.unwrap();
    conn.signing_secret = Some(Secret::new(format!("whsec_{old} whsec_{new}")));
    h.store.put_connection(&conn).await.unwrap();
    h.app().add_connection(&conn);
    let body = serde_json::to_vec(&payload("SIG-1", 1000, json!({}))).unwrap();
    let url = format!("{}/webhooks/thena/acme", h.app().url());
    let now = chrono::Utc::now().timestamp();
    let send = |id: &'static str, ts: i64, sig: String| {
        h.http
            .post(&url)
            .header("Authorization", TOKEN)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body.clone())
            .send()
    };
    assert_eq!(
        send("m1", now, sign(old, "m1", now, &body))
            .await
            .unwrap()
            .status(),
        200,
        "the old secret still works"
    );
    assert_eq!(
        send(
            "m2",
            now,
            format!("v1,bm9wZQ== {}", sign(new, "m2", now, &body))
        )
        .await
        .unwrap()
        .status(),
        200,
        "any of several signatures"
    );
    assert_eq!(
        send("m3", now, sign(new, "other-id", now, &body))
            .await
            .unwrap()
            .status(),
        401,
        "signature over another id"
    );
    assert_eq!(
        send("m4", now - 600, sign(new, "m4", now - 600, &body))
            .await
            .unwrap()
            .status(),
        401,
        "a replay outside the window"
    );
    let r = h
        .http
        .post(&url)
        .header("Authorization", TOKEN)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "unsigned");
    let v: Value = r.json().await.unwrap();
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("requires signed webhooks"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_waits_for_a_reconnect_and_loses_nothing() {
    let mut h = harness(EmulatorConfig::default()).await;
    // The org's admin changes the password: the stored login is refused on the next expiry.
    h.emu.emulator.auth.lock().credentials[0].password = "rotated".into();
    h.emu.emulator.auth.lock().expire_all();
    h.post(&payload("RC-1", 1000, json!({})), &[]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.store.connection("acme").await.unwrap().status != ConnStatus::ReconnectNeeded {
        assert!(Instant::now() < deadline, "never asked for a reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        h.store
            .request_state("acme", "RC-1")
            .await
            .unwrap()
            .unwrap()
            .state,
        "pending",
        "nothing dropped"
    );
    let connected_at = h.store.connection("acme").await.unwrap().connected_at;
    let again = h
        .connect(password_connect("acme", &h.emu.base_url, "rotated", None))
        .await;
    assert!(
        again.reconnected && again.webhook_token.is_none(),
        "a reconnect keeps the webhook token"
    );
    let conn = h.store.connection("acme").await.unwrap();
    assert_eq!(
        conn.connected_at, connected_at,
        "and the forward-looking cut-off"
    );
    h.app().add_connection(&conn);
    h.sf = connect::client_for(&h.store, &conn, &h.config);
    h.settle(&["RC-1".into()]).await;
    assert_eq!(
        h.requests("Id", "WHERE RequestId__c = 'RC-1'").await.len(),
        1
    );
    let (s, _) = h.post(&payload("RC-2", 1000, json!({})), &[]).await;
    assert_eq!(s, 200, "the old webhook token still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_settles_every_sample() {
    let c = LocalConnector::sqlite().await;
    let d = thena_sf::demo::run(c.config.clone(), c.store.clone())
        .await
        .unwrap();
    let by: std::collections::HashMap<&str, &thena_sf::demo::Row> =
        d.rows.iter().map(|r| (r.request_id.as_str(), r)).collect();
    assert_eq!(by["REQ-1001"].outcome, "synced");
    assert_eq!(by["REQ-1001"].contact, "Harsh Vardhan <harsh@acme.io>");
    assert_eq!(by["REQ-1002"].account, "Acme Corp");
    assert_eq!(by["REQ-1003"].account, "Globex Corporation");
    assert!(by["REQ-1004"]
        .outcome
        .starts_with("skipped: no Contact for zed@nowhere.example"));
    assert!(by["REQ-1005"]
        .outcome
        .contains("outlook.com is a public mail domain"));
    assert!(by["REQ-0999"].outcome.starts_with("out_of_scope"));
    assert_eq!(by["TKT-2001"].outcome, "synced", "a platform ticket event");
    assert_eq!(by["TKT-2001"].contact, "Dana Whitfield <dana@acme.io>");
    assert!(d.deliveries.iter().any(|(_, a)| a == "200 ignored"));
    assert!(
        d.deliveries.iter().any(|(_, a)| a == "200 duplicate")
            && d.deliveries.iter().any(|(_, a)| a == "200 stale")
    );
    let table = thena_sf::demo::render(&d.rows);
    assert!(table.contains("Why:") && table.contains("REQ-1004"));
    d.app.shutdown().await;
    d.emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_org_never_slows_another() {
    let h = harness(EmulatorConfig::default()).await;
    // A second org whose every API call fails.
    let broken = test_support::emulator::start_with(seed()).await;
    h.connect_emulator("broken", &broken.base_url, Some(TOKEN))
        .await;
    h.app()
        .add_connection(&h.store.connection("broken").await.unwrap());
    broken
        .emulator
        .faults
        .lock()
        .set(FaultSpec::parse("hang=1").unwrap());
    let url = format!("{}/webhooks/thena/broken", h.app().url());
    for i in 0..50 {
        let (s, _) = {
            let r = h
                .http
                .post(&url)
                .header("Authorization", TOKEN)
                .json(&payload(&format!("BRK-{i}"), 1000, json!({})))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), ())
        };
        assert_eq!(s, 200, "ingest never waits on Salesforce");
    }
    let ids: Vec<String> = (0..50).map(|i| format!("OK-{i}")).collect();
    let started = Instant::now();
    for id in &ids {
        h.post(&payload(id, 1000, json!({})), &[]).await;
    }
    h.settle(&ids).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the healthy org synced while the other hung"
    );
    assert_eq!(
        h.store.counts("broken").await.unwrap().pending,
        50,
        "the hung org's requests wait, nothing lost"
    );
}

/// A Thena platform ticket event (shared/reference/thena-platform-events.md).
fn ticket_event(event_id: &str, event_type: &str, ts_ms: i64, ticket: Value) -> Value {
    json!({"eventId": event_id, "eventType": event_type, "timestamp": ts_ms, "orgId": "OG1",
           "actor": {"id": "A1", "type": "AGENT", "email": "priya@vendor.example"},
           "payload": {"ticket": ticket}})
}

/// Platform ticket events take the same route and token (here in the URL,
/// where a webhook app can put it) and reach the same `Request__c`: create,
/// an update out of order, a duplicate `eventId`, the envelope wrapped in
/// `message`, a category, a close by the actor, delete, and event types we
/// do not use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thena_platform_ticket_events_reach_the_same_request() {
    let h = harness(EmulatorConfig::default()).await;
    let post = |body: Value| h.post_with_url_token(body);
    let t0 = chrono::Utc::now().timestamp_millis() + 1000;
    let ticket = |status: &str, title: &str, updated: i64| {
        json!({"id": "CT-1", "ticketId": "2041", "title": title, "description": "Dashboard *500*",
               "statusName": status, "priorityName": "High", "sentimentName": "Negative",
               "createdAt": t0, "updatedAt": updated, "teamName": "Vendor Support",
               "customer": {"id": "C1", "email": "harsh@acme.io", "name": "Harsh Vardhan"},
               "assignedAgent": {"id": "U9", "name": "Priya Raman"}, "tags": ["bug", "dashboard"],
               "customFields": {"Product": "Analytics"}})
    };
    let (s, v) = post(ticket_event(
        "E1",
        "ticket:created",
        t0,
        ticket("Open", "v1", t0),
    ))
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("queued")), "{v}");
    // A newer update, wrapped as the app framework's docs show; then an older one, late.
    let wrapped = json!({"message": ticket_event("E3", "ticket:updated", t0 + 2000, ticket("In Progress", "v3", t0 + 2000)), "messageAttributes": {}});
    assert_eq!(post(wrapped).await.0, 200);
    let (s, v) = post(ticket_event(
        "E2",
        "ticket:updated",
        t0 + 1000,
        ticket("Open", "v2", t0 + 1000),
    ))
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("stale")), "{v}");
    let (s, v) = post(ticket_event(
        "E3",
        "ticket:updated",
        t0 + 2000,
        ticket("In Progress", "v3", t0 + 2000),
    ))
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("duplicate")), "{v}");
    for unused in [
        "account:created",
        "user:updated",
        "organization:updated",
        "ticket:sla:breached",
    ] {
        let (s, v) = post(json!({"eventId": format!("X-{unused}"), "eventType": unused, "timestamp": t0, "payload": {}})).await;
        assert_eq!(
            (s, v["status"].as_str()),
            (200, Some("ignored")),
            "{unused}: {v}"
        );
    }
    let (s, v) = post(
        json!({"event_type": "app:installation", "installation_id": "I1", "team_ids": ["T1"]}),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("recorded")), "{v}");
    let (s, v) = post(json!({"eventType": "ticket:created", "payload": {}})).await;
    assert_eq!((s, v["path"].as_str()), (400, Some("eventId")), "{v}");
    let row = &h.synced_row("CT-1", "Title__c, Status__c, Urgency__c, Sentiment__c, Assigned_To__c, AiTags__c, Product__c, Message_Text__c, Requestor__r.Email, Account__r.Name").await;
    assert_eq!(row["Title__c"], "v3");
    assert_eq!(row["Status__c"], "In Progress");
    assert_eq!(row["Urgency__c"], "High");
    assert_eq!(row["Sentiment__c"], "Negative");
    assert_eq!(row["Assigned_To__c"], "Priya Raman");
    assert_eq!(row["AiTags__c"], "bug, dashboard");
    assert_eq!(row["Product__c"], "Analytics");
    assert_eq!(row["Requestor__r"]["Email"], "harsh@acme.io");
    assert_eq!(
        row["Account__r"]["Name"], "Acme Corp",
        "by the customer's domain, never the vendor's teamName"
    );

    // Closed by this event: closed at its time, by its actor.
    let closed = json!({"eventId": "E4", "eventType": "ticket:status:changed", "timestamp": t0 + 3000,
        "actor": {"id": "A1", "email": "priya@vendor.example"},
        "payload": {"ticket": ticket("Closed", "v3", t0 + 3000), "previousTicket": ticket("In Progress", "v3", t0 + 2000)}});
    assert_eq!(post(closed).await.0, 200);
    let row = &h
        .synced_row("CT-1", "Status__c, requestClosedAt__c, requestClosedBy__c")
        .await;
    assert_eq!(row["Status__c"], "Closed");
    assert_eq!(row["requestClosedBy__c"], "priya@vendor.example");
    assert!(
        row["requestClosedAt__c"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{row:?}"
    );

    // Deleted: the record stays, with the status the reference names.
    let deleted = json!({"eventId": "E5", "eventType": "ticket:deleted", "timestamp": t0 + 4000,
        "payload": {"previousTicket": ticket("Closed", "v3", t0 + 3000)}});
    assert_eq!(post(deleted).await.0, 200);
    let row = &h.synced_row("CT-1", "Status__c, Title__c").await;
    assert_eq!(
        (row["Status__c"].as_str(), row["Title__c"].as_str()),
        (Some("Deleted"), Some("v3"))
    );
    // The token is checked from the URL too.
    let r = h
        .http
        .post(format!("{}/webhooks/thena/acme?token=wrong", h.app().url()))
        .json(&ticket_event(
            "E6",
            "ticket:updated",
            t0 + 5000,
            ticket("Open", "x", t0 + 5000),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Comment events build the threads from the comments the connector keeps
/// (one arriving before its ticket, out of order, edited, deleted), a CSAT
/// event fills Csat__c, neither rewrites the ticket's fields nor is stopped
/// by "newest wins"; installation events record the organisation, and
/// another organisation's events are acknowledged and not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thena_platform_comments_csat_and_installation() {
    let h = harness(EmulatorConfig::default()).await;
    let post = |body: Value| h.post_with_url_token(body);
    let t0 = chrono::Utc::now().timestamp_millis() + 1000;
    let comment = |event: &str, kind: &str, c: Value, at: i64| {
        json!({"eventId": event, "eventType": kind, "timestamp": at, "orgId": "OG1",
               "actor": {"email": "priya@vendor.example"},
               "payload": {"ticketId": "CT-9", "comment": c}})
    };
    let installed = json!({"event_type": "app:installation", "installation_id": "I1",
        "organization_id": "OG1", "team_ids": ["T1", "T2"], "bot_token": "xoxb-secret"});
    assert_eq!(post(installed).await.1["status"], "recorded");
    let app = h.store.connection("acme").await.unwrap().thena_app.unwrap();
    assert_eq!(
        (app.org_id.as_deref(), app.team_ids.len(), app.feeding()),
        (Some("OG1"), 2, true)
    );
    // A customer's comment before the ticket itself has arrived: kept.
    let (s, v) = post(comment("C1", "ticket:comment:created",
        json!({"id": "CM2", "content": "second, early", "customerContactId": "CC1", "createdAt": t0 + 500}), t0 + 500)).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("queued")), "{v}");
    let ticket = json!({"id": "CT-9", "title": "export fails", "statusName": "Open", "createdAt": t0, "updatedAt": t0,
        "customer": {"id": "C1", "email": "harsh@acme.io", "name": "Harsh Vardhan"}});
    let created = json!({"eventId": "T1", "eventType": "ticket:created", "timestamp": t0, "orgId": "OG1",
        "payload": {"ticket": ticket, "comment": {"id": "CM1", "content": "first", "customerContactId": "CC1", "createdAt": t0}}});
    assert_eq!(post(created).await.1["status"], "queued");
    h.settle(&["CT-9".into()]).await;
    let fields = "Title__c, Customer_Thread__c, Internal_Thread__c, Csat__c, requestCreatedAt__c, requestUpdatedAt__c";
    let first = h.requests(fields, "WHERE RequestId__c = 'CT-9'").await[0].clone();
    let thread = first["Customer_Thread__c"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        thread.find("first").unwrap() < thread.find("second, early").unwrap(),
        "{thread}"
    );
    assert!(first["Internal_Thread__c"].is_null());

    // An internal note, an earlier comment arriving late, an edit, a CSAT score.
    post(comment("C2", "ticket:comment:added",
        json!({"id": "CM3", "content": "checking the logs", "commentVisibility": "private", "createdAt": t0 + 900}), t0 + 900)).await;
    post(comment(
        "C3",
        "ticket:comment:created",
        json!({"id": "CM0", "content": "zeroth", "customerContactId": "CC1", "createdAt": t0 - 10}),
        t0 + 950,
    ))
    .await;
    post(comment("C4", "ticket:comment:updated",
        json!({"id": "CM2", "content": "second, edited", "customerContactId": "CC1", "createdAt": t0 + 500}), t0 + 960)).await;
    let csat = json!({"eventId": "S1", "eventType": "ticket:csat:received", "timestamp": t0 + 970, "orgId": "OG1",
        "payload": {"ticketId": "CT-9", "csat": {"rating": 4, "feedback": "quick fix"}}});
    assert_eq!(post(csat).await.1["status"], "queued");
    // Another organisation pointed at this connection: acknowledged, not applied.
    let mut foreign = comment(
        "X1",
        "ticket:comment:added",
        json!({"id": "CMX", "content": "not ours", "createdAt": t0}),
        t0,
    );
    foreign["orgId"] = json!("OG2");
    let (s, v) = post(foreign).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (200, Some("out_of_scope")),
        "{v}"
    );
    h.settle(&["CT-9".into()]).await;
    let row = h.requests(fields, "WHERE RequestId__c = 'CT-9'").await[0].clone();
    let thread = row["Customer_Thread__c"].as_str().unwrap().to_string();
    let at = |t: &str| thread.find(t).unwrap_or_else(|| panic!("{t} in {thread}"));
    assert!(
        at("zeroth") < at("first") && at("first") < at("second, edited"),
        "{thread}"
    );
    assert!(
        !thread.contains("second, early") && !thread.contains("not ours"),
        "{thread}"
    );
    assert!(row["Internal_Thread__c"]
        .as_str()
        .unwrap()
        .contains("checking the logs"));
    assert!(
        row["Csat__c"].as_str().unwrap().contains("4 / 5"),
        "{row:?}"
    );
    for same in ["Title__c", "requestCreatedAt__c", "requestUpdatedAt__c"] {
        assert_eq!(
            row[same], first[same],
            "{same}: a comment changes no ticket field"
        );
    }

    // The note deleted; then a stale ticket event: refused as stale, threads kept.
    post(comment(
        "C5",
        "ticket:comment:deleted",
        json!({"id": "CM3"}),
        t0 + 980,
    ))
    .await;
    let old = json!({"eventId": "T0", "eventType": "ticket:updated", "timestamp": t0 - 1, "orgId": "OG1",
        "payload": {"ticket": {"id": "CT-9", "title": "older", "createdAt": t0, "updatedAt": t0 - 1}}});
    assert_eq!(post(old).await.1["status"], "stale");
    h.settle(&["CT-9".into()]).await;
    let row = h.requests(fields, "WHERE RequestId__c = 'CT-9'").await[0].clone();
    assert!(row["Internal_Thread__c"].is_null(), "{row:?}");
    assert_eq!(row["Title__c"], "export fails");
    assert!(row["Customer_Thread__c"]
        .as_str()
        .unwrap()
        .contains("zeroth"));

    let uninstalled =
        json!({"event_type": "app:uninstall", "installation_id": "I1", "organization_id": "OG1"});
    assert_eq!(post(uninstalled).await.1["status"], "recorded");
    let app = h.store.connection("acme").await.unwrap().thena_app.unwrap();
    assert!(!app.feeding());
}

/// An org too large to scan by domain (`--scan-timeout-rows`) with person
/// accounts: the emulator refuses the leading-wildcard aggregate with
/// QUERY_TIMEOUT and a business Contact under a person account; the
/// connector then finds domains by SOSL, remembers them across batches, and
/// never takes a person account for a company, by domain or by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_orgs_are_searched_and_person_accounts_are_never_companies() {
    let mut contacts = vec![
        json!({"FirstName": "Joe", "LastName": "Ng", "Email": "joe@initech.io", "AccountName": "Initech"}),
        // A hyphen is reserved in SOSL: the search must escape it.
        json!({"FirstName": "Ida", "LastName": "Ro", "Email": "ida@init-tech.io", "AccountName": "Init Tech"}),
    ];
    for i in 0..600 {
        contacts.push(json!({"LastName": format!("Filler {i}"), "Email": format!("f{i}@globex.example"), "AccountName": "Globex Corporation"}));
    }
    let seed: Seed = serde_json::from_value(json!({
        "org": {"person_accounts": true, "scan_timeout_rows": 500},
        // Older than every business account: a tie at initech.io would pick it.
        "person_accounts": [{"FirstName": "Pat", "LastName": "Lee", "PersonEmail": "pat@initech.io"}],
        "accounts": [{"Name": "Initech"}, {"Name": "Init Tech"}, {"Name": "Globex Corporation"}, {"Name": "Acme Corp"}],
        "contacts": contacts,
    }))
    .unwrap();
    let h = harness(EmulatorConfig {
        seed,
        ..Default::default()
    })
    .await;
    // The emulator refuses what a large real org refuses.
    let e = h
        .sf
        .query("SELECT AccountId, COUNT(Id) n FROM Contact WHERE Email LIKE '%@initech.io' GROUP BY AccountId")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("QUERY_TIMEOUT"), "{e}");
    let person = &h
        .sf
        .query("SELECT Id FROM Account WHERE IsPersonAccount = true")
        .await
        .unwrap()[0];
    let e =
        h.sf.create(
            "Contact",
            &json!({"LastName": "Biz", "AccountId": person["Id"]}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("INVALID_PERSON_ACCOUNT_OPERATION"),
        "{e}"
    );

    let stat = |k: &str| h.stat(k);
    let person_of = |id: &str, email: &str, team: &str| json!({"request": {"requestId": id, "requestor": {"id": id, "name": "New Person", "email": email}, "customer": {"teamName": team}}});
    for (id, email, team) in [
        ("BIG-1", "new@initech.io", "Nobody Inc"),
        ("BIG-2", "someone@gmail.com", "Pat Lee"),
        ("BIG-4", "new@init-tech.io", "Nobody Inc"),
    ] {
        h.post(&payload(id, 1, person_of(id, email, team)), &[])
            .await;
    }
    h.settle(&["BIG-1".into(), "BIG-2".into(), "BIG-4".into()])
        .await;
    let rows = h
        .requests("Account__r.Name", "WHERE RequestId__c = 'BIG-4'")
        .await;
    assert_eq!(
        rows[0]["Account__r"]["Name"], "Init Tech",
        "a hyphenated domain, escaped in SOSL"
    );
    let rows = h
        .requests(
            "RequestId__c, Account__r.Name",
            "WHERE RequestId__c = 'BIG-1'",
        )
        .await;
    assert_eq!(
        rows[0]["Account__r"]["Name"], "Initech",
        "by SOSL, never the older person account"
    );
    let states = h
        .store
        .request_states("acme", &["BIG-2".into()])
        .await
        .unwrap();
    assert_eq!(
        states[0].state, "skipped",
        "the person account's name is no company"
    );
    let searches = stat("rest.search");
    assert!(searches >= 1, "the timeout led to a search");

    // The next batch at the same domain asks Salesforce nothing about it.
    let (composites, queries) = (stat("composite"), stat("rest.query"));
    h.post(
        &payload(
            "BIG-3",
            1,
            person_of("BIG-3", "third@initech.io", "Nobody Inc"),
        ),
        &[],
    )
    .await;
    h.settle(&["BIG-3".into()]).await;
    let rows = h
        .requests("Account__r.Name", "WHERE RequestId__c = 'BIG-3'")
        .await;
    assert_eq!(rows[0]["Account__r"]["Name"], "Initech");
    assert_eq!(stat("rest.search"), searches, "the domain was remembered");
    assert_eq!(
        (stat("composite") - composites, stat("rest.query") - queries),
        (2, 1),
        "one lookup call (the email, with what the later steps might ask, no domain query), one write (the new Contact with its record), and this test's own query"
    );
}

/// A real org may run a scan of its Contacts by domain for about two
/// minutes before it answers `QUERY_TIMEOUT` (salesforce-api.md §9.5), longer
/// than the connector's client waits. The connector reads its own timeout as
/// that answer and searches instead. Before, every retry asked the same
/// scan again, timed out again, and nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_the_org_does_not_answer_in_time_is_searched_instead() {
    let mut contacts = vec![
        json!({"FirstName": "Joe", "LastName": "Ng", "Email": "joe@initech.io", "AccountName": "Initech"}),
    ];
    for i in 0..600 {
        contacts.push(json!({"LastName": format!("Filler {i}"), "Email": format!("f{i}@globex.example"), "AccountName": "Globex Corporation"}));
    }
    let seed: Seed = serde_json::from_value(json!({
        "org": {"scan_timeout_rows": 500, "scan_timeout_wait_ms": 10_000},
        "accounts": [{"Name": "Initech"}, {"Name": "Globex Corporation"}],
        "contacts": contacts,
    }))
    .unwrap();
    // The worker's client waits 3 s; the org answers the scan after 10.
    let emu_config = EmulatorConfig {
        seed,
        ..Default::default()
    };
    let h = harness_where(emu_config, |c| c.api_timeout_secs = 3).await;
    let body = json!({"request": {"requestor": {"id": "U1", "name": "New Person", "email": "new@initech.io"}, "customer": {"teamName": "Nobody Inc"}}});
    h.post(&payload("SLOW-1", 1, body), &[]).await;
    h.settle(&["SLOW-1".into()]).await;
    let rows = h
        .requests("Account__r.Name", "WHERE RequestId__c = 'SLOW-1'")
        .await;
    assert_eq!(
        rows.first().map(|r| r["Account__r"]["Name"].clone()),
        Some(json!("Initech")),
        "the domain's Account, found by search"
    );
    assert!(h.stat("rest.search") >= 1, "the timeout led to a search");
}

/// A numeric `requestId` past 64 bits reaches Salesforce with every digit
/// (JSON numbers that large would otherwise become floating point).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_request_ids_keep_their_exact_digits() {
    let h = harness(EmulatorConfig::default()).await;
    let created = chrono::Utc::now().timestamp_millis() + 1;
    let body = format!(
        r#"{{"action": "CREATE", "request": {{"requestId": 123456789012345678901234567, "createdAt": {created}, "updatedAt": {created},
            "requestor": {{"id": "U1", "name": "Harsh Vardhan", "email": "harsh@acme.io"}}}}}}"#
    );
    let r = h
        .http
        .post(format!("{}/webhooks/thena/acme", h.app().url()))
        .header("Authorization", TOKEN)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = "123456789012345678901234567".to_string();
    h.settle(std::slice::from_ref(&id)).await;
    let rows = h
        .requests("RequestId__c", &format!("WHERE RequestId__c = '{id}'"))
        .await;
    assert_eq!(rows.len(), 1);
}

/// Salesforce reads any `@{...}` in a composite body as a reference: a
/// batch whose text holds one goes the old way (the new Contacts made
/// first, then the upserts) and every record arrives with its text intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_reads_like_a_composite_reference_stays_text() {
    let h = harness(EmulatorConfig::default()).await;
    let stat = |k: &str| h.stat(k);
    h.hold().await;
    let title = "Mail merge shows @{contact.name} instead of the name";
    let known = json!({"AI_requestTitle": title, "request": {"requestor": {"id": "U1", "name": "Harsh Vardhan", "email": "harsh@acme.io"}}});
    let new = json!({"request": {"requestor": {"id": "U9", "name": "Ref Tester", "email": "ref@acme.io"}}});
    h.post(&payload("REF-1", 1, known), &[]).await;
    h.post(&payload("REF-2", 1, new), &[]).await;
    h.release().await;
    h.settle(&["REF-1".into(), "REF-2".into()]).await;
    let rows = h
        .requests(
            "RequestId__c, Title__c, Requestor__r.Email",
            "ORDER BY RequestId__c",
        )
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["Title__c"], title);
    assert_eq!(rows[1]["Requestor__r"]["Email"], "ref@acme.io");
    // Sent together, the title would halt its upsert (an invalid reference)
    // and the record would wait for the next step.
    assert_eq!(
        (stat("composite.create"), stat("composite.upsert")),
        (1, 1),
        "the Contact made by itself, then both records: {:?}",
        h.emu.emulator.stats.lock()
    );
}

/// Duplicate rules as a new org has them (alerting) let the connector's new
/// Contacts save, because it sends the allowSave header; under a Block rule
/// a matched Contact becomes the requestor, and a match on a Lead skips the
/// request with the rule and the record named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_rules_alerting_blocking_and_matched_records() {
    let h = harness(EmulatorConfig::default()).await;
    let lead = h
        .sf
        .create("Lead", &json!({"LastName": "Patel", "FirstName": "Maya", "Email": "maya@acme.io", "Company": "Acme"}))
        .await
        .unwrap();
    let person = |name: &str, email: &str| json!({"request": {"requestor": {"id": "U7", "name": name, "email": email}}});
    // Alert (a new org's rule): the Lead matches, the header lets the Contact save.
    let (s, _) = h
        .post(
            &payload("DUP-1", 1, person("Maya Patel", "maya@acme.io")),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    let row = &h
        .synced_row("DUP-1", "Requestor__r.Email, Account__r.Name")
        .await;
    assert_eq!(row["Requestor__r"]["Email"], "maya@acme.io", "{row:?}");

    // Block: no header helps.
    let lead2 = h.block_duplicates_of_a_lead().await;
    let (s, _) = h
        .post(
            &payload("DUP-2", 1, person("Rita Roe", "rita@acme.io")),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    // The same name on the same Account as an existing Contact, another email.
    let (s, _) = h
        .post(
            &payload("DUP-3", 1, person("Ann Lee", "ann.lee@acme.io")),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    h.settle(&["DUP-2".into(), "DUP-3".into()]).await;
    let why = h.skipped_why("DUP-2").await;
    assert!(
        why.contains("Standard_Contact_Duplicate_Rule") && why.contains(&format!("Lead {lead2}")),
        "{why}"
    );
    // The matched Contact is the requestor.
    h.assert_requestor("DUP-3", "ann@acme.io").await;
    let _ = lead;
}

/// An `updatedAt` far in the future would freeze a request (every real
/// update after it is "stale"): refused, naming the field. Link fields take
/// only http(s) URLs; anything else is left empty and noted on the activity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_timestamps_are_refused_and_links_must_be_web_urls() {
    let h = harness(EmulatorConfig::default()).await;
    let hour = 3_600_000;
    let (s, v) = h.post(&payload("FUT-1", hour, json!({})), &[]).await;
    assert_eq!(
        (s, v["path"].as_str()),
        (400, Some("request.updatedAt")),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("in the future"),
        "{v}"
    );
    let (s, _) = h.post(&payload("FUT-1", 1000, json!({})), &[]).await;
    assert_eq!(s, 200, "a few seconds ahead (clock skew) is fine");
    let links = json!({"request": {"permalink": "javascript:alert(1)", "requestLink": "https://app.thena.ai/r/LNK-1", "internalNotificationLink": "slack://channel?id=C1"}});
    let (s, _) = h.post(&payload("LNK-1", 1, links), &[]).await;
    assert_eq!(s, 200);
    h.settle(&["FUT-1".into(), "LNK-1".into()]).await;
    let row = &h
        .requests(
            "Permalink__c, requestWebLink__c, requestInternalNotificationLink__c",
            "WHERE RequestId__c = 'LNK-1'",
        )
        .await[0];
    assert_eq!(row["Permalink__c"], Value::Null);
    assert_eq!(row["requestInternalNotificationLink__c"], Value::Null);
    assert_eq!(row["requestWebLink__c"], "https://app.thena.ai/r/LNK-1");
    let activity = h.store.activity("acme", 10, 0).await.unwrap();
    let a = activity.iter().find(|a| a.request_id == "LNK-1").unwrap();
    assert!(
        a.detail.as_deref().unwrap().contains(
            "Permalink__c, requestInternalNotificationLink__c left empty: not an http(s) URL"
        ),
        "{a:?}"
    );
}

/// 200 new requestors with long emails and names in other scripts arrive
/// together: every lookup fits a real org's request line (the emulator
/// answers 414 past 16,384 bytes, as Salesforce's front door does), so each
/// request is resolved (here: skipped, nobody matches), none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_for_long_values_in_any_script_fit_the_uri_limit() {
    let h = harness(EmulatorConfig::default()).await;
    h.hold().await;
    let mut ids = Vec::new();
    for i in 0..200 {
        let id = format!("URI-{i}");
        let who = json!({"request": {"requestor": {"id": format!("U{i}"), "name": format!("Ünïcødé Ñandú 测试测试 {i}"),
            "email": format!("ñandú.{i}.测试测试测试@例え{i}.jp")}, "customer": {"teamName": format!("Компания номер {i} 株式会社")}}});
        assert_eq!(h.post(&payload(&id, 1, who), &[]).await.0, 200);
        ids.push(id);
    }
    h.release().await;
    h.settle(&ids).await;
    let states = h.store.request_states("acme", &ids).await.unwrap();
    assert!(
        states.iter().all(|s| s.state == "skipped"),
        "{:?}",
        states.iter().find(|s| s.state != "skipped")
    );
    assert_eq!(h.store.counts("acme").await.unwrap().dead_letters, 0);
    let refused = h.emu.emulator.stats.lock().get("refused.414").copied();
    assert_eq!(refused, None, "a lookup was too long for a real org");
}

/// A requestor email Salesforce would refuse is treated as no email: the
/// workspace step decides, and a skip says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_salesforce_would_refuse_is_no_email() {
    let h = harness(EmulatorConfig::default()).await;
    let who = |team: &str| json!({"request": {"requestor": {"id": "U9", "name": "Fig Pig", "email": "fig@pig"}, "customer": {"teamName": team}}});
    assert_eq!(
        h.post(&payload("EM-1", 1, who("Acme Corp")), &[]).await.0,
        200
    );
    assert_eq!(
        h.post(&payload("EM-2", 1, who("Nobody Ltd")), &[]).await.0,
        200
    );
    h.settle(&["EM-1".into(), "EM-2".into()]).await;
    let row = &h
        .requests(
            "Requestor__r.Name, Requestor__r.Email, Account__r.Name",
            "WHERE RequestId__c = 'EM-1'",
        )
        .await[0];
    assert_eq!(row["Account__r"]["Name"], "Acme Corp", "{row:?}");
    assert_eq!(row["Requestor__r"]["Email"], Value::Null);
    let st = h
        .store
        .request_states("acme", &["EM-2".into()])
        .await
        .unwrap();
    assert!(
        st[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("the email 'fig@pig' is not one Salesforce accepts"),
        "{:?}",
        st[0].reason
    );
    assert_eq!(h.store.counts("acme").await.unwrap().dead_letters, 0);
}

/// A call that keeps failing with a permanent error is not retried for ever:
/// after a few tries its records are dead letters carrying the call's error,
/// and they go through once the cause is gone and they are retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_keeps_failing_for_good_dead_letters_its_records() {
    let h = harness(EmulatorConfig::default()).await;
    h.emu.emulator.faults.lock().spec.refused = 1.0;
    assert_eq!(h.post(&payload("PERM-1", 1, json!({})), &[]).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let d = h.store.dead_letters("acme", 10, 0).await.unwrap();
        if !d.is_empty() {
            break d;
        }
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (dead[0].request_id.as_str(), dead[0].code.as_str()),
        ("PERM-1", "INVALID_OPERATION")
    );
    let tries = h
        .emu
        .emulator
        .faults
        .lock()
        .injected
        .get("400")
        .copied()
        .unwrap_or(0);
    assert!((5..=6).contains(&tries), "{tries} refused calls");
    h.emu.emulator.faults.lock().spec.refused = 0.0;
    h.store.retry_dead("acme", None).await.unwrap();
    h.app().wake("acme");
    h.settle(&["PERM-1".into()]).await;
    assert_eq!(
        h.requests("Id", "WHERE RequestId__c = 'PERM-1'")
            .await
            .len(),
        1
    );
}

/// Saves `Request__c` with this `<nameField>` (as an earlier version, or
/// provisioning, would).
async fn save_name_field(sf: &salesforce::Client, name_field: &str) {
    let object = salesforce::metadata::Component {
        kind: "CustomObject",
        full_name: "Request__c".into(),
        body: format!("<deploymentStatus>Deployed</deploymentStatus><label>Request</label>{name_field}<pluralLabel>Requests</pluralLabel><sharingModel>ReadWrite</sharingModel>"),
    };
    let r = sf
        .metadata_save(salesforce::metadata::Save::Update, &[object])
        .await
        .unwrap();
    assert!(r[0].success, "{r:?}");
}

/// The Name field becomes Text (provisioning switched an org's auto-number)
/// while the worker holds a describe from before: the first write of a new
/// record is refused for want of a Name; the worker sets up again, reads
/// describe afresh, and the retry names the record. Nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_became_text_under_a_running_worker_is_picked_up() {
    let h = harness(EmulatorConfig::default()).await;
    // As an earlier version left it: records numbered by the org.
    save_name_field(&h.sf, "<nameField><displayFormat>REQ-{000000}</displayFormat><label>Request Number</label><type>AutoNumber</type></nameField>").await;
    h.post(&payload("NT-1", 1000, json!({})), &[]).await;
    let first = h.synced_row("NT-1", "Name").await;
    assert!(
        first["Name"].as_str().unwrap().starts_with("REQ-0"),
        "{first:?}"
    );
    // Switched to Text under the running worker.
    save_name_field(
        &h.sf,
        "<nameField><label>Request Name</label><type>Text</type></nameField>",
    )
    .await;
    h.post(&payload("NT-2", 1000, json!({})), &[]).await;
    let second = h.synced_row("NT-2", "Name").await;
    assert_eq!(second["Name"], "NT-2");
    assert_eq!(h.store.counts("acme").await.unwrap().dead_letters, 0);
}
