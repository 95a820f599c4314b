//! The console and the Elasticsearch export against a real server on a real PostgreSQL with
//! alerts from a real agent: a real browser (Debian's Chromium driven by playwright-core, see
//! tests/browser/console.mjs) signs in, filters, opens an alert whose argv holds HTML (shown as
//! text), signs out; the `_bulk` export is checked against ECS field types
//! (tests/browser/ecs-check.mjs, with the ECS flat schema of @elastic/ecs). Screenshots are
//! kept in target/test-artifacts/console/.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

use nightjar_tests::agent_cli::counter;
use nightjar_tests::fleet::Server;
use nightjar_tests::harness::{TempState, run, workspace_root};
use nightjar_tests::pipeline::{replay_all, spawn_agent, stop, wait_agent_ready, wait_status};
use nightjar_tests::streams::{EsloggerGen, Exec};
use serde_json::Value;

const EVIL: &str = "<script data-evil>alert(1)</script><img data-evil src=x onerror=alert(2)>";

fn browser_dir() -> PathBuf {
    let dir = workspace_root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && dir.join("node_modules/@elastic/ecs").is_dir(),
        "tests/browser/node_modules is missing: run scripts/setup-deps (it runs npm ci there)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/setup-deps (it installs Debian's chromium)"
    );
    dir
}

fn node(script: &str, args: &[&str]) -> std::process::Output {
    let dir = browser_dir();
    run(Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir))
}

#[test]
fn the_console_in_a_real_browser_and_the_ecs_export() {
    browser_dir();
    let server = Server::start("");
    let token = server.token(1, "1h");
    let st = TempState::new();
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = true\nmax_signals = 0\n\
         [upload]\ninterval_ms = 100\nallow_insecure_http = true\n\
         [fleet]\nserver = {:?}\nenroll_token = {token:?}\nheartbeat_interval_ms = 500\n",
        server.url()
    ));
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let mut eslogger = EsloggerGen::new();
    let stream = st.path().join("stream.ndjson");
    let mut f = std::fs::File::create(&stream).unwrap();
    for i in 0..6u32 {
        let args: Vec<&str> = if i == 3 {
            vec!["kcc", "copy_cred_cache", EVIL]
        } else {
            vec!["kcc", "copy_cred_cache"]
        };
        let line = eslogger.line(&Exec {
            pid: 20_000 + i,
            ppid: 1,
            executable: "/usr/bin/kcc",
            args: &args,
        });
        writeln!(f, "{line}").unwrap();
    }
    drop(f);
    replay_all(&st, &cfg, &stream, None, "sensor");
    wait_status(&st, &cfg, "agent", "alerts uploaded", |s| {
        counter(s, "alerts_stored") == 6 && counter(s, "alerts_pending_upload") == 0
    });
    stop(&mut agent, &st, "agent");

    let admin = server.admin_token();
    let shots = workspace_root().join("target/test-artifacts/console");
    let out = node(
        "console.mjs",
        &[
            &server.url(),
            &admin,
            "test-host-0001",
            shots.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "browser check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for shot in [
        "1-refused",
        "2-fleet",
        "3-alerts",
        "4-detail",
        "5-signed-out",
    ] {
        assert!(
            shots.join(format!("{shot}.png")).is_file(),
            "screenshot {shot} missing"
        );
    }

    // The export: one create per alert, _id = uuid, ECS types, the envelope in event.original.
    let bulk = server.cli_ok(&["export", "elastic-bulk"]);
    let lines: Vec<Value> = bulk
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    let ids: BTreeSet<&str> = lines
        .iter()
        .step_by(2)
        .map(|a| a["create"]["_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    for pair in lines.chunks(2) {
        assert_eq!(pair[0]["create"]["_index"], "logs-nightjar.alert-default");
        let doc = &pair[1];
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["event"]["module"], "nightjar");
        assert_eq!(doc["event"]["dataset"], "nightjar.alert");
        assert_eq!(doc["agent"]["type"], "nightjar");
        assert_eq!(doc["event"]["severity"], 73);
        assert_eq!(doc["message"], doc["rule"]["name"]);
        assert_eq!(doc["threat"]["tactic"]["id"], serde_json::json!(["TA0006"]));
        let envelope = doc["event"]["original"].as_str().unwrap();
        assert!(nightjar_proto::verify::open_envelope(envelope.as_bytes()).is_ok());
    }
    let file = st.path().join("bulk.ndjson");
    std::fs::write(&file, &bulk).unwrap();
    let out = node("ecs-check.mjs", &[file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "ECS check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["documents"], 6);
    let bad = node(
        "ecs-check.mjs",
        &[st.path().join("missing").to_str().unwrap()],
    );
    assert!(!bad.status.success(), "the checker fails on a missing file");
}
