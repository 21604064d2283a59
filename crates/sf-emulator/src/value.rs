//! The value of one field of one record, kept compact because an org may hold
//! millions of records.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum Val {
    #[default]
    Null,
    Bool(bool),
    Num(f64),
    Text(Box<str>),
}

impl Val {
    pub fn text(s: impl Into<Box<str>>) -> Val {
        Val::Text(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Val::Null => serde_json::Value::Null,
            Val::Bool(b) => serde_json::Value::Bool(*b),
            Val::Num(n) => serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Val::Text(s) => serde_json::Value::String(s.to_string()),
        }
    }
}
