//! Splits a SOQL string into tokens, remembering where each one starts.

use super::SoqlError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare word: keyword, object, field or relationship name.
    Word(String),
    /// A quoted string, raw (escapes not yet decoded: LIKE treats `\%` and `\_` specially).
    Str(String),
    Number(String),
    /// An unquoted date or date-time literal such as `2026-01-01T00:00:00Z`.
    DateTime(String),
    Comma,
    Dot,
    LParen,
    RParen,
    Op(&'static str),
    Colon,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: usize,
}

pub fn lex(soql: &str) -> Result<Vec<Token>, SoqlError> {
    let bytes = soql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b',' => {
                out.push(Token {
                    tok: Tok::Comma,
                    pos: i,
                });
                i += 1;
            }
            b'.' => {
                out.push(Token {
                    tok: Tok::Dot,
                    pos: i,
                });
                i += 1;
            }
            b'(' => {
                out.push(Token {
                    tok: Tok::LParen,
                    pos: i,
                });
                i += 1;
            }
            b')' => {
                out.push(Token {
                    tok: Tok::RParen,
                    pos: i,
                });
                i += 1;
            }
            b':' => {
                out.push(Token {
                    tok: Tok::Colon,
                    pos: i,
                });
                i += 1;
            }
            b'=' => {
                out.push(Token {
                    tok: Tok::Op("="),
                    pos: i,
                });
                i += 1;
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                out.push(Token {
                    tok: Tok::Op("!="),
                    pos: i,
                });
                i += 2;
            }
            b'<' => {
                let (op, n) = match bytes.get(i + 1) {
                    Some(b'=') => ("<=", 2),
                    Some(b'>') => ("!=", 2),
                    _ => ("<", 1),
                };
                out.push(Token {
                    tok: Tok::Op(op),
                    pos: i,
                });
                i += n;
            }
            b'>' => {
                let (op, n) = if bytes.get(i + 1) == Some(&b'=') {
                    (">=", 2)
                } else {
                    (">", 1)
                };
                out.push(Token {
                    tok: Tok::Op(op),
                    pos: i,
                });
                i += n;
            }
            b'\'' => {
                i += 1;
                let content_start = i;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(SoqlError::malformed(
                                soql,
                                start,
                                "line 1:0 no viable alternative at character '''",
                            ))
                        }
                        Some(b'\\') => i += 2,
                        Some(b'\'') => break,
                        Some(_) => i += 1,
                    }
                }
                let raw = soql
                    .get(content_start..i.min(soql.len()))
                    .unwrap_or_default()
                    .to_string();
                out.push(Token {
                    tok: Tok::Str(raw),
                    pos: start,
                });
                i += 1;
            }
            b'0'..=b'9' | b'-' | b'+'
                if c != b'-' && c != b'+' || bytes.get(i + 1).is_some_and(u8::is_ascii_digit) =>
            {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                // A date (YYYY-MM-DD) or date-time continues with '-' after four digits.
                if i - start == 4 && bytes.get(i) == Some(&b'-') {
                    while i < bytes.len()
                        && (bytes[i].is_ascii_alphanumeric()
                            || matches!(bytes[i], b'-' | b':' | b'.' | b'+'))
                    {
                        i += 1;
                    }
                    out.push(Token {
                        tok: Tok::DateTime(soql[start..i].to_string()),
                        pos: start,
                    });
                } else {
                    out.push(Token {
                        tok: Tok::Number(soql[start..i].to_string()),
                        pos: start,
                    });
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Word(soql[start..i].to_string()),
                    pos: start,
                });
            }
            _ => {
                let ch = soql[i..].chars().next().unwrap_or('?');
                return Err(SoqlError::malformed(
                    soql,
                    i,
                    &format!("line 1:{i} no viable alternative at character '{ch}'"),
                ));
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: soql.len(),
    });
    Ok(out)
}
