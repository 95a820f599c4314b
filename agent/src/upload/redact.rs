//! The upload URL as it may be shown: `upload.url` can carry credentials
//! (`https://user:password@host/…`, which the HTTP client sends as Basic authentication) or a
//! token in its query, and neither may reach a log line, `status` or an error message.
//!
//! [`redact_url`] replaces the userinfo with `***` and every query value with `***`
//! (`https://***@collector.example/v1/alerts?token=***`); [`Redactor::scrub`] removes those
//! secrets from any other text that may quote the URL, such as an HTTP client's error.

use std::borrow::Cow;

/// `url` with its userinfo and query values replaced by `***`.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let (_, shown) = split(url);
    if shown == url {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(shown)
    }
}

/// Removes one URL's secrets from text that may contain them.
#[derive(Debug, Clone)]
pub struct Redactor {
    shown: String,
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(url: &str) -> Redactor {
        let (mut secrets, shown) = split(url);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { shown, secrets }
    }

    /// The URL as it may be shown.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// `text` with every secret of the URL replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// (the secrets in `url`, `url` with them replaced): the userinfo (whole, and its password
/// part, also percent-decoded) and each query value.
fn split(url: &str) -> (Vec<String>, String) {
    let mut secrets = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        return (secrets, url.to_string());
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let mut shown = url[..authority_start].to_string();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            push_secret(&mut secrets, userinfo);
            if let Some((_, password)) = userinfo.split_once(':') {
                push_secret(&mut secrets, password);
            }
            shown.push_str("***");
            shown.push_str(&authority[at..]);
        }
        None => shown.push_str(authority),
    }
    let after = &rest[authority_len..];
    let (path, fragment) = match after.find('#') {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    match path.split_once('?') {
        Some((p, query)) => {
            shown.push_str(p);
            shown.push('?');
            let mut first = true;
            for pair in query.split('&') {
                if !first {
                    shown.push('&');
                }
                first = false;
                match pair.split_once('=') {
                    Some((name, value)) => {
                        push_secret(&mut secrets, value);
                        shown.push_str(name);
                        shown.push_str(if value.is_empty() { "=" } else { "=***" });
                    }
                    None => shown.push_str(pair),
                }
            }
        }
        None => shown.push_str(path),
    }
    shown.push_str(fragment);
    (secrets, shown)
}

/// Secrets shorter than this are hidden in the URL but not hunted for in other text, where
/// replacing every occurrence of one or two characters would garble the message.
const MIN_SCRUBBED: usize = 3;

fn push_secret(secrets: &mut Vec<String>, s: &str) {
    if s.len() < MIN_SCRUBBED {
        return;
    }
    secrets.push(s.to_string());
    let decoded = percent_decode(s);
    if decoded != s {
        secrets.push(decoded);
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_query_values_are_hidden() {
        assert_eq!(
            redact_url("https://user:pa%40ss@collector.example:8443/v1/alerts?token=abc&x"),
            "https://***@collector.example:8443/v1/alerts?token=***&x"
        );
        assert_eq!(
            redact_url("https://collector.example/v1/alerts"),
            "https://collector.example/v1/alerts"
        );
        assert_eq!(redact_url("http://u@h/"), "http://***@h/");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn secrets_are_scrubbed_from_other_text() {
        let r = Redactor::new("https://alice:s3cr%21t@c.example/a?key=K9x");
        let text = "error for https://alice:s3cr%21t@c.example/a?key=K9x: pass s3cr!t key K9x";
        let clean = r.scrub(text);
        for secret in ["alice:", "s3cr%21t", "s3cr!t", "K9x"] {
            assert!(!clean.contains(secret), "{clean}");
        }
        assert_eq!(r.url(), "https://***@c.example/a?key=***");
    }
}
