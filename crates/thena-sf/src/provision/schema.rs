//! The `Request__c` object and fields the connector needs, exactly as the
//! field table of the Thena contract names them.

use salesforce::metadata::{FieldKind, NameField};

pub const OBJECT: &str = "Request__c";
pub const EXTERNAL_ID: &str = "RequestId__c";
pub const PERMISSION_SET: &str = "Thena_Request_Sync";
pub const ADMIN_PROFILE: &str = "Admin";
/// The related list of Requests on Accounts: child object and lookup field.
pub const RELATED_LIST: &str = "Request__c.Account__c";

/// Records are named by their Thena request id, set by the sync: a Text
/// name (Salesforce's default label for it, not `Request ID`, which is
/// RequestId__c's), never an auto-number that reads like another id.
pub const NAME_FIELD: NameField<'static> = NameField::Text {
    label: "Request Name",
};

pub const STATUS_VALUES: [&str; 4] = ["Open", "In Progress", "On Hold", "Closed"];

/// A field the object must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: String,
    pub label: String,
    pub kind: FieldKind,
    pub external_id: bool,
    pub unique: bool,
}

fn f(name: &str, label: &str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name: name.into(),
        label: label.into(),
        kind,
        external_id: false,
        unique: false,
    }
}

const TEXT: FieldKind = FieldKind::Text { length: 255 };
const RICH: FieldKind = FieldKind::Html { length: 131_072 };
const RICH_SHORT: FieldKind = FieldKind::Html { length: 32_768 };

/// The seed fields (categories add one Text field each).
pub fn seed_fields() -> Vec<FieldSpec> {
    vec![
        FieldSpec {
            external_id: true,
            unique: true,
            ..f("RequestId__c", "Request ID", TEXT)
        },
        f("Title__c", "Title", TEXT),
        f("Summary__c", "Summary", RICH_SHORT),
        f("Urgency__c", "Urgency", TEXT),
        f("Sentiment__c", "Sentiment", TEXT),
        f(
            "AiTags__c",
            "AI Tags",
            FieldKind::LongText { length: 32_768 },
        ),
        f(
            "Status__c",
            "Status",
            FieldKind::Picklist {
                values: STATUS_VALUES.iter().map(|s| s.to_string()).collect(),
                restricted: false,
            },
        ),
        f("Assigned_To__c", "Assigned To", TEXT),
        f("Csat__c", "CSAT", RICH_SHORT),
        f("Permalink__c", "Permalink", TEXT),
        f("requestCreatedAt__c", "Request Created At", TEXT),
        f("requestUpdatedAt__c", "Request Updated At", TEXT),
        f("requestClosedAt__c", "Request Closed At", TEXT),
        f("requestClosedBy__c", "Request Closed By", TEXT),
        f(
            "requestInternalNotificationLink__c",
            "Internal Notification Link",
            FieldKind::Url,
        ),
        f("requestWebLink__c", "Request Web Link", FieldKind::Url),
        f("Message_Text__c", "Message Text", RICH),
        f("Customer_Thread__c", "Customer Thread", RICH),
        f("Internal_Thread__c", "Internal Thread", RICH),
        f(
            "Requestor__c",
            "Requestor",
            FieldKind::Lookup {
                to: "Contact".into(),
                relationship_name: "Requests".into(),
            },
        ),
        f(
            "Account__c",
            "Account",
            FieldKind::Lookup {
                to: "Account".into(),
                relationship_name: "Requests".into(),
            },
        ),
    ]
}

/// The Text field for a custom category.
pub fn category_field(field: &str, category: &str) -> FieldSpec {
    let label: String = category.chars().take(40).collect();
    f(
        field,
        if label.trim().is_empty() {
            field
        } else {
            label.trim()
        },
        TEXT,
    )
}

/// The REST (describe) type of a field kind.
pub fn rest_type(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Text { .. } => "string",
        FieldKind::LongText { .. } | FieldKind::Html { .. } => "textarea",
        FieldKind::Url => "url",
        FieldKind::Picklist { .. } => "picklist",
        FieldKind::Lookup { .. } => "reference",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_of_the_contract_is_there_once() {
        let names: Vec<String> = seed_fields().into_iter().map(|f| f.name).collect();
        for n in [
            "RequestId__c",
            "Title__c",
            "Summary__c",
            "Urgency__c",
            "Sentiment__c",
            "AiTags__c",
            "Status__c",
            "Assigned_To__c",
            "Csat__c",
            "Permalink__c",
            "requestCreatedAt__c",
            "requestUpdatedAt__c",
            "requestClosedAt__c",
            "requestClosedBy__c",
            "requestInternalNotificationLink__c",
            "requestWebLink__c",
            "Message_Text__c",
            "Customer_Thread__c",
            "Internal_Thread__c",
            "Requestor__c",
            "Account__c",
        ] {
            assert_eq!(names.iter().filter(|x| *x == n).count(), 1, "{n}");
        }
        assert_eq!(names.len(), 21);
        // Salesforce allows 1,638,400 characters of long text per object.
        let long: u32 = seed_fields()
            .iter()
            .map(|f| match f.kind {
                FieldKind::Html { length } | FieldKind::LongText { length } => length,
                _ => 0,
            })
            .sum();
        assert!(long <= 1_638_400, "{long}");
    }
}
