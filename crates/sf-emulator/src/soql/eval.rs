//! Runs a parsed query against the org: resolves names (case-insensitively,
//! honouring field-level security), answers `=` and `IN` on indexed fields from
//! an index, filters, sorts, pages and shapes records as the REST API does.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::ast::*;
use super::literal::{self, PatTok};
use super::SoqlError;
use crate::dml::{attributes, visible};
use crate::org::Org;
use crate::schema::FieldType;
use crate::security::FieldAccess;
use crate::table::Row;
use crate::value::Val;

/// A field path resolved against the schema.
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    /// Reference hops: (object holding the lookup, slot of the lookup field, relationship name).
    hops: Vec<(String, usize, String)>,
    object: String,
    slot: usize,
    pub(super) field_name: String,
    pub(super) ftype: FieldType,
}

/// A literal converted to the type of the field it is compared with.
#[derive(Debug, Clone)]
enum CVal {
    Null,
    Text(String),
    Num(f64),
    Bool(bool),
    Millis(i64),
}

enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    Cmp {
        field: Resolved,
        op: CmpOp,
        value: CVal,
    },
    In {
        field: Resolved,
        negated: bool,
        values: Vec<CVal>,
    },
    Like {
        field: Resolved,
        pattern: Vec<PatTok>,
    },
}

pub struct Output {
    pub total_size: usize,
    pub records: Vec<Value>,
    /// Rows the filter was tested on: small when an index answered.
    pub examined: usize,
}

pub(super) struct Ctx<'a> {
    org: &'a Org,
    pub(super) soql: &'a str,
    access: &'a FieldAccess,
}

pub fn execute(
    org: &Org,
    q: &Query,
    soql: &str,
    access: &FieldAccess,
    version: &str,
) -> Result<Output, SoqlError> {
    execute_within(org, q, soql, access, version, None)
}

/// [`execute`], but a scan of more rows than `scan_limit` is not read: its
/// output has only `examined` (the caller refuses it, as a large org does).
pub fn execute_within(
    org: &Org,
    q: &Query,
    soql: &str,
    access: &FieldAccess,
    version: &str,
    scan_limit: Option<usize>,
) -> Result<Output, SoqlError> {
    let ctx = Ctx { org, soql, access };
    let table = org.table(&q.from).ok_or_else(|| {
        SoqlError::at(
            "INVALID_TYPE",
            soql,
            q.from_pos,
            &format!("sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", q.from),
        )
    })?;
    let object = table.def.name.clone();
    let mut selected = Vec::new();
    for item in &q.select {
        if let SelectItem::Field(p) = item {
            selected.push(ctx.resolve(&object, p)?);
        }
    }
    let pred = q
        .filter
        .as_ref()
        .map(|c| ctx.compile(&object, c))
        .transpose()?;
    // What the query may not ask is refused before any row is read.
    if q.is_aggregate() {
        super::aggregate::check(&ctx, q)?;
    } else if q.is_count() && !q.order_by.is_empty() {
        // [doc] SOQL › COUNT(): use COUNT(fieldName) to order.
        return Err(SoqlError::malformed(
            soql,
            q.order_by[0].path.pos,
            "ORDER BY cannot be used with COUNT(); use COUNT(Id)",
        ));
    }
    // An aggregate query orders its groups (aggregate.rs), not rows.
    let order: Vec<(Resolved, bool, bool)> = if q.is_aggregate() {
        Vec::new()
    } else {
        q.order_by
            .iter()
            .map(|o| Ok((ctx.resolve(&object, &o.path)?, o.descending, o.nulls_last)))
            .collect::<Result<_, SoqlError>>()?
    };
    let candidates: Vec<&Row> = match pred.as_ref().and_then(|p| ctx.indexed_candidates(p)) {
        Some(rows) => rows,
        None => table.iter().collect(),
    };
    let examined = candidates.len();
    if scan_limit.is_some_and(|limit| examined > limit) {
        return Ok(Output {
            total_size: 0,
            records: Vec::new(),
            examined,
        });
    }
    let mut rows: Vec<&Row> = candidates
        .into_iter()
        .filter(|r| pred.as_ref().is_none_or(|p| ctx.test(p, r)))
        .collect();
    if q.is_aggregate() {
        return super::aggregate::run(&ctx, q, &object, rows, examined);
    }
    if !order.is_empty() {
        rows.sort_by(|a, b| {
            for (field, desc, nulls_last) in &order {
                let (va, vb) = (ctx.value(field, a), ctx.value(field, b));
                let ord = match (va.is_null(), vb.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if *nulls_last {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (false, true) => {
                        if *nulls_last {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    _ => {
                        let o = compare_vals(&field.ftype, va, vb);
                        if *desc {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    let offset = q.offset.unwrap_or(0);
    let rows: Vec<&Row> = rows
        .into_iter()
        .skip(offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    if q.is_count() {
        return Ok(Output {
            total_size: rows.len(),
            records: Vec::new(),
            examined,
        });
    }
    let records = rows
        .iter()
        .map(|r| ctx.project(&object, &selected, r, version))
        .collect::<Vec<_>>();
    Ok(Output {
        total_size: records.len(),
        records,
        examined,
    })
}

pub(super) fn compare_vals(ftype: &FieldType, a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Text(x), Val::Text(y)) => {
            if *ftype == FieldType::DateTime {
                millis(x).cmp(&millis(y))
            } else {
                x.to_lowercase().cmp(&y.to_lowercase())
            }
        }
        _ => Ordering::Equal,
    }
}

fn millis(s: &str) -> Option<i64> {
    if let Some(n) = crate::dml::parse_datetime(s) {
        return chrono::DateTime::parse_from_str(&n, "%Y-%m-%dT%H:%M:%S%.3f%z")
            .ok()
            .map(|d| d.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

static NULL: Val = Val::Null;

impl Ctx<'_> {
    fn invalid_field(&self, object: &str, p: &Path, name: &str) -> SoqlError {
        SoqlError::at(
            "INVALID_FIELD",
            self.soql,
            p.pos,
            &format!("No such column '{name}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."),
        )
    }

    pub(super) fn resolve(&self, from: &str, p: &Path) -> Result<Resolved, SoqlError> {
        let mut parts: &[String] = &p.parts;
        if parts.len() > 1 && parts[0].eq_ignore_ascii_case(from) {
            parts = &parts[1..];
        }
        let mut object = from.to_string();
        let mut hops = Vec::new();
        for rel in &parts[..parts.len() - 1] {
            let def = &self.org.table(&object).expect("resolved object").def;
            let slot = def.relationship_slot(rel).filter(|s| visible(&def.name, &def.fields[*s], self.access)).ok_or_else(|| {
                SoqlError::at(
                    "INVALID_FIELD",
                    self.soql,
                    p.pos,
                    &format!("Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
                )
            })?;
            let f = &def.fields[slot];
            let FieldType::Reference { to, .. } = &f.ftype else {
                unreachable!("relationships are references")
            };
            hops.push((
                def.name.clone(),
                slot,
                f.relationship_name.clone().unwrap_or_default(),
            ));
            object = self
                .org
                .table(to)
                .map(|t| t.def.name.clone())
                .unwrap_or_else(|| to.clone());
        }
        let last = &parts[parts.len() - 1];
        let def = &self
            .org
            .table(&object)
            .ok_or_else(|| self.invalid_field(&object, p, last))?
            .def;
        let slot = def
            .slot(last)
            .filter(|s| visible(&def.name, &def.fields[*s], self.access))
            .ok_or_else(|| self.invalid_field(&def.name, p, last))?;
        let f = &def.fields[slot];
        Ok(Resolved {
            hops,
            object: def.name.clone(),
            slot,
            field_name: f.name.clone(),
            ftype: f.ftype.clone(),
        })
    }

    pub(super) fn value<'r>(&'r self, field: &Resolved, row: &'r Row) -> &'r Val {
        let mut row = row;
        for (_, slot, _) in &field.hops {
            let Some(id) = row.get(*slot).and_then(Val::as_str) else {
                return &NULL;
            };
            let Some(parent) = self
                .org
                .object_of_id(id)
                .and_then(|o| self.org.table(o))
                .and_then(|t| t.get(id))
            else {
                return &NULL;
            };
            row = parent;
        }
        row.get(field.slot).unwrap_or(&NULL)
    }

    fn literal(&self, field: &Resolved, lit: &Literal) -> Result<CVal, SoqlError> {
        let wrong = |want: &str, quotes: &str| {
            SoqlError::at(
                "INVALID_QUERY_FILTER_OPERATOR",
                self.soql,
                0,
                &format!(
                    "value of filter criterion for field '{}' must be of type {want} and {quotes}",
                    field.field_name
                ),
            )
        };
        Ok(match (lit, &field.ftype) {
            (Literal::Null, _) => CVal::Null,
            (Literal::Bool(b), FieldType::Boolean) => CVal::Bool(*b),
            (_, FieldType::Boolean) => {
                return Err(wrong("boolean", "should not be enclosed in quotes"))
            }
            (Literal::Num(n), FieldType::Number) => CVal::Num(*n),
            (_, FieldType::Number) => {
                return Err(wrong("double", "should not be enclosed in quotes"))
            }
            (Literal::DateTime(d), FieldType::DateTime | FieldType::Date) => {
                CVal::Millis(millis(d).ok_or_else(|| {
                    SoqlError::malformed(
                        self.soql,
                        0,
                        &format!(
                            "value of filter criterion for field '{}' must be of type dateTime",
                            field.field_name
                        ),
                    )
                })?)
            }
            (_, FieldType::DateTime | FieldType::Date) => {
                return Err(wrong("dateTime", "should not be enclosed in quotes"))
            }
            (Literal::Str { raw, pos }, ftype) => {
                let s =
                    literal::decode(raw).map_err(|e| SoqlError::malformed(self.soql, *pos, &e))?;
                if matches!(ftype, FieldType::Id | FieldType::Reference { .. }) {
                    // Ids compare in their 18-character, case-insensitive form.
                    let id = crate::ids::canonical15(&s)
                        .map(|i| crate::ids::to_18(&i))
                        .unwrap_or(s);
                    CVal::Text(id.to_lowercase())
                } else {
                    CVal::Text(s.to_lowercase())
                }
            }
            _ => return Err(wrong("string", "should be enclosed in quotes")),
        })
    }

    fn compile(&self, from: &str, c: &Cond) -> Result<Pred, SoqlError> {
        Ok(match c {
            Cond::And(items) => Pred::And(
                items
                    .iter()
                    .map(|c| self.compile(from, c))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Or(items) => Pred::Or(
                items
                    .iter()
                    .map(|c| self.compile(from, c))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Not(inner) => Pred::Not(Box::new(self.compile(from, inner)?)),
            Cond::Cmp { path, op, value } => {
                let field = self.resolve(from, path)?;
                let value = self.literal(&field, value)?;
                Pred::Cmp {
                    field,
                    op: *op,
                    value,
                }
            }
            Cond::In {
                path,
                negated,
                values,
            } => {
                let field = self.resolve(from, path)?;
                let values = values
                    .iter()
                    .map(|v| self.literal(&field, v))
                    .collect::<Result<_, _>>()?;
                Pred::In {
                    field,
                    negated: *negated,
                    values,
                }
            }
            Cond::Like { path, raw, pos } => {
                let field = self.resolve(from, path)?;
                let pattern = literal::decode_like(raw)
                    .map_err(|e| SoqlError::malformed(self.soql, *pos, &e))?;
                Pred::Like { field, pattern }
            }
        })
    }

    /// Candidate rows from an index, when the filter pins an indexed field.
    fn indexed_candidates(&self, p: &Pred) -> Option<Vec<&Row>> {
        match p {
            Pred::Cmp {
                field,
                op: CmpOp::Eq,
                value: CVal::Text(v),
            } if field.hops.is_empty() => {
                let t = self.org.table(&field.object)?;
                if !t.is_indexed(field.slot) {
                    return None;
                }
                t.lookup(field.slot, &Val::text(v.as_str()))
            }
            Pred::In {
                field,
                negated: false,
                values,
            } if field.hops.is_empty() => {
                let t = self.org.table(&field.object)?;
                if !t.is_indexed(field.slot) {
                    return None;
                }
                let mut out: Vec<&Row> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for v in values {
                    if let CVal::Text(s) = v {
                        for r in t.lookup(field.slot, &Val::text(s.as_str()))? {
                            if seen.insert(r[0].as_str().unwrap_or_default()) {
                                out.push(r);
                            }
                        }
                    }
                }
                // Keep creation order, as a scan would.
                out.sort_by(|a, b| {
                    let key = |r: &Row| {
                        crate::ids::canonical15(r[0].as_str().unwrap_or_default())
                            .unwrap_or_default()
                    };
                    key(a).cmp(&key(b))
                });
                Some(out)
            }
            Pred::And(items) => items.iter().find_map(|i| self.indexed_candidates(i)),
            _ => None,
        }
    }

    fn test(&self, p: &Pred, row: &Row) -> bool {
        match p {
            Pred::And(items) => items.iter().all(|i| self.test(i, row)),
            Pred::Or(items) => items.iter().any(|i| self.test(i, row)),
            Pred::Not(inner) => !self.test(inner, row),
            Pred::Cmp { field, op, value } => cmp(&field.ftype, self.value(field, row), *op, value),
            Pred::In {
                field,
                negated,
                values,
            } => {
                let v = self.value(field, row);
                let hit = values.iter().any(|x| cmp(&field.ftype, v, CmpOp::Eq, x));
                hit != *negated
            }
            Pred::Like { field, pattern } => self
                .value(field, row)
                .as_str()
                .is_some_and(|s| literal::like_matches(pattern, s)),
        }
    }

    /// Writes one selected field into `target`, nesting parent records as objects.
    fn put(
        &self,
        target: &mut Map<String, Value>,
        field: &Resolved,
        hop: usize,
        row: &Row,
        version: &str,
    ) {
        let Some((_, slot, rel)) = field.hops.get(hop) else {
            target.insert(
                field.field_name.clone(),
                row.get(field.slot).map(Val::to_json).unwrap_or(Value::Null),
            );
            return;
        };
        let parent = row.get(*slot).and_then(Val::as_str).and_then(|id| {
            let obj = self.org.object_of_id(id)?;
            Some((obj.to_string(), self.org.table(obj)?.get(id)?))
        });
        let entry = target.entry(rel.clone()).or_insert(Value::Null);
        let Some((obj, prow)) = parent else { return };
        if entry.is_null() {
            let mut pm = Map::new();
            pm.insert(
                "attributes".into(),
                attributes(&obj, prow[0].as_str().unwrap_or_default(), version),
            );
            *entry = Value::Object(pm);
        }
        if let Value::Object(pm) = entry {
            self.put(pm, field, hop + 1, prow, version);
        }
    }

    fn project(&self, object: &str, selected: &[Resolved], row: &Row, version: &str) -> Value {
        let mut m = Map::new();
        m.insert(
            "attributes".into(),
            attributes(object, row[0].as_str().unwrap_or_default(), version),
        );
        for field in selected {
            self.put(&mut m, field, 0, row, version);
        }
        Value::Object(m)
    }
}

fn cmp(ftype: &FieldType, v: &Val, op: CmpOp, lit: &CVal) -> bool {
    if let CVal::Null = lit {
        return match op {
            CmpOp::Eq => v.is_null(),
            CmpOp::Ne => !v.is_null(),
            _ => false,
        };
    }
    if v.is_null() {
        return op == CmpOp::Ne;
    }
    let ord = match (v, lit) {
        (Val::Text(s), CVal::Text(l)) => s.to_lowercase().as_str().cmp(l.as_str()),
        (Val::Text(s), CVal::Millis(l)) => match millis(s) {
            Some(m) => m.cmp(l),
            None => return false,
        },
        (Val::Num(n), CVal::Num(l)) => n.partial_cmp(l).unwrap_or(Ordering::Equal),
        (Val::Bool(b), CVal::Bool(l)) => b.cmp(l),
        _ => return false,
    };
    let _ = ftype;
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}
