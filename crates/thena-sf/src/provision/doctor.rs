//! The doctor: checks the org's setup, one line each, with a fix hint and
//! whether `provision` (Fix) can repair it.

use salesforce::{soql, Action, Client};
use serde::{Deserialize, Serialize};

use super::layouts::{self, Profiles};
use super::schema::{ADMIN_PROFILE, EXTERNAL_ID, OBJECT, PERMISSION_SET};
use super::{
    decoded, existing_fields, field_problem, granted, name_is_auto_number, wanted_fields, Existing,
};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when it fails.
    pub hint: Option<String>,
    /// Whether Fix (provisioning) repairs it when it fails.
    #[serde(default)]
    pub fixable: bool,
}

fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        hint: None,
        fixable: false,
    }
}

/// A failure Fix cannot repair: the hint says what a person must do.
fn fail(name: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        hint: Some(hint.into()),
        fixable: false,
    }
}

/// A failure Fix repairs.
fn fixable(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        fixable: true,
        ..fail(name, detail, FIX)
    }
}

/// The doctor's last run on a connection, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorResult {
    pub checked_at: chrono::DateTime<chrono::Utc>,
    pub checks: Vec<Check>,
}

impl DoctorResult {
    /// Whether Fix would repair something that fails.
    pub fn fix_helps(&self) -> bool {
        self.checks.iter().any(|c| !c.ok && c.fixable)
    }

    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Runs the doctor and keeps its result with the time, so that pages show
/// it without calling Salesforce.
pub async fn check_and_record(
    client: &Client,
    store: &crate::store::Store,
    connection: &str,
    categories: &[(String, String)],
    headroom_share: f64,
) -> Result<DoctorResult, crate::store::StoreError> {
    let checks = doctor(client, categories, headroom_share).await;
    let r = DoctorResult {
        checked_at: chrono::Utc::now(),
        checks,
    };
    let json = serde_json::to_string(&r.checks).expect("checks serialize");
    store
        .put_doctor_result(connection, r.checked_at, &json)
        .await?;
    Ok(r)
}

/// The doctor's last stored result, if it ran.
pub async fn last_result(
    store: &crate::store::Store,
    connection: &str,
) -> Result<Option<DoctorResult>, crate::store::StoreError> {
    Ok(store
        .doctor_result(connection)
        .await?
        .map(|(checked_at, json)| DoctorResult {
            checked_at,
            // A result another version wrote that no longer parses is no result.
            checks: serde_json::from_str(&json).unwrap_or_default(),
        }))
}

pub const FIX: &str = "run `thena-sf doctor <name> --fix` (or `thena-sf provision <name>`)";

/// Runs every check. A failed token check stops the rest (they would all fail).
pub async fn doctor(
    client: &Client,
    categories: &[(String, String)],
    headroom_share: f64,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let limits = match client.limits().await {
        Ok(l) => {
            checks.push(pass("token", "the access token is valid"));
            l
        }
        Err(e) => {
            let hint = match e.action() {
                Action::Reconnect => {
                    "the refresh token was refused: reconnect this org (`thena-sf connect`)"
                }
                Action::Retry => "Salesforce could not be reached: try again in a moment",
                _ => "check the connection's login URL and credentials, then reconnect",
            };
            checks.push(fail("token", e.to_string(), hint));
            return checks;
        }
    };
    checks.push(usage_check(&limits, headroom_share));

    let object = match client.metadata_read("CustomObject", &[OBJECT]).await {
        Ok(mut v) => v.pop().flatten(),
        Err(e) => {
            checks.push(fail(
                format!("object {OBJECT}"),
                e.to_string(),
                "check that the connected user may use the Metadata API (Modify Metadata and Customize Application)",
            ));
            return checks;
        }
    };
    let Some(object) = object else {
        checks.push(fixable(format!("object {OBJECT}"), "does not exist"));
        return checks;
    };
    checks.push(pass(format!("object {OBJECT}"), "exists"));
    let existing = existing_fields(&object);
    client.invalidate_describes();
    let described = client.describe(OBJECT).await.ok();
    checks.push(name_check(&object));
    let (profiles, account_layouts) = match Profiles::read(client).await {
        Ok(p) => p,
        Err(e) => {
            checks.push(fail("profiles", e.to_string(), "check that the connected user may read profiles and layouts (View Setup and Configuration)"));
            return checks;
        }
    };
    let admin = profiles.get(ADMIN_PROFILE).map(granted).unwrap_or_default();
    for f in wanted_fields(categories) {
        let have = existing.get(&f.name.to_ascii_lowercase());
        checks.push(field_check(&f, have, described.as_deref(), &admin));
    }
    checks.push(required_check(&existing));
    checks.push(match existing.get(&EXTERNAL_ID.to_ascii_lowercase()) {
        Some(e) if e.external_id && e.unique => pass(
            format!("{EXTERNAL_ID} is the upsert key"),
            "External ID and Unique",
        ),
        _ => fixable(
            format!("{EXTERNAL_ID} is the upsert key"),
            "not External ID and Unique: upserts could match several records",
        ),
    });
    checks.push(assignment_check(client).await);
    let found = profiles.account_layouts(account_layouts);
    checks.extend(layout_checks(client, &found.assigned, &found.all).await);
    checks
}

/// One wanted field: present and right, and visible and editable to the
/// connected user (its describe) and to System Administrator (`admin`).
fn field_check(
    f: &super::schema::FieldSpec,
    have: Option<&Existing>,
    described: Option<&salesforce::Describe>,
    admin: &std::collections::HashMap<String, bool>,
) -> Check {
    let name = format!("field {}", f.name);
    if let Some(problem) = field_problem(f, have) {
        return fixable(name, problem);
    }
    let required = have.is_some_and(|e| e.required);
    let user_ok = described
        .and_then(|d| d.field(&f.name))
        .is_some_and(|d| d.updateable);
    let admin_ok =
        required || admin.get(&format!("{OBJECT}.{}", f.name).to_ascii_lowercase()) == Some(&true);
    let ty = f.kind.metadata_type();
    match (user_ok, admin_ok) {
        (true, true) => pass(name, format!("{ty}, visible and editable to the connected user and System Administrator")),
        (false, _) => fixable(name, format!("{ty}, but not visible and editable to the connected user")),
        (true, false) => fixable(name, format!("{ty}, but System Administrator cannot see and edit it (\"I can't see the Requestor or Account fields\")")),
    }
}

/// Records named by their request id, not by an auto-number.
fn name_check(object: &salesforce::xml::El) -> Check {
    if name_is_auto_number(object) {
        fixable(
            "record names",
            "an auto-number (REQ-000123) that reads like another id: records are not named by their Thena request id",
        )
    } else {
        pass(
            "record names",
            "each record is named by its Thena request id",
        )
    }
}

fn usage_check(limits: &serde_json::Value, headroom_share: f64) -> Check {
    let max = limits["DailyApiRequests"]["Max"].as_u64().unwrap_or(0);
    let remaining = limits["DailyApiRequests"]["Remaining"]
        .as_u64()
        .unwrap_or(0);
    let used = max.saturating_sub(remaining);
    let share = if max == 0 {
        1.0
    } else {
        used as f64 / max as f64
    };
    let detail = format!(
        "{used} of {max} API calls used in the last 24 hours ({:.0}%)",
        share * 100.0
    );
    if share < headroom_share {
        pass("API usage", detail)
    } else {
        fail("API usage", detail, "the sync pauses above this share; it resumes as usage rolls off, or raise the org's limit")
    }
}

/// Required fields the connector does not fill make every upsert fail with
/// `REQUIRED_FIELD_MISSING`. Only `RequestId__c` is always sent.
fn required_check(existing: &std::collections::HashMap<String, Existing>) -> Check {
    let mut required: Vec<&String> = existing
        .iter()
        .filter(|(name, e)| e.required && *name != &EXTERNAL_ID.to_ascii_lowercase())
        .map(|(name, _)| name)
        .collect();
    required.sort();
    if required.is_empty() {
        return pass(
            "required fields",
            format!("no field of {OBJECT} but {EXTERNAL_ID} is required"),
        );
    }
    let names = required
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    fail(
        "required fields",
        format!("{names} on {OBJECT} is required but the connector does not always fill it: every upsert without it fails with REQUIRED_FIELD_MISSING"),
        format!("in Salesforce Setup → Object Manager → Request → Fields & Relationships, make {names} optional (untick Required) or give it a default value; then retry the failed requests"),
    )
}

async fn assignment_check(client: &Client) -> Check {
    let name = format!("permission set {PERMISSION_SET}");
    let Some((_, user)) = client.tokens().org_and_user() else {
        return fail(name, "the connected user is unknown", "reconnect this org");
    };
    let q = format!(
        "SELECT COUNT() FROM PermissionSetAssignment WHERE AssigneeId = {} AND PermissionSet.Name = {}",
        soql::quote(&user),
        soql::quote(PERMISSION_SET)
    );
    match client.count(&q).await {
        Ok(n) if n > 0 => pass(name, "assigned to the connected user"),
        Ok(_) => fixable(
            name,
            "not assigned to the connected user: the connector cannot see its fields",
        ),
        Err(e) => fail(
            name,
            e.to_string(),
            "check that the connected user may read permission set assignments",
        ),
    }
}

/// One check per Account layout a profile sees.
async fn layout_checks(client: &Client, assigned: &[String], all: &[String]) -> Vec<Check> {
    if assigned.is_empty() {
        return vec![fail(
            "Account layouts",
            format!(
                "no Account layout is assigned to a profile (found: {})",
                if all.is_empty() {
                    "none".into()
                } else {
                    all.iter()
                        .map(|l| decoded(l))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            "add the Requests related list to the Account layout your users see, by hand",
        )];
    }
    let names: Vec<&str> = assigned.iter().map(String::as_str).collect();
    let read = match client.metadata_read("Layout", &names).await {
        Ok(r) => r,
        Err(e) => {
            return vec![fail(
                "Account layouts",
                e.to_string(),
                "check that the connected user may read layouts",
            )]
        }
    };
    assigned
        .iter()
        .zip(read)
        .map(|(name, l)| {
            let check = format!("layout {}", decoded(name));
            match l {
                Some(l) if layouts::has_related_list(&l) => {
                    pass(check, "shows the Requests related list")
                }
                Some(_) => fixable(
                    check,
                    "has no Requests related list (\"I can't see requests in the Account view\")",
                ),
                None => fail(
                    check,
                    "was not found",
                    "add the Requests related list to this layout by hand",
                ),
            }
        })
        .collect()
}
