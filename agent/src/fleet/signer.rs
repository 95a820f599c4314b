//! Request signatures (DESIGN "Protocol"): `X-Nightjar-{Host-Id,Key-Id,Time,Signature}`, the
//! signature by the host key over `nightjar_proto::fleet::request_signing_bytes`, the bytes the
//! server checks.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nightjar_proto::fleet::{
    HEADER_HOST_ID, HEADER_KEY_ID, HEADER_SIGNATURE, HEADER_TIME, request_signing_bytes,
};
use nightjar_proto::verify::{hex, sha256};

use crate::sign::HostKey;

/// Signs requests as one host.
#[derive(Debug)]
pub struct RequestSigner {
    key: HostKey,
    host_id: String,
    /// What the last request signed covered: method and path, body hash, time. Ed25519 is
    /// deterministic, so the same request signed twice within one second carries the same
    /// signature, which the server refuses as a replay; a repeat moves its time on instead.
    last: Mutex<Option<Signed>>,
}

#[derive(Debug, PartialEq)]
struct Signed {
    method_path: String,
    body_sha256: [u8; 32],
    time: i64,
}

impl RequestSigner {
    pub fn new(key: HostKey, host_id: String) -> RequestSigner {
        RequestSigner {
            key,
            host_id,
            last: Mutex::new(None),
        }
    }

    /// The key that signs (enrolment proves possession of it).
    pub fn key(&self) -> &HostKey {
        &self.key
    }

    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// The four headers for `METHOD path_and_query` with `body`, signed now.
    pub fn headers(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> [(&'static str, String); 4] {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let body_sha256 = sha256(body);
        let time = self.time_for(method, path_and_query, body_sha256, now);
        let message = request_signing_bytes(method, path_and_query, time, &hex(&body_sha256));
        [
            (HEADER_HOST_ID, self.host_id.clone()),
            (HEADER_KEY_ID, self.key.key_id().to_string()),
            (HEADER_TIME, time.to_string()),
            (HEADER_SIGNATURE, STANDARD.encode(self.key.sign(&message))),
        ]
    }
}

impl RequestSigner {
    /// `now`, unless the previous request was this same one signed at `now` or later (a retry
    /// within the second): then one second past it, so no two requests share a signature. Only
    /// identical repeats move on, so the time stays within a second or so of the clock (the
    /// server allows 300 s of skew).
    fn time_for(&self, method: &str, path_and_query: &str, body_sha256: [u8; 32], now: i64) -> i64 {
        let method_path = format!("{method} {path_and_query}");
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let time = match last.as_ref() {
            Some(l)
                if l.method_path == method_path
                    && l.body_sha256 == body_sha256
                    && l.time >= now =>
            {
                l.time + 1
            }
            _ => now,
        };
        *last = Some(Signed {
            method_path,
            body_sha256,
            time,
        });
        time
    }
}

/// The path and query of `url` (what the signature covers), `/` when it has none.
pub fn path_and_query(url: &str) -> String {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.path_and_query().map(|pq| pq.as_str().to_string()))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_what_the_server_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let key = HostKey::create(&tmp.path().join("k")).unwrap();
        let public = key.public_key().to_vec();
        let signer = RequestSigner::new(key, "h1".into());
        let h = signer.headers("POST", "/v1/alerts?x=1", b"body");
        let time: i64 = h[2].1.parse().unwrap();
        let message = request_signing_bytes("POST", "/v1/alerts?x=1", time, &hex(&sha256(b"body")));
        let key = nightjar_proto::verify::AlertKey::from_raw(&public).unwrap();
        assert_eq!(key.verify_base64(&message, &h[3].1), Ok(()));
        assert_eq!(h[1].1, key.key_id());
        assert_eq!(
            path_and_query("https://s.example.com:8443/v1/alerts?a=b"),
            "/v1/alerts?a=b"
        );
        assert_eq!(path_and_query("https://s.example.com"), "/");
    }

    #[test]
    fn a_repeated_request_never_reuses_a_signature() {
        let tmp = tempfile::tempdir().unwrap();
        let key = HostKey::create(&tmp.path().join("k")).unwrap();
        let signer = RequestSigner::new(key, "h1".into());
        let a = signer.headers("POST", "/v1/heartbeat", b"same");
        let b = signer.headers("POST", "/v1/heartbeat", b"same");
        let c = signer.headers("POST", "/v1/heartbeat", b"same");
        assert_ne!(a[3].1, b[3].1);
        assert_ne!(b[3].1, c[3].1);
        let times: Vec<i64> = [&a, &b, &c]
            .iter()
            .map(|h| h[2].1.parse().unwrap())
            .collect();
        assert!(times[0] < times[1] && times[1] < times[2], "{times:?}");
        // Another body is signed at the clock's time again.
        let d = signer.headers("POST", "/v1/heartbeat", b"other");
        let t: i64 = d[2].1.parse().unwrap();
        assert!(t <= times[0] + 1, "{t} against {times:?}");
    }
}
