//! The control socket: answers while the store is held by the serving process, streams
//! large replies in order, refuses oversized requests and is not stalled by an idle client.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use nightjar_agent::config::Config;
use nightjar_agent::control::{self, Backend, ControlServer, KeyInfo, Reply, Request};
use nightjar_agent::sign::{HostKey, Sealer, Unsealed};
use nightjar_agent::store::Store;
use serde_json::json;

const AGENT: &str = env!("CARGO_BIN_EXE_nightjar-agent");

struct Served {
    _tmp: tempfile::TempDir,
    config_path: std::path::PathBuf,
    config: Config,
    server: Option<ControlServer>,
}

fn serve(alerts: u64) -> Served {
    let tmp = tempfile::tempdir().unwrap();
    let config_path = tmp.path().join("n.toml");
    std::fs::write(
        &config_path,
        format!(
            "state_dir = {:?}\nhost_id = \"h\"\n",
            tmp.path().join("state").display().to_string()
        ),
    )
    .unwrap();
    let config = Config::from_file(&config_path).unwrap();
    let key = HostKey::load_or_create(&config).unwrap();
    let info = KeyInfo {
        key_id: key.key_id().into(),
        public_key: key.public_key().to_vec(),
    };
    let store = Store::open(&config.store_dir()).unwrap();
    let mut sealer = Sealer::new(key, "h".into());
    for i in 1..=alerts {
        let alert = json!({"kibana": {"alert": {"rule": {"rule_id": "r"}}}, "i": i});
        let unsealed = Unsealed {
            alert: alert.as_object().cloned().unwrap(),
            uuid: format!("u-{i}"),
            time_ns: 0,
            event_seq: i,
        };
        store
            .insert(&sealer.seal(&store.head().unwrap(), unsealed).unwrap())
            .unwrap();
    }
    store.commit_marked(|h| sealer.mark(h)).unwrap();
    store.flush().unwrap();
    let server = ControlServer::start(
        &config.control_socket(),
        Backend::new(store, Ok(info), None, false),
    )
    .unwrap();
    Served {
        _tmp: tmp,
        config_path,
        config,
        server: Some(server),
    }
}

fn ask_all(config: &Config, request: &Request) -> Vec<Reply> {
    let mut replies = Vec::new();
    let via = control::ask(config, request, &mut |r| {
        replies.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(via, control::Connection::Agent);
    replies
}

#[test]
fn socket_is_private_and_answers_while_the_store_is_held() {
    let s = serve(3);
    let mode = std::fs::metadata(s.config.control_socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The serving process holds the sled lock: the CLI can only get answers over the socket.
    let out = Command::new(AGENT)
        .args(["verify", "--config"])
        .arg(&s.config_path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 alerts"));
}

#[test]
fn large_replies_stream_every_alert_in_order() {
    let s = serve(300);
    let replies = ask_all(&s.config, &Request::AlertsExport);
    assert_eq!(replies.len(), 300);
    let listed = ask_all(
        &s.config,
        &Request::AlertsList {
            since_ns: None,
            rule: Some("r".into()),
        },
    );
    for (i, r) in listed.iter().enumerate() {
        let Reply::Alert(doc) = r else {
            panic!("{r:?}")
        };
        assert_eq!(doc["nightjar"]["seq"], i as u64 + 1);
    }
    assert_eq!(listed.len(), 300);
    let verify = ask_all(&s.config, &Request::Verify);
    assert!(matches!(&verify[..], [Reply::Verify(v)] if v.ok && v.alerts == Some(300)));
}

fn raw_exchange(socket: &Path, request: &[u8]) -> Vec<String> {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(request).unwrap();
    BufReader::new(stream).lines().map(Result::unwrap).collect()
}

#[test]
fn bad_and_oversized_requests_get_an_error_line() {
    let s = serve(1);
    let socket = s.config.control_socket();
    let lines = raw_exchange(&socket, b"{\"cmd\":\"rm -rf\"}\n");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("{\"error\":\"bad request"),
        "{lines:?}"
    );
    let huge = vec![b'x'; 64 * 1024];
    let mut stream = UnixStream::connect(&socket).unwrap();
    // The server may close before reading everything; only its answer matters.
    let _ = stream.write_all(&huge);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.contains("request is over"), "{answer}");
}

#[test]
fn an_idle_client_does_not_stall_others() {
    let s = serve(2);
    let socket = s.config.control_socket();
    let mut idle = UnixStream::connect(&socket).unwrap();
    idle.write_all(b"{\"cmd\":").unwrap();
    let unread = UnixStream::connect(&socket).unwrap();
    unread
        .try_clone()
        .unwrap()
        .write_all(b"{\"cmd\":\"alerts_export\"}\n")
        .unwrap();
    let status = ask_all(&s.config, &Request::Status);
    assert!(matches!(&status[..], [Reply::Status(st)] if st.alerts_stored == 2));
    drop(unread);
}

#[test]
fn stopping_removes_the_socket_and_the_cli_falls_back_to_the_store() {
    let mut s = serve(2);
    s.server.take().unwrap().stop();
    assert!(!s.config.control_socket().exists());
    let mut n = 0;
    let via = control::ask(&s.config, &Request::AlertsExport, &mut |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(via, control::Connection::Store);
    assert_eq!(n, 2);
}
