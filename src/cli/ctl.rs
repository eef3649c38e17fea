//! `edge-ecli ctl`: the face of `daemon::client` (the daemon's API over its Unix socket):
//! arguments in, the answers printed.

use std::io::{Read, Write};

use argh::FromArgs;

use crate::codec::json::{self, Value};
use crate::daemon::client::Client;
use crate::error::{Error, ErrorKind, Result};

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

fn print_list(text: &str) -> Result<()> {
    let v = json::parse(text)?;
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
    Ok(())
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
            Op::List(_) => print_list(&client.list()?)?,
            Op::Status(n) => print_status(&json::parse(&client.status(&n.name)?)?),
            Op::Start(s) => {
                let (prog, args) = prog_args(&s.rest)?;
                let text = client.start(&s.name, prog, args, cwd.as_deref())?;
                print_status(&json::parse(&text)?);
            }
            Op::Reload(r) => {
                let (prog, args) = prog_args(&r.rest)?;
                let text = client.reload(&r.name, prog, args, cwd.as_deref())?;
                println!("{}: {}", r.name, field(&json::parse(&text)?, "applied"));
            }
            Op::Stop(n) => {
                client.stop(&n.name)?;
                println!("{}: stopped", n.name);
            }
            Op::Pause(n) => {
                client.pause(&n.name, true)?;
                println!("{}: paused", n.name);
            }
            Op::Resume(n) => {
                client.pause(&n.name, false)?;
                println!("{}: running", n.name);
            }
            Op::Logs(l) => copy_events(client.events(&l.name, l.follow)?)?,
        }
        Ok(0)
    }
}
