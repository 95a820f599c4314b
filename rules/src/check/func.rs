//! EQL's function library, with Elasticsearch's null handling: a null argument makes a null
//! result (except where the reference says otherwise), string positions count UTF-16 units
//! as Java's do, and `~` variants compare ignoring case.

use std::borrow::Cow;

use super::V;
use crate::pattern::ci_char_eq;
use crate::query::ast::{Arith, Func};

/// Calls `func` on evaluated arguments (`cidrMatch` and `wildcard` are evaluated by the
/// caller, which holds their compiled blocks and patterns).
/// `written` is how many arguments the call has; `args` yields them (evaluated lazily, so
/// nothing is collected).
pub fn call<'a>(
    func: Func,
    ci: bool,
    written: usize,
    mut args: impl Iterator<Item = V<'a>>,
) -> V<'a> {
    let mut next = || args.next().unwrap_or(V::Null);
    match func {
        Func::Add => arith(Arith::Add, next(), next()),
        Func::Subtract => arith(Arith::Sub, next(), next()),
        Func::Multiply => arith(Arith::Mul, next(), next()),
        Func::Divide => arith(Arith::Div, next(), next()),
        Func::Modulo => arith(Arith::Mod, next(), next()),
        Func::StartsWith => two_strings(next(), next(), |s, p| starts_with(s, p, ci)),
        Func::EndsWith => two_strings(next(), next(), |s, p| ends_with(s, p, ci)),
        Func::StringContains => two_strings(next(), next(), |s, p| {
            !p.is_empty() && contains(s, p, ci).is_some()
        }),
        Func::Length => match next() {
            V::Str(s) => V::Int(s.encode_utf16().count() as i64),
            _ => V::Null,
        },
        Func::Concat => {
            let mut out = String::new();
            for _ in 0..written {
                match next().to_text() {
                    Some(t) => out.push_str(&t),
                    None => return V::Null,
                }
            }
            V::Str(Cow::Owned(out))
        }
        Func::String => match next().to_text() {
            Some(t) => V::Str(Cow::Owned(t)),
            None => V::Null,
        },
        Func::Number => {
            let s = next();
            let base = next();
            match (s, base) {
                (V::Str(s), V::Null) => number(&s, None),
                (V::Str(s), V::Int(b)) => number(&s, u32::try_from(b).ok()),
                _ => V::Null,
            }
        }
        Func::IndexOf => {
            let (s, p, start) = (next(), next(), next());
            let start = match start {
                V::Null if written < 3 => 0,
                V::Int(n) => n.max(0),
                _ => return V::Null,
            };
            match (s, p) {
                (V::Str(s), V::Str(p)) => index_of(&s, &p, start as usize, ci),
                _ => V::Null,
            }
        }
        Func::Substring => {
            let (s, start, end) = (next(), next(), next());
            let V::Str(s) = s else { return V::Null };
            let V::Int(start) = start else {
                return V::Null;
            };
            let end = match end {
                V::Int(e) => Some(e),
                V::Null => None,
                _ => return V::Null,
            };
            substring(s, start, end)
        }
        Func::Between => {
            let (s, l, r, greedy) = (next(), next(), next(), next());
            let greedy = match greedy {
                V::Bool(g) => g,
                V::Null => false,
                _ => return V::Null,
            };
            match (s, l, r) {
                (V::Str(s), V::Str(l), V::Str(r)) => between(s, &l, &r, greedy, ci),
                _ => V::Null,
            }
        }
        Func::CidrMatch | Func::Wildcard => V::Null,
    }
}

/// `+ - * /  %`: integers stay integers (division truncates, as Java's does); any float
/// makes a float; division by zero is null.
pub fn arith<'a>(op: Arith, a: V<'_>, b: V<'_>) -> V<'a> {
    match (a, b) {
        (V::Int(a), V::Int(b)) => match op {
            Arith::Add => a.checked_add(b).map_or(V::Null, V::Int),
            Arith::Sub => a.checked_sub(b).map_or(V::Null, V::Int),
            Arith::Mul => a.checked_mul(b).map_or(V::Null, V::Int),
            Arith::Div => a.checked_div(b).map_or(V::Null, V::Int),
            Arith::Mod => a.checked_rem(b).map_or(V::Null, V::Int),
        },
        (a, b) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
                return V::Null;
            };
            let r = match op {
                Arith::Add => a + b,
                Arith::Sub => a - b,
                Arith::Mul => a * b,
                Arith::Div if b == 0.0 => return V::Null,
                Arith::Div => a / b,
                Arith::Mod if b == 0.0 => return V::Null,
                Arith::Mod => a % b,
            };
            V::Float(r)
        }
    }
}

fn two_strings<'a>(s: V<'_>, p: V<'_>, f: impl FnOnce(&str, &str) -> bool) -> V<'a> {
    match (s, p) {
        (V::Str(s), V::Str(p)) => V::Bool(f(&s, &p)),
        _ => V::Null,
    }
}

fn starts_with(s: &str, p: &str, ci: bool) -> bool {
    if !ci {
        return s.starts_with(p);
    }
    let mut sc = s.chars();
    p.chars()
        .all(|pc| sc.next().is_some_and(|c| ci_char_eq(pc, c)))
}

fn ends_with(s: &str, p: &str, ci: bool) -> bool {
    if !ci {
        return s.ends_with(p);
    }
    let mut sc = s.chars().rev();
    p.chars()
        .rev()
        .all(|pc| sc.next().is_some_and(|c| ci_char_eq(pc, c)))
}

/// Byte offset of the first occurrence of `p` in `s` at or after byte `from`.
fn contains(s: &str, p: &str, ci: bool) -> Option<usize> {
    contains_from(s, p, 0, ci)
}

fn contains_from(s: &str, p: &str, from: usize, ci: bool) -> Option<usize> {
    let hay = s.get(from..)?;
    if !ci {
        return hay.find(p).map(|i| i + from);
    }
    hay.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(hay.len()))
        .find(|&i| starts_with(&hay[i..], p, true))
        .map(|i| i + from)
}

/// Byte offset where UTF-16 unit `n` starts; `None` past the end.
fn byte_of_unit(s: &str, n: usize) -> Option<usize> {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        if units >= n {
            return Some(i);
        }
        units += c.len_utf16();
    }
    (units >= n).then_some(s.len())
}

fn units_before(s: &str, byte: usize) -> usize {
    s[..byte].encode_utf16().count()
}

fn index_of<'a>(s: &str, p: &str, start: usize, ci: bool) -> V<'a> {
    let Some(from) = byte_of_unit(s, start) else {
        return V::Null;
    };
    match contains_from(s, p, from, ci) {
        Some(i) => V::Int(units_before(s, i) as i64),
        None => V::Null,
    }
}

/// Python-like slicing on UTF-16 positions: negative positions count from the end.
fn substring(s: Cow<'_, str>, start: i64, end: Option<i64>) -> V<'_> {
    let len = s.encode_utf16().count() as i64;
    let norm = |p: i64| if p < 0 { (len + p).max(0) } else { p.min(len) };
    let (a, b) = (norm(start), norm(end.unwrap_or(len)));
    if a >= b {
        return V::Str(Cow::Borrowed(""));
    }
    let (Some(ba), Some(bb)) = (byte_of_unit(&s, a as usize), byte_of_unit(&s, b as usize)) else {
        return V::Str(Cow::Borrowed(""));
    };
    match s {
        Cow::Borrowed(b) => V::Str(Cow::Borrowed(&b[ba..bb])),
        Cow::Owned(o) => V::Str(Cow::Owned(o[ba..bb].to_owned())),
    }
}

fn between<'a>(s: Cow<'a, str>, left: &str, right: &str, greedy: bool, ci: bool) -> V<'a> {
    let Some(l) = contains(&s, left, ci) else {
        return V::Str(Cow::Borrowed(""));
    };
    let start = l + left.len();
    let end = if greedy {
        // The last occurrence of `right` after `left`.
        let mut last = None;
        let mut from = start;
        while let Some(i) = contains_from(&s, right, from, ci) {
            last = Some(i);
            from = i + right.len().max(1);
            if from > s.len() {
                break;
            }
        }
        last
    } else {
        contains_from(&s, right, start, ci)
    };
    let Some(end) = end else {
        return V::Str(Cow::Borrowed(""));
    };
    match s {
        Cow::Borrowed(b) => V::Str(Cow::Borrowed(&b[start..end])),
        Cow::Owned(o) => V::Str(Cow::Owned(o[start..end].to_owned())),
    }
}

/// `number("1337")`, `number("0xdeadbeef")`, `number("ff", 16)`, `number("42.5")`.
fn number<'a>(s: &str, base: Option<u32>) -> V<'a> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (digits, base) = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => (hex, 16),
        None => (digits, base.unwrap_or(10)),
    };
    if !(2..=36).contains(&base) || digits.is_empty() {
        return V::Null;
    }
    if let Ok(n) = i64::from_str_radix(digits, base) {
        return V::Int(if neg { -n } else { n });
    }
    if base == 10
        && let Ok(f) = digits.parse::<f64>()
    {
        return V::Float(if neg { -f } else { f });
    }
    V::Null
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> V<'_> {
        V::Str(Cow::Borrowed(x))
    }

    fn c<'a>(func: Func, ci: bool, args: Vec<V<'a>>) -> V<'a> {
        call(func, ci, args.len(), args.into_iter())
    }

    #[test]
    fn the_reference_examples() {
        let f = |func, args: Vec<V<'static>>| call(func, false, args.len(), args.into_iter());
        assert_eq!(f(Func::Add, vec![V::Int(4), V::Float(0.5)]), V::Float(4.5));
        assert_eq!(f(Func::Divide, vec![V::Int(4), V::Int(3)]), V::Int(1));
        assert_eq!(f(Func::Divide, vec![V::Int(4), V::Int(0)]), V::Null);
        assert_eq!(f(Func::Modulo, vec![V::Int(10), V::Int(-6)]), V::Int(4));
        assert_eq!(f(Func::Modulo, vec![V::Int(-10), V::Int(-6)]), V::Int(-4));
        assert_eq!(f(Func::Add, vec![V::Null, V::Int(4)]), V::Null);
        let path = "C:\\Windows\\System32\\cmd.exe";
        assert_eq!(
            c(
                Func::Between,
                false,
                vec![s(path), s("System32\\"), s(".exe"), V::Null]
            ),
            s("cmd")
        );
        assert_eq!(
            c(
                Func::Between,
                false,
                vec![s(path), s("\\"), s("\\"), V::Bool(true)]
            ),
            s("Windows\\System32")
        );
        assert_eq!(
            c(
                Func::Between,
                false,
                vec![s(path), s("\\"), s("\\"), V::Bool(false)]
            ),
            s("Windows")
        );
        assert_eq!(
            c(
                Func::Between,
                false,
                vec![s(path), s("workspace\\"), s(".exe"), V::Null]
            ),
            s("")
        );
        let d = "subdomain.example.com";
        assert_eq!(c(Func::IndexOf, false, vec![s(d), s(".")]), V::Int(9));
        assert_eq!(
            c(Func::IndexOf, false, vec![s(d), s("."), V::Null]),
            V::Null
        );
        assert_eq!(
            c(Func::IndexOf, false, vec![s(d), s("."), V::Int(10)]),
            V::Int(17)
        );
        assert_eq!(
            c(Func::IndexOf, false, vec![s(d), s("."), V::Int(-6)]),
            V::Int(9)
        );
        assert_eq!(
            c(Func::IndexOf, false, vec![s(d), s(""), V::Int(10)]),
            V::Int(10)
        );
        assert_eq!(
            c(Func::IndexOf, false, vec![s(d), s("z"), V::Int(0)]),
            V::Null
        );
        assert_eq!(
            c(Func::IndexOf, false, vec![s(d), s("."), V::Int(30)]),
            V::Null
        );
        let t = "start regsvr32.exe";
        assert_eq!(
            c(Func::Substring, false, vec![s(t), V::Int(6), V::Null]),
            s("regsvr32.exe")
        );
        assert_eq!(
            c(Func::Substring, false, vec![s(t), V::Int(-4), V::Int(-1)]),
            s(".ex")
        );
        assert_eq!(
            c(Func::Substring, false, vec![s(t), V::Int(6), V::Int(14)]),
            s("regsvr32")
        );
        assert_eq!(c(Func::Length, false, vec![s("explorer.exe")]), V::Int(12));
        assert_eq!(c(Func::Length, false, vec![V::Null]), V::Null);
        assert_eq!(
            c(
                Func::Concat,
                false,
                vec![s("regsvr32.exe"), s(" "), V::Int(42)]
            ),
            s("regsvr32.exe 42")
        );
        assert_eq!(c(Func::Concat, false, vec![s("a"), V::Null]), V::Null);
        assert_eq!(
            c(Func::Number, false, vec![s(" 1337 "), V::Null]),
            V::Int(1337)
        );
        assert_eq!(
            c(Func::Number, false, vec![s("0xdeadbeef"), V::Null]),
            V::Int(3_735_928_559)
        );
        assert_eq!(
            c(Func::Number, false, vec![s("deadbeef"), V::Int(16)]),
            V::Int(3_735_928_559)
        );
        assert_eq!(
            c(Func::Number, false, vec![s("42.5"), V::Null]),
            V::Float(42.5)
        );
        assert_eq!(
            c(Func::Number, false, vec![s("-1337"), V::Null]),
            V::Int(-1337)
        );
        assert_eq!(
            c(
                Func::StringContains,
                false,
                vec![s("start regsvr32.exe"), s("regsvr32")]
            ),
            V::Bool(true)
        );
        assert_eq!(
            c(Func::StringContains, false, vec![s(""), s("")]),
            V::Bool(false)
        );
        assert_eq!(c(Func::EndsWith, false, vec![s(""), s("")]), V::Bool(true));
        assert_eq!(
            c(Func::StartsWith, true, vec![s("RegSvr32.exe"), s("regsvr")]),
            V::Bool(true)
        );
        assert_eq!(
            c(
                Func::StartsWith,
                false,
                vec![s("RegSvr32.exe"), s("regsvr")]
            ),
            V::Bool(false)
        );
        assert_eq!(c(Func::StartsWith, false, vec![V::Null, s("x")]), V::Null);
        assert_eq!(
            c(Func::EndsWith, true, vec![s("A.EXE"), s(".exe")]),
            V::Bool(true)
        );
    }
}
