//! `edge-ecli ctl`: a client of the daemon's API over its Unix socket.

use std::io::{Read, Write};
use std::time::Duration;

use argh::FromArgs;

use crate::codec::json::{self, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::http::client::{Client, ClientOptions, Response};
use crate::text::push_json_str;

#[derive(FromArgs)]
/// Drive a running edge-ecli daemon.
#[argh(subcommand, name = "ctl")]
pub struct CtlCmd {
    /// the daemon's socket (default /run/edge-ecli.sock)
    #[argh(option, arg_name = "PATH")]
    socket: Option<String>,
    #[argh(subcommand)]
    op: Op,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Op {
    List(List),
    Status(StatusName),
    Start(Start),
    Stop(StopName),
    Reload(Reload),
    Pause(PauseName),
    Resume(ResumeName),
    Logs(Logs),
}

#[derive(FromArgs)]
/// List the instances: name, state, events, lost, digest, source.
#[argh(subcommand, name = "list")]
struct List {}

macro_rules! named {
    ($t:ident, $name:literal, $doc:literal) => {
        #[derive(FromArgs)]
        #[doc = $doc]
        #[argh(subcommand, name = $name)]
        struct $t {
            /// the instance
            #[argh(positional, arg_name = "NAME")]
            name: String,
        }
    };
}

named!(
    StatusName,
    "status",
    "Show one instance: state, error, counters, notes."
);
named!(StopName, "stop", "Stop an instance and forget it.");
named!(
    PauseName,
    "pause",
    "Pause an instance (its events are read and counted, not delivered)."
);
named!(ResumeName, "resume", "Resume a paused instance.");

#[derive(FromArgs)]
/// Start a new instance NAME running PROG with the package's ARGS.
#[argh(subcommand, name = "start")]
struct Start {
    /// the instance's name
    #[argh(positional, arg_name = "NAME")]
    name: String,
    /// PROG (anything `run` takes), then the package's own arguments
    #[argh(positional, greedy, arg_name = "PROG [ARGS")]
    rest: Vec<String>,
}

#[derive(FromArgs)]
/// Reload NAME with PROG and ARGS: the new version is attached before the old one stops; if it
/// fails, the old one keeps running.
#[argh(subcommand, name = "reload")]
struct Reload {
    /// the instance's name
    #[argh(positional, arg_name = "NAME")]
    name: String,
    /// PROG (anything `run` takes), then the package's own arguments
    #[argh(positional, greedy, arg_name = "PROG [ARGS")]
    rest: Vec<String>,
}

#[derive(FromArgs)]
/// Print an instance's events (NDJSON); -f keeps following.
#[argh(subcommand, name = "logs")]
struct Logs {
    /// keep printing new events until Ctrl-C
    #[argh(switch, short = 'f')]
    follow: bool,
    /// the instance
    #[argh(positional, arg_name = "NAME")]
    name: String,
}

fn body_of(prog: &str, args: &[String]) -> String {
    let mut o = String::from("{\"source\":");
    push_json_str(&mut o, prog);
    o.push_str(",\"args\":[");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        push_json_str(&mut o, a);
    }
    o.push_str("]}");
    o
}

/// The JSON answer of a request, or the daemon's error as ours.
fn answer(r: Response) -> Result<String> {
    let status = r.status();
    let text =
        String::from_utf8_lossy(&r.body(16 << 20, "answer", Duration::from_secs(60))?).into_owned();
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
        _ => ErrorKind::Invalid,
    };
    Err(Error::new(
        kind,
        format!("the daemon answered {status}: {msg}"),
    ))
}

fn field<'a>(v: &'a Value<'a>, k: &str) -> String {
    match v.get(k) {
        Some(Value::Str(s)) => s.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "-".into(),
    }
}

fn print_status(v: &Value) {
    for k in [
        "name",
        "state",
        "error",
        "source",
        "digest",
        "kind",
        "origin",
        "started_at",
        "events",
        "lost",
        "paused_drops",
        "client_drops",
        "cpu_seconds",
    ] {
        if v.get(k).is_some() {
            println!("{k:<13} {}", field(v, k));
        }
    }
    if let Some(a) = v.get("args").and_then(Value::as_array) {
        let args: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
        println!("{:<13} {}", "args", args.join(" "));
    }
    for n in v.get("notes").and_then(Value::as_array).unwrap_or(&[]) {
        if let Some(n) = n.as_str() {
            println!("{:<13} {n}", "note");
        }
    }
}

impl CtlCmd {
    pub fn main(self) -> Result<i32> {
        let socket = std::path::PathBuf::from(
            self.socket
                .clone()
                .unwrap_or_else(|| crate::daemon::DEFAULT_SOCKET.into()),
        );
        let follow = matches!(&self.op, Op::Logs(l) if l.follow);
        let client = Client::new(ClientOptions {
            // Starting a package takes a moment; following events takes as long as it takes.
            io_timeout: if follow {
                Duration::from_secs(365 * 86400)
            } else {
                Duration::from_secs(120)
            },
            ..ClientOptions::default()
        });
        let req = |method: &str, target: String, body: Option<String>| {
            let h: Vec<(&str, String)> = body
                .iter()
                .map(|_| ("Content-Type", "application/json".to_string()))
                .collect();
            client.send_unix(
                &socket,
                method,
                &target,
                &h,
                body.as_deref().map(str::as_bytes),
            )
        };
        let path = |name: &str, tail: &str| {
            format!("/v1/instances/{}{tail}", crate::http::percent_encode(name))
        };
        let need_prog = |rest: &[String]| -> Result<(String, Vec<String>)> {
            let (p, a) = rest.split_first().ok_or_else(|| {
                Error::new(
                    ErrorKind::Usage,
                    "PROG is missing: ctl start NAME PROG [ARGS...]",
                )
            })?;
            Ok((p.clone(), a.to_vec()))
        };
        match self.op {
            Op::List(_) => {
                let text = answer(req("GET", "/v1/instances".into(), None)?)?;
                let v = json::parse(&text)?;
                println!(
                    "{:<20} {:<9} {:>10} {:>8} {:<19} SOURCE",
                    "NAME", "STATE", "EVENTS", "LOST", "DIGEST"
                );
                for i in v.get("instances").and_then(Value::as_array).unwrap_or(&[]) {
                    let d = field(i, "digest");
                    println!(
                        "{:<20} {:<9} {:>10} {:>8} {:<19} {}",
                        field(i, "name"),
                        field(i, "state"),
                        field(i, "events"),
                        field(i, "lost"),
                        d.get(..19).unwrap_or(&d),
                        field(i, "source")
                    );
                }
            }
            Op::Status(n) => print_status(&json::parse(&answer(req(
                "GET",
                path(&n.name, ""),
                None,
            )?)?)?),
            Op::Start(s) => {
                let (prog, args) = need_prog(&s.rest)?;
                let mut body = body_of(&prog, &args);
                body.insert_str(1, &{
                    let mut n = String::from("\"name\":");
                    push_json_str(&mut n, &s.name);
                    n.push(',');
                    n
                });
                print_status(&json::parse(&answer(req(
                    "POST",
                    "/v1/instances".into(),
                    Some(body),
                )?)?)?);
            }
            Op::Reload(r) => {
                let (prog, args) = need_prog(&r.rest)?;
                answer(req("GET", path(&r.name, ""), None)?)?;
                let text = answer(req("PUT", path(&r.name, ""), Some(body_of(&prog, &args)))?)?;
                let v = json::parse(&text)?;
                println!("{}: {}", r.name, field(&v, "applied"));
            }
            Op::Stop(n) => {
                answer(req("DELETE", path(&n.name, ""), None)?)?;
                println!("{}: stopped", n.name);
            }
            Op::Pause(n) => {
                answer(req("POST", path(&n.name, "/pause"), None)?)?;
                println!("{}: paused", n.name);
            }
            Op::Resume(n) => {
                answer(req("POST", path(&n.name, "/resume"), None)?)?;
                println!("{}: running", n.name);
            }
            Op::Logs(l) => {
                let tail = if l.follow {
                    "/events?follow=1"
                } else {
                    "/events"
                };
                let r = req("GET", path(&l.name, tail), None)?;
                if r.status() != 200 {
                    answer(r)?;
                    return Ok(1);
                }
                let mut body = r.into_reader();
                let mut buf = vec![0u8; 1 << 16];
                let mut out = std::io::stdout().lock();
                loop {
                    match body.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            return Err(Error::new(
                                ErrorKind::Network,
                                format!("reading events: {e}"),
                            ))
                        }
                    }
                }
            }
        }
        Ok(0)
    }
}
