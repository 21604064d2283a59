//! Describe: global (`/sobjects`), basic (`/sobjects/Obj`) and full
//! (`/sobjects/Obj/describe`). Fields the caller cannot read are left out,
//! as Salesforce does.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::Req;
use crate::dml::visible;
use crate::http::{not_found, sf_json};
use crate::org::Org;
use crate::schema::{FieldDef, FieldType, ObjectDef};
use crate::security::FieldAccess;

fn urls(version: &str, name: &str) -> Value {
    let b = format!("/services/data/v{version}/sobjects/{name}");
    json!({"sobject": b, "describe": format!("{b}/describe"), "rowTemplate": format!("{b}/{{ID}}")})
}

fn is_setup(def: &ObjectDef) -> bool {
    matches!(
        def.name.as_str(),
        "Profile"
            | "PermissionSet"
            | "PermissionSetAssignment"
            | "ObjectPermissions"
            | "FieldPermissions"
            | "User"
    )
}

fn summary(def: &ObjectDef, version: &str) -> Value {
    let writable = def.name != "Profile";
    json!({
        "activateable": false, "createable": writable, "custom": def.custom, "customSetting": false,
        "deepCloneable": false, "deletable": writable, "deprecatedAndHidden": false, "feedEnabled": false,
        "hasSubtypes": false, "isInterface": false, "isSubtype": false, "keyPrefix": def.key_prefix,
        "label": def.label, "labelPlural": def.label_plural, "layoutable": !is_setup(def), "mergeable": false,
        "mruEnabled": !is_setup(def), "name": def.name, "queryable": true, "replicateable": true,
        "retrieveable": true, "searchable": !is_setup(def), "triggerable": !is_setup(def), "undeletable": !is_setup(def),
        "updateable": writable, "urls": urls(version, &def.name),
    })
}

pub fn global(req: &Req) -> Response {
    let org = req.em.org.read();
    let sobjects: Vec<Value> = org
        .tables()
        .map(|t| summary(&t.def, &req.version))
        .collect();
    sf_json(
        StatusCode::OK,
        &json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}),
    )
}

pub fn basic(req: &Req, obj: &str) -> Response {
    let org = req.em.org.read();
    let Some(t) = org.table(obj) else {
        return not_found();
    };
    sf_json(
        StatusCode::OK,
        &json!({"objectDescribe": summary(&t.def, &req.version), "recentItems": []}),
    )
}

/// The REST type name, SOAP type and extra facts of a field.
fn type_facts(f: &FieldDef) -> (&'static str, &'static str) {
    match &f.ftype {
        FieldType::Id => ("id", "tns:ID"),
        FieldType::Text { .. } | FieldType::AutoNumber { .. } => ("string", "xsd:string"),
        FieldType::LongText { .. } => ("textarea", "xsd:string"),
        FieldType::Url => ("url", "xsd:string"),
        FieldType::Email => ("email", "xsd:string"),
        FieldType::Phone => ("phone", "xsd:string"),
        FieldType::Picklist { .. } => ("picklist", "xsd:string"),
        FieldType::Reference { .. } => ("reference", "tns:ID"),
        FieldType::Boolean => ("boolean", "xsd:boolean"),
        FieldType::DateTime => ("datetime", "xsd:dateTime"),
        FieldType::Date => ("date", "xsd:date"),
        FieldType::Number => ("double", "xsd:double"),
    }
}

pub fn field_json(object: &str, f: &FieldDef, access: &FieldAccess) -> Value {
    let (ty, soap) = type_facts(f);
    let length = match &f.ftype {
        FieldType::Id | FieldType::Reference { .. } => 18,
        FieldType::AutoNumber { .. } => 30,
        _ => f.max_length().unwrap_or(0),
    };
    let editable = !f.system
        && !matches!(f.ftype, FieldType::AutoNumber { .. })
        && (!f.fls || access.can_edit(object, &f.name));
    let is_name = f.name == "Name";
    let long = matches!(f.ftype, FieldType::LongText { .. });
    let mut v = json!({
        "aggregatable": !long, "aiPredictionField": false, "autoNumber": matches!(f.ftype, FieldType::AutoNumber { .. }),
        "byteLength": length * 3, "calculated": false, "calculatedFormula": null, "cascadeDelete": false,
        "caseSensitive": f.case_sensitive, "compoundFieldName": null, "controllerName": null,
        "createable": editable, "custom": f.custom, "defaultValue": if f.ftype == FieldType::Boolean { json!(false) } else { Value::Null },
        "defaultValueFormula": null, "defaultedOnCreate": f.system || f.ftype == FieldType::Boolean,
        "dependentPicklist": false, "deprecatedAndHidden": false, "digits": 0, "displayLocationInDecimal": false,
        "encrypted": false, "externalId": f.external_id, "extraTypeInfo": null, "filterable": !long, "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false, "groupable": !long && f.ftype != FieldType::Number, "highScaleNumber": false,
        "htmlFormatted": false, "idLookup": f.name == "Id" || f.external_id || f.ftype == FieldType::Email || (is_name && !f.custom),
        "inlineHelpText": null, "label": f.label, "length": length, "mask": null, "maskType": null,
        "name": f.name, "nameField": is_name, "namePointing": false, "nillable": !f.required && f.ftype != FieldType::Boolean && !f.system,
        "permissionable": f.custom && !f.required, "picklistValues": [], "polymorphicForeignKey": false, "precision": 0,
        "queryByDistance": false, "referenceTargetField": null, "referenceTo": [], "relationshipName": f.relationship_name,
        "relationshipOrder": null, "restrictedDelete": false, "restrictedPicklist": false, "scale": 0,
        "searchPrefilterable": false, "soapType": soap, "sortable": !long, "type": ty, "unique": f.unique,
        "updateable": editable, "writeRequiresMasterRead": false,
    });
    match &f.ftype {
        FieldType::LongText { html, .. } => {
            v["extraTypeInfo"] = json!(if *html {
                "richtextarea"
            } else {
                "plaintextarea"
            });
            v["htmlFormatted"] = json!(html);
        }
        FieldType::Picklist { values, restricted } => {
            v["restrictedPicklist"] = json!(restricted);
            v["picklistValues"] = values
                .iter()
                .enumerate()
                .map(|(i, p)| json!({"active": true, "defaultValue": i == 0 && *restricted, "label": p, "validFor": null, "value": p}))
                .collect();
        }
        FieldType::Reference {
            to,
            delete_constraint,
        } => {
            v["referenceTo"] = json!([to]);
            v["restrictedDelete"] =
                json!(*delete_constraint == crate::schema::DeleteConstraint::Restrict);
            v["cascadeDelete"] =
                json!(*delete_constraint == crate::schema::DeleteConstraint::Cascade);
        }
        FieldType::Number => {
            v["precision"] = json!(18);
            v["scale"] = json!(2);
        }
        _ => {}
    }
    v
}

fn child_relationships(org: &Org, parent: &str, access: &FieldAccess) -> Vec<Value> {
    let mut out = Vec::new();
    for t in org.tables() {
        for f in &t.def.fields {
            let FieldType::Reference {
                to,
                delete_constraint,
            } = &f.ftype
            else {
                continue;
            };
            if !to.eq_ignore_ascii_case(parent) || !visible(&t.def.name, f, access) {
                continue;
            }
            out.push(json!({
                "cascadeDelete": *delete_constraint == crate::schema::DeleteConstraint::Cascade,
                "childSObject": t.def.name, "deprecatedAndHidden": false, "field": f.name,
                "junctionIdListNames": [], "junctionReferenceTo": [], "relationshipName": f.child_relationship_name,
                "restrictedDelete": *delete_constraint == crate::schema::DeleteConstraint::Restrict,
            }));
        }
    }
    out
}

pub fn object(req: &Req, obj: &str) -> Response {
    let org = req.em.org.read();
    let Some(t) = org.table(obj) else {
        return not_found();
    };
    let access = req.em.access_for(&org, &req.user);
    let def = &t.def;
    let mut v = summary(def, &req.version);
    let fields: Vec<Value> = def
        .fields
        .iter()
        .filter(|f| visible(&def.name, f, &access))
        .map(|f| field_json(&def.name, f, &access))
        .collect();
    v["fields"] = Value::Array(fields);
    v["childRelationships"] = Value::Array(child_relationships(&org, &def.name, &access));
    v["recordTypeInfos"] = json!([]);
    v["supportedScopes"] = json!([{"label": "All", "name": "everything"}]);
    v["actionOverrides"] = json!([]);
    v["namedLayoutInfos"] = json!([]);
    v["networkScopeFieldName"] = Value::Null;
    v["listviewable"] = Value::Null;
    v["lookupLayoutable"] = Value::Null;
    v["searchLayoutable"] = json!(true);
    v["compactLayoutable"] = json!(true);
    v["sobjectDescribeOption"] = json!("FULL");
    sf_json(StatusCode::OK, &v)
}
