//! Provisioning and the doctor against an emulator, through the library.

use salesforce::Secret;
use sf_emulator::{EmulatorConfig, FaultSpec};
use test_support::app::LocalConnector;
use thena_sf::connect::{self, ConnectRequest, Connected, Credentials};
use thena_sf::provision::{self, schema};

struct Env {
    emu: sf_emulator::Running,
    c: LocalConnector,
}

test_support::reads_as_connector!(Env);

async fn env(config: EmulatorConfig) -> Env {
    Env {
        emu: test_support::emulator::start(config).await,
        c: LocalConnector::sqlite().await,
    }
}

/// A new org, connected (and so provisioned); the connector's client for it.
async fn connected() -> (Env, salesforce::Client) {
    let e = env(EmulatorConfig::default()).await;
    connect_password(&e).await;
    let client = e.client("acme").await;
    (e, client)
}

/// The Id of the connector's permission set.
async fn permission_set_id(client: &salesforce::Client) -> String {
    let ps = client
        .query("SELECT Id FROM PermissionSet WHERE Name = 'Thena_Request_Sync'")
        .await
        .unwrap();
    ps[0]["Id"].as_str().unwrap().to_string()
}

/// Every check of the doctor passes.
async fn assert_healthy(client: &salesforce::Client) {
    let checks = provision::doctor(client, &[], 0.9).await;
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
}

async fn connect_password(e: &Env) -> Connected {
    e.connect_emulator("acme", &e.emu.base_url, None).await
}

#[tokio::test]
async fn provision_on_an_empty_org_then_a_second_run_changes_nothing() {
    let e = env(EmulatorConfig::default()).await;
    let c = connect_password(&e).await;
    assert!(
        c.provision
            .changes
            .iter()
            .any(|l| l.contains("created the object Request__c")),
        "{:?}",
        c.provision
    );
    assert!(c.webhook_url.ends_with("/webhooks/thena/acme"));
    let conn = e.store.connection("acme").await.unwrap();
    assert!(conn.provisioned_at.is_some());
    let client = e.client("acme").await;

    // Every field, with its type, visible and editable to the connected user.
    let d = client.describe(schema::OBJECT).await.unwrap();
    for f in schema::seed_fields() {
        let got = d
            .field(&f.name)
            .unwrap_or_else(|| panic!("{} missing from describe", f.name));
        assert_eq!(got.field_type, schema::rest_type(&f.kind), "{}", f.name);
        assert!(got.updateable && got.createable, "{} editable", f.name);
    }
    let key = d.field("RequestId__c").unwrap();
    assert!(key.external_id && key.unique);
    assert_eq!(
        d.field("Account__c").unwrap().reference_to,
        vec!["Account".to_string()]
    );
    assert_eq!(
        d.field("Requestor__c").unwrap().reference_to,
        vec!["Contact".to_string()]
    );
    assert!(d.field("Summary__c").unwrap().html_formatted);
    let account = client.describe("Account").await.unwrap();
    assert!(
        account
            .child_relationships
            .iter()
            .any(|(c, f, _)| c == "Request__c" && f == "Account__c"),
        "Accounts get a Requests related list"
    );

    // System Administrator can see the Account and Requestor fields.
    let profile = client
        .metadata_read("Profile", &["Admin"])
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    let granted: Vec<String> = profile
        .children_named("fieldPermissions")
        .filter(|p| p.text_of("editable") == Some("true"))
        .filter_map(|p| p.text_of("field").map(str::to_string))
        .collect();
    assert!(
        granted.contains(&"Request__c.Account__c".to_string())
            && granted.contains(&"Request__c.Requestor__c".to_string())
    );
    let layout = client
        .metadata_read("Layout", &["Account-Account Layout"])
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    assert!(layout
        .children_named("relatedLists")
        .any(|r| r.text_of("relatedList") == Some("Request__c.Account__c")));
    assert!(
        layout
            .children_named("relatedLists")
            .any(|r| r.text_of("relatedList") == Some("RelatedContactList")),
        "the other related lists are kept"
    );

    // A record can be upserted with every field; it is named by its request
    // id, which a Text name requires.
    let name = d.field("Name").unwrap();
    assert!(
        name.createable,
        "records are named by us, not by an auto-number"
    );
    let res = client
        .upsert_many("Request__c", "RequestId__c", &[serde_json::json!({"attributes": {"type": "Request__c"}, "RequestId__c": "REQ-1", "Name": "REQ-1", "Title__c": "t", "Status__c": "In Progress", "Summary__c": "<p>x</p>"})])
        .await
        .unwrap();
    assert!(res[0].success, "{res:?}");
    let res = client
        .upsert_many(
            "Request__c",
            "RequestId__c",
            &[serde_json::json!({"attributes": {"type": "Request__c"}, "RequestId__c": "REQ-2"})],
        )
        .await
        .unwrap();
    assert_eq!(
        res[0].errors[0].status_code, "REQUIRED_FIELD_MISSING",
        "{res:?}"
    );

    let calls_before = client.calls();
    let again = provision::provision(&client, &[], &connect::user_id(&client.tokens()).unwrap())
        .await
        .unwrap();
    assert!(again.is_noop(), "second run: {again:?}");
    assert!(
        client.calls() - calls_before <= 6,
        "a no-op costs a handful of reads, not writes: {}",
        client.calls() - calls_before
    );
    assert_healthy(&client).await;
}

#[tokio::test]
async fn doctor_fails_after_access_is_removed_and_fix_restores_just_that() {
    let (_e, client) = connected().await;
    // Someone removes the connected user's access to one field and deletes another field.
    let ps_id = permission_set_id(&client).await;
    let fp = client.query(&format!("SELECT Id FROM FieldPermissions WHERE ParentId = '{ps_id}' AND Field = 'Request__c.Urgency__c'")).await.unwrap();
    client
        .delete("FieldPermissions", fp[0]["Id"].as_str().unwrap())
        .await
        .unwrap();
    let admin_ps = client
        .query("SELECT Id FROM PermissionSet WHERE Profile.Name = 'System Administrator'")
        .await
        .unwrap();
    let admin_fp = client.query(&format!("SELECT Id FROM FieldPermissions WHERE ParentId = '{}' AND Field = 'Request__c.Urgency__c'", admin_ps[0]["Id"].as_str().unwrap())).await.unwrap();
    client
        .delete("FieldPermissions", admin_fp[0]["Id"].as_str().unwrap())
        .await
        .unwrap();
    client
        .metadata_delete("CustomField", &["Request__c.Sentiment__c"])
        .await
        .unwrap();
    let checks = provision::doctor(&client, &[], 0.9).await;
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failed,
        ["field Urgency__c", "field Sentiment__c"],
        "{checks:#?}"
    );
    assert!(
        checks.iter().all(|c| c.ok || c.hint.is_some()),
        "every failure has a fix hint"
    );

    let report = provision::provision(&client, &[], &connect::user_id(&client.tokens()).unwrap())
        .await
        .unwrap();
    let text = report.to_string();
    assert!(text.contains("created field Sentiment__c"), "{text}");
    assert!(text.contains("Urgency__c"), "{text}");
    assert!(!text.contains("created the object"), "{text}");
    assert!(!text.contains("related list"), "{text}");
    assert_healthy(&client).await;
}

#[tokio::test]
async fn a_new_category_gets_its_field_with_access() {
    let (e, client) = connected().await;
    let user = connect::user_id(&client.tokens()).unwrap();
    let map = provision::ensure_categories(
        &client,
        &e.store,
        "acme",
        &user,
        &["Product".into(), "Title".into(), "Région".into()],
        100,
    )
    .await
    .unwrap();
    assert_eq!(
        map,
        [
            ("Product".to_string(), "Product__c".to_string()),
            ("Région".to_string(), "Region__c".to_string()),
            ("Title".to_string(), "Title_2__c".to_string())
        ]
    );
    let d = client.describe("Request__c").await.unwrap();
    for f in ["Product__c", "Title_2__c", "Region__c"] {
        assert!(
            d.field(f).is_some_and(|x| x.updateable),
            "{f} is visible and editable"
        );
    }
    let calls = client.calls();
    let same =
        provision::ensure_categories(&client, &e.store, "acme", &user, &["Product".into()], 100)
            .await
            .unwrap();
    assert_eq!(same.len(), 3);
    assert_eq!(client.calls(), calls, "a known category costs no call");
    assert!(provision::doctor(&client, &map, 0.9)
        .await
        .iter()
        .all(|c| c.ok));
}

#[tokio::test]
async fn token_expiry_mid_provision_is_refreshed_transparently() {
    let e = env(EmulatorConfig {
        faults: FaultSpec::parse("expire=4").unwrap(),
        ..Default::default()
    })
    .await;
    // The web flow gives a refresh token; the password grant does not.
    let app = salesforce::OAuthApp {
        login_url: e.emu.base_url.clone(),
        client_id: "local-client".into(),
        client_secret: Some(Secret::new("local-secret")),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
    };
    let tokens = test_support::emulator::web_flow_tokens(&app).await;
    let c = connect::connect(
        &e.store,
        &e.config,
        ConnectRequest {
            name: "acme".into(),
            login_url: e.emu.base_url.clone(),
            client_id: "local-client".into(),
            client_secret: Some(Secret::new("local-secret")),
            credentials: Credentials::Tokens(tokens),
            webhook_token: Some("tok-0123456789abcdef0123456789-prov".into()),
            signing_secrets: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert!(!c.provision.is_noop());
    let injected = e
        .emu
        .emulator
        .faults
        .lock()
        .injected
        .get("expire")
        .copied()
        .unwrap_or(0);
    assert!(
        injected >= 3,
        "tokens expired {injected} times during provisioning"
    );
    let conn = e.store.connection("acme").await.unwrap();
    let client = e.client("acme").await;
    assert_healthy(&client).await;
    assert!(thena_sf::crypto::token_matches(
        "tok-0123456789abcdef0123456789-prov",
        &conn.webhook_token_hash
    ));
}

#[tokio::test]
async fn secrets_are_sealed_in_the_store_file() {
    let e = env(EmulatorConfig::default()).await;
    let c = connect_password(&e).await;
    let conn = e.store.connection("acme").await.unwrap();
    drop(e.store.clone());
    let db = std::fs::read(e.config.data_dir.join("thena-sf.db")).unwrap();
    let wal = std::fs::read(e.config.data_dir.join("thena-sf.db-wal")).unwrap_or_default();
    for secret in [
        conn.tokens.access_token.expose(),
        "local-secret",
        c.webhook_token.as_ref().unwrap().expose(),
    ] {
        let needle = secret.as_bytes();
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "a secret in the store file"
        );
        assert!(
            !wal.windows(needle.len()).any(|w| w == needle),
            "a secret in the WAL"
        );
    }
    assert!(
        !format!("{conn:?}").contains(conn.tokens.access_token.expose()),
        "no secret in Debug"
    );
}

fn seeded(seed: serde_json::Value) -> EmulatorConfig {
    EmulatorConfig {
        seed: serde_json::from_value(seed).unwrap(),
        ..Default::default()
    }
}

async fn read_layout(client: &salesforce::Client, name: &str) -> salesforce::xml::El {
    client
        .metadata_read("Layout", &[name])
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap_or_else(|| panic!("{name} exists"))
}

fn has_requests(l: &salesforce::xml::El) -> bool {
    l.children_named("relatedLists")
        .any(|r| r.text_of("relatedList") == Some("Request__c.Account__c"))
}

/// A real org can show different Account layouts to different profiles; each
/// one a profile sees gets the list (with bare column names, which is all a
/// real org accepts) and keeps its sections; an unassigned one is left alone;
/// a managed layout Salesforce will not change is a warning, not a failure.
#[tokio::test]
async fn every_assigned_account_layout_gets_the_list_and_keeps_the_rest() {
    let e = env(seeded(serde_json::json!({
        "layouts": [
            {"object": "Account", "name": "Support Layout", "profiles": ["Standard User", "Support Agent"]},
            {"object": "Account", "name": "Partner Layout (EMEA)", "profiles": ["Partner Manager"]},
            {"object": "Account", "name": "Unused Layout", "profiles": []},
            {"object": "Account", "name": "Packaged Layout", "profiles": ["Package User"], "managed": true}
        ]
    })))
    .await;
    let c = connect_password(&e).await;
    let client = e.client("acme").await;
    for (name, section) in [
        ("Account-Account Layout", "Account Information"),
        ("Account-Support Layout", "Support Layout Information"),
        (
            "Account-Partner Layout %28EMEA%29",
            "Partner Layout (EMEA) Information",
        ),
    ] {
        let l = read_layout(&client, name).await;
        assert!(has_requests(&l), "{name} shows Requests");
        let xml = l.to_xml();
        assert!(
            xml.contains(section) && xml.contains("RelatedContactList"),
            "{name} keeps its sections and lists: {xml}"
        );
        assert!(
            xml.contains("<fields>Title__c</fields>") && !xml.contains("Request__c.Title__c"),
            "{xml}"
        );
        let shown = format!(
            "added the Requests related list to the layout {}",
            name.replace("%28", "(").replace("%29", ")")
        );
        assert!(
            c.provision.changes.contains(&shown),
            "{shown} in {:?}",
            c.provision.changes
        );
    }
    assert!(
        !has_requests(&read_layout(&client, "Account-Unused Layout").await),
        "a layout no profile sees is left alone"
    );
    assert_eq!(c.provision.warnings.len(), 1, "{:?}", c.provision.warnings);
    let w = &c.provision.warnings[0];
    assert!(
        w.contains("Account-Packaged Layout") && w.contains("CANNOT_MODIFY_MANAGED_OBJECT"),
        "{w}"
    );
    let checks = provision::doctor(&client, &[], 0.9).await;
    let failed: Vec<&provision::Check> = checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(failed.len(), 1, "{checks:#?}");
    assert_eq!(failed[0].name, "layout Account-Packaged Layout");
    assert!(
        failed[0].fixable,
        "Fix tries again; the page says what it cannot do"
    );
    for name in [
        "layout Account-Account Layout",
        "layout Account-Support Layout",
        "layout Account-Partner Layout (EMEA)",
    ] {
        assert!(
            checks.iter().any(|c| c.name == name && c.ok),
            "{name}: {checks:#?}"
        );
    }
}

/// A permission set save replaces the set in a real org: a permission an
/// admin added by hand survives a later provisioning that adds a category field.
#[tokio::test]
async fn an_admins_own_permission_survives_a_new_category() {
    let (e, client) = connected().await;
    let ps_id = permission_set_id(&client).await;
    client
        .create("FieldPermissions", &serde_json::json!({"ParentId": ps_id, "SobjectType": "Account", "Field": "Account.Website", "PermissionsRead": true, "PermissionsEdit": false}))
        .await
        .unwrap();
    let user = connect::user_id(&client.tokens()).unwrap();
    provision::ensure_categories(&client, &e.store, "acme", &user, &["Product".into()], 100)
        .await
        .unwrap();
    let q = |f: &str| {
        format!("SELECT COUNT() FROM FieldPermissions WHERE ParentId = '{ps_id}' AND Field = '{f}'")
    };
    assert_eq!(
        client.count(&q("Request__c.Product__c")).await.unwrap(),
        1,
        "the new field is granted"
    );
    assert_eq!(
        client.count(&q("Account.Website")).await.unwrap(),
        1,
        "the admin's permission is kept"
    );
    assert_eq!(client.count(&q("Request__c.Title__c")).await.unwrap(), 1);
}

/// A required field the connector does not fill makes every upsert fail:
/// the doctor names it and says Fix cannot repair it; an unassigned
/// permission set is found and repaired.
#[tokio::test]
async fn the_doctor_names_required_fields_and_the_permission_set_assignment() {
    let (_e, client) = connected().await;
    test_support::emulator::add_required_field(&client, "Request__c.Region__c").await;
    let psa = client
        .query("SELECT Id FROM PermissionSetAssignment WHERE PermissionSet.Name = 'Thena_Request_Sync'")
        .await
        .unwrap();
    client
        .delete("PermissionSetAssignment", psa[0]["Id"].as_str().unwrap())
        .await
        .unwrap();
    let checks = provision::doctor(&client, &[], 0.9).await;
    let required = checks.iter().find(|c| c.name == "required fields").unwrap();
    assert!(!required.ok && !required.fixable, "{required:?}");
    assert!(
        required.detail.contains("region__c") && required.detail.contains("REQUIRED_FIELD_MISSING"),
        "{required:?}"
    );
    assert!(
        required.hint.as_deref().unwrap().contains("optional"),
        "{required:?}"
    );
    let assignment = checks
        .iter()
        .find(|c| c.name == "permission set Thena_Request_Sync")
        .unwrap();
    assert!(!assignment.ok && assignment.fixable, "{assignment:?}");

    let user = connect::user_id(&client.tokens()).unwrap();
    let report = provision::provision(&client, &[], &user).await.unwrap();
    assert!(
        report.to_string().contains("assigned permission set"),
        "{report}"
    );
    let after = provision::doctor(&client, &[], 0.9).await;
    let failed: Vec<&str> = after
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failed,
        ["required fields"],
        "Fix repairs what it can: {after:#?}"
    );
}

/// `Request__c` as earlier versions made it (an auto-number Name), by the
/// org's admin; the admin's client.
async fn auto_number_request_object(e: &Env) -> salesforce::Client {
    let admin = test_support::emulator::org_client(&e.emu.base_url).await;
    let old = salesforce::metadata::custom_object(
        "Request__c",
        "Request",
        "Requests",
        salesforce::metadata::NameField::AutoNumber {
            label: "Request Number",
            display_format: "REQ-{000000}",
        },
    );
    let r = admin
        .metadata_save(salesforce::metadata::Save::Create, &[old])
        .await
        .unwrap();
    assert!(r[0].success, "{r:?}");
    admin
}

/// An org set up by an earlier version has an auto-number Name (`REQ-000001`):
/// provisioning switches it to Text so records are named by their request
/// id, keeps the records and fields, and the doctor says so before and after.
#[tokio::test]
async fn an_auto_number_name_from_an_earlier_version_becomes_the_request_id() {
    let e = env(EmulatorConfig::default()).await;
    let admin = auto_number_request_object(&e).await;
    let made = admin
        .create("Request__c", &serde_json::json!({}))
        .await
        .unwrap();

    let c = connect_password(&e).await;
    let said = c.provision.to_string();
    assert!(said.contains("named by their request id"), "{said}");
    let client = e.client("acme").await;
    let d = client.describe(schema::OBJECT).await.unwrap();
    assert!(d.field("Name").unwrap().createable);
    let kept = client
        .query(&format!("SELECT Name FROM Request__c WHERE Id = '{made}'"))
        .await
        .unwrap();
    assert_eq!(
        kept[0]["Name"], "REQ-000001",
        "existing records keep their name until their next sync"
    );
    let checks = provision::doctor(&client, &[], 0.9).await;
    let names = checks.iter().find(|c| c.name == "record names").unwrap();
    assert!(names.ok, "{names:?}");
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    let user = connect::user_id(&client.tokens()).unwrap();
    let again = provision::provision(&client, &[], &user).await.unwrap();
    assert!(again.is_noop(), "{again}");
}

/// An org that will not switch the Name field's type (emulator option
/// `name_type_locked`): connecting still works, the report warns with what
/// to do in Setup, the doctor says the names are auto-numbers, and records
/// are written without a Name (the org numbers them).
#[tokio::test]
async fn an_org_that_keeps_its_auto_number_name_still_syncs_with_a_warning() {
    let mut config = EmulatorConfig::default();
    config.seed.org.name_type_locked = true;
    let e = env(config).await;
    auto_number_request_object(&e).await;

    let c = connect_password(&e).await;
    let said = c.provision.to_string();
    assert!(
        said.contains("keep their auto-number names") && said.contains("Setup"),
        "{said}"
    );
    let client = e.client("acme").await;
    let d = client.describe(schema::OBJECT).await.unwrap();
    assert!(!d.field("Name").unwrap().createable);
    let checks = provision::doctor(&client, &[], 0.9).await;
    let names = checks.iter().find(|c| c.name == "record names").unwrap();
    assert!(!names.ok, "{names:?}");
    let res = client
        .upsert_many("Request__c", "RequestId__c", &[serde_json::json!({"attributes": {"type": "Request__c"}, "RequestId__c": "REQ-1", "Title__c": "t"})])
        .await
        .unwrap();
    assert!(res[0].success, "written without a Name: {res:?}");
}
