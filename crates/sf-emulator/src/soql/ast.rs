//! The parsed form of a SOQL query.

/// A dotted field path (`Email`, `Account.Name`) and where it starts in the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub parts: Vec<String>,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field(Path),
    /// `COUNT()`: the answer is only the number of matching rows.
    Count,
    /// An aggregate function of a field, with its alias (else `exprN`).
    Agg {
        func: AggFn,
        arg: Path,
        alias: Option<String>,
    },
}

/// The aggregate functions the emulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    Count,
    CountDistinct,
    Min,
    Max,
}

impl AggFn {
    pub fn from_name(name: &str) -> Option<AggFn> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggFn::Count,
            "count_distinct" => AggFn::CountDistinct,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            _ => return None,
        })
    }
}

/// `HAVING agg op number`, joined by AND.
#[derive(Debug, Clone, PartialEq)]
pub struct Having {
    pub func: AggFn,
    pub arg: Path,
    pub op: CmpOp,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Raw content of a quoted string; decoded by the evaluator (LIKE decodes differently).
    Str {
        raw: String,
        pos: usize,
    },
    Num(f64),
    Bool(bool),
    Null,
    /// An unquoted date or date-time literal.
    DateTime(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp {
        path: Path,
        op: CmpOp,
        value: Literal,
    },
    In {
        path: Path,
        negated: bool,
        values: Vec<Literal>,
    },
    Like {
        path: Path,
        raw: String,
        pos: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub path: Path,
    /// Ordered by this aggregate of `path` (aggregate queries).
    pub agg: Option<AggFn>,
    pub descending: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: String,
    pub from_pos: usize,
    pub filter: Option<Cond>,
    pub group_by: Vec<Path>,
    pub having: Vec<Having>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

impl Query {
    pub fn is_count(&self) -> bool {
        self.select.iter().any(|s| matches!(s, SelectItem::Count))
    }

    /// Grouped or aggregated: answered as `AggregateResult` rows.
    pub fn is_aggregate(&self) -> bool {
        !self.group_by.is_empty()
            || self
                .select
                .iter()
                .any(|s| matches!(s, SelectItem::Agg { .. }))
    }
}
