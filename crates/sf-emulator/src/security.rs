//! Field-level security: which custom fields the API user may read and edit.
//!
//! The truth lives in records, as in Salesforce: `FieldPermissions` rows whose
//! parent `PermissionSet` is assigned to the user (`PermissionSetAssignment`)
//! or is owned by the user's profile. Profile metadata writes such rows on the
//! profile's own permission set.

use std::collections::HashSet;

use crate::org::Org;
use crate::value::Val;

/// What one user may see and change, by lower-case `object.field`.
#[derive(Debug, Default, Clone)]
pub struct FieldAccess {
    readable: HashSet<String>,
    editable: HashSet<String>,
}

impl FieldAccess {
    pub fn can_read(&self, object: &str, field: &str) -> bool {
        self.readable.contains(&key(object, field))
    }

    pub fn can_edit(&self, object: &str, field: &str) -> bool {
        self.editable.contains(&key(object, field))
    }
}

fn key(object: &str, field: &str) -> String {
    format!(
        "{}.{}",
        object.to_ascii_lowercase(),
        field.to_ascii_lowercase()
    )
}

/// The permission sets that apply to a user: assigned ones and the profile's own.
pub fn permission_sets_of(org: &Org, user_id: &str) -> HashSet<String> {
    let mut sets = HashSet::new();
    let user_profile = org
        .table("User")
        .and_then(|t| t.get(user_id))
        .and_then(|row| org.get_field("User", row, "ProfileId"))
        .and_then(|v| v.as_str().map(str::to_lowercase));
    if let Some(t) = org.table("PermissionSetAssignment") {
        for row in t.iter() {
            let assignee = org.get_field("PermissionSetAssignment", row, "AssigneeId");
            if assignee
                .and_then(Val::as_str)
                .is_some_and(|a| a.eq_ignore_ascii_case(user_id))
            {
                if let Some(ps) = org
                    .get_field("PermissionSetAssignment", row, "PermissionSetId")
                    .and_then(Val::as_str)
                {
                    sets.insert(ps.to_lowercase());
                }
            }
        }
    }
    if let (Some(profile), Some(t)) = (user_profile, org.table("PermissionSet")) {
        for row in t.iter() {
            let owner = org
                .get_field("PermissionSet", row, "ProfileId")
                .and_then(Val::as_str);
            if owner.is_some_and(|p| p.to_lowercase() == profile) {
                sets.insert(row[0].as_str().unwrap_or_default().to_lowercase());
            }
        }
    }
    sets
}

/// Computes a user's field access from the permission records.
pub fn field_access(org: &Org, user_id: &str) -> FieldAccess {
    let sets = permission_sets_of(org, user_id);
    let mut access = FieldAccess::default();
    let Some(t) = org.table("FieldPermissions") else {
        return access;
    };
    for row in t.iter() {
        let parent = org
            .get_field("FieldPermissions", row, "ParentId")
            .and_then(Val::as_str);
        if !parent.is_some_and(|p| sets.contains(&p.to_lowercase())) {
            continue;
        }
        let Some(field) = org
            .get_field("FieldPermissions", row, "Field")
            .and_then(Val::as_str)
        else {
            continue;
        };
        let read = matches!(
            org.get_field("FieldPermissions", row, "PermissionsRead"),
            Some(Val::Bool(true))
        );
        let edit = matches!(
            org.get_field("FieldPermissions", row, "PermissionsEdit"),
            Some(Val::Bool(true))
        );
        let k = field.to_ascii_lowercase();
        if read {
            access.readable.insert(k.clone());
        }
        if read && edit {
            access.editable.insert(k);
        }
    }
    access
}
