//! The Requests related list on every Account layout that a profile sees.
//!
//! A real org can have several Account layouts, assigned per profile (and
//! record type); the default one's name is not even fixed (it is translated
//! in some orgs). So the layouts are found, not named: `listMetadata` lists
//! them, the profiles' `layoutAssignments` say which are in use, and each is
//! changed by read-modify-write (an update replaces the whole layout).
//! Columns are bare aliases (`NAME`, `Title__c`), never `Request__c.Title__c`,
//! which fails the whole save (salesforce-api.md §5.7, §9.1).

use std::collections::BTreeSet;

use salesforce::metadata::{self, Save};
use salesforce::xml::El;
use salesforce::Client;

use super::schema::RELATED_LIST;

/// The related list as it is added: record name, title, status. No
/// `sortField`: `CREATED_DATE` as a sort token is unverified (§9.1).
pub(crate) fn related_list_xml() -> String {
    "<relatedLists><fields>NAME</fields><fields>Title__c</fields><fields>Status__c</fields>\
     <relatedList>Request__c.Account__c</relatedList></relatedLists>"
        .to_string()
}

/// The Account layouts in the org, and which of them some profile sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountLayouts {
    /// Every `Account-*` layout, full names as `listMetadata` gives them.
    pub all: Vec<String>,
    /// Those assigned to at least one profile (the ones users see).
    pub assigned: Vec<String>,
}

/// The profiles' metadata, as read once for both field access and layouts.
pub(crate) struct Profiles {
    pub records: Vec<El>,
}

impl Profiles {
    /// Lists the layouts and profiles (one call) and reads every profile
    /// (one call per ten).
    pub async fn read(client: &Client) -> Result<(Profiles, Vec<String>), salesforce::Error> {
        let listed = client.metadata_list(&["Layout", "Profile"]).await?;
        let layouts: Vec<String> = listed
            .iter()
            .filter(|(k, n)| k == "Layout" && is_account_layout(n))
            .map(|(_, n)| n.clone())
            .collect();
        let mut names: Vec<&str> = listed
            .iter()
            .filter(|(k, _)| k == "Profile")
            .map(|(_, n)| n.as_str())
            .collect();
        // System Administrator's access is read from here too.
        if !names.contains(&super::schema::ADMIN_PROFILE) {
            names.push(super::schema::ADMIN_PROFILE);
        }
        let records = client
            .metadata_read("Profile", &names)
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok((Profiles { records }, layouts))
    }

    /// One profile's record by its full name.
    pub fn get(&self, full_name: &str) -> Option<&El> {
        self.records
            .iter()
            .find(|p| p.text_of("fullName") == Some(full_name))
    }

    /// Which of `layouts` some profile is assigned. Names are compared
    /// decoded: assignments and lists may encode differently.
    pub fn account_layouts(&self, layouts: Vec<String>) -> AccountLayouts {
        let used: BTreeSet<String> = self
            .records
            .iter()
            .flat_map(|p| p.children_named("layoutAssignments"))
            .filter_map(|a| a.text_of("layout"))
            .map(normalized)
            .collect();
        let assigned = layouts
            .iter()
            .filter(|l| used.contains(&normalized(l)))
            .cloned()
            .collect();
        AccountLayouts {
            all: layouts,
            assigned,
        }
    }
}

fn normalized(name: &str) -> String {
    percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .to_lowercase()
}

fn is_account_layout(full_name: &str) -> bool {
    full_name
        .split_once('-')
        .is_some_and(|(o, _)| o.eq_ignore_ascii_case("Account"))
}

pub(crate) fn has_related_list(layout: &El) -> bool {
    layout.children_named("relatedLists").any(|r| {
        r.text_of("relatedList")
            .is_some_and(|n| n.eq_ignore_ascii_case(RELATED_LIST))
    })
}

/// The layout's whole body with the Requests related list added after the
/// last related list (or where the schema's order puts it), everything else
/// kept as it was read.
pub(crate) fn with_related_list(layout: &El) -> String {
    let ours = related_list_xml();
    let children: Vec<&El> = layout
        .children
        .iter()
        .filter(|c| c.name != "fullName")
        .collect();
    // Layout's elements come in alphabetical (schema) order.
    let at = children
        .iter()
        .rposition(|c| c.name.as_str() <= "relatedLists")
        .map_or(0, |i| i + 1);
    let mut body = String::new();
    for (i, c) in children.iter().enumerate() {
        if i == at {
            body.push_str(&ours);
        }
        body.push_str(&c.to_xml());
    }
    if at >= children.len() {
        body.push_str(&ours);
    }
    body
}

/// What happened to one layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutOutcome {
    Had(String),
    Added(String),
    /// Salesforce refused the change (name, its words): a warning, not a failure.
    Refused(String, String),
}

/// Adds the related list to each named layout that lacks it.
pub(crate) async fn add_related_list(
    client: &Client,
    layouts: &[String],
) -> Result<Vec<LayoutOutcome>, salesforce::Error> {
    let names: Vec<&str> = layouts.iter().map(String::as_str).collect();
    let read = client.metadata_read("Layout", &names).await?;
    let mut outcomes = Vec::new();
    let mut to_save = Vec::new();
    for (name, layout) in layouts.iter().zip(read) {
        match layout {
            Some(l) if has_related_list(&l) => outcomes.push(LayoutOutcome::Had(name.clone())),
            Some(l) => to_save.push(metadata::layout(name, with_related_list(&l))),
            None => outcomes.push(LayoutOutcome::Refused(
                name.clone(),
                "Salesforce returned no such layout".into(),
            )),
        }
    }
    if to_save.is_empty() {
        return Ok(outcomes);
    }
    for r in client.metadata_save(Save::Update, &to_save).await? {
        outcomes.push(if r.success {
            LayoutOutcome::Added(r.full_name)
        } else {
            let why = salesforce::RecordError::summary(&r.errors);
            LayoutOutcome::Refused(r.full_name, why)
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(name: &str, text: &str, children: Vec<El>) -> El {
        El {
            name: name.into(),
            text: text.into(),
            children,
            ..Default::default()
        }
    }

    #[test]
    fn related_list_goes_after_the_last_one_and_keeps_the_rest() {
        let layout = el(
            "records",
            "",
            vec![
                el("fullName", "Account-Account Layout", vec![]),
                el("layoutSections", "x", vec![]),
                el(
                    "relatedLists",
                    "",
                    vec![el("relatedList", "RelatedContactList", vec![])],
                ),
                el("showEmailCheckbox", "false", vec![]),
            ],
        );
        assert!(!has_related_list(&layout));
        let body = with_related_list(&layout);
        let contact = body.find("RelatedContactList").unwrap();
        let ours = body.find(RELATED_LIST).unwrap();
        let tail = body.find("showEmailCheckbox").unwrap();
        assert!(contact < ours && ours < tail, "{body}");
        assert!(body.contains("layoutSections"));
        assert!(!body.contains("fullName"));
    }

    #[test]
    fn columns_are_bare_aliases() {
        let xml = related_list_xml();
        assert!(xml.contains("<fields>Title__c</fields>"));
        assert!(!xml.contains("Request__c.Title__c"));
        assert!(!xml.contains("sortField"));
    }

    #[test]
    fn a_layout_without_related_lists_gets_ours_in_schema_order() {
        let layout = el(
            "records",
            "",
            vec![
                el("layoutSections", "x", vec![]),
                el("showRunAssignmentRulesCheckbox", "false", vec![]),
            ],
        );
        let body = with_related_list(&layout);
        assert!(body.find("layoutSections").unwrap() < body.find(RELATED_LIST).unwrap());
        assert!(body.find(RELATED_LIST).unwrap() < body.find("showRun").unwrap());
    }
}
