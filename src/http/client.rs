//! A small HTTP/1.1 client: one connection per request (`Connection: close`), HTTPS through
//! rustls, connect and idle timeouts and a deadline for everything one client transfers (a
//! server that dribbles a byte now and then still ends), bodies read with a size limit that
//! stops reading (never buffers past it). Redirects and authentication are the caller's (they
//! depend on what is fetched), and so is the rule that a redirect never goes from HTTPS to
//! plain HTTP ([`Url::downgrades_to`]).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::{read_head, Chunked, Head};
use crate::error::{Error, ErrorKind, Result};

pub use super::url::{is_loopback, Scheme, Url};

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// How long a read or write may wait for the peer.
    pub io_timeout: Duration,
    /// How long everything one [`Client`] does may take in all, from its creation: every
    /// connection, request and body (a fetch's manifest, blobs and signature together).
    pub transfer_timeout: Option<Duration>,
    /// Extra CA certificates (PEM) trusted besides the system's.
    pub ca_file: Option<String>,
}

/// The default of [`ClientOptions::transfer_timeout`] (`--fetch-deadline`).
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            transfer_timeout: Some(DEFAULT_TRANSFER_TIMEOUT),
            ca_file: None,
        }
    }
}

pub struct Client {
    opts: ClientOptions,
    /// When everything this client transfers must be done.
    until: Option<Instant>,
    #[cfg(feature = "tls")]
    tls: std::sync::OnceLock<Result<std::sync::Arc<rustls::ClientConfig>>>,
}

enum Stream {
    Plain(TcpStream),
    Unix(std::os::unix::net::UnixStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connection whose every read and write ends at the idle timeout or at the client's
/// deadline, whichever comes first.
struct Timed {
    s: Stream,
    idle: Duration,
    until: Option<Instant>,
}

/// What a read or write past the client's deadline fails with.
#[derive(Debug)]
struct DeadlinePassed;

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the transfer's deadline passed")
    }
}

impl std::error::Error for DeadlinePassed {}

impl Timed {
    fn socket_timeouts(&self, d: Duration) -> io::Result<()> {
        match &self.s {
            Stream::Plain(t) => set_tcp(t, d),
            Stream::Unix(u) => {
                u.set_read_timeout(Some(d))?;
                u.set_write_timeout(Some(d))
            }
            #[cfg(feature = "tls")]
            Stream::Tls(t) => set_tcp(&t.sock, d),
        }
    }

    /// Arms the socket for one operation; Err once the deadline has passed.
    fn arm(&self) -> io::Result<()> {
        let d = match self.until {
            Some(u) => {
                let left = u.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, DeadlinePassed));
                }
                self.idle.min(left)
            }
            None => self.idle,
        };
        self.socket_timeouts(d)
    }

    /// A timeout that came from the deadline says so.
    fn explain(&self, e: io::Error) -> io::Error {
        let timed_out = matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        );
        if timed_out && self.until.is_some_and(|u| Instant::now() >= u) {
            return io::Error::new(io::ErrorKind::TimedOut, DeadlinePassed);
        }
        e
    }
}

fn set_tcp(t: &TcpStream, d: Duration) -> io::Result<()> {
    t.set_read_timeout(Some(d))?;
    t.set_write_timeout(Some(d))
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        self.s.read(buf).map_err(|e| self.explain(e))
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.s.write(buf).map_err(|e| self.explain(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.arm()?;
        self.s.flush().map_err(|e| self.explain(e))
    }
}

/// A response whose body has not been read yet.
pub struct Response {
    pub url: Url,
    pub head: Head,
    body: Box<dyn Read>,
}

/// A network error about `url`, which its message names first.
fn net(url: &Url, m: impl std::fmt::Display) -> Error {
    Error::on(&url.to_string(), ErrorKind::Network, m)
}

/// Says what a read error means for the user.
fn read_error(url: &Url, e: &io::Error, timeout: Duration) -> Error {
    if e.get_ref().is_some_and(|x| x.is::<DeadlinePassed>()) {
        return net(url, "the transfer did not end within its deadline (--fetch-deadline); the server is too slow or keeps sending");
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => net(
            url,
            format!(
                "the server sent nothing for {} s; try again later (or raise --fetch-timeout)",
                timeout.as_secs_f64()
            ),
        ),
        io::ErrorKind::UnexpectedEof => net(
            url,
            "the connection closed before the whole body arrived (truncated)",
        ),
        _ => net(url, format!("{e}")),
    }
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status().unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The same response, with `f` told how many bytes of its body were read so far (for a
    /// progress meter).
    pub fn on_read(mut self, f: impl FnMut(u64) + 'static) -> Response {
        self.body = Box::new(Counting {
            inner: self.body,
            done: 0,
            f: Box::new(f),
        });
        self
    }

    /// The body as a stream (for answers that do not end: an event stream).
    pub fn into_reader(self) -> Box<dyn Read> {
        self.body
    }

    /// Reads the whole body, refusing one larger than `limit` without buffering it: a
    /// Content-Length above the limit is refused before reading, and reading stops at the
    /// limit. A body shorter than its Content-Length is an error (truncated).
    pub fn body(mut self, limit: u64, what: &str, timeout: Duration) -> Result<Vec<u8>> {
        let len = self.head.content_length().map_err(|e| net(&self.url, e))?;
        let too_big = || {
            net(
                &self.url,
                format!("the {what} is larger than the {limit}-byte limit; refusing it"),
            )
        };
        if len.is_some_and(|l| l > limit) {
            return Err(too_big());
        }
        let mut out = Vec::with_capacity(len.unwrap_or(0).min(limit) as usize);
        // With a length, exactly that much is read (a TLS peer may then close without
        // close_notify); without one, the body ends where the connection does.
        let want = len.map_or(limit + 1, |l| l.min(limit + 1));
        let r = (&mut self.body).take(want).read_to_end(&mut out);
        match r {
            Ok(_) => {}
            Err(e)
                if len.is_none()
                    && !self.head.is_chunked()
                    && e.kind() == io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(read_error(&self.url, &e, timeout)),
        }
        let n = out.len();
        if n as u64 > limit {
            return Err(too_big());
        }
        if len.is_some_and(|l| l != n as u64) {
            return Err(net(
                &self.url,
                format!(
                    "the {what} is {n} bytes but the server announced {}: truncated",
                    len.unwrap_or(0)
                ),
            ));
        }
        Ok(out)
    }
}

/// A body reader that counts what passes.
struct Counting {
    inner: Box<dyn Read>,
    done: u64,
    f: Box<dyn FnMut(u64)>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.f)(self.done);
        Ok(n)
    }
}

impl Client {
    pub fn new(opts: ClientOptions) -> Client {
        Client {
            until: opts.transfer_timeout.map(|t| Instant::now() + t),
            opts,
            #[cfg(feature = "tls")]
            tls: std::sync::OnceLock::new(),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    fn connect(&self, url: &Url) -> Result<Stream> {
        let addrs: Vec<_> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| {
                Error::on(
                    &url.to_string(),
                    ErrorKind::Unreachable,
                    format!("cannot resolve {}: {e}", url.host),
                )
            })?
            .collect();
        let mut last = None;
        let mut tcp = None;
        let left = self
            .until
            .map_or(self.opts.connect_timeout, |u| {
                u.saturating_duration_since(Instant::now())
            })
            .min(self.opts.connect_timeout)
            .max(Duration::from_millis(1));
        for a in addrs {
            match TcpStream::connect_timeout(&a, left) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            let e = last.map_or_else(|| "no address".to_string(), |e| e.to_string());
            Error::on(
                &url.to_string(),
                ErrorKind::Unreachable,
                format!("cannot connect to {}: {e}", url.authority()),
            )
        })?;
        tcp.set_read_timeout(Some(self.opts.io_timeout)).ok();
        tcp.set_write_timeout(Some(self.opts.io_timeout)).ok();
        let _ = tcp.set_nodelay(true);
        match url.scheme {
            Scheme::Http => Ok(Stream::Plain(tcp)),
            #[cfg(feature = "tls")]
            Scheme::Https => {
                let config = self
                    .tls
                    .get_or_init(|| super::tls::client_config(self.opts.ca_file.as_deref()))
                    .clone()?;
                let conn =
                    super::tls::connect(config, &url.host).map_err(|e| net(url, format!("{e}")))?;
                Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
            }
            #[cfg(not(feature = "tls"))]
            Scheme::Https => Err(net(
                url,
                format!("this edge-ecli was built without TLS (cargo feature \"tls\")"),
            )),
        }
    }

    /// Sends one request and reads the response head.
    pub fn send(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Response> {
        let s = self.connect(url)?;
        self.exchange(s, method, url, headers, body, None)
    }

    /// [`send`](Client::send), telling `progress` how many bytes of the body were sent.
    pub fn send_with_progress(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Response> {
        let s = self.connect(url)?;
        self.exchange(s, method, url, headers, body, Some(progress))
    }

    /// Sends one request over a Unix socket (the daemon's API); `target` is the path.
    pub fn send_unix(
        &self,
        socket: &std::path::Path,
        method: &str,
        target: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Response> {
        let s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
            let kind = match e.kind() {
                io::ErrorKind::PermissionDenied => ErrorKind::Denied,
                _ => ErrorKind::Unreachable,
            };
            let hint = match e.kind() {
                io::ErrorKind::PermissionDenied => {
                    " (the socket is for root and the daemon's --group)"
                }
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    " (is edge-ecli daemon running? --socket PATH names another)"
                }
                _ => "",
            };
            Error::new(
                kind,
                format!("{}: cannot connect: {e}{hint}", socket.display()),
            )
        })?;
        s.set_read_timeout(Some(self.opts.io_timeout)).ok();
        s.set_write_timeout(Some(self.opts.io_timeout)).ok();
        let url = Url {
            scheme: Scheme::Http,
            host: "localhost".into(),
            port: 80,
            target: target.to_string(),
        };
        self.exchange(Stream::Unix(s), method, &url, headers, body, None)
    }

    fn exchange(
        &self,
        s: Stream,
        method: &str,
        url: &Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        mut progress: Option<&mut dyn FnMut(u64)>,
    ) -> Result<Response> {
        let mut req = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: edge-ecli/{}\r\nConnection: close\r\n",
            url.target,
            url.authority(),
            env!("CARGO_PKG_VERSION")
        );
        for (n, v) in headers {
            if v.bytes().any(|c| c == b'\r' || c == b'\n') {
                return Err(Error::msg(format!("header {n} has a line break")));
            }
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        } else if matches!(method, "PUT" | "POST") {
            req.push_str("Content-Length: 0\r\n");
        }
        req.push_str("\r\n");
        let mut s = Timed {
            s,
            idle: self.opts.io_timeout,
            until: self.until,
        };
        let io = |e: io::Error| read_error(url, &e, self.opts.io_timeout);
        s.write_all(req.as_bytes()).map_err(io)?;
        if let Some(b) = body {
            let mut sent = 0u64;
            for chunk in b.chunks(256 << 10) {
                s.write_all(chunk).map_err(io)?;
                sent += chunk.len() as u64;
                if let Some(p) = progress.as_mut() {
                    p(sent);
                }
            }
        }
        s.flush().map_err(io)?;
        let mut r = BufReader::new(s);
        let head = read_head(&mut r).map_err(|e| match e {
            super::HeadError::Io(k) => {
                let passed = self.until.is_some_and(|u| Instant::now() >= u);
                let e = if passed {
                    io::Error::new(io::ErrorKind::TimedOut, DeadlinePassed)
                } else {
                    io::Error::from(k)
                };
                read_error(url, &e, self.opts.io_timeout)
            }
            e => net(url, format!("{e}")),
        })?;
        if !head.line[0].starts_with("HTTP/1.") || head.status().is_none() {
            return Err(net(url, "the server did not answer HTTP/1.x"));
        }
        let body: Box<dyn Read> = if method == "HEAD" || matches!(head.status(), Some(204 | 304)) {
            Box::new(io::empty())
        } else if head.is_chunked() {
            Box::new(Chunked::new(r))
        } else {
            Box::new(r)
        };
        Ok(Response {
            url: url.clone(),
            head,
            body,
        })
    }
}

/// A BufRead over any Read (for callers that hold a response body).
pub fn buffered(r: impl Read) -> impl BufRead {
    BufReader::new(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_join() {
        let u = Url::parse("http://127.0.0.1:5000/v2/a/b?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 5000, "/v2/a/b?x=1")
        );
        let h = Url::parse("https://example.org").unwrap();
        assert_eq!((h.port, h.target.as_str()), (443, "/"));
        assert_eq!(h.authority(), "example.org");
        let v6 = Url::parse("http://[::1]:8080/x").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.authority(), "[::1]:8080");
        assert_eq!(
            u.join("/v2/c").unwrap().to_string(),
            "http://127.0.0.1:5000/v2/c"
        );
        assert_eq!(u.join("d").unwrap().target, "/v2/a/d");
        assert_eq!(
            u.join("https://other:1/z").unwrap().to_string(),
            "https://other:1/z"
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://u:p@h/",
            "http://h:99999/",
            "http://h/a b",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("10.0.0.1") && !is_loopback("example.org"));
    }

    #[test]
    fn never_from_tls_to_plain_http_and_credentials_only_over_tls_or_loopback() {
        let https = Url::parse("https://registry.example.org/v2/").unwrap();
        let down = https.join("http://registry.example.org/v2/x").unwrap();
        assert!(https.downgrades_to(&down));
        assert!(https.downgrades_to(&Url::parse("http://127.0.0.1/x").unwrap()));
        assert!(!https.downgrades_to(&https.join("/v2/y").unwrap()));
        assert!(!down.downgrades_to(&https));
        assert!(https.may_carry_credentials());
        assert!(!down.may_carry_credentials());
        assert!(Url::parse("http://127.0.0.1:5000/token")
            .unwrap()
            .may_carry_credentials());
        assert!(Url::parse("http://[::1]:5000/token")
            .unwrap()
            .may_carry_credentials());
        assert!(!Url::parse("http://10.1.2.3/token")
            .unwrap()
            .may_carry_credentials());
    }
}
