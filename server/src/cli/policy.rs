//! `policy publish` and `policy list`.
//!
//! Publishing compiles every rule, exception and `block` entry with the agent's own engine
//! first and refuses (exit 2, each problem as `file:line:col: message`) a policy that would
//! not run as a whole on a host; only then is it signed and stored under the next version.

use std::io::Write as _;

use nightjar_rules::policy::{FORMAT, Link, Policy, PolicyFile};
use nightjar_rules::{RuleStatus, read_exception_files, read_rule_files};
use serde_json::{Value, json};

use super::{Failure, PublishArgs};
use crate::config::Config;
use crate::policy;
use crate::policy_key::PolicyKey;
use crate::time::rfc3339;

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

pub async fn publish(config: Config, args: &PublishArgs) -> Result<(), Failure> {
    let files = |texts: Vec<nightjar_rules::SourceText>| {
        texts
            .into_iter()
            .map(|t| PolicyFile {
                name: t.name,
                text: t.text,
            })
            .collect::<Vec<_>>()
    };
    let rules = files(read_rule_files(&args.rules).map_err(|e| usage(format!("--rules: {e}")))?);
    let exceptions = files(
        read_exception_files(&args.exceptions).map_err(|e| usage(format!("--exceptions: {e}")))?,
    );
    let mut links = Vec::new();
    for l in &args.link {
        let (rule_id, list_id) = l
            .split_once('=')
            .filter(|(r, l)| !r.is_empty() && !l.is_empty())
            .ok_or_else(|| usage(format!("--link {l:?}: expected RULE_ID=LIST_ID")))?;
        links.push(Link {
            rule_id: rule_id.to_owned(),
            list_id: list_id.to_owned(),
        });
    }
    let draft = Policy {
        format: FORMAT,
        // The next version is decided when it is stored; it takes no part in compiling.
        version: 1,
        published_at: rfc3339(std::time::SystemTime::now()),
        builtin: !args.no_builtin,
        rules,
        exceptions,
        block: args.block.clone(),
        links,
        new_terms_per_host: args.new_terms_per_host,
    };
    draft.check().map_err(|e| usage(e.to_string()))?;
    let (set, report) = draft.compile("", None).map_err(|problems| {
        usage(format!(
            "the policy does not compile, nothing was published:\n  {}",
            problems.join("\n  ")
        ))
    })?;
    if set.rules().is_empty() {
        return Err(usage(
            "the policy runs no rule at all (detection would be off on every host); \
             nothing was published",
        ));
    }
    for e in &report.entries {
        match &e.status {
            RuleStatus::Unsupported(why) => eprintln!(
                "nightjar-server: note: {} will not run on hosts: {why}",
                e.path.display()
            ),
            RuleStatus::Shadowed(why) => {
                eprintln!(
                    "nightjar-server: note: {} is not used: {why}",
                    e.path.display()
                )
            }
            _ => {}
        }
        for w in &e.warnings {
            eprintln!("nightjar-server: warning: {w}");
        }
    }
    for w in &report.exception_warnings {
        eprintln!("nightjar-server: warning: {w}");
    }
    let key = PolicyKey::load_or_create(&config.state_dir)?;
    let pool = super::pool(&config)?;
    crate::db::migrate::run(&pool).await?;
    let rule_files = draft.rules.len();
    let (version, envelope) = policy::publish(&pool, &key, draft, report.exception_items).await?;
    let summary = json!({
        "version": version,
        "rules": rule_files,
        "exceptions": report.exception_items,
        "supported_rules": set.rules().len(),
        "unsupported_rules": report.unsupported(),
        "builtin": !args.no_builtin,
        "block": args.block,
        "key_id": key.to_json()["key_id"],
        "sha256": nightjar_proto::verify::hex(&nightjar_proto::verify::sha256(&envelope)),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "published policy version {version}: {rule_files} rule file(s) ({} will run{}), \
             {} exception item(s), signed by {}",
            set.rules().len(),
            if args.no_builtin {
                ", built-in rule off"
            } else {
                ", built-in rule on"
            },
            report.exception_items,
            summary["key_id"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn list(config: Config, json: bool) -> Result<(), Failure> {
    const PAGE: i64 = 500;
    let pool = super::pool(&config)?;
    let client = pool.get().await?;
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    if !json {
        writeln!(
            w,
            "{:>8} {:<27} {:>6} {:>10} {:<8} BLOCK",
            "VERSION", "PUBLISHED", "RULES", "EXCEPTIONS", "BUILTIN"
        )?;
    }
    let mut before = None;
    loop {
        let page = policy::list(&client, before, PAGE).await?;
        for p in &page {
            if json {
                writeln!(w, "{}", p.to_json())?;
            } else {
                writeln!(
                    w,
                    "{:>8} {:<27} {:>6} {:>10} {:<8} {}",
                    p.version,
                    rfc3339(p.published_at),
                    p.rules,
                    p.exceptions,
                    p.builtin.map_or("-".to_owned(), |b| b.to_string()),
                    p.block
                        .as_ref()
                        .and_then(Value::as_array)
                        .map(|ids| ids
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default()
                )?;
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
        before = page.last().map(|p| p.version);
    }
    w.flush()?;
    Ok(())
}
