//! The daemon's HTTP/1.1 server: the Unix socket (mode 0660, root:GROUP, peers checked with
//! SO_PEERCRED), optionally TCP (a bearer token, compared in constant time, checked as soon
//! as its header arrives) and a metrics-only listener (`/metrics` and `/healthz`, no token).
//! One request per connection, each on its own thread; each listener has its own connection
//! limit, so clients of one can never lock out another's (root on the socket is always
//! served). A client has `REQUEST_TIME` for its whole request, head and body, however it
//! dribbles it; heads and bodies are size-limited.

use std::io::{BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::peer::Peer;
use crate::http::{read_head_watching, Head, HeadError};
use crate::text::push_json_str;

/// Connections one listener serves at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Request bodies (JSON specs) are at most this large.
pub const MAX_BODY: u64 = 1 << 20;
/// How long a client may take to send its whole request (head and body).
pub const REQUEST_TIME: Duration = Duration::from_secs(10);
/// How long a write to a client may block (a stalled follower is disconnected).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Who sent a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A process on this node, through the Unix socket.
    Local(Peer),
    /// A TCP client that presented the token.
    Remote,
    /// A client of the metrics listener: it may read `/metrics` and `/healthz` only.
    Scraper,
}

pub struct Request {
    pub method: String,
    /// The path's segments, each percent-decoded (so `a%2Fb` stays one segment, "a/b").
    pub segments: Vec<String>,
    /// The path as sent.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub head: Head,
    pub body: Vec<u8>,
    pub caller: Caller,
}

impl Request {
    pub fn query(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// A handler's answer: a whole body, or a stream written until it ends or the client goes.
pub enum Response {
    Full {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    Stream(StreamBody),
}

/// Writes a streamed body until it ends or the client goes.
pub type StreamBody = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

/// What answers requests.
pub type Handler = dyn Fn(Request) -> Response + Send + Sync;

/// A request target split into decoded path segments and query pairs.
type Target = (Vec<String>, Vec<(String, String)>);

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

impl Response {
    pub fn json(status: u16, body: String) -> Response {
        Response::Full {
            status,
            content_type: "application/json",
            body: body.into_bytes(),
        }
    }

    pub fn error(status: u16, msg: &str) -> Response {
        let mut o = String::from("{\"error\":");
        push_json_str(&mut o, msg);
        o.push_str("}\n");
        Response::json(status, o)
    }

    /// The status a response carries (200 for a stream).
    pub fn status(&self) -> u16 {
        match self {
            Response::Full { status, .. } => *status,
            Response::Stream(_) => 200,
        }
    }

    fn write(self, w: &mut dyn Write) -> std::io::Result<()> {
        match self {
            Response::Full {
                status,
                content_type,
                body,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reason(status),
                    body.len()
                );
                w.write_all(head.as_bytes())?;
                w.write_all(&body)?;
                w.flush()
            }
            Response::Stream(f) => {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")?;
                w.flush()?;
                let mut c = Chunks(w);
                f(&mut c)?;
                c.0.write_all(b"0\r\n\r\n")?;
                c.0.flush()
            }
        }
    }
}

/// Writes a chunked body: every write is one chunk.
struct Chunks<'a>(&'a mut dyn Write);

impl Write for Chunks<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0
            .write_all(format!("{:x}\r\n", buf.len()).as_bytes())?;
        self.0.write_all(buf)?;
        self.0.write_all(b"\r\n")?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A secret that can be replaced while the daemon runs (the token file changed).
pub struct Secret(Mutex<Arc<Vec<u8>>>);

impl Secret {
    pub fn new(v: Vec<u8>) -> Secret {
        Secret(Mutex::new(Arc::new(v)))
    }
    pub fn get(&self) -> Arc<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set(&self, v: Vec<u8>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(v);
    }
}

/// Who may talk to a listener.
#[derive(Clone)]
pub enum Gate {
    /// Unix peers: root, the daemon's own user, or members of this group.
    Peer { group: Option<u32> },
    /// TCP clients: `Authorization: Bearer <token>`.
    Token(Arc<Secret>),
    /// Anyone, for `/metrics` and `/healthz` only.
    Metrics,
}

/// Compares without an early exit, so the time taken says nothing about the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | ((a.len() ^ b.len()) >> 8) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// Whether a header line (as sent) carries `token` as its bearer credential. The scheme is
/// case-insensitive (RFC 9110 11.1).
pub fn bearer_matches(line: &[u8], token: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(line).ok()?;
    let (name, value) = text.split_once(':')?;
    if !name.trim().eq_ignore_ascii_case("authorization") {
        return None;
    }
    let value = value.trim();
    Some(match value.split_once(' ') {
        Some((scheme, cred)) if scheme.eq_ignore_ascii_case("bearer") => {
            constant_time_eq(cred.trim().as_bytes(), token)
        }
        _ => false,
    })
}

fn parse_target(target: &str) -> Option<Target> {
    let (p, q) = target.split_once('?').unwrap_or((target, ""));
    let path = p
        .trim_start_matches('/')
        .split('/')
        .map(crate::http::percent_decode)
        .collect::<Option<Vec<String>>>()?;
    let mut query = Vec::new();
    for kv in q.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        query.push((
            crate::http::percent_decode(k)?,
            crate::http::percent_decode(v)?,
        ));
    }
    Some((path, query))
}

fn unauthorized() -> Response {
    Response::error(
        401,
        "a bearer token is required (Authorization: Bearer TOKEN)",
    )
}

/// Reads one request from `caller`; with a `token`, its Authorization header must carry it,
/// and a wrong one is refused as soon as that header arrives (the body is never read for a
/// request without it). Err is the response to send instead.
pub fn read_request(
    r: &mut impl std::io::BufRead,
    caller: Caller,
    token: Option<&[u8]>,
) -> Result<Request, Response> {
    let mut authorized = token.is_none();
    let mut watch = |line: &[u8]| match token.and_then(|t| bearer_matches(line, t)) {
        Some(ok) => {
            authorized = ok;
            ok
        }
        None => true,
    };
    let head = read_head_watching(r, &mut watch).map_err(|e| match e {
        HeadError::Refused => unauthorized(),
        HeadError::TooLarge | HeadError::TooManyHeaders => Response::error(431, &e.to_string()),
        HeadError::Io(_) => Response::error(408, "the request did not arrive in time"),
        e => Response::error(400, &e.to_string()),
    })?;
    if !authorized {
        return Err(unauthorized());
    }
    let [method, target, version] = head.line.clone();
    if !version.starts_with("HTTP/1.") {
        return Err(Response::error(400, "only HTTP/1.x is served"));
    }
    if head.is_chunked() {
        return Err(Response::error(411, "send the body with a Content-Length"));
    }
    let len = head
        .content_length()
        .map_err(|e| Response::error(400, &e.to_string()))?
        .unwrap_or(0);
    if len > MAX_BODY {
        return Err(Response::error(
            413,
            &format!("bodies are at most {MAX_BODY} bytes"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)
        .map_err(|_| Response::error(408, "the request body did not arrive in time"))?;
    let (segments, query) = parse_target(&target)
        .ok_or_else(|| Response::error(400, "bad percent-encoding in the path"))?;
    let path = target.split('?').next().unwrap_or("").to_string();
    Ok(Request {
        method,
        segments,
        path,
        query,
        head,
        body,
        caller,
    })
}

/// A connection the server can put a read deadline on.
pub trait Conn: Read + Write + AsRawFd {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()>;
    fn set_write_timeout(&self, d: Option<Duration>) -> std::io::Result<()>;
}

impl Conn for UnixStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, d)
    }
    fn set_write_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_write_timeout(self, d)
    }
}

impl Conn for std::net::TcpStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, d)
    }
    fn set_write_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        std::net::TcpStream::set_write_timeout(self, d)
    }
}

/// Reads that end at a deadline for the whole request, not at an idle time per read: a client
/// sending a byte every few seconds still has `REQUEST_TIME` in all.
struct Deadline<S> {
    s: S,
    until: Instant,
}

impl<S: Conn> Read for Deadline<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.s.set_read_timeout(Some(left))?;
        self.s.read(buf)
    }
}

/// Serves one connection: checks the peer, reads the request, answers it.
pub fn serve_connection<S: Conn>(stream: S, gate: &Gate, handler: &Handler) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let (caller, token) = match gate {
        Gate::Peer { group } => match Peer::of(stream.as_raw_fd()) {
            Some(p) if p.allowed(*group) => (Ok(Caller::Local(p)), None),
            Some(p) => (
                Err(Response::error(
                    403,
                    &format!(
                        "uid {} (pid {}) may not use this daemon: it takes root and members of its --group",
                        p.uid, p.pid
                    ),
                )),
                None,
            ),
            None => (
                Err(Response::error(403, "cannot read the peer's credentials")),
                None,
            ),
        },
        Gate::Token(t) => (Ok(Caller::Remote), Some(t.get())),
        Gate::Metrics => (Ok(Caller::Scraper), None),
    };
    let mut r = BufReader::new(Deadline {
        s: stream,
        until: Instant::now() + REQUEST_TIME,
    });
    let response = match caller {
        Err(refusal) => refusal,
        Ok(caller) => match read_request(&mut r, caller, token.as_deref().map(Vec::as_slice)) {
            Err(resp) => resp,
            Ok(req) => handler(req),
        },
    };
    let mut w = r.into_inner().s;
    // Streams (followers) wait for events, not for the client: no read deadline from here.
    let _ = w.set_read_timeout(None);
    let _ = response.write(&mut w);
}

/// Counts one listener's connections; a connection over its limit is answered 503 at once.
pub struct Slots {
    used: AtomicUsize,
    max: usize,
    what: &'static str,
}

pub struct Slot<'a>(&'a Slots);

impl Slots {
    pub fn new(max: usize, what: &'static str) -> Slots {
        Slots {
            used: AtomicUsize::new(0),
            max,
            what,
        }
    }

    pub fn take(&self) -> Option<Slot<'_>> {
        let n = self.used.fetch_add(1, Ordering::SeqCst);
        if n >= self.max {
            self.used.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(self))
    }

    /// Answers a connection that found no free slot.
    pub fn refuse(&self, mut w: impl Write) {
        let _ = Response::error(
            503,
            &format!(
                "more than {} connections at once on the {}; retry",
                self.max, self.what
            ),
        )
        .write(&mut w);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `stream` on a thread of its own, if its listener has a free slot.
pub fn spawn<S: Conn + Send + 'static>(
    stream: S,
    slots: &Arc<Slots>,
    gate: Gate,
    handler: &Arc<Handler>,
) {
    let (sl, h) = (slots.clone(), handler.clone());
    std::thread::spawn(move || match sl.take() {
        Some(_slot) => serve_connection(stream, &gate, &*h),
        None => sl.refuse(stream),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_fully_and_targets_decode() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"x"));
        let (p, q) = parse_target("/v1/instances/a%2Db/events?follow=1&x").unwrap();
        assert_eq!(p, vec!["v1", "instances", "a-b", "events"]);
        let (p, _) = parse_target("/v1/instances/a%2Fb").unwrap();
        assert_eq!(p, vec!["v1", "instances", "a/b"]);
        assert_eq!(
            q,
            vec![("follow".into(), "1".into()), ("x".into(), "".into())]
        );
        assert!(parse_target("/%zz").is_none());
    }

    #[test]
    fn bearer_is_case_insensitive_and_checked_as_it_arrives() {
        let t = b"0123456789abcdef";
        assert_eq!(
            bearer_matches(b"Authorization: Bearer 0123456789abcdef\r\n", t),
            Some(true)
        );
        assert_eq!(
            bearer_matches(b"authorization: bearer 0123456789abcdef\r\n", t),
            Some(true)
        );
        assert_eq!(
            bearer_matches(b"AUTHORIZATION: BEARER 0123456789abcdef\r\n", t),
            Some(true)
        );
        assert_eq!(
            bearer_matches(b"Authorization: Basic eA==\r\n", t),
            Some(false)
        );
        assert_eq!(bearer_matches(b"Host: x\r\n", t), None);
        // A wrong token ends the read at its header: what follows is never read.
        let req = "GET / HTTP/1.1\r\nAuthorization: Bearer wrong\r\nX: never read";
        let mut r = req.as_bytes();
        match read_request(&mut r, Caller::Remote, Some(t)) {
            Err(Response::Full { status, .. }) => assert_eq!(status, 401),
            _ => panic!("a wrong token is refused"),
        }
        assert_eq!(r, b"X: never read", "refused at its header");
        // No token at all: refused at the end of the head, before the body.
        let req = "PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
        assert!(matches!(
            read_request(&mut req.as_bytes(), Caller::Remote, Some(t)),
            Err(Response::Full { status: 401, .. })
        ));
    }

    #[test]
    fn requests_are_bounded() {
        let rd = |s: &str| read_request(&mut s.as_bytes(), Caller::Scraper, None);
        let big = format!(
            "PUT /x HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        match rd(&big) {
            Err(Response::Full { status, .. }) => assert_eq!(status, 413),
            _ => panic!("a body over the limit is refused"),
        }
        let chunked = "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            rd(chunked),
            Err(Response::Full { status: 411, .. })
        ));
        let ok = "PUT /v1/instances/a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        let r = rd(ok).ok().unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.body.as_slice()),
            ("PUT", "/v1/instances/a", &b"{}"[..])
        );
        assert_eq!(r.segments, vec!["v1", "instances", "a"]);
        let short = "PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}";
        assert!(matches!(rd(short), Err(Response::Full { status: 408, .. })));
    }
}
