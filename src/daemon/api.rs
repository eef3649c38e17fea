//! The daemon's HTTP API: one function per route, request bodies read as specs (`spec`),
//! answers in JSON; what went wrong is told by the failure's variant, never by its text.
//!
//! GET /healthz · GET /metrics · GET /v1/instances · POST /v1/instances {name, source, args?,
//! digest?, cwd?} · GET|PUT|DELETE /v1/instances/{name} (PUT {source, args?, digest?, cwd?}:
//! create, or reload when the digest or arguments changed) · POST
//! /v1/instances/{name}/pause|resume · GET /v1/instances/{name}/events[?follow=1][&tail=N]
//! (NDJSON).
//! The metrics listener serves the first two only.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::peer;
use super::server::{Caller, Request, Response};
use super::spec::{self, Owner, Spec, SpecBody};
use super::table::{valid_name, Applied, Failure, Origin, Status, Table};
use crate::runtime::State;
use crate::source::{self, Source};
use crate::text::push_json_str;

/// Lines a follower gets per chunk, and how long it waits for new ones between checks.
const FOLLOW_BATCH: usize = 256;
const FOLLOW_WAIT: Duration = Duration::from_millis(500);

/// What the routes work on.
pub struct Api {
    pub table: Arc<Table>,
    /// The metrics text, rendered on each scrape.
    pub metrics: Box<dyn Fn() -> String + Send + Sync>,
    /// Called after an API change (the state dir keeps what the API started).
    pub on_change: Box<dyn Fn() + Send + Sync>,
}

/// A failed operation as an HTTP answer: the status follows from what failed.
fn failed(f: &Failure) -> Response {
    let status = match f {
        Failure::NoInstance(_) => 404,
        Failure::Conflict(_) => 409,
        Failure::BadRequest(_) => 400,
        Failure::Package(_) => 422,
    };
    Response::error(status, &f.to_string())
}

/// The owner of what a caller asks for.
fn owner_of(caller: &Caller) -> Owner {
    match caller {
        Caller::Local(p) => p.owner(),
        Caller::Remote | Caller::Scraper => Owner::Remote,
    }
}

/// A source made absolute against the caller's directory (read as the caller: which names
/// exist there is theirs to know). Without a directory, a relative local path is refused: it
/// would mean the daemon's directory, and something else after a restart.
pub fn resolve(source: &str, cwd: Option<&str>, owner: &Owner) -> Result<String, Failure> {
    if let (Some(c), false) = (cwd, *owner == Owner::Remote) {
        let (s, c) = (source.to_string(), c.to_string());
        return peer::run_as(owner, move || source::absolute(&s, Path::new(&c)))
            .map_err(Failure::from);
    }
    let relative = match Source::parse_in(source, &|_| false).map_err(Failure::from)? {
        Source::File(p) => !p.starts_with('/'),
        Source::Layout { dir: p, .. } | Source::Archive { file: p, .. } => !p.starts_with('/'),
        _ => false,
    };
    if relative {
        return Err(Failure::BadRequest(format!(
            "\"source\" {source:?} is a relative path: name it absolutely, or send \"cwd\" (the directory it is relative to; ctl sends its own)"
        )));
    }
    Ok(source.to_string())
}

/// The spec a request body asks for, with its source resolved.
fn spec_of(b: SpecBody, caller: &Caller) -> Result<Spec, Response> {
    let owner = owner_of(caller);
    let source = resolve(&b.source, b.cwd.as_deref(), &owner).map_err(|f| failed(&f))?;
    Ok(Spec {
        source,
        args: b.args,
        digest: b.digest,
        owner,
    })
}

fn body_of(req: &Request) -> Result<SpecBody, Response> {
    SpecBody::parse(&req.body).map_err(|e| Response::error(400, &e))
}

/// Decodes a request body as the API reads it, with its checks: what the fuzz target drives
/// (routing itself would start packages). The source, or the status the API would answer.
#[doc(hidden)]
pub fn check_body(body: &[u8]) -> Result<String, u16> {
    let b = SpecBody::parse(body).map_err(|_| 400u16)?;
    if b.name.as_deref().is_some_and(|n| !valid_name(n)) {
        return Err(400);
    }
    resolve(&b.source, None, &Owner::Remote).map_err(|f| failed(&f).status())
}

fn unix_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn status_json(o: &mut String, s: &Status) {
    o.push_str("{\"name\":");
    push_json_str(o, &s.name);
    o.push_str(",\"state\":");
    push_json_str(o, s.state.name());
    if let State::Failed(e) = &s.state {
        o.push_str(",\"error\":");
        push_json_str(o, &e.to_string());
    }
    o.push_str(",\"source\":");
    push_json_str(o, &s.spec.source);
    o.push_str(",\"args\":");
    spec::write_args(o, &s.spec.args);
    o.push_str(",\"digest\":");
    push_json_str(o, &s.digest);
    o.push_str(",\"kind\":");
    push_json_str(o, s.kind);
    o.push_str(",\"origin\":");
    push_json_str(
        o,
        match s.origin {
            Origin::Api => "api",
            Origin::Config => "config",
        },
    );
    let st = &s.stats;
    let _ = write!(
        o,
        ",\"started_at\":{},\"events\":{},\"lost\":{},\"paused_drops\":{},\"client_drops\":{},\"cpu_seconds\":{:.3},\"notes\":",
        unix_secs(s.started),
        st.events,
        st.lost,
        st.paused_drops,
        s.client_drops,
        st.cpu_ns as f64 / 1e9
    );
    spec::write_args(o, &s.notes);
    o.push('}');
}

fn one(status: u16, s: &Status) -> Response {
    let mut o = String::new();
    status_json(&mut o, s);
    o.push('\n');
    Response::json(status, o)
}

impl Api {
    /// Routes one request.
    pub fn handle(&self, req: Request) -> Response {
        let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
        let m = req.method.as_str();
        if matches!(req.caller, Caller::Scraper)
            && !matches!((m, segs.as_slice()), ("GET", ["metrics" | "healthz"]))
        {
            return Response::error(
                404,
                &format!(
                    "{}: the metrics listener serves GET /metrics and GET /healthz only",
                    req.path
                ),
            );
        }
        match (m, segs.as_slice()) {
            ("GET", ["healthz"]) => Response::json(200, "{\"ok\":true}\n".into()),
            ("GET", ["metrics"]) => Response::Full {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: (self.metrics)().into_bytes(),
            },
            ("GET", ["v1", "instances"]) => self.list(),
            ("POST", ["v1", "instances"]) => self.create(&req),
            (_, ["v1", "instances", name, ..]) if !valid_name(name) => Response::error(
                400,
                &format!(
                    "instance name {name:?}: use 1 to 63 of a-z 0-9 _ . - (no slashes or dots alone)"
                ),
            ),
            ("GET", ["v1", "instances", name]) => self.get(name),
            ("PUT", ["v1", "instances", name]) => self.put(name, &req),
            ("DELETE", ["v1", "instances", name]) => self.delete(name),
            ("POST", ["v1", "instances", name, op @ ("pause" | "resume")]) => {
                self.pause(name, *op == "pause")
            }
            ("GET", ["v1", "instances", name, "events"]) => {
                let follow = matches!(req.query("follow"), Some("1" | "true" | ""));
                match req.query("tail").map(str::parse::<u64>) {
                    None => self.events(name, follow, None),
                    Some(Ok(n)) => self.events(name, follow, Some(n)),
                    Some(Err(_)) => Response::error(400, "tail: expected a number of lines"),
                }
            }
            (_, ["healthz"] | ["metrics"] | ["v1", "instances", ..]) => {
                Response::error(405, &format!("{m} is not allowed on {}", req.path))
            }
            _ => Response::error(404, &format!("no such endpoint: {}", req.path)),
        }
    }

    fn list(&self) -> Response {
        let mut o = String::from("{\"instances\":[");
        for (i, s) in self.table.list().iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            status_json(&mut o, s);
        }
        o.push_str("]}\n");
        Response::json(200, o)
    }

    fn create(&self, req: &Request) -> Response {
        let run = || -> Result<Response, Response> {
            let b = body_of(req)?;
            let name = b
                .name
                .clone()
                .ok_or_else(|| Response::error(400, "\"name\" is missing"))?;
            let spec = spec_of(b, &req.caller)?;
            let s = self
                .table
                .create(&name, spec, Origin::Api)
                .map_err(|f| failed(&f))?;
            (self.on_change)();
            Ok(one(201, &s))
        };
        run().unwrap_or_else(|r| r)
    }

    fn get(&self, name: &str) -> Response {
        match self.table.status(name) {
            Ok(s) => one(200, &s),
            Err(f) => failed(&f),
        }
    }

    fn put(&self, name: &str, req: &Request) -> Response {
        let run = || -> Result<Response, Response> {
            let b = body_of(req)?;
            if b.name.as_deref().is_some_and(|n| n != name) {
                return Err(Response::error(
                    400,
                    "\"name\" in the body is not the name in the path",
                ));
            }
            let spec = spec_of(b, &req.caller)?;
            let applied = self
                .table
                .apply(name, spec, Origin::Api)
                .map_err(|f| failed(&f))?;
            (self.on_change)();
            let (code, what) = match applied {
                Applied::Created => (201, "created"),
                Applied::Reloaded => (200, "reloaded"),
                Applied::Unchanged => (200, "unchanged"),
            };
            let mut o = format!("{{\"applied\":\"{what}\",\"instance\":");
            match self.table.status(name) {
                Ok(s) => status_json(&mut o, &s),
                Err(_) => o.push_str("null"),
            }
            o.push_str("}\n");
            Ok(Response::json(code, o))
        };
        run().unwrap_or_else(|r| r)
    }

    fn delete(&self, name: &str) -> Response {
        match self.table.remove(name) {
            Ok(s) => {
                (self.on_change)();
                one(200, &s)
            }
            Err(f) => failed(&f),
        }
    }

    fn pause(&self, name: &str, paused: bool) -> Response {
        match self.table.pause(name, paused) {
            Ok(s) => one(200, &s),
            Err(f) => failed(&f),
        }
    }

    /// The event lines of `name`: the last `tail` kept (all without it), then, when
    /// following, new ones as they come.
    fn events(&self, name: &str, follow: bool, tail: Option<u64>) -> Response {
        let log = match self.table.log(name) {
            Ok(l) => l,
            Err(f) => return failed(&f),
        };
        Response::Stream(Box::new(move |w| {
            let mut at = match tail {
                Some(n) => log.start().max(log.end().saturating_sub(n)),
                None => log.start(),
            };
            loop {
                let b = log.read(
                    at,
                    FOLLOW_BATCH,
                    if follow { FOLLOW_WAIT } else { Duration::ZERO },
                );
                if b.missed > 0 {
                    w.write_all(format!("{{\"missed\":{}}}\n", b.missed).as_bytes())?;
                }
                if !b.lines.is_empty() {
                    w.write_all(&b.lines.concat())?;
                }
                at = b.next;
                if b.closed || (!follow && b.lines.is_empty()) {
                    return Ok(());
                }
                if b.lines.is_empty() {
                    // Nothing new: a zero-length write finds a client that went away.
                    w.flush()?;
                }
            }
        }))
    }
}
