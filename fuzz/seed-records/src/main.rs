//! Usage: nightjar-fuzz-seed OUT_DIR ESLOGGER_FILE...
//!
//! Decodes every event line of the given eslogger files (execs, forks, exits, file events,
//! the macOS opens, quarantine removals and launch items among them), encodes it as a ring
//! record and writes each record to `OUT_DIR/NNNN.rec`, plus one loss record and one credential change of
//! each kind (eslogger fixtures hold few of those); the seeds let the fuzzer start from
//! well-formed records instead of discovering the header and layout by chance.

use std::path::PathBuf;
use std::process::ExitCode;

use std::borrow::Cow;

use nightjar_proto::codec::{self, LossReport, LossSource, Record};
use nightjar_proto::eslogger::EsloggerDecoder;
use nightjar_proto::event::{Actor, CredChange, CredEvent, CredIds, EventMeta, OsType, Source};

fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1);
    let Some(out) = argv.next().map(PathBuf::from) else {
        eprintln!("usage: nightjar-fuzz-seed OUT_DIR ESLOGGER_FILE...");
        return ExitCode::from(2);
    };
    match run(&out, argv.map(PathBuf::from)) {
        Ok(n) => {
            eprintln!("wrote {n} ring records to {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nightjar-fuzz-seed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(out: &PathBuf, files: impl Iterator<Item = PathBuf>) -> Result<usize, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut records = vec![Record::Loss(LossReport {
        source: LossSource::EsloggerGap,
        kind: None,
        count: 3,
        time_ns: 1_795_165_200_000_000_000,
    })];
    for change in CredChange::ALL {
        let before = CredIds {
            uid: Some(1000),
            euid: Some(1000),
            suid: Some(1000),
            gid: Some(1000),
            egid: Some(1000),
            sgid: Some(1000),
            sid: Some(700),
        };
        records.push(Record::Cred(CredEvent {
            meta: EventMeta {
                sensor_seq: 7,
                source: Source::Ebpf,
                os: OsType::Linux,
                time_ns: 1_795_165_200_000_000_000,
                ..EventMeta::default()
            },
            process: Actor {
                pid: 4242,
                start_time_ns: Some(1_795_165_100_000_000_000),
                ppid: Some(700),
                uid: Some(0),
                euid: Some(0),
                gid: Some(1000),
                egid: Some(1000),
                executable: Some(Cow::Borrowed("/tmp/x/python3")),
                ..Actor::default()
            },
            change,
            before,
            after: CredIds {
                uid: Some(0),
                euid: Some(0),
                suid: Some(0),
                sid: Some(4242),
                ..before
            },
        }));
    }
    let texts: Vec<String> = files
        .map(|f| {
            let bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect::<Result<_, String>>()?;
    let mut decoder = EsloggerDecoder::new();
    for line in texts.iter().flat_map(|t| t.lines()) {
        if let Ok(Some(ev)) = decoder.decode_line(line) {
            records.push(Record::from(ev));
        }
    }
    for (i, record) in records.iter().enumerate() {
        let bytes = codec::encode_to_vec(record).map_err(|e| format!("record {i}: {e}"))?;
        let path = out.join(format!("{i:04}.rec"));
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(records.len())
}
