//! The Metadata API (SOAP): builders for the components the connector
//! manages, and create/update/upsert/read/delete in calls of at most ten.

use crate::error::{Error, Result};
use crate::types::RecordError;
use crate::xml::{escape, El};
use crate::Client;

/// The most components one Metadata API call takes.
pub const METADATA_LIMIT: usize = 10;

/// One metadata component: its type, full name and inner XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub kind: &'static str,
    pub full_name: String,
    /// The children of `<metadata>` other than `fullName`.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveResult {
    pub full_name: String,
    pub success: bool,
    pub created: bool,
    pub errors: Vec<RecordError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Save {
    Create,
    Update,
    Upsert,
}

fn tag(name: &str, value: impl std::fmt::Display) -> String {
    format!("<{name}>{}</{name}>", escape(&value.to_string()))
}

/// The kinds of custom field the connector creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    Text {
        length: u32,
    },
    LongText {
        length: u32,
    },
    Html {
        length: u32,
    },
    Url,
    Picklist {
        values: Vec<String>,
        restricted: bool,
    },
    Lookup {
        to: String,
        relationship_name: String,
    },
}

impl FieldKind {
    /// The Metadata API's type name for this kind (`<type>`, as
    /// readMetadata reports it).
    pub fn metadata_type(&self) -> &'static str {
        match self {
            FieldKind::Text { .. } => "Text",
            FieldKind::LongText { .. } => "LongTextArea",
            FieldKind::Html { .. } => "Html",
            FieldKind::Url => "Url",
            FieldKind::Picklist { .. } => "Picklist",
            FieldKind::Lookup { .. } => "Lookup",
        }
    }
}

/// How a custom object's records are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameField<'a> {
    /// Given by whoever creates the record, at most 80 characters; required
    /// on create.
    Text { label: &'a str },
    /// Set by the org from a display format such as `REQ-{000000}`; refused
    /// as input.
    AutoNumber {
        label: &'a str,
        display_format: &'a str,
    },
}

impl NameField<'_> {
    fn xml(&self) -> String {
        match self {
            NameField::Text { label } => {
                format!(
                    "<nameField>{}{}</nameField>",
                    tag("label", label),
                    tag("type", "Text")
                )
            }
            NameField::AutoNumber {
                label,
                display_format,
            } => format!(
                "<nameField>{}{}{}</nameField>",
                tag("displayFormat", display_format),
                tag("label", label),
                tag("type", "AutoNumber")
            ),
        }
    }
}

/// A custom object, named as `name` says.
pub fn custom_object(full_name: &str, label: &str, plural: &str, name: NameField) -> Component {
    Component {
        kind: "CustomObject",
        full_name: full_name.into(),
        body: [
            tag("deploymentStatus", "Deployed"),
            tag("label", label),
            name.xml(),
            tag("pluralLabel", plural),
            tag("sharingModel", "ReadWrite"),
        ]
        .concat(),
    }
}

/// A custom field `object.field`.
pub fn custom_field(
    object: &str,
    field: &str,
    label: &str,
    kind: &FieldKind,
    external_id: bool,
    unique: bool,
) -> Component {
    let mut b = String::new();
    if let FieldKind::Lookup { .. } = kind {
        b += &tag("deleteConstraint", "SetNull");
    }
    b += &tag("externalId", external_id);
    b += &tag("label", label);
    match kind {
        FieldKind::Text { length }
        | FieldKind::LongText { length }
        | FieldKind::Html { length } => b += &tag("length", length),
        _ => {}
    }
    if let FieldKind::Lookup {
        to,
        relationship_name,
    } = kind
    {
        b += &tag("referenceTo", to);
        b += &tag("relationshipLabel", relationship_name);
        b += &tag("relationshipName", relationship_name);
    }
    b += &tag("required", false);
    let ty = kind.metadata_type();
    b += &tag("type", ty);
    if unique {
        b += &tag("unique", true);
    }
    if let FieldKind::Picklist { values, restricted } = kind {
        b += &format!(
            "<valueSet>{}<valueSetDefinition><sorted>false</sorted>",
            tag("restricted", restricted)
        );
        for (i, v) in values.iter().enumerate() {
            b += &format!(
                "<value>{}{}{}</value>",
                tag("fullName", v),
                tag("default", i == 0),
                tag("label", v)
            );
        }
        b += "</valueSetDefinition></valueSet>";
    }
    match kind {
        FieldKind::LongText { .. } => b += &tag("visibleLines", 6),
        FieldKind::Html { .. } => b += &tag("visibleLines", 10),
        _ => {}
    }
    Component {
        kind: "CustomField",
        full_name: format!("{object}.{field}"),
        body: b,
    }
}

/// Field access for `fields` (`Object.Field`, editable?) and CRUD on `objects`.
pub fn permissions(fields: &[(String, bool)], objects: &[String]) -> String {
    let mut b = String::new();
    for (f, edit) in fields {
        b += &format!(
            "<fieldPermissions>{}{}{}</fieldPermissions>",
            tag("editable", edit),
            tag("field", f),
            tag("readable", true)
        );
    }
    for o in objects {
        b += &format!(
            "<objectPermissions>{}{}{}{}{}{}{}</objectPermissions>",
            tag("allowCreate", true),
            tag("allowDelete", false),
            tag("allowEdit", true),
            tag("allowRead", true),
            tag("modifyAllRecords", false),
            tag("object", o),
            tag("viewAllRecords", false)
        );
    }
    b
}

pub fn permission_set(
    name: &str,
    label: &str,
    fields: &[(String, bool)],
    objects: &[String],
) -> Component {
    let perms = permissions(fields, objects);
    Component {
        kind: "PermissionSet",
        full_name: name.into(),
        body: format!("{perms}{}", tag("label", label)),
    }
}

/// Field access on a profile (`Admin` is System Administrator).
pub fn profile(full_name: &str, fields: &[(String, bool)], objects: &[String]) -> Component {
    Component {
        kind: "Profile",
        full_name: full_name.into(),
        body: permissions(fields, objects),
    }
}

/// A layout with the given body (everything but `fullName`).
pub fn layout(full_name: &str, body: String) -> Component {
    Component {
        kind: "Layout",
        full_name: full_name.into(),
        body,
    }
}

fn parse_results(resp: &El) -> Vec<SaveResult> {
    resp.children_named("result")
        .map(|r| SaveResult {
            full_name: r.text_of("fullName").unwrap_or("").to_string(),
            success: r.text_of("success") == Some("true"),
            created: r.text_of("created") == Some("true"),
            errors: r
                .children_named("errors")
                .map(|e| RecordError {
                    status_code: e.text_of("statusCode").unwrap_or("").to_string(),
                    message: e.text_of("message").unwrap_or("").to_string(),
                    fields: e
                        .children_named("fields")
                        .map(|f| f.text.trim().to_string())
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

impl Client {
    /// Saves components, ten of one type per call; one result per component, in order.
    pub async fn metadata_save(
        &self,
        how: Save,
        components: &[Component],
    ) -> Result<Vec<SaveResult>> {
        let op = match how {
            Save::Create => "createMetadata",
            Save::Update => "updateMetadata",
            Save::Upsert => "upsertMetadata",
        };
        let mut out = Vec::with_capacity(components.len());
        let mut i = 0;
        while i < components.len() {
            let kind = components[i].kind;
            let batch: Vec<&Component> = components[i..]
                .iter()
                .take_while(|c| c.kind == kind)
                .take(METADATA_LIMIT)
                .collect();
            i += batch.len();
            let items: String = batch
                .iter()
                .map(|c| {
                    format!(
                        r#"<metadata xsi:type="{}">{}{}</metadata>"#,
                        c.kind,
                        tag("fullName", &c.full_name),
                        c.body
                    )
                })
                .collect();
            let resp = self.soap(&format!("<{op}>{items}</{op}>")).await?;
            let results = parse_results(&resp);
            if results.len() != batch.len() {
                return Err(Error::Protocol(format!(
                    "{op} gave {} results for {} components",
                    results.len(),
                    batch.len()
                )));
            }
            out.extend(results);
        }
        Ok(out)
    }

    /// Reads components by full name; `None` for one that does not exist.
    pub async fn metadata_read(&self, kind: &str, names: &[&str]) -> Result<Vec<Option<El>>> {
        let mut out = Vec::new();
        for chunk in names.chunks(METADATA_LIMIT) {
            let names_xml: String = chunk.iter().map(|n| tag("fullNames", n)).collect();
            let resp = self
                .soap(&format!(
                    "<readMetadata>{}{names_xml}</readMetadata>",
                    tag("type", kind)
                ))
                .await?;
            let result = resp
                .child("result")
                .ok_or_else(|| Error::Protocol("readMetadata without result".into()))?;
            let records: Vec<Option<El>> = result
                .children_named("records")
                .map(|r| {
                    if r.is_nil() || r.child("fullName").is_none() {
                        None
                    } else {
                        Some(r.clone())
                    }
                })
                .collect();
            if records.len() != chunk.len() {
                return Err(Error::Protocol(format!(
                    "readMetadata gave {} records for {} names",
                    records.len(),
                    chunk.len()
                )));
            }
            out.extend(records);
        }
        Ok(out)
    }

    /// The full names of every component of the given types (at most three
    /// types per call, as `listMetadata` allows), as `(type, fullName)`;
    /// names come verbatim (percent-encoded where Salesforce encodes them).
    pub async fn metadata_list(&self, kinds: &[&str]) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for chunk in kinds.chunks(3) {
            let queries: String = chunk
                .iter()
                .map(|k| format!("<queries>{}</queries>", tag("type", k)))
                .collect();
            let resp = self
                .soap(&format!(
                    "<listMetadata>{queries}{}</listMetadata>",
                    tag("asOfVersion", self.api_version())
                ))
                .await?;
            out.extend(resp.children_named("result").filter_map(|r| {
                Some((
                    r.text_of("type")?.to_string(),
                    r.text_of("fullName")?.to_string(),
                ))
            }));
        }
        Ok(out)
    }

    pub async fn metadata_delete(&self, kind: &str, names: &[&str]) -> Result<Vec<SaveResult>> {
        let mut out = Vec::new();
        for chunk in names.chunks(METADATA_LIMIT) {
            let names_xml: String = chunk.iter().map(|n| tag("fullNames", n)).collect();
            let resp = self
                .soap(&format!(
                    "<deleteMetadata>{}{names_xml}</deleteMetadata>",
                    tag("type", kind)
                ))
                .await?;
            out.extend(parse_results(&resp));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_escape_their_values() {
        let c = custom_field(
            "Request__c",
            "Product__c",
            "Product <&>",
            &FieldKind::Text { length: 255 },
            false,
            false,
        );
        assert!(c.body.contains("<label>Product &lt;&amp;&gt;</label>"));
        assert_eq!(c.full_name, "Request__c.Product__c");
        let l = custom_field(
            "Request__c",
            "Account__c",
            "Account",
            &FieldKind::Lookup {
                to: "Account".into(),
                relationship_name: "Requests".into(),
            },
            false,
            false,
        );
        assert!(
            l.body
                .contains("<deleteConstraint>SetNull</deleteConstraint>")
                && l.body.contains("<referenceTo>Account</referenceTo>")
        );
    }
}
