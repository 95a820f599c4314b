//! Evaluation of EQL conditions over computed values ([`TypedCheck`]): field-to-field
//! comparisons, the function library, arithmetic.
//!
//! Both matchers share this evaluator; they differ only in where field values come from
//! ([`Fields`]: the ECS view, or a JSON document). A condition is three-valued, as in
//! Elasticsearch: a null operand makes it null, which a filter treats as false, and so
//! does `not` of it. A multi-valued field (argv) holds when the condition holds for any of
//! its values; with several, for any combination (at most [`MAX_COMBINATIONS`] are tried).

pub mod cidr;
mod func;
mod value;

pub use value::V;

use crate::pattern::{Glob, Regex};
use crate::query::ast::{Cmp, Func};
use crate::query::typing::{CheckCond, FieldRef, TypedCheck, TypedExpr, TypedPattern};
use cidr::Cidr;

/// Most value combinations of multi-valued fields one condition is tried on.
pub const MAX_COMBINATIONS: usize = 4096;

/// Most distinct fields one condition reads (more is refused when the rule is compiled).
pub const MAX_FIELDS: usize = 8;

/// The values of a condition's fields for one event.
pub trait Fields {
    /// How many values field `i` (an index into the condition's fields) has; 0 when missing.
    fn count(&self, i: usize) -> usize;
    /// Value `k` (< `count(i)`) of field `i`.
    fn get(&self, i: usize, k: usize) -> V<'_>;
}

/// A condition ready to evaluate: patterns built, CIDR blocks parsed.
#[derive(Debug, Clone)]
pub struct CompiledCheck {
    fields: Vec<FieldRef>,
    cond: Cond,
}

#[derive(Debug, Clone)]
enum Cond {
    Cmp {
        cmp: Cmp,
        ne: bool,
        lhs: Ex,
        rhs: Ex,
    },
    Match {
        value: Ex,
        patterns: Vec<Pat>,
    },
    In {
        value: Ex,
        items: Vec<Ex>,
        ci: bool,
    },
    Truthy(Ex),
}

#[derive(Debug, Clone)]
enum Pat {
    Glob(Glob),
    Regex(Regex),
}

#[derive(Debug, Clone)]
enum Ex {
    Field(usize),
    Const(V<'static>),
    Call {
        func: Func,
        ci: bool,
        args: Vec<Ex>,
    },
    Cidr {
        value: Box<Ex>,
        blocks: Vec<Cidr>,
        /// A null block was written: the result is null.
        null_block: bool,
    },
    Wildcard {
        value: Box<Ex>,
        globs: Vec<Glob>,
    },
    Arith {
        op: crate::query::ast::Arith,
        lhs: Box<Ex>,
        rhs: Box<Ex>,
    },
    Neg(Box<Ex>),
}

impl CompiledCheck {
    pub fn new(c: &TypedCheck) -> Result<CompiledCheck, String> {
        if c.fields.len() > MAX_FIELDS {
            return Err(format!(
                "a condition reads {} fields; at most {MAX_FIELDS} are supported",
                c.fields.len()
            ));
        }
        let cond = match &c.cond {
            CheckCond::Cmp { cmp, ne, lhs, rhs } => Cond::Cmp {
                cmp: *cmp,
                ne: *ne,
                lhs: ex(lhs)?,
                rhs: ex(rhs)?,
            },
            CheckCond::Match { value, patterns } => Cond::Match {
                value: ex(value)?,
                patterns: patterns
                    .iter()
                    .map(|p| match p {
                        TypedPattern::Wildcard { toks, ci } => Pat::Glob(Glob::new(toks, *ci)),
                        TypedPattern::Regex(r) => Pat::Regex(r.clone()),
                    })
                    .collect(),
            },
            CheckCond::In { value, items, ci } => Cond::In {
                value: ex(value)?,
                items: items.iter().map(ex).collect::<Result<_, _>>()?,
                ci: *ci,
            },
            CheckCond::Truthy(e) => Cond::Truthy(ex(e)?),
        };
        Ok(CompiledCheck {
            fields: c.fields.clone(),
            cond,
        })
    }

    /// The fields it reads; [`Fields`] indexes are positions here.
    pub fn fields(&self) -> &[FieldRef] {
        &self.fields
    }

    /// The condition's value for one event: `None` is null.
    pub fn eval(&self, fields: &dyn Fields) -> Option<bool> {
        let n = self.fields.len();
        let mut counts = [0usize; MAX_FIELDS];
        let mut pick = [0usize; MAX_FIELDS];
        for (i, c) in counts.iter_mut().enumerate().take(n) {
            *c = fields.count(i);
        }
        let mut result = None;
        for _ in 0..MAX_COMBINATIONS {
            let sel = Selection {
                fields,
                pick: &pick[..n],
                counts: &counts[..n],
            };
            match self.cond_value(&sel) {
                Some(true) => return Some(true),
                Some(false) => result = Some(false),
                None => {}
            }
            // Next combination (odometer over the multi-valued fields).
            let mut i = 0;
            loop {
                if i == n {
                    return result;
                }
                if pick[i] + 1 < counts[i] {
                    pick[i] += 1;
                    break;
                }
                pick[i] = 0;
                i += 1;
            }
        }
        result
    }

    fn cond_value(&self, sel: &Selection<'_>) -> Option<bool> {
        match &self.cond {
            Cond::Cmp { cmp, ne, lhs, rhs } => {
                let (a, b) = (eval(lhs, sel), eval(rhs, sel));
                // `x == null` / `x != null` test nullness.
                if b.is_null() || a.is_null() {
                    let both_null = a.is_null() && b.is_null();
                    let is_null_test =
                        matches!(rhs, Ex::Const(V::Null)) || matches!(lhs, Ex::Const(V::Null));
                    if is_null_test && *cmp == Cmp::Eq {
                        return Some(both_null != *ne);
                    }
                    return None;
                }
                if *cmp == Cmp::Eq {
                    return a.equals(&b, false).map(|eq| eq != *ne);
                }
                a.order(&b).map(|o| cmp.holds(o))
            }
            Cond::Match { value, patterns } => {
                let v = eval(value, sel);
                let s = v.as_str()?;
                Some(patterns.iter().any(|p| match p {
                    Pat::Glob(g) => g.matches(s),
                    Pat::Regex(r) => r.is_match(s),
                }))
            }
            Cond::In { value, items, ci } => {
                let v = eval(value, sel);
                if v.is_null() {
                    return None;
                }
                let mut any_known = false;
                for item in items {
                    match v.equals(&eval(item, sel), *ci) {
                        Some(true) => return Some(true),
                        Some(false) => any_known = true,
                        None => {}
                    }
                }
                any_known.then_some(false)
            }
            Cond::Truthy(e) => match eval(e, sel) {
                V::Bool(b) => Some(b),
                _ => None,
            },
        }
    }
}

/// One combination of field values.
struct Selection<'s> {
    fields: &'s dyn Fields,
    pick: &'s [usize],
    counts: &'s [usize],
}

impl Selection<'_> {
    fn get(&self, i: usize) -> V<'_> {
        if self.counts[i] == 0 {
            V::Null
        } else {
            self.fields.get(i, self.pick[i])
        }
    }
}

fn eval<'s>(e: &'s Ex, sel: &'s Selection<'_>) -> V<'s> {
    match e {
        Ex::Field(i) => sel.get(*i),
        Ex::Const(V::Str(s)) => V::Str(std::borrow::Cow::Borrowed(s)),
        Ex::Const(v) => v.clone(),
        Ex::Call { func, ci, args } => {
            func::call(*func, *ci, args.len(), args.iter().map(|a| eval(a, sel)))
        }
        Ex::Cidr {
            value,
            blocks,
            null_block,
        } => match eval(value, sel) {
            V::Str(s) if !null_block => match blocks.first().and_then(|b| b.contains_text(&s)) {
                None => V::Null,
                Some(_) => V::Bool(blocks.iter().any(|b| b.contains_text(&s) == Some(true))),
            },
            _ => V::Null,
        },
        Ex::Wildcard { value, globs } => match eval(value, sel) {
            V::Str(s) => V::Bool(globs.iter().any(|g| g.matches(&s))),
            _ => V::Null,
        },
        Ex::Arith { op, lhs, rhs } => func::arith(*op, eval(lhs, sel), eval(rhs, sel)),
        Ex::Neg(inner) => match eval(inner, sel) {
            V::Int(n) => n.checked_neg().map_or(V::Null, V::Int),
            V::Float(f) => V::Float(-f),
            _ => V::Null,
        },
    }
}

fn ex(e: &TypedExpr) -> Result<Ex, String> {
    use std::borrow::Cow;
    Ok(match e {
        TypedExpr::Field(i) => Ex::Field(*i),
        TypedExpr::Str(s) => Ex::Const(V::Str(Cow::Owned(s.clone()))),
        TypedExpr::Int(n) => Ex::Const(V::Int(*n)),
        TypedExpr::Float(f) => Ex::Const(V::Float(*f)),
        TypedExpr::Bool(b) => Ex::Const(V::Bool(*b)),
        TypedExpr::Null => Ex::Const(V::Null),
        TypedExpr::Call {
            func: Func::CidrMatch,
            args,
            ..
        } => {
            let mut blocks = Vec::new();
            let mut null_block = false;
            for a in &args[1..] {
                match a {
                    TypedExpr::Str(s) => blocks.push(Cidr::parse(s)?),
                    _ => null_block = true,
                }
            }
            Ex::Cidr {
                value: Box::new(ex(&args[0])?),
                blocks,
                null_block,
            }
        }
        TypedExpr::Call {
            func: Func::Wildcard,
            ci,
            args,
        } => Ex::Wildcard {
            value: Box::new(ex(&args[0])?),
            globs: args[1..]
                .iter()
                .filter_map(|a| match a {
                    TypedExpr::Str(p) => Some(Glob::new(&crate::query::eql::like_toks(p), *ci)),
                    _ => None,
                })
                .collect(),
        },
        TypedExpr::Call { func, ci, args } => Ex::Call {
            func: *func,
            ci: *ci,
            args: args.iter().map(ex).collect::<Result<_, _>>()?,
        },
        TypedExpr::Arith { op, lhs, rhs } => Ex::Arith {
            op: *op,
            lhs: Box::new(ex(lhs)?),
            rhs: Box::new(ex(rhs)?),
        },
        TypedExpr::Neg(inner) => Ex::Neg(Box::new(ex(inner)?)),
    })
}
