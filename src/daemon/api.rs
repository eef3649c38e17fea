//! The daemon's HTTP API: routes, typed request bodies (serde-json-core) and JSON answers.
//!
//! GET /healthz · GET /metrics · GET /v1/instances · POST /v1/instances {name, source, args?,
//! digest?} · GET|PUT|DELETE /v1/instances/{name} (PUT {source, args?, digest?}: create, or
//! reload when the digest or arguments changed) · POST /v1/instances/{name}/pause|resume ·
//! GET /v1/instances/{name}/events[?follow=1][&tail=N] (NDJSON).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;

use super::server::{Request, Response};
use super::table::{valid_name, Applied, Origin, Spec, Status, Table};
use crate::error::{Error, ErrorKind};
use crate::runtime::State;
use crate::text::push_json_str;

/// Lines a follower gets per chunk, and how long it waits for new ones between checks.
const FOLLOW_BATCH: usize = 256;
const FOLLOW_WAIT: Duration = Duration::from_millis(500);

#[derive(Deserialize)]
struct PutBody {
    source: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Deserialize)]
struct PostBody {
    name: String,
    source: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Response> {
    if body.len() > 1 << 20 {
        return Err(Response::error(413, "body too large"));
    }
    let mut buf = vec![0u8; body.len()];
    serde_json_core::from_slice_escaped::<T>(body, &mut buf)
        .map(|(v, _)| v)
        .map_err(|e| {
            Response::error(
                400,
                &format!("bad JSON body ({e}); expected {{\"source\": \"PROG\", \"args\": [\"--flag\", \"value\"]}}"),
            )
        })
}

fn spec_checked(
    source: String,
    args: Vec<String>,
    digest: Option<String>,
) -> Result<Spec, Response> {
    if source.is_empty() || source.len() > 4096 {
        return Err(Response::error(
            400,
            "\"source\" must name a package (1 to 4096 bytes)",
        ));
    }
    if args.len() > 256 || args.iter().any(|a| a.len() > 4096) {
        return Err(Response::error(
            400,
            "\"args\": at most 256 arguments of 4096 bytes",
        ));
    }
    if let Some(d) = &digest {
        if !crate::codec::valid_digest(d) {
            return Err(Response::error(
                400,
                "\"digest\" must be sha256:<64 hex digits>",
            ));
        }
    }
    Ok(Spec {
        source,
        args,
        digest,
    })
}

/// Decodes a request body both ways the API reads one, as a POST and as a PUT, with their
/// checks; what the fuzz target drives (routing itself would start packages).
#[doc(hidden)]
pub fn check_bodies(body: &[u8]) -> (Result<String, u16>, Result<String, u16>) {
    let post = parse::<PostBody>(body).and_then(|b| {
        if !valid_name(&b.name) {
            return Err(Response::error(400, "bad name"));
        }
        spec_checked(b.source, b.args, b.digest).map(|s| s.source)
    });
    let put = parse::<PutBody>(body)
        .and_then(|b| spec_checked(b.source, b.args, b.digest).map(|s| s.source));
    let status = |r: Result<String, Response>| r.map_err(|e| e.status());
    (status(post), status(put))
}

/// An error of an operation as an HTTP answer.
fn failed(e: &Error) -> Response {
    let status = match e.kind() {
        ErrorKind::NotFound if e.to_string().starts_with("no instance named") => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::Usage => 400,
        _ => 422,
    };
    Response::error(status, &e.to_string())
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
        push_json_str(o, e);
    }
    o.push_str(",\"source\":");
    push_json_str(o, &s.spec.source);
    o.push_str(",\"args\":[");
    for (i, a) in s.spec.args.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        push_json_str(o, a);
    }
    o.push_str("],\"digest\":");
    push_json_str(o, &s.digest);
    o.push_str(",\"kind\":");
    push_json_str(o, s.kind);
    o.push_str(",\"origin\":");
    push_json_str(
        o,
        if s.origin == Origin::Api {
            "api"
        } else {
            "config"
        },
    );
    let st = &s.stats;
    let _ = write!(
        o,
        ",\"started_at\":{},\"events\":{},\"lost\":{},\"paused_drops\":{},\"client_drops\":{},\"cpu_seconds\":{:.3},\"notes\":[",
        unix_secs(s.started),
        st.events,
        st.lost,
        st.paused_drops,
        s.client_drops,
        st.cpu_ns as f64 / 1e9
    );
    for (i, n) in s.notes.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        push_json_str(o, n);
    }
    o.push_str("]}");
}

fn one(status: u16, s: &Status) -> Response {
    let mut o = String::new();
    status_json(&mut o, s);
    o.push('\n');
    Response::json(status, o)
}

/// The event lines of `name`: the last `tail` kept (all without it), then, when following,
/// new ones as they come.
fn events(table: &Arc<Table>, name: &str, follow: bool, tail: Option<u64>) -> Response {
    let log = match table.log(name) {
        Ok(l) => l,
        Err(e) => return failed(&e),
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

/// Routes one request.
pub fn handle(
    table: &Arc<Table>,
    metrics: &dyn Fn() -> String,
    on_change: &dyn Fn(),
    req: Request,
) -> Response {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    match (m, segs.as_slice()) {
        ("GET", ["healthz"]) => Response::json(200, "{\"ok\":true}\n".into()),
        ("GET", ["metrics"]) => Response::Full {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: metrics().into_bytes(),
        },
        ("GET", ["v1", "instances"]) => {
            let mut o = String::from("{\"instances\":[");
            for (i, s) in table.list().iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                status_json(&mut o, s);
            }
            o.push_str("]}\n");
            Response::json(200, o)
        }
        ("POST", ["v1", "instances"]) => {
            let b: PostBody = match parse(&req.body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let spec = match spec_checked(b.source, b.args, b.digest) {
                Ok(s) => s,
                Err(r) => return r,
            };
            match table.create(&b.name, spec, Origin::Api) {
                Ok(s) => {
                    on_change();
                    one(201, &s)
                }
                Err(e) => failed(&e),
            }
        }
        (_, ["v1", "instances", name, ..]) if !valid_name(name) => Response::error(
            400,
            &format!(
                "instance name {name:?}: use 1 to 63 of a-z 0-9 _ . - (no slashes or dots alone)"
            ),
        ),
        ("GET", ["v1", "instances", name]) => match table.status(name) {
            Ok(s) => one(200, &s),
            Err(e) => failed(&e),
        },
        ("PUT", ["v1", "instances", name]) => {
            let b: PutBody = match parse(&req.body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let spec = match spec_checked(b.source, b.args, b.digest) {
                Ok(s) => s,
                Err(r) => return r,
            };
            match table.apply(name, spec, Origin::Api) {
                Ok(applied) => {
                    on_change();
                    let code = if applied == Applied::Created {
                        201
                    } else {
                        200
                    };
                    let mut o = String::from("{\"applied\":");
                    push_json_str(
                        &mut o,
                        match applied {
                            Applied::Created => "created",
                            Applied::Reloaded => "reloaded",
                            Applied::Unchanged => "unchanged",
                        },
                    );
                    o.push_str(",\"instance\":");
                    if let Ok(s) = table.status(name) {
                        status_json(&mut o, &s);
                    } else {
                        o.push_str("null");
                    }
                    o.push_str("}\n");
                    Response::json(code, o)
                }
                Err(e) => failed(&e),
            }
        }
        ("DELETE", ["v1", "instances", name]) => match table.remove(name) {
            Ok(s) => {
                on_change();
                one(200, &s)
            }
            Err(e) => failed(&e),
        },
        ("POST", ["v1", "instances", name, op @ ("pause" | "resume")]) => {
            match table.pause(name, *op == "pause") {
                Ok(s) => one(200, &s),
                Err(e) => failed(&e),
            }
        }
        ("GET", ["v1", "instances", name, "events"]) => {
            let follow = matches!(req.query("follow"), Some("1" | "true" | ""));
            let tail = match req.query("tail").map(str::parse::<u64>) {
                None => None,
                Some(Ok(n)) => Some(n),
                Some(Err(_)) => {
                    return Response::json(
                        400,
                        "{\"error\":\"tail: expected a number of lines\"}\n".into(),
                    )
                }
            };
            events(table, name, follow, tail)
        }
        (_, ["healthz"] | ["metrics"] | ["v1", "instances", ..]) => {
            Response::error(405, &format!("{m} is not allowed on {}", req.path))
        }
        _ => Response::error(404, &format!("no such endpoint: {}", req.path)),
    }
}
