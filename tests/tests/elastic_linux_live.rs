//! Elastic's own Linux rules, the whole `linux-head` folder loaded at once, live on this host:
//! `nightjar-sensor run --source ebpf` and `nightjar-agent run`, and real programs doing what
//! the rules describe. Each behaviour must raise its rule — sequences as Kibana's building
//! blocks (one per stage, in order) plus the shell alert, sharing `kibana.alert.group.id` —
//! and its near miss must not: a sequence joined across event kinds by entity ids (exec →
//! file deletion of its own executable), one joined by a parent's entity id (tar → the shell
//! it spawns), a file creation tied to the exec that made it, a single-event rule on a non-root
//! user's real ids, and a parent shell that started before the sensor. Needs root; under
//! CI=true its absence is a failure.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use nightjar_tests::agent_cli::{alerts, counter, status, verify};
use nightjar_tests::harness::{ChildGuard, TempState, bin, in_ci, is_root, run, wait_for};
use serde_json::Value;

const RULES: &str = "../shared/elastic-rules/linux-head-14cf530f";

/// The `rule_id` of one of Elastic's rule files, read with a line scan (the agent's loader is
/// what is under test).
fn rule_id(file: &str) -> String {
    let path = nightjar_tests::harness::workspace_root()
        .join(RULES)
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("rule_id = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("{}: no rule_id", path.display()))
}

fn ok(cmd: &mut Command) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The alerts of one rule, by group: each group's alerts in seq order.
fn groups_of(all: &[Value], rule: &str) -> BTreeMap<String, Vec<Value>> {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for a in all
        .iter()
        .filter(|a| a["kibana"]["alert"]["rule"]["rule_id"] == rule)
    {
        let group = a["kibana"]["alert"]["group"]["id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        groups.entry(group).or_default().push(a.clone());
    }
    groups
}

/// The one group of `rule` whose building blocks satisfy `ours`, checked for Kibana's shape:
/// `stages` building blocks with indexes 0.. in order, then the shell alert.
fn sequence_alert(
    all: &[Value],
    rule: &str,
    stages: usize,
    ours: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let groups = groups_of(all, rule);
    let mine: Vec<&Vec<Value>> = groups
        .values()
        .filter(|g| {
            let blocks: Vec<Value> = g
                .iter()
                .filter(|a| a["kibana"]["alert"]["building_block_type"] == "default")
                .cloned()
                .collect();
            ours(&blocks)
        })
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one sequence alert of rule {rule}: {groups:#?}"
    );
    let g = mine[0].clone();
    assert_eq!(
        g.len(),
        stages + 1,
        "{stages} building blocks and a shell alert: {g:#?}"
    );
    for (i, block) in g[..stages].iter().enumerate() {
        assert_eq!(
            block["kibana"]["alert"]["building_block_type"], "default",
            "{block}"
        );
        assert_eq!(block["kibana"]["alert"]["group"]["index"], i, "{block}");
    }
    let shell = &g[stages];
    assert!(
        shell["kibana"]["alert"]["building_block_type"].is_null(),
        "{shell}"
    );
    g
}

struct Live {
    st: TempState,
    cfg: PathBuf,
    _agent: ChildGuard,
    sensor: ChildGuard,
}

impl Live {
    fn start(st: TempState) -> Live {
        let rules = nightjar_tests::harness::workspace_root().join(RULES);
        let cfg = st.write_config(&format!(
            "[rules]\npaths = [{:?}]\nbuiltin = true\nmax_signals = 0\n",
            rules.display().to_string()
        ));
        let agent_log = File::create(st.path().join("agent.log")).expect("agent log");
        let agent = ChildGuard::spawn(
            Command::new(bin("nightjar-agent"))
                .args(["run", "--config"])
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(agent_log),
        );
        let sensor_log = File::create(st.path().join("sensor.log")).expect("sensor log");
        let mut sensor = ChildGuard::spawn(
            Command::new(bin("nightjar-sensor"))
                .args(["run", "--source", "ebpf", "--config"])
                .arg(&cfg)
                .stderr(sensor_log),
        );
        let ready = wait_for(Duration::from_secs(60), || {
            assert!(
                sensor.child.try_wait().ok().flatten().is_none(),
                "sensor exited: {}",
                std::fs::read_to_string(st.path().join("sensor.log")).unwrap_or_default()
            );
            run(&mut Command::new("/bin/true"));
            let s = status(&cfg)?;
            (s["sensor_connected"] == true && counter(&s, "events_received") > 0).then_some(())
        });
        assert!(
            ready.is_some(),
            "pipeline not ready; status {:?}; sensor log: {}",
            status(&cfg),
            std::fs::read_to_string(st.path().join("sensor.log")).unwrap_or_default()
        );
        Live {
            st,
            cfg,
            _agent: agent,
            sensor,
        }
    }

    /// Waits until `done` holds of the stored alerts (sequences end within the agent's
    /// reorder window, seconds), then gives late wrong alerts a moment before returning.
    fn alerts_when(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let got = wait_for(Duration::from_secs(30), || {
            let all = alerts(&self.cfg);
            done(&all).then_some(())
        });
        assert!(
            got.is_some(),
            "{what}; alerts: {:#?}; agent log: {}",
            alerts(&self.cfg),
            std::fs::read_to_string(self.st.path().join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            self.sensor.child.try_wait().ok().flatten().is_none(),
            "sensor alive"
        );
        alerts(&self.cfg)
    }
}

#[test]
fn elastic_linux_rules_fire_live_on_their_behaviours_and_not_on_near_misses() {
    if !is_root() {
        assert!(
            !in_ci(),
            "CI runs as root: the live Elastic rules test must run"
        );
        eprintln!("live Elastic rules test needs root; not run");
        return;
    }
    let st = TempState::new();
    // A world-writable (sticky) directory of our own for the unprivileged user's link.
    let shared = tempfile::Builder::new()
        .prefix("nightjar-live-")
        .tempdir_in("/tmp")
        .expect("shared dir");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let tag = format!("{}", std::process::id());

    // A non-root shell that started before the sensor and execs `ln` once it runs.
    let go = shared.path().join("go");
    let link = shared.path().join(format!("predating-{tag}"));
    let predating = ChildGuard::spawn(Command::new("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/bin/sh",
        "-c",
        &format!(
            "while [ ! -e {go} ]; do sleep 0.1; done; ln -s /bin/bash {link}",
            go = go.display(),
            link = link.display()
        ),
    ]));
    let predating_pid = predating.child.id();
    let mut live = Live::start(st);

    // 1. A program in /tmp deletes its own executable: `sequence by process.entity_id
    //    [exec from /tmp] by process.executable [file deletion] by file.path`.
    let selfdel = shared.path().join(format!("selfdel-{tag}"));
    std::fs::copy("/usr/bin/rm", &selfdel).unwrap();
    ok(Command::new(&selfdel).arg(&selfdel));
    // Near miss: the same program deleting another file.
    let other_rm = shared.path().join(format!("otherdel-{tag}"));
    let victim = shared.path().join(format!("victim-{tag}"));
    std::fs::copy("/usr/bin/rm", &other_rm).unwrap();
    std::fs::write(&victim, b"x").unwrap();
    ok(Command::new(&other_rm).arg(&victim));

    // 2. `cp` of the dynamic linker: exec stage on its args, file stage the `.so.` created.
    let backup = live.st.path().join("bk");
    std::fs::create_dir(&backup).unwrap();
    ok(Command::new("cp")
        .arg("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        .arg(&backup));
    // Near miss: cp of another shared object.
    ok(Command::new("cp")
        .arg("/lib/x86_64-linux-gnu/libc.so.6")
        .arg(&backup));

    // 3. tar's checkpoint action spawns a shell: joined by the shell's parent entity id.
    ok(Command::new("tar").args([
        "-cf",
        "/dev/null",
        "--checkpoint=1",
        &format!("--checkpoint-action=exec=sh -c 'true {tag}'"),
        "/etc/hostname",
    ]));
    // Near miss: a tar that spawns nothing.
    ok(Command::new("tar").args(["-cf", "/dev/null", "--checkpoint=1", "/etc/hostname"]));

    // 4. A non-root user links a shell (real ids non-zero, parent a shell) — and the shell
    //    that predates the sensor does the same.
    let link_now = shared.path().join(format!("now-{tag}"));
    ok(Command::new("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/bin/sh",
        "-c",
        &format!("ln -s /bin/bash {}", link_now.display()),
    ]));
    // Near miss: root links a shell (the rule wants a non-root real user and group).
    ok(Command::new("/bin/sh").arg("-c").arg(format!(
        "ln -s /bin/bash {}",
        shared.path().join(format!("root-{tag}")).display()
    )));
    File::create(&go).unwrap();

    let self_deletion = rule_id("defense_evasion_execution_followed_by_self_deletion.toml");
    let linker = rule_id("persistence_dynamic_linker_backup.toml");
    let wildcard = rule_id("privilege_escalation_potential_wildcard_shell_spawn.toml");
    let symlink = rule_id("privilege_escalation_linux_suspicious_symbolic_link.toml");
    let selfdel_s = selfdel.display().to_string();
    let link_s = link.display().to_string();
    let all = live.alerts_when("every behaviour's alert", |all| {
        !groups_of(all, &self_deletion).is_empty()
            && !groups_of(all, &linker).is_empty()
            && !groups_of(all, &wildcard).is_empty()
            && all.iter().any(|a| {
                a["kibana"]["alert"]["rule"]["rule_id"] == symlink.as_str()
                    && a["process"]["args"][3] == link_s.as_str()
            })
    });

    let g = sequence_alert(&all, &self_deletion, 2, |b| {
        b.first()
            .is_some_and(|a| a["process"]["executable"] == selfdel_s.as_str())
    });
    assert_eq!(g[1]["file"]["path"], selfdel_s.as_str(), "{:#}", g[1]);
    assert_eq!(g[0]["process"]["entity_id"], g[1]["process"]["entity_id"]);
    assert!(
        g[0]["process"]["entity_id"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    let other_s = other_rm.display().to_string();
    assert!(
        !groups_of(&all, &self_deletion)
            .values()
            .flatten()
            .any(|a| a["process"]["executable"] == other_s.as_str()),
        "deleting another file is no self-deletion"
    );

    let backup_s = backup.display().to_string();
    let g = sequence_alert(&all, &linker, 2, |b| {
        b.first()
            .is_some_and(|a| a["process"]["args"][2] == backup_s.as_str())
    });
    assert_eq!(
        g[1]["file"]["path"],
        format!("{backup_s}/ld-linux-x86-64.so.2").as_str(),
        "{:#}",
        g[1]
    );
    assert_eq!(g[0]["process"]["entity_id"], g[1]["process"]["entity_id"]);
    assert_eq!(
        groups_of(&all, &linker)
            .values()
            .filter(|g| g
                .iter()
                .any(|a| a["process"]["args"][1] == "/lib/x86_64-linux-gnu/libc.so.6"))
            .count(),
        0,
        "copying libc is not copying the linker"
    );

    let checkpoint = format!("--checkpoint-action=exec=sh -c 'true {tag}'");
    let g = sequence_alert(&all, &wildcard, 2, |b| {
        b.first()
            .is_some_and(|a| a["process"]["args"][4] == checkpoint.as_str())
    });
    assert_eq!(g[0]["process"]["name"], "tar");
    assert_eq!(
        g[1]["process"]["parent"]["entity_id"],
        g[0]["process"]["entity_id"]
    );
    assert!(
        g[1]["process"]["name"] == "sh" || g[1]["process"]["name"] == "dash",
        "{:#}",
        g[1]
    );

    let links: Vec<&Value> = all
        .iter()
        .filter(|a| a["kibana"]["alert"]["rule"]["rule_id"] == symlink.as_str())
        .filter(|a| {
            a["process"]["args"][3]
                .as_str()
                .is_some_and(|p| p.contains(&tag))
        })
        .collect();
    let link_now_s = link_now.display().to_string();
    let targets: Vec<&str> = links
        .iter()
        .filter_map(|a| a["process"]["args"][3].as_str())
        .collect();
    assert!(targets.contains(&link_now_s.as_str()), "{links:#?}");
    assert!(
        targets.contains(&link_s.as_str()),
        "the predating shell's child: {links:#?}"
    );
    assert_eq!(links.len(), 2, "not root's link: {links:#?}");
    let from_predating = links
        .iter()
        .find(|a| a["process"]["args"][3] == link_s.as_str())
        .unwrap();
    assert_eq!(
        from_predating["process"]["parent"]["pid"], predating_pid,
        "{from_predating:#}"
    );
    assert!(
        ["sh", "dash"].contains(
            &from_predating["process"]["parent"]["name"]
                .as_str()
                .unwrap_or("")
        ),
        "{from_predating:#}"
    );
    assert_eq!(
        from_predating["user"]["Ext"]["real"]["id"], "65534",
        "{from_predating:#}"
    );

    let (code, text) = verify(&live.cfg);
    assert_eq!(code, 0, "verify: {text}");
    drop(predating);
}
