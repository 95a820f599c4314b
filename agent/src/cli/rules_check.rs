//! `nightjar-agent rules check PATH...`: loads rule files as the agent would (with the
//! built-in seed rule unless `--no-builtin`, and any `--exceptions` files) and reports each
//! rule as `ok`, `unsupported (why)`, `shadowed (why)` (another rule with its `rule_id` runs
//! instead) or `error (file:line:col: message)`, each warning about a rule that loads on an
//! indented `warning (file:line:col: message)` line after it, then a summary line. The
//! built-in rule is listed only when a file shadows it. Exit 2 when any rule or exception
//! file has an error or a path cannot be read; warnings do not fail.

use std::io::Write;

use super::{CmdResult, Failure, RulesCheckArgs};
use nightjar_proto::terminal::terminal_safe;
use nightjar_rules::{
    LoadReport, RuleSet, RuleStatus, Sources, builtin, read_exception_files, read_rule_files,
};

pub fn run(args: &RulesCheckArgs) -> CmdResult {
    let sources = Sources {
        builtin: !args.no_builtin,
        rules: read_rule_files(&args.paths).map_err(|e| Failure::usage(e.to_string()))?,
        exceptions: read_exception_files(&args.exceptions)
            .map_err(|e| Failure::usage(e.to_string()))?,
        block: args.block.clone(),
        new_terms_per_host: args.new_terms_per_host,
        ..Sources::default()
    };
    let (set, mut report) = RuleSet::build(sources);
    report
        .entries
        .retain(|e| e.path.as_os_str() != builtin::SOURCE || !matches!(e.status, RuleStatus::Ok));
    let mut out = std::io::stdout().lock();
    write_report(&mut out, &report).map_err(|e| Failure::failed(format!("stdout: {e}")))?;
    for i in set.blocking_rules() {
        let m = &set.rules()[i];
        let how = match set.kernel_block(i) {
            Ok(conjs) if cfg!(target_os = "linux") => format!(
                " (in the kernel: {})",
                conjs.iter().map(describe).collect::<Vec<_>>().join(" or ")
            ),
            _ => String::new(),
        };
        writeln!(
            out,
            "block: {} [{}] blocks{}",
            terminal_safe(&m.name),
            terminal_safe(&m.rule_id),
            terminal_safe(&how)
        )
        .map_err(|e| Failure::failed(format!("stdout: {e}")))?;
    }
    for e in &report.block_errors {
        writeln!(out, "error ({})", terminal_safe(e))
            .map_err(|e| Failure::failed(format!("stdout: {e}")))?;
    }
    for r in &report.block_refused {
        writeln!(out, "refused ({})", terminal_safe(r))
            .map_err(|e| Failure::failed(format!("stdout: {e}")))?;
    }
    let bad = report.errors() + report.exception_errors.len() + report.block_errors.len();
    if bad > 0 {
        return Err(Failure::usage(format!(
            "{} rule file(s) with errors, {} exception error(s)",
            report.errors(),
            report.exception_errors.len()
        )));
    }
    Ok(())
}

/// One kernel conjunction in words: `name == "kcc" and args has "copy_cred_cache"`.
fn describe(c: &nightjar_rules::matcher::block::KernelConj) -> String {
    let atom = |what: &str, e: &nightjar_rules::matcher::block::Exact| {
        format!("{what} {} {:?}", if e.ci { ":" } else { "==" }, e.value)
    };
    let mut parts = Vec::new();
    if let Some(e) = &c.name {
        parts.push(atom("process.name", e));
    }
    if let Some(e) = &c.executable {
        parts.push(atom("process.executable", e));
    }
    if let Some(e) = &c.parent_name {
        parts.push(atom("process.parent.name", e));
    }
    for a in &c.args {
        parts.push(atom("process.args", a));
    }
    parts.join(" and ")
}

/// One line per rule, then `N rules: A ok, B unsupported, C errors` (`, D shadowed` when a
/// rule was); with exception files, one line per exception problem and
/// `exceptions: N items`. Rule names, paths and messages come from the files: each is made
/// terminal-safe.
pub fn write_report(out: &mut impl Write, report: &LoadReport) -> std::io::Result<()> {
    for e in &report.entries {
        let who = match (&e.name, &e.rule_id) {
            (Some(n), Some(id)) => terminal_safe(&format!(" {n} [{id}]")).into_owned(),
            _ => String::new(),
        };
        let path = e.path.display().to_string();
        let path = terminal_safe(&path);
        match &e.status {
            RuleStatus::Ok => writeln!(out, "ok: {path}:{who}")?,
            RuleStatus::Unsupported(why) => {
                writeln!(out, "unsupported ({}): {path}:{who}", terminal_safe(why))?
            }
            RuleStatus::Shadowed(why) => {
                writeln!(out, "shadowed ({}): {path}:{who}", terminal_safe(why))?
            }
            RuleStatus::Error(msg) => writeln!(out, "error ({})", terminal_safe(msg))?,
        }
        for w in &e.warnings {
            writeln!(out, "  warning ({w})")?;
        }
    }
    for e in &report.exception_errors {
        writeln!(out, "error ({})", terminal_safe(e))?;
    }
    for w in &report.exception_warnings {
        writeln!(out, "warning ({})", terminal_safe(w))?;
    }
    let shadowed = match report.shadowed() {
        0 => String::new(),
        n => format!(", {n} shadowed"),
    };
    writeln!(
        out,
        "{} rules: {} ok, {} unsupported, {} errors{shadowed}",
        report.entries.len(),
        report.ok(),
        report.unsupported(),
        report.errors()
    )?;
    if report.exception_items > 0 || !report.exception_errors.is_empty() {
        writeln!(out, "exceptions: {} items", report.exception_items)?;
    }
    Ok(())
}
