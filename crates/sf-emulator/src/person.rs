//! Person accounts (salesforce-api.md §9.7), on when the seed says
//! `"org": {"person_accounts": true}`: `Account.IsPersonAccount`,
//! `Account.PersonContactId`, `Account.PersonEmail` and
//! `Contact.IsPersonAccount` exist only then (elsewhere a query naming them
//! fails with INVALID_FIELD, as on a real org). A person account's only
//! Contact is its own person contact: a business Contact pointed at one is
//! refused (the error code is Salesforce's family for person-account
//! operations; the exact text is UNVERIFIED).

use serde_json::{Map, Value};

use crate::dml::RecError;
use crate::org::Org;
use crate::schema::{FieldDef, FieldType, ObjectDef};
use crate::table::Row;
use crate::value::Val;

fn system(mut f: FieldDef) -> FieldDef {
    f.system = true;
    f
}

/// Adds the person-account fields to Account and Contact.
pub fn enable(org: &mut Org) {
    let account = [
        system(FieldDef::new(
            "IsPersonAccount",
            "Is Person Account",
            FieldType::Boolean,
        )),
        system(FieldDef::new(
            "PersonContactId",
            "Person Contact ID",
            FieldType::Reference {
                to: "Contact".into(),
                delete_constraint: crate::schema::DeleteConstraint::SetNull,
            },
        )),
        system(FieldDef::new("PersonEmail", "Email", FieldType::Email)),
    ];
    for f in account {
        let t = org.table_mut("Account").expect("Account exists");
        t.def.put_field(f);
        t.field_added();
    }
    let t = org.table_mut("Contact").expect("Contact exists");
    t.def.put_field(system(FieldDef::new(
        "IsPersonAccount",
        "Is Person Account",
        FieldType::Boolean,
    )));
    t.field_added();
}

/// Creates a person account and its person contact from a seed entry
/// (`{"FirstName", "LastName", "PersonEmail"}`); returns the account's id.
pub fn seed(org: &mut Org, p: &Map<String, Value>) -> Result<String, String> {
    let text = |k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (first, last, email) = (text("FirstName"), text("LastName"), text("PersonEmail"));
    if last.is_empty() {
        return Err(format!("seed person account {p:?}: LastName is required"));
    }
    let name = format!("{first} {last}").trim().to_string();
    let account = org.insert_system(
        "Account",
        &[
            ("Name", Val::text(name.as_str())),
            ("IsPersonAccount", Val::Bool(true)),
            ("PersonEmail", Val::text(email.as_str())),
        ],
    );
    let mut contact = vec![
        ("LastName", Val::text(last.as_str())),
        ("Name", Val::text(name.as_str())),
        ("AccountId", Val::text(account.as_str())),
        ("IsPersonAccount", Val::Bool(true)),
        ("Email", Val::text(email.as_str())),
    ];
    if !first.is_empty() {
        contact.push(("FirstName", Val::text(first.as_str())));
    }
    let person = org.insert_system("Contact", &contact);
    let t = org.table_mut("Account").expect("Account exists");
    let slot = t.def.slot("PersonContactId").expect("enabled");
    if let Some(mut row) = t.get(&account).cloned() {
        row[slot] = Val::text(person.as_str());
        t.put(row);
    }
    Ok(account)
}

/// A business Contact may not belong to a person account.
pub fn check(org: &Org, def: &ObjectDef, row: &Row) -> Result<(), RecError> {
    if def.name != "Contact" {
        return Ok(());
    }
    let (Some(person_slot), Some(account_slot)) =
        (def.slot("IsPersonAccount"), def.slot("AccountId"))
    else {
        return Ok(());
    };
    if row.get(person_slot) == Some(&Val::Bool(true)) {
        return Ok(());
    }
    let Some(account) = row
        .get(account_slot)
        .and_then(Val::as_str)
        .and_then(|id| org.table("Account")?.get(id))
    else {
        return Ok(());
    };
    if org.get_field("Account", account, "IsPersonAccount") == Some(&Val::Bool(true)) {
        return Err(RecError::new(
            "INVALID_PERSON_ACCOUNT_OPERATION",
            "You can't associate a business contact with a person account.".to_string(),
            vec!["AccountId".into()],
        ));
    }
    Ok(())
}
