//! HTTP/1.1, as much as a registry client and the daemon's API need: message heads (the
//! request or status line and the headers), bounded in size and count, and chunked bodies.
//! Pure and hostile-input safe: every limit is checked before anything is buffered. The client
//! (`client`) and the daemon's server build on it.

pub mod client;
#[cfg(feature = "tls")]
pub mod tls;
pub mod url;

use std::io::{self, BufRead, Read};

/// A message head may not be larger than this (request or status line and headers).
pub const MAX_HEAD: usize = 64 << 10;
/// Nor have more headers than this.
pub const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The three parts of the first line: method, target, version for a request; version,
    /// status, reason for a response.
    pub line: [String; 3],
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The peer closed before sending anything.
    Closed,
    TooLarge,
    TooManyHeaders,
    Malformed(&'static str),
    Io(io::ErrorKind),
    /// A header line was refused as it arrived ([`read_head_watching`]).
    Refused,
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Closed => f.write_str("the connection closed before a message arrived"),
            HeadError::TooLarge => write!(f, "message head larger than {MAX_HEAD} bytes"),
            HeadError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} headers"),
            HeadError::Malformed(m) => write!(f, "malformed HTTP message: {m}"),
            HeadError::Io(k)
                if *k == io::ErrorKind::WouldBlock || *k == io::ErrorKind::TimedOut =>
            {
                f.write_str("timed out waiting for the message")
            }
            HeadError::Io(k) => write!(f, "reading the message: {k}"),
            HeadError::Refused => f.write_str("a header was refused"),
        }
    }
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Content-Length, if present and valid; `Err` when present but not a number (or several
    /// that disagree), which is a request smuggling vector and refused.
    pub fn content_length(&self) -> Result<Option<u64>, HeadError> {
        let mut found: Option<u64> = None;
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case("content-length") {
                let v: u64 = v
                    .trim()
                    .parse()
                    .map_err(|_| HeadError::Malformed("bad Content-Length"))?;
                if found.is_some_and(|f| f != v) {
                    return Err(HeadError::Malformed("conflicting Content-Length headers"));
                }
                found = Some(v);
            }
        }
        Ok(found)
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// The status of a response head.
    pub fn status(&self) -> Option<u16> {
        self.line[1].parse().ok()
    }
}

/// Reads one message head from `r` (a buffered reader over the connection). Stops at the
/// blank line; never reads past it.
pub fn read_head(r: &mut impl BufRead) -> Result<Head, HeadError> {
    read_head_watching(r, &mut |_| true)
}

/// [`read_head`], showing `watch` every header line as it arrives, before the rest of the head
/// is read: a server refuses a wrong credential at once (`watch` returns false: `Refused`),
/// not after a client took its time sending the rest.
pub fn read_head_watching(
    r: &mut impl BufRead,
    watch: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<Head, HeadError> {
    let mut raw = Vec::with_capacity(1024);
    loop {
        let before = raw.len();
        let n = r
            .by_ref()
            .take((MAX_HEAD + 1 - raw.len()) as u64)
            .read_until(b'\n', &mut raw)
            .map_err(|e| HeadError::Io(e.kind()))?;
        if n == 0 {
            return Err(if raw.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Malformed("the connection closed inside the head")
            });
        }
        if raw.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let line = &raw[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                // Tolerate blank lines before a request line (RFC 9112 2.2).
                raw.clear();
                continue;
            }
            break;
        }
        if before > 0 && !watch(line) {
            return Err(HeadError::Refused);
        }
    }
    parse_head(&raw)
}

/// Parses a complete head (its bytes up to and including the blank line).
pub fn parse_head(raw: &[u8]) -> Result<Head, HeadError> {
    let text = std::str::from_utf8(raw).map_err(|_| HeadError::Malformed("not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or(HeadError::Malformed("empty"))?;
    let mut parts = first.splitn(3, ' ');
    let a = parts.next().unwrap_or("");
    let b = parts.next().ok_or(HeadError::Malformed("bad first line"))?;
    let c = parts.next().unwrap_or("");
    if a.is_empty() || b.is_empty() || first.bytes().any(|x| x.is_ascii_control()) {
        return Err(HeadError::Malformed("bad first line"));
    }
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            break;
        }
        if l.starts_with([' ', '\t']) {
            return Err(HeadError::Malformed("folded header lines are not allowed"));
        }
        let (n, v) = l
            .split_once(':')
            .ok_or(HeadError::Malformed("header without a colon"))?;
        let valid_name = !n.is_empty()
            && n.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
        if !valid_name {
            return Err(HeadError::Malformed("bad header name"));
        }
        if v.bytes().any(|c| c.is_ascii_control() && c != b'\t') {
            return Err(HeadError::Malformed("control character in a header value"));
        }
        if headers.len() == MAX_HEADERS {
            return Err(HeadError::TooManyHeaders);
        }
        headers.push((n.to_string(), v.trim().to_string()));
    }
    Ok(Head {
        line: [a.to_string(), b.to_string(), c.to_string()],
        headers,
    })
}

/// Reads a chunked body (RFC 9112 7.1), ending after the last chunk and its trailers.
pub struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    pub fn new(inner: R) -> Chunked<R> {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }

    fn line(&mut self) -> io::Result<String> {
        let mut l = Vec::new();
        self.inner.by_ref().take(4096).read_until(b'\n', &mut l)?;
        if !l.ends_with(b"\n") {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated chunked body",
            ));
        }
        String::from_utf8(l).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk"))
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let l = self.line()?;
            let size = l.trim_end().split(';').next().unwrap_or("").trim();
            self.left = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if self.left == 0 {
                // Trailers, then the blank line.
                loop {
                    let t = self.line()?;
                    if t == "\r\n" || t == "\n" {
                        break;
                    }
                }
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated chunked body",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let end = self.line()?;
            if end != "\r\n" && end != "\n" {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad chunk end"));
            }
        }
        Ok(n)
    }
}

/// Percent-decodes a URL path or query component; None on a bad escape.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but unreserved characters (for query values).
pub fn percent_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            o.push(c as char);
        } else {
            o.push_str(&format!("%{c:02X}"));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_limits_hold() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\n").unwrap();
        assert_eq!(h.status(), Some(200));
        assert_eq!(h.header("content-length"), Some("5"));
        assert_eq!(h.header("x-a"), Some("b"));
        assert_eq!(h.content_length(), Ok(Some(5)));
        let r = parse_head(b"GET /v1/instances HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.line[0], "GET");
        assert_eq!(r.line[1], "/v1/instances");
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: \x01\r\n\r\n",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let two = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
            .unwrap();
        assert!(two.content_length().is_err());
        let big = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "x".repeat(MAX_HEAD));
        assert_eq!(read_head(&mut big.as_bytes()), Err(HeadError::TooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            read_head(&mut many.as_bytes()),
            Err(HeadError::TooManyHeaders)
        );
        assert_eq!(read_head(&mut &b""[..]), Err(HeadError::Closed));
        assert!(read_head(&mut &b"GET / HTTP/1.1\r\nA: b"[..]).is_err());
    }

    #[test]
    fn chunked_bodies_decode_and_truncation_is_an_error() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let mut r = Chunked::new(&body[..]);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
        let mut out = Vec::new();
        assert!(Chunked::new(&b"5\r\nhel"[..])
            .read_to_end(&mut out)
            .is_err());
        assert!(Chunked::new(&b"zz\r\n"[..]).read_to_end(&mut out).is_err());
    }

    #[test]
    fn percent_coding_round_trips() {
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%zz"), None);
    }
}
