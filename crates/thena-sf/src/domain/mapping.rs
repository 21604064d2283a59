//! A snapshot as a `Request__c` record, as the contract's field table says:
//! exact API names, statuses mapped, times in UTC ISO 8601, Slack text as safe
//! HTML, values cut to each field's length. Absent values are not sent; null
//! values clear the field.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::html::{cut_html, cut_text};
use super::mrkdwn::{self, escape, plain};
use super::snapshot::{Csat, Message, Patch, Snapshot};

/// Field lengths from describe (name → length); fields not listed are not cut.
#[derive(Debug, Clone, Default)]
pub struct Lengths(pub HashMap<String, u32>);

impl Lengths {
    /// Whether records take a name from us: describe lists `Name` here only
    /// when it is createable (a Text name, not an auto-number the org sets).
    pub fn names_records(&self) -> bool {
        self.0.contains_key("Name")
    }

    fn max(&self, field: &str) -> Option<usize> {
        self.0.get(field).map(|l| *l as usize).filter(|l| *l > 0)
    }
}

/// The Contact and Account a request goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub contact: String,
    pub account: String,
}

/// Thena status → the Status__c picklist value.
pub fn status_label(status: &str) -> String {
    let s = status.trim();
    match s.to_ascii_uppercase().replace([' ', '-'], "_").as_str() {
        "OPEN" | "UNASSIGNED" => "Open".into(),
        "ASSIGNED" | "IN_PROGRESS" => "In Progress".into(),
        "ON_HOLD" => "On Hold".into(),
        "CLOSED" | "RESOLVED" => "Closed".into(),
        _ => s
            .split(|c: char| c == '_' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .map(|w| {
                let lower = w.to_lowercase();
                let mut cs = lower.chars();
                cs.next()
                    .map(|f| f.to_uppercase().collect::<String>() + cs.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Slack user ids → names known from the snapshot (for mentions).
fn names(s: &Snapshot) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for thread in [&s.customer_thread, &s.internal_thread] {
        for msg in thread.set().into_iter().flatten() {
            if let (Some(id), Some(name)) = (&msg.user_id, &msg.user_name) {
                m.insert(id.clone(), name.clone());
            }
        }
    }
    if let Some(p) = s.requestor.set() {
        if let (Some(id), Some(name)) = (&p.id, &p.name) {
            m.insert(id.clone(), name.clone());
        }
    }
    m
}

/// A thread as a readable list: author, UTC time, text.
pub fn thread_html(messages: &[Message], names: &HashMap<String, String>) -> String {
    messages
        .iter()
        .map(|m| {
            let author = m
                .user_name
                .as_deref()
                .or(m
                    .user_id
                    .as_deref()
                    .and_then(|id| names.get(id).map(String::as_str)))
                .or(m.user_id.as_deref())
                .unwrap_or("Unknown");
            let when =
                m.ts.map(|t| format!(" <i>{}</i>", t.human()))
                    .unwrap_or_default();
            format!(
                "<p><b>{}</b>{when}<br>{}</p>",
                escape(author),
                mrkdwn::render(&m.text, names)
            )
        })
        .collect()
}

fn csat_html(c: &Csat) -> String {
    let mut out = String::new();
    if let Some(score) = &c.score {
        out.push_str(&format!("<p><b>{} / 5</b></p>", escape(score)));
    }
    if let Some(f) = &c.feedback {
        out.push_str(&format!("<p>{}</p>", plain(f)));
    }
    out
}

struct Out<'a> {
    m: Map<String, Value>,
    lengths: &'a Lengths,
}

impl Out<'_> {
    fn text(&mut self, field: &str, v: Patch<String>) {
        let value = match v {
            Patch::Absent => return,
            Patch::Null => Value::Null,
            Patch::Set(s) => Value::String(match self.lengths.max(field) {
                Some(max) => cut_text(&s, max),
                None => s,
            }),
        };
        self.m.insert(field.to_string(), value);
    }

    fn html(&mut self, field: &str, v: Patch<String>) {
        let value = match v {
            Patch::Absent => return,
            Patch::Null => Value::Null,
            Patch::Set(s) if s.is_empty() => Value::Null,
            Patch::Set(s) => Value::String(match self.lengths.max(field) {
                Some(max) => cut_html(&s, max),
                None => s,
            }),
        };
        self.m.insert(field.to_string(), value);
    }
}

fn is_web_url(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    (v.starts_with("https://") || v.starts_with("http://")) && v.len() > "http://".len()
}

/// A link field's value: only http and https URLs; anything else (a
/// `javascript:` or `slack://` link, plain text) is left empty.
fn web_url(v: &Patch<String>) -> Patch<String> {
    match v {
        Patch::Set(u) if is_web_url(u) => Patch::Set(u.trim().to_string()),
        Patch::Set(_) => Patch::Null,
        Patch::Null => Patch::Null,
        Patch::Absent => Patch::Absent,
    }
}

/// The link fields a snapshot carries that are not http(s) URLs (left empty).
pub fn rejected_links(s: &Snapshot) -> Vec<&'static str> {
    [
        ("Permalink__c", &s.permalink),
        ("requestWebLink__c", &s.request_link),
        ("requestInternalNotificationLink__c", &s.internal_link),
    ]
    .into_iter()
    .filter(|(_, v)| v.set().is_some_and(|u| !is_web_url(u)))
    .map(|(f, _)| f)
    .collect()
}

/// The record body (without `attributes`) for a snapshot.
pub fn record(
    s: &Snapshot,
    links: &Links,
    categories: &HashMap<String, String>,
    lengths: &Lengths,
) -> Map<String, Value> {
    let names = names(s);
    let mut o = Out {
        m: Map::new(),
        lengths,
    };
    o.m.insert("RequestId__c".into(), Value::String(s.request_id.clone()));
    if lengths.names_records() {
        // A Text name is required on create; the request id is what the
        // record is known by in Thena (80 characters at most).
        o.text("Name", Patch::Set(s.request_id.clone()));
    }
    o.text("Title__c", s.title.clone());
    o.html("Summary__c", s.summary.clone().map(|x| plain(&x)));
    o.text("Urgency__c", s.urgency.clone());
    o.text("Sentiment__c", s.sentiment.clone());
    o.text("AiTags__c", s.tags.clone().map(|t| t.join(", ")));
    o.text("Status__c", s.status.clone().map(|x| status_label(&x)));
    o.text("Assigned_To__c", s.assigned_to.clone());
    o.html("Csat__c", s.csat.as_ref().map(csat_html));
    o.text("Permalink__c", web_url(&s.permalink));
    o.text("requestCreatedAt__c", Patch::Set(s.created_at.iso()));
    o.text("requestUpdatedAt__c", Patch::Set(s.updated_at.iso()));
    o.text("requestClosedAt__c", s.closed_at.clone().map(|t| t.iso()));
    o.text("requestClosedBy__c", s.closed_by.clone());
    o.text(
        "requestInternalNotificationLink__c",
        web_url(&s.internal_link),
    );
    o.text("requestWebLink__c", web_url(&s.request_link));
    o.html(
        "Message_Text__c",
        s.message_text.as_ref().map(|t| mrkdwn::render(t, &names)),
    );
    o.html(
        "Customer_Thread__c",
        s.customer_thread.as_ref().map(|t| thread_html(t, &names)),
    );
    o.html(
        "Internal_Thread__c",
        s.internal_thread.as_ref().map(|t| thread_html(t, &names)),
    );
    o.m.insert("Requestor__c".into(), Value::String(links.contact.clone()));
    o.m.insert("Account__c".into(), Value::String(links.account.clone()));
    match &s.categories {
        Patch::Set(cats) => {
            for c in cats {
                if let Some(field) = categories.get(&c.name) {
                    let joined = c.values.join("; ");
                    o.text(
                        field,
                        if joined.is_empty() {
                            Patch::Null
                        } else {
                            Patch::Set(joined)
                        },
                    );
                }
            }
        }
        Patch::Null => {
            for field in categories.values() {
                o.m.insert(field.clone(), Value::Null);
            }
        }
        Patch::Absent => {}
    }
    o.m
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn only_http_and_https_links_are_written() {
        assert_eq!(
            web_url(&Patch::Set(" https://a.example/x ".into())),
            Patch::Set("https://a.example/x".into())
        );
        for bad in [
            "javascript:alert(1)",
            "slack://channel?id=1",
            "not a url",
            "http://",
        ] {
            assert_eq!(web_url(&Patch::Set(bad.into())), Patch::Null, "{bad}");
        }
        assert_eq!(web_url(&Patch::Absent), Patch::Absent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thena::webhook;

    fn sample() -> Snapshot {
        webhook::parse(include_bytes!("../../samples/contract-example.json"))
            .unwrap()
            .snapshot
    }

    fn links() -> Links {
        Links {
            contact: "003A".into(),
            account: "001A".into(),
        }
    }

    #[test]
    fn every_field_of_the_table() {
        let cats = HashMap::from([
            ("Product".to_string(), "Product__c".to_string()),
            ("Region".to_string(), "Region__c".to_string()),
        ]);
        let r = record(&sample(), &links(), &cats, &Lengths::default());
        let s = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{k} missing"))
                .to_string()
        };
        assert_eq!(s("RequestId__c"), "REQ-2041");
        assert_eq!(s("Title__c"), "Dashboard returns HTTP 500");
        assert_eq!(
            s("Summary__c"),
            "Customer reports the analytics dashboard failing with 500 errors since 10:00 UTC."
        );
        assert_eq!(s("Urgency__c"), "High");
        assert_eq!(s("Sentiment__c"), "Negative");
        assert_eq!(s("AiTags__c"), "bug, dashboard, outage");
        assert_eq!(s("Status__c"), "In Progress");
        assert_eq!(s("Assigned_To__c"), "Priya Raman");
        assert_eq!(
            s("Csat__c"),
            "<p><b>4 / 5</b></p><p>Quick &amp; helpful</p>"
        );
        assert_eq!(
            s("Permalink__c"),
            "https://acme.slack.com/archives/C0123ACME/p1764000000000100"
        );
        assert_eq!(s("requestCreatedAt__c"), "2026-11-24T10:15:00Z");
        assert_eq!(s("requestUpdatedAt__c"), "2026-11-24T11:02:31Z");
        assert_eq!(
            r.get("requestClosedAt__c"),
            Some(&Value::Null),
            "null clears"
        );
        assert_eq!(r.get("requestClosedBy__c"), Some(&Value::Null));
        assert_eq!(
            s("requestInternalNotificationLink__c"),
            "https://vendor.slack.com/archives/C0TRIAGE/p1764000001000200"
        );
        assert_eq!(
            s("requestWebLink__c"),
            "https://app.thena.ai/requests/REQ-2041"
        );
        assert!(s("Message_Text__c").contains("<a href=\"https://acme.io/dash\">dashboard</a>"));
        assert!(s("Message_Text__c").contains("<b>@Harsh Vardhan</b>"));
        assert_eq!(
            s("Customer_Thread__c"),
            "<p><b>Harsh Vardhan</b> <i>2025-11-24 16:05 UTC</i><br>Still broken :(</p>"
        );
        assert!(s("Internal_Thread__c").starts_with("<p><b>Priya</b>"));
        assert_eq!(s("Requestor__c"), "003A");
        assert_eq!(s("Account__c"), "001A");
        assert_eq!(s("Product__c"), "Request Management; Marketing Automation");
        assert_eq!(s("Region__c"), "EMEA");
    }

    #[test]
    fn records_are_named_by_request_id_only_where_the_org_takes_a_name() {
        let auto_number = record(&sample(), &links(), &HashMap::new(), &Lengths::default());
        assert!(
            !auto_number.contains_key("Name"),
            "an auto-number is the org's"
        );
        let mut snap = sample();
        snap.request_id = format!("REQ-{}", "9".repeat(100));
        let text = Lengths(HashMap::from([("Name".to_string(), 80)]));
        let r = record(&snap, &links(), &HashMap::new(), &text);
        let name = r["Name"].as_str().unwrap();
        assert!(
            name.starts_with("REQ-999") && name.chars().count() <= 80,
            "{name}"
        );
        assert_eq!(r["RequestId__c"], snap.request_id.as_str());
    }

    #[test]
    fn absent_is_not_sent_and_values_are_cut() {
        let mut snap = sample();
        snap.title = Patch::Absent;
        snap.summary = Patch::Set("<script>x</script>".repeat(10));
        snap.message_text = Patch::Set("x".repeat(500));
        let lengths = Lengths(HashMap::from([
            ("Summary__c".to_string(), 50),
            ("Message_Text__c".to_string(), 300),
            ("Urgency__c".to_string(), 3),
        ]));
        let r = record(&snap, &links(), &HashMap::new(), &lengths);
        assert!(
            !r.contains_key("Title__c"),
            "absent: leave Salesforce's value alone"
        );
        let summary = r["Summary__c"].as_str().unwrap();
        assert!(
            summary.chars().count() <= 50
                && summary.contains("[truncated]")
                && !summary.contains("<script"),
            "{summary}"
        );
        assert!(r["Message_Text__c"].as_str().unwrap().chars().count() <= 300);
        assert_eq!(r["Urgency__c"], "Hi…");
    }

    #[test]
    fn statuses() {
        for (i, o) in [
            ("OPEN", "Open"),
            ("unassigned", "Open"),
            ("ASSIGNED", "In Progress"),
            ("IN_PROGRESS", "In Progress"),
            ("On Hold", "On Hold"),
            ("CLOSED", "Closed"),
            ("RESOLVED", "Closed"),
            ("CONVERTED_TO_TICKET", "Converted To Ticket"),
            ("waiting on customer", "Waiting On Customer"),
        ] {
            assert_eq!(status_label(i), o, "{i}");
        }
    }
}
