//! Generated eslogger streams: realistic exec events built from the shared sample's v10
//! message, with chosen pids, executables and argv.

use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::Value;

use crate::harness::shared;

/// Builds eslogger `exec` lines from a real message template.
pub struct EsloggerGen {
    template: Value,
    seq: u64,
}

/// One exec to generate.
pub struct Exec<'a> {
    pub pid: u32,
    pub ppid: u32,
    pub executable: &'a str,
    pub args: &'a [&'a str],
}

impl EsloggerGen {
    /// Uses the shared fixture's message-version-10 exec event (array audit tokens) as the
    /// template.
    pub fn new() -> Self {
        let text = std::fs::read_to_string(shared("fixtures/eslogger/kcc-sample.ndjson"))
            .expect("read shared eslogger sample");
        let template = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("sample line is JSON"))
            .find(|v| v["version"] == 10)
            .expect("sample has a version 10 message");
        EsloggerGen { template, seq: 0 }
    }

    /// One eslogger JSON line (no newline). Sequence numbers and times advance per call.
    pub fn line(&mut self, exec: &Exec<'_>) -> String {
        self.seq += 1;
        let mut v = self.template.clone();
        let secs = 1_700_000_000 + self.seq / 1000;
        let nanos = (self.seq % 1000) * 1_000_000 + 123;
        v["time"] = Value::from(format!(
            "2026-11-20T{:02}:{:02}:{:02}.{nanos:09}Z",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60
        ));
        v["seq_num"] = Value::from(self.seq);
        v["global_seq_num"] = Value::from(self.seq + 10_000);
        let target = &mut v["event"]["exec"]["target"];
        target["audit_token"][5] = Value::from(exec.pid);
        target["audit_token"][7] = Value::from(self.seq);
        target["ppid"] = Value::from(exec.ppid);
        target["original_ppid"] = Value::from(exec.ppid);
        target["executable"]["path"] = Value::from(exec.executable);
        v["process"]["audit_token"][5] = Value::from(exec.pid);
        v["process"]["ppid"] = Value::from(exec.ppid);
        v["event"]["exec"]["args"] = Value::from(exec.args.to_vec());
        v.to_string()
    }

    /// Writes `total` exec events to `path`: every `total / matches`-th one (exactly
    /// `matches` of them) is `kcc copy_cred_cache`, the rest a mix of ordinary commands
    /// (including `kcc list`, which must not alert). Returns the pids of the matching events.
    pub fn write_stream(&mut self, path: &Path, total: u32, matches: u32) -> Vec<u32> {
        self.write_stream_at(path, 10_000, total, matches)
    }

    /// [`Self::write_stream`] with pids `first_pid + index`, so several streams in one test
    /// stay distinguishable by pid.
    pub fn write_stream_at(
        &mut self,
        path: &Path,
        first_pid: u32,
        total: u32,
        matches: u32,
    ) -> Vec<u32> {
        assert!(matches > 0 && matches <= total);
        let every = total / matches;
        let mut f = BufWriter::new(std::fs::File::create(path).expect("create stream file"));
        let mut hits = Vec::with_capacity(matches as usize);
        let ordinary: [(&str, &[&str]); 5] = [
            ("/bin/ls", &["ls", "-la"]),
            ("/usr/bin/git", &["git", "status"]),
            ("/usr/bin/kcc", &["kcc", "list"]),
            ("/bin/zsh", &["zsh", "-c", "echo copy_cred_cache"]),
            ("/usr/bin/klist", &["klist"]),
        ];
        for i in 0..total {
            let pid = first_pid + i;
            let line = if i % every == every - 1 && (hits.len() as u32) < matches {
                hits.push(pid);
                self.line(&Exec {
                    pid,
                    ppid: 1,
                    executable: "/usr/bin/kcc",
                    args: &["kcc", "copy_cred_cache"],
                })
            } else {
                let (exe, args) = ordinary[i as usize % ordinary.len()];
                self.line(&Exec {
                    pid,
                    ppid: 1,
                    executable: exe,
                    args,
                })
            };
            writeln!(f, "{line}").expect("write stream");
        }
        f.flush().expect("flush stream");
        hits
    }
}

impl Default for EsloggerGen {
    fn default() -> Self {
        Self::new()
    }
}
