//! Blocking rules (prevention): what the sensor can decide before a new program runs.
//!
//! - Linux ([`Matcher::kernel_block`]): the rule's exec tree reduced to an `or` of
//!   conjunctions of exact tests the eBPF exec probe can make: the new image's name
//!   (`process.name`) or path (`process.executable`), arguments that must appear whole in
//!   argv (`process.args`), the parent's name (`process.parent.name`); `host.os.type` is
//!   decided for this host. Anything else (a negation, a pattern, another field) is refused
//!   with the reason: the rule still detects, it does not block.
//! - macOS ([`Matcher::auth_block_check`]): the compiled matcher itself runs in the
//!   Endpoint Security AUTH handler on what the message carries; a rule that reads what the
//!   message does not carry (the parent's fields, the session, ...) is refused.
//! - Either way a rule that could block the platform's critical binaries or Nightjar itself
//!   is refused ([`PROTECTED_NAMES`]).

use crate::ecs::{EcsEvent, Field, Shape};
use crate::pattern::Glob;
use crate::query::ast::Cmp;

use super::Matcher;
use super::eval::{Scratch, Tri};
use super::tree::{CTest, Leaf, Node};

/// Images never blocked: init, the service manager and its core daemons, login, sshd,
/// launchd and macOS's session and security daemons, and Nightjar.
pub const PROTECTED_NAMES: [&str; 22] = [
    "init",
    "systemd",
    "systemd-journald",
    "systemd-udevd",
    "systemd-logind",
    "dbus-daemon",
    "dbus-broker",
    "sshd",
    "login",
    "agetty",
    "launchd",
    "loginwindow",
    "WindowServer",
    "logd",
    "securityd",
    "syspolicyd",
    "trustd",
    "opendirectoryd",
    "kernel_task",
    "endpointsecurityd",
    "nightjar-sensor",
    "nightjar-agent",
];

/// Longest name or argument value the kernel compares (bytes).
pub const KERNEL_VALUE_MAX: usize = 63;
/// Longest executable path the kernel compares (bytes).
pub const KERNEL_PATH_MAX: usize = 255;
/// Most argument values one conjunction requires.
pub const KERNEL_ARGS_MAX: usize = 4;
/// Most conjunctions one rule reduces to.
pub const KERNEL_CONJ_MAX: usize = 16;

/// An exact value, compared case-insensitively (ASCII) when `ci`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exact {
    pub value: String,
    pub ci: bool,
}

/// One conjunction the kernel tests: every present atom must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConj {
    pub name: Option<Exact>,
    pub executable: Option<Exact>,
    pub parent_name: Option<Exact>,
    /// Each must be one whole argument of argv.
    pub args: Vec<Exact>,
}

/// Fields an AUTH_EXEC message carries (the new image, its arguments, the caller, the
/// credentials), so a macOS blocking rule may read them.
const AUTH_FIELDS: [Field; 25] = [
    Field::HostOsType,
    Field::HostHostname,
    Field::HostId,
    Field::Name,
    Field::Executable,
    Field::Args,
    Field::ArgsCount,
    Field::CommandLine,
    Field::ArgsTruncated,
    Field::Pid,
    Field::WorkingDirectory,
    Field::UserId,
    Field::GroupId,
    Field::ProcessUserId,
    Field::ProcessGroupId,
    Field::RealUserId,
    Field::RealGroupId,
    Field::UserRealId,
    Field::GroupRealId,
    Field::SignatureExists,
    Field::SignatureTrusted,
    Field::SigningId,
    Field::TeamId,
    Field::EffectiveExecutable,
    Field::EffectiveName,
];

/// Fields that differ between two execs of the same target by the same caller (what
/// Endpoint Security's AUTH cache key does not hold).
fn varies_per_exec(f: Field) -> bool {
    matches!(
        f,
        Field::Args
            | Field::ArgsCount
            | Field::CommandLine
            | Field::ArgsTruncated
            | Field::WorkingDirectory
            | Field::Pid
            | Field::EnvVars
    )
}

fn exact_of(test: &CTest) -> Option<Vec<Exact>> {
    match test {
        CTest::Str(Cmp::Eq, v) => Some(vec![Exact {
            value: v.to_string(),
            ci: false,
        }]),
        CTest::Glob(Glob::Exact { text, ci, ascii }) if !*ci || *ascii => Some(vec![Exact {
            value: text.to_string(),
            ci: *ci,
        }]),
        CTest::OneOf(vs) if vs.is_folded() => Some(
            vs.iter()
                .map(|v| Exact {
                    value: v.to_string(),
                    ci: true,
                })
                .collect(),
        ),
        CTest::AnyOf(tests) => {
            let mut out = Vec::new();
            for t in tests.iter() {
                out.extend(exact_of(t)?);
            }
            Some(out)
        }
        _ => None,
    }
}

fn leaf_dnf(l: &Leaf, os: &str) -> Result<Vec<KernelConj>, String> {
    if l.field == Field::HostOsType {
        let mut sc = Scratch::default();
        let holds = l.test_value(&crate::ecs::Value::Str(os), &mut sc, None);
        return Ok(if holds {
            vec![KernelConj::default()]
        } else {
            Vec::new()
        });
    }
    if !matches!(
        l.field,
        Field::Name | Field::Executable | Field::Args | Field::ParentName
    ) {
        return Err(format!(
            "`{}` cannot be tested in the kernel (only process.name, process.executable, \
             process.args and process.parent.name can)",
            l.field.name()
        ));
    }
    let Some(values) = exact_of(&l.test) else {
        return Err(format!(
            "`{}` is tested with a pattern, a range or a regular expression: the kernel \
             compares exact values only",
            l.field.name()
        ));
    };
    let max = if l.field == Field::Executable {
        KERNEL_PATH_MAX
    } else {
        KERNEL_VALUE_MAX
    };
    let mut out = Vec::new();
    for v in values {
        if v.value.len() > max || v.value.is_empty() || v.value.contains('\0') {
            return Err(format!(
                "`{}` value {:?} is empty or longer than the kernel compares ({max} bytes)",
                l.field.name(),
                v.value
            ));
        }
        let mut c = KernelConj::default();
        match l.field {
            Field::Name => c.name = Some(v),
            Field::Executable => c.executable = Some(v),
            Field::ParentName => c.parent_name = Some(v),
            _ => c.args.push(v),
        }
        out.push(c);
    }
    Ok(out)
}

/// The conjunction of `a` and `b`, `None` when they contradict (two different exact values
/// for one single-valued field).
fn and(a: &KernelConj, b: &KernelConj) -> Option<KernelConj> {
    fn one(x: &Option<Exact>, y: &Option<Exact>) -> Option<Option<Exact>> {
        match (x, y) {
            (None, v) | (v, None) => Some(v.clone()),
            (Some(p), Some(q)) if p == q => Some(Some(p.clone())),
            // Different values, or the same under different case rules: keep the exact one
            // only if it satisfies the other; otherwise they cannot both hold.
            (Some(p), Some(q)) => {
                let holds = |e: &Exact, s: &str| {
                    if e.ci {
                        e.value.eq_ignore_ascii_case(s)
                    } else {
                        e.value == s
                    }
                };
                if !p.ci && holds(q, &p.value) {
                    Some(Some(p.clone()))
                } else if !q.ci && holds(p, &q.value) {
                    Some(Some(q.clone()))
                } else if p.ci && q.ci && p.value.eq_ignore_ascii_case(&q.value) {
                    Some(Some(p.clone()))
                } else {
                    None
                }
            }
        }
    }
    let mut args = a.args.clone();
    for x in &b.args {
        if !args.contains(x) {
            args.push(x.clone());
        }
    }
    Some(KernelConj {
        name: one(&a.name, &b.name)?,
        executable: one(&a.executable, &b.executable)?,
        parent_name: one(&a.parent_name, &b.parent_name)?,
        args,
    })
}

fn dnf(n: &Node, os: &str) -> Result<Vec<KernelConj>, String> {
    match n {
        Node::Const(true) => Ok(vec![KernelConj::default()]),
        Node::Const(false) => Ok(Vec::new()),
        Node::Leaf(l) => leaf_dnf(l, os),
        Node::Not(_) => Err("a negation (`not ...`) cannot be tested in the kernel".into()),
        Node::Check(_) => {
            Err("an EQL function or field comparison cannot be tested in the kernel".into())
        }
        Node::Or(kids) => {
            let mut out = Vec::new();
            for k in kids.iter() {
                out.extend(dnf(k, os)?);
                if out.len() > KERNEL_CONJ_MAX {
                    return Err(format!(
                        "it reduces to more than {KERNEL_CONJ_MAX} alternatives"
                    ));
                }
            }
            Ok(out)
        }
        Node::And(kids) => {
            let mut acc = vec![KernelConj::default()];
            for k in kids.iter() {
                let alts = dnf(k, os)?;
                let mut next = Vec::new();
                for a in &acc {
                    for b in &alts {
                        if let Some(c) = and(a, b) {
                            next.push(c);
                        }
                    }
                }
                if next.len() > KERNEL_CONJ_MAX {
                    return Err(format!(
                        "it reduces to more than {KERNEL_CONJ_MAX} alternatives"
                    ));
                }
                acc = next;
            }
            Ok(acc)
        }
    }
}

fn protected(name: &str) -> bool {
    PROTECTED_NAMES.iter().any(|p| p.eq_ignore_ascii_case(name))
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn fields_of(n: &Node, out: &mut Vec<Field>) {
    match n {
        Node::Const(_) => {}
        Node::Leaf(l) => out.push(l.field),
        Node::Check(c) => out.extend(c.fields()),
        Node::Not(k) => fields_of(k, out),
        Node::And(v) | Node::Or(v) => v.iter().for_each(|k| fields_of(k, out)),
    }
}

impl Matcher {
    fn exec_node(&self, rule: usize) -> Option<&Node> {
        self.shapes[Shape::Exec as usize].rules.get(self.tree(rule))
    }

    /// Rule `rule` as the eBPF exec probe can test it on a host of `os` (`"linux"`): an `or`
    /// of conjunctions, or why it cannot block.
    pub fn kernel_block(&self, rule: usize, os: &str) -> Result<Vec<KernelConj>, String> {
        let node = self.exec_node(rule).ok_or("no such rule")?;
        let conjs = dnf(node, os)?;
        if conjs.is_empty() {
            return Err("it never matches an exec on this host".into());
        }
        for c in &conjs {
            if c.name.is_none() && c.executable.is_none() {
                return Err(
                    "it does not name the program (process.name or process.executable): it \
                     would test the arguments of every exec"
                        .into(),
                );
            }
            if c.args.len() > KERNEL_ARGS_MAX {
                return Err(format!(
                    "it requires more than {KERNEL_ARGS_MAX} argument values at once"
                ));
            }
            let image = c
                .name
                .as_ref()
                .map(|n| n.value.as_str())
                .or_else(|| c.executable.as_ref().map(|e| basename(&e.value)))
                .unwrap_or_default();
            if protected(image) {
                return Err(format!(
                    "it could block `{image}`, which Nightjar never blocks"
                ));
            }
        }
        Ok(conjs)
    }

    /// Whether rule `rule` can block in the Endpoint Security AUTH handler: it reads only
    /// what an AUTH_EXEC message carries, and no protected image can match it.
    pub fn auth_block_check(&self, rule: usize) -> Result<(), String> {
        let node = self.exec_node(rule).ok_or("no such rule")?;
        if matches!(node, Node::Const(false)) {
            return Err("it never matches an exec on this host".into());
        }
        let mut fields = Vec::new();
        fields_of(node, &mut fields);
        if let Some(f) = fields.iter().find(|f| !AUTH_FIELDS.contains(f)) {
            return Err(format!(
                "it reads `{}`, which the AUTH_EXEC message does not carry",
                f.name()
            ));
        }
        if !fields.contains(&Field::Name) && !fields.contains(&Field::Executable) {
            return Err("it does not name the program (process.name or process.executable)".into());
        }
        // A rule that admits a protected image by name is refused; by other fields (a
        // pattern on the path) the handler's protected-target check still never blocks it.
        if let Ok(conjs) = dnf(node, "macos")
            && let Some(image) = conjs.iter().find_map(|c| {
                c.name
                    .as_ref()
                    .map(|n| n.value.as_str())
                    .filter(|n| protected(n))
            })
        {
            return Err(format!(
                "it could block `{image}`, which Nightjar never blocks"
            ));
        }
        Ok(())
    }

    /// Whether rule `rule` could match an exec of `ev`'s target by `ev`'s caller with other
    /// arguments, working directory or pid: what decides whether Endpoint Security may cache
    /// an ALLOW for (caller, target).
    pub fn could_match_target(&self, rule: usize, ev: &EcsEvent<'_>) -> bool {
        let Some(node) = self.exec_node(rule) else {
            return false;
        };
        let mut sc = Scratch::default();
        node.eval3_with(ev, &mut sc, &varies_per_exec) != Tri::False
    }
}

/// The protected-image test the AUTH handler applies to every target.
pub fn is_protected_image(executable: &str) -> bool {
    protected(basename(executable))
}
