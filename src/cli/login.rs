//! `edge-ecli login REGISTRY` and `edge-ecli logout REGISTRY`: the credentials file podman
//! writes (`podman login` and edge-ecli read each other's), checked against the registry
//! before they are kept. The password comes from standard input or the terminal, never from
//! the command line.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use argh::{ArgsInfo, FromArgs};

use crate::error::{Error, ErrorKind, Result};
use crate::http::client::{Client, ClientOptions};
use crate::source::oci::auth::{self, Credentials};
use crate::source::oci::registry::Registry;

#[derive(FromArgs, ArgsInfo)]
/// Log in to a registry: check the credentials with it, then keep them where podman login
/// keeps them ($REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else
/// /run/containers/$UID/auth.json), for pull, push, run and the daemon.
#[argh(subcommand, name = "login")]
pub struct LoginCmd {
    /// the user name (default: asked on the terminal)
    #[argh(option, short = 'u', arg_name = "USER")]
    username: Option<String>,
    /// read the password from standard input (one line)
    #[argh(switch)]
    password_stdin: bool,
    /// the credentials file to write instead of podman's
    #[argh(option, arg_name = "FILE")]
    authfile: Option<String>,
    /// extra CA certificates (PEM) trusted for HTTPS
    #[argh(option, arg_name = "FILE")]
    ca_file: Option<String>,
    /// registry (HOST or HOST:PORT) that may be reached over plain HTTP (repeatable)
    #[argh(option, arg_name = "HOST")]
    insecure_registry: Vec<String>,
    /// the registry, HOST[:PORT]
    #[argh(positional, arg_name = "REGISTRY")]
    registry: String,
}

#[derive(FromArgs, ArgsInfo)]
/// Forget the credentials of a registry in podman's credentials file (or --authfile).
#[argh(subcommand, name = "logout")]
pub struct LogoutCmd {
    /// the credentials file to edit instead of podman's
    #[argh(option, arg_name = "FILE")]
    authfile: Option<String>,
    /// the registry, HOST[:PORT]
    #[argh(positional, arg_name = "REGISTRY")]
    registry: String,
}

/// `https://host:5000/v2/` or `host:5000/repo` -> `host:5000`: what credentials are kept under.
fn registry_host(r: &str) -> Result<String> {
    let h = r
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    if h.is_empty()
        || !h
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c))
    {
        return Err(Error::usage(format!(
            "{r}: not a registry; expected HOST or HOST:PORT"
        )));
    }
    Ok(h.to_string())
}

fn file_of(authfile: &Option<String>) -> PathBuf {
    authfile
        .as_ref()
        .map_or_else(auth::login_file, PathBuf::from)
}

fn read_file(path: &Path) -> Result<Option<String>> {
    match crate::files::read_text_limited(path, 1 << 20) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::new(
            ErrorKind::Other,
            format!("{}: cannot read: {e}", path.display()),
        )),
    }
}

/// Writes the credentials file as podman does: its directory 0700, the file 0600.
fn write_file(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(|e| Error::msg(format!("{}: cannot create: {e}", d.display())))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::msg(format!("{}: cannot write: {e}", path.display()))
        })
}

/// One line from the terminal, echoed or not.
fn ask(prompt: &str, echo: bool) -> Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| {
            Error::usage("no terminal to ask on: give --username USER and --password-stdin")
        })?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&tty);
    // SAFETY: termios calls on an fd we hold open, with a zeroed struct they fill.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            None
        } else {
            let old = t;
            if !echo {
                t.c_lflag &= !libc::ECHO;
                libc::tcsetattr(fd, libc::TCSANOW, &t);
            }
            Some(old)
        }
    };
    let _ = (&tty).write_all(prompt.as_bytes());
    let mut line = String::new();
    let r = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(old) = saved {
        // SAFETY: restores the settings read above on the same fd.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    }
    if !echo {
        let _ = (&tty).write_all(b"\n");
    }
    r.map_err(|e| Error::msg(format!("reading the terminal: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

impl LoginCmd {
    pub fn main(self) -> Result<i32> {
        let host = registry_host(&self.registry)?;
        let user = match &self.username {
            Some(u) => u.clone(),
            None => ask("Username: ", true)?,
        };
        let pass = if self.password_stdin {
            let mut l = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut l)
                .map_err(|e| Error::msg(format!("reading the password: {e}")))?;
            l.trim_end_matches(['\n', '\r']).to_string()
        } else {
            ask("Password: ", false)?
        };
        if user.is_empty() || user.contains(':') || pass.is_empty() {
            return Err(Error::usage(
                "the user name must be non-empty without ':', and the password non-empty",
            ));
        }
        let client = Client::new(ClientOptions {
            ca_file: self.ca_file.clone(),
            ..ClientOptions::default()
        });
        let creds = Credentials {
            user: user.clone(),
            pass: pass.clone(),
            from: "the login".into(),
        };
        Registry::for_login(&client, &host, &self.insecure_registry, creds)?.login()?;
        let path = file_of(&self.authfile);
        let shown = path.to_string_lossy().into_owned();
        let old = read_file(&path)?;
        let (text, _) = auth::edit_auth_file(old.as_deref(), &host, Some((&user, &pass)), &shown)?;
        write_file(&path, &text)?;
        eprintln!("Login Succeeded! (credentials kept in {shown})");
        Ok(0)
    }
}

impl LogoutCmd {
    pub fn main(self) -> Result<i32> {
        let host = registry_host(&self.registry)?;
        let path = file_of(&self.authfile);
        let shown = path.to_string_lossy().into_owned();
        let old = read_file(&path)?;
        let (text, had) = auth::edit_auth_file(old.as_deref(), &host, None, &shown)?;
        if !had {
            let elsewhere = auth::auth_files().into_iter().find(|f| {
                crate::files::read_limited(f, 1 << 20)
                    .is_ok_and(|t| auth::credentials_in(&t, &host, "").is_ok_and(|c| c.is_some()))
            });
            let more = match elsewhere {
                Some(f) => format!(
                    "; credentials for it are in {} (docker logout {host} or edit that file)",
                    f.display()
                ),
                None => String::new(),
            };
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("not logged in to {host} in {shown}{more}"),
            ));
        }
        write_file(&path, &text)?;
        eprintln!("Removed login credentials for {host} from {shown}");
        Ok(0)
    }
}
