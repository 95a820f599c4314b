//! Type resolution: a parsed leaf's field name becomes a schema id and its literal a value of
//! the field's mapping, the way Elasticsearch coerces a query's literals when it builds the
//! query (`true` on a boolean field is a boolean, on a keyword field a string). Regular
//! expressions are compiled here, once, for both matchers.

use crate::ecs::{Field, FieldKind, kind_of};
use crate::pattern::Regex;

use super::ast::{Arith, Check, Cmp, Expr, Func, Lit, MatchPattern, Op, Pred, Query, Tok};

/// A leaf after type resolution: what both matchers evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedPred {
    pub name: String,
    /// `None`: the view never produces this field.
    pub field: Option<Field>,
    pub kind: FieldKind,
    pub test: Test,
    /// Byte offset of the leaf in the query text.
    pub at: usize,
}

/// A leaf test on values of the field's own type.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Exists,
    /// String comparison (bytes order, as Lucene sorts keywords).
    Str(Cmp, String),
    Pattern {
        toks: Vec<Tok>,
        ci: bool,
    },
    /// Lucene regular expression, anchored at both ends.
    Regex(Regex),
    Num(Cmp, f64),
    Bool(bool),
    /// An EQL condition over computed values.
    Check(TypedCheck),
}

/// A field of a [`TypedExpr`], resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub name: String,
    /// `None`: the view never produces it (always null).
    pub field: Option<Field>,
    pub kind: FieldKind,
}

/// An EQL value expression with its fields resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedExpr {
    /// Index into [`TypedCheck::fields`].
    Field(usize),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Call {
        func: Func,
        ci: bool,
        args: Vec<TypedExpr>,
    },
    Arith {
        op: Arith,
        lhs: Box<TypedExpr>,
        rhs: Box<TypedExpr>,
    },
    Neg(Box<TypedExpr>),
}

/// The condition of a [`Check`], typed.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckCond {
    Cmp {
        cmp: Cmp,
        ne: bool,
        lhs: TypedExpr,
        rhs: TypedExpr,
    },
    Match {
        value: TypedExpr,
        patterns: Vec<TypedPattern>,
    },
    In {
        value: TypedExpr,
        items: Vec<TypedExpr>,
        ci: bool,
    },
    Truthy(TypedExpr),
}

/// A pattern of a typed [`CheckCond::Match`].
#[derive(Debug, Clone, PartialEq)]
pub enum TypedPattern {
    Wildcard { toks: Vec<Tok>, ci: bool },
    Regex(Regex),
}

/// A [`Check`] with its fields resolved and its types verified.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedCheck {
    /// The distinct fields it reads; [`TypedExpr::Field`] indexes this.
    pub fields: Vec<FieldRef>,
    pub cond: CheckCond,
}

/// A literal or pattern that does not fit its field's mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    /// Byte offset of the leaf in the query text.
    pub at: usize,
    pub message: String,
}

impl Query<Pred> {
    /// Resolves fields and literal types; the error says which field and value do not fit.
    pub fn typed(self) -> Result<Query<TypedPred>, TypeError> {
        self.try_map(&mut |p: Pred| {
            let at = p.at;
            type_pred(p).map_err(|message| TypeError { at, message })
        })
    }
}

impl Query<TypedPred> {
    /// Fields the query names that the view never produces, with where each is first named.
    pub fn absent_fields(&self) -> Vec<(&str, usize)> {
        let mut out: Vec<(&str, usize)> = Vec::new();
        for p in self.leaves() {
            match &p.test {
                Test::Check(c) => {
                    for f in &c.fields {
                        if f.field.is_none() && !out.iter().any(|(n, _)| *n == f.name) {
                            out.push((&f.name, p.at));
                        }
                    }
                }
                _ => {
                    if p.field.is_none() && !out.iter().any(|(n, _)| *n == p.name) {
                        out.push((&p.name, p.at));
                    }
                }
            }
        }
        out
    }
}

fn type_pred(p: Pred) -> Result<TypedPred, String> {
    if let Op::Check(c) = p.op {
        return Ok(TypedPred {
            name: p.field,
            field: None,
            kind: FieldKind::Keyword,
            test: Test::Check(type_check(c)?),
            at: p.at,
        });
    }
    let field = Field::from_name(&p.field);
    let kind = field.map_or_else(|| kind_of(&p.field), Field::kind);
    let name = p.field;
    let mismatch = |what: &str| format!("{what} cannot be compared with field `{name}` ({kind:?})");
    let test = match p.op {
        Op::Exists => Test::Exists,
        Op::Compare(cmp, lit) => match (kind, lit) {
            (FieldKind::Keyword | FieldKind::Wildcard, Lit::Text(s) | Lit::Str(s)) => {
                Test::Str(cmp, s)
            }
            (FieldKind::Long, Lit::Num(n)) => Test::Num(cmp, n),
            (FieldKind::Long, Lit::Text(s)) => match s.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Test::Num(cmp, n),
                _ => return Err(format!("`{s}` is not a number (field `{name}` is numeric)")),
            },
            (FieldKind::Bool, Lit::Bool(b)) if cmp == Cmp::Eq => Test::Bool(b),
            (FieldKind::Bool, Lit::Text(s)) if cmp == Cmp::Eq => match s.as_str() {
                "true" => Test::Bool(true),
                "false" => Test::Bool(false),
                _ => {
                    return Err(format!(
                        "`{s}` is not a boolean (field `{name}` is boolean)"
                    ));
                }
            },
            (_, Lit::Str(_)) => return Err(mismatch("a string")),
            (_, Lit::Num(_)) => return Err(mismatch("a number")),
            (_, Lit::Bool(_)) => return Err(mismatch("a boolean")),
            (FieldKind::Bool, Lit::Text(_)) => return Err(mismatch("a range")),
        },
        Op::Pattern { toks, ci } => match kind {
            FieldKind::Keyword | FieldKind::Wildcard => Test::Pattern { toks, ci },
            _ => return Err(mismatch("a wildcard pattern")),
        },
        Op::Regex { pattern, ci } => match kind {
            FieldKind::Keyword | FieldKind::Wildcard => Test::Regex(Regex::new(&pattern, ci)?),
            _ => return Err(mismatch("a regular expression")),
        },
        Op::Check(_) => return Err("internal: a check typed as a field test".into()),
    };
    Ok(TypedPred {
        name,
        field,
        kind,
        test,
        at: p.at,
    })
}

/// What an expression evaluates to, as far as it is known before any event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Num,
    Bool,
    /// `null`, or a field the view never produces.
    Null,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
            Ty::Null => "null",
        }
    }

    fn fits(self, want: Ty) -> bool {
        self == want || self == Ty::Null
    }
}

struct CheckTyper {
    fields: Vec<FieldRef>,
}

fn type_check(c: Check) -> Result<TypedCheck, String> {
    let mut t = CheckTyper { fields: Vec::new() };
    let cond = match c {
        Check::Cmp { cmp, ne, lhs, rhs } => {
            let (lhs, lt) = t.expr(lhs)?;
            let (rhs, rt) = t.expr(rhs)?;
            if lt != Ty::Null && rt != Ty::Null && lt != rt {
                return Err(format!(
                    "{} cannot be compared with {}",
                    lt.name(),
                    rt.name()
                ));
            }
            if cmp != Cmp::Eq && (lt == Ty::Bool || rt == Ty::Bool) {
                return Err("booleans can only be compared with `==` or `!=`".into());
            }
            CheckCond::Cmp { cmp, ne, lhs, rhs }
        }
        Check::Match { value, patterns } => {
            let (value, vt) = t.expr(value)?;
            if !vt.fits(Ty::Str) {
                return Err(format!("{} cannot be matched against a pattern", vt.name()));
            }
            let patterns = patterns
                .into_iter()
                .map(|p| match p {
                    MatchPattern::Wildcard { toks, ci } => Ok(TypedPattern::Wildcard { toks, ci }),
                    MatchPattern::Regex { pattern, ci } => {
                        Regex::new(&pattern, ci).map(TypedPattern::Regex)
                    }
                })
                .collect::<Result<_, String>>()?;
            CheckCond::Match { value, patterns }
        }
        Check::In { value, items, ci } => {
            let (value, vt) = t.expr(value)?;
            let mut typed = Vec::new();
            for item in items {
                let (item, it) = t.expr(item)?;
                if vt != Ty::Null && it != Ty::Null && vt != it {
                    return Err(format!(
                        "{} cannot be compared with {}",
                        vt.name(),
                        it.name()
                    ));
                }
                typed.push(item);
            }
            CheckCond::In {
                value,
                items: typed,
                ci,
            }
        }
        Check::Truthy(e) => {
            let (e, ty) = t.expr(e)?;
            if !ty.fits(Ty::Bool) {
                return Err(format!("expected a condition, found {}", ty.name()));
            }
            CheckCond::Truthy(e)
        }
    };
    Ok(TypedCheck {
        fields: t.fields,
        cond,
    })
}

impl CheckTyper {
    fn field(&mut self, name: String) -> (usize, Ty) {
        let field = Field::from_name(&name);
        let kind = field.map_or_else(|| kind_of(&name), Field::kind);
        let ty = match (field, kind) {
            (None, _) => Ty::Null,
            (Some(_), FieldKind::Keyword | FieldKind::Wildcard) => Ty::Str,
            (Some(_), FieldKind::Long) => Ty::Num,
            (Some(_), FieldKind::Bool) => Ty::Bool,
        };
        if let Some(i) = self.fields.iter().position(|f| f.name == name) {
            return (i, ty);
        }
        self.fields.push(FieldRef { name, field, kind });
        (self.fields.len() - 1, ty)
    }

    fn expr(&mut self, e: Expr) -> Result<(TypedExpr, Ty), String> {
        Ok(match e {
            Expr::Field { name, .. } => {
                let (i, ty) = self.field(name);
                (TypedExpr::Field(i), ty)
            }
            Expr::Str(s) => (TypedExpr::Str(s), Ty::Str),
            Expr::Num { int: Some(n), .. } => (TypedExpr::Int(n), Ty::Num),
            Expr::Num { value, .. } => (TypedExpr::Float(value), Ty::Num),
            Expr::Bool(b) => (TypedExpr::Bool(b), Ty::Bool),
            Expr::Null => (TypedExpr::Null, Ty::Null),
            Expr::Neg(inner) => {
                let (inner, ty) = self.expr(*inner)?;
                if !ty.fits(Ty::Num) {
                    return Err(format!("`-` needs a number, found {}", ty.name()));
                }
                (TypedExpr::Neg(Box::new(inner)), Ty::Num)
            }
            Expr::Arith { op, lhs, rhs } => {
                let (lhs, lt) = self.expr(*lhs)?;
                let (rhs, rt) = self.expr(*rhs)?;
                for ty in [lt, rt] {
                    if !ty.fits(Ty::Num) {
                        return Err(format!("arithmetic needs numbers, found {}", ty.name()));
                    }
                }
                (
                    TypedExpr::Arith {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    },
                    Ty::Num,
                )
            }
            Expr::Call { func, ci, args, .. } => {
                let mut typed = Vec::new();
                let mut tys = Vec::new();
                for a in args {
                    let (a, ty) = self.expr(a)?;
                    typed.push(a);
                    tys.push(ty);
                }
                let ret = call_type(func, &tys, &typed)?;
                (
                    TypedExpr::Call {
                        func,
                        ci,
                        args: typed,
                    },
                    ret,
                )
            }
        })
    }
}

/// Verifies a call's argument types; its result type.
fn call_type(func: Func, tys: &[Ty], args: &[TypedExpr]) -> Result<Ty, String> {
    let want = |i: usize, ty: Ty| -> Result<(), String> {
        match tys.get(i) {
            Some(t) if !t.fits(ty) => Err(format!(
                "argument {} of `{func:?}` must be {}, found {}",
                i + 1,
                ty.name(),
                t.name()
            )),
            _ => Ok(()),
        }
    };
    Ok(match func {
        Func::Add | Func::Subtract | Func::Multiply | Func::Divide | Func::Modulo => {
            want(0, Ty::Num)?;
            want(1, Ty::Num)?;
            Ty::Num
        }
        Func::Between => {
            (0..3).try_for_each(|i| want(i, Ty::Str))?;
            want(3, Ty::Bool)?;
            Ty::Str
        }
        Func::CidrMatch => {
            want(0, Ty::Str)?;
            for (i, a) in args.iter().enumerate().skip(1) {
                match a {
                    TypedExpr::Str(s) => {
                        crate::check::cidr::Cidr::parse(s)
                            .map_err(|e| format!("`cidrMatch`: {e}"))?;
                    }
                    TypedExpr::Null => {}
                    _ => {
                        return Err(format!(
                            "argument {} of `cidrMatch` must be a CIDR block in quotes",
                            i + 1
                        ));
                    }
                }
            }
            Ty::Bool
        }
        Func::Concat => Ty::Str,
        Func::EndsWith | Func::StartsWith | Func::StringContains => {
            want(0, Ty::Str)?;
            want(1, Ty::Str)?;
            Ty::Bool
        }
        Func::IndexOf => {
            want(0, Ty::Str)?;
            want(1, Ty::Str)?;
            want(2, Ty::Num)?;
            Ty::Num
        }
        Func::Length => {
            want(0, Ty::Str)?;
            Ty::Num
        }
        Func::Number => {
            want(0, Ty::Str)?;
            want(1, Ty::Num)?;
            Ty::Num
        }
        Func::String => Ty::Str,
        Func::Substring => {
            want(0, Ty::Str)?;
            want(1, Ty::Num)?;
            want(2, Ty::Num)?;
            Ty::Str
        }
        Func::Wildcard => {
            want(0, Ty::Str)?;
            for (i, a) in args.iter().enumerate().skip(1) {
                if !matches!(a, TypedExpr::Str(_)) {
                    return Err(format!(
                        "argument {} of `wildcard` must be a pattern in quotes",
                        i + 1
                    ));
                }
            }
            Ty::Bool
        }
    })
}
