//! `nightjar-agent rules check PATH...`: loads rule files and reports each rule as `ok`,
//! `unsupported (why)` or `error (file:line:col: message)`, each warning about a rule that
//! loads on an indented `warning (file:line:col: message)` line after it, then a summary
//! line. Exit 2 when any rule has an error or a path cannot be read; warnings do not fail.

use std::io::Write;

use super::text::terminal_safe;
use super::{CmdResult, Failure, RulesCheckArgs};
use nightjar_rules::{LoadReport, RuleSet, RuleStatus};

pub fn run(args: &RulesCheckArgs) -> CmdResult {
    let (_, report) =
        RuleSet::load(&args.paths, false, None).map_err(|e| Failure::usage(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    write_report(&mut out, &report).map_err(|e| Failure::failed(format!("stdout: {e}")))?;
    if report.errors() > 0 {
        return Err(Failure::usage(format!(
            "{} rule file(s) with errors",
            report.errors()
        )));
    }
    Ok(())
}

/// One line per rule, then `N rules: A ok, B unsupported, C errors`. Rule names, paths and
/// messages come from the files: each is made terminal-safe.
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
            RuleStatus::Error(msg) => writeln!(out, "error ({})", terminal_safe(msg))?,
        }
        for w in &e.warnings {
            writeln!(out, "  warning ({w})")?;
        }
    }
    writeln!(
        out,
        "{} rules: {} ok, {} unsupported, {} errors",
        report.entries.len(),
        report.ok(),
        report.unsupported(),
        report.errors()
    )
}
