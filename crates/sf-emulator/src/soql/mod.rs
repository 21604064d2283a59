//! SOQL: lexing, parsing into an AST, string-literal escapes, and evaluation
//! against the org's tables.

pub mod aggregate;
pub mod ast;
pub mod eval;
pub mod lexer;
pub mod literal;
pub mod parser;
#[cfg(test)]
mod tests;

pub use ast::Query;
pub use parser::parse;

/// A SOQL error in Salesforce's shape: the error code and a message that, for
/// positional errors, repeats the query with a caret under the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

impl SoqlError {
    /// A positional error: `pos` is the byte offset in `soql` of the bad token.
    pub fn at(code: &'static str, soql: &str, pos: usize, detail: &str) -> SoqlError {
        let line_start = soql[..pos.min(soql.len())].rfind('\n').map_or(0, |i| i + 1);
        let row = soql[..line_start].matches('\n').count() + 1;
        let line_end = soql[line_start..]
            .find('\n')
            .map_or(soql.len(), |i| line_start + i);
        let col = soql[line_start..pos.min(soql.len())].chars().count() + 1;
        let caret = format!("{}^", " ".repeat(col - 1));
        SoqlError {
            code,
            message: format!(
                "\n{}\n{caret}\nERROR at Row:{row}:Column:{col}\n{detail}",
                &soql[line_start..line_end]
            ),
        }
    }

    pub fn malformed(soql: &str, pos: usize, detail: &str) -> SoqlError {
        SoqlError::at("MALFORMED_QUERY", soql, pos, detail)
    }
}
