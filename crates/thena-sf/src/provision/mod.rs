//! Zero-touch setup of the org: the `Request__c` object and its fields (one
//! Text field per custom category), field access for the connected user (a
//! permission set) and for System Administrator, and the Requests related list
//! on every Account layout a profile sees. Idempotent: it reads what is there
//! and changes only what is missing or wrong, and says what it changed. A
//! layout Salesforce refuses to change is a warning, not a failure: the
//! connection works without the related list.

pub mod categories;
mod doctor;
pub mod layouts;
mod permissions;
pub mod schema;

use std::collections::{HashMap, HashSet};

use salesforce::metadata::{self, FieldKind, Save};
use salesforce::xml::El;
use salesforce::{soql, Client, RecordError};

pub use doctor::{check_and_record, doctor, last_result, Check, DoctorResult};
use layouts::{LayoutOutcome, Profiles};
pub(crate) use permissions::granted;
use schema::{FieldSpec, ADMIN_PROFILE, OBJECT, PERMISSION_SET};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Salesforce(#[from] salesforce::Error),
    #[error("Salesforce refused {what}: {reason}")]
    Refused { what: String, reason: String },
}

/// What a provisioning run changed, one line each, and what it could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub changes: Vec<String>,
    /// Things left undone that do not stop the sync (a layout Salesforce
    /// would not change: its name and Salesforce's words).
    pub warnings: Vec<String>,
}

impl Report {
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.changes.is_empty() {
            writeln!(f, "Salesforce is already set up: nothing to change.")?;
        }
        for c in &self.changes {
            writeln!(f, "  + {c}")?;
        }
        for w in &self.warnings {
            writeln!(f, "  ! {w}")?;
        }
        Ok(())
    }
}

/// Every field wanted: the seed fields plus one per category `(category, field)`.
pub fn wanted_fields(categories: &[(String, String)]) -> Vec<FieldSpec> {
    let mut v = schema::seed_fields();
    v.extend(categories.iter().map(|(c, f)| schema::category_field(f, c)));
    v
}

/// A field as readMetadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Existing {
    pub type_name: String,
    pub length: Option<u32>,
    pub external_id: bool,
    pub unique: bool,
    pub reference_to: Option<String>,
    pub required: bool,
}

pub(crate) fn existing_fields(object: &El) -> HashMap<String, Existing> {
    object
        .children_named("fields")
        .filter_map(|f| {
            let name = f.text_of("fullName")?.rsplit('.').next()?.to_string();
            Some((
                name.to_ascii_lowercase(),
                Existing {
                    type_name: f.text_of("type").unwrap_or("").to_string(),
                    length: f.text_of("length").and_then(|l| l.parse().ok()),
                    external_id: f.text_of("externalId") == Some("true"),
                    unique: f.text_of("unique") == Some("true"),
                    reference_to: f.text_of("referenceTo").map(str::to_string),
                    required: f.text_of("required") == Some("true"),
                },
            ))
        })
        .collect()
}

/// Whether the object's records are named by an auto-number (`REQ-000123`,
/// which reads like another id), as this connector made it before naming
/// records by their request id.
pub(crate) fn name_is_auto_number(object: &El) -> bool {
    object.child("nameField").and_then(|n| n.text_of("type")) == Some("AutoNumber")
}

/// Switches an auto-number Name to Text, keeping the object's labels, so
/// that each record is named by its request id from its next sync on.
/// Salesforce allows this change of the standard Name field (Setup: Edit on
/// the Name field); through the Metadata API an update of the CustomObject
/// carries it, and fields not named in the update stay [UNVERIFIED: that a
/// real org applies the nameField change through updateMetadata; the doctor
/// reads it back, and the sync names records only once describe says Name is
/// createable].
async fn name_by_request_id(
    client: &Client,
    object: &El,
    report: &mut Report,
) -> Result<(), ProvisionError> {
    let label = object.text_of("label").unwrap_or("Request");
    let plural = object.text_of("pluralLabel").unwrap_or("Requests");
    let r = client
        .metadata_save(
            Save::Update,
            &[metadata::custom_object(
                OBJECT,
                label,
                plural,
                schema::NAME_FIELD,
            )],
        )
        .await?;
    // An org that keeps the auto-number is a warning, not a failure: the
    // sync works on, with the org naming records (it sends Name only where
    // describe says Name is createable).
    if let Some(refused) = r.iter().find(|x| !x.success) {
        let why = RecordError::summary(&refused.errors);
        report.warnings.push(format!(
            "{OBJECT} records keep their auto-number names: Salesforce would not make the Name field Text ({why}). To name them by request id, change the Name field's data type to Text in Setup → Object Manager → Request → Fields & Relationships"
        ));
        return Ok(());
    }
    report.changes.push(format!(
        "{OBJECT} records are named by their request id (the Name field was an auto-number; each record takes its id at its next sync)"
    ));
    Ok(())
}

/// What is wrong with an existing field, if anything.
pub(crate) fn field_problem(want: &FieldSpec, have: Option<&Existing>) -> Option<String> {
    let Some(have) = have else {
        return Some("missing".into());
    };
    let want_type = want.kind.metadata_type();
    if have.type_name != want_type {
        return Some(format!("is {} instead of {want_type}", have.type_name));
    }
    match &want.kind {
        FieldKind::Text { length }
        | FieldKind::LongText { length }
        | FieldKind::Html { length }
            if have.length.is_some_and(|l| l < *length) =>
        {
            Some(format!(
                "holds {} characters instead of {length}",
                have.length.unwrap_or(0)
            ))
        }
        FieldKind::Lookup { to, .. }
            if have
                .reference_to
                .as_deref()
                .is_some_and(|r| !r.eq_ignore_ascii_case(to)) =>
        {
            Some(format!(
                "looks up {} instead of {to}",
                have.reference_to.clone().unwrap_or_default()
            ))
        }
        _ if want.external_id && !have.external_id => Some("is not an External ID".into()),
        _ if want.unique && !have.unique => Some("is not Unique".into()),
        _ => None,
    }
}

fn field_key(f: &FieldSpec) -> String {
    format!("{OBJECT}.{}", f.name)
}

fn check_saved(results: &[metadata::SaveResult], what: &str) -> Result<(), ProvisionError> {
    for r in results {
        if !r.success {
            let reason = RecordError::summary(&r.errors);
            return Err(ProvisionError::Refused {
                what: format!("{what} {}", r.full_name),
                reason,
            });
        }
    }
    Ok(())
}

/// Brings the org to the wanted state for `user_id` (the connected user).
pub async fn provision(
    client: &Client,
    categories: &[(String, String)],
    user_id: &str,
) -> Result<Report, ProvisionError> {
    let mut report = Report::default();
    let wanted = wanted_fields(categories);
    // 1. The object and its fields.
    let existing = object_and_fields(client, &wanted, &mut report).await?;
    // 2. Access for the connected user: a permission set, merged, assigned.
    // Required fields take no field-level security (everyone sees them).
    let fields: Vec<String> = wanted
        .iter()
        .filter(|f| {
            !existing
                .get(&f.name.to_ascii_lowercase())
                .is_some_and(|e| e.required)
        })
        .map(field_key)
        .collect();
    grant_permission_set(client, &fields, &mut report).await?;
    assign_permission_set(client, user_id, &mut report).await?;
    // 3. Access for System Administrator (the Account and Requestor fields
    // included), from the profiles read once for this and the layouts.
    let (profiles, account_layouts) = Profiles::read(client).await?;
    grant_admin_profile(client, &profiles, &fields, &mut report).await?;
    // 4. The Requests related list on every Account layout a profile sees.
    related_lists(
        client,
        profiles.account_layouts(account_layouts),
        &mut report,
    )
    .await?;
    if !report.is_noop() {
        client.invalidate_describes();
    }
    for c in &report.changes {
        tracing::info!(change = %c, "provisioned");
    }
    for w in &report.warnings {
        tracing::warn!(warning = %w, "provisioning left something undone");
    }
    Ok(report)
}

/// Creates `Request__c` if it is missing, and each wanted field that is
/// missing or wrong; the fields as they were before.
async fn object_and_fields(
    client: &Client,
    wanted: &[FieldSpec],
    report: &mut Report,
) -> Result<HashMap<String, Existing>, ProvisionError> {
    let object = client
        .metadata_read("CustomObject", &[OBJECT])
        .await?
        .pop()
        .flatten();
    if object.is_none() {
        let r = client
            .metadata_save(
                Save::Create,
                &[metadata::custom_object(
                    OBJECT,
                    "Request",
                    "Requests",
                    schema::NAME_FIELD,
                )],
            )
            .await?;
        check_saved(&r, "creating the object")?;
        report
            .changes
            .push(format!("created the object {OBJECT} (Request, Requests)"));
    }
    if let Some(o) = object.as_ref().filter(|o| name_is_auto_number(o)) {
        name_by_request_id(client, o, report).await?;
    }
    let existing = object.as_ref().map(existing_fields).unwrap_or_default();
    let mut to_save = Vec::new();
    for f in wanted {
        if let Some(problem) = field_problem(f, existing.get(&f.name.to_ascii_lowercase())) {
            report.changes.push(if problem == "missing" {
                format!("created field {} ({})", f.name, f.kind.metadata_type())
            } else {
                format!("repaired field {}: it {problem}", f.name)
            });
            to_save.push(metadata::custom_field(
                OBJECT,
                &f.name,
                &f.label,
                &f.kind,
                f.external_id,
                f.unique,
            ));
        }
    }
    if !to_save.is_empty() {
        let r = client.metadata_save(Save::Upsert, &to_save).await?;
        check_saved(&r, "the field")?;
    }
    Ok(existing)
}

/// Read and edit on `fields` for System Administrator, where it lacks them.
async fn grant_admin_profile(
    client: &Client,
    profiles: &Profiles,
    fields: &[String],
    report: &mut Report,
) -> Result<(), ProvisionError> {
    let missing = permissions::missing_from(profiles.get(ADMIN_PROFILE), fields);
    if missing.is_empty() {
        return Ok(());
    }
    let grant: Vec<(String, bool)> = missing.iter().map(|f| (f.clone(), true)).collect();
    let r = client
        .metadata_save(
            Save::Upsert,
            &[metadata::profile(ADMIN_PROFILE, &grant, &[])],
        )
        .await?;
    check_saved(&r, "the profile")?;
    report.changes.push(format!(
        "granted read and edit on {} to System Administrator",
        names(&missing)
    ));
    Ok(())
}

/// The Requests related list on each Account layout a profile sees; a
/// layout Salesforce will not change is a warning.
async fn related_lists(
    client: &Client,
    found: layouts::AccountLayouts,
    report: &mut Report,
) -> Result<(), ProvisionError> {
    if found.assigned.is_empty() {
        report.warnings.push(format!(
            "no Account layout is assigned to a profile (found: {}): add the Requests related list to your Account layout by hand",
            if found.all.is_empty() { "none".to_string() } else { found.all.join(", ") }
        ));
    }
    for outcome in layouts::add_related_list(client, &found.assigned).await? {
        match outcome {
            LayoutOutcome::Had(_) => {}
            LayoutOutcome::Added(name) => report.changes.push(format!(
                "added the Requests related list to the layout {}",
                decoded(&name)
            )),
            LayoutOutcome::Refused(name, why) => report.warnings.push(format!(
                "could not add the Requests related list to the layout {}: {why}",
                decoded(&name)
            )),
        }
    }
    Ok(())
}

/// A layout's full name as people read it (`%28` → `(`).
pub(crate) fn decoded(full_name: &str) -> String {
    percent_encoding::percent_decode_str(full_name)
        .decode_utf8_lossy()
        .into_owned()
}

/// Writes the permission set when it lacks any of `fields` (merged: what an
/// admin added stays).
async fn grant_permission_set(
    client: &Client,
    fields: &[String],
    report: &mut Report,
) -> Result<(), ProvisionError> {
    let ps = client
        .metadata_read("PermissionSet", &[PERMISSION_SET])
        .await?
        .pop()
        .flatten();
    let missing = permissions::missing_from(ps.as_ref(), fields);
    let Some(comp) = permissions::merged_permission_set(
        PERMISSION_SET,
        "Thena Request Sync",
        ps.as_ref(),
        fields,
    ) else {
        return Ok(());
    };
    let r = client.metadata_save(Save::Upsert, &[comp]).await?;
    check_saved(&r, "the permission set")?;
    report.changes.push(if ps.is_none() {
        format!(
            "created permission set {PERMISSION_SET} with read and edit on {} fields",
            fields.len()
        )
    } else if missing.is_empty() {
        format!("granted create, read and edit on {OBJECT} to permission set {PERMISSION_SET}")
    } else {
        format!(
            "granted read and edit on {} to permission set {PERMISSION_SET}",
            names(&missing)
        )
    });
    Ok(())
}

/// Assigns the permission set to the connected user when it is not yet.
async fn assign_permission_set(
    client: &Client,
    user_id: &str,
    report: &mut Report,
) -> Result<(), ProvisionError> {
    let assigned = client
        .count(&format!(
            "SELECT COUNT() FROM PermissionSetAssignment WHERE AssigneeId = {} AND PermissionSet.Name = {}",
            soql::quote(user_id),
            soql::quote(PERMISSION_SET)
        ))
        .await?;
    if assigned > 0 {
        return Ok(());
    }
    let ps_id = client
        .query(&format!(
            "SELECT Id FROM PermissionSet WHERE Name = {}",
            soql::quote(PERMISSION_SET)
        ))
        .await?;
    let ps_id = ps_id
        .first()
        .and_then(|r| r.get("Id"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| ProvisionError::Refused {
            what: "reading the permission set".into(),
            reason: "it was saved but cannot be found".into(),
        })?;
    client
        .create(
            "PermissionSetAssignment",
            &serde_json::json!({"AssigneeId": user_id, "PermissionSetId": ps_id}),
        )
        .await?;
    report.changes.push(format!(
        "assigned permission set {PERMISSION_SET} to the connected user"
    ));
    Ok(())
}

fn names(fields: &[String]) -> String {
    let v: Vec<&str> = fields
        .iter()
        .map(|k| k.rsplit('.').next().unwrap_or(k))
        .collect();
    if v.len() > 6 {
        format!("{} and {} more fields", v[..5].join(", "), v.len() - 5)
    } else {
        v.join(", ")
    }
}

/// Makes sure every category has a field, while the connection has fewer
/// than `cap` category fields: derives names for new categories, records
/// them, and provisions. Returns the full category → field map (categories
/// over the cap are not in it).
pub async fn ensure_categories(
    client: &Client,
    store: &crate::store::Store,
    connection: &str,
    user_id: &str,
    categories: &[String],
    cap: usize,
) -> Result<Vec<(String, String)>, crate::Error> {
    let mut known = store.category_fields(connection).await?;
    let room = cap.saturating_sub(known.len());
    let new: Vec<&String> = categories
        .iter()
        .filter(|c| !known.iter().any(|(k, _)| k == *c))
        .take(room)
        .collect();
    if new.is_empty() {
        return Ok(known);
    }
    let mut taken: HashSet<String> = schema::seed_fields().into_iter().map(|f| f.name).collect();
    taken.extend(known.iter().map(|(_, f)| f.clone()));
    for c in new {
        let field = categories::field_name(c, &taken);
        taken.insert(field.clone());
        store.add_category_field(connection, c, &field).await?;
    }
    known = store.category_fields(connection).await?;
    provision(client, &known, user_id).await?;
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_problems_are_named() {
        let want = FieldSpec {
            name: "RequestId__c".into(),
            label: "x".into(),
            kind: FieldKind::Text { length: 255 },
            external_id: true,
            unique: true,
        };
        let ok = Existing {
            type_name: "Text".into(),
            length: Some(255),
            external_id: true,
            unique: true,
            reference_to: None,
            required: false,
        };
        assert_eq!(field_problem(&want, Some(&ok)), None);
        assert_eq!(field_problem(&want, None).as_deref(), Some("missing"));
        assert_eq!(
            field_problem(
                &want,
                Some(&Existing {
                    unique: false,
                    ..ok.clone()
                })
            )
            .as_deref(),
            Some("is not Unique")
        );
        assert_eq!(
            field_problem(
                &want,
                Some(&Existing {
                    length: Some(80),
                    ..ok.clone()
                })
            )
            .as_deref(),
            Some("holds 80 characters instead of 255")
        );
        assert_eq!(
            field_problem(
                &want,
                Some(&Existing {
                    type_name: "Url".into(),
                    ..ok
                })
            )
            .as_deref(),
            Some("is Url instead of Text")
        );
    }
}
