//! Two real `nightjar-server` processes over one PostgreSQL: the same batch arriving at both
//! at once (a retry that crossed a slow first attempt) is stored once and raises no fork.

use std::sync::{Arc, Barrier};

use nightjar_tests::fleet::{Host, Server};

#[test]
fn the_same_batch_racing_two_replicas_is_stored_once_without_a_false_fork() {
    let a = Server::start("");
    let b = Server::start_on(&a.db_url, "");
    let token = a.token(1, "1h");
    let mut host = Host::new(&a, "raced");
    assert_eq!(host.enroll(&token).status, 200);

    let rounds = 20;
    let per_batch = 50;
    for _ in 0..rounds {
        let batch = Arc::new(host.next(per_batch));
        let barrier = Arc::new(Barrier::new(2));
        let answers: Vec<_> = [a.addr, b.addr]
            .into_iter()
            .map(|addr| {
                let batch = batch.clone();
                let barrier = barrier.clone();
                let mut body = Vec::new();
                for e in batch.iter() {
                    body.extend_from_slice(e);
                    body.push(b'\n');
                }
                // Each replica gets its own signed request (as two attempts of an agent would).
                let headers =
                    host.sign_headers("POST", "/v1/alerts", nightjar_tests::fleet::now(), &body);
                std::thread::spawn(move || {
                    let mut h = headers;
                    h.push(("Content-Type", "application/x-ndjson".into()));
                    barrier.wait();
                    nightjar_tests::fleet::http(addr, "POST", "/v1/alerts", &h, &body)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("upload thread"))
            .collect();
        for r in &answers {
            assert_eq!(r.status, 200, "{}", r.error());
        }
    }
    let total = rounds * per_batch;
    let stored = a.cli_json(&["alerts", "list", "--host", "raced", "--json"]);
    assert_eq!(stored.len(), total, "every alert stored exactly once");
    assert!(
        a.integrity_kinds("raced").is_empty(),
        "no false fork or gap"
    );
    assert_eq!(b.host("raced")["chain_head_seq"], total as u64);
    assert_eq!(b.host("raced")["status"], "ok");
    let out = b.cli(&["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
