//! The doctor: checks the org's setup, one line each, with a fix hint.

use salesforce::{Action, Client};

use super::schema::{self, ACCOUNT_LAYOUT, ADMIN_PROFILE, EXTERNAL_ID, OBJECT};
use super::{existing_fields, field_problem, granted, has_related_list, wanted_fields};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when it fails.
    pub hint: Option<String>,
}

fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        hint: None,
    }
}

fn fail(name: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        hint: Some(hint.into()),
    }
}

const FIX: &str = "run `thena-sf doctor <name> --fix` (or `thena-sf provision <name>`)";

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
    checks.push(if share < headroom_share { pass("API usage", detail) } else { fail("API usage", detail, "the sync pauses above this share; it resumes as usage rolls off, or raise the org's limit") });

    let object = match client.metadata_read("CustomObject", &[OBJECT]).await {
        Ok(mut v) => v.pop().flatten(),
        Err(e) => {
            checks.push(fail(
                format!("object {OBJECT}"),
                e.to_string(),
                "check that the connected user may use the Metadata API (Modify Metadata)",
            ));
            return checks;
        }
    };
    let Some(object) = object else {
        checks.push(fail(format!("object {OBJECT}"), "does not exist", FIX));
        return checks;
    };
    checks.push(pass(format!("object {OBJECT}"), "exists"));
    let existing = existing_fields(&object);
    client.invalidate_describes();
    let described = client.describe(OBJECT).await.ok();
    let profile = client
        .metadata_read("Profile", &[ADMIN_PROFILE])
        .await
        .ok()
        .and_then(|mut v| v.pop().flatten());
    let admin = profile.as_ref().map(granted).unwrap_or_default();
    for f in wanted_fields(categories) {
        let name = format!("field {}", f.name);
        if let Some(problem) = field_problem(&f, existing.get(&f.name.to_ascii_lowercase())) {
            checks.push(fail(name, problem, FIX));
            continue;
        }
        let user_ok = described
            .as_ref()
            .and_then(|d| d.field(&f.name))
            .is_some_and(|d| d.updateable);
        let admin_ok =
            admin.get(&format!("{OBJECT}.{}", f.name).to_ascii_lowercase()) == Some(&true);
        let ty = schema::metadata_type(&f.kind);
        match (user_ok, admin_ok) {
            (true, true) => checks.push(pass(name, format!("{ty}, visible and editable to the connected user and System Administrator"))),
            (false, _) => checks.push(fail(name, format!("{ty}, but not visible and editable to the connected user"), FIX)),
            (true, false) => checks.push(fail(name, format!("{ty}, but System Administrator cannot see and edit it (\"I can't see the Requestor or Account fields\")"), FIX)),
        }
    }
    match existing.get(&EXTERNAL_ID.to_ascii_lowercase()) {
        Some(e) if e.external_id && e.unique => checks.push(pass(
            format!("{EXTERNAL_ID} is the upsert key"),
            "External ID and Unique",
        )),
        _ => checks.push(fail(
            format!("{EXTERNAL_ID} is the upsert key"),
            "not External ID and Unique: upserts could match several records",
            FIX,
        )),
    }
    match client
        .metadata_read("Layout", &[ACCOUNT_LAYOUT])
        .await
        .ok()
        .and_then(|mut v| v.pop().flatten())
    {
        Some(l) if has_related_list(&l) => {
            checks.push(pass("Account layout", "shows the Requests related list"))
        }
        Some(_) => checks.push(fail(
            "Account layout",
            "has no Requests related list (\"I can't see requests in the Account view\")",
            FIX,
        )),
        None => checks.push(fail(
            "Account layout",
            format!("{ACCOUNT_LAYOUT} was not found"),
            "add the Requests related list to your Account layout by hand",
        )),
    }
    checks
}
