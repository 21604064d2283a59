//! SOQL string literals and LIKE patterns, escaped as Salesforce defines them,
//! and a small builder for the queries the connector runs.

/// A value quoted as a SOQL string literal: `O'Brien` → `'O\'Brien'`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    escape_into(value, &mut out);
    out.push('\'');
    out
}

/// A LIKE pattern matching `value` literally, with `%`/`_` escaped; wrap it
/// with wildcards by passing `prefix`/`suffix` (`"%"` for "ends with").
pub fn like(prefix: &str, value: &str, suffix: &str) -> String {
    let mut inner = String::new();
    escape_into(value, &mut inner);
    let inner = inner.replace('%', "\\%").replace('_', "\\_");
    format!("'{prefix}{inner}{suffix}'")
}

fn escape_into(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
}

/// A SOSL phrase: `"value"` with every character SOSL reserves escaped by
/// a backslash, even inside the quotes (salesforce-api.md §9.5, [doc] SOSL ›
/// FIND {SearchQuery}).
pub fn sosl_phrase(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if "?&|!{}[]()^~*:\\\"'+-".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `Field IN ('a','b')` for a list of values (None for an empty list, which SOQL refuses).
pub fn in_list(field: &str, values: impl IntoIterator<Item = impl AsRef<str>>) -> Option<String> {
    let quoted: Vec<String> = values.into_iter().map(|v| quote(v.as_ref())).collect();
    (!quoted.is_empty()).then(|| format!("{field} IN ({})", quoted.join(", ")))
}

/// Whether `name` can be used as an object or field name in SOQL (letters, digits, underscores, dots).
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(quote("O'Brien"), r"'O\'Brien'");
        assert_eq!(quote(r"back\slash"), r"'back\\slash'");
        assert_eq!(quote("two\nlines"), r"'two\nlines'");
        assert_eq!(quote("日本"), "'日本'");
        assert_eq!(like("%@", "acme_co.io", ""), r"'%@acme\_co.io'");
        assert_eq!(like("", "100%", "%"), r"'100\%%'");
        assert_eq!(
            in_list("Email", ["a@b.c", "d'e@f.g"]).unwrap(),
            r"Email IN ('a@b.c', 'd\'e@f.g')"
        );
        assert_eq!(in_list("Email", Vec::<String>::new()), None);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("Account.Name"));
        assert!(is_identifier("Request__c"));
        assert!(!is_identifier("Name'; DELETE"));
        assert!(!is_identifier(""));
    }
}
