//! `edge-ecli ctl`: a client of the daemon's API over its Unix socket.

use std::io::{Read, Write};
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};

use crate::codec::json::{self, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::http::client::{Client, ClientOptions, Response};
use crate::text::push_json_str;

#[derive(FromArgs, ArgsInfo)]
/// Drive a running edge-ecli daemon.
#[argh(subcommand, name = "ctl")]
pub struct CtlCmd {
    /// the daemon's socket (default /run/edge-ecli.sock)
    #[argh(option, arg_name = "PATH")]
    socket: Option<String>,
    /// output: table (the default) or json (the daemon's JSON answer, one line)
    #[argh(option, short = 'o', arg_name = "FORMAT")]
    output: Option<String>,
    #[argh(subcommand)]
    op: Op,
}

#[derive(FromArgs, ArgsInfo)]
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

#[derive(FromArgs, ArgsInfo)]
/// List the instances: name, state, events, lost, digest, source.
#[argh(subcommand, name = "list")]
struct List {}

macro_rules! named {
    ($t:ident, $name:literal, $doc:literal) => {
        #[derive(FromArgs, ArgsInfo)]
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

#[derive(FromArgs, ArgsInfo)]
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

#[derive(FromArgs, ArgsInfo)]
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

#[derive(FromArgs, ArgsInfo)]
/// Print an instance's events (NDJSON); -f keeps following.
#[argh(subcommand, name = "logs")]
struct Logs {
    /// keep printing new events until Ctrl-C
    #[argh(switch, short = 'f')]
    follow: bool,
    /// only the last N lines kept (then new ones, with -f)
    #[argh(option, arg_name = "N")]
    tail: Option<u64>,
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

/// `3m ago`: how long before now a Unix time was, as people say it.
pub fn ago(unix_secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let d = now.saturating_sub(unix_secs);
    let (n, unit) = match d {
        0..=59 => (d, "s"),
        60..=3599 => (d / 60, "m"),
        3600..=86399 => (d / 3600, "h"),
        _ => (d / 86400, "d"),
    };
    format!("{n}{unit} ago")
}

/// `3m ago (2025-01-02T03:04:05Z)` for a status's `started_at`.
fn started(v: &Value) -> String {
    match v.get("started_at").and_then(Value::as_u64) {
        Some(0) | None => "-".into(),
        Some(t) => {
            let at = std::time::UNIX_EPOCH + Duration::from_secs(t);
            let stamp = crate::event::out::rfc3339_utc(at);
            format!("{} ({}Z)", ago(t), &stamp[..19])
        }
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
        "started",
        "events",
        "lost",
        "paused_drops",
        "client_drops",
        "cpu_seconds",
    ] {
        if k == "started" {
            println!("{k:<13} {}", started(v));
        } else if v.get(k).is_some() {
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
        let json = match self.output.as_deref() {
            None | Some("table") => false,
            Some("json") => true,
            Some(o) => return Err(Error::usage(format!("-o {o}: expected table or json"))),
        };
        // With -o json, the daemon's answer as it came (one JSON value per line).
        let show = |text: &str, table: &dyn Fn(&Value)| -> Result<()> {
            if json {
                println!("{}", text.trim_end());
            } else {
                table(&json::parse(text)?);
            }
            Ok(())
        };
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
                show(&text, &|v| {
                    println!(
                        "{:<20} {:<9} {:<9} {:>10} {:>8} {:<19} SOURCE",
                        "NAME", "STATE", "STARTED", "EVENTS", "LOST", "DIGEST"
                    );
                    for i in v.get("instances").and_then(Value::as_array).unwrap_or(&[]) {
                        let d = field(i, "digest");
                        let age = match i.get("started_at").and_then(Value::as_u64) {
                            Some(0) | None => "-".to_string(),
                            Some(t) => ago(t),
                        };
                        println!(
                            "{:<20} {:<9} {:<9} {:>10} {:>8} {:<19} {}",
                            field(i, "name"),
                            field(i, "state"),
                            age,
                            field(i, "events"),
                            field(i, "lost"),
                            d.get(..19).unwrap_or(&d),
                            field(i, "source")
                        );
                    }
                })?;
            }
            Op::Status(n) => {
                let text = answer(req("GET", path(&n.name, ""), None)?)?;
                show(&text, &print_status)?;
            }
            Op::Start(s) => {
                let (prog, args) = need_prog(&s.rest)?;
                let mut body = body_of(&prog, &args);
                body.insert_str(1, &{
                    let mut n = String::from("\"name\":");
                    push_json_str(&mut n, &s.name);
                    n.push(',');
                    n
                });
                let text = answer(req("POST", "/v1/instances".into(), Some(body))?)?;
                show(&text, &print_status)?;
            }
            Op::Reload(r) => {
                let (prog, args) = need_prog(&r.rest)?;
                answer(req("GET", path(&r.name, ""), None)?)?;
                let text = answer(req("PUT", path(&r.name, ""), Some(body_of(&prog, &args)))?)?;
                show(&text, &|v| println!("{}: {}", r.name, field(v, "applied")))?;
            }
            Op::Stop(n) => {
                let text = answer(req("DELETE", path(&n.name, ""), None)?)?;
                show(&text, &|_| println!("{}: stopped", n.name))?;
            }
            Op::Pause(n) => {
                let text = answer(req("POST", path(&n.name, "/pause"), None)?)?;
                show(&text, &|_| println!("{}: paused", n.name))?;
            }
            Op::Resume(n) => {
                let text = answer(req("POST", path(&n.name, "/resume"), None)?)?;
                show(&text, &|_| println!("{}: running", n.name))?;
            }
            Op::Logs(l) => {
                let mut query = Vec::new();
                if l.follow {
                    query.push("follow=1".to_string());
                }
                if let Some(n) = l.tail {
                    query.push(format!("tail={n}"));
                }
                let q = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", query.join("&"))
                };
                let r = req("GET", path(&l.name, &format!("/events{q}")), None)?;
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
