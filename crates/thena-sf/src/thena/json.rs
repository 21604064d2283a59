//! Reading Thena's JSON leniently: a field may be missing (leave alone),
//! null (clear) or set; several spellings of one field; errors that name
//! the JSON path. Shared by the request webhook and platform events.

use serde_json::{Map, Value};

use crate::domain::snapshot::Patch;
use crate::domain::time;

/// What was wrong with a payload, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PayloadError {
    pub path: String,
    pub message: String,
}

pub fn err(path: &str, message: impl Into<String>) -> PayloadError {
    PayloadError {
        path: path.to_string(),
        message: message.into(),
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub path: String,
}

impl<'a> Obj<'a> {
    pub fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// Which of a field's spellings to read: the first with a non-null
    /// value, else the first present (null), else the first.
    pub fn alias(&self, keys: &[&'static str]) -> &'static str {
        keys.iter()
            .find(|k| self.raw(k).is_some_and(|v| !v.is_null()))
            .or_else(|| keys.iter().find(|k| self.raw(k).is_some()))
            .copied()
            .unwrap_or(keys[0])
    }

    pub fn has(&self, keys: &[&'static str]) -> bool {
        keys.iter().any(|k| self.raw(k).is_some())
    }

    pub fn obj(&self, key: &str) -> Result<Patch<Obj<'a>>, PayloadError> {
        match self.raw(key) {
            None => Ok(Patch::Absent),
            Some(Value::Null) => Ok(Patch::Null),
            Some(Value::Object(m)) => Ok(Patch::Set(Obj {
                map: m,
                path: self.at(key),
            })),
            Some(other) => Err(err(
                &self.at(key),
                format!("expected an object, got {}", kind(other)),
            )),
        }
    }

    /// A text field: a string (or a number, as text); empty or null clears.
    pub fn text(&self, key: &str) -> Result<Patch<String>, PayloadError> {
        match self.raw(key) {
            None => Ok(Patch::Absent),
            Some(Value::Null) => Ok(Patch::Null),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Patch::Null),
            Some(Value::String(s)) => Ok(Patch::Set(s.clone())),
            Some(Value::Number(n)) => Ok(Patch::Set(n.to_string())),
            Some(other) => Err(err(
                &self.at(key),
                format!("expected a string, got {}", kind(other)),
            )),
        }
    }

    pub fn opt_text(&self, key: &str) -> Result<Option<String>, PayloadError> {
        Ok(self.text(key)?.set().cloned())
    }

    pub fn time(&self, key: &str) -> Result<Patch<time::Ts>, PayloadError> {
        match self.raw(key) {
            None => Ok(Patch::Absent),
            Some(Value::Null) => Ok(Patch::Null),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Patch::Null),
            Some(v) => time::parse(v)
                .map(Patch::Set)
                .map_err(|m| err(&self.at(key), m)),
        }
    }

    pub fn required_time(&self, key: &str) -> Result<time::Ts, PayloadError> {
        match self.time(key)? {
            Patch::Set(t) => Ok(t),
            _ => Err(err(&self.at(key), "is required")),
        }
    }

    pub fn array(&self, key: &str) -> Result<Patch<(&'a Vec<Value>, String)>, PayloadError> {
        match self.raw(key) {
            None => Ok(Patch::Absent),
            Some(Value::Null) => Ok(Patch::Null),
            Some(Value::Array(a)) => Ok(Patch::Set((a, self.at(key)))),
            Some(other) => Err(err(
                &self.at(key),
                format!("expected an array, got {}", kind(other)),
            )),
        }
    }
}
