//! A minimal HTTP/1.1 server side: request heads (parsed by `httparse`), `Content-Length` and
//! chunked bodies, and responses — enough for a collector and its fault injection.

use std::io::{self, BufRead, Read, Write};

/// Largest request head accepted.
const HEAD_LIMIT: usize = 64 * 1024;
/// Largest request body accepted.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// A parsed request line and headers.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the body is chunked.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// The declared `Content-Length` (0 when absent).
    pub fn content_length(&self) -> io::Result<usize> {
        match self.header("content-length") {
            None => Ok(0),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| invalid(format!("bad Content-Length {v:?}"))),
        }
    }

    /// Whether the client asked to close after this exchange.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads a request head; `None` when the peer closed the connection between requests.
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut buf = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if buf == b"\r\n" || buf == b"\n" {
            // Tolerate stray blank lines between requests (RFC 9112 §2.2).
            buf.clear();
            continue;
        }
        if buf.ends_with(b"\r\n\r\n") || buf.ends_with(b"\n\n") {
            break;
        }
        if buf.len() > HEAD_LIMIT {
            return Err(invalid("request head too large".to_owned()));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("incomplete request head".to_owned())),
        Err(e) => return Err(invalid(format!("request head: {e}"))),
    }
    Ok(Some(Head {
        method: req.method.unwrap_or_default().to_owned(),
        path: req.path.unwrap_or_default().to_owned(),
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    }))
}

/// A body that exceeds [`BODY_LIMIT`] (answered 413), as opposed to a broken one.
pub fn is_too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLarge>())
}

#[derive(Debug, thiserror::Error)]
#[error("request body larger than {BODY_LIMIT} bytes")]
struct TooLarge;

fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TooLarge)
}

/// Reads the whole body the head announces.
pub fn read_body(r: &mut impl BufRead, head: &Head) -> io::Result<Vec<u8>> {
    if head.is_chunked() {
        return read_chunked(r);
    }
    let len = head.content_length()?;
    if len > BODY_LIMIT {
        return Err(too_large());
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailer section, up to the blank line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                if line == "\r\n" || line == "\n" {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > BODY_LIMIT {
            return Err(too_large());
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(invalid("chunk not followed by CRLF".to_owned()));
        }
    }
}

/// Reads and discards up to `n` body bytes (used to cut a connection mid-body).
pub fn read_partial(r: &mut impl Read, n: usize) -> io::Result<()> {
    io::copy(&mut r.take(n as u64), &mut io::sink()).map(|_| ())
}

/// A response ready to be written.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Response {
            status,
            headers: vec![("Content-Type", "application/json".to_owned())],
            body: value.to_string().into_bytes(),
        }
    }

    /// The response as bytes on the wire.
    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Writes the response and flushes.
    pub fn write_to(&self, w: &mut impl Write, close: bool) -> io::Result<()> {
        w.write_all(&self.to_bytes(close))?;
        w.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
