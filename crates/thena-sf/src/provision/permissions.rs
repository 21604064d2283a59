//! Field access: the connector's permission set (assigned to the connected
//! user) and the System Administrator profile.
//!
//! A permission set save replaces the set (API 40.0+), so the set is read,
//! merged and written whole: a permission an admin added by hand is never
//! removed. A profile save overlays, so it names only our fields. Required
//! fields take no field-level security at all (salesforce-api.md §9.2).

use std::collections::HashMap;

use salesforce::metadata::{self, Component};
use salesforce::xml::El;

use super::schema::OBJECT;

/// Field permissions (`Object.Field` lower case → editable) found on a
/// permission set or profile.
pub(crate) fn granted(perms: &El) -> HashMap<String, bool> {
    perms
        .children_named("fieldPermissions")
        .filter(|p| p.text_of("readable") == Some("true"))
        .filter_map(|p| {
            Some((
                p.text_of("field")?.to_ascii_lowercase(),
                p.text_of("editable") == Some("true"),
            ))
        })
        .collect()
}

/// `fields` (`Object.Field`) that `perms` does not let read and edit.
pub(crate) fn missing_from(perms: Option<&El>, fields: &[String]) -> Vec<String> {
    let have = perms.map(granted).unwrap_or_default();
    fields
        .iter()
        .filter(|k| have.get(&k.to_ascii_lowercase()) != Some(&true))
        .cloned()
        .collect()
}

fn object_granted(perms: &El) -> bool {
    perms.children_named("objectPermissions").any(|o| {
        o.text_of("object")
            .is_some_and(|n| n.eq_ignore_ascii_case(OBJECT))
            && ["allowCreate", "allowEdit", "allowRead"]
                .iter()
                .all(|k| o.text_of(k) == Some("true"))
    })
}

/// The permission set `name` as it must be written: everything it has now,
/// plus read and edit on `fields` and create, read and edit on the object.
/// `None` when it already grants all of that.
pub(crate) fn merged_permission_set(
    name: &str,
    label: &str,
    existing: Option<&El>,
    fields: &[String],
) -> Option<Component> {
    let missing = missing_from(existing, fields);
    let object_ok = existing.is_some_and(object_granted);
    if existing.is_some() && missing.is_empty() && object_ok {
        return None;
    }
    let ours: Vec<(String, bool)> = missing.iter().map(|f| (f.clone(), true)).collect();
    let mut children: Vec<(String, String)> = existing
        .map(|e| {
            e.children
                .iter()
                .filter(|c| c.name != "fullName")
                // Ours are written again below, whole.
                .filter(|c| !(c.name == "fieldPermissions" && names_one_of(c, &missing)))
                .filter(|c| !(c.name == "objectPermissions" && !object_ok && is_ours(c)))
                .map(|c| (c.name.clone(), c.to_xml()))
                .collect()
        })
        .unwrap_or_default();
    for (f, edit) in &ours {
        let xml = metadata::permissions(&[(f.clone(), *edit)], &[]);
        insert_ordered(&mut children, "fieldPermissions", xml);
    }
    if !object_ok {
        let xml = metadata::permissions(&[], &[OBJECT.to_string()]);
        insert_ordered(&mut children, "objectPermissions", xml);
    }
    if !children.iter().any(|(n, _)| n == "label") {
        let xml = format!("<label>{}</label>", salesforce::xml::escape(label));
        insert_ordered(&mut children, "label", xml);
    }
    Some(Component {
        kind: "PermissionSet",
        full_name: name.to_string(),
        body: children.into_iter().map(|(_, x)| x).collect(),
    })
}

fn names_one_of(fp: &El, fields: &[String]) -> bool {
    fp.text_of("field")
        .is_some_and(|f| fields.iter().any(|m| m.eq_ignore_ascii_case(f)))
}

fn is_ours(op: &El) -> bool {
    op.text_of("object")
        .is_some_and(|o| o.eq_ignore_ascii_case(OBJECT))
}

/// Inserts after the last element whose name sorts at or before `name`:
/// metadata types list their elements in alphabetical (schema) order, and
/// Salesforce's SOAP parser wants them in that order.
fn insert_ordered(children: &mut Vec<(String, String)>, name: &str, xml: String) {
    let at = children
        .iter()
        .rposition(|(n, _)| n.as_str() <= name)
        .map_or(0, |i| i + 1);
    children.insert(at, (name.to_string(), xml));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> El {
        salesforce::xml::parse(xml.as_bytes()).unwrap()
    }

    #[test]
    fn an_admins_own_permissions_survive_the_merge() {
        let existing = parse(
            "<records><fullName>Thena_Request_Sync</fullName>\
             <fieldPermissions><editable>false</editable><field>Account.Website</field><readable>true</readable></fieldPermissions>\
             <fieldPermissions><editable>true</editable><field>Request__c.Title__c</field><readable>true</readable></fieldPermissions>\
             <label>Thena Request Sync</label>\
             <objectPermissions><allowCreate>true</allowCreate><allowDelete>false</allowDelete><allowEdit>true</allowEdit><allowRead>true</allowRead><modifyAllRecords>false</modifyAllRecords><object>Request__c</object><viewAllRecords>false</viewAllRecords></objectPermissions>\
             <userPermissions><enabled>true</enabled><name>ApiEnabled</name></userPermissions></records>",
        );
        let fields = vec![
            "Request__c.Title__c".to_string(),
            "Request__c.Product__c".to_string(),
        ];
        let c = merged_permission_set("Thena_Request_Sync", "x", Some(&existing), &fields)
            .expect("a field is missing");
        assert!(c.body.contains("Account.Website"), "{}", c.body);
        assert!(c.body.contains("ApiEnabled"));
        assert!(c.body.contains("Request__c.Product__c"));
        assert_eq!(c.body.matches("Request__c.Title__c").count(), 1);
        let order: Vec<usize> = [
            "Request__c.Product__c",
            "<label>",
            "<objectPermissions>",
            "<userPermissions>",
        ]
        .iter()
        .map(|k| c.body.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", c.body);
        assert!(
            merged_permission_set("Thena_Request_Sync", "x", Some(&existing), &fields[..1])
                .is_none()
        );
    }

    #[test]
    fn a_new_set_gets_its_label_fields_and_object() {
        let c = merged_permission_set("P", "Label", None, &["Request__c.Title__c".into()]).unwrap();
        assert!(c.body.contains("<label>Label</label>"));
        assert!(c.body.contains("<object>Request__c</object>"));
        assert!(c.body.contains("Request__c.Title__c"));
    }
}
