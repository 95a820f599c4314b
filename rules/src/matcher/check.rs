//! [`Check`](crate::query::ast::Check) leaves: EQL conditions over computed values,
//! evaluated by [`crate::check`] on the event's field values.

use crate::check::{CompiledCheck, Fields, MAX_FIELDS, V};
use crate::ecs::{EcsEvent, Field, FieldKind, Shape, Value, within_ignore_above};
use crate::query::typing::TypedCheck;

use super::eval::{Scratch, args_iter, decimal};

#[derive(Debug)]
pub(super) struct CheckLeaf {
    check: CompiledCheck,
    /// The check's fields, resolved (`None`: never produced, always null).
    slots: Box<[(Option<Field>, bool)]>,
    /// Under `not`: true only when the condition is false (a null stays false).
    pub(super) negated: bool,
}

/// No field at all: what a condition is when every field it reads is never produced.
struct NoFields;

impl Fields for NoFields {
    fn count(&self, _i: usize) -> usize {
        0
    }
    fn get(&self, _i: usize, _k: usize) -> V<'_> {
        V::Null
    }
}

impl CheckLeaf {
    /// The fields the condition reads (those the event shape can carry).
    pub(super) fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.slots.iter().filter_map(|(f, _)| *f)
    }

    /// For events of `shape`: a field the shape never carries is null.
    pub(super) fn new(c: &TypedCheck, shape: Shape) -> Result<CheckLeaf, String> {
        let check = CompiledCheck::new(c)?;
        let slots = check
            .fields()
            .iter()
            .map(|f| {
                (
                    f.field.filter(|id| shape.can_carry(*id)),
                    f.kind == FieldKind::Keyword,
                )
            })
            .collect();
        Ok(CheckLeaf {
            check,
            slots,
            negated: false,
        })
    }

    /// Its value for every event, when none of its fields is ever produced: `Some(None)` is
    /// a constant null (false, and so is its negation).
    pub(super) fn constant(&self) -> Option<Option<bool>> {
        self.slots
            .iter()
            .all(|(f, _)| f.is_none())
            .then(|| self.check.eval(&NoFields))
    }

    /// Whether it reads `process.command_line` (joined in the scratch buffer).
    pub(super) fn reads(&self, field: Field) -> bool {
        self.slots.iter().any(|(f, _)| *f == Some(field))
    }

    pub(super) fn holds(&self, ev: &EcsEvent<'_>, sc: &mut Scratch) -> bool {
        let mut values: [Value<'_>; MAX_FIELDS] = std::array::from_fn(|_| Value::Missing);
        let mut joined = false;
        for (i, (field, _)) in self.slots.iter().enumerate() {
            if let Some(f) = field {
                values[i] = ev.value(*f);
                joined |= matches!(values[i], Value::Joined(_));
            }
        }
        let line = values
            .iter()
            .find_map(|v| match v {
                Value::Joined(a) if joined => Some(*a),
                _ => None,
            })
            .map(|a| sc.command_line(a, true));
        let mut ids = [[0u8; 10]; MAX_FIELDS];
        let mut id_lens = [0usize; MAX_FIELDS];
        for (i, v) in values.iter().enumerate() {
            if let Value::Id(n) = v {
                id_lens[i] = decimal(*n, &mut ids[i]).len();
            }
        }
        let fields = EventFields {
            values: &values[..self.slots.len()],
            keyword: &self.slots,
            line,
            ids: &ids,
            id_lens: &id_lens,
        };
        match self.check.eval(&fields) {
            Some(b) => b != self.negated,
            None => false,
        }
    }
}

/// The check's field values for one event.
struct EventFields<'v, 'e> {
    values: &'v [Value<'e>],
    keyword: &'v [(Option<Field>, bool)],
    /// `process.command_line` joined with spaces.
    line: Option<&'v str>,
    /// Decimal ids (`user.id`), right-aligned in their buffers.
    ids: &'v [[u8; 10]; MAX_FIELDS],
    id_lens: &'v [usize; MAX_FIELDS],
}

impl EventFields<'_, '_> {
    /// A keyword value over `ignore_above` has no doc value: it reads as null.
    fn visible<'s>(&self, i: usize, s: &'s str) -> V<'s> {
        if self.keyword[i].1 && !within_ignore_above(s) {
            V::Null
        } else {
            V::Str(std::borrow::Cow::Borrowed(s))
        }
    }
}

impl Fields for EventFields<'_, '_> {
    fn count(&self, i: usize) -> usize {
        match &self.values[i] {
            Value::Missing => 0,
            Value::Args(a) => a.len(),
            _ => 1,
        }
    }

    fn get(&self, i: usize, k: usize) -> V<'_> {
        match &self.values[i] {
            Value::Missing => V::Null,
            Value::Str(s) => self.visible(i, s),
            Value::Shared(s) => self.visible(i, s),
            Value::Entity(e) => self.visible(i, e.as_str()),
            Value::Args(a) => match args_iter(a).nth(k) {
                Some(s) => self.visible(i, s),
                None => V::Null,
            },
            Value::Joined(_) => self.line.map_or(V::Null, |l| self.visible(i, l)),
            Value::Id(_) => {
                let buf = &self.ids[i];
                let s = std::str::from_utf8(&buf[buf.len() - self.id_lens[i]..]).unwrap_or("");
                V::Str(std::borrow::Cow::Borrowed(s))
            }
            Value::Long(n) => V::Int(*n),
            Value::Bool(b) => V::Bool(*b),
        }
    }
}
