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
    /// Installed by a managed package: saves are refused.
    #[serde(default)]
    pub managed: bool,
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
    /// Which layout a profile sees, per object: profile id → object (lower
    /// case) → layout full name. A profile with no entry for an object sees
    /// the object's default layout, `{Object}-{Object} Layout`.
    #[serde(default)]
    pub layout_assignments: BTreeMap<String, BTreeMap<String, String>>,
    pub object_meta: BTreeMap<String, CustomObjectMeta>,
    /// The standard Contact and Lead duplicate rules' action on create.
    #[serde(default)]
    pub duplicate_rules: crate::duplicates::Rules,
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
            layout_assignments: BTreeMap::new(),
            object_meta: BTreeMap::new(),
            duplicate_rules: Default::default(),
            perm_generation: 0,
            by_prefix: HashMap::new(),
        };
        for def in schema::standard_objects() {
            org.add_object(def);
        }
        let admin_profile_id = org.create_profile("System Administrator");
        let standard_profile_id = org.create_profile("Standard User");
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
            let body_xml = default_layout_body(object, &lists);
            org.layouts.insert(
                full_name.to_lowercase(),
                Layout {
                    full_name,
                    body_xml,
                    related_lists: lists.iter().map(|s| s.to_string()).collect(),
                    managed: false,
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

    /// A new profile with its own permission set (as every profile has); returns its id.
    pub fn create_profile(&mut self, name: &str) -> String {
        let id = self.insert_system("Profile", &[("Name", Val::text(name))]);
        let ps_name = format!("X{}", &id[..15]);
        self.insert_system(
            "PermissionSet",
            &[
                ("Name", Val::text(ps_name.as_str())),
                ("Label", Val::text(ps_name.as_str())),
                ("IsOwnedByProfile", Val::Bool(true)),
                ("ProfileId", Val::text(id.as_str())),
            ],
        );
        id
    }

    /// A profile's id by its name (case-insensitive).
    pub fn profile_by_name(&self, name: &str) -> Option<String> {
        let t = self.table("Profile")?;
        t.iter()
            .find(|r| {
                self.get_field("Profile", r, "Name")
                    .and_then(Val::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|r| r[0].as_str().map(str::to_string))
    }

    /// The full name of the layout users of `profile_id` see for `object`:
    /// its assignment, else the object's default layout (when it exists).
    pub fn assigned_layout(&self, profile_id: &str, object: &str) -> Option<String> {
        let object = object.to_ascii_lowercase();
        if let Some(l) = self
            .layout_assignments
            .get(&profile_id.to_ascii_lowercase())
            .and_then(|m| m.get(&object))
        {
            return Some(l.clone());
        }
        self.layouts
            .values()
            .find(|l| {
                l.full_name.split_once('-').is_some_and(|(o, n)| {
                    o.eq_ignore_ascii_case(&object)
                        && n.eq_ignore_ascii_case(&format!("{o} Layout"))
                })
            })
            .map(|l| l.full_name.clone())
    }

    /// The objects that have at least one layout, as their layouts name them.
    pub fn objects_with_layouts(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .layouts
            .values()
            .filter_map(|l| l.full_name.split_once('-').map(|(o, _)| o.to_string()))
            .collect();
        v.sort_by_key(|o| o.to_ascii_lowercase());
        v.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        v
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

/// A standard layout's body: one section with the Name field, then the related lists.
pub fn default_layout_body(object: &str, related_lists: &[&str]) -> String {
    let section = format!(
        "<layoutSections><customLabel>false</customLabel><detailHeading>false</detailHeading><editHeading>true</editHeading><label>{object} Information</label><layoutColumns><layoutItems><behavior>Required</behavior><field>Name</field></layoutItems></layoutColumns><style>TwoColumnsTopToBottom</style></layoutSections>"
    );
    let lists: String = related_lists
        .iter()
        .map(|l| format!("<relatedLists><relatedList>{l}</relatedList></relatedLists>"))
        .collect();
    format!("{section}{lists}")
}
