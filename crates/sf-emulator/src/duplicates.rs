//! Duplicate rules as a new org has them (salesforce-api.md §9.3): the
//! standard Contact and Lead rules are active, with the action on create
//! Allow + alert; in orgs made since Summer '17 each also matches the other
//! object. An API create that matches fails with `DUPLICATES_DETECTED` unless
//! it sends `Sforce-Duplicate-Rule-Header: allowSave=true`; a Block rule
//! fails it always. Edits are not checked (the action on edit is "report").
//!
//! The matching itself is a simplification of Salesforce's fuzzy standard
//! matching rules, kept here in one place: a record matches when its Email
//! equals the new one's (case-insensitive), or when first and last name are
//! equal (case-insensitive) and, for Contacts, the Account is the same.

use serde::{Deserialize, Serialize};

use crate::dml::RecError;
use crate::org::Org;
use crate::schema::ObjectDef;
use crate::table::Row;
use crate::value::Val;

/// A rule's action on create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Allow with an alert: API saves need `allowSave=true`.
    #[default]
    Alert,
    Block,
    Off,
}

/// The org's duplicate rules (seed `"duplicate_rules": {"Contact": "alert", "Lead": "block"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default, rename = "Contact")]
    pub contact: Action,
    #[serde(default, rename = "Lead")]
    pub lead: Action,
}

/// What a rule matched, for the error's `duplicateResut`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    pub rule: &'static str,
    pub entity: &'static str,
    pub allow_save: bool,
    /// (object, id) of each matching record.
    pub records: Vec<(String, String)>,
}

pub const ALERT_TEXT: &str = "Use one of these records?";

fn text(org: &Org, object: &str, row: &Row, field: &str) -> Option<String> {
    org.get_field(object, row, field)
        .and_then(Val::as_str)
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
}

/// Records of Contact and Lead that the new `row` of `def` duplicates.
fn matches(org: &Org, def: &ObjectDef, row: &Row) -> Vec<(String, String)> {
    let get = |f: &str| {
        def.slot(f)
            .and_then(|s| row[s].as_str())
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
    };
    let (email, first, last, account) = (
        get("Email"),
        get("FirstName"),
        get("LastName"),
        get("AccountId"),
    );
    let mut out = Vec::new();
    for object in ["Contact", "Lead"] {
        let Some(t) = org.table(object) else { continue };
        for r in t.iter() {
            let same_email = email.is_some() && text(org, object, r, "Email") == email;
            let same_name = first.is_some()
                && text(org, object, r, "FirstName") == first
                && text(org, object, r, "LastName") == last
                && (object == "Lead"
                    || def.name == "Lead"
                    || text(org, object, r, "AccountId") == account);
            if same_email || same_name {
                if let Some(id) = r[0].as_str() {
                    out.push((object.to_string(), id.to_string()));
                }
            }
        }
    }
    out
}

/// Refuses a create that an active rule matches, as Salesforce does.
pub fn check(org: &Org, def: &ObjectDef, row: &Row, allow_save: bool) -> Result<(), RecError> {
    let (action, rule, entity) = match def.name.as_str() {
        "Contact" => (
            org.duplicate_rules.contact,
            "Standard_Contact_Duplicate_Rule",
            "Contact",
        ),
        "Lead" => (
            org.duplicate_rules.lead,
            "Standard_Lead_Duplicate_Rule",
            "Lead",
        ),
        _ => return Ok(()),
    };
    if action == Action::Off || (action == Action::Alert && allow_save) {
        return Ok(());
    }
    let records = matches(org, def, row);
    if records.is_empty() {
        return Ok(());
    }
    let mut e = RecError::new("DUPLICATES_DETECTED", ALERT_TEXT, vec![]);
    e.duplicates = Some(Matched {
        rule,
        entity,
        allow_save: action == Action::Alert,
        records,
    });
    Err(e)
}
