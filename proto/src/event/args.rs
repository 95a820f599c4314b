//! argv, bounded without losing its ends.
//!
//! A long argv keeps its first arguments (the head: at most [`HEAD_ARGS`] arguments and
//! [`HEAD_ARGV_BYTES`] bytes) and its last ones (the tail: [`TAIL_ARGS`], [`TAIL_ARGV_BYTES`]);
//! only the middle is dropped, and the true argument count is kept. Padding argv to push an
//! argument out of view therefore fails at either end: `kcc --cache=x ×5000 copy_cred_cache`
//! keeps `copy_cred_cache` in the tail and reports `args_count` 5002. An argument hidden in a
//! dropped middle is unknown, not absent: the rule engine treats a rule whose outcome depends
//! on it conservatively (see `docs/security.md`, "argv bounds").

use std::borrow::Cow;
use std::collections::VecDeque;

use bincode::{BorrowDecode, Encode};

/// Most arguments kept from the start of a long argv.
pub const HEAD_ARGS: usize = 768;
/// Most argv bytes kept from the start of a long argv, separators included.
pub const HEAD_ARGV_BYTES: usize = 48 * 1024;
/// Most arguments kept from the end of a long argv.
pub const TAIL_ARGS: usize = 256;
/// Most argv bytes kept from the end of a long argv, separators included.
pub const TAIL_ARGV_BYTES: usize = 16 * 1024;

use super::{MAX_ARGS, MAX_ARGV_BYTES};

/// argv as one NUL-separated string plus counts.
///
/// Kept flat so that decoding an event needs no `Vec` (no allocation on the hot path) and so
/// a kernel argv block (already NUL-separated) can be used as is. argv never contains NUL.
/// Invariants (checked on decode): `count` arguments are in `joined`; `head <= count <= total`.
/// `total > count` means arguments were dropped from the middle; `head < count` means the
/// held arguments after the first `head` are argv's last ones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct Args<'a> {
    joined: Cow<'a, str>,
    /// Arguments held in `joined`.
    count: u32,
    /// The process's real argument count (`argc`).
    total: u32,
    /// How many of the held arguments are argv's first ones; the rest are its last ones.
    head: u32,
}

impl<'a> Args<'a> {
    /// Builds argv from a NUL-separated block holding exactly `count` arguments, all of argv.
    /// Returns `None` when the block and the count disagree or a bound is broken.
    pub fn from_joined(joined: Cow<'a, str>, count: u32) -> Option<Self> {
        Args::from_parts(joined, count, count, count)
    }

    /// Builds argv from a NUL-separated block of `count` arguments, the first `head` of
    /// which start argv and the rest end it, out of `total` arguments in all.
    pub fn from_parts(joined: Cow<'a, str>, count: u32, total: u32, head: u32) -> Option<Self> {
        let args = Args {
            joined,
            count,
            total,
            head,
        };
        args.is_consistent().then_some(args)
    }

    /// Builds argv from a NUL-separated block of every argument (at least one: `""` is one
    /// empty argument), counting them. Returns `None` when [`MAX_ARGS`] or
    /// [`MAX_ARGV_BYTES`] is broken (the caller cuts it with [`ArgsBuilder`]).
    pub fn from_separated(joined: Cow<'a, str>) -> Option<Self> {
        if joined.len() > MAX_ARGV_BYTES {
            return None;
        }
        let count = nul_count(joined.as_bytes()) + 1;
        if count > MAX_ARGS {
            return None;
        }
        // Within `MAX_ARGS`, so it fits.
        let count = count as u32;
        Some(Args {
            joined,
            count,
            total: count,
            head: count,
        })
    }

    /// Builds argv from separate strings, applying the bounds; the flag says whether
    /// anything was cut or dropped. NUL bytes inside an argument (impossible in a real argv,
    /// possible in hostile JSON) become U+FFFD.
    pub fn from_strs<I, S>(iter: I) -> (Args<'static>, bool)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut builder = ArgsBuilder::default();
        for arg in iter {
            builder.push(arg.as_ref());
        }
        let cut = builder.is_cut();
        (builder.into_args(), cut)
    }

    /// Number of arguments held.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no argument is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The process's real argument count (`process.args_count`).
    pub fn total(&self) -> usize {
        self.total as usize
    }

    /// Arguments dropped from the middle of argv.
    pub fn elided(&self) -> usize {
        (self.total - self.count) as usize
    }

    /// How many held arguments start argv (the rest end it).
    pub fn head_len(&self) -> usize {
        self.head as usize
    }

    /// The held arguments in order: the head, then the tail.
    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        let n = self.count as usize;
        self.joined.split('\0').take(n)
    }

    /// The NUL-separated block; `process.command_line` is this with NUL replaced by space.
    pub fn joined(&self) -> &str {
        &self.joined
    }

    /// Bytes of heap this value holds (its buffer's capacity; 0 when borrowed), so a table
    /// of many argvs can keep to a memory budget.
    pub fn heap_bytes(&self) -> usize {
        match &self.joined {
            Cow::Owned(s) => s.capacity(),
            Cow::Borrowed(_) => 0,
        }
    }

    /// Appends one argument to a short list (a parent's argv kept to a budget, environment
    /// entries); returns `false`, appending nothing more, once [`MAX_ARGS`] or
    /// [`MAX_ARGV_BYTES`] is reached. An argument that does not fit whole is cut to the room
    /// left. Long argvs are built with [`ArgsBuilder`], which keeps their tail too.
    pub fn push(&mut self, arg: &str) -> bool {
        if self.count as usize >= MAX_ARGS || self.count != self.total {
            return false;
        }
        let sep = usize::from(self.count > 0);
        let room = MAX_ARGV_BYTES.saturating_sub(self.joined.len() + sep);
        if room == 0 && !arg.is_empty() {
            return false;
        }
        let joined = self.joined.to_mut();
        if sep == 1 {
            joined.push('\0');
        }
        let (cut, was_cut) = super::cut_str(arg, room);
        push_clean(joined, cut);
        if joined.len() > MAX_ARGV_BYTES {
            let end = super::floor_char_boundary(joined, MAX_ARGV_BYTES);
            joined.truncate(end);
        }
        self.count += 1;
        self.total += 1;
        self.head += 1;
        !was_cut
    }

    /// Removes every argument, keeping an owned buffer (for reuse without allocation).
    pub fn clear(&mut self) {
        match &mut self.joined {
            Cow::Owned(s) => s.clear(),
            Cow::Borrowed(_) => self.joined = Cow::Borrowed(""),
        }
        self.count = 0;
        self.total = 0;
        self.head = 0;
    }

    /// Replaces the content with a copy of `other`, reusing this value's buffer.
    pub fn clone_from_args(&mut self, other: &Args<'_>) {
        let joined = self.joined.to_mut();
        joined.clear();
        joined.push_str(&other.joined);
        self.count = other.count;
        self.total = other.total;
        self.head = other.head;
    }

    /// Copies borrowed storage so the value can outlive its source.
    pub fn into_owned(self) -> Args<'static> {
        Args {
            joined: Cow::Owned(self.joined.into_owned()),
            count: self.count,
            total: self.total,
            head: self.head,
        }
    }

    pub(crate) fn is_consistent(&self) -> bool {
        let shape = self.head <= self.count
            && self.count <= self.total
            && self.count as usize <= MAX_ARGS
            && self.joined.len() <= MAX_ARGV_BYTES;
        if !shape {
            return false;
        }
        if self.count == 0 {
            return self.joined.is_empty();
        }
        nul_count(self.joined.as_bytes()) + 1 == self.count as usize
    }
}

/// Builds an [`Args`] one argument at a time, keeping argv's head and tail within the bounds.
///
/// Reusable: [`ArgsBuilder::clear`] keeps every buffer, so building argv allocates nothing once
/// the buffers have grown. Arguments past the head bounds are held in a sliding window of the
/// last ones (which allocates only for such long argvs).
#[derive(Debug, Default)]
pub struct ArgsBuilder {
    /// Held arguments, NUL-separated: everything while argv fits, the head once it does not.
    joined: String,
    count: u32,
    total: u32,
    /// (count, byte length of `joined`) where the head ends if argv turns out too long: the
    /// first point past [`HEAD_ARGS`] or [`HEAD_ARGV_BYTES`].
    split: Option<(u32, usize)>,
    /// Set once argv is known not to fit: `joined` is the head, the tail is in `window`.
    overflowed: bool,
    window: VecDeque<String>,
    window_bytes: usize,
    /// Spare strings for the window.
    spare: Vec<String>,
    /// Bytes of an argument were cut.
    cut_bytes: bool,
}

impl ArgsBuilder {
    /// A builder whose buffer holds `bytes` of argv before it grows.
    pub fn with_capacity(bytes: usize) -> ArgsBuilder {
        ArgsBuilder {
            joined: String::with_capacity(bytes),
            ..ArgsBuilder::default()
        }
    }

    /// Starts over, keeping the buffers.
    pub fn clear(&mut self) {
        self.joined.clear();
        self.count = 0;
        self.total = 0;
        self.split = None;
        self.overflowed = false;
        while let Some(s) = self.window.pop_front() {
            self.spare.push(s);
        }
        self.window_bytes = 0;
        self.cut_bytes = false;
    }

    /// Whether anything was dropped or cut so far.
    pub fn is_cut(&self) -> bool {
        self.overflowed || self.cut_bytes
    }

    /// Arguments pushed so far (the true count).
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Adds the next argument.
    pub fn push(&mut self, arg: &str) {
        self.total = self.total.saturating_add(1);
        if !self.overflowed {
            let sep = usize::from(self.count > 0);
            if (self.count as usize) < MAX_ARGS
                && self.joined.len() + sep + arg.len() <= MAX_ARGV_BYTES
            {
                if self.split.is_none()
                    && (self.count as usize >= HEAD_ARGS
                        || self.joined.len() + sep + arg.len() > HEAD_ARGV_BYTES)
                {
                    self.split = Some((self.count, self.joined.len()));
                }
                if sep == 1 {
                    self.joined.push('\0');
                }
                push_clean(&mut self.joined, arg);
                self.count += 1;
                return;
            }
            self.overflow();
        }
        self.push_tail(arg);
    }

    /// Records that `n` arguments are missing at this point (a source that could read only
    /// argv's two ends, like the Linux probe): they count towards the total, and what is
    /// pushed next is argv's tail.
    pub fn elide(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.total = self.total.saturating_add(n);
        if !self.overflowed {
            if self.split.is_none() {
                self.split = Some((self.count, self.joined.len()));
            }
            self.overflow();
        }
    }

    /// Argv does not fit: everything past the split moves to the window.
    fn overflow(&mut self) {
        self.overflowed = true;
        let (count, at) = self.split.unwrap_or((self.count, self.joined.len()));
        if count < self.count {
            // Into spare strings: a long argv every exec allocates nothing once warmed up.
            for arg in self.joined[at..].trim_start_matches('\0').split('\0') {
                let mut s = self.spare.pop().unwrap_or_default();
                s.clear();
                s.push_str(arg);
                self.window_bytes += s.len() + 1;
                self.window.push_back(s);
            }
        }
        self.joined.truncate(at);
        self.count = count;
        self.trim_window();
    }

    fn push_tail(&mut self, arg: &str) {
        let mut s = self.spare.pop().unwrap_or_default();
        s.clear();
        let (kept, cut) = super::cut_str(arg, TAIL_ARGV_BYTES - 1);
        self.cut_bytes |= cut;
        push_clean(&mut s, kept);
        self.window_bytes += s.len() + 1;
        self.window.push_back(s);
        self.trim_window();
    }

    fn trim_window(&mut self) {
        while self.window.len() > TAIL_ARGS || self.window_bytes > TAIL_ARGV_BYTES {
            match self.window.pop_front() {
                Some(old) => {
                    self.window_bytes -= old.len() + 1;
                    self.spare.push(old);
                }
                None => break,
            }
        }
    }

    /// Moves the window after the head.
    fn finish(&mut self) -> (u32, u32) {
        let head = self.count;
        if self.overflowed {
            for arg in self.window.drain(..) {
                if self.count > 0 {
                    self.joined.push('\0');
                }
                self.joined.push_str(&arg);
                self.count += 1;
                self.spare.push(arg);
            }
            self.window_bytes = 0;
        }
        (head, self.count)
    }

    /// The argv built so far, borrowing the builder's buffer. Call [`ArgsBuilder::clear`]
    /// before building the next one.
    pub fn args(&mut self) -> Args<'_> {
        let (head, count) = self.finish();
        let total = if self.overflowed { self.total } else { count };
        Args {
            joined: Cow::Borrowed(&self.joined),
            count,
            total,
            head: if self.overflowed { head } else { count },
        }
    }

    /// The argv built, owning the builder's buffer.
    pub fn into_args(mut self) -> Args<'static> {
        let (head, count) = self.finish();
        let total = if self.overflowed { self.total } else { count };
        Args {
            joined: Cow::Owned(std::mem::take(&mut self.joined)),
            count,
            total,
            head: if self.overflowed { head } else { count },
        }
    }
}

/// NUL bytes in `b`: the argument separators of a joined argv. A typical argv is tens of
/// bytes, where a word at a time beats `memchr`'s setup; long ones go to `memchr`.
pub fn nul_count(b: &[u8]) -> usize {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    if b.len() >= 256 {
        return memchr::memchr_iter(0, b).count();
    }
    let mut words = b.chunks_exact(8);
    // One counter per byte lane: at most 31 words, so no lane (nor their sum) reaches 256.
    let mut lanes = 0u64;
    for w in &mut words {
        let mut v = [0u8; 8];
        v.copy_from_slice(w);
        let w = u64::from_ne_bytes(v);
        // Bit 7 of each byte set exactly when the byte is not 0 (no carry crosses bytes:
        // each byte's low seven bits plus 0x7f is at most 0xfe).
        let nonzero = ((w & LOW7) + LOW7) | w;
        lanes += (!nonzero >> 7) & ONES;
    }
    let in_words = (lanes.wrapping_mul(ONES) >> 56) as usize;
    in_words + words.remainder().iter().filter(|&&c| c == 0).count()
}

/// Appends `arg`, with any NUL (impossible in a real argv) replaced so it cannot split it.
fn push_clean(out: &mut String, arg: &str) {
    if arg.contains('\0') {
        out.push_str(&arg.replace('\0', "\u{FFFD}"));
    } else {
        out.push_str(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(a: &Args<'_>) -> Vec<String> {
        a.iter().map(str::to_owned).collect()
    }

    #[test]
    fn round_trip_including_empty_arguments() {
        let (args, cut) = Args::from_strs(["kcc", "", "copy_cred_cache"]);
        assert!(!cut);
        assert_eq!((args.len(), args.total(), args.head_len()), (3, 3, 3));
        assert_eq!(strs(&args), ["kcc", "", "copy_cred_cache"]);
        let (empty, _) = Args::from_strs(Vec::<String>::new());
        assert_eq!(empty.iter().count(), 0);
        let (one_empty, _) = Args::from_strs([""]);
        assert_eq!(strs(&one_empty), [""]);
        assert!(one_empty.is_consistent() && empty.is_consistent());
    }

    /// `kcc --cache=x ×N copy_cred_cache`: however many paddings, the last argument is kept
    /// and the count is true.
    #[test]
    fn padding_cannot_push_the_last_argument_out() {
        for n in [1021usize, 1022, 1023, 1024, 5000, 100_000] {
            let mut argv = vec!["kcc".to_owned()];
            argv.extend(std::iter::repeat_n("--cache=x".to_owned(), n));
            argv.push("copy_cred_cache".into());
            let (args, cut) = Args::from_strs(&argv);
            assert!(args.is_consistent(), "{n}");
            assert_eq!(args.total(), n + 2, "{n}");
            assert_eq!(
                strs(&args).last().map(String::as_str),
                Some("copy_cred_cache")
            );
            assert_eq!(strs(&args)[0], "kcc");
            assert_eq!(cut, n + 2 > MAX_ARGS, "{n}");
            if cut {
                assert_eq!(args.head_len(), HEAD_ARGS);
                assert_eq!(args.len(), MAX_ARGS);
                assert_eq!(args.elided(), n + 2 - MAX_ARGS);
            }
        }
    }

    #[test]
    fn byte_padding_keeps_both_ends() {
        let pad = "p".repeat(4000);
        let mut argv = vec!["kcc".to_owned(), "first".to_owned()];
        argv.extend(std::iter::repeat_n(pad.clone(), 40));
        argv.push("copy_cred_cache".into());
        let (args, cut) = Args::from_strs(&argv);
        assert!(cut && args.is_consistent());
        assert!(args.joined().len() <= MAX_ARGV_BYTES);
        let held = strs(&args);
        assert_eq!(&held[..2], ["kcc", "first"]);
        assert_eq!(held.last().unwrap(), "copy_cred_cache");
        assert_eq!(args.total(), 43);
        assert!(args.elided() > 0);
    }

    #[test]
    fn one_huge_argument_is_cut_and_flagged() {
        let huge = "x".repeat(MAX_ARGV_BYTES * 2);
        let (args, cut) = Args::from_strs(["a", huge.as_str(), "b"]);
        assert!(cut && args.is_consistent());
        assert!(args.joined().len() <= MAX_ARGV_BYTES);
        let held = strs(&args);
        assert_eq!(held.first().unwrap(), "a");
        assert_eq!(held.last().unwrap(), "b");
        assert_eq!(args.total(), 3);
    }

    #[test]
    fn nul_count_agrees_with_a_plain_count() {
        let mut bytes = Vec::new();
        for len in 0..300usize {
            bytes.clear();
            bytes.extend((0..len).map(|i| match (i * 7 + len) % 5 {
                0 => 0,
                1 => 0x80,
                2 => 0xff,
                3 => 0x7f,
                _ => 1 + (i % 250) as u8,
            }));
            let plain = bytes.iter().filter(|&&c| c == 0).count();
            assert_eq!(nul_count(&bytes), plain, "{len}");
        }
        assert_eq!(nul_count(&[0; 300]), 300);
        assert_eq!(nul_count(&[0; 17]), 17);
    }

    #[test]
    fn nul_inside_an_argument_cannot_split_it() {
        let (args, _) = Args::from_strs(["a\0b", "c"]);
        assert_eq!(args.len(), 2);
        assert_eq!(strs(&args), ["a\u{FFFD}b", "c"]);
    }

    #[test]
    fn builder_is_reusable() {
        let mut b = ArgsBuilder::default();
        for round in 0..3 {
            b.clear();
            for i in 0..2000 {
                b.push(&format!("{round}-{i}"));
            }
            let args = b.args();
            assert!(args.is_consistent());
            assert_eq!(args.total(), 2000);
            assert_eq!(args.iter().last(), Some(format!("{round}-1999").as_str()));
        }
        b.clear();
        b.push("ls");
        let args = b.args();
        assert_eq!((args.len(), args.total(), args.head_len()), (1, 1, 1));
    }

    #[test]
    fn elided_arguments_count_and_what_follows_is_the_tail() {
        let mut b = ArgsBuilder::default();
        b.push("kcc");
        b.push("--a");
        b.elide(5000);
        b.push("--z");
        b.push("copy_cred_cache");
        let args = b.args();
        assert!(args.is_consistent());
        assert_eq!(strs(&args), ["kcc", "--a", "--z", "copy_cred_cache"]);
        assert_eq!(
            (args.total(), args.head_len(), args.elided()),
            (5004, 2, 5000)
        );
    }

    #[test]
    fn inconsistent_parts_are_refused() {
        assert!(Args::from_joined(Cow::Borrowed("a\0b"), 2).is_some());
        assert!(Args::from_joined(Cow::Borrowed("a\0b"), 3).is_none());
        assert!(Args::from_parts(Cow::Borrowed("a\0b"), 2, 9, 1).is_some());
        assert!(Args::from_parts(Cow::Borrowed("a\0b"), 2, 1, 2).is_none());
        assert!(Args::from_parts(Cow::Borrowed("a\0b"), 2, 9, 3).is_none());
        assert!(
            Args::from_parts(Cow::Borrowed(""), 0, 5, 0).is_some(),
            "argc known, argv unread"
        );
    }
}
