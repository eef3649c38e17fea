//! One error type: a message meant for the user, already naming the input and the fix, and a
//! kind for the callers that branch on what went wrong (the CLI's exit code, the daemon's HTTP
//! status). Nobody classifies errors by their text.

use std::fmt;

/// What went wrong, as far as a caller needs to know to react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad command line or API request of edge-ecli itself (not of a package).
    Usage,
    /// Input that is not what it claims to be: a corrupt package, bad JSON, a bad flag value.
    Invalid,
    /// Something named does not exist: a file, a reference, an instance, a map.
    NotFound,
    /// The kernel or the OS refused for lack of privilege.
    Denied,
    /// The kernel refused the object: the verifier, an attach point, a map.
    Kernel,
    /// A registry, URL or other remote did not give what was asked for.
    Network,
    /// No connection to a remote at all (refused, unresolvable, timed out connecting): what
    /// makes a cached copy worth running.
    Unreachable,
    /// A signature, digest or policy check failed.
    Trust,
    /// The request conflicts with the current state (a name already in use...).
    Conflict,
    /// Anything else (I/O, the OS).
    Other,
}

impl ErrorKind {
    /// edge-ecli's exit status for an error of this kind: 2 for a bad command line (of
    /// edge-ecli or of the package, as getopt tools do), 1 for everything else. A normal stop
    /// is 0 and a Wasm app's own exit code is passed through; neither is an error.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Usage => 2,
            _ => 1,
        }
    }
}

/// What failed, on which input, and what to do about it (the message), with its [`ErrorKind`].
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    msg: String,
    /// The input the message names first, when it was made by [`Error::on`].
    subject: Option<String>,
}

/// edge-ecli's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of kind [`ErrorKind::Other`].
    pub fn msg(m: impl Into<String>) -> Error {
        Error::new(ErrorKind::Other, m)
    }

    /// An error of the given kind.
    pub fn new(kind: ErrorKind, m: impl Into<String>) -> Error {
        Error {
            kind,
            msg: m.into(),
            subject: None,
        }
    }

    /// An error about the input `what`, which the message names first (`what: m`). A caller
    /// that names its input in errors can then see it is named already ([`Error::about`]).
    pub fn on(what: &str, kind: ErrorKind, m: impl fmt::Display) -> Error {
        Error {
            kind,
            msg: format!("{what}: {m}"),
            subject: Some(what.to_string()),
        }
    }

    /// This error, about `what`: as it is when it already names `what` first, else with
    /// `what` put first.
    pub fn about(self, what: &str) -> Error {
        if self.subject.as_deref() == Some(what) {
            return self;
        }
        Error::on(what, self.kind, self.msg)
    }

    /// Input that is not what it claims to be ([`ErrorKind::Invalid`]).
    pub fn invalid(m: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, m)
    }

    /// A bad command line (exit status 2).
    pub fn usage(m: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage, m)
    }

    /// What went wrong, for callers that react to it.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Prefixes the message with what was being worked on.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error {
            kind: self.kind,
            msg: format!("{what}: {}", self.msg),
            subject: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::Denied,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e.to_string())
    }
}

/// [`Error::context`] on a result.
pub trait Context<T> {
    /// Prefixes an error's message with what was being worked on.
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_its_input_once() {
        let e = Error::on("ghcr.io/a/b:v1", ErrorKind::NotFound, "not found");
        assert_eq!(e.clone().about("ghcr.io/a/b:v1").to_string(), e.to_string());
        // Another input, or a message that only happens to start with the name, gets it first.
        let other = e.clone().about("ghcr.io/a/b");
        assert_eq!(other.to_string(), "ghcr.io/a/b: ghcr.io/a/b:v1: not found");
        assert_eq!(other.kind(), ErrorKind::NotFound);
        let text = Error::msg("ghcr.io/a/b:v1 is odd").about("ghcr.io/a/b:v1");
        assert_eq!(text.to_string(), "ghcr.io/a/b:v1: ghcr.io/a/b:v1 is odd");
        // A context in front ends the naming.
        let ctx = e.context("pulling").about("ghcr.io/a/b:v1");
        assert_eq!(
            ctx.to_string(),
            "ghcr.io/a/b:v1: pulling: ghcr.io/a/b:v1: not found"
        );
    }
}
