//! The test collector's independent verifier: it must accept a well-formed chain, treat
//! re-deliveries as idempotent, and refuse tampered envelopes, foreign key ids and broken
//! chains — directly and over HTTP (Content-Length and chunked bodies).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nightjar_tests::collector::{
    ChainSigner, Collector, CollectorOptions, RejectReason, Verdict, Verifier, sha256_hex,
};
use serde_json::Value;

fn reason(result: Result<Verdict, nightjar_tests::collector::Rejection>) -> RejectReason {
    result.expect_err("envelope must be refused").reason
}

#[test]
fn accepts_a_chain_and_deduplicates_redeliveries() {
    let mut signer = ChainSigner::generate("host-a");
    let mut verifier = Verifier::new(signer.public_key());
    let envelopes: Vec<_> = (0..5).map(|_| signer.next_envelope()).collect();
    for (seq, env) in &envelopes {
        match verifier.check(env, "host-a").expect("valid envelope") {
            Verdict::Accepted { seq: got, .. } => assert_eq!(got, *seq),
            other => panic!("seq {seq}: {other:?}"),
        }
    }
    assert_eq!(verifier.last_seq(), 5);
    assert_eq!(
        verifier
            .check(&envelopes[2].1, "host-a")
            .expect("re-delivery"),
        Verdict::Duplicate { seq: 3 }
    );
}

#[test]
fn first_alert_must_chain_to_zeros() {
    let signer = ChainSigner::generate("host-a");
    let mut verifier = Verifier::new(signer.public_key());
    let wrong_prev = sha256_hex(b"not the genesis");
    let env = signer.envelope(&signer.payload(1, &wrong_prev));
    assert_eq!(
        reason(verifier.check(&env, "host-a")),
        RejectReason::BadChain
    );
    let env = signer.envelope(&signer.payload(1, &"0".repeat(64)));
    assert!(verifier.check(&env, "host-a").is_ok());
}

#[test]
fn refuses_a_tampered_payload() {
    let mut signer = ChainSigner::generate("host-a");
    let mut verifier = Verifier::new(signer.public_key());
    let (_, env) = signer.next_envelope();
    let mut doc: Value = serde_json::from_slice(&env).unwrap();
    let payload = STANDARD.decode(doc["payload"].as_str().unwrap()).unwrap();
    let tampered = String::from_utf8(payload)
        .unwrap()
        .replace("\"kind\":\"signal\"", "\"kind\":\"event\"");
    doc["payload"] = Value::String(STANDARD.encode(tampered.as_bytes()));
    let tampered_env = serde_json::to_vec(&doc).unwrap();
    assert_eq!(
        reason(verifier.check(&tampered_env, "host-a")),
        RejectReason::BadSignature
    );
    // The original still verifies: the refusal was about the edit, not the key.
    assert!(verifier.check(&env, "host-a").is_ok());
}

#[test]
fn refuses_a_tampered_signature_and_payload_type() {
    let mut signer = ChainSigner::generate("host-a");
    let mut verifier = Verifier::new(signer.public_key());
    let (_, env) = signer.next_envelope();
    let mut doc: Value = serde_json::from_slice(&env).unwrap();
    let mut sig = STANDARD
        .decode(doc["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    sig[0] ^= 1;
    doc["signatures"][0]["sig"] = Value::String(STANDARD.encode(&sig));
    let bad_sig = serde_json::to_vec(&doc).unwrap();
    assert_eq!(
        reason(verifier.check(&bad_sig, "host-a")),
        RejectReason::BadSignature
    );

    let mut doc: Value = serde_json::from_slice(&env).unwrap();
    doc["payloadType"] = Value::String("application/json".to_owned());
    let bad_type = serde_json::to_vec(&doc).unwrap();
    assert_eq!(
        reason(verifier.check(&bad_type, "host-a")),
        RejectReason::BadPayloadType
    );
}

#[test]
fn refuses_a_foreign_key_and_a_wrong_keyid() {
    let mut signer = ChainSigner::generate("host-a");
    let mut intruder = ChainSigner::generate("host-a");
    let mut verifier = Verifier::new(signer.public_key());
    // Signed by another key, honestly labelled: no signature by the expected key.
    let (_, foreign) = intruder.next_envelope();
    assert_eq!(
        reason(verifier.check(&foreign, "host-a")),
        RejectReason::BadKeyId
    );
    // Signed by the right key but labelled with someone else's key id.
    let payload = signer.payload(1, &"0".repeat(64));
    let mislabelled = signer.envelope_with_keyid(&payload, &intruder.key_id());
    assert_eq!(
        reason(verifier.check(&mislabelled, "host-a")),
        RejectReason::BadKeyId
    );
    // Another key's signature under the expected key id does not verify.
    let forged = intruder.envelope_with_keyid(&payload, &signer.key_id());
    assert_eq!(
        reason(verifier.check(&forged, "host-a")),
        RejectReason::BadSignature
    );
    let (_, good) = signer.next_envelope();
    assert!(verifier.check(&good, "host-a").is_ok());
}

#[test]
fn refuses_gaps_broken_links_and_conflicting_duplicates() {
    let mut signer = ChainSigner::generate("host-a");
    let mut verifier = Verifier::new(signer.public_key());
    let (_, first) = signer.next_envelope();
    let first_payload = STANDARD
        .decode(
            serde_json::from_slice::<Value>(&first).unwrap()["payload"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    verifier.check(&first, "host-a").unwrap();
    let (_, second) = signer.next_envelope();
    let (_, third) = signer.next_envelope();
    // seq 3 before seq 2: a gap (deletion or reordering).
    assert_eq!(
        reason(verifier.check(&third, "host-a")),
        RejectReason::SeqGap
    );
    // seq 2 whose prev does not hash the accepted seq 1.
    let broken = signer.envelope(&signer.payload(2, &sha256_hex(b"something else")));
    assert_eq!(
        reason(verifier.check(&broken, "host-a")),
        RejectReason::BadChain
    );
    // A different, validly signed seq 1.
    let rewritten = signer.envelope(&signer.payload(1, &sha256_hex(&first_payload)));
    assert_eq!(
        reason(verifier.check(&rewritten, "host-a")),
        RejectReason::ConflictingDuplicate
    );
    // The honest continuation still goes through.
    verifier.check(&second, "host-a").unwrap();
    verifier.check(&third, "host-a").unwrap();
    assert_eq!(verifier.last_seq(), 3);
}

#[test]
fn refuses_another_hosts_payload_and_garbage() {
    let mut signer = ChainSigner::generate("host-a");
    let mut verifier = Verifier::new(signer.public_key());
    let (_, env) = signer.next_envelope();
    assert_eq!(
        reason(verifier.check(&env, "host-b")),
        RejectReason::HostMismatch
    );
    assert_eq!(
        reason(verifier.check(b"{not json", "host-a")),
        RejectReason::BadJson
    );
    assert_eq!(
        reason(verifier.check(
            br#"{"payload":"***","payloadType":"application/vnd.nightjar.alert+json","signatures":[]}"#,
            "host-a"
        )),
        RejectReason::BadBase64
    );
}

/// One raw HTTP/1.1 exchange on a fresh connection; returns (status, body).
fn exchange(url: &str, request: &[u8]) -> (u16, Value) {
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut stream = TcpStream::connect(authority).unwrap();
    stream.write_all(request).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

fn post(signer: &ChainSigner, url: &str, body: &[u8], chunked: bool) -> (u16, Value) {
    let mut req = format!(
        "POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n\
         X-Nightjar-Host-Id: {}\r\nX-Nightjar-Key-Id: {}\r\nConnection: close\r\n",
        signer.host_id(),
        signer.key_id()
    )
    .into_bytes();
    if chunked {
        req.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for piece in body.chunks(37) {
            req.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
            req.extend_from_slice(piece);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
    } else {
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
    }
    exchange(url, &req)
}

#[test]
fn collector_over_http_accepts_chunked_and_sized_batches_and_reports_rejections() {
    let mut signer = ChainSigner::generate("host-a");
    let collector = Collector::start(CollectorOptions::new(signer.public_key())).unwrap();
    let mut batch = Vec::new();
    for _ in 0..3 {
        batch.extend_from_slice(&signer.next_envelope().1);
        batch.push(b'\n');
    }
    let (status, body) = post(&signer, collector.url(), &batch, true);
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(3)));
    // Same batch again, sized this time: idempotent.
    let (status, body) = post(&signer, collector.url(), &batch, false);
    assert_eq!((status, body["duplicates"].as_u64()), (200, Some(3)));

    // A batch whose second line skips a seq: the first line is kept, the rest refused.
    let (_, four) = signer.next_envelope();
    let _five = signer.next_envelope();
    let (_, six) = signer.next_envelope();
    let bad = [four, six].join(&b'\n');
    let (status, body) = post(&signer, collector.url(), &bad, false);
    assert_eq!(status, 400);
    assert_eq!(body["error"], "seq_gap");
    assert_eq!(body["line"], 2);

    let (status, stats) = exchange(
        collector.url(),
        b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(stats["accepted"], 4);
    assert_eq!(stats["last_seq"], 4);
    assert_eq!(stats["duplicates"], 3);
    assert_eq!(stats["posts"], 3);
    assert_eq!(stats["rejected"]["seq_gap"], 1);
    assert_eq!(collector.accepted().len(), 4);
}

#[test]
fn collector_refuses_wrong_key_header_and_content_type() {
    let signer = ChainSigner::generate("host-a");
    let other = ChainSigner::generate("host-a");
    let collector = Collector::start(CollectorOptions::new(other.public_key())).unwrap();
    let (status, body) = post(&signer, collector.url(), b"{}\n", false);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_key_header"))
    );
    let req = b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
         Content-Length: 3\r\nConnection: close\r\n\r\n{}\n";
    let (status, _) = exchange(collector.url(), req);
    assert_eq!(status, 415);
    assert_eq!(collector.stats().accepted, 0);
}

#[test]
fn collector_answers_oversized_and_malformed_bodies() {
    let signer = ChainSigner::generate("host-a");
    let collector = Collector::start(CollectorOptions::new(signer.public_key())).unwrap();
    let (status, _) = exchange(
        collector.url(),
        b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n\
          Content-Length: 1000000000\r\n\r\n",
    );
    assert_eq!(status, 413);
    let (status, body) = exchange(
        collector.url(),
        b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n\
          Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    );
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("chunk size"),
        "{body}"
    );
    let (status, _) = exchange(
        collector.url(),
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 404);
    assert_eq!(collector.stats().accepted, 0);
}
