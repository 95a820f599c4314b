//! Any rule file text loads as ok, unsupported or an error with a position, never a panic:
//! this drives the TOML loader and, through each rule's query, the KQL and EQL parsers and the
//! compiler. A rule that loads is then evaluated once, so compiled output is exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_proto::ExecEvent;
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo, NoProcesses};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rules, report) = RuleSet::from_texts(&[("fuzz.toml", &text)], None);
    for entry in &report.entries {
        if let nightjar_rules::RuleStatus::Error(msg) = &entry.status {
            assert!(msg.starts_with("fuzz.toml"), "error names the file: {msg}");
        }
    }
    let host = HostInfo::new("fuzz-host", "fuzz-id");
    let ev = ExecEvent::default();
    let view = EcsEvent::new(&ev, &NoProcesses, &host);
    let mut out = Vec::new();
    rules.evaluate(&view, &mut out);
});
