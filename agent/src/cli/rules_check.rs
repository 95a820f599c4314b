//! `nightjar-agent rules check PATH...`: loads rule files and reports each rule as `ok`,
//! `unsupported (why)` or `error (file:line:col: message)`, each warning about a rule that
//! loads on an indented `warning (file:line:col: message)` line after it, then a summary
//! line. Exit 2 when any rule has an error or a path cannot be read; warnings do not fail.

use std::io::Write;

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

/// One line per rule, then `N rules: A ok, B unsupported, C errors`.
pub fn write_report(out: &mut impl Write, report: &LoadReport) -> std::io::Result<()> {
    for e in &report.entries {
        let who = match (&e.name, &e.rule_id) {
            (Some(n), Some(id)) => format!(" {n} [{id}]"),
            _ => String::new(),
        };
        match &e.status {
            RuleStatus::Ok => writeln!(out, "ok: {}:{who}", e.path.display())?,
            RuleStatus::Unsupported(why) => {
                writeln!(out, "unsupported ({why}): {}:{who}", e.path.display())?
            }
            RuleStatus::Error(msg) => writeln!(out, "error ({msg})")?,
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
