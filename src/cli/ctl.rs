//! `edge-ecli ctl`: the face of `daemon::client` (the daemon's API over its Unix socket):
//! arguments in, the answers printed.

use std::io::{Read, Write};

use argh::{ArgsInfo, FromArgs};

use crate::codec::json::{self, Value};
use crate::daemon::client::Client;
use crate::error::{Error, ErrorKind, Result};

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
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
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

/// PROG and the package's ARGS of `start` and `reload`.
fn prog_args(rest: &[String]) -> Result<(&str, &[String])> {
    let (p, a) = rest.split_first().ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            "PROG is missing: ctl start NAME PROG [ARGS...]",
        )
    })?;
    Ok((p, a))
}

fn print_list(v: &Value) {
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
}

/// Copies an event stream to stdout until it ends or stdout goes away.
fn copy_events(mut body: Box<dyn Read>) -> Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    let mut out = std::io::stdout().lock();
    loop {
        match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    return Ok(());
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
        let client = Client::new(&socket, follow);
        // Relative paths in PROG are ours: the daemon resolves them against this directory.
        let cwd = std::env::current_dir().ok();
        match self.op {
            Op::List(_) => show(&client.list()?, &print_list)?,
            Op::Status(n) => show(&client.status(&n.name)?, &print_status)?,
            Op::Start(s) => {
                let (prog, args) = prog_args(&s.rest)?;
                let text = client.start(&s.name, prog, args, cwd.as_deref())?;
                show(&text, &print_status)?;
            }
            Op::Reload(r) => {
                let (prog, args) = prog_args(&r.rest)?;
                let text = client.reload(&r.name, prog, args, cwd.as_deref())?;
                show(&text, &|v| println!("{}: {}", r.name, field(v, "applied")))?;
            }
            Op::Stop(n) => show(&client.stop(&n.name)?, &|_| println!("{}: stopped", n.name))?,
            Op::Pause(n) => show(&client.pause(&n.name, true)?, &|_| {
                println!("{}: paused", n.name)
            })?,
            Op::Resume(n) => show(&client.pause(&n.name, false)?, &|_| {
                println!("{}: running", n.name)
            })?,
            Op::Logs(l) => copy_events(client.events(&l.name, l.follow, l.tail)?)?,
        }
        Ok(0)
    }
}
