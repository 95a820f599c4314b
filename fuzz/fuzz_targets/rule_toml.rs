//! Any rule file text loads as ok, unsupported or an error with a position, never a panic:
//! this drives the TOML loader and, through each rule's query, the KQL and EQL parsers and the
//! compiler. A rule that loads is then evaluated once, so compiled output is exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_agent::ecs::{EcsEvent, HostInfo};
use nightjar_agent::process_table::ProcessTable;
use nightjar_agent::rules::RuleSet;
use nightjar_proto::ExecEvent;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rules, report) = RuleSet::from_texts(&[("fuzz.toml", &text)], None);
    for entry in &report.entries {
        if let nightjar_agent::rules::RuleStatus::Error(msg) = &entry.status {
            assert!(msg.starts_with("fuzz.toml"), "error names the file: {msg}");
        }
    }
    let table = ProcessTable::new(16);
    let host = HostInfo::new("fuzz-host", "fuzz-id");
    let ev = ExecEvent::default();
    let view = EcsEvent::new(&ev, &table, &host);
    let mut out = Vec::new();
    rules.evaluate(&view, &mut out);
});
