//! Aggregate SOQL: `GROUP BY`, `COUNT(field)`, `COUNT_DISTINCT`, `MIN`,
//! `MAX`, aliases (else `expr0`, `expr1`, ...), `HAVING`, `ORDER BY` an
//! aggregate, answered as `AggregateResult` rows as Salesforce does
//! (shared/reference/salesforce-api.md §9.5: no `url` in the attributes, at
//! most 2,000 rows because aggregate queries cannot use queryMore).

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::ast::*;
use super::eval::{compare_vals, Ctx, Output, Resolved};
use super::SoqlError;
use crate::table::Row;
use crate::value::Val;

/// The most rows an aggregate query answers.
const MAX_ROWS: usize = 2_000;

/// One computed group: its grouped values and its aggregates, in select order.
struct Group<'r> {
    keys: Vec<Val>,
    rows: Vec<&'r Row>,
}

fn same_path(a: &Path, b: &Path) -> bool {
    a.parts.len() == b.parts.len()
        && a.parts
            .iter()
            .zip(&b.parts)
            .all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Refuses what Salesforce refuses in aggregate queries.
pub(super) fn check(ctx: &Ctx, q: &Query) -> Result<(), SoqlError> {
    let malformed = |pos: usize, detail: &str| SoqlError::malformed(ctx.soql, pos, detail);
    if q.is_count() {
        return Err(malformed(
            0,
            "COUNT() cannot be combined with other aggregate functions or GROUP BY",
        ));
    }
    for item in &q.select {
        if let SelectItem::Field(p) = item {
            if !q.group_by.iter().any(|g| same_path(g, p)) {
                return Err(malformed(
                    p.pos,
                    &format!("Field must be grouped or aggregated: {}", p.parts.join(".")),
                ));
            }
        }
    }
    for o in q.order_by.iter().filter(|o| o.agg.is_none()) {
        if !q.group_by.iter().any(|g| same_path(g, &o.path)) {
            return Err(malformed(
                o.path.pos,
                &format!(
                    "Ordered field must be grouped or aggregated: {}",
                    o.path.parts.join(".")
                ),
            ));
        }
    }
    if q.group_by.is_empty() && q.limit.is_some() {
        // [doc] SOQL › Aggregate Functions: LIMIT with an aggregate needs GROUP BY.
        return Err(malformed(
            0,
            "LIMIT is not allowed in an aggregate query without GROUP BY",
        ));
    }
    Ok(())
}

/// The value of an aggregate over a group's rows.
fn aggregate(ctx: &Ctx, func: AggFn, field: &Resolved, rows: &[&Row]) -> Value {
    let values = rows
        .iter()
        .map(|r| ctx.value(field, r))
        .filter(|v| !v.is_null());
    match func {
        AggFn::Count => json!(values.count()),
        AggFn::CountDistinct => {
            let set: std::collections::HashSet<String> = values
                .map(|v| v.to_json().to_string().to_lowercase())
                .collect();
            json!(set.len())
        }
        AggFn::Min | AggFn::Max => {
            let pick = values.fold(None::<&Val>, |best, v| match best {
                None => Some(v),
                Some(b) => {
                    let o = compare_vals(&field.ftype, v, b);
                    let better = if func == AggFn::Min {
                        o == Ordering::Less
                    } else {
                        o == Ordering::Greater
                    };
                    Some(if better { v } else { b })
                }
            });
            pick.map(Val::to_json).unwrap_or(Value::Null)
        }
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn holds(op: CmpOp, a: f64, b: f64) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Gt => a > b,
        CmpOp::Le => a <= b,
        CmpOp::Ge => a >= b,
    }
}

/// Answers an aggregate query ([`check`]ed) over the rows its filter kept.
pub(super) fn run(
    ctx: &Ctx,
    q: &Query,
    object: &str,
    rows: Vec<&Row>,
    examined: usize,
) -> Result<Output, SoqlError> {
    let keys: Vec<Resolved> = q
        .group_by
        .iter()
        .map(|p| ctx.resolve(object, p))
        .collect::<Result<_, _>>()?;
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in rows {
        let vals: Vec<Val> = keys.iter().map(|k| ctx.value(k, r).clone()).collect();
        let key: String = vals
            .iter()
            .map(|v| v.to_json().to_string().to_lowercase() + "\u{1}")
            .collect();
        let at = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                keys: vals,
                rows: Vec::new(),
            });
            groups.len() - 1
        });
        groups[at].rows.push(r);
    }
    if keys.is_empty() && groups.is_empty() {
        // An aggregate without GROUP BY answers one row even over no rows.
        groups.push(Group {
            keys: Vec::new(),
            rows: Vec::new(),
        });
    }
    let agg_of = |func: AggFn, arg: &Path, g: &Group| -> Result<Value, SoqlError> {
        Ok(aggregate(ctx, func, &ctx.resolve(object, arg)?, &g.rows))
    };
    let mut kept = Vec::new();
    for g in groups {
        let mut ok = true;
        for h in &q.having {
            ok &= holds(h.op, num(&agg_of(h.func, &h.arg, &g)?), h.value);
        }
        if ok {
            kept.push(g);
        }
    }
    let mut sort_keys: Vec<Vec<Value>> = Vec::with_capacity(kept.len());
    for g in &kept {
        let mut k = Vec::new();
        for o in &q.order_by {
            k.push(match o.agg {
                Some(f) => agg_of(f, &o.path, g)?,
                None => {
                    let at = q
                        .group_by
                        .iter()
                        .position(|p| same_path(p, &o.path))
                        .expect("checked");
                    g.keys[at].to_json()
                }
            });
        }
        sort_keys.push(k);
    }
    let mut order: Vec<usize> = (0..kept.len()).collect();
    order.sort_by(|a, b| {
        for (i, o) in q.order_by.iter().enumerate() {
            let (x, y) = (&sort_keys[*a][i], &sort_keys[*b][i]);
            let ord = match (x.as_f64(), y.as_f64()) {
                (Some(m), Some(n)) => m.partial_cmp(&n).unwrap_or(Ordering::Equal),
                _ => x
                    .to_string()
                    .to_lowercase()
                    .cmp(&y.to_string().to_lowercase()),
            };
            let ord = if o.descending { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    let picked: Vec<usize> = order
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    if picked.len() > MAX_ROWS {
        // [3p] the error real orgs give a GROUP BY answer over one batch.
        return Err(SoqlError {
            code: "MALFORMED_QUERY",
            message: "Aggregate query does not support queryMore(), use LIMIT to restrict the results to a single batch".into(),
        });
    }
    let mut records = Vec::with_capacity(picked.len());
    for i in picked {
        let g = &kept[i];
        let mut m = Map::new();
        m.insert("attributes".into(), json!({"type": "AggregateResult"}));
        let mut expr = 0;
        for item in &q.select {
            match item {
                SelectItem::Field(p) => {
                    let at = q
                        .group_by
                        .iter()
                        .position(|x| same_path(x, p))
                        .expect("checked");
                    m.insert(keys[at].field_name.clone(), g.keys[at].to_json());
                }
                SelectItem::Agg { func, arg, alias } => {
                    let name = alias.clone().unwrap_or_else(|| {
                        expr += 1;
                        format!("expr{}", expr - 1)
                    });
                    m.insert(name, agg_of(*func, arg, g)?);
                }
                SelectItem::Count => {}
            }
        }
        records.push(Value::Object(m));
    }
    Ok(Output {
        total_size: records.len(),
        records,
        examined,
    })
}
