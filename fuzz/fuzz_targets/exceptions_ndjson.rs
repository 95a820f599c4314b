//! Any exception-list export (Kibana NDJSON) loads or gives errors naming `file:line`, never a
//! panic or a hang: the reader, its bounds, and the compilation of every item into the rule
//! engine's trees. A set that loads is then checked against one event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_proto::ExecEvent;
use nightjar_rules::ecs::{EcsEvent, HostInfo, NoProcesses};
use nightjar_rules::{RuleSet, SourceText, Sources};

const RULE: &str = "[rule]\nrule_id = \"r\"\nname = \"r\"\nseverity = \"low\"\nrisk_score = 1\n\
                    type = \"query\"\nlanguage = \"kuery\"\nquery = \"event.category:process\"\n\
                    [[rule.exceptions_list]]\nlist_id = \"fuzz\"\nnamespace_type = \"single\"\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (set, report) = RuleSet::build(Sources {
        rules: vec![SourceText {
            name: "r.toml".into(),
            text: RULE.into(),
        }],
        exceptions: vec![SourceText {
            name: "fuzz.ndjson".into(),
            text: text.into_owned(),
        }],
        ..Sources::default()
    });
    for e in &report.exception_errors {
        assert!(e.starts_with("fuzz.ndjson:"), "error names the file: {e}");
    }
    let host = HostInfo::new("fuzz-host", "fuzz-id");
    let ev = ExecEvent::default();
    let view = EcsEvent::new(&ev, &NoProcesses, &host);
    let mut out = Vec::new();
    set.evaluate(&view, &mut out);
    for i in out {
        let _ = set.excepted(i, &view, 0);
    }
});
