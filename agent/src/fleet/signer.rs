//! Request signatures (DESIGN "Protocol"): `X-Nightjar-{Host-Id,Key-Id,Time,Signature}`, the
//! signature by the host key over `nightjar_proto::fleet::request_signing_bytes`, the bytes the
//! server checks.

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
}

impl RequestSigner {
    pub fn new(key: HostKey, host_id: String) -> RequestSigner {
        RequestSigner { key, host_id }
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
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let message = request_signing_bytes(method, path_and_query, time, &hex(&sha256(body)));
        [
            (HEADER_HOST_ID, self.host_id.clone()),
            (HEADER_KEY_ID, self.key.key_id().to_string()),
            (HEADER_TIME, time.to_string()),
            (HEADER_SIGNATURE, STANDARD.encode(self.key.sign(&message))),
        ]
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
}
