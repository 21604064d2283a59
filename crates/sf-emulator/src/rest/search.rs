//! `GET /search?q=FIND {...} IN EMAIL FIELDS RETURNING Contact(Id, AccountId, Email WHERE ... LIMIT n)`:
//! SOSL as salesforce-api.md §9.5 describes it. Text is tokenized at spaces
//! and punctuation, and a quoted phrase matches where its tokens appear
//! together (so `"acme.io"` finds `x@acme.io`, and also `x@acme.io.example`:
//! callers post-filter). Reserved characters must be escaped with `\`.
//! At most 2,000 results; answered as `{"searchRecords": [...]}`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::Req;
use crate::http::{sf_error, sf_json};
use crate::schema::FieldType;
use crate::soql;

/// The most records one search answers (API 28.0+).
const MAX_RESULTS: usize = 2_000;

/// Characters that must be escaped inside `FIND {...}` (§9.5).
const RESERVED: &str = "?&|!{}[]()^~*:\\\"'+-";

fn malformed(message: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, "MALFORMED_SEARCH", message, &[])
}

/// Lower-case tokens of a text: split at anything not a letter or digit.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// One term: its tokens, and whether the last is a prefix (`acme*`).
#[derive(Debug, Clone, PartialEq)]
struct Term {
    tokens: Vec<String>,
    prefix: bool,
}

impl Term {
    fn matches(&self, field: &[String]) -> bool {
        let n = self.tokens.len();
        if n == 0 || field.len() < n {
            return false;
        }
        field.windows(n).any(|w| {
            w.iter().zip(&self.tokens).enumerate().all(|(i, (f, t))| {
                if self.prefix && i == n - 1 {
                    f.starts_with(t.as_str())
                } else {
                    f == t
                }
            })
        })
    }
}

/// The search text: terms joined by OR (any) or AND / spaces (all), as a
/// list of alternatives each needing all its terms.
fn search_expr(text: &str) -> Result<Vec<Vec<Term>>, String> {
    let mut alternatives = vec![Vec::new()];
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut raw = String::new();
        let quoted = c == '"';
        if quoted {
            chars.next();
        }
        let mut prefix = false;
        loop {
            match chars.next() {
                None if quoted => return Err("unterminated phrase: missing '\"'".into()),
                None => break,
                Some('\\') => match chars.next() {
                    Some(e) => raw.push(e),
                    None => return Err("a '\\' ends the search text".into()),
                },
                Some('"') if quoted => break,
                Some(w) if !quoted && w.is_whitespace() => break,
                Some('*') if chars.peek().is_none_or(|n| n.is_whitespace() || *n == '"') => {
                    if raw.is_empty() {
                        return Err("a wildcard may not start a term".into());
                    }
                    prefix = true;
                }
                Some(r) if RESERVED.contains(r) => {
                    return Err(format!("mismatched character '{r}' expecting '}}'"))
                }
                Some(other) => raw.push(other),
            }
        }
        if !quoted && raw.eq_ignore_ascii_case("or") {
            alternatives.push(Vec::new());
            continue;
        }
        if !quoted && raw.eq_ignore_ascii_case("and") {
            continue;
        }
        let term = Term {
            tokens: tokens(&raw),
            prefix,
        };
        alternatives.last_mut().expect("one").push(term);
    }
    alternatives.retain(|a| !a.is_empty());
    if alternatives.is_empty() {
        return Err("search term must be longer than one character".into());
    }
    Ok(alternatives)
}

/// `FIND {text} [IN scope FIELDS] RETURNING specs`: the text inside the
/// braces (an escaped `}` does not end it), the scope, the returning part.
fn split(q: &str) -> Result<(String, String, String), String> {
    let rest = q.trim_start();
    if !rest
        .get(..4)
        .is_some_and(|f| f.eq_ignore_ascii_case("find"))
    {
        return Err("a search must start with FIND".into());
    }
    let rest = rest[4..].trim_start();
    let Some(body) = rest.strip_prefix('{') else {
        return Err("FIND must be followed by {search text}".into());
    };
    let mut end = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '}' => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or("missing '}' after the search text")?;
    let text = body[..end].to_string();
    let after = body[end + 1..].trim_start();
    let upper = after.to_ascii_uppercase();
    let (scope, returning) = if upper.starts_with("IN ") {
        let fields = upper.find(" FIELDS").ok_or("IN must name ... FIELDS")?;
        let scope = upper[3..fields].trim().to_string();
        (scope, after[fields + 7..].trim_start().to_string())
    } else {
        ("ALL".to_string(), after.to_string())
    };
    let returning = match returning.get(..9) {
        Some(r) if r.eq_ignore_ascii_case("returning") => returning[9..].trim().to_string(),
        _ => return Err("RETURNING is required here".into()),
    };
    Ok((text, scope, returning))
}

/// `Contact(Id, Email WHERE ... LIMIT 5), Lead(Id)`: each object and the
/// inside of its parentheses.
fn specs(returning: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = returning.trim();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c == '(' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_string();
        rest = rest[name_end..].trim_start();
        let mut inner = "Id".to_string();
        if let Some(r) = rest.strip_prefix('(') {
            let close = r.find(')').ok_or("missing ')' in RETURNING")?;
            inner = r[..close].to_string();
            rest = r[close + 1..].trim_start();
        }
        out.push((name, inner));
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    if out.is_empty() {
        return Err("RETURNING names no object".into());
    }
    Ok(out)
}

/// The SOQL that the inside of `Obj(...)` means, restricted to `ids`.
fn soql_for(object: &str, inner: &str, ids: &[String]) -> String {
    let upper = inner.to_ascii_uppercase();
    let cut = |kw: &str| upper.find(kw);
    let where_at = cut(" WHERE ");
    let limit_at = cut(" LIMIT ");
    let fields_end = where_at.or(limit_at).unwrap_or(inner.len());
    let fields = inner[..fields_end].trim();
    let condition = where_at.map(|w| inner[w + 7..limit_at.unwrap_or(inner.len())].trim());
    let limit = limit_at.map(|l| inner[l + 7..].trim());
    let list: Vec<String> = ids.iter().map(|i| format!("'{i}'")).collect();
    let mut q = format!(
        "SELECT {fields} FROM {object} WHERE Id IN ({})",
        list.join(",")
    );
    if let Some(c) = condition {
        q.push_str(&format!(" AND ({c})"));
    }
    if let Some(l) = limit {
        q.push_str(&format!(" LIMIT {l}"));
    }
    q
}

pub fn run(req: &Req) -> Response {
    let Some(q) = req.query.get("q") else {
        return malformed("A search string has to be specified (q)");
    };
    let (text, scope, returning) = match split(q) {
        Ok(p) => p,
        Err(e) => return malformed(&e),
    };
    let expr = match search_expr(&text) {
        Ok(e) => e,
        Err(e) => return malformed(&e),
    };
    let specs = match specs(&returning) {
        Ok(s) => s,
        Err(e) => return malformed(&e),
    };
    let org = req.em.org.read();
    let access = req.em.access_for(&org, &req.user);
    let mut records: Vec<Value> = Vec::new();
    for (object, inner) in specs {
        let Some(table) = org.table(&object) else {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                &format!("sObject type '{object}' is not supported."),
                &[],
            );
        };
        let slots: Vec<usize> = table
            .def
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| match scope.as_str() {
                "EMAIL" => f.ftype == FieldType::Email,
                "NAME" => f.name.ends_with("Name") || f.name == "Name",
                "PHONE" => f.ftype == FieldType::Phone,
                _ => matches!(
                    f.ftype,
                    FieldType::Text { .. }
                        | FieldType::Email
                        | FieldType::Phone
                        | FieldType::LongText { .. }
                ),
            })
            .map(|(i, _)| i)
            .collect();
        let ids: Vec<String> = table
            .iter()
            .filter(|row| {
                let field_tokens: Vec<Vec<String>> = slots
                    .iter()
                    .filter_map(|s| row.get(*s).and_then(|v| v.as_str()).map(tokens))
                    .collect();
                expr.iter().any(|all| {
                    all.iter()
                        .all(|t| field_tokens.iter().any(|f| t.matches(f)))
                })
            })
            .take(MAX_RESULTS - records.len().min(MAX_RESULTS))
            .filter_map(|row| row[0].as_str().map(str::to_string))
            .collect();
        if ids.is_empty() {
            continue;
        }
        let soql = soql_for(&table.def.name, &inner, &ids);
        let parsed = match soql::parse(&soql) {
            Ok(p) => p,
            Err(e) => return sf_error(StatusCode::BAD_REQUEST, e.code, &e.message, &[]),
        };
        match soql::eval::execute(&org, &parsed, &soql, &access, &req.version) {
            Ok(out) => records.extend(out.records),
            Err(e) => return sf_error(StatusCode::BAD_REQUEST, e.code, &e.message, &[]),
        }
    }
    records.truncate(MAX_RESULTS);
    sf_json(StatusCode::OK, &json!({"searchRecords": records}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_match_tokens_in_order_and_reserved_characters_need_escapes() {
        let e = search_expr(r#""acme.io" OR "globex.com""#).unwrap();
        assert_eq!(e.len(), 2);
        assert!(e[0][0].matches(&tokens("harsh@acme.io")));
        assert!(
            e[0][0].matches(&tokens("x@acme.io.example")),
            "callers post-filter this"
        );
        assert!(!e[0][0].matches(&tokens("x@notacme.io")));
        assert!(search_expr("acme-io").is_err(), "an unescaped '-'");
        assert!(search_expr(r"acme\-io").is_ok());
        assert!(search_expr("*acme").is_err());
        assert!(search_expr("acm*").unwrap()[0][0].matches(&tokens("x@acme.io")));
    }

    #[test]
    fn the_parts_of_a_search() {
        let (text, scope, ret) =
            split(r#"FIND {"a.io" OR b\}c} IN EMAIL FIELDS RETURNING Contact(Id, Email WHERE AccountId != null LIMIT 5)"#).unwrap();
        assert_eq!(
            (text.as_str(), scope.as_str()),
            (r#""a.io" OR b\}c"#, "EMAIL")
        );
        let s = specs(&ret).unwrap();
        assert_eq!(s[0].0, "Contact");
        let q = soql_for("Contact", &s[0].1, &["003A".into()]);
        assert_eq!(
            q,
            "SELECT Id, Email FROM Contact WHERE Id IN ('003A') AND (AccountId != null) LIMIT 5"
        );
    }
}
