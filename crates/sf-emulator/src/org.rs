//! The org: its tables, schema, layouts, and the records every new org starts with.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::schema::{self, ObjectDef};
use crate::table::{Row, Table};
use crate::value::Val;

/// A page layout as the Metadata API sees it: kept as its XML body so that a
/// read returns what an update wrote, plus the related lists parsed out of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Layout {
    pub full_name: String,
    /// The inner XML of the `<metadata>` element, without `fullName`.
    pub body_xml: String,
    pub related_lists: Vec<String>,
}

/// Extra facts about a custom object that only the Metadata API reads back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CustomObjectMeta {
    pub description: Option<String>,
    pub sharing_model: String,
    pub deployment_status: String,
    pub name_field_label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Org {
    pub org_id: String,
    tables: BTreeMap<String, Table>,
    next_custom_prefix: u32,
    pub layouts: BTreeMap<String, Layout>,
    pub object_meta: BTreeMap<String, CustomObjectMeta>,
    /// Bumped whenever permissions change, so cached field access is recomputed.
    #[serde(skip)]
    pub perm_generation: u64,
    #[serde(skip)]
    by_prefix: HashMap<String, String>,
}

/// Ids of the records a new org is created with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bootstrap {
    pub admin_profile_id: String,
    pub standard_profile_id: String,
}

pub const ORG_ID: &str = "00DEm0000000001EAA";

impl Org {
    /// A new org with the standard objects, the System Administrator and
    /// Standard User profiles (each with its own permission set) and the
    /// standard Account and Contact layouts.
    pub fn new() -> (Org, Bootstrap) {
        let mut org = Org {
            org_id: ORG_ID.to_string(),
            tables: BTreeMap::new(),
            next_custom_prefix: 0,
            layouts: BTreeMap::new(),
            object_meta: BTreeMap::new(),
            perm_generation: 0,
            by_prefix: HashMap::new(),
        };
        for def in schema::standard_objects() {
            org.add_object(def);
        }
        let admin_profile_id =
            org.insert_system("Profile", &[("Name", Val::text("System Administrator"))]);
        let standard_profile_id =
            org.insert_system("Profile", &[("Name", Val::text("Standard User"))]);
        for (pid, name) in [
            (&admin_profile_id, "X00eEm000000001_128_09_04_12_1"),
            (&standard_profile_id, "X00eEm000000002_128_09_04_12_2"),
        ] {
            org.insert_system(
                "PermissionSet",
                &[
                    ("Name", Val::text(name)),
                    ("Label", Val::text(name)),
                    ("IsOwnedByProfile", Val::Bool(true)),
                    ("ProfileId", Val::text(pid.as_str())),
                ],
            );
        }
        for (object, lists) in [
            (
                "Account",
                vec![
                    "RelatedContactList",
                    "RelatedOpportunityList",
                    "RelatedActivityList",
                ],
            ),
            ("Contact", vec!["RelatedActivityList", "RelatedHistoryList"]),
        ] {
            let full_name = format!("{object}-{object} Layout");
            let body_xml = lists
                .iter()
                .map(|l| format!("<relatedLists><relatedList>{l}</relatedList></relatedLists>"))
                .collect::<String>();
            org.layouts.insert(
                full_name.to_lowercase(),
                Layout {
                    full_name,
                    body_xml,
                    related_lists: lists.iter().map(|s| s.to_string()).collect(),
                },
            );
        }
        (
            org,
            Bootstrap {
                admin_profile_id,
                standard_profile_id,
            },
        )
    }

    /// Rebuilds derived lookups after loading saved state.
    pub fn after_load(&mut self) {
        self.by_prefix.clear();
        let prefixes: Vec<(String, String)> = self
            .tables
            .iter()
            .map(|(k, t)| (t.def.key_prefix.clone(), k.clone()))
            .collect();
        self.by_prefix.extend(prefixes);
        for t in self.tables.values_mut() {
            t.rebuild_indexes();
        }
    }

    pub fn add_object(&mut self, def: ObjectDef) {
        self.by_prefix
            .insert(def.key_prefix.clone(), def.name.to_ascii_lowercase());
        self.tables
            .insert(def.name.to_ascii_lowercase(), Table::new(def));
    }

    pub fn remove_object(&mut self, name: &str) -> Option<Table> {
        let t = self.tables.remove(&name.to_ascii_lowercase())?;
        self.by_prefix.remove(&t.def.key_prefix);
        Some(t)
    }

    /// A key prefix for a new custom object: a00, a01, ... a0Z, a10, ...
    pub fn next_custom_prefix(&mut self) -> String {
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        loop {
            let n = self.next_custom_prefix as usize;
            self.next_custom_prefix += 1;
            let p = format!(
                "a{}{}",
                DIGITS[(n / 36) % 36] as char,
                DIGITS[n % 36] as char
            );
            if !self.by_prefix.contains_key(&p) {
                return p;
            }
        }
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(&name.to_ascii_lowercase())
    }

    pub fn table_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.get_mut(&name.to_ascii_lowercase())
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// The object an id belongs to, by its key prefix.
    pub fn object_of_id(&self, id: &str) -> Option<&str> {
        let lower = self.by_prefix.get(crate::ids::key_prefix(id))?;
        self.tables.get(lower).map(|t| t.def.name.as_str())
    }

    /// A field's value in a row of `object`, by case-insensitive name.
    pub fn get_field<'r>(&self, object: &str, row: &'r Row, field: &str) -> Option<&'r Val> {
        let slot = self.table(object)?.def.slot(field)?;
        Some(row.get(slot).unwrap_or(&Val::Null))
    }

    /// Inserts a record without validation or permission checks (bootstrap and seeds).
    pub fn insert_system(&mut self, object: &str, values: &[(&str, Val)]) -> String {
        let now = crate::dml::now();
        let t = self.table_mut(object).expect("known object");
        let id = t.new_id();
        let mut row = vec![Val::Null; t.def.fields.len()];
        row[0] = Val::text(id.as_str());
        for (name, v) in values {
            let slot = t
                .def
                .slot(name)
                .unwrap_or_else(|| panic!("{object}.{name} exists"));
            row[slot] = v.clone();
        }
        for f in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
            if let Some(s) = t.def.slot(f) {
                row[s] = Val::text(now.as_str());
            }
        }
        if let Some(s) = t.def.slot("IsDeleted") {
            row[s] = Val::Bool(false);
        }
        crate::dml::derive_name(&t.def, &mut row);
        t.put(row);
        self.perm_generation += 1;
        id
    }

    /// Removes every record and custom object, keeping the bootstrap records.
    pub fn reset() -> (Org, Bootstrap) {
        Org::new()
    }
}
