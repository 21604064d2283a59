//! Typed views of Salesforce answers: API usage, per-record results, describe.

use serde_json::Value;

use crate::error::{classify_code, Action, Error, Result};
use crate::json;

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
    /// One item of a record's `errors` (`statusCode`, `message`, `fields`).
    pub(crate) fn parse(e: &Value) -> RecordError {
        RecordError {
            status_code: json::text_or(e, "statusCode", "UNKNOWN"),
            message: json::text_or(e, "message", ""),
            fields: json::strings(e, "fields"),
        }
    }

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
                id: json::text(r, "id").map(str::to_string),
                success: json::flag(r, "success"),
                created: r.get("created").and_then(Value::as_bool),
                errors: json::list(r, "errors")
                    .iter()
                    .map(RecordError::parse)
                    .collect(),
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
        let name = json::text(v, "name")
            .ok_or_else(|| Error::Protocol("describe without name".into()))?
            .to_string();
        let fields = json::list(v, "fields")
            .iter()
            .map(|f| FieldInfo {
                name: json::text_or(f, "name", ""),
                field_type: json::text_or(f, "type", ""),
                length: f.get("length").and_then(Value::as_u64).unwrap_or(0) as u32,
                external_id: json::flag(f, "externalId"),
                unique: json::flag(f, "unique"),
                createable: json::flag(f, "createable"),
                updateable: json::flag(f, "updateable"),
                html_formatted: json::flag(f, "htmlFormatted"),
                reference_to: json::strings(f, "referenceTo"),
            })
            .collect();
        let child_relationships = json::list(v, "childRelationships")
            .iter()
            .map(|c| {
                (
                    json::text_or(c, "childSObject", ""),
                    json::text_or(c, "field", ""),
                    json::text(c, "relationshipName").map(str::to_string),
                )
            })
            .collect();
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
