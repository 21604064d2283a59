//! A recursive-descent parser for the SOQL subset the emulator answers:
//! `SELECT fields|COUNT()|agg(field) [alias] FROM obj [WHERE cond]
//! [GROUP BY fields [HAVING agg op n]] [ORDER BY field|agg(field) ...] [LIMIT n] [OFFSET n]`.

use super::ast::*;
use super::lexer::{lex, Tok, Token};
use super::SoqlError;

pub fn parse(soql: &str) -> Result<Query, SoqlError> {
    let tokens = lex(soql)?;
    let mut p = Parser { soql, tokens, i: 0 };
    let q = p.query()?;
    p.expect_eof()?;
    Ok(q)
}

struct Parser<'a> {
    soql: &'a str,
    tokens: Vec<Token>,
    i: usize,
}

const RESERVED: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "order", "by", "limit", "offset", "in", "like",
    "asc", "desc", "nulls", "first", "last", "null", "true", "false", "group", "having",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token {
        &self.tokens[self.i]
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.i].clone();
        if self.i < self.tokens.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn unexpected(&self) -> SoqlError {
        let t = self.peek();
        let shown = match &t.tok {
            Tok::Eof => "<EOF>".to_string(),
            Tok::Str(s) => format!("'{s}'"),
            _ => self.soql[t.pos..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string(),
        };
        SoqlError::malformed(self.soql, t.pos, &format!("unexpected token: {shown}"))
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect_eof(&self) -> Result<(), SoqlError> {
        if self.peek().tok == Tok::Eof {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("select")?;
        let mut select = Vec::new();
        loop {
            select.push(self.select_item()?);
            if self.peek().tok == Tok::Comma {
                self.next();
            } else {
                break;
            }
        }
        self.expect_kw("from")?;
        let from_tok = self.next();
        let from = match from_tok.tok {
            Tok::Word(w) if !RESERVED.contains(&w.to_ascii_lowercase().as_str()) => w,
            _ => {
                self.i -= 1;
                return Err(self.unexpected());
            }
        };
        let filter = if self.eat_kw("where") {
            Some(self.or_cond()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        let mut having = Vec::new();
        if self.eat_kw("group") {
            self.expect_kw("by")?;
            loop {
                group_by.push(self.path()?);
                if self.peek().tok != Tok::Comma {
                    break;
                }
                self.next();
            }
            if self.eat_kw("having") {
                loop {
                    having.push(self.having()?);
                    if !self.eat_kw("and") {
                        break;
                    }
                }
            }
        }
        let mut order_by = Vec::new();
        if self.eat_kw("order") {
            self.expect_kw("by")?;
            loop {
                let (agg, path) = match self.agg_call()? {
                    Some((f, p)) => (Some(f), p),
                    None => (None, self.path()?),
                };
                let descending = if self.eat_kw("desc") {
                    true
                } else {
                    self.eat_kw("asc");
                    false
                };
                let mut nulls_last = false;
                if self.eat_kw("nulls") {
                    if self.eat_kw("last") {
                        nulls_last = true;
                    } else {
                        self.expect_kw("first")?;
                    }
                }
                order_by.push(OrderItem {
                    path,
                    agg,
                    descending,
                    nulls_last,
                });
                if self.peek().tok == Tok::Comma {
                    self.next();
                } else {
                    break;
                }
            }
        }
        let limit = if self.eat_kw("limit") {
            Some(self.unsigned()?)
        } else {
            None
        };
        let offset = if self.eat_kw("offset") {
            Some(self.unsigned()?)
        } else {
            None
        };
        Ok(Query {
            select,
            from,
            from_pos: from_tok.pos,
            filter,
            group_by,
            having,
            order_by,
            limit,
            offset,
        })
    }

    fn unsigned(&mut self) -> Result<usize, SoqlError> {
        match &self.peek().tok {
            Tok::Number(n) => {
                let v = n.parse::<usize>().map_err(|_| self.unexpected())?;
                self.next();
                Ok(v)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn select_item(&mut self) -> Result<SelectItem, SoqlError> {
        if self.is_kw("count")
            && self.tokens.get(self.i + 1).map(|t| &t.tok) == Some(&Tok::LParen)
            && self.tokens.get(self.i + 2).map(|t| &t.tok) == Some(&Tok::RParen)
        {
            self.next();
            self.next();
            if self.peek().tok != Tok::RParen {
                return Err(self.unexpected());
            }
            self.next();
            return Ok(SelectItem::Count);
        }
        if let Some((func, arg)) = self.agg_call()? {
            let alias = match &self.peek().tok {
                Tok::Word(w) if !RESERVED.contains(&w.to_ascii_lowercase().as_str()) => {
                    let a = w.clone();
                    self.next();
                    Some(a)
                }
                _ => None,
            };
            return Ok(SelectItem::Agg { func, arg, alias });
        }
        Ok(SelectItem::Field(self.path()?))
    }

    /// `COUNT(field)`, `MIN(field)`, ... when one starts here.
    fn agg_call(&mut self) -> Result<Option<(AggFn, Path)>, SoqlError> {
        let func = match &self.peek().tok {
            Tok::Word(w) => AggFn::from_name(w),
            _ => None,
        };
        let Some(func) = func else { return Ok(None) };
        if self.tokens.get(self.i + 1).map(|t| &t.tok) != Some(&Tok::LParen) {
            return Ok(None);
        }
        self.next();
        self.next();
        let arg = self.path()?;
        if self.peek().tok != Tok::RParen {
            return Err(self.unexpected());
        }
        self.next();
        Ok(Some((func, arg)))
    }

    fn having(&mut self) -> Result<Having, SoqlError> {
        let Some((func, arg)) = self.agg_call()? else {
            return Err(self.unexpected());
        };
        let op = self.cmp_op()?;
        match self.literal()? {
            Literal::Num(value) => Ok(Having {
                func,
                arg,
                op,
                value,
            }),
            _ => Err(self.unexpected()),
        }
    }

    fn cmp_op(&mut self) -> Result<CmpOp, SoqlError> {
        let op = match self.peek().tok {
            Tok::Op("=") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">=") => CmpOp::Ge,
            _ => return Err(self.unexpected()),
        };
        self.next();
        Ok(op)
    }

    fn path(&mut self) -> Result<Path, SoqlError> {
        let t = self.peek().clone();
        let mut parts = Vec::new();
        match &t.tok {
            Tok::Word(w) if !RESERVED.contains(&w.to_ascii_lowercase().as_str()) => {
                parts.push(w.clone());
                self.next();
            }
            _ => return Err(self.unexpected()),
        }
        while self.peek().tok == Tok::Dot {
            self.next();
            match &self.peek().tok {
                Tok::Word(w) => {
                    parts.push(w.clone());
                    self.next();
                }
                _ => return Err(self.unexpected()),
            }
        }
        Ok(Path { parts, pos: t.pos })
    }

    fn or_cond(&mut self) -> Result<Cond, SoqlError> {
        let mut items = vec![self.and_cond()?];
        while self.eat_kw("or") {
            items.push(self.and_cond()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Cond::Or(items)
        })
    }

    fn and_cond(&mut self) -> Result<Cond, SoqlError> {
        let mut items = vec![self.unary_cond()?];
        while self.eat_kw("and") {
            items.push(self.unary_cond()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Cond::And(items)
        })
    }

    fn unary_cond(&mut self) -> Result<Cond, SoqlError> {
        if self.eat_kw("not") {
            return Ok(Cond::Not(Box::new(self.unary_cond()?)));
        }
        if self.peek().tok == Tok::LParen {
            self.next();
            let c = self.or_cond()?;
            if self.peek().tok != Tok::RParen {
                return Err(self.unexpected());
            }
            self.next();
            return Ok(c);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Cond, SoqlError> {
        let path = self.path()?;
        if self.eat_kw("like") {
            let t = self.next();
            return match t.tok {
                Tok::Str(raw) => Ok(Cond::Like {
                    path,
                    raw,
                    pos: t.pos,
                }),
                _ => {
                    self.i -= 1;
                    Err(self.unexpected())
                }
            };
        }
        let negated = if self.is_kw("not")
            && matches!(&self.tokens.get(self.i + 1).map(|t| &t.tok), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in"))
        {
            self.next();
            true
        } else {
            false
        };
        if self.eat_kw("in") {
            if self.peek().tok != Tok::LParen {
                return Err(self.unexpected());
            }
            self.next();
            let mut values = Vec::new();
            loop {
                values.push(self.literal()?);
                match self.peek().tok {
                    Tok::Comma => {
                        self.next();
                    }
                    Tok::RParen => {
                        self.next();
                        break;
                    }
                    _ => return Err(self.unexpected()),
                }
            }
            return Ok(Cond::In {
                path,
                negated,
                values,
            });
        }
        if negated {
            return Err(self.unexpected());
        }
        let op = self.cmp_op()?;
        let value = self.literal()?;
        Ok(Cond::Cmp { path, op, value })
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let t = self.peek().clone();
        let lit = match &t.tok {
            Tok::Str(raw) => Literal::Str {
                raw: raw.clone(),
                pos: t.pos,
            },
            Tok::Number(n) => Literal::Num(n.parse().map_err(|_| self.unexpected())?),
            Tok::DateTime(d) => Literal::DateTime(d.clone()),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            _ => return Err(self.unexpected()),
        };
        self.next();
        Ok(lit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_query() {
        let q = parse(
            "select Id, Account.Name FROM Contact where (Email = 'a@b.c' or Email IN ('x','y')) \
             AND NOT Name LIKE 'J%' AND CreatedDate > 2026-01-01T00:00:00Z \
             order by Name desc nulls last, Id LIMIT 10 OFFSET 5",
        )
        .unwrap();
        assert_eq!(q.from, "Contact");
        assert_eq!(q.select.len(), 2);
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, Some(5));
        assert_eq!(q.order_by.len(), 2);
        assert!(q.order_by[0].descending && q.order_by[0].nulls_last);
        match q.filter.unwrap() {
            Cond::And(items) => {
                assert_eq!(items.len(), 3);
                assert!(matches!(items[0], Cond::Or(_)));
                assert!(matches!(items[1], Cond::Not(_)));
            }
            other => panic!("expected AND, got {other:?}"),
        }
    }

    #[test]
    fn count_and_not_in() {
        let q = parse("SELECT COUNT() FROM Account WHERE Name NOT IN ('a', 'b') AND Id != null")
            .unwrap();
        assert!(q.is_count());
        let Some(Cond::And(items)) = q.filter else {
            panic!()
        };
        assert!(matches!(&items[0], Cond::In { negated: true, values, .. } if values.len() == 2));
        assert!(matches!(
            &items[1],
            Cond::Cmp {
                op: CmpOp::Ne,
                value: Literal::Null,
                ..
            }
        ));
    }

    #[test]
    fn malformed_queries_point_at_the_problem() {
        let e = parse("SELECT Id FROM Contact WHERE").unwrap_err();
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert!(
            e.message.contains("ERROR at Row:1:Column:29"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("unexpected token: <EOF>"),
            "{}",
            e.message
        );
        let e = parse("SELECT Id FROM Contact WHERE Name = 'unterminated").unwrap_err();
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert!(parse("SELECT FROM Contact").is_err());
        assert!(parse("SELECT Id FROM Contact LIMIT x").is_err());
        assert!(parse("SELECT Id FROM Contact garbage").is_err());
    }

    #[test]
    fn keywords_are_case_insensitive_and_strings_keep_raw_escapes() {
        let q = parse(r"SeLeCt id FrOm contact WhErE name = 'O\'Brien'").unwrap();
        let Some(Cond::Cmp {
            value: Literal::Str { raw, .. },
            ..
        }) = q.filter
        else {
            panic!()
        };
        assert_eq!(raw, r"O\'Brien");
    }

    #[test]
    fn negative_numbers_and_dates() {
        let q = parse("SELECT Id FROM Account WHERE X__c > -5 AND D__c = 2026-11-26").unwrap();
        let Some(Cond::And(items)) = q.filter else {
            panic!()
        };
        assert!(matches!(items[0], Cond::Cmp { value: Literal::Num(n), .. } if n == -5.0));
        assert!(
            matches!(&items[1], Cond::Cmp { value: Literal::DateTime(d), .. } if d == "2026-11-26")
        );
    }
}
