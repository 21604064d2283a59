//! SOQL string-literal escapes, as Salesforce defines them: `\'`, `\"`, `\\`,
//! `\n` `\r` `\t` `\b` `\f` (either case), `\uXXXX`, and inside LIKE only `\%`
//! and `\_`. A backslash before anything else is an error.

/// One element of a LIKE pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum PatTok {
    /// `%`: any run of characters.
    Any,
    /// `_`: exactly one character.
    One,
    Char(char),
}

/// Decodes a quoted literal's raw content into its value.
pub fn decode(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    decode_into(raw, false, &mut |c| match c {
        Piece::Char(c) | Piece::EscapedWildcard(c) => out.push(c),
        Piece::Wildcard(c) => out.push(c),
    })?;
    Ok(out)
}

/// Decodes a LIKE pattern's raw content into pattern tokens.
pub fn decode_like(raw: &str) -> Result<Vec<PatTok>, String> {
    let mut out = Vec::with_capacity(raw.len());
    decode_into(raw, true, &mut |p| {
        out.push(match p {
            Piece::Char(c) | Piece::EscapedWildcard(c) => PatTok::Char(c),
            Piece::Wildcard('%') => PatTok::Any,
            Piece::Wildcard(_) => PatTok::One,
        })
    })?;
    Ok(out)
}

enum Piece {
    Char(char),
    Wildcard(char),
    EscapedWildcard(char),
}

fn decode_into(raw: &str, like: bool, emit: &mut dyn FnMut(Piece)) -> Result<(), String> {
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if like && (c == '%' || c == '_') {
                emit(Piece::Wildcard(c));
            } else {
                emit(Piece::Char(c));
            }
            continue;
        }
        let e = chars
            .next()
            .ok_or_else(|| "Invalid string literal: trailing backslash".to_string())?;
        let decoded = match e {
            '\'' | '"' | '\\' => e,
            'n' | 'N' => '\n',
            'r' | 'R' => '\r',
            't' | 'T' => '\t',
            'b' | 'B' => '\u{8}',
            'f' | 'F' => '\u{c}',
            'u' | 'U' => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .ok_or_else(|| format!("Invalid unicode escape sequence: \\u{hex}"))?;
                char::from_u32(code).ok_or_else(|| format!("Invalid unicode escape sequence: \\u{hex}"))?
            }
            '%' | '_' if like => {
                emit(Piece::EscapedWildcard(e));
                continue;
            }
            other => return Err(format!("Invalid string literal '\\{other}'. Illegal character sequence '\\{other}' in string literal.")),
        };
        emit(Piece::Char(decoded));
    }
    Ok(())
}

/// Case-insensitive LIKE matching with `%` and `_`.
pub fn like_matches(pattern: &[PatTok], text: &str) -> bool {
    let text: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let pat: Vec<PatTok> = pattern
        .iter()
        .flat_map(|p| match p {
            PatTok::Char(c) => c.to_lowercase().map(PatTok::Char).collect::<Vec<_>>(),
            other => vec![other.clone()],
        })
        .collect();
    // Classic wildcard matching with a single backtrack point.
    let (mut t, mut p) = (0usize, 0usize);
    let (mut star_p, mut star_t) = (None, 0usize);
    while t < text.len() {
        match pat.get(p) {
            Some(PatTok::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(PatTok::One) => {
                t += 1;
                p += 1;
            }
            Some(PatTok::Any) => {
                star_p = Some(p);
                star_t = t;
                p += 1;
            }
            _ => match star_p {
                Some(sp) => {
                    p = sp + 1;
                    star_t += 1;
                    t = star_t;
                }
                None => return false,
            },
        }
    }
    while matches!(pat.get(p), Some(PatTok::Any)) {
        p += 1;
    }
    p == pat.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_documented_escape() {
        assert_eq!(decode(r"O\'Brien").unwrap(), "O'Brien");
        assert_eq!(decode(r"back\\slash").unwrap(), "back\\slash");
        assert_eq!(decode(r#"say \"hi\""#).unwrap(), "say \"hi\"");
        assert_eq!(
            decode(r"a\nb\Nc\rd\te\bf\fg").unwrap(),
            "a\nb\nc\rd\te\u{8}f\u{c}g"
        );
        assert_eq!(decode(r"\u00e9t\u00E9").unwrap(), "été");
    }

    #[test]
    fn rejects_illegal_escapes() {
        assert!(decode(r"\q").is_err());
        assert!(decode("trailing\\").is_err());
        assert!(decode(r"\u12").is_err());
        assert!(decode(r"100\%").is_err(), "\\% is only legal inside LIKE");
    }

    #[test]
    fn like_wildcards_and_escaped_wildcards() {
        let p = decode_like(r"100\%\_sure%").unwrap();
        assert!(like_matches(&p, "100%_sure thing"));
        assert!(!like_matches(&p, "100x_sure"));
        let p = decode_like("%@ACME.io").unwrap();
        assert!(like_matches(&p, "jane@acme.IO"));
        assert!(!like_matches(&p, "jane@acme.io.evil"));
        let p = decode_like("J_ne").unwrap();
        assert!(like_matches(&p, "jane"));
        assert!(!like_matches(&p, "jaane"));
        assert!(like_matches(&decode_like("%").unwrap(), ""));
        assert!(like_matches(&decode_like("%a%b%").unwrap(), "xxaxxbxx"));
    }
}
