//! Typed views of Salesforce answers: API usage, per-record results, describe.

use serde_json::Value;

use crate::error::{classify_code, Action, Error, Result};

/// `Sforce-Limit-Info: api-usage=USED/MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    pub fn parse(header: &str) -> Option<ApiUsage> {
        let part = header
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("api-usage="))?;
        let (used, max) = part.split_once('/')?;
        Some(ApiUsage {
            used: used.trim().parse().ok()?,
            max: max.trim().parse().ok()?,
        })
    }

    /// The share of the daily limit used, 0.0 to 1.0.
    pub fn share(&self) -> f64 {
        if self.max == 0 {
            1.0
        } else {
            self.used as f64 / self.max as f64
        }
    }
}

/// One record's error in a collections answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    /// `CODE: message; CODE: message`, as the errors read in one line.
    pub fn summary(errors: &[RecordError]) -> String {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.status_code, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn action(&self) -> Action {
        classify_code(400, &self.status_code, &self.message)
    }
}

/// One record's result in a collections answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordResult {
    pub id: Option<String>,
    pub success: bool,
    pub created: Option<bool>,
    pub errors: Vec<RecordError>,
}

impl RecordResult {
    pub fn parse_list(v: &Value, expected: usize) -> Result<Vec<RecordResult>> {
        let items = v
            .as_array()
            .ok_or_else(|| Error::Protocol("collections answer is not an array".into()))?;
        if items.len() != expected {
            return Err(Error::Protocol(format!(
                "collections answer has {} results for {expected} records",
                items.len()
            )));
        }
        Ok(items
            .iter()
            .map(|r| RecordResult {
                id: r.get("id").and_then(Value::as_str).map(str::to_string),
                success: r.get("success").and_then(Value::as_bool).unwrap_or(false),
                created: r.get("created").and_then(Value::as_bool),
                errors: r
                    .get("errors")
                    .and_then(Value::as_array)
                    .map(|es| {
                        es.iter()
                            .map(|e| RecordError {
                                status_code: e
                                    .get("statusCode")
                                    .and_then(Value::as_str)
                                    .unwrap_or("UNKNOWN")
                                    .to_string(),
                                message: e
                                    .get("message")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                                fields: e
                                    .get("fields")
                                    .and_then(Value::as_array)
                                    .map(|f| {
                                        f.iter()
                                            .filter_map(|x| x.as_str().map(str::to_string))
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// The action for a failed record: the most hopeful of its errors.
    pub fn action(&self) -> Option<Action> {
        if self.success {
            return None;
        }
        let actions: Vec<Action> = self.errors.iter().map(RecordError::action).collect();
        for a in [Action::RefreshAuth, Action::Retry, Action::FixSchema] {
            if actions.contains(&a) {
                return Some(a);
            }
        }
        Some(Action::GiveUp)
    }
}

/// What describe says about one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    pub name: String,
    /// REST type name: string, textarea, url, picklist, reference, ...
    pub field_type: String,
    pub length: u32,
    pub external_id: bool,
    pub unique: bool,
    pub createable: bool,
    pub updateable: bool,
    pub html_formatted: bool,
    pub reference_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    pub name: String,
    pub fields: Vec<FieldInfo>,
    /// (child object, field, relationship name)
    pub child_relationships: Vec<(String, String, Option<String>)>,
}

impl Describe {
    pub fn from_json(v: &Value) -> Result<Describe> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Protocol("describe without name".into()))?
            .to_string();
        let b = |f: &Value, k: &str| f.get(k).and_then(Value::as_bool).unwrap_or(false);
        let fields = v
            .get("fields")
            .and_then(Value::as_array)
            .map(|fs| {
                fs.iter()
                    .map(|f| FieldInfo {
                        name: f
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        field_type: f
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        length: f.get("length").and_then(Value::as_u64).unwrap_or(0) as u32,
                        external_id: b(f, "externalId"),
                        unique: b(f, "unique"),
                        createable: b(f, "createable"),
                        updateable: b(f, "updateable"),
                        html_formatted: b(f, "htmlFormatted"),
                        reference_to: f
                            .get("referenceTo")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let child_relationships = v
            .get("childRelationships")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            c.get("childSObject")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            c.get("field")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            c.get("relationshipName")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Describe {
            name,
            fields,
            child_relationships,
        })
    }

    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limit_info_variants() {
        assert_eq!(
            ApiUsage::parse("api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                max: 5000
            })
        );
        assert_eq!(
            ApiUsage::parse("api-usage=10018/100000; api-bursts=1/750")
                .unwrap()
                .used,
            10018
        );
        assert_eq!(
            ApiUsage::parse("per-app-api-usage=17/250(appName=x); api-usage=25/5000")
                .unwrap()
                .max,
            5000
        );
        assert_eq!(ApiUsage::parse("garbage"), None);
    }
}
