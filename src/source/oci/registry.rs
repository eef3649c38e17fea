//! The OCI distribution API, client side: manifests and blobs pulled and pushed, with the
//! authentication dance of docker and podman (anonymous, Basic, Bearer tokens), HTTPS unless
//! the registry is on loopback or named insecure, and redirects followed (at most 5, without
//! the Authorization header).

use super::auth::{self, Challenge, Credentials};
use super::manifest::{ACCEPT, MAX_MANIFEST};
use super::reference::Reference;
use super::store::Store;
use crate::codec::sha256_digest;
use crate::error::{Error, ErrorKind, Result};
use crate::http::client::{is_loopback, Client, Response, Scheme, Url};
use crate::http::percent_encode;
use crate::progress::Meter;

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

pub struct Registry<'a> {
    client: &'a Client,
    pub reference: Reference,
    /// `https://host` or, for loopback and insecure registries that do not speak TLS, `http://`.
    base: Option<Url>,
    plain_allowed: bool,
    creds: Option<Credentials>,
    authz: Option<String>,
    push: bool,
    what: String,
    meter: Meter,
}

/// `sha256:0123456789ab`: a blob as progress names it.
fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

fn net(m: String) -> Error {
    Error::new(ErrorKind::Network, m)
}

/// The error code and message of a registry's JSON error body, if it has one.
fn registry_error(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: heapless::String<64>,
        #[serde(default)]
        message: heapless::String<256>,
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: heapless::Vec<E, 4>,
    }
    let mut buf = vec![0u8; body.len()];
    match serde_json_core::from_slice_escaped::<Errors>(body, &mut buf) {
        Ok((e, _)) if !e.errors.is_empty() => {
            format!(" ({}: {})", e.errors[0].code, e.errors[0].message)
        }
        _ => String::new(),
    }
}

impl<'a> Registry<'a> {
    pub fn new(
        client: &'a Client,
        reference: &Reference,
        insecure: &[String],
        push: bool,
    ) -> Result<Registry<'a>> {
        let host = reference.host();
        let plain_allowed = is_loopback(host)
            || insecure
                .iter()
                .any(|h| h == host || h == &reference.registry);
        Ok(Registry {
            client,
            creds: auth::credentials_for(&reference.registry)?,
            reference: reference.clone(),
            base: None,
            plain_allowed,
            authz: None,
            push,
            what: reference.to_string(),
            meter: Meter::default(),
        })
    }

    /// The same client, reporting the bytes of blobs moved to `meter`.
    pub fn with_meter(mut self, meter: Meter) -> Registry<'a> {
        self.meter = meter;
        self
    }

    /// Which scheme the registry speaks, found with the `/v2/` ping docker does: HTTPS, or
    /// plain HTTP where that is allowed and TLS fails.
    fn base(&mut self) -> Result<Url> {
        if let Some(b) = &self.base {
            return Ok(b.clone());
        }
        let https = Url::parse(&format!("https://{}/v2/", self.reference.registry))?;
        let e = match self.client.send("GET", &https, &[], None) {
            Ok(_) => {
                self.base = Some(https.clone());
                return Ok(https);
            }
            Err(e) => e,
        };
        if !self.plain_allowed {
            return Err(e.context(format!(
                "{} (plain HTTP is only used for loopback registries and --insecure-registry hosts)",
                self.what
            )));
        }
        let mut http = https;
        http.scheme = Scheme::Http;
        self.base = Some(http.clone());
        Ok(http)
    }

    fn url(&mut self, path: &str) -> Result<Url> {
        self.base()?.join(path)
    }

    /// Sends a request with authentication (answering one 401 challenge) and follows
    /// redirects.
    fn send(
        &mut self,
        method: &str,
        url: Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Response> {
        self.send_with(method, url, headers, body, None)
    }

    /// [`send`](Registry::send), telling `progress` the bytes of the body sent.
    fn send_with(
        &mut self,
        method: &str,
        url: Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        mut progress: Option<&mut dyn FnMut(u64)>,
    ) -> Result<Response> {
        let mut url = url;
        let mut authed = false;
        let mut redirects = 0;
        let mut with_auth = true;
        loop {
            let mut h: Vec<(&str, String)> = headers.to_vec();
            if let (Some(a), true) = (&self.authz, with_auth) {
                h.push(("Authorization", a.clone()));
            }
            let r = match progress.as_mut() {
                Some(p) => self.client.send_with_progress(method, &url, &h, body, *p)?,
                None => self.client.send(method, &url, &h, body)?,
            };
            match r.status() {
                401 if !authed && with_auth => {
                    authed = true;
                    let challenge = r.header("www-authenticate").and_then(auth::parse_challenge);
                    self.authenticate(challenge)?;
                }
                401 => {
                    let how = match &self.creds {
                        Some(c) => {
                            format!("the credentials of {} in {} were refused", c.user, c.from)
                        }
                        None => self.login_hint(),
                    };
                    return Err(Error::new(
                        ErrorKind::Denied,
                        format!(
                            "{}: the registry answered 401 Unauthorized: {how}",
                            self.what
                        ),
                    ));
                }
                301 | 302 | 303 | 307 | 308 if matches!(method, "GET" | "HEAD") => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(net(format!(
                            "{}: more than {MAX_REDIRECTS} redirects (a redirect loop?)",
                            self.what
                        )));
                    }
                    let loc = r
                        .header("location")
                        .ok_or_else(|| {
                            net(format!("{}: a redirect without a Location", self.what))
                        })?
                        .to_string();
                    let next = url.join(&loc)?;
                    if url.downgrades_to(&next) {
                        return Err(net(format!(
                            "{}: the registry redirected from {url} to plain HTTP ({next}); refused (never from HTTPS to HTTP)",
                            self.what
                        )));
                    }
                    url = next;
                    // Storage behind a registry gets signed URLs, never our credentials.
                    with_auth = false;
                }
                _ => return Ok(r),
            }
        }
    }

    fn authenticate(&mut self, challenge: Option<Challenge>) -> Result<()> {
        match challenge {
            Some(Challenge::Basic) | None => {
                let c = self.creds.as_ref().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Denied,
                        format!(
                            "{}: the registry answered 401 and {}",
                            self.what,
                            self.login_hint()
                        ),
                    )
                })?;
                if let Some(b) = self.base.as_ref().filter(|b| !b.may_carry_credentials()) {
                    return Err(Error::new(
                        ErrorKind::Denied,
                        format!(
                            "{}: refusing to send the credentials of {} from {} to {} over plain HTTP (credentials go only over HTTPS or to loopback)",
                            self.what, c.user, c.from, b.authority()
                        ),
                    ));
                }
                self.authz = Some(c.basic());
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let actions = if self.push { "pull,push" } else { "pull" };
                let scope = format!("repository:{}:{actions}", self.reference.repository);
                let mut u = Url::parse(&realm)
                    .map_err(|e| net(format!("{}: bad token realm: {e}", self.what)))?;
                let base_https = self
                    .base
                    .as_ref()
                    .is_some_and(|b| b.scheme == Scheme::Https);
                if base_https && u.scheme == Scheme::Http {
                    return Err(net(format!("{}: the registry speaks HTTPS but its token realm {realm} is plain HTTP; refused (never from HTTPS to HTTP)", self.what)));
                }
                if u.scheme == Scheme::Http && !is_loopback(&u.host) && !self.plain_allowed {
                    return Err(net(format!("{}: the token realm {realm} is plain HTTP; refusing to send credentials there", self.what)));
                }
                let sep = if u.target.contains('?') { '&' } else { '?' };
                u.target.push(sep);
                if let Some(s) = service {
                    u.target
                        .push_str(&format!("service={}&", percent_encode(&s)));
                }
                // A login (no repository) asks for a token without a scope, as podman does.
                if self.reference.repository.is_empty() {
                    u.target.pop();
                } else {
                    u.target
                        .push_str(&format!("scope={}", percent_encode(&scope)));
                }
                // Credentials only over TLS or to loopback: a plain-HTTP realm of an insecure
                // registry is asked for an anonymous token.
                let h: Vec<(&str, String)> = self
                    .creds
                    .iter()
                    .filter(|_| u.may_carry_credentials())
                    .map(|c| ("Authorization", c.basic()))
                    .collect();
                let r = self.client.send("GET", &u, &h, None)?;
                match r.status() {
                    200 => {}
                    401 | 403 => {
                        let who = self.creds.as_ref().map_or("anonymous".into(), |c| {
                            format!("{} from {}", c.user, c.from)
                        });
                        return Err(Error::new(
                            ErrorKind::Denied,
                            format!(
                                "{}: the token realm refused {who} ({})",
                                self.what,
                                r.status()
                            ),
                        ));
                    }
                    s => return Err(net(format!("{}: the token realm answered {s}", self.what))),
                }
                let body = r.body(1 << 20, "token answer", self.client.options().io_timeout)?;
                self.authz = Some(format!("Bearer {}", auth::token_of(&body, &self.what)?));
            }
        }
        Ok(())
    }

    /// What to do when a registry wants credentials and none were found.
    fn login_hint(&self) -> String {
        let files: Vec<String> = auth::auth_files()
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        format!(
            "wants a login: edge-ecli login {} (or podman login, docker login); credentials are read from {}",
            self.reference.registry,
            files.join(", ")
        )
    }

    /// A client of `registry` (host[:port]) for `login`, with the credentials to check.
    pub fn for_login(
        client: &'a Client,
        registry: &str,
        insecure: &[String],
        creds: Credentials,
    ) -> Result<Registry<'a>> {
        let reference = Reference {
            registry: registry.to_string(),
            repository: String::new(),
            tag: None,
            digest: None,
        };
        let mut r = Registry::new(client, &reference, insecure, false)?;
        r.what = registry.to_string();
        r.creds = Some(creds);
        Ok(r)
    }

    /// Checks the credentials as `podman login` does: `GET /v2/`, answering its challenge
    /// with them. A registry that asks for none accepts any.
    pub fn login(&mut self) -> Result<()> {
        let u = self.url("/v2/")?;
        let r = self.send("GET", u, &[], None)?;
        match r.status() {
            200 => Ok(()),
            _ => Err(self.fail(r, "checking the login")),
        }
    }

    fn fail(&self, r: Response, doing: &str) -> Error {
        let status = r.status();
        let body = r
            .body(64 << 10, "error body", self.client.options().io_timeout)
            .unwrap_or_default();
        let detail = registry_error(&body);
        let kind = if status == 404 {
            ErrorKind::NotFound
        } else {
            ErrorKind::Network
        };
        Error::new(
            kind,
            format!(
                "{}: {doing}: the registry answered {status}{detail}",
                self.what
            ),
        )
    }

    /// Uploads a blob unless the registry has it; returns its digest.
    pub fn push_blob(&mut self, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        let repo = self.reference.repository.clone();
        let head = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        if self.send("HEAD", head, &[], None)?.status() == 200 {
            return Ok(digest);
        }
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let r = self.send("POST", start, &[], None)?;
        if r.status() != 202 {
            return Err(self.fail(r, "starting an upload"));
        }
        let loc = r
            .header("location")
            .ok_or_else(|| net(format!("{}: the upload has no Location", self.what)))?
            .to_string();
        let mut put = r.url.join(&loc)?;
        put.target
            .push(if put.target.contains('?') { '&' } else { '?' });
        put.target
            .push_str(&format!("digest={}", percent_encode(&digest)));
        let h = [("Content-Type", "application/octet-stream".to_string())];
        let (meter, what, total) = (self.meter.clone(), short(&digest), bytes.len() as u64);
        let mut report = |n: u64| meter.transfer(&what, n, Some(total));
        let r = self.send_with("PUT", put, &h, Some(bytes), Some(&mut report));
        self.meter.finished(&what);
        let r = r?;
        if r.status() != 201 {
            return Err(self.fail(r, "uploading a blob"));
        }
        Ok(digest)
    }

    /// Puts a manifest under `tag`.
    pub fn push_manifest(&mut self, tag: &str, bytes: &[u8], media_type: &str) -> Result<()> {
        let u = self.url(&format!(
            "/v2/{}/manifests/{tag}",
            self.reference.repository
        ))?;
        let r = self.send(
            "PUT",
            u,
            &[("Content-Type", media_type.to_string())],
            Some(bytes),
        )?;
        if r.status() != 201 {
            return Err(self.fail(r, "putting the manifest"));
        }
        Ok(())
    }
}

impl Store for Registry<'_> {
    fn manifest(&mut self, name: &str) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let u = self.url(&format!(
            "/v2/{}/manifests/{name}",
            self.reference.repository
        ))?;
        let r = self.send("GET", u, &[("Accept", ACCEPT.to_string())], None)?;
        match r.status() {
            200 => {
                let ct = r
                    .header("content-type")
                    .map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
                let b = r.body(MAX_MANIFEST, "manifest", self.client.options().io_timeout)?;
                Ok(Some((b, ct)))
            }
            404 => Ok(None),
            _ => Err(self.fail(r, &format!("getting manifest {name}"))),
        }
    }

    fn blob(&mut self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let u = self.url(&format!("/v2/{}/blobs/{digest}", self.reference.repository))?;
        let r = self.send("GET", u, &[], None)?;
        if r.status() != 200 {
            return Err(self.fail(r, &format!("getting blob {digest}")));
        }
        let total = r.head.content_length().ok().flatten();
        let (meter, what) = (self.meter.clone(), short(digest));
        let r = if meter.is_on() {
            let w = what.clone();
            r.on_read(move |n| meter.transfer(&w, n, total))
        } else {
            r
        };
        let body = r.body(limit, "blob", self.client.options().io_timeout);
        self.meter.finished(&what);
        body
    }
}
