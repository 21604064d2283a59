//! Black-box tests of the emulator over real HTTP: records, SOQL, collections,
//! field-level security, limits, faults, metadata, persistence and bad input.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};
use sf_emulator::{EmulatorConfig, FaultSpec};
use test_support::Fetch;

#[tokio::test]
async fn versions_need_no_auth_and_every_api_answer_carries_limit_info() {
    let org = Org::start(EmulatorConfig::default()).await;
    let v: Value = org.http.get(org.url("/services/data/")).fetch_json().await;
    let list = v.as_array().unwrap();
    assert_eq!(list.first().unwrap()["version"], "50.0");
    assert_eq!(list.last().unwrap()["version"], "67.0");
    assert_eq!(list.last().unwrap()["label"], "Summer '26");
    let (_, _, headers) = org.send(reqwest::Method::GET, "/limits", None).await;
    assert_eq!(headers["sforce-limit-info"], "api-usage=1/100000");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let (status, body) = org.get("/../v49.0/limits").await;
    assert_eq!(status, 404, "{body}");
    let r = org
        .http
        .get(org.url("/services/data/v99.0/limits"))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn create_read_update_delete_with_15_and_18_character_ids() {
    let org = Org::start(EmulatorConfig::default()).await;
    let (s, acc) = org
        .post("/sobjects/Account/", json!({"Name": "Acme"}))
        .await;
    assert_eq!(s, 201);
    let id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("001"));
    let (s, rec) = org.get(&format!("/sobjects/Account/{}", &id[..15])).await;
    assert_eq!(s, 200);
    assert_eq!(rec["Id"], id.as_str());
    assert_eq!(rec["attributes"]["type"], "Account");
    let (s, _) = org
        .patch(
            &format!("/sobjects/Account/{}", id.to_lowercase()),
            json!({"Website": "acme.io"}),
        )
        .await;
    assert_eq!(s, 204, "18-character ids are case-insensitive");
    let (_, rec) = org
        .get(&format!("/sobjects/Account/{id}?fields=Name,Website"))
        .await;
    assert_eq!(rec["Website"], "acme.io");
    assert!(rec.get("Industry").is_none(), "only the fields asked for");
    let (s, _) = org.delete(&format!("/sobjects/Account/{id}")).await;
    assert_eq!(s, 204);
    let (s, body) = org.get(&format!("/sobjects/Account/{id}")).await;
    assert_eq!(s, 404);
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");
    let (s, body) = org.get("/sobjects/Nope__c/describe").await;
    assert_eq!((s, code(&body)), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn validation_errors_use_salesforce_codes() {
    let org = Org::start(EmulatorConfig::default()).await;
    org.custom_object(
        "Thing__c",
        &[
            ("Key__c", &ext_field(true)),
            ("Short__c", &text_field(5)),
            ("Status__c", "<label>Status</label><type>Picklist</type><valueSet><restricted>true</restricted><valueSetDefinition><sorted>false</sorted><value><fullName>Open</fullName><default>true</default><label>Open</label></value></valueSetDefinition></valueSet>"),
            ("Contact__c", "<deleteConstraint>SetNull</deleteConstraint><label>Contact</label><referenceTo>Contact</referenceTo><relationshipName>Things</relationshipName><type>Lookup</type>"),
        ],
    )
    .await;
    let cases = [
        (
            json!({"LastName": "x", "Bogus": 1}),
            "Contact",
            "INVALID_FIELD",
        ),
        (
            json!({"FirstName": "x"}),
            "Contact",
            "REQUIRED_FIELD_MISSING",
        ),
        (
            json!({"LastName": "x", "Name": "y"}),
            "Contact",
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (json!({"Short__c": "123456"}), "Thing__c", "STRING_TOO_LONG"),
        (
            json!({"Status__c": "Closed"}),
            "Thing__c",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        (
            json!({"Contact__c": "001Em0000000001IAA"}),
            "Thing__c",
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            json!({"Contact__c": "003Em0000000099IAA"}),
            "Thing__c",
            "INVALID_CROSS_REFERENCE_KEY",
        ),
        (
            json!({"Contact__c": "not-an-id"}),
            "Thing__c",
            "MALFORMED_ID",
        ),
    ];
    for (body, obj, code) in cases {
        let (s, err) = org.post(&format!("/sobjects/{obj}"), body.clone()).await;
        assert_eq!(s, 400, "{body}: {err}");
        assert_eq!(err[0]["errorCode"], code, "{body}: {err}");
        assert!(err[0]["fields"].is_array());
    }
    let (s, _) = org
        .post(
            "/sobjects/Thing__c",
            json!({"Key__c": "K1", "Short__c": "12345", "Status__c": "Open"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, err) = org
        .post("/sobjects/Thing__c", json!({"Key__c": "k1"}))
        .await;
    assert_eq!(
        (s, code(&err)),
        (400, "DUPLICATE_VALUE"),
        "unique is case-insensitive: {err}"
    );
    let r = org
        .http
        .post(org.data("/sobjects/Contact"))
        .bearer_auth(&org.token)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err[0]["errorCode"], "JSON_PARSER_ERROR");
}

#[tokio::test]
async fn upsert_by_external_id_created_updated_multiple_and_update_only() {
    let org = Org::start(EmulatorConfig::default()).await;
    org.custom_object(
        "Req__c",
        &[
            ("Key__c", &ext_field(true)),
            ("Loose__c", &ext_field(false)),
            ("T__c", &text_field(50)),
        ],
    )
    .await;
    let (s, r) = org
        .patch("/sobjects/Req__c/Key__c/A%2F1", json!({"T__c": "one"}))
        .await;
    assert_eq!((s, &r["created"]), (201, &json!(true)));
    let (s, r2) = org
        .patch("/sobjects/Req__c/Key__c/A%2F1/", json!({"T__c": "two"}))
        .await;
    assert_eq!((s, &r2["created"]), (200, &json!(false)));
    assert_eq!(r["id"], r2["id"]);
    let (s, rec) = org.get("/sobjects/Req__c/Key__c/a%2f1").await;
    assert_eq!((s, rec["T__c"].as_str()), (200, Some("two")));
    // Versions before 50.0 are not served.
    let r = org
        .http
        .patch(org.url("/services/data/v45.0/sobjects/Req__c/Key__c/A%2F1"))
        .bearer_auth(&org.token)
        .json(&json!({"T__c": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (s, e) = org
        .patch(
            "/sobjects/Req__c/Key__c/B?updateOnly=true",
            json!({"T__c": "x"}),
        )
        .await;
    assert_eq!((s, code(&e)), (404, "NOT_FOUND"));
    let (s, e) = org
        .patch("/sobjects/Req__c/Key__c/C", json!({"Key__c": "C"}))
        .await;
    assert_eq!(s, 400, "the external id may not be in the body: {e}");
    // A non-unique external id that matches two records: 300.
    for _ in 0..2 {
        let (s, _) = org
            .post("/sobjects/Req__c", json!({"Loose__c": "same"}))
            .await;
        assert_eq!(s, 201);
    }
    let (s, urls) = org
        .patch("/sobjects/Req__c/Loose__c/same", json!({"T__c": "x"}))
        .await;
    assert_eq!(s, 300);
    assert_eq!(urls.as_array().unwrap().len(), 2);
    let (s, e) = org.patch("/sobjects/Req__c/T__c/x", json!({})).await;
    assert_eq!(s, 400, "not an external id field: {e}");
}

#[tokio::test]
async fn collections_results_in_order_all_or_none_and_the_200_cap() {
    let org = Org::start(EmulatorConfig::default()).await;
    org.custom_object(
        "Req__c",
        &[("Key__c", &ext_field(true)), ("T__c", &text_field(5))],
    )
    .await;
    let rec = |k: &str, t: &str| json!({"attributes": {"type": "Req__c"}, "Key__c": k, "T__c": t});
    let (s, res) = org
        .patch(
            "/composite/sobjects/Req__c/Key__c",
            json!({"allOrNone": true, "records": [rec("a", "ok"), rec("b", "too long")]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        res[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(res[1]["errors"][0]["statusCode"], "STRING_TOO_LONG");
    let (_, count) = org.query("SELECT COUNT() FROM Req__c").await;
    assert_eq!(
        count["totalSize"], 0,
        "allOrNone rolled the first record back"
    );
    let (_, res) = org
        .patch(
            "/composite/sobjects/Req__c/Key__c",
            json!({"records": [rec("a", "ok"), rec("b", "too long"), rec("c", "ok")]}),
        )
        .await;
    let ok: Vec<bool> = res
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["success"].as_bool().unwrap())
        .collect();
    assert_eq!(ok, [true, false, true]);
    // An update rolled back restores the old values.
    let (_, res) = org
        .patch(
            "/composite/sobjects/Req__c/Key__c",
            json!({"allOrNone": true, "records": [rec("a", "new"), rec("zz", "too long")]}),
        )
        .await;
    assert_eq!(res[1]["success"], false);
    let (_, q) = org
        .query("SELECT T__c FROM Req__c WHERE Key__c = 'a'")
        .await;
    assert_eq!(q["records"][0]["T__c"], "ok");
    let many: Vec<Value> = (0..201).map(|i| rec(&format!("k{i}"), "x")).collect();
    let (s, e) = org
        .patch(
            "/composite/sobjects/Req__c/Key__c",
            json!({"records": many}),
        )
        .await;
    assert_eq!((s, code(&e)), (400, "EXCEEDED_ID_LIMIT"));
    // create, update and delete collections
    let (_, created) = org.post("/composite/sobjects", json!({"records": [{"attributes": {"type": "Account"}, "Name": "A"}, {"attributes": {"type": "Contact"}, "LastName": "B"}]})).await;
    let ids: Vec<String> = created
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let (_, updated) = org
        .patch(
            "/composite/sobjects",
            json!({"records": [{"attributes": {"type": "Account"}, "Id": ids[0], "Name": "A2"}]}),
        )
        .await;
    assert_eq!(updated[0]["success"], true);
    let (_, deleted) = org
        .delete(&format!("/composite/sobjects?ids={},{}", ids[0], ids[1]))
        .await;
    assert!(deleted
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["success"] == true));
}

#[tokio::test]
async fn deleting_a_parent_clears_set_null_lookups() {
    let org = Org::start(EmulatorConfig::default()).await;
    let (_, acc) = org
        .post("/sobjects/Account", json!({"Name": "Parent"}))
        .await;
    let (_, con) = org
        .post(
            "/sobjects/Contact",
            json!({"LastName": "Child", "AccountId": acc["id"]}),
        )
        .await;
    let (s, _) = org
        .delete(&format!(
            "/sobjects/Account/{}",
            acc["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 204);
    let (_, c) = org
        .get(&format!(
            "/sobjects/Contact/{}",
            con["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(c["AccountId"], Value::Null);
}

#[tokio::test]
async fn soql_escapes_ordering_paging_and_parent_paths_over_http() {
    let org = Org::start(EmulatorConfig::default()).await;
    let (_, acc) = org
        .post("/sobjects/Account", json!({"Name": "O'Brien & Co"}))
        .await;
    for (last, email) in [
        ("O'Brien", "ob@x.io"),
        ("back\\slash", "bs@x.io"),
        ("100%_sure", "p@x.io"),
        ("Zoë", "z@x.io"),
        ("Null Mail", ""),
    ] {
        let mut body = json!({"LastName": last, "AccountId": acc["id"]});
        if !email.is_empty() {
            body["Email"] = json!(email);
        }
        let (s, e) = org.post("/sobjects/Contact", body).await;
        assert_eq!(s, 201, "{e}");
    }
    let one = |soql: &str| {
        let soql = soql.to_string();
        let org = &org;
        async move {
            let (s, v) = org.query(&soql).await;
            assert_eq!(s, 200, "{soql}: {v}");
            v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["LastName"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        }
    };
    let cases: [(&str, &[&str]); 6] = [
        (r"SELECT LastName FROM Contact WHERE LastName = 'O\'Brien'", &["O'Brien"]),
        (r"SELECT LastName FROM Contact WHERE LastName = 'back\\slash'", &["back\\slash"]),
        (r"SELECT LastName FROM Contact WHERE LastName LIKE '100\%\_%'", &["100%_sure"]),
        (r"SELECT LastName FROM Contact WHERE LastName = 'zo\u00eb'", &["Zoë"]),
        ("SELECT LastName FROM Contact WHERE Email = null", &["Null Mail"]),
        ("SELECT LastName FROM Contact WHERE Email IN ('OB@X.IO', 'z@x.io') ORDER BY LastName DESC", &["Zoë", "O'Brien"]),
    ];
    for (soql, want) in cases {
        assert_eq!(one(soql).await, want, "{soql}");
    }
    assert_eq!(
        one("SELECT LastName FROM Contact WHERE NOT (Email != null) OR LastName = 'Zoë'")
            .await
            .len(),
        2
    );
    assert_eq!(
        one("SELECT LastName FROM Contact ORDER BY Email NULLS LAST, LastName LIMIT 2 OFFSET 3")
            .await,
        ["Zoë", "Null Mail"]
    );
    let (_, v) = org.query("SELECT Account.Name, LastName FROM Contact WHERE Account.Name LIKE 'o\\'brien%' LIMIT 1").await;
    assert_eq!(v["records"][0]["Account"]["Name"], "O'Brien & Co");
    assert_eq!(v["records"][0]["Account"]["attributes"]["type"], "Account");
    let (s, e) = org
        .query("SELECT Id FROM Contact WHERE LastName = 'bad \\q escape'")
        .await;
    assert_eq!((s, code(&e)), (400, "MALFORMED_QUERY"));
    let (s, e) = org
        .query("SELECT Id FROM Contact WHERE IsDeleted = 'yes'")
        .await;
    assert_eq!((s, code(&e)), (400, "INVALID_QUERY_FILTER_OPERATOR"));
    // Paging with a smaller batch size.
    let recs: Vec<Value> = (0..450)
        .map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("L{i:03}")}))
        .collect();
    for chunk in recs.chunks(200) {
        org.post("/composite/sobjects", json!({"records": chunk}))
            .await;
    }
    let r = org
        .http
        .get(org.data(&format!(
            "/query?q={}",
            urlencode("SELECT Id FROM Contact WHERE LastName LIKE 'L%'")
        )))
        .bearer_auth(&org.token)
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap();
    let first: Value = r.json().await.unwrap();
    assert_eq!(
        (
            first["totalSize"].as_u64(),
            first["records"].as_array().unwrap().len()
        ),
        (Some(450), 200)
    );
    let mut next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    let mut seen = 200;
    loop {
        let r = org
            .http
            .get(org.url(&next))
            .bearer_auth(&org.token)
            .header("Sforce-Query-Options", "batchSize=200")
            .send()
            .await
            .unwrap();
        let page: Value = r.json().await.unwrap();
        seen += page["records"].as_array().unwrap().len();
        match page["nextRecordsUrl"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, 450);
}

#[tokio::test]
async fn field_level_security_hides_fields_until_granted_and_revoked_again() {
    let org = Org::start(EmulatorConfig::default()).await;
    org.soap_ok(r#"<createMetadata><metadata xsi:type="CustomField"><fullName>Account.Tier__c</fullName><label>Tier</label><length>10</length><type>Text</type></metadata></createMetadata>"#).await;
    let names = |d: &Value| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (_, d) = org.get("/sobjects/Account/describe").await;
    assert!(!names(&d).contains(&"Tier__c".to_string()));
    let (s, e) = org
        .post("/sobjects/Account", json!({"Name": "A", "Tier__c": "gold"}))
        .await;
    assert_eq!((s, code(&e)), (400, "INVALID_FIELD"));
    // Read-only access: visible, not writable.
    let (_, ps) = org
        .post(
            "/sobjects/PermissionSet",
            json!({"Name": "Tier_Read", "Label": "Tier Read"}),
        )
        .await;
    let (s, fp) = org.post("/sobjects/FieldPermissions", json!({"ParentId": ps["id"], "SobjectType": "Account", "Field": "Account.Tier__c", "PermissionsRead": true})).await;
    assert_eq!(s, 201, "{fp}");
    let (_, users) = org.query("SELECT Id FROM User").await;
    let me = users["records"][0]["Id"].clone();
    let (s, e) = org
        .post(
            "/sobjects/PermissionSetAssignment",
            json!({"AssigneeId": me, "PermissionSetId": ps["id"]}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let (s, e) = org
        .post(
            "/sobjects/PermissionSetAssignment",
            json!({"AssigneeId": me, "PermissionSetId": ps["id"]}),
        )
        .await;
    assert_eq!((s, code(&e)), (400, "DUPLICATE_VALUE"));
    let (_, d) = org.get("/sobjects/Account/describe").await;
    let tier = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Tier__c")
        .unwrap()
        .clone();
    assert_eq!(
        (tier["createable"].as_bool(), tier["updateable"].as_bool()),
        (Some(false), Some(false))
    );
    let (s, e) = org
        .post("/sobjects/Account", json!({"Name": "A", "Tier__c": "gold"}))
        .await;
    assert_eq!((s, code(&e)), (400, "INVALID_FIELD_FOR_INSERT_UPDATE"));
    let (s, e) = org
        .patch(
            &format!("/sobjects/FieldPermissions/{}", fp["id"].as_str().unwrap()),
            json!({"PermissionsEdit": true}),
        )
        .await;
    assert_eq!(s, 204, "{e}");
    let (s, _) = org
        .post("/sobjects/Account", json!({"Name": "A", "Tier__c": "gold"}))
        .await;
    assert_eq!(s, 201);
    let (s, e) = org.post("/sobjects/FieldPermissions", json!({"ParentId": ps["id"], "SobjectType": "Account", "Field": "Account.Nope__c", "PermissionsRead": true})).await;
    assert_eq!(s, 400, "{e}");
    // Removing the grant hides the field again.
    org.delete(&format!(
        "/sobjects/FieldPermissions/{}",
        fp["id"].as_str().unwrap()
    ))
    .await;
    let (s, e) = org.query("SELECT Tier__c FROM Account").await;
    assert_eq!((s, code(&e)), (400, "INVALID_FIELD"));
}

#[tokio::test]
async fn the_daily_limit_refuses_calls_with_403_and_limit_info() {
    let org = Org::start(EmulatorConfig {
        daily_api_limit: 3,
        ..Default::default()
    })
    .await;
    for i in 1..=3 {
        let (s, _, h) = org.send(reqwest::Method::GET, "/limits", None).await;
        assert_eq!(s, 200);
        assert_eq!(h["sforce-limit-info"], format!("api-usage={i}/3").as_str());
    }
    let (s, e, h) = org.send(reqwest::Method::GET, "/sobjects", None).await;
    assert_eq!((s, code(&e)), (403, "REQUEST_LIMIT_EXCEEDED"));
    assert_eq!(h["sforce-limit-info"], "api-usage=3/3");
    let (s, body) = org
        .soap(
            &org.token,
            "<readMetadata><type>CustomObject</type><fullNames>X__c</fullNames></readMetadata>",
        )
        .await;
    assert_eq!(s, 500);
    assert!(body.contains("sf:REQUEST_LIMIT_EXCEEDED"), "{body}");
    org.admin("limits", json!({"used": 0})).await;
    let (s, _) = org.get("/limits").await;
    assert_eq!(s, 200, "headroom is back");
}

#[tokio::test]
async fn tokens_expire_after_the_ttl_and_on_demand() {
    let org = Org::start(EmulatorConfig {
        token_ttl: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let (s, _) = org.get("/limits").await;
    assert_eq!(s, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, e) = org.get("/limits").await;
        if s == 401 {
            assert_eq!(e[0]["errorCode"], "INVALID_SESSION_ID");
            break;
        }
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut org = org;
    org.token = org.password_token().await;
    assert_eq!(org.get("/limits").await.0, 200);
    org.admin("expire-tokens", json!({})).await;
    assert_eq!(org.get("/limits").await.0, 401);
    let (s, body) = org
        .soap(
            &org.token,
            "<readMetadata><type>CustomObject</type><fullNames>X__c</fullNames></readMetadata>",
        )
        .await;
    assert_eq!(s, 500);
    assert!(
        body.contains("<faultcode>sf:INVALID_SESSION_ID</faultcode>"),
        "{body}"
    );
}

#[tokio::test]
async fn every_fault_kind_is_injected_over_http() {
    let org = Org::start(EmulatorConfig::default()).await;
    org.admin("faults", json!({"spec": "503=1"})).await;
    let (s, e) = org.get("/limits").await;
    assert_eq!((s, code(&e)), (503, "SERVER_UNAVAILABLE"));
    org.admin("faults", json!({"spec": "500=1"})).await;
    let (s, e) = org.get("/limits").await;
    assert_eq!((s, code(&e)), (500, "UNKNOWN_EXCEPTION"));
    org.admin("faults", json!({"spec": "lock=1"})).await;
    let (_, res) = org
        .post(
            "/composite/sobjects",
            json!({"records": [{"attributes": {"type": "Account"}, "Name": "A"}]}),
        )
        .await;
    assert_eq!(res[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    let (s, e) = org.post("/sobjects/Account", json!({"Name": "A"})).await;
    assert_eq!((s, code(&e)), (400, "UNABLE_TO_LOCK_ROW"));
    org.admin("faults", json!({"spec": "latency=300ms@1"}))
        .await;
    let t = Instant::now();
    assert_eq!(org.get("/limits").await.0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "the spike was added"
    );
    org.admin("faults", json!({"spec": "hang=1"})).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = quick
        .get(org.data("/limits"))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.is_timeout(),
        "a hung call times out on the client: {err}"
    );
    org.admin("faults", json!({"spec": "reset=1"})).await;
    let err = org
        .http
        .get(org.data("/limits"))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap_err();
    assert!(
        !err.is_timeout() && (err.is_request() || err.is_connect()),
        "a reset connection gives no answer: {err:?}"
    );
    let stats: Value = org.admin("faults", json!({"spec": ""})).await;
    assert_eq!(stats, serde_json::to_value(FaultSpec::default()).unwrap());
    assert_eq!(org.get("/limits").await.0, 200, "faults off again");
    let stats: Value = org.http.get(org.url("/_emulator/stats")).fetch_json().await;
    for kind in ["503", "500", "lock", "latency", "hang", "reset"] {
        assert!(
            stats["faults_injected"][kind].as_u64().unwrap_or(0) >= 1,
            "{kind} counted: {stats}"
        );
    }
    assert!(stats["calls"]["rest.limits"].as_u64().unwrap() >= 6);
    let r = org
        .http
        .post(org.url("/_emulator/faults"))
        .json(&json!({"spec": "503=7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a bad spec is refused with a reason");
}

#[tokio::test]
async fn seeded_faults_are_repeatable() {
    let spec = FaultSpec::parse("503=0.5,seed=11").unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let org = Org::start(EmulatorConfig {
            faults: spec.clone(),
            ..Default::default()
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(org.get("/limits").await.0);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&503) && runs[0].contains(&200));
}

#[tokio::test]
async fn metadata_layouts_limits_and_faults() {
    let org = Org::start(EmulatorConfig::default()).await;
    org.custom_object("Req__c", &[("Account__c", "<label>Account</label><referenceTo>Account</referenceTo><relationshipName>Requests</relationshipName><type>Lookup</type>")]).await;
    let (s, body) = org.soap(&org.token, "<readMetadata><type>Layout</type><fullNames>Account-Account Layout</fullNames></readMetadata>").await;
    assert_eq!(s, 200);
    assert!(body.contains("RelatedContactList"), "{body}");
    let layout = r#"<updateMetadata><metadata xsi:type="Layout"><fullName>Account-Account Layout</fullName><relatedLists><relatedList>RelatedContactList</relatedList></relatedLists><relatedLists><fields>NAME</fields><relatedList>Req__c.Account__c</relatedList></relatedLists></metadata></updateMetadata>"#;
    org.soap_ok(layout).await;
    let (_, body) = org.soap(&org.token, "<readMetadata><type>Layout</type><fullNames>Account-Account%20Layout</fullNames></readMetadata>").await;
    assert!(body.contains("Req__c.Account__c"), "{body}");
    let bad = layout.replace("Req__c.Account__c", "Req__c.Nope__c");
    let (_, body) = org.soap(&org.token, &bad).await;
    assert!(
        body.contains("<success>false</success>") && body.contains("Invalid related list"),
        "{body}"
    );
    let many: String = (0..11).map(|i| format!(r#"<metadata xsi:type="CustomField"><fullName>Req__c.F{i}__c</fullName><label>F</label><length>5</length><type>Text</type></metadata>"#)).collect();
    let (s, body) = org
        .soap(
            &org.token,
            &format!("<createMetadata>{many}</createMetadata>"),
        )
        .await;
    assert_eq!(s, 500);
    assert!(body.contains("EXCEEDED_ID_LIMIT"), "{body}");
    let (_, body) = org.soap(&org.token, "<readMetadata><type>CustomObject</type><fullNames>Missing__c</fullNames></readMetadata>").await;
    assert!(body.contains(r#"<records xsi:nil="true"/>"#), "{body}");
    let (_, body) = org.soap(&org.token, r#"<createMetadata><metadata xsi:type="CustomField"><fullName>Req__c.Bad__Name__c</fullName><label>F</label><length>5</length><type>Text</type></metadata></createMetadata>"#).await;
    assert!(
        body.contains("<success>false</success>"),
        "double underscores are refused: {body}"
    );
    let (_, body) = org.soap(&org.token, r#"<deleteMetadata><type>CustomField</type><fullNames>Req__c.Account__c</fullNames></deleteMetadata>"#).await;
    assert!(body.contains("<success>true</success>"), "{body}");
    let (s, _) = org.query("SELECT Account__c FROM Req__c").await;
    assert_eq!(s, 400, "a deleted field is gone");
    let r = org
        .http
        .post(org.url("/services/Soap/m/67.0"))
        .body("<not xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<faultcode>soapenv:Client</faultcode>"));
}

/// What a real org refuses in layouts, and how several layouts are assigned
/// (salesforce-api.md §9.1): qualified related-list columns fail the save,
/// a list twice fails, an update replaces the layout, `listMetadata` lists
/// layouts and profiles, and a profile's `layoutAssignments` say which
/// layout its users see.
#[tokio::test]
async fn layouts_are_as_strict_as_a_real_org_and_assigned_per_profile() {
    let seed: sf_emulator::Seed = serde_json::from_value(json!({
        "layouts": [
            {"object": "Account", "name": "Support Layout", "profiles": ["Standard User", "Support Agent"]},
            {"object": "Account", "name": "Unused (Old)", "profiles": []}
        ]
    }))
    .unwrap();
    let org = Org::start(EmulatorConfig {
        seed,
        ..Default::default()
    })
    .await;
    org.custom_object("Req__c", &[
        ("Account__c", "<label>Account</label><referenceTo>Account</referenceTo><relationshipName>Requests</relationshipName><type>Lookup</type>"),
        ("Title__c", &text_field(255)),
    ]).await;
    let save = |columns: &str| {
        format!(
            r#"<updateMetadata><metadata xsi:type="Layout"><fullName>Account-Support Layout</fullName><layoutSections><label>Kept</label></layoutSections><relatedLists>{columns}<relatedList>Req__c.Account__c</relatedList></relatedLists></metadata></updateMetadata>"#
        )
    };
    let (_, body) = org
        .soap(
            &org.token,
            &save("<fields>NAME</fields><fields>Req__c.Title__c</fields>"),
        )
        .await;
    assert!(
        body.contains("<success>false</success>")
            && body.contains("Invalid field:Req__c.Title__c in related list:Req__c.Account__c"),
        "a qualified column fails the save: {body}"
    );
    let (_, body) = org
        .soap(
            &org.token,
            &save("<fields>NAME</fields><fields>Nope__c</fields>"),
        )
        .await;
    assert!(body.contains("Invalid field:Nope__c"), "{body}");
    let (_, body) = org
        .soap(
            &org.token,
            &save(
                "<fields>NAME</fields><fields>Title__c</fields><sortField>CREATED_DATE</sortField>",
            ),
        )
        .await;
    assert!(
        body.contains("<success>true</success>"),
        "bare names and tokens pass: {body}"
    );
    let twice = save("<fields>NAME</fields>").replace(
        "</relatedLists>",
        "</relatedLists><relatedLists><relatedList>Req__c.Account__c</relatedList></relatedLists>",
    );
    let (_, body) = org.soap(&org.token, &twice).await;
    assert!(body.contains("appears more than once"), "{body}");
    // An update replaces the layout: what it leaves out is gone.
    let (_, body) = org.soap(&org.token, "<readMetadata><type>Layout</type><fullNames>Account-Support Layout</fullNames></readMetadata>").await;
    assert!(
        body.contains("<label>Kept</label>") && !body.contains("RelatedContactList"),
        "{body}"
    );

    let (s, body) = org.soap(&org.token, "<listMetadata><queries><type>Layout</type></queries><queries><type>Profile</type></queries></listMetadata>").await;
    assert_eq!(s, 200, "{body}");
    for name in [
        "Account-Account Layout",
        "Account-Support Layout",
        "Account-Unused %28Old%29",
        "Contact-Contact Layout",
        "<fullName>Admin</fullName>",
        "<fullName>Standard</fullName>",
        "<fullName>Support Agent</fullName>",
    ] {
        assert!(body.contains(name), "{name} listed: {body}");
    }
    let (_, body) = org.soap(&org.token, "<readMetadata><type>Profile</type><fullNames>Support Agent</fullNames><fullNames>Admin</fullNames></readMetadata>").await;
    let (agent, admin) = body.split_at(body.find("<fullName>Admin</fullName>").unwrap());
    assert!(
        agent.contains(
            "<layoutAssignments><layout>Account-Support Layout</layout></layoutAssignments>"
        ),
        "{body}"
    );
    assert!(
        admin.contains("<layout>Account-Account Layout</layout>"),
        "the default keeps unclaimed profiles: {body}"
    );
    // A profile save may move an assignment; a layout that does not exist is refused.
    let (_, body) = org.soap(&org.token, r#"<updateMetadata><metadata xsi:type="Profile"><fullName>Admin</fullName><layoutAssignments><layout>Account-Nope</layout></layoutAssignments></metadata></updateMetadata>"#).await;
    assert!(body.contains("<success>false</success>"), "{body}");
}

/// A permission set save replaces its permissions; a profile save overlays;
/// required fields take no field-level security (salesforce-api.md §9.2);
/// a required custom field is required in describe and DML.
#[tokio::test]
async fn permission_sets_replace_profiles_overlay_and_required_fields_are_required() {
    let org = Org::start(EmulatorConfig::default()).await;
    org.custom_object(
        "Req__c",
        &[("A__c", &text_field(10)), ("B__c", &text_field(10))],
    )
    .await;
    let fp = |f: &str| {
        format!("<fieldPermissions><editable>true</editable><field>Req__c.{f}</field><readable>true</readable></fieldPermissions>")
    };
    let ps = |perms: String| {
        format!(
            r#"<upsertMetadata><metadata xsi:type="PermissionSet"><fullName>Ours</fullName>{perms}<label>Ours</label></metadata></upsertMetadata>"#
        )
    };
    let (_, body) = org.soap(&org.token, &ps(fp("A__c") + &fp("B__c"))).await;
    assert!(body.contains("<success>true</success>"), "{body}");
    let (_, body) = org.soap(&org.token, &ps(fp("B__c"))).await;
    assert!(body.contains("<success>true</success>"), "{body}");
    let (_, body) = org
        .soap(
            &org.token,
            "<readMetadata><type>PermissionSet</type><fullNames>Ours</fullNames></readMetadata>",
        )
        .await;
    assert!(
        !body.contains("Req__c.A__c") && body.contains("Req__c.B__c"),
        "a permission set save replaces: {body}"
    );
    // The profile still has both (granted by custom_object), after naming only B.
    let (_, body) = org.soap(&org.token, &format!(r#"<updateMetadata><metadata xsi:type="Profile"><fullName>Admin</fullName>{}</metadata></updateMetadata>"#, fp("B__c"))).await;
    assert!(body.contains("<success>true</success>"), "{body}");
    let (_, body) = org
        .soap(
            &org.token,
            "<readMetadata><type>Profile</type><fullNames>Admin</fullNames></readMetadata>",
        )
        .await;
    assert!(
        body.contains("Req__c.A__c") && body.contains("Req__c.B__c"),
        "a profile save overlays: {body}"
    );

    let (_, body) = org.soap(&org.token, r#"<createMetadata><metadata xsi:type="CustomField"><fullName>Req__c.Must__c</fullName><label>Must</label><length>10</length><required>true</required><type>Text</type></metadata></createMetadata>"#).await;
    assert!(body.contains("<success>true</success>"), "{body}");
    let (_, body) = org.soap(&org.token, &ps(fp("Must__c"))).await;
    assert!(
        body.contains("You cannot deploy to a required field: Req__c.Must__c"),
        "{body}"
    );
    let (s, d) = org.get("/sobjects/Req__c/describe").await;
    assert_eq!(s, 200);
    let must = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Must__c")
        .expect("required fields are visible without FLS");
    assert_eq!(must["nillable"], false);
    let (s, body) = org.post("/sobjects/Req__c", json!({"A__c": "x"})).await;
    assert_eq!(s, 400);
    assert_eq!(body[0]["errorCode"], "REQUIRED_FIELD_MISSING", "{body}");
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("sf-emulator-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("org.json");
    let _ = std::fs::remove_file(&file);
    let config = EmulatorConfig {
        state_file: Some(file.clone()),
        ..Default::default()
    };
    let org = Org::start(config.clone()).await;
    org.custom_object("Req__c", &[("Key__c", &ext_field(true))])
        .await;
    let (_, made) = org.patch("/sobjects/Req__c/Key__c/K1", json!({})).await;
    let token = org.token.clone();
    org.emu.shutdown().await.unwrap();
    assert!(file.exists());
    let mut again = Org::start(config).await;
    again.token = token;
    let (s, rec) = again.get("/sobjects/Req__c/Key__c/K1").await;
    assert_eq!(s, 200, "the record and the old token survive: {rec}");
    assert_eq!(rec["Id"], made["id"]);
    let (_, next) = again
        .post("/sobjects/Req__c", json!({"Key__c": "K2"}))
        .await;
    assert_ne!(next["id"], made["id"], "ids keep counting after a restart");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn garbage_never_crashes_it() {
    let org = Org::start(EmulatorConfig::default()).await;
    let bodies: [&[u8]; 6] = [
        b"",
        b"null",
        b"[]",
        b"{\"records\": 5}",
        &[0xff, 0xfe, 0x00],
        b"{\"a\":",
    ];
    for path in [
        "/sobjects/Account",
        "/composite/sobjects",
        "/composite/sobjects/Account/Name",
        "/sobjects/Account/Name/x",
    ] {
        for body in bodies {
            for method in [reqwest::Method::POST, reqwest::Method::PATCH] {
                let r = org
                    .http
                    .request(method.clone(), org.data(path))
                    .bearer_auth(&org.token)
                    .body(body.to_vec())
                    .send()
                    .await
                    .unwrap();
                assert!(
                    r.status().is_client_error() || r.status().is_success(),
                    "{method} {path}: {}",
                    r.status()
                );
            }
        }
    }
    for q in [
        "",
        "SELECT",
        "SELECT Id FROM",
        "SELECT Id FROM Account WHERE (Name = 'x'",
        "SELECT Id FROM Account WHERE Name = 'x' LIMIT -1",
        "\u{0}\u{1}",
        "SELECT Id FROM Account ORDER BY",
    ] {
        let (s, e) = org.query(q).await;
        assert_eq!(s, 400, "{q:?}: {e}");
    }
    assert_eq!(org.get("/limits").await.0, 200, "still serving");
}

/// Duplicate rules as a new org has them (salesforce-api.md §9.3): the
/// standard Contact rule alerts (matching Leads too), so an API create of a
/// resembling record fails with `DUPLICATES_DETECTED` and `duplicateResut`
/// unless `allowSave=true` is sent; Collections give no details; a Block
/// rule refuses even with the header; `off` saves.
#[tokio::test]
async fn duplicate_rules_alert_block_and_the_allow_save_header() {
    let seed: sf_emulator::Seed = serde_json::from_value(json!({
        "leads": [{"FirstName": "Maya", "LastName": "Patel", "Email": "maya@acme.io", "Company": "Acme"}],
        "duplicate_rules": {"Lead": "block"}
    }))
    .unwrap();
    let org = Org::start(EmulatorConfig {
        seed,
        ..Default::default()
    })
    .await;
    let body = json!({"LastName": "Patel", "FirstName": "Maya", "Email": "MAYA@acme.io"});
    let (s, v) = org.post("/sobjects/Contact", body.clone()).await;
    assert_eq!(s, 400);
    assert_eq!(v[0]["errorCode"], "DUPLICATES_DETECTED", "{v}");
    let d = &v[0]["duplicateResut"];
    assert_eq!(d["duplicateRule"], "Standard_Contact_Duplicate_Rule");
    assert_eq!(d["allowSave"], true);
    assert_eq!(d["matchResults"][0]["entityType"], "Lead");
    assert!(d["matchResults"][0]["matchRecords"][0]["record"]["Id"]
        .as_str()
        .unwrap()
        .starts_with("00Q"));
    let (s, v) = org.post("/composite/sobjects", json!({"allOrNone": false, "records": [{"attributes": {"type": "Contact"}, "LastName": "Patel", "Email": "maya@acme.io"}]})).await;
    assert_eq!(s, 200);
    assert_eq!(
        v[0]["errors"][0]["statusCode"], "DUPLICATES_DETECTED",
        "{v}"
    );
    assert!(
        v[0]["errors"][0].get("duplicateResut").is_none(),
        "Collections give no details"
    );
    let allow = [(
        "Sforce-Duplicate-Rule-Header",
        "allowSave=true; includeRecordDetails=false",
    )];
    let (s, v, _) = org
        .send_with(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(body),
            &allow,
        )
        .await;
    assert_eq!(s, 201, "an alert rule lets allowSave through: {v}");
    // The Lead rule blocks: the header does not help.
    let (s, v, _) = org
        .send_with(
            reqwest::Method::POST,
            "/sobjects/Lead",
            Some(json!({"LastName": "Patel", "Email": "maya@acme.io", "Company": "Acme"})),
            &allow,
        )
        .await;
    assert_eq!((s, code(&v)), (400, "DUPLICATES_DETECTED"), "{v}");
    assert_eq!(v[0]["duplicateResut"]["allowSave"], false);
    org.emu.emulator.org.write().duplicate_rules.lead = sf_emulator::duplicates::Action::Off;
    let (s, _) = org
        .post(
            "/sobjects/Lead",
            json!({"LastName": "Patel", "Email": "maya@acme.io", "Company": "Acme"}),
        )
        .await;
    assert_eq!(s, 201, "off saves");
}

/// Salesforce's front door (salesforce-api.md §9.4): a request line over
/// 16,384 bytes gets 414, a head over it 431, each with an HTML body.
#[tokio::test]
async fn oversized_requests_get_414_and_431_in_html() {
    let org = Org::start(EmulatorConfig::default()).await;
    let long = format!(
        "SELECT Id FROM Contact WHERE Email IN ('{}')",
        "x".repeat(17_000)
    );
    let r = org
        .http
        .get(org.data(&format!("/query?q={}", urlencode(&long))))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<h1>Bad Message 414</h1>"));
    let r = org
        .http
        .get(org.data("/limits"))
        .bearer_auth(&org.token)
        .header("X-Filler", "y".repeat(16_500))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let short = format!(
        "SELECT Id FROM Contact WHERE Email IN ('{}')",
        "x".repeat(8_000)
    );
    let (s, _) = org.query(&short).await;
    assert_eq!(s, 200, "under the limit is fine");
}

/// Values as Salesforce counts them (salesforce-api.md §9.6): lengths in
/// UTF-16 units (an emoji is two), Contact.Email at most 80 and a valid address.
#[tokio::test]
async fn lengths_in_utf16_units_and_email_addresses() {
    let org = Org::start(EmulatorConfig::default()).await;
    let (s, v) = org
        .post(
            "/sobjects/Contact",
            json!({"LastName": "L", "FirstName": "😀".repeat(21)}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (400, "STRING_TOO_LONG"),
        "42 units in a 40-unit field: {v}"
    );
    let (s, _) = org
        .post(
            "/sobjects/Contact",
            json!({"LastName": "L", "FirstName": "😀".repeat(20)}),
        )
        .await;
    assert_eq!(s, 201);
    for bad in ["fig@pig", "no-at-sign", "a b@c.d", "@x.io"] {
        let (s, v) = org
            .post("/sobjects/Contact", json!({"LastName": "L", "Email": bad}))
            .await;
        assert_eq!((s, code(&v)), (400, "INVALID_EMAIL_ADDRESS"), "{bad}: {v}");
    }
    let (s, _) = org
        .post(
            "/sobjects/Contact",
            json!({"LastName": "L", "Email": "fig@pig.c"}),
        )
        .await;
    assert_eq!(s, 201);
    let long = format!("{}@acme.io", "a".repeat(73));
    let (s, v) = org
        .post("/sobjects/Contact", json!({"LastName": "L", "Email": long}))
        .await;
    assert_eq!(
        (s, code(&v)),
        (400, "STRING_TOO_LONG"),
        "81 characters: {v}"
    );
}

#[tokio::test]
async fn a_text_name_is_required_and_an_auto_number_name_can_become_text() {
    let org = Org::start(EmulatorConfig::default()).await;
    let object = |name_field: &str| {
        format!(
            r#"<upsertMetadata><metadata xsi:type="CustomObject"><fullName>Ticket__c</fullName><deploymentStatus>Deployed</deploymentStatus><label>Ticket</label>{name_field}<pluralLabel>Tickets</pluralLabel><sharingModel>ReadWrite</sharingModel></metadata></upsertMetadata>"#
        )
    };
    let auto = "<nameField><displayFormat>T-{0000}</displayFormat><label>Number</label><type>AutoNumber</type></nameField>";
    org.soap_ok(&object(auto)).await;
    org.soap_ok(r#"<upsertMetadata><metadata xsi:type="CustomField"><fullName>Ticket__c.Key__c</fullName><label>Key</label><length>40</length><type>Text</type></metadata></upsertMetadata>"#).await;
    org.soap_ok(r#"<upsertMetadata><metadata xsi:type="Profile"><fullName>Admin</fullName><fieldPermissions><editable>true</editable><field>Ticket__c.Key__c</field><readable>true</readable></fieldPermissions></metadata></upsertMetadata>"#).await;

    // Auto-number: the org names the record and refuses a name given.
    let (s, made) = org
        .post("/sobjects/Ticket__c/", json!({"Key__c": "a"}))
        .await;
    assert_eq!(s, 201, "{made}");
    let first = made["id"].as_str().unwrap().to_string();
    let (s, body) = org
        .post(
            "/sobjects/Ticket__c/",
            json!({"Name": "REQ-1", "Key__c": "b"}),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body[0]["errorCode"], "INVALID_FIELD_FOR_INSERT_UPDATE");
    let (_, d) = org.get("/sobjects/Ticket__c/describe").await;
    let name = |d: &Value| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "Name")
            .unwrap()
            .clone()
    };
    assert_eq!(name(&d)["autoNumber"], true);
    assert_eq!(name(&d)["createable"], false);

    // The same object upserted with a Text name: its fields and names stay.
    let text = "<nameField><label>Ticket ID</label><type>Text</type></nameField>";
    org.soap_ok(&object(text)).await;
    let (_, d) = org.get("/sobjects/Ticket__c/describe").await;
    assert_eq!(name(&d)["autoNumber"], false);
    assert_eq!(name(&d)["createable"], true);
    assert_eq!(name(&d)["nillable"], false);
    assert!(d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "Key__c"));
    let (_, rec) = org.get(&format!("/sobjects/Ticket__c/{first}")).await;
    assert_eq!(rec["Name"], "T-0001");
    assert_eq!(rec["Key__c"], "a");

    // A Text name is required on create, as a real org's is.
    let (s, body) = org
        .post("/sobjects/Ticket__c/", json!({"Key__c": "c"}))
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(body[0]["fields"], json!(["Name"]));
    let (s, body) = org
        .post(
            "/sobjects/Ticket__c/",
            json!({"Name": "REQ-2", "Key__c": "c"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
}

/// `name_type_locked` plays an org that keeps a Name's data type: a save
/// that switches it is refused (and changes nothing); new objects and saves
/// that keep the type are as usual.
#[tokio::test]
async fn a_locked_name_type_refuses_the_switch_and_keeps_the_object() {
    let mut config = EmulatorConfig::default();
    config.seed.org.name_type_locked = true;
    let org = Org::start(config).await;
    let object = |name_field: &str| {
        format!(
            r#"<upsertMetadata><metadata xsi:type="CustomObject"><fullName>Ticket__c</fullName><deploymentStatus>Deployed</deploymentStatus><label>Ticket</label>{name_field}<pluralLabel>Tickets</pluralLabel><sharingModel>ReadWrite</sharingModel></metadata></upsertMetadata>"#
        )
    };
    let auto = "<nameField><displayFormat>T-{0000}</displayFormat><label>Number</label><type>AutoNumber</type></nameField>";
    org.soap_ok(&object(auto)).await;
    org.soap_ok(&object(auto)).await;
    let (s, body) = org
        .soap(
            &org.token,
            &object("<nameField><label>Ticket ID</label><type>Text</type></nameField>"),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("<success>false</success>") && body.contains("FIELD_INTEGRITY_EXCEPTION"),
        "{body}"
    );
    let (_, d) = org.get("/sobjects/Ticket__c/describe").await;
    let name = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Name")
        .unwrap()
        .clone();
    assert_eq!(name["autoNumber"], true, "unchanged: {name}");
}

/// `POST /composite` (src/rest/composite.rs cites the guide): subrequests run in order, a
/// later one uses an earlier answer through `@{ref...}`, a reference that
/// names nothing halts only the subrequests that use it, and the whole
/// series is one API call.
#[tokio::test]
async fn a_composite_call_runs_subrequests_with_references_as_one_call() {
    let org = Org::start(EmulatorConfig::default()).await;
    let v = "/services/data/v67.0";
    let usage =
        |h: &reqwest::header::HeaderMap| h["sforce-limit-info"].to_str().unwrap().to_string();
    let (_, _, h) = org.send(reqwest::Method::GET, "/limits", None).await;
    let before = usage(&h);
    let body = json!({"compositeRequest": [
        {"method": "POST", "url": format!("{v}/sobjects/Account"), "referenceId": "acc", "body": {"Name": "Acme"}},
        {"method": "POST", "url": format!("{v}/sobjects/Contact"), "referenceId": "con",
         "body": {"LastName": "Patel", "AccountId": "@{acc.id}"}},
        {"method": "GET", "url": format!("{v}/query/?q=SELECT+Id,AccountId+FROM+Contact+WHERE+AccountId='@{{acc.id}}'"), "referenceId": "q"},
        {"method": "GET", "url": format!("{v}/query/?q=SELECT+Id+FROM+Account+WHERE+Name='Nobody'"), "referenceId": "none"},
        {"method": "PATCH", "url": format!("{v}/sobjects/Account/@{{none.records[0].Id}}"), "referenceId": "halted", "body": {"Name": "X"}},
        {"method": "PATCH", "url": format!("{v}/sobjects/Account/@{{acc.id}}"), "referenceId": "renamed", "body": {"Name": "Acme Inc"}},
    ]});
    let (s, r, h) = org
        .send(reqwest::Method::POST, "/composite", Some(body))
        .await;
    assert_eq!(s, 200, "{r}");
    let after = usage(&h);
    let n = |u: &str| {
        u.trim_start_matches("api-usage=")
            .split('/')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(n(&after), n(&before) + 1, "one call: {before} → {after}");
    let res = r["compositeResponse"].as_array().unwrap();
    let by = |id: &str| res.iter().find(|x| x["referenceId"] == id).unwrap().clone();
    assert_eq!(by("acc")["httpStatusCode"], 201);
    let acc = by("acc")["body"]["id"].as_str().unwrap().to_string();
    assert!(by("acc")["httpHeaders"]["Location"]
        .as_str()
        .unwrap()
        .ends_with(&acc));
    assert_eq!(by("con")["httpStatusCode"], 201);
    assert_eq!(by("q")["body"]["records"][0]["AccountId"], acc.as_str());
    assert_eq!(by("none")["body"]["totalSize"], 0);
    assert_eq!(by("halted")["httpStatusCode"], 400);
    assert_eq!(by("halted")["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        by("halted")["body"][0]["message"],
        "Invalid reference specified. No value for none.records[0].Id found in none"
    );
    assert_eq!(by("renamed")["httpStatusCode"], 204, "{r}");
    let (_, a) = org.get(&format!("/sobjects/Account/{acc}")).await;
    assert_eq!(a["Name"], "Acme Inc");
}

/// With `allOrNone` one failing subrequest undoes the others, which answer
/// 400 PROCESSING_HALTED; the limits refuse the whole request.
#[tokio::test]
async fn a_composite_call_rolls_back_all_or_none_and_keeps_its_limits() {
    let org = Org::start(EmulatorConfig::default()).await;
    let v = "/services/data/v67.0";
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("{v}/sobjects/Account"), "referenceId": "acc", "body": {"Name": "Rolled Back"}},
        {"method": "POST", "url": format!("{v}/sobjects/Contact"), "referenceId": "bad", "body": {"FirstName": "No last name"}},
    ]});
    let (s, r) = org.post("/composite", body).await;
    assert_eq!(s, 200, "{r}");
    let res = &r["compositeResponse"];
    assert_eq!(res[0]["httpStatusCode"], 400);
    assert_eq!(res[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        res[1]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING",
        "{r}"
    );
    let (_, q) = org
        .query("SELECT Id FROM Account WHERE Name = 'Rolled Back'")
        .await;
    assert_eq!(q["totalSize"], 0, "rolled back");

    let query = json!({"method": "GET", "url": format!("{v}/query/?q=SELECT+Id+FROM+Account"), "referenceId": "q"});
    let many = |n: usize, item: &Value| {
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let mut x = item.clone();
                x["referenceId"] = json!(format!("r{i}"));
                x
            })
            .collect();
        json!({ "compositeRequest": items })
    };
    let get = json!({"method": "GET", "url": format!("{v}/sobjects/Account/describe"), "referenceId": "d"});
    let (s, _) = org.post("/composite", many(25, &get)).await;
    assert_eq!(s, 200, "25 subrequests are allowed");
    let (s, e) = org.post("/composite", many(26, &get)).await;
    assert_eq!((s, code(&e)), (400, "INVALID_INPUT"), "{e}");
    let (s, _) = org.post("/composite", many(5, &query)).await;
    assert_eq!(s, 200, "five queries are allowed");
    let (s, e) = org.post("/composite", many(6, &query)).await;
    assert_eq!(s, 400, "six queries are not: {e}");
    let mut auth = query.clone();
    auth["httpHeaders"] = json!({"Authorization": "Bearer x"});
    let (s, _) = org
        .post("/composite", json!({"compositeRequest": [auth]}))
        .await;
    assert_eq!(s, 400, "a subrequest may not set Authorization");
    let mut dash = query.clone();
    dash["referenceId"] = json!("Link-1");
    let (s, r) = org
        .post("/composite", json!({"compositeRequest": [dash]}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["compositeResponse"][0]["httpStatusCode"], 400, "{r}");
}

/// sObject Collections create and update: "Each object must contain an
/// attributes map. The map must contain a value for type." ([doc] Create
/// Records Using sObject Collections). A record without its type is refused
/// and nothing is written.
#[tokio::test]
async fn collections_records_must_name_their_type() {
    let org = Org::start(EmulatorConfig::default()).await;
    let untyped = json!({"records": [{"Name": "Untyped"}]});
    let (s, e) = org.post("/composite/sobjects", untyped.clone()).await;
    assert_eq!((s, code(&e)), (400, "INVALID_TYPE"), "create: {e}");
    let (s, e) = org.patch("/composite/sobjects", untyped).await;
    assert_eq!((s, code(&e)), (400, "INVALID_TYPE"), "update: {e}");
    let (_, v) = org
        .query("SELECT Id FROM Account WHERE Name = 'Untyped'")
        .await;
    assert_eq!(v["totalSize"], 0, "nothing written");
}

/// A large org runs a scan no index narrows until it gives up, about two
/// minutes, before it answers `QUERY_TIMEOUT` (salesforce-api.md §9.5): with
/// `scan_timeout_wait_ms` the emulator answers that late, alone or in a
/// composite call, so a client that waits less hears nothing. An indexed
/// query answers at once.
#[tokio::test]
async fn a_scan_over_the_limit_answers_late_as_a_large_org_does() {
    let contacts: Vec<Value> = (0..20)
        .map(|i| json!({"LastName": format!("P{i}"), "Email": format!("p{i}@acme.io")}))
        .collect();
    let seed = serde_json::from_value(json!({
        "org": {"scan_timeout_rows": 10, "scan_timeout_wait_ms": 30_000},
        "contacts": contacts,
    }))
    .unwrap();
    let org = Org::start(EmulatorConfig {
        seed,
        ..Default::default()
    })
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let scan = "SELECT Id FROM Contact WHERE Email LIKE '%@acme.io'";
    let ask = |path: String| {
        impatient
            .get(org.data(&path))
            .bearer_auth(&org.token)
            .send()
    };
    let e = ask(format!("/query?q={}", urlencode(scan)))
        .await
        .expect_err("no answer within a second");
    assert!(e.is_timeout(), "{e}");
    let indexed = "SELECT Id FROM Contact WHERE Email = 'p3@acme.io'";
    let r = ask(format!("/query?q={}", urlencode(indexed)))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let composite = json!({"compositeRequest": [{"method": "GET", "referenceId": "scan",
        "url": format!("/services/data/v{V}/query?q={}", urlencode(scan))}]});
    let e = impatient
        .post(org.data("/composite"))
        .bearer_auth(&org.token)
        .json(&composite)
        .send()
        .await
        .expect_err("the composite call waits for its scan");
    assert!(e.is_timeout(), "{e}");
}
