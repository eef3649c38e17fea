//! URLs as the client takes them: http and https only, a host, a port and a target; and the
//! rules about them (loopback, downgrades). Pure.

use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url> {
        let bad =
            |why: &str| Error::new(ErrorKind::Usage, format!("{s}: not a usable URL ({why})"));
        let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
            (Scheme::Https, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (Scheme::Http, r)
        } else {
            return Err(bad("expected http:// or https://"));
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target
        };
        if authority.contains('@') {
            return Err(bad(
                "credentials in URLs are not accepted; use a credentials file",
            ));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, p) = r.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".-:_".contains(&c))
        {
            return Err(bad("bad host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None if scheme == Scheme::Https => 443,
            None => 80,
        };
        if target.bytes().any(|c| c <= b' ' || c == 0x7f) {
            return Err(bad("spaces or control characters in the path"));
        }
        Ok(Url {
            scheme,
            host,
            port,
            target,
        })
    }

    /// The URL a `Location` header points to (absolute, or relative to this one).
    pub fn join(&self, location: &str) -> Result<Url> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Url::parse(location);
        }
        if location.starts_with("//") {
            let s = match self.scheme {
                Scheme::Http => "http:",
                Scheme::Https => "https:",
            };
            return Url::parse(&format!("{s}{location}"));
        }
        let target = if location.starts_with('/') {
            location.to_string()
        } else {
            let dir = self.target.split('?').next().unwrap_or("/");
            let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        let mut u = self.clone();
        u.target = target;
        if u.target.bytes().any(|c| c <= b' ' || c == 0x7f) {
            return Err(Error::new(
                ErrorKind::Network,
                format!("bad redirect target {location:?}"),
            ));
        }
        Ok(u)
    }

    /// Whether going from this URL to `to` would leave TLS for plain HTTP: refused for
    /// redirects, whatever the host (a man in the middle could then read or change the rest).
    pub fn downgrades_to(&self, to: &Url) -> bool {
        self.scheme == Scheme::Https && to.scheme == Scheme::Http
    }

    /// Whether credentials may be sent to this URL: over TLS, or to a loopback address.
    pub fn may_carry_credentials(&self) -> bool {
        self.scheme == Scheme::Https || is_loopback(&self.host)
    }

    /// host or host:port, as in a Host header and in credentials files.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{s}://{}{}", self.authority(), self.target)
    }
}

/// Is `host` a loopback address (or `localhost`)? Plain HTTP to registries is only for these,
/// as docker does, unless the user names the host as insecure.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}
