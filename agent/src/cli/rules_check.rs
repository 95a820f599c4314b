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
        new_terms_per_host: args.new_terms_per_host,
        ..Sources::default()
    };
    let (_, mut report) = RuleSet::build(sources);
    report
        .entries
        .retain(|e| e.path.as_os_str() != builtin::SOURCE || !matches!(e.status, RuleStatus::Ok));
    let mut out = std::io::stdout().lock();
    write_report(&mut out, &report).map_err(|e| Failure::failed(format!("stdout: {e}")))?;
    let bad = report.errors() + report.exception_errors.len();
    if bad > 0 {
        return Err(Failure::usage(format!(
            "{} rule file(s) with errors, {} exception error(s)",
            report.errors(),
            report.exception_errors.len()
        )));
    }
    Ok(())
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
