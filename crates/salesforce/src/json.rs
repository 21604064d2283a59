//! Reading Salesforce's JSON answers leniently: a field that is missing or of
//! another type reads as absent, so an answer with more or fewer fields than
//! we know never fails to parse (the caller decides what must be there).

use serde_json::Value;

/// `key` of `v` as text.
pub(crate) fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `key` of `v` as an owned string, or `absent`.
pub(crate) fn text_or(v: &Value, key: &str, absent: &str) -> String {
    text(v, key).unwrap_or(absent).to_string()
}

/// `key` of `v` as a list (empty when it is not one).
pub(crate) fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The strings in the list `key` of `v` (other items are passed over).
pub(crate) fn strings(v: &Value, key: &str) -> Vec<String> {
    list(v, key)
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// `key` of `v` as a flag (false when absent).
pub(crate) fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}
