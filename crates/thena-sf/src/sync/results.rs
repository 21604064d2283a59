//! What each record's answer from Salesforce means for it: synced, linked
//! again, retried, re-provisioned, or dead-lettered. Pure; the worker acts.

use salesforce::{Action, RecordError, RecordResult};

use crate::domain::resolve::How;

/// What to do with one record after its upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Salesforce took it.
    Synced { created: bool },
    /// Its linked Contact or Account is gone: forget the link, resolve again now.
    Relink,
    /// A passing failure: again after a backoff.
    Retry,
    /// The object's schema is wrong: provision again, then retry.
    Reprovision,
    /// For good (or out of tries): the dead letters, with Salesforce's error.
    DeadLetter,
}

/// The verdict on one record's result, and its first error (for the record
/// and the activity; a placeholder when Salesforce gave none).
pub fn verdict(res: &RecordResult, attempts: i64, max_attempts: i64) -> (Verdict, RecordError) {
    let first = res.errors.first().cloned().unwrap_or(RecordError {
        status_code: "UNKNOWN".into(),
        message: "no error given".into(),
        fields: vec![],
    });
    if res.success {
        return (
            Verdict::Synced {
                created: res.created == Some(true),
            },
            first,
        );
    }
    let exhausted = attempts + 1 >= max_attempts;
    let v = if exhausted {
        Verdict::DeadLetter
    } else if stale_link(&first.fields, &first.status_code) {
        Verdict::Relink
    } else if name_now_required(&first) {
        // The Name field became Text (provisioning switched an auto-number)
        // after this worker read describe: set up again, describe afresh,
        // and the retry names the record.
        Verdict::Reprovision
    } else {
        match res.action().unwrap_or(Action::GiveUp) {
            Action::Retry | Action::RefreshAuth => Verdict::Retry,
            Action::FixSchema => Verdict::Reprovision,
            _ => Verdict::DeadLetter,
        }
    };
    (v, first)
}

/// The activity's words for a synced record.
pub fn synced_detail(
    created: bool,
    how: How,
    unmapped: Option<&[String]>,
    bad_links: &[&str],
) -> String {
    let mut detail = format!(
        "{} ({})",
        if created { "created" } else { "updated" },
        how_text(how)
    );
    if let Some(over) = unmapped {
        detail.push_str(&not_mapped(over));
    }
    if !bad_links.is_empty() {
        detail.push_str(&format!(
            "; {} left empty: not an http(s) URL",
            bad_links.join(", ")
        ));
    }
    detail
}

/// "; 3 categories not mapped (over the limit on category fields): a, b, c".
fn not_mapped(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    format!(
        "; {} categor{} not mapped (over the limit on category fields): {}{}",
        names.len(),
        if names.len() == 1 { "y" } else { "ies" },
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

fn how_text(h: How) -> &'static str {
    match h {
        How::Reused => "linked as before",
        How::ContactByEmail => "Contact found by email",
        How::DomainNewContact => "new Contact on the Account of the email's company domain",
        How::WorkspaceContact => "Contact of that name on the Account named like the workspace",
        How::WorkspaceNewContact => "new Contact on the Account named like the workspace",
    }
}

/// A record refused for want of a Name: the Name field is Text now.
fn name_now_required(e: &RecordError) -> bool {
    e.status_code == "REQUIRED_FIELD_MISSING" && e.fields.iter().any(|f| f == "Name")
}

/// Whether a record error says a linked Contact or Account is gone.
fn stale_link(fields: &[String], code: &str) -> bool {
    matches!(
        code,
        "INVALID_CROSS_REFERENCE_KEY" | "ENTITY_IS_DELETED" | "FIELD_INTEGRITY_EXCEPTION"
    ) && (fields.is_empty()
        || fields
            .iter()
            .any(|f| f == "Requestor__c" || f == "Account__c"))
}

/// What one step did with its records, for its log line and span.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub synced: u64,
    /// Linked and unchanged since the last write: not sent again.
    pub unchanged: u64,
    pub skipped: u64,
    /// Dead letters.
    pub failed: u64,
}

impl Tally {
    /// Records left queued for a later step (retries, relinks).
    pub fn retried(&self, claimed: usize) -> u64 {
        (claimed as u64).saturating_sub(self.synced + self.unchanged + self.skipped + self.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: &str, fields: &[&str]) -> RecordResult {
        RecordResult {
            id: None,
            success: false,
            created: None,
            errors: vec![RecordError {
                status_code: code.into(),
                message: "m".into(),
                fields: fields.iter().map(|f| f.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn each_answer_has_its_verdict() {
        let ok = RecordResult {
            id: Some("a00".into()),
            success: true,
            created: Some(true),
            errors: vec![],
        };
        assert_eq!(verdict(&ok, 0, 50).0, Verdict::Synced { created: true });
        let gone = failed("ENTITY_IS_DELETED", &["Requestor__c"]);
        assert_eq!(verdict(&gone, 0, 50).0, Verdict::Relink);
        assert_eq!(
            verdict(&gone, 49, 50).0,
            Verdict::DeadLetter,
            "out of tries"
        );
        assert_eq!(
            verdict(&failed("UNABLE_TO_LOCK_ROW", &[]), 0, 50).0,
            Verdict::Retry
        );
        assert_eq!(
            verdict(&failed("INVALID_FIELD", &[]), 0, 50).0,
            Verdict::Reprovision
        );
        assert_eq!(
            verdict(&failed("REQUIRED_FIELD_MISSING", &["Name"]), 0, 50).0,
            Verdict::Reprovision,
            "Name became Text after describe was read"
        );
        assert_eq!(
            verdict(&failed("REQUIRED_FIELD_MISSING", &["Region__c"]), 0, 50).0,
            Verdict::DeadLetter,
            "a field of the customer's: a person must act"
        );
        let bad = failed("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", &["Status__c"]);
        assert_eq!(verdict(&bad, 0, 50).0, Verdict::DeadLetter);
        let none = RecordResult {
            errors: vec![],
            ..failed("X", &[])
        };
        assert_eq!(verdict(&none, 0, 50).1.status_code, "UNKNOWN");
    }

    #[test]
    fn the_activity_says_how_and_what_was_left_out() {
        let names: Vec<String> = (0..7).map(|i| format!("c{i}")).collect();
        let d = synced_detail(false, How::ContactByEmail, Some(&names), &["Link__c"]);
        assert_eq!(d, "updated (Contact found by email); 7 categories not mapped (over the limit on category fields): c0, c1, c2, c3, c4 and 2 more; Link__c left empty: not an http(s) URL");
    }
}
