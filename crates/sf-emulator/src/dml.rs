//! Writes to records: create, update, upsert by external id and delete, with
//! Salesforce's validation rules and error codes. Shared by the single-record
//! REST calls and sObject Collections.

use serde_json::{Map, Value};

use crate::org::Org;
use crate::schema::{DeleteConstraint, FieldDef, FieldType, ObjectDef};
use crate::security::FieldAccess;
use crate::table::Row;
use crate::value::Val;

/// One per-record error, as Salesforce reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecError {
    pub status_code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
    /// For `DUPLICATES_DETECTED`: the rule and the records it matched.
    pub duplicates: Option<crate::duplicates::Matched>,
}

impl RecError {
    pub fn new(
        status_code: &'static str,
        message: impl Into<String>,
        fields: Vec<String>,
    ) -> RecError {
        RecError {
            status_code,
            message: message.into(),
            fields,
            duplicates: None,
        }
    }
}

/// Who is writing: their id and what field-level security lets them touch.
pub struct Caller<'a> {
    pub user_id: &'a str,
    pub access: &'a FieldAccess,
    /// `Sforce-Duplicate-Rule-Header: allowSave=true` was sent.
    pub allow_save: bool,
}

/// The outcome of an upsert by external id.
#[derive(Debug, Clone, PartialEq)]
pub enum Upserted {
    Created(String),
    Updated(String),
    /// The external id matched several records (HTTP 300).
    Multiple(Vec<String>),
}

/// The current time in Salesforce's REST format.
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// Normalises a date-time given on input to Salesforce's output format.
pub fn parse_datetime(s: &str) -> Option<String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()?;
    Some(
        parsed
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string(),
    )
}

/// Recomputes derived fields: the Name of Contacts and Users.
pub fn derive_name(def: &ObjectDef, row: &mut Row) {
    if !(def.name == "Contact" || def.name == "User" || def.name == "Lead") {
        return;
    }
    let (Some(first), Some(last), Some(name)) = (
        def.slot("FirstName"),
        def.slot("LastName"),
        def.slot("Name"),
    ) else {
        return;
    };
    let parts: Vec<&str> = [&row[first], &row[last]]
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    row[name] = if parts.is_empty() {
        Val::Null
    } else {
        Val::text(parts.join(" "))
    };
}

/// Whether the caller can see a field at all (custom fields need FLS read).
pub fn visible(object: &str, f: &FieldDef, access: &FieldAccess) -> bool {
    !f.fls || access.can_read(object, &f.name)
}

fn no_such_column(object: &str, field: &str) -> RecError {
    RecError::new(
        "INVALID_FIELD",
        format!("No such column '{field}' on sobject of type {object}"),
        vec![],
    )
}

/// Converts one JSON value to a field value, checking its type and length.
fn convert(org: &Org, def: &ObjectDef, f: &FieldDef, v: &Value) -> Result<Val, RecError> {
    let label = &f.label;
    let text = match v {
        Value::Null => return Ok(if f.ftype == FieldType::Boolean { Val::Bool(false) } else { Val::Null }),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) if f.ftype == FieldType::Boolean => return Ok(Val::Bool(*b)),
        _ => {
            return Err(RecError::new(
                "JSON_PARSER_ERROR",
                format!("Cannot deserialize instance of {} from {} value {v} or request may be missing a required field", type_word(f), json_kind(v)),
                vec![f.name.clone()],
            ))
        }
    };
    match &f.ftype {
        FieldType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Val::Bool(true)),
            "false" => Ok(Val::Bool(false)),
            _ => Err(RecError::new(
                "JSON_PARSER_ERROR",
                format!("Cannot deserialize instance of boolean from VALUE_STRING value {text} or request may be missing a required field"),
                vec![f.name.clone()],
            )),
        },
        FieldType::Number => text.trim().parse::<f64>().map(Val::Num).map_err(|_| {
            RecError::new(
                "JSON_PARSER_ERROR",
                format!("Cannot deserialize instance of double from VALUE_STRING value {text} or request may be missing a required field"),
                vec![f.name.clone()],
            )
        }),
        _ if text.is_empty() => Ok(Val::Null),
        FieldType::DateTime => parse_datetime(&text).map(Val::text).ok_or_else(|| {
            RecError::new("INVALID_TYPE_ON_FIELD_IN_RECORD", format!("{label}: value not of required type: {text}"), vec![f.name.clone()])
        }),
        FieldType::Date => chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").map(|_| Val::text(text.as_str())).map_err(|_| {
            RecError::new("INVALID_TYPE_ON_FIELD_IN_RECORD", format!("{label}: value not of required type: {text}"), vec![f.name.clone()])
        }),
        FieldType::Reference { to, .. } => {
            let Some(id15) = crate::ids::canonical15(&text) else {
                return Err(RecError::new("MALFORMED_ID", format!("{label}: id value of incorrect type: {text}"), vec![f.name.clone()]));
            };
            let id18 = crate::ids::to_18(&id15);
            let target = org.object_of_id(&id18);
            if !target.is_some_and(|t| t.eq_ignore_ascii_case(to)) {
                return Err(RecError::new(
                    "FIELD_INTEGRITY_EXCEPTION",
                    format!("{label}: id value of incorrect type: {text}"),
                    vec![f.name.clone()],
                ));
            }
            if !org.table(to).is_some_and(|t| t.contains(&id18)) {
                return Err(RecError::new("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", vec![f.name.clone()]));
            }
            Ok(Val::text(id18))
        }
        FieldType::Picklist { values, restricted } => {
            if *restricted && !values.iter().any(|x| x == &text) {
                return Err(RecError::new(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    format!("{label}: bad value for restricted picklist field: {text}"),
                    vec![f.name.clone()],
                ));
            }
            check_length(f, &text)?;
            Ok(Val::text(text))
        }
        FieldType::Email if !valid_email(&text) => Err(RecError::new(
            "INVALID_EMAIL_ADDRESS",
            format!("{label}: invalid email address: {text}"),
            vec![f.name.clone()],
        )),
        _ => {
            let _ = def;
            check_length(f, &text)?;
            Ok(Val::text(text))
        }
    }
}

/// Salesforce's check of an email address, approximated (the exact rules
/// are unverified, salesforce-api.md §9.6: `fig@pig` is refused, `fig@pig.c`
/// taken): one `@` after something, a dotted domain of non-empty labels, no
/// spaces.
pub fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !e.chars().any(char::is_whitespace)
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty())
}

fn type_word(f: &FieldDef) -> &'static str {
    match f.ftype {
        FieldType::Boolean => "boolean",
        FieldType::Number => "double",
        _ => "String",
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
        Value::Bool(true) => "VALUE_TRUE",
        Value::Bool(false) => "VALUE_FALSE",
        _ => "VALUE",
    }
}

/// Lengths are counted in UTF-16 code units, the stricter reading of
/// Salesforce's documentation (salesforce-api.md §9.6): an emoji is two.
fn check_length(f: &FieldDef, text: &str) -> Result<(), RecError> {
    if let Some(max) = f.max_length() {
        if text.encode_utf16().count() > max as usize {
            let shown: String = text.chars().take(300).collect();
            return Err(RecError::new(
                "STRING_TOO_LONG",
                format!(
                    "{}: data value too large: {shown} (max length={max})",
                    f.label
                ),
                vec![f.name.clone()],
            ));
        }
    }
    Ok(())
}

/// Composite unique keys that Salesforce enforces on setup objects.
fn unique_keys(object: &str) -> &'static [&'static [&'static str]] {
    match object {
        "FieldPermissions" => &[&["ParentId", "Field"]],
        "ObjectPermissions" => &[&["ParentId", "SobjectType"]],
        "PermissionSetAssignment" => &[&["AssigneeId", "PermissionSetId"]],
        "PermissionSet" | "Profile" => &[&["Name"]],
        "User" => &[&["Username"]],
        _ => &[],
    }
}

fn is_permission_object(object: &str) -> bool {
    matches!(
        object,
        "FieldPermissions"
            | "ObjectPermissions"
            | "PermissionSetAssignment"
            | "PermissionSet"
            | "Profile"
            | "User"
    )
}

/// Applies a JSON body to a row (new or existing), checking fields and values.
fn apply(
    org: &Org,
    def: &ObjectDef,
    row: &mut Row,
    body: &Map<String, Value>,
    caller: &Caller,
    creating: bool,
    skip_field: Option<&str>,
) -> Result<(), RecError> {
    let mut not_writable = Vec::new();
    for (name, v) in body {
        if name == "attributes" {
            continue;
        }
        let Some(slot) = def.slot(name) else {
            return Err(no_such_column(&def.name, name));
        };
        let f = &def.fields[slot];
        if !visible(&def.name, f, caller.access) {
            return Err(no_such_column(&def.name, name));
        }
        if skip_field.is_some_and(|s| s.eq_ignore_ascii_case(name)) {
            continue;
        }
        if f.system
            || matches!(f.ftype, FieldType::AutoNumber { .. })
            || (f.fls && !caller.access.can_edit(&def.name, &f.name))
        {
            if f.name == "Id" && !creating {
                continue;
            }
            not_writable.push(f.name.clone());
            continue;
        }
        row[slot] = convert(org, def, f, v)?;
    }
    if !not_writable.is_empty() {
        return Err(RecError::new(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                not_writable.join(", ")
            ),
            not_writable,
        ));
    }
    Ok(())
}

/// Checks required fields, composite keys and unique fields of a finished row.
fn check_row(org: &Org, def: &ObjectDef, row: &Row) -> Result<(), RecError> {
    let missing: Vec<String> = def
        .fields
        .iter()
        .enumerate()
        .filter(|(i, f)| f.required && !f.system && row[*i].is_null())
        .map(|(_, f)| f.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(RecError::new(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
            missing,
        ));
    }
    let table = org.table(&def.name).expect("table of def");
    let id = row[0].as_str().unwrap_or_default();
    for (slot, f) in def.fields.iter().enumerate() {
        if !f.unique || row[slot].is_null() {
            continue;
        }
        if let Some(other) = table.lookup(slot, &row[slot]).and_then(|rows| {
            rows.into_iter()
                .find(|r| r[0].as_str() != Some(id) && (!f.case_sensitive || r[slot] == row[slot]))
        }) {
            return Err(RecError::new(
                "DUPLICATE_VALUE",
                format!(
                    "duplicate value found: {} duplicates value on record with id: {}",
                    f.name,
                    other[0].as_str().unwrap_or("")
                ),
                vec![],
            ));
        }
    }
    for key in unique_keys(&def.name) {
        let slots: Vec<usize> = key.iter().filter_map(|k| def.slot(k)).collect();
        let dup = table.iter().find(|r| {
            r[0].as_str() != Some(id)
                && slots.iter().all(|s| {
                    let (a, b) = (&r[*s], &row[*s]);
                    match (a.as_str(), b.as_str()) {
                        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                        _ => a == b,
                    }
                })
        });
        if let Some(other) = dup {
            return Err(RecError::new(
                "DUPLICATE_VALUE",
                format!(
                    "duplicate value found: {} duplicates value on record with id: {}",
                    key.join(", "),
                    other[0].as_str().unwrap_or("")
                ),
                vec![],
            ));
        }
    }
    if def.name == "FieldPermissions" {
        check_field_permission(org, def, row)?;
    }
    Ok(())
}

fn check_field_permission(org: &Org, def: &ObjectDef, row: &Row) -> Result<(), RecError> {
    let get = |n: &str| def.slot(n).map(|s| row[s].clone()).unwrap_or_default();
    let (Val::Text(object), Val::Text(field)) = (get("SobjectType"), get("Field")) else {
        return Ok(());
    };
    let exists = field
        .split_once('.')
        .filter(|(o, _)| o.eq_ignore_ascii_case(&object))
        .and_then(|(o, f)| org.table(o).and_then(|t| t.def.field(f)))
        .is_some();
    if !exists {
        return Err(RecError::new(
            "INVALID_FIELD",
            format!("Invalid field: {field}"),
            vec!["Field".into()],
        ));
    }
    if get("PermissionsEdit") == Val::Bool(true) && get("PermissionsRead") != Val::Bool(true) {
        return Err(RecError::new(
            "FIELD_INTEGRITY_EXCEPTION",
            "Permission Edit depends on permission(s): Read",
            vec!["PermissionsEdit".into()],
        ));
    }
    Ok(())
}

fn stamp(def: &ObjectDef, row: &mut Row, user: &str, creating: bool) {
    let now = now();
    let mut set = |name: &str, v: Val| {
        if let Some(s) = def.slot(name) {
            row[s] = v;
        }
    };
    if creating {
        set("CreatedDate", Val::text(now.as_str()));
        set("CreatedById", Val::text(user));
        set("OwnerId", Val::text(user));
        set("IsDeleted", Val::Bool(false));
    }
    set("LastModifiedDate", Val::text(now.as_str()));
    set("SystemModstamp", Val::text(now.as_str()));
    set("LastModifiedById", Val::text(user));
}

impl Org {
    /// Creates a record. `skip_field` names a field to leave out of the body
    /// (not used for plain creates).
    pub fn create(
        &mut self,
        object: &str,
        body: &Map<String, Value>,
        caller: &Caller,
    ) -> Result<String, RecError> {
        let def = self
            .table(object)
            .map(|t| t.def.clone())
            .ok_or_else(|| invalid_type(object))?;
        let mut row = vec![Val::Null; def.fields.len()];
        for (slot, f) in def.fields.iter().enumerate() {
            if f.ftype == FieldType::Boolean {
                row[slot] = Val::Bool(false);
            }
        }
        if def.name == "User" {
            if let Some(s) = def.slot("IsActive") {
                row[s] = Val::Bool(true);
            }
        }
        apply(self, &def, &mut row, body, caller, true, None)?;
        self.finish_create(&def, row, caller)
    }

    fn finish_create(
        &mut self,
        def: &ObjectDef,
        mut row: Row,
        caller: &Caller,
    ) -> Result<String, RecError> {
        derive_name(def, &mut row);
        let table = self.table_mut(&def.name).expect("table");
        let id = table.new_id();
        row[0] = Val::text(id.as_str());
        if let (Some(slot), Some(FieldType::AutoNumber { display_format })) =
            (def.slot("Name"), def.field("Name").map(|f| f.ftype.clone()))
        {
            table.auto_number += 1;
            row[slot] = Val::text(format_auto_number(&display_format, table.auto_number));
        }
        stamp(def, &mut row, caller.user_id, true);
        check_row(self, def, &row)?;
        crate::person::check(self, def, &row)?;
        crate::duplicates::check(self, def, &row, caller.allow_save)?;
        self.table_mut(&def.name).expect("table").put(row);
        if is_permission_object(&def.name) {
            self.perm_generation += 1;
        }
        Ok(id)
    }

    /// Updates a record by id.
    pub fn update(
        &mut self,
        object: &str,
        id: &str,
        body: &Map<String, Value>,
        caller: &Caller,
    ) -> Result<(), RecError> {
        let def = self
            .table(object)
            .map(|t| t.def.clone())
            .ok_or_else(|| invalid_type(object))?;
        let mut row = self
            .table(object)
            .and_then(|t| t.get(id))
            .cloned()
            .ok_or_else(|| RecError::new("ENTITY_IS_DELETED", "entity is deleted", vec![]))?;
        row.resize(def.fields.len(), Val::Null);
        apply(self, &def, &mut row, body, caller, false, None)?;
        self.finish_update(&def, row, caller)
    }

    fn finish_update(
        &mut self,
        def: &ObjectDef,
        mut row: Row,
        caller: &Caller,
    ) -> Result<(), RecError> {
        derive_name(def, &mut row);
        stamp(def, &mut row, caller.user_id, false);
        check_row(self, def, &row)?;
        crate::person::check(self, def, &row)?;
        self.table_mut(&def.name).expect("table").put(row);
        if is_permission_object(&def.name) {
            self.perm_generation += 1;
        }
        Ok(())
    }

    /// Upserts by an external-id field. The body may carry the external id
    /// field itself only when `ext_in_body` (collections); single upserts
    /// reject it, as Salesforce does.
    pub fn upsert(
        &mut self,
        object: &str,
        ext_field: &str,
        ext_value: &str,
        body: &Map<String, Value>,
        caller: &Caller,
        update_only: bool,
    ) -> Result<Upserted, RecError> {
        let def = self
            .table(object)
            .map(|t| t.def.clone())
            .ok_or_else(|| invalid_type(object))?;
        let slot = def
            .slot(ext_field)
            .filter(|s| visible(&def.name, &def.fields[*s], caller.access))
            .ok_or_else(|| {
                RecError::new("NOT_FOUND", "The requested resource does not exist", vec![])
            })?;
        let f = &def.fields[slot];
        if !(f.external_id || f.name == "Id") {
            return Err(RecError::new(
                "INVALID_FIELD",
                format!("Field {} is not an External ID or Id field. Please use an External ID or Id field.", f.name),
                vec![],
            ));
        }
        let key = Val::text(ext_value);
        let table = self.table(object).expect("table");
        let matches: Vec<Row> = match table.lookup(slot, &key) {
            Some(rows) => rows
                .into_iter()
                .filter(|r| !f.case_sensitive || r[slot] == key)
                .cloned()
                .collect(),
            None => table
                .iter()
                .filter(|r| {
                    r[slot]
                        .as_str()
                        .is_some_and(|v| v.eq_ignore_ascii_case(ext_value))
                })
                .cloned()
                .collect(),
        };
        match matches.len() {
            0 if update_only => Err(RecError::new(
                "NOT_FOUND",
                "The requested resource does not exist",
                vec![],
            )),
            0 => {
                let mut row = vec![Val::Null; def.fields.len()];
                for (i, fd) in def.fields.iter().enumerate() {
                    if fd.ftype == FieldType::Boolean {
                        row[i] = Val::Bool(false);
                    }
                }
                apply(self, &def, &mut row, body, caller, true, Some(&f.name))?;
                if f.name != "Id" {
                    row[slot] = convert(self, &def, f, &Value::String(ext_value.to_string()))?;
                }
                self.finish_create(&def, row, caller).map(Upserted::Created)
            }
            1 => {
                let mut row = matches.into_iter().next().expect("one");
                row.resize(def.fields.len(), Val::Null);
                let id = row[0].as_str().unwrap_or_default().to_string();
                apply(self, &def, &mut row, body, caller, false, Some(&f.name))?;
                self.finish_update(&def, row, caller)
                    .map(|_| Upserted::Updated(id))
            }
            _ => Ok(Upserted::Multiple(
                matches
                    .iter()
                    .filter_map(|r| r[0].as_str().map(str::to_string))
                    .collect(),
            )),
        }
    }

    /// Deletes a record, applying each child lookup's delete constraint.
    pub fn delete(&mut self, object: &str, id: &str) -> Result<(), RecError> {
        let name = self
            .table(object)
            .map(|t| t.def.name.clone())
            .ok_or_else(|| invalid_type(object))?;
        if !self.table(&name).is_some_and(|t| t.contains(id)) {
            return Err(RecError::new(
                "ENTITY_IS_DELETED",
                "entity is deleted",
                vec![],
            ));
        }
        let id18 = crate::ids::canonical15(id)
            .map(|i| crate::ids::to_18(&i))
            .unwrap_or_default();
        // Children pointing at this record, by (object, slot, constraint).
        let mut children: Vec<(String, usize, DeleteConstraint)> = Vec::new();
        for t in self.tables() {
            for (slot, f) in t.def.fields.iter().enumerate() {
                if let FieldType::Reference {
                    to,
                    delete_constraint,
                } = &f.ftype
                {
                    if to.eq_ignore_ascii_case(&name) && !f.system {
                        children.push((t.def.name.clone(), slot, *delete_constraint));
                    }
                }
            }
        }
        let key = Val::text(id18.as_str());
        for (child, slot, constraint) in &children {
            let rows: Vec<Row> = self
                .table(child)
                .and_then(|t| t.lookup(*slot, &key))
                .map(|rs| rs.into_iter().cloned().collect())
                .unwrap_or_default();
            if rows.is_empty() {
                continue;
            }
            match constraint {
                DeleteConstraint::Restrict => {
                    return Err(RecError::new(
                        "DELETE_FAILED",
                        format!("Your attempt to delete {id18} could not be completed because it is associated with the following {child} records"),
                        vec![],
                    ))
                }
                DeleteConstraint::SetNull => {
                    let t = self.table_mut(child).expect("child table");
                    for mut r in rows {
                        r[*slot] = Val::Null;
                        t.put(r);
                    }
                }
                DeleteConstraint::Cascade => {
                    for r in rows {
                        if let Some(cid) = r[0].as_str() {
                            let _ = self.delete(child, cid);
                        }
                    }
                }
            }
        }
        self.table_mut(&name).expect("table").remove(id);
        if is_permission_object(&name) {
            self.perm_generation += 1;
        }
        Ok(())
    }

    /// A record as JSON with the fields the caller can see, as `GET /sobjects/Obj/Id` returns it.
    pub fn record_json(
        &self,
        object: &str,
        row: &Row,
        access: &FieldAccess,
        version: &str,
        only: Option<&[String]>,
    ) -> Value {
        let t = self.table(object).expect("table");
        let mut m = Map::new();
        let id = row[0].as_str().unwrap_or_default();
        m.insert("attributes".into(), attributes(&t.def.name, id, version));
        for (slot, f) in t.def.fields.iter().enumerate() {
            if !visible(&t.def.name, f, access) {
                continue;
            }
            if let Some(only) = only {
                if !only.iter().any(|o| o.eq_ignore_ascii_case(&f.name)) {
                    continue;
                }
            }
            m.insert(
                f.name.clone(),
                row.get(slot).map(Val::to_json).unwrap_or(Value::Null),
            );
        }
        Value::Object(m)
    }
}

pub fn attributes(object: &str, id: &str, version: &str) -> Value {
    serde_json::json!({"type": object, "url": format!("/services/data/v{version}/sobjects/{object}/{id}")})
}

pub fn invalid_type(object: &str) -> RecError {
    RecError::new(
        "NOT_FOUND",
        format!("The requested resource does not exist: sObject type '{object}' is not supported."),
        vec![],
    )
}

/// Formats an auto-number such as `REQ-{000000}` with the given number.
pub fn format_auto_number(format: &str, n: u64) -> String {
    match (format.find('{'), format.find('}')) {
        (Some(a), Some(b)) if b > a => {
            let width = format[a + 1..b].chars().filter(|c| *c == '0').count();
            format!(
                "{}{:0width$}{}",
                &format[..a],
                n,
                &format[b + 1..],
                width = width
            )
        }
        _ => format!("{format}{n}"),
    }
}
