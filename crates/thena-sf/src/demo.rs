//! `thena-sf demo`: the whole product on its embedded defaults. Starts the
//! emulator in-process (seeded), connects and provisions it, serves, feeds
//! sample Thena webhooks that exercise every resolution path, waits until they
//! settle and prints what happened to each.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use salesforce::Secret;
use serde_json::{json, Value};

use crate::app::App;
use crate::config::Config;
use crate::connect::{self, ConnectRequest};
use crate::crypto;
use crate::store::{ReqState, Store};
use crate::sync::Settings;
use crate::Error;

pub const CONNECTION: &str = "demo";

/// The org the demo starts with.
pub fn seed() -> sf_emulator::Seed {
    serde_json::from_value(json!({
        "accounts": [
            {"Name": "Acme Corp", "Website": "acme.io", "Industry": "Software"},
            {"Name": "Globex Corporation", "Website": "globex.example", "Industry": "Manufacturing"}
        ],
        "contacts": [
            {"FirstName": "Harsh", "LastName": "Vardhan", "Email": "harsh@acme.io", "AccountName": "Acme Corp"},
            {"FirstName": "Dana", "LastName": "Whitfield", "Email": "dana@acme.io", "AccountName": "Acme Corp"},
            {"FirstName": "Hank", "LastName": "Scorpio", "Email": "hank@globex.example", "AccountName": "Globex Corporation"}
        ]
    }))
    .expect("the demo seed is valid")
}

/// One delivery of the sample feed.
pub struct Delivery {
    pub note: &'static str,
    pub webhook_id: Option<&'static str>,
    pub body: Value,
}

fn at(t: DateTime<Utc>, secs: i64) -> String {
    (t + chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[allow(clippy::too_many_arguments)]
fn request(
    id: &str,
    created: &str,
    updated: &str,
    status: &str,
    requestor: Value,
    team: &str,
    title: &str,
    extra: Value,
) -> Value {
    let mut v = json!({
        "action": "UPDATE",
        "request": {
            "requestId": id, "status": status, "createdAt": created, "updatedAt": updated,
            "requestor": requestor, "customer": {"teamId": "T0", "teamName": team},
            "channelName": "ext-support", "permalink": format!("https://slack.example/archives/C0/{id}"),
            "requestLink": format!("https://app.thena.ai/requests/{id}"),
            "messageText": format!("Hi *team*, _{title}_ — see <https://status.example|status page>"),
        },
        "AI_requestTitle": title,
        "AI_requestUrgency": "Medium",
        "AI_requestSentiment": "Neutral",
        "AI_generatedTags": ["demo"],
    });
    if let (Value::Object(r), Value::Object(e)) = (&mut v["request"], extra) {
        for (k, x) in e {
            r.insert(k, x);
        }
    }
    v
}

/// A Thena platform ticket event for the sample ticket TKT-2001.
fn ticket_event(
    id: &str,
    kind: &str,
    t: DateTime<Utc>,
    secs: i64,
    status: &str,
    title: &str,
) -> Value {
    json!({"eventId": id, "eventType": kind, "timestamp": at(t, secs), "orgId": "OG-DEMO",
           "actor": {"id": "A1", "type": "AGENT", "email": "priya@vendor.example"},
           "payload": {"ticket": {"id": "TKT-2001", "ticketId": "2001", "title": title,
             "description": "Our webhook consumer sees each event three times.",
             "statusName": status, "priorityName": "Medium", "sentimentName": "Neutral",
             "createdAt": at(t, 1), "updatedAt": at(t, secs),
             "customer": {"id": "C7", "email": "dana@acme.io", "name": "Dana Whitfield"},
             "assignedAgent": {"id": "U9", "name": "Priya Raman"}, "tags": ["webhooks"]}}})
}

/// The sample feed, timed after the connection was made.
pub fn deliveries(connected: DateTime<Utc>) -> Vec<Delivery> {
    let t = connected;
    let mut full: Value =
        serde_json::from_str(include_str!("../samples/contract-example.json")).expect("sample");
    full["request"]["requestId"] = json!("REQ-1001");
    full["request"]["createdAt"] = json!(at(t, 1));
    full["request"]["updatedAt"] = json!(at(t, 2));
    full["request"]["requestLink"] = json!("https://app.thena.ai/requests/REQ-1001");
    let mut all = vec![
        Delivery {
            note: "known Contact by email (and the Product category's field)",
            webhook_id: Some("evt-1001"),
            body: full.clone(),
        },
        Delivery {
            note: "the same delivery again",
            webhook_id: Some("evt-1001"),
            body: full,
        },
    ];
    all.extend(request_deliveries(t));
    all.extend(platform_deliveries(t));
    all.push(Delivery {
        note: "created before the connection: out of scope",
        webhook_id: None,
        body: request(
            "REQ-0999",
            "2025-01-01T00:00:00Z",
            &at(t, 2),
            "OPEN",
            person("Harsh Vardhan", "harsh@acme.io"),
            "Acme Corp",
            "An old request",
            json!({}),
        ),
    });
    all
}

/// A requestor as Thena sends one.
fn person(name: &str, email: &str) -> Value {
    json!({"id": format!("U{}", name.len()), "name": name, "email": email})
}

/// One request webhook of the feed: what it shows, the request, its update
/// second, status, requestor, e-mail, workspace, title, and other fields.
type Sample = (
    &'static str,
    &'static str,
    i64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Value,
);

/// The request webhooks of the feed, one a resolution rule or ordering case.
fn request_deliveries(t: DateTime<Utc>) -> Vec<Delivery> {
    #[rustfmt::skip]
    let rows: [Sample; 7] = [
        ("new Contact on the Account of its company domain", "REQ-1002", 2, "OPEN", "Maya Patel", "maya@acme.io", "Acme Corp", "Cannot export invoices", json!({})),
        ("public mail, matched by workspace name", "REQ-1003", 2, "ASSIGNED", "Liam O'Brien", "liam.obrien@gmail.com", "  globex corporation ", "SSO login loops", json!({})),
        ("no Contact, no Account: skipped", "REQ-1004", 2, "OPEN", "Zed Null", "zed@nowhere.example", "Unknown Co", "Where is my data?", json!({})),
        ("public mail, no workspace match: skipped", "REQ-1005", 2, "OPEN", "Pat Solo", "pat@outlook.com", "Solo Consulting", "Billing question", json!({})),
        ("newest update first...", "REQ-1006", 4, "CLOSED", "Harsh Vardhan", "harsh@acme.io", "Acme Corp", "Dashboard slow (fixed)", json!({"closedAt": at(t, 4), "closedBy": {"name": "Priya"}})),
        ("...then an older one, out of order: stale", "REQ-1006", 3, "IN_PROGRESS", "Harsh Vardhan", "harsh@acme.io", "Acme Corp", "Dashboard slow", json!({})),
        ("a new custom category (Region)", "REQ-1007", 2, "ON_HOLD", "Dana Whitfield", "dana@acme.io", "Acme Corp", "EU data residency", json!({"customFields": [{"category_name": "Region", "values": [{"name": "EMEA", "value": "EMEA"}]}]})),
    ];
    rows.into_iter()
        .map(
            |(note, id, updated, status, name, email, team, title, extra)| {
                let who = person(name, email);
                let body = request(
                    id,
                    &at(t, 1),
                    &at(t, updated),
                    status,
                    who,
                    team,
                    title,
                    extra,
                );
                Delivery {
                    note,
                    webhook_id: None,
                    body,
                }
            },
        )
        .collect()
}

/// Thena platform events: a ticket created and updated, a reply, and an
/// event type the connector does not use.
fn platform_deliveries(t: DateTime<Utc>) -> Vec<Delivery> {
    let title = "Webhook retries pile up";
    vec![
        Delivery {
            note: "Thena platform: ticket:created",
            webhook_id: None,
            body: ticket_event("ev-t1", "ticket:created", t, 2, "Open", title),
        },
        Delivery {
            note: "Thena platform: ticket:updated (now In Progress)",
            webhook_id: None,
            body: ticket_event("ev-t2", "ticket:updated", t, 3, "In Progress", title),
        },
        Delivery {
            note: "Thena platform: an agent's reply (into Customer_Thread__c)",
            webhook_id: None,
            body: json!({"eventId": "ev-c1", "eventType": "ticket:comment:created", "timestamp": at(t, 4), "orgId": "OG-DEMO",
                "actor": {"id": "A1", "type": "AGENT", "email": "priya@vendor.example"},
                "payload": {"ticketId": "TKT-2001", "comment": {"id": "CM-1", "content": "We're deduplicating by eventId now; can you confirm?",
                  "commentVisibility": "public", "author": {"name": "Priya Raman"}, "createdAt": at(t, 4)}}}),
        },
        Delivery {
            note: "Thena platform: an event type not used (acknowledged)",
            webhook_id: None,
            body: json!({"eventId": "ev-a1", "eventType": "account:updated", "timestamp": at(t, 3), "payload": {}}),
        },
    ]
}

/// One row of the demo's result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub request_id: String,
    pub outcome: String,
    pub salesforce_id: String,
    pub account: String,
    pub contact: String,
}

pub struct Demo {
    pub emulator: sf_emulator::Running,
    pub app: App,
    pub webhook_token: Secret,
    pub rows: Vec<Row>,
    pub deliveries: Vec<(String, String)>,
    /// The admin page's password, made for this run.
    pub admin_password: Secret,
}

/// Runs the demo up to the result table; the caller decides whether to keep serving.
pub async fn run(mut config: Config, store: Store) -> Result<Demo, Error> {
    let emulator = sf_emulator::start(
        "127.0.0.1:0",
        sf_emulator::EmulatorConfig {
            seed: seed(),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| Error::Invalid(format!("the emulator did not start: {e}")))?;
    // The admin page offers this emulator as a place to connect, behind a password made for this run.
    config.emulator = Some(crate::config::EmulatorLogin {
        login_url: emulator.base_url.clone(),
        client_id: "local-client".into(),
        client_secret: "local-secret".into(),
    });
    let admin_password = crypto::new_token()
        .trim_start_matches("tsf_")
        .chars()
        .take(16)
        .collect::<String>();
    if config.admin_password_hash.is_none() {
        config.admin_password_hash = Some(crate::web::hash_password(&admin_password)?);
    }
    let app = App::start(
        config.clone(),
        store.clone(),
        Settings::from_config(&config),
    )
    .await?;
    config.public_url = app.url();
    let token = crypto::new_token();
    let req = ConnectRequest::emulator_admin(CONNECTION, &emulator.base_url, Some(token.clone()));
    let connected = connect::connect(&store, &config, req).await?;
    let conn = store.connection(CONNECTION).await?;
    app.add_connection(&conn);

    // Its own server on this machine: never through a proxy the environment names.
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot build the demo's HTTP client: {e}")))?;
    let url = format!("{}/webhooks/thena/{CONNECTION}", app.url());
    let mut results = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for d in deliveries(connected.connected_at) {
        let mut r = http
            .post(&url)
            .header("Authorization", format!("Bearer {token}"))
            .json(&d.body);
        if let Some(id) = d.webhook_id {
            r = r.header("webhook-id", id);
        }
        let resp = r
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("posting a sample webhook: {e}")))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        // The request the connector took it for, as its answer says.
        let id = v["requestId"].as_str().unwrap_or("").to_string();
        results.push((
            format!("{id:<9} {}", d.note),
            format!("{} {}", status.as_u16(), v["status"].as_str().unwrap_or("")),
        ));
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    settle(&store, &ids).await?;
    let rows = table(&store, &app, &ids).await?;
    Ok(Demo {
        emulator,
        app,
        webhook_token: Secret::new(token),
        rows,
        deliveries: results,
        admin_password: Secret::new(admin_password),
    })
}

async fn settle(store: &Store, ids: &[String]) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states = store.request_states(CONNECTION, ids).await?;
        let queued = store.queued(CONNECTION).await?;
        if queued == 0
            && states.len() == ids.len()
            && states.iter().all(|s| s.state != ReqState::Pending)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Invalid(
                "the sample requests did not settle within a minute".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn table(store: &Store, app: &App, ids: &[String]) -> Result<Vec<Row>, Error> {
    let client = app
        .state
        .workers
        .read()
        .get(CONNECTION)
        .map(|w| w.client.clone())
        .ok_or_else(|| Error::Invalid("the demo connection has no worker".into()))?;
    let soql = format!(
        "SELECT RequestId__c, Id, Account__r.Name, Requestor__r.Name, Requestor__r.Email FROM Request__c WHERE {}",
        salesforce::soql::in_list("RequestId__c", ids).unwrap_or_else(|| "Id = null".into())
    );
    let found = client.query(&soql).await?;
    let mut rows = Vec::new();
    for s in store.request_states(CONNECTION, ids).await? {
        let rec = found
            .iter()
            .find(|r| r.get("RequestId__c").and_then(Value::as_str) == Some(s.request_id.as_str()));
        let get = |path: &[&str]| -> String {
            let mut v = rec.map(|r| Value::Object(r.clone())).unwrap_or(Value::Null);
            for p in path {
                v = v.get(*p).cloned().unwrap_or(Value::Null);
            }
            v.as_str().unwrap_or("").to_string()
        };
        let contact = match (
            get(&["Requestor__r", "Name"]),
            get(&["Requestor__r", "Email"]),
        ) {
            (n, e) if !e.is_empty() => format!("{n} <{e}>"),
            (n, _) => n,
        };
        let outcome = match s.state {
            ReqState::Synced => "synced".to_string(),
            other => format!("{other}: {}", s.reason.unwrap_or_default()),
        };
        rows.push(Row {
            request_id: s.request_id,
            outcome,
            salesforce_id: get(&["Id"]),
            account: get(&["Account__r", "Name"]),
            contact,
        });
    }
    rows.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    Ok(rows)
}

/// The table as text, with the reason for every request not synced below it.
pub fn render(rows: &[Row]) -> String {
    let state = |r: &Row| r.outcome.split(':').next().unwrap_or("").to_string();
    let w = |f: &dyn Fn(&Row) -> usize, title: &str| {
        rows.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let (a, b, c, d) = (
        w(&|r| r.request_id.len(), "request"),
        w(&|r| state(r).len(), "outcome"),
        w(&|r| r.salesforce_id.len(), "Salesforce id"),
        w(&|r| r.account.len(), "Account"),
    );
    let mut out = format!(
        "{:<a$}  {:<b$}  {:<c$}  {:<d$}  Contact\n",
        "request", "outcome", "Salesforce id", "Account"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<a$}  {:<b$}  {:<c$}  {:<d$}  {}\n",
            r.request_id,
            state(r),
            r.salesforce_id,
            r.account,
            r.contact
        ));
    }
    let why: Vec<&Row> = rows.iter().filter(|r| r.outcome.contains(':')).collect();
    if !why.is_empty() {
        out.push_str("\nWhy:\n");
        for r in why {
            out.push_str(&format!("  {}  {}\n", r.request_id, r.outcome));
        }
    }
    out
}

/// A `curl` command that sends one more webhook to the running demo: a new
/// request from the known Contact, stamped `now` (so it is in scope and the
/// newest version).
pub fn example_curl(base_url: &str, token: &str, now: DateTime<Utc>) -> String {
    let ms = now.timestamp_millis();
    let body = json!({
        "action": "CREATE",
        "request": {"requestId": "REQ-2001", "createdAt": ms, "updatedAt": ms, "status": "OPEN",
                    "requestor": {"id": "U1", "name": "Harsh Vardhan", "email": "harsh@acme.io"},
                    "customer": {"teamName": "Acme Corp"}},
        "AI_requestTitle": "Sent by hand with curl"
    });
    format!(
        "curl -sS -X POST '{base_url}/webhooks/thena/{CONNECTION}' -H 'Authorization: {token}' -H 'Content-Type: application/json' -d '{body}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The printed command carries a body the webhook parser accepts, in
    /// single quotes a shell keeps whole.
    #[test]
    fn the_example_curl_sends_a_valid_webhook() {
        let cmd = example_curl("http://127.0.0.1:8080", "tsf_abc", Utc::now());
        let body = cmd.rsplit_once(" -d '").unwrap().1.trim_end_matches('\'');
        assert!(!body.contains('\''));
        let e = crate::thena::webhook::parse(body.as_bytes()).unwrap();
        assert_eq!(e.snapshot.request_id, "REQ-2001");
        assert!(
            cmd.contains("'http://127.0.0.1:8080/webhooks/thena/demo'"),
            "{cmd}"
        );
        assert!(cmd.contains("'Authorization: tsf_abc'"), "{cmd}");
    }
}
