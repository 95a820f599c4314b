//! The central server against hosts that speak the protocol by hand: enrolment (tokens,
//! pinning, reset), request signatures (forged, skewed, replayed, unknown), ingest (extend,
//! re-delivery, gap and fill, fork, bad signature, hostile bodies), heartbeats (rollback,
//! pending, silent), and every integrity kind listed by `integrity list`.

use nightjar_proto::verify::{hex, sha256};
use nightjar_tests::fleet::{Host, Server, http, now};
use serde_json::json;

#[test]
fn an_enrolled_host_uploads_a_verified_chain_and_redelivery_is_idempotent() {
    let server = Server::start("");
    let token = server.token(1, "1h");
    let mut host = Host::new(&server, "host-a");
    let a = host.enroll(&token);
    assert_eq!(a.status, 200, "{}", a.error());
    assert_eq!(a.json()["key_id"], host.signer.key_id());

    let batch = host.next(3);
    let a = host.upload(&batch);
    assert_eq!(a.status, 200, "{}", a.error());
    assert_eq!(a.json()["accepted_through"], 3);
    let (_, head) = host.signer.position();
    assert_eq!(a.json()["head_hash"], head);

    // The same batch again (a retry whose answer was lost): stored once.
    let a = host.upload(&batch);
    assert_eq!(a.status, 200, "{}", a.error());
    assert_eq!(a.json()["accepted_through"], 3);

    let alerts = server.cli_json(&["alerts", "list", "--host", "host-a", "--json"]);
    assert_eq!(alerts.len(), 3);
    assert!(alerts.iter().all(|a| a["nightjar"]["verified"] == true));
    let seqs: Vec<_> = alerts
        .iter()
        .map(|a| a["nightjar"]["seq"].as_u64().unwrap())
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(sorted, vec![1, 2, 3]);

    let h = server.host("host-a");
    assert_eq!(h["chain_head_seq"], 3);
    assert_eq!(h["key_id"], host.signer.key_id());
    let out = server.cli(&["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.integrity_kinds("host-a").is_empty());
    let db = server.db_url.rsplit('/').next().unwrap();
    assert_alerts_have_their_payloads(db, "host-a", &batch);
}

#[test]
fn tokens_are_limited_in_uses_and_lifetime_and_keys_are_pinned_until_reset() {
    let server = Server::start("");
    let token = server.token(1, "1h");
    let a = Host::new(&server, "pinned");
    assert_eq!(a.enroll(&token).status, 200);
    // A retry with the same key is idempotent even though the token is now used up.
    assert_eq!(a.enroll(&token).status, 200);
    let b = Host::new(&server, "other");
    let r = b.enroll(&token);
    assert_eq!(r.status, 401);
    assert!(r.error().contains("used up"), "{}", r.error());
    let r = b.enroll("nje_not-a-token");
    assert_eq!(r.status, 401);

    let expired = server.token(5, "1s");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = b.enroll(&expired);
    assert_eq!(r.status, 401);
    assert!(r.error().contains("expired"), "{}", r.error());

    // Another key for a pinned host id: 409 until an admin resets the host.
    let token = server.token(5, "1h");
    let impostor = Host::new(&server, "pinned");
    assert_eq!(impostor.enroll(&token).status, 409);
    server.cli_ok(&["hosts", "reset", "pinned"]);
    assert_eq!(impostor.enroll(&token).status, 200);
    assert_eq!(server.integrity_kinds("pinned"), vec!["reset"]);
    // The old key no longer opens anything.
    assert_eq!(a.heartbeat(0, &"0".repeat(64)).status, 401);

    // Proof of possession: a signature by another key is refused.
    let c = Host::new(&server, "c");
    let d = Host::new(&server, "c");
    let t = now();
    let sig = d.signer.sign(&nightjar_proto::fleet::enroll_signing_bytes(
        &token,
        "c",
        &c.public_key_b64(),
        t,
    ));
    let body = json!({"token": token, "host_id": "c", "hostname": "h", "os": "linux",
        "agent_version": "x", "public_key": c.public_key_b64(), "time": t,
        "signature": base64_encode(&sig)});
    let r = http(
        server.addr,
        "POST",
        "/v1/enroll",
        &[("Content-Type", "application/json".into())],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 401, "{}", r.error());
    assert_eq!(
        c.enroll_at(&token, now() - 1000).status,
        401,
        "skewed enrolment"
    );
}

fn payload_hash_of(envelope: &[u8]) -> String {
    let (_, payload) = nightjar_proto::verify::open_envelope(envelope).unwrap();
    hex(&sha256(&payload))
}

/// `alerts` answers as it did when the payload was a stored `jsonb` column: `payload` is each
/// stored alert's payload exactly (as signed, compared as JSON), and a `jsonb` path filter on
/// it finds the alert it names.
fn assert_alerts_have_their_payloads(db: &str, host_id: &str, envelopes: &[Vec<u8>]) {
    let cluster = nightjar_tests::postgres::Cluster::shared();
    let want: Vec<serde_json::Value> = envelopes
        .iter()
        .map(|e| {
            let (_, payload) = nightjar_proto::verify::open_envelope(e).unwrap();
            serde_json::from_slice(&payload).unwrap()
        })
        .collect();
    let got: Vec<serde_json::Value> = cluster
        .psql(
            db,
            &format!("SELECT payload FROM alerts WHERE host_id = '{host_id}' ORDER BY seq"),
        )
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, want);
    for p in &want {
        let uuid = p["kibana"]["alert"]["uuid"].as_str().unwrap();
        let seq = p["nightjar"]["seq"].as_u64().unwrap();
        assert_eq!(
            cluster.psql(
                db,
                &format!(
                    "SELECT string_agg(seq::text, ',') FROM alerts \
                     WHERE payload->'kibana'->'alert'->>'uuid' = '{uuid}'"
                )
            ),
            seq.to_string()
        );
        assert_eq!(
            cluster.psql(
                db,
                &format!(
                    "SELECT count(*) FROM alerts WHERE host_id = '{host_id}' \
                     AND payload @> '{{\"nightjar\": {{\"seq\": {seq}}}}}'"
                )
            ),
            "1"
        );
    }
    // The rows live in the partitioned table under the view.
    assert_eq!(
        cluster.psql(
            db,
            "SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class \
             WHERE relname IN ('alerts', 'alert_rows', 'alert_payloads')"
        ),
        "alert_payloads:v,alert_rows:p,alerts:v"
    );
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn forged_skewed_replayed_and_unknown_signatures_are_401() {
    let server = Server::start("");
    let token = server.token(2, "1h");
    let mut host = Host::new(&server, "sig-host");
    assert_eq!(host.enroll(&token).status, 200);
    let body = {
        let mut b = host.next(1).remove(0);
        b.push(b'\n');
        b
    };
    let ct = ("Content-Type", "application/x-ndjson".to_string());

    // Skew past 300 s either way.
    for t in [now() - 400, now() + 400] {
        let mut h = host.sign_headers("POST", "/v1/alerts", t, &body);
        h.push(ct.clone());
        let r = http(server.addr, "POST", "/v1/alerts", &h, &body);
        assert_eq!(r.status, 401, "{}", r.error());
        assert!(r.error().contains("skew"), "{}", r.error());
    }
    // Forged: signed over another body.
    let mut h = host.sign_headers("POST", "/v1/alerts", now(), b"other");
    h.push(ct.clone());
    assert_eq!(
        http(server.addr, "POST", "/v1/alerts", &h, &body).status,
        401
    );
    // Signed by a stranger's key under this host's id.
    let stranger = Host::new(&server, "sig-host");
    let mut h = stranger.sign_headers("POST", "/v1/alerts", now(), &body);
    h.push(ct.clone());
    assert_eq!(
        http(server.addr, "POST", "/v1/alerts", &h, &body).status,
        401
    );
    // Unknown host.
    let unknown = Host::new(&server, "never-enrolled");
    assert_eq!(unknown.heartbeat(0, &"0".repeat(64)).status, 401);
    // Missing headers.
    assert_eq!(
        http(
            server.addr,
            "POST",
            "/v1/alerts",
            std::slice::from_ref(&ct),
            &body
        )
        .status,
        401
    );

    // Replay of an upload: an idempotent re-delivery, stored once.
    let mut h = host.sign_headers("POST", "/v1/alerts", now(), &body);
    h.push(ct.clone());
    assert_eq!(
        http(server.addr, "POST", "/v1/alerts", &h, &body).status,
        200
    );
    let r = http(server.addr, "POST", "/v1/alerts", &h, &body);
    assert_eq!(r.status, 200, "{}", r.error());
    assert_eq!(server.cli_json(&["alerts", "list", "--json"]).len(), 1);
    // Replay of a heartbeat (it would keep a dead host looking alive): refused.
    let hb = json!({"chain_head": {"seq": 1, "hash": host.signer.position().1}}).to_string();
    let mut h = host.sign_headers("POST", "/v1/heartbeat", now(), hb.as_bytes());
    h.push(("Content-Type", "application/json".into()));
    assert_eq!(
        http(server.addr, "POST", "/v1/heartbeat", &h, hb.as_bytes()).status,
        200
    );
    let r = http(server.addr, "POST", "/v1/heartbeat", &h, hb.as_bytes());
    assert_eq!(r.status, 401);
    assert!(r.error().contains("replay"), "{}", r.error());
}

#[test]
fn every_integrity_kind_is_recorded_and_listed() {
    let server = Server::start("silent_after = \"2s\"");
    let token = server.token(10, "1h");
    let mut host = Host::new(&server, "hostile");
    assert_eq!(host.enroll(&token).status, 200);

    // gap: seqs 1, 2 then 5 (3 and 4 held back).
    let all = host.next(6);
    assert_eq!(host.upload(&all[..2]).status, 200);
    let r = host.upload(&all[4..5]);
    assert_eq!(r.status, 200, "{}", r.error());
    assert_eq!(r.json()["accepted_through"], 5);
    assert_eq!(server.host("hostile")["status"], "gap");
    // The fill closes it.
    assert_eq!(host.upload(&all[2..4]).status, 200);
    let gap = server
        .cli_json(&["integrity", "list", "--host", "hostile", "--json"])
        .into_iter()
        .find(|e| e["kind"] == "gap")
        .expect("gap recorded");
    assert_eq!(
        (gap["seq_from"].as_i64(), gap["seq_to"].as_i64()),
        (Some(3), Some(4))
    );
    assert!(gap["closed_at"].is_string(), "{gap}");
    assert_eq!(server.host("hostile")["status"], "ok");

    // bad_signature: a tampered envelope; nothing of the batch is stored.
    let mut tampered = all[5].clone();
    let at = tampered.iter().position(|&b| b == b'"').unwrap() + 20;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let r = host.upload(&[tampered]);
    assert_eq!(r.status, 400, "{}", r.error());
    assert!(r.error().starts_with("line 1:"), "{}", r.error());

    // rollback: the host reports a head below the server's.
    let r = host.heartbeat(2, &payload_hash_of(&all[1]));
    assert_eq!(r.status, 200, "{}", r.error());
    assert_eq!(server.host("hostile")["status"], "rollback");
    // Catching up clears the rollback status (the event stays).
    assert_eq!(host.upload(&all[5..6]).status, 200);
    assert_eq!(host.heartbeat_head().status, 200);
    assert_eq!(server.host("hostile")["status"], "ok");

    // pending: the host reports alerts the server does not have yet.
    let more = host.next(1);
    assert_eq!(host.heartbeat_head().status, 200);
    assert_eq!(server.host("hostile")["status"], "pending");
    assert_eq!(host.upload(&more).status, 200);

    // fork: seq 7 again with another payload (a restored host re-raising different alerts).
    let forged_payload = host
        .signer
        .payload(7, &hex(&sha256(b"a different history")));
    let forged = host.signer.envelope(&forged_payload);
    let r = host.upload(&[forged]);
    assert_eq!(r.status, 409, "{}", r.error());
    assert_eq!(r.json()["seq"], 7);
    assert_eq!(server.host("hostile")["status"], "fork");

    // silent: no heartbeat for longer than silent_after.
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(
        server.host("hostile")["status"],
        "fork",
        "fork outranks silence"
    );
    let kinds = server.integrity_kinds("hostile");
    for kind in ["gap", "bad_signature", "rollback", "fork", "silent"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
    server.cli_ok(&["hosts", "reset", "hostile"]);
    assert!(
        server
            .integrity_kinds("hostile")
            .iter()
            .any(|k| k == "reset")
    );
    let text = server.cli_ok(&["integrity", "list"]);
    assert!(text.contains("hostile") && text.contains("fork"), "{text}");
}

#[test]
fn hostile_bodies_are_4xx_naming_line_and_reason_with_nothing_stored() {
    let server = Server::start("max_body_bytes = 4096");
    let token = server.token(1, "1h");
    let mut host = Host::new(&server, "bodies");
    assert_eq!(host.enroll(&token).status, 200);
    let good = host.next(2);

    let mut body = good[0].clone();
    body.extend_from_slice(b"\n{not json\n");
    let r = host.signed("POST", "/v1/alerts", "application/x-ndjson", &body);
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("line 2:"), "{}", r.error());
    assert_eq!(r.json()["line"], 2);

    let r = host.signed("POST", "/v1/alerts", "application/json", &good[0]);
    assert_eq!(r.status, 415, "{}", r.error());
    let r = host.signed(
        "POST",
        "/v1/alerts",
        "application/x-ndjson",
        &vec![b'x'; 5000],
    );
    assert_eq!(r.status, 413, "{}", r.error());
    let r = host.signed("POST", "/v1/alerts", "application/x-ndjson", b"");
    assert_eq!(r.status, 400, "{}", r.error());
    // Out of order.
    let mut body = good[1].clone();
    body.push(b'\n');
    body.extend_from_slice(&good[0]);
    let r = host.signed("POST", "/v1/alerts", "application/x-ndjson", &body);
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("line 2") && r.error().contains("order"),
        "{}",
        r.error()
    );
    // Wrongly typed JSON in envelopes and heartbeats.
    let r = host.signed(
        "POST",
        "/v1/alerts",
        "application/x-ndjson",
        br#"{"payload":1,"payloadType":[],"signatures":{}}"#,
    );
    assert_eq!(r.status, 400, "{}", r.error());
    let r = host.signed(
        "POST",
        "/v1/heartbeat",
        "application/json",
        br#"{"chain_head":{"seq":"one","hash":5}}"#,
    );
    assert_eq!(r.status, 400, "{}", r.error());
    let r = host.signed("POST", "/v1/heartbeat", "application/json", b"[]");
    assert_eq!(r.status, 400, "{}", r.error());

    assert!(
        server.cli_json(&["alerts", "list", "--json"]).is_empty(),
        "nothing stored"
    );
    // And the server is unaffected.
    assert_eq!(host.upload(&good).status, 200);
}

#[test]
fn the_admin_api_refuses_hosts_and_strangers() {
    let server = Server::start("");
    let token = server.token(1, "1h");
    let host = Host::new(&server, "api-host");
    assert_eq!(host.enroll(&token).status, 200);
    let admin = server.admin_token();

    let ok = http(
        server.addr,
        "GET",
        "/v1/hosts",
        &[("Authorization", format!("Bearer {admin}"))],
        b"",
    );
    assert_eq!(ok.status, 200, "{}", ok.error());
    assert_eq!(ok.json()["hosts"][0]["host_id"], "api-host");

    for path in ["/v1/hosts", "/v1/alerts", "/v1/integrity", "/v1/stats"] {
        let signed = host.sign_headers("GET", path, now(), b"");
        assert_eq!(
            http(server.addr, "GET", path, &signed, b"").status,
            401,
            "{path} host-signed"
        );
        assert_eq!(
            http(server.addr, "GET", path, &[], b"").status,
            401,
            "{path} stranger"
        );
        let enrol = [("Authorization", format!("Bearer {token}"))];
        assert_eq!(
            http(server.addr, "GET", path, &enrol, b"").status,
            401,
            "{path} enrolment token"
        );
        let wrong = [("Authorization", "Bearer nja_wrong".to_string())];
        assert_eq!(
            http(server.addr, "GET", path, &wrong, b"").status,
            401,
            "{path} wrong token"
        );
    }
}

#[test]
fn a_signed_chain_head_mark_is_checked_when_present() {
    use base64::Engine as _;
    let server = Server::start("");
    let token = server.token(1, "1h");
    let mut host = Host::new(&server, "marked");
    assert_eq!(host.enroll(&token).status, 200);
    let batch = host.next(2);
    assert_eq!(host.upload(&batch).status, 200);
    let (next, hash) = host.signer.position();
    let seq = next - 1;
    let sign = |h: &str| {
        base64::engine::general_purpose::STANDARD.encode(host.signer.sign(
            &nightjar_proto::fleet::chain_head_signing_bytes("marked", seq, h),
        ))
    };
    let good = json!({"chain_head": {"seq": seq, "hash": hash, "signature": sign(&hash)}});
    let r = host.signed(
        "POST",
        "/v1/heartbeat",
        "application/json",
        good.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.error());
    // A mark signed over another hash: refused and recorded.
    let forged =
        json!({"chain_head": {"seq": seq, "hash": hash, "signature": sign(&"0".repeat(64))}});
    let r = host.signed(
        "POST",
        "/v1/heartbeat",
        "application/json",
        forged.to_string().as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.error());
    assert_eq!(r.json()["reason"], "bad_signature");
    assert_eq!(server.integrity_kinds("marked"), vec!["bad_signature"]);
}

#[test]
fn verify_names_the_host_and_seq_of_a_tampered_or_missing_alert() {
    let server = Server::start("");
    let token = server.token(1, "1h");
    let mut host = Host::new(&server, "audited");
    assert_eq!(host.enroll(&token).status, 200);
    let batch = host.next(5);
    assert_eq!(host.upload(&batch).status, 200);
    assert!(server.cli(&["verify"]).status.success());
    let cluster = nightjar_tests::postgres::Cluster::shared();
    let db = server.db_url.rsplit('/').next().unwrap().to_string();
    // An edit of a stored payload (a database administrator's, or an attacker's).
    cluster.psql(
        &db,
        "UPDATE alerts SET envelope = convert_to(replace(convert_from(envelope, 'UTF8'), 'payload\":\"e', 'payload\":\"f'), 'UTF8') WHERE seq = 3",
    );
    let out = server.cli(&["verify", "--host", "audited"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"audited\"") && err.contains("seq 3"),
        "{err}"
    );
    // A deleted alert that no gap accounts for.
    cluster.psql(
        &db,
        "DELETE FROM alerts WHERE seq = 3; DELETE FROM chain_index WHERE seq = 3",
    );
    let out = server.cli(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("seq 3") && err.contains("no gap was recorded"),
        "{err}"
    );
}

#[test]
fn config_errors_name_the_file_line_and_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\nsilent_after = 15\n").unwrap();
    let out = std::process::Command::new(nightjar_tests::harness::bin("nightjar-server"))
        .args(["hosts", "list", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.toml:2:") && err.contains("silent_after"),
        "{err}"
    );
    std::fs::write(
        &path,
        "allow_insecure_http = true\nlisten = \"0.0.0.0:8443\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(nightjar_tests::harness::bin("nightjar-server"))
        .args(["migrate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_insecure_http"));
}

/// A database written by an earlier schema (migrations 1 to 3, payloads in a `jsonb` column)
/// is upgraded in place by `migrate`: its alerts stay listed, verified and searchable, `alerts`
/// still has their payloads, and its hosts' chains go on where they stopped.
#[test]
fn migrate_upgrades_a_database_of_schema_3_in_place() {
    upgrades_in_place(3);
}

/// The same from schema 4 (payloads read out of the envelope, `alerts` the table itself).
#[test]
fn migrate_upgrades_a_database_of_schema_4_in_place() {
    upgrades_in_place(4);
}

fn upgrades_in_place(version: usize) {
    let cluster = nightjar_tests::postgres::Cluster::shared();
    let db_url = cluster.fresh_db();
    let db = db_url.rsplit('/').next().unwrap().to_string();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/migrations");
    let old = &[
        "0001_fleet.sql",
        "0002_ingest_cost.sql",
        "0003_policy_summary.sql",
        "0004_payload_from_envelope.sql",
    ][..version];
    let mut sql = String::from(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now());\n",
    );
    for (i, file) in old.iter().enumerate() {
        sql += &std::fs::read_to_string(migrations.join(file)).unwrap();
        let name = &file[5..file.len() - 4];
        sql += &format!(
            "\nINSERT INTO schema_migrations VALUES ({}, '{name}');\n",
            i + 1
        );
    }
    cluster.psql(&db, &sql);

    // A host enrolled and two alerts stored by the previous server.
    let mut host = Host {
        signer: nightjar_tests::collector::ChainSigner::generate("legacy-host"),
        addr: "127.0.0.1:9".parse().unwrap(),
    };
    let envelopes = host.next(2);
    let key = hex(&host.signer.public_key());
    let key_id = host.signer.key_id();
    let mut rows = format!(
        "INSERT INTO hosts (host_id, hostname, os, agent_version, public_key, key_id, enrolled_at)
             VALUES ('legacy-host', 'legacy', 'linux', 'old', decode('{key}', 'hex'), '{key_id}', now());
         INSERT INTO host_keys (host_id, epoch, public_key, key_id)
             VALUES ('legacy-host', 1, decode('{key}', 'hex'), '{key_id}');\n"
    );
    let mut prev = "0".repeat(64);
    for (i, e) in envelopes.iter().enumerate() {
        let hash = payload_hash_of(e);
        rows += &format!(
            "INSERT INTO chain_index VALUES ('legacy-host', 1, {seq}, decode('{hash}', 'hex'),
                 decode('{prev}', 'hex'), now());
             INSERT INTO alerts
                 SELECT 'legacy-host', 1, {seq}, now(), now(), p->'kibana'->'alert'->>'uuid',
                        'rule', 'Rule', 'high', '{key_id}', e{payload}
                 FROM (SELECT e, convert_from(decode(convert_from(e, 'UTF8')::json->>'payload',
                              'base64'), 'UTF8')::jsonb AS p
                       FROM (SELECT decode('{env}', 'hex') AS e) x) y;\n",
            seq = i + 1,
            env = hex(e),
            payload = if version < 4 { ", p" } else { "" },
        );
        prev = hash;
    }
    rows += &format!(
        "INSERT INTO chain_heads VALUES ('legacy-host', 1, 2, decode('{prev}', 'hex'), NULL, NULL);"
    );
    cluster.psql(&db, &rows);

    let dir = tempfile::tempdir().unwrap();
    let config = nightjar_tests::fleet::write_config(dir.path(), &db_url, "");
    let out = std::process::Command::new(nightjar_tests::harness::bin("nightjar-server"))
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let newest = std::fs::read_dir(&migrations)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("sql".as_ref()))
        .count();
    assert_eq!(
        cluster.psql(&db, "SELECT max(version) FROM schema_migrations"),
        newest.to_string()
    );
    assert_alerts_have_their_payloads(&db, "legacy-host", &envelopes);
    // The payload is read out of the envelope, for ad-hoc SQL as for the console.
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT string_agg(payload->'nightjar'->>'seq', ',' ORDER BY seq) FROM alert_payloads"
        ),
        "1,2"
    );
    // A `\u0000` escape, which `jsonb` cannot hold, reads as U+FFFD; an escaped backslash
    // before `u0000` is no such escape.
    assert_eq!(
        cluster.psql(
            &db,
            r#"SELECT alert_payload(convert_to('{"payload":"' || encode(convert_to(
                   '{"a":"x\u0000y","b":"\\u0000","c":"\\\u0000"}', 'UTF8'), 'base64')
                   || '"}', 'UTF8'))::text"#
        ),
        "{\"a\": \"x\u{fffd}y\", \"b\": \"\\\\u0000\", \"c\": \"\\\\\u{fffd}\"}"
    );

    let server = Server::start_on(&db_url, "");
    host.addr = server.addr;
    let more = host.next(2);
    let a = host.upload(&more);
    assert_eq!(a.status, 200, "{}", a.error());
    assert_eq!(a.json()["accepted_through"], 4);
    let alerts = server.cli_json(&["alerts", "list", "--host", "legacy-host", "--json"]);
    assert_eq!(alerts.len(), 4);
    assert!(alerts.iter().all(|a| a["nightjar"]["verified"] == true));
    let out = server.cli(&["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.integrity_kinds("legacy-host").is_empty());
    let admin = server.admin_token();
    let found = http(
        server.addr,
        "GET",
        "/v1/alerts?q=LEGACY-host-2",
        &[("Authorization", format!("Bearer {admin}"))],
        b"",
    );
    assert_eq!(found.status, 200, "{}", found.error());
    let seqs: Vec<_> = found.json()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2]);
    let all: Vec<Vec<u8>> = envelopes.iter().chain(&more).cloned().collect();
    assert_alerts_have_their_payloads(&db, "legacy-host", &all);
}
