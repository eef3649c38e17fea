//! The daemon's HTTP/1.1 server: a Unix socket (mode 0660, root:GROUP, peers checked with
//! SO_PEERCRED) and optionally TCP (a bearer token, compared in constant time). One request
//! per connection, each on its own thread, at most `MAX_CONNECTIONS` at once; heads and bodies
//! are size-limited and slow clients time out.

use std::io::{BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http::{read_head, Head, HeadError};
use crate::text::push_json_str;

pub const MAX_CONNECTIONS: usize = 64;
pub const MAX_BODY: u64 = 1 << 20;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write to a client may block (a stalled follower is disconnected).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Request {
    pub method: String,
    /// The path's segments, each percent-decoded (so `a%2Fb` stays one segment, "a/b").
    pub segments: Vec<String>,
    /// The path as sent.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub head: Head,
    pub body: Vec<u8>,
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

/// Who may talk to the daemon.
#[derive(Clone)]
pub enum Gate {
    /// Unix peers: root, the daemon's own user, or members of this group.
    Peer { gid: Option<libc::gid_t> },
    /// TCP clients: `Authorization: Bearer <token>`.
    Token(Arc<Vec<u8>>),
}

/// The (uid, gid) of the process at the other end of a Unix socket.
pub fn peer_credentials(fd: RawFd) -> Option<(libc::uid_t, libc::gid_t, libc::pid_t)> {
    let mut c = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c is a ucred of the size given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut c as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some((c.uid, c.gid, c.pid))
}

/// Is user `uid` (primary group `gid`) in group `group`?
fn in_group(uid: libc::uid_t, gid: libc::gid_t, group: libc::gid_t) -> bool {
    if gid == group {
        return true;
    }
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r with a buffer of its length; res tells whether pw was filled.
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    if r != 0 || res.is_null() {
        return false;
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: pw.pw_name is a C string inside buf; groups has room for n entries.
    let r = unsafe { libc::getgrouplist(pw.pw_name, gid, groups.as_mut_ptr(), &mut n) };
    r >= 0 && groups[..n.max(0) as usize].contains(&group)
}

/// Compares without an early exit, so the time taken says nothing about the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | ((a.len() ^ b.len()) >> 8) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
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

/// Reads one request; Err is the response to send instead.
pub fn read_request(r: &mut impl std::io::BufRead) -> Result<Request, Response> {
    let head = read_head(r).map_err(|e| match e {
        HeadError::TooLarge | HeadError::TooManyHeaders => Response::error(431, &e.to_string()),
        HeadError::Io(_) => Response::error(408, "the request did not arrive in time"),
        e => Response::error(400, &e.to_string()),
    })?;
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
    })
}

/// Serves one connection: checks the peer, reads the request, answers it.
pub fn serve_connection<S: Read + Write + AsRawFd>(
    stream: S,
    gate: &Gate,
    handler: &(dyn Fn(Request) -> Response + Sync),
) {
    let fd = stream.as_raw_fd();
    let mut r = BufReader::new(stream);
    let answer = match gate {
        Gate::Peer { gid } => match peer_credentials(fd) {
            // SAFETY: geteuid has no preconditions.
            Some((uid, pgid, _)) if uid == 0 || uid == unsafe { libc::geteuid() } || gid.is_some_and(|g| in_group(uid, pgid, g)) => None,
            Some((uid, _, pid)) => Some(Response::error(
                403,
                &format!("uid {uid} (pid {pid}) may not use this daemon: it takes root and members of its --group"),
            )),
            None => Some(Response::error(403, "cannot read the peer's credentials")),
        },
        Gate::Token(_) => None,
    };
    let response = match answer {
        Some(a) => a,
        None => match read_request(&mut r) {
            Err(resp) => resp,
            Ok(req) => {
                let authorized = match gate {
                    Gate::Token(t) => req
                        .head
                        .header("authorization")
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .is_some_and(|v| constant_time_eq(v.trim().as_bytes(), t)),
                    Gate::Peer { .. } => true,
                };
                if authorized {
                    handler(req)
                } else {
                    Response::error(
                        401,
                        "a bearer token is required (Authorization: Bearer TOKEN)",
                    )
                }
            }
        },
    };
    let mut w = r.into_inner();
    let _ = response.write(&mut w);
}

/// Counts connections; a connection over the limit is answered 503 at once.
pub struct Slots(AtomicUsize);

pub struct Slot<'a>(&'a Slots);

impl Slots {
    pub fn new() -> Slots {
        Slots(AtomicUsize::new(0))
    }

    pub fn take(&self) -> Option<Slot<'_>> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_CONNECTIONS {
            self.0.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(self))
    }
}

impl Default for Slots {
    fn default() -> Self {
        Slots::new()
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers a connection that found no free slot.
pub fn refuse_busy(mut w: impl Write) {
    let _ = Response::error(
        503,
        &format!("more than {MAX_CONNECTIONS} connections at once; retry"),
    )
    .write(&mut w);
}

pub fn set_timeouts(s: &UnixStream) {
    let _ = s.set_read_timeout(Some(READ_TIMEOUT));
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
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
    fn requests_are_bounded() {
        let big = format!(
            "PUT /x HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        match read_request(&mut big.as_bytes()) {
            Err(Response::Full { status, .. }) => assert_eq!(status, 413),
            _ => panic!("a body over the limit is refused"),
        }
        let chunked = "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            read_request(&mut chunked.as_bytes()),
            Err(Response::Full { status: 411, .. })
        ));
        let ok = "PUT /v1/instances/a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        let r = read_request(&mut ok.as_bytes()).ok().unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.body.as_slice()),
            ("PUT", "/v1/instances/a", &b"{}"[..])
        );
        assert_eq!(r.segments, vec!["v1", "instances", "a"]);
        let short = "PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}";
        assert!(matches!(
            read_request(&mut short.as_bytes()),
            Err(Response::Full { status: 408, .. })
        ));
    }
}
