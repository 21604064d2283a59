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

    /// Each element of the array at `key` through `f` (given the element
    /// and its JSON path), keeping what `f` keeps; absent and null as sent.
    pub fn each<T>(
        &self,
        key: &str,
        mut f: impl FnMut(&'a Value, String) -> Result<Option<T>, PayloadError>,
    ) -> Result<Patch<Vec<T>>, PayloadError> {
        Ok(match self.array(key)? {
            Patch::Set((items, path)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.extend(f(item, format!("{path}[{i}]"))?);
                }
                Patch::Set(out)
            }
            Patch::Null => Patch::Null,
            Patch::Absent => Patch::Absent,
        })
    }

    /// `value`, found at `path`, as an object.
    pub fn of(value: &'a Value, path: String) -> Result<Obj<'a>, PayloadError> {
        match value {
            Value::Object(map) => Ok(Obj { map, path }),
            other => Err(err(
                &path,
                format!("expected an object, got {}", kind(other)),
            )),
        }
    }
}

/// Keys whose numeric values are identifiers: kept as the digits sent.
const ID_KEYS: [&str; 5] = ["requestId", "request_id", "id", "ticketId", "eventId"];

/// Parses a body as JSON. A number given where an identifier goes
/// (`"requestId": 123456789012345678901234`) is read as its text, so it
/// keeps its exact digits: JSON numbers past 64 bits would otherwise
/// become floating point and lose them.
pub fn from_slice(body: &[u8]) -> Result<Value, PayloadError> {
    let quoted = quote_numeric_ids(body);
    serde_json::from_slice(&quoted).map_err(|e| err("$", format!("not valid JSON: {e}")))
}

/// Wraps in quotes the numeric value of every [`ID_KEYS`] key (outside
/// strings); anything that is not well-formed is left for the parser.
fn quote_numeric_ids(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < body.len() {
        if body[i] != b'"' {
            i += 1;
            continue;
        }
        // A string: find its end (escapes skip one byte).
        let start = i + 1;
        let mut j = start;
        while j < body.len() && body[j] != b'"' {
            j += if body[j] == b'\\' { 2 } else { 1 };
        }
        let key = body.get(start..j.min(body.len())).unwrap_or_default();
        i = j + 1;
        let mut k = i;
        while k < body.len() && body[k].is_ascii_whitespace() {
            k += 1;
        }
        if body.get(k) != Some(&b':') || !ID_KEYS.iter().any(|id| id.as_bytes() == key) {
            continue;
        }
        k += 1;
        while k < body.len() && body[k].is_ascii_whitespace() {
            k += 1;
        }
        let num_start = k;
        while k < body.len() && (body[k].is_ascii_digit() || b"-+.eE".contains(&body[k])) {
            k += 1;
        }
        if k > num_start && (body[num_start] == b'-' || body[num_start].is_ascii_digit()) {
            let o = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 16));
            o.extend_from_slice(&body[copied..num_start]);
            o.push(b'"');
            o.extend_from_slice(&body[num_start..k]);
            o.push(b'"');
            copied = k;
        }
        i = k;
    }
    match out {
        Some(mut o) => {
            o.extend_from_slice(&body[copied..]);
            std::borrow::Cow::Owned(o)
        }
        None => std::borrow::Cow::Borrowed(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_keep_their_exact_digits() {
        let v = from_slice(br#"{"request": {"requestId" : 123456789012345678901234, "n": 1.5, "s": "\"requestId\": 7"}, "id": -12}"#).unwrap();
        assert_eq!(v["request"]["requestId"], "123456789012345678901234");
        assert_eq!(v["request"]["n"], 1.5, "other numbers stay numbers");
        assert_eq!(
            v["request"]["s"], "\"requestId\": 7",
            "text inside strings is untouched"
        );
        assert_eq!(v["id"], "-12");
        assert!(from_slice(br#"{"requestId": 12"#).is_err());
    }
}
