//! One object's records, in creation order, with case-insensitive equality
//! indexes on the fields that Salesforce indexes (Id, Name, Email, lookups,
//! external ids and unique fields).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::ids::{self, IdCounter};
use crate::schema::ObjectDef;
use crate::value::Val;

pub type Row = Vec<Val>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub def: ObjectDef,
    /// Keyed by the canonical 15-character id; generated ids sort in creation order.
    rows: BTreeMap<Box<str>, Row>,
    counter: IdCounter,
    /// Next number for an auto-number Name field.
    pub auto_number: u64,
    #[serde(skip)]
    /// Field slot -> lower-case value -> ids.
    indexes: HashMap<usize, HashMap<Box<str>, Ids>>,
}

/// The ids under one index key: most keys (an email, an external id) have
/// one, so that case costs no set.
#[derive(Debug, Clone)]
enum Ids {
    One(Box<str>),
    /// Ordered, so lookups keep creation order.
    Many(BTreeSet<Box<str>>),
}

impl Ids {
    fn insert(&mut self, id: &str) {
        match self {
            Ids::One(existing) if &**existing == id => {}
            Ids::One(existing) => {
                let set = BTreeSet::from([std::mem::take(existing), id.into()]);
                *self = Ids::Many(set);
            }
            Ids::Many(set) => {
                set.insert(id.into());
            }
        }
    }

    /// Removes an id; returns whether none are left.
    fn remove(&mut self, id: &str) -> bool {
        match self {
            Ids::One(existing) => &**existing == id,
            Ids::Many(set) => {
                set.remove(id);
                set.is_empty()
            }
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = &Box<str>> + '_> {
        match self {
            Ids::One(id) => Box::new(std::iter::once(id)),
            Ids::Many(set) => Box::new(set.iter()),
        }
    }
}

fn index_key(v: &Val) -> Option<Box<str>> {
    match v {
        Val::Text(s) => Some(s.to_lowercase().into()),
        Val::Num(n) => Some(n.to_string().into()),
        Val::Bool(b) => Some(b.to_string().into()),
        Val::Null => None,
    }
}

impl Table {
    pub fn new(def: ObjectDef) -> Table {
        let mut t = Table {
            def,
            rows: BTreeMap::new(),
            counter: IdCounter::default(),
            auto_number: 0,
            indexes: HashMap::new(),
        };
        t.rebuild_indexes();
        t
    }

    /// Rebuilds every index (after loading state or changing which fields are indexed).
    pub fn rebuild_indexes(&mut self) {
        self.def.reindex();
        self.indexes = self
            .def
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.indexed() && f.name != "Id")
            .map(|(i, _)| (i, HashMap::new()))
            .collect();
        let entries: Vec<(Box<str>, Row)> = self
            .rows
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, row) in entries {
            self.index_row(&id, &row);
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn new_id(&mut self) -> String {
        ids::to_18(&self.counter.next15(&self.def.key_prefix))
    }

    /// Looks a record up by a 15- or 18-character id.
    pub fn get(&self, id: &str) -> Option<&Row> {
        let key = ids::canonical15(id)?;
        self.rows.get(key.as_str())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Row> {
        self.rows.values()
    }

    fn index_row(&mut self, id15: &str, row: &Row) {
        for (slot, idx) in self.indexes.iter_mut() {
            if let Some(k) = row.get(*slot).and_then(index_key) {
                match idx.get_mut(&k) {
                    Some(ids) => ids.insert(id15),
                    None => {
                        idx.insert(k, Ids::One(id15.into()));
                    }
                }
            }
        }
    }

    fn unindex_row(&mut self, id15: &str, row: &Row) {
        for (slot, idx) in self.indexes.iter_mut() {
            if let Some(k) = row.get(*slot).and_then(index_key) {
                if idx.get_mut(&k).is_some_and(|ids| ids.remove(id15)) {
                    idx.remove(&k);
                }
            }
        }
    }

    /// Inserts or replaces a record (slot 0 holds its 18-character Id).
    pub fn put(&mut self, row: Row) {
        let id = row[0].as_str().expect("rows carry their Id").to_string();
        let key = ids::canonical15(&id).expect("generated ids are valid");
        if let Some(old) = self.rows.remove(key.as_str()) {
            self.unindex_row(&key, &old);
        }
        self.index_row(&key, &row);
        self.rows.insert(key.into(), row);
    }

    pub fn remove(&mut self, id: &str) -> Option<Row> {
        let key = ids::canonical15(id)?;
        let row = self.rows.remove(key.as_str())?;
        self.unindex_row(&key, &row);
        Some(row)
    }

    pub fn is_indexed(&self, slot: usize) -> bool {
        slot == 0 || self.indexes.contains_key(&slot)
    }

    /// Rows whose field at `slot` equals `value` case-insensitively, from the index.
    /// Returns `None` when the field has no index.
    pub fn lookup(&self, slot: usize, value: &Val) -> Option<Vec<&Row>> {
        if slot == 0 {
            return Some(
                value
                    .as_str()
                    .and_then(|id| self.get(id))
                    .into_iter()
                    .collect(),
            );
        }
        let idx = self.indexes.get(&slot)?;
        let Some(key) = index_key(value) else {
            return Some(Vec::new());
        };
        Some(
            idx.get(&key)
                .map(|ids| ids.iter().filter_map(|id| self.rows.get(id)).collect())
                .unwrap_or_default(),
        )
    }

    /// Makes room for a field added to the definition: every record gets the
    /// new slot (null, or false for a checkbox), so rows always match the schema.
    pub fn field_added(&mut self) {
        let defaults: Vec<Val> = self
            .def
            .fields
            .iter()
            .map(|f| {
                if f.ftype == crate::schema::FieldType::Boolean {
                    Val::Bool(false)
                } else {
                    Val::Null
                }
            })
            .collect();
        for row in self.rows.values_mut() {
            while row.len() < defaults.len() {
                row.push(defaults[row.len()].clone());
            }
        }
        self.rebuild_indexes();
    }

    /// Removes a field from the definition and its values from every record.
    pub fn remove_field(&mut self, name: &str) {
        let Some(slot) = self.def.slot(name) else {
            return;
        };
        self.def.fields.remove(slot);
        for row in self.rows.values_mut() {
            if slot < row.len() {
                row.remove(slot);
            }
        }
        self.rebuild_indexes();
    }

    pub fn clear(&mut self) {
        self.rows.clear();
        self.rebuild_indexes();
    }
}
