//! A client of the daemon's API over its Unix socket: what `edge-ecli ctl` (a thin face over
//! this) and any Rust caller use. Answers come back as JSON text; errors as ours, with the
//! kind the daemon's status says.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::spec::request_body;
use crate::codec::json::{self, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::http::client::{Client as Http, ClientOptions, Response};
use crate::http::percent_encode;

/// Answers larger than this are refused (a list of 256 instances is far smaller).
const MAX_ANSWER: u64 = 16 << 20;

pub struct Client {
    socket: PathBuf,
    http: Http,
}

fn path(name: &str, tail: &str) -> String {
    format!("/v1/instances/{}{tail}", percent_encode(name))
}

/// The JSON answer of a request, or the daemon's error as ours.
fn answer(r: Response) -> Result<String> {
    let status = r.status();
    let text = String::from_utf8_lossy(&r.body(MAX_ANSWER, "answer", Duration::from_secs(60))?)
        .into_owned();
    if (200..300).contains(&status) {
        return Ok(text);
    }
    let msg = json::parse(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string());
    let kind = match status {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        401 | 403 => ErrorKind::Denied,
        // The daemon refused what it was sent (a name, a source, a package's flags): ctl's own
        // command line was fine, so this is not a usage error (exit 1, not 2).
        _ => ErrorKind::Invalid,
    };
    Err(Error::new(
        kind,
        format!("the daemon answered {status}: {msg}"),
    ))
}

impl Client {
    /// A client of the daemon at `socket`. Starting a package takes a moment (its fetch and
    /// its attach); following events takes as long as it takes.
    pub fn new(socket: &Path, follow: bool) -> Client {
        Client {
            socket: socket.to_path_buf(),
            http: Http::new(ClientOptions {
                io_timeout: if follow {
                    Duration::from_secs(365 * 86400)
                } else {
                    Duration::from_secs(300)
                },
                transfer_timeout: None,
                ..ClientOptions::default()
            }),
        }
    }

    fn send(&self, method: &str, target: &str, body: Option<String>) -> Result<Response> {
        let h: Vec<(&str, String)> = body
            .iter()
            .map(|_| ("Content-Type", "application/json".to_string()))
            .collect();
        self.http.send_unix(
            &self.socket,
            method,
            target,
            &h,
            body.as_deref().map(str::as_bytes),
        )
    }

    /// `{"instances": [STATUS...]}`.
    pub fn list(&self) -> Result<String> {
        answer(self.send("GET", "/v1/instances", None)?)
    }

    /// One instance's STATUS.
    pub fn status(&self, name: &str) -> Result<String> {
        answer(self.send("GET", &path(name, ""), None)?)
    }

    /// Starts a new instance; a relative PROG is relative to `cwd`.
    pub fn start(
        &self,
        name: &str,
        prog: &str,
        args: &[String],
        cwd: Option<&Path>,
    ) -> Result<String> {
        let cwd = cwd.map(|c| c.to_string_lossy().into_owned());
        let body = request_body(Some(name), prog, args, cwd.as_deref());
        answer(self.send("POST", "/v1/instances", Some(body))?)
    }

    /// Reloads an existing instance (an unknown name is an error, not a start):
    /// `{"applied": "reloaded"|"unchanged", "instance": STATUS}`.
    pub fn reload(
        &self,
        name: &str,
        prog: &str,
        args: &[String],
        cwd: Option<&Path>,
    ) -> Result<String> {
        self.status(name)?;
        let cwd = cwd.map(|c| c.to_string_lossy().into_owned());
        let body = request_body(None, prog, args, cwd.as_deref());
        answer(self.send("PUT", &path(name, ""), Some(body))?)
    }

    /// Stops and forgets an instance; its last STATUS.
    pub fn stop(&self, name: &str) -> Result<String> {
        answer(self.send("DELETE", &path(name, ""), None)?)
    }

    pub fn pause(&self, name: &str, paused: bool) -> Result<String> {
        let tail = if paused { "/pause" } else { "/resume" };
        answer(self.send("POST", &path(name, tail), None)?)
    }

    /// The instance's events (NDJSON) as a stream: the last `tail` lines kept (all without
    /// it), then, with `follow`, new ones; it ends only when the daemon stops.
    pub fn events(&self, name: &str, follow: bool, tail: Option<u64>) -> Result<Box<dyn Read>> {
        let mut query = Vec::new();
        if follow {
            query.push("follow=1".to_string());
        }
        if let Some(n) = tail {
            query.push(format!("tail={n}"));
        }
        let target = if query.is_empty() {
            "/events".to_string()
        } else {
            format!("/events?{}", query.join("&"))
        };
        let r = self.send("GET", &path(name, &target), None)?;
        if r.status() != 200 {
            return Err(answer(r)
                .err()
                .unwrap_or_else(|| Error::msg("the daemon did not send events")));
        }
        Ok(r.into_reader())
    }
}
