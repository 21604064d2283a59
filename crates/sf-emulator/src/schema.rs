//! Object and field definitions: the standard objects the emulator knows, and
//! the custom objects and fields created through the Metadata API.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// What a field holds, with the facts validation and describe need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FieldType {
    Id,
    Text {
        length: u32,
    },
    /// Long text area (plain) or rich text (Html).
    LongText {
        length: u32,
        html: bool,
    },
    Url,
    Email,
    Phone,
    Picklist {
        values: Vec<String>,
        restricted: bool,
    },
    Reference {
        to: String,
        delete_constraint: DeleteConstraint,
    },
    Boolean,
    DateTime,
    Date,
    Number,
    AutoNumber {
        display_format: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteConstraint {
    SetNull,
    Restrict,
    Cascade,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    pub ftype: FieldType,
    /// Required on create (REQUIRED_FIELD_MISSING when absent).
    pub required: bool,
    pub unique: bool,
    pub external_id: bool,
    pub case_sensitive: bool,
    pub custom: bool,
    /// Set by the system, never by a caller (Id, CreatedDate, Name of Contact, ...).
    pub system: bool,
    /// Field-level security applies: invisible until a permission grants it.
    pub fls: bool,
    /// Parent relationship name used in SOQL paths (`Account`, `Account__r`).
    pub relationship_name: Option<String>,
    /// Child relationship name on the parent (`Requests__r`, `Contacts`).
    pub child_relationship_name: Option<String>,
}

impl FieldDef {
    pub fn new(name: &str, label: &str, ftype: FieldType) -> FieldDef {
        FieldDef {
            name: name.to_string(),
            label: label.to_string(),
            ftype,
            required: false,
            unique: false,
            external_id: false,
            case_sensitive: false,
            custom: name.ends_with("__c"),
            system: false,
            fls: false,
            relationship_name: None,
            child_relationship_name: None,
        }
    }

    fn system(mut self) -> Self {
        self.system = true;
        self
    }

    fn required(mut self) -> Self {
        self.required = true;
        self
    }

    fn reference(name: &str, label: &str, to: &str, rel: &str, child: Option<&str>) -> FieldDef {
        let mut f = FieldDef::new(
            name,
            label,
            FieldType::Reference {
                to: to.to_string(),
                delete_constraint: DeleteConstraint::SetNull,
            },
        );
        f.relationship_name = Some(rel.to_string());
        f.child_relationship_name = child.map(str::to_string);
        f
    }

    /// Whether equality lookups on this field are served from an index.
    /// System lookups (owner, created by) are not indexed: every row of an
    /// org points at the same few users, and the emulator never filters on them.
    pub fn indexed(&self) -> bool {
        self.external_id
            || self.unique
            || matches!(self.ftype, FieldType::Email | FieldType::Id)
            || (matches!(self.ftype, FieldType::Reference { .. }) && !self.system)
            || self.name == "Name"
    }

    /// Maximum length in characters for text-like fields.
    pub fn max_length(&self) -> Option<u32> {
        match &self.ftype {
            FieldType::Text { length } | FieldType::LongText { length, .. } => Some(*length),
            FieldType::Url | FieldType::Picklist { .. } => Some(255),
            // Email fields hold 80 (Contact.Email, §9.6).
            FieldType::Email => Some(80),
            FieldType::Phone => Some(40),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    pub custom: bool,
    pub fields: Vec<FieldDef>,
    #[serde(skip)]
    by_lower: HashMap<String, usize>,
}

impl ObjectDef {
    pub fn new(
        name: &str,
        label: &str,
        plural: &str,
        prefix: &str,
        fields: Vec<FieldDef>,
    ) -> ObjectDef {
        let mut o = ObjectDef {
            name: name.to_string(),
            label: label.to_string(),
            label_plural: plural.to_string(),
            key_prefix: prefix.to_string(),
            custom: name.ends_with("__c"),
            fields,
            by_lower: HashMap::new(),
        };
        o.reindex();
        o
    }

    /// Rebuilds the lower-case name lookup (after deserialising or changing fields).
    pub fn reindex(&mut self) {
        self.by_lower = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
    }

    /// The slot of a field, by case-insensitive name.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.by_lower.get(&name.to_ascii_lowercase()).copied()
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.slot(name).map(|i| &self.fields[i])
    }

    /// Adds a field, or replaces the definition of one with the same name
    /// (keeping its slot so existing records keep their values).
    pub fn put_field(&mut self, field: FieldDef) -> usize {
        if let Some(i) = self.slot(&field.name) {
            self.fields[i] = field;
            i
        } else {
            self.fields.push(field);
            self.reindex();
            self.fields.len() - 1
        }
    }

    /// The slot of the field whose parent relationship name is `rel` (case-insensitive).
    pub fn relationship_slot(&self, rel: &str) -> Option<usize> {
        self.fields.iter().position(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(rel))
        })
    }
}

/// Fields every object has.
fn system_fields(with_owner: bool) -> Vec<FieldDef> {
    let mut v = vec![
        FieldDef::new("Id", "Record ID", FieldType::Id).system(),
        FieldDef::new("IsDeleted", "Deleted", FieldType::Boolean).system(),
        FieldDef::new("CreatedDate", "Created Date", FieldType::DateTime).system(),
        FieldDef::reference("CreatedById", "Created By ID", "User", "CreatedBy", None).system(),
        FieldDef::new(
            "LastModifiedDate",
            "Last Modified Date",
            FieldType::DateTime,
        )
        .system(),
        FieldDef::reference(
            "LastModifiedById",
            "Last Modified By ID",
            "User",
            "LastModifiedBy",
            None,
        )
        .system(),
        FieldDef::new("SystemModstamp", "System Modstamp", FieldType::DateTime).system(),
    ];
    if with_owner {
        v.push(FieldDef::reference("OwnerId", "Owner ID", "User", "Owner", None).system());
    }
    v
}

fn text(name: &str, label: &str, length: u32) -> FieldDef {
    FieldDef::new(name, label, FieldType::Text { length })
}

fn boolean(name: &str, label: &str) -> FieldDef {
    FieldDef::new(name, label, FieldType::Boolean)
}

/// The standard objects of a new org.
pub fn standard_objects() -> Vec<ObjectDef> {
    let mut account = system_fields(true);
    account.extend([
        text("Name", "Account Name", 255).required(),
        FieldDef::new("Website", "Website", FieldType::Url),
        text("Industry", "Industry", 255),
        FieldDef::new("Phone", "Account Phone", FieldType::Phone),
        text("Type", "Account Type", 255),
        FieldDef::new(
            "Description",
            "Account Description",
            FieldType::LongText {
                length: 32000,
                html: false,
            },
        ),
        FieldDef::reference(
            "ParentId",
            "Parent Account ID",
            "Account",
            "Parent",
            Some("ChildAccounts"),
        ),
    ]);

    let mut contact = system_fields(true);
    contact.extend([
        text("FirstName", "First Name", 40),
        text("LastName", "Last Name", 80).required(),
        text("Name", "Full Name", 121).system(),
        FieldDef::new("Email", "Email", FieldType::Email),
        FieldDef::new("Phone", "Business Phone", FieldType::Phone),
        text("Title", "Title", 128),
        FieldDef::reference(
            "AccountId",
            "Account ID",
            "Account",
            "Account",
            Some("Contacts"),
        ),
        FieldDef::new(
            "Description",
            "Contact Description",
            FieldType::LongText {
                length: 32000,
                html: false,
            },
        ),
    ]);

    let mut lead = system_fields(true);
    lead.extend([
        text("FirstName", "First Name", 40),
        text("LastName", "Last Name", 80).required(),
        text("Name", "Full Name", 121).system(),
        FieldDef::new("Email", "Email", FieldType::Email),
        text("Company", "Company", 255).required(),
        text("Status", "Lead Status", 255),
    ]);

    let mut user = system_fields(false);
    user.extend([
        text("Username", "Username", 80).required(),
        text("FirstName", "First Name", 40),
        text("LastName", "Last Name", 80).required(),
        text("Name", "Full Name", 121).system(),
        FieldDef::new("Email", "Email", FieldType::Email).required(),
        boolean("IsActive", "Active"),
        FieldDef::reference("ProfileId", "Profile ID", "Profile", "Profile", None),
    ]);

    let mut profile = system_fields(false);
    profile.extend([text("Name", "Name", 255).required()]);

    let mut perm_set = system_fields(false);
    perm_set.extend([
        text("Name", "Name", 80).required(),
        text("Label", "Label", 80).required(),
        boolean("IsOwnedByProfile", "Is Owned By Profile"),
        FieldDef::reference("ProfileId", "Profile ID", "Profile", "Profile", None),
    ]);

    let mut assignment = system_fields(false);
    assignment.extend([
        FieldDef::reference("AssigneeId", "Assignee ID", "User", "Assignee", None).required(),
        FieldDef::reference(
            "PermissionSetId",
            "Permission Set ID",
            "PermissionSet",
            "PermissionSet",
            Some("Assignments"),
        )
        .required(),
    ]);

    let mut obj_perms = system_fields(false);
    obj_perms.extend([
        FieldDef::reference(
            "ParentId",
            "Parent ID",
            "PermissionSet",
            "Parent",
            Some("ObjectPerms"),
        )
        .required(),
        text("SobjectType", "Sobject Type Name", 255).required(),
        boolean("PermissionsRead", "Read"),
        boolean("PermissionsCreate", "Create"),
        boolean("PermissionsEdit", "Edit"),
        boolean("PermissionsDelete", "Delete"),
        boolean("PermissionsViewAllRecords", "View All"),
        boolean("PermissionsModifyAllRecords", "Modify All"),
    ]);

    let mut field_perms = system_fields(false);
    field_perms.extend([
        FieldDef::reference(
            "ParentId",
            "Parent ID",
            "PermissionSet",
            "Parent",
            Some("FieldPerms"),
        )
        .required(),
        text("SobjectType", "Sobject Type Name", 255).required(),
        text("Field", "Field Name", 255).required(),
        boolean("PermissionsRead", "Read"),
        boolean("PermissionsEdit", "Edit"),
    ]);

    vec![
        ObjectDef::new("Account", "Account", "Accounts", "001", account),
        ObjectDef::new("Contact", "Contact", "Contacts", "003", contact),
        ObjectDef::new("Lead", "Lead", "Leads", "00Q", lead),
        ObjectDef::new("User", "User", "Users", "005", user),
        ObjectDef::new("Profile", "Profile", "Profile", "00e", profile),
        ObjectDef::new(
            "PermissionSet",
            "Permission Set",
            "Permission Sets",
            "0PS",
            perm_set,
        ),
        ObjectDef::new(
            "PermissionSetAssignment",
            "Permission Set Assignment",
            "Permission Set Assignments",
            "0Pa",
            assignment,
        ),
        ObjectDef::new(
            "ObjectPermissions",
            "Object Permissions",
            "Object Permissions",
            "110",
            obj_perms,
        ),
        ObjectDef::new(
            "FieldPermissions",
            "Field Permissions",
            "Field Permissions",
            "01k",
            field_perms,
        ),
    ]
}

/// The fields a new custom object starts with: system fields plus its Name.
pub fn custom_object_fields(name_field: FieldDef) -> Vec<FieldDef> {
    let mut v = system_fields(true);
    let mut name = name_field;
    name.name = "Name".to_string();
    name.custom = false;
    v.push(name);
    v
}
