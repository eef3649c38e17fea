//! TLS for the client: rustls with the ring provider, trusting the system's CA bundle plus a
//! `--ca-file`. (Built only with the `tls` feature, on by default.)

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::error::{Error, ErrorKind, Result};

/// Where Debian, Alpine, Fedora and friends keep their CA bundle.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

fn add_file(roots: &mut RootCertStore, path: &str, required: bool) -> Result<usize> {
    // A CA bundle is a few hundred KiB (Debian's is 220 KiB).
    let text = match crate::files::read_text_limited(path, 16 << 20) {
        Ok(t) => t,
        Err(_) if !required => return Ok(0),
        Err(e) => return Err(Error::from(e).context(format!("--ca-file {path}: cannot read"))),
    };
    let mut n = 0;
    // codec::pem, not rustls-pki-types' PEM reader: the keys need it anyway, and a second PEM
    // parser cost the static binary 4 KB (measured) for the same work.
    for der in crate::codec::pem::blocks(&text, "CERTIFICATE") {
        if roots.add(CertificateDer::from(der)).is_ok() {
            n += 1;
        }
    }
    if required && n == 0 {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!("--ca-file {path}: no PEM certificate in it"),
        ));
    }
    Ok(n)
}

pub fn client_config(ca_file: Option<&str>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    if let Some(b) = SYSTEM_BUNDLES
        .iter()
        .find(|p| std::path::Path::new(p).exists())
    {
        add_file(&mut roots, b, false)?;
    }
    if let Some(f) = ca_file {
        add_file(&mut roots, f, true)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::msg(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub fn connect(config: Arc<ClientConfig>, host: &str) -> Result<ClientConnection> {
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        Error::new(
            ErrorKind::Usage,
            format!("{host} is not a valid TLS server name"),
        )
    })?;
    ClientConnection::new(config, name)
        .map_err(|e| Error::new(ErrorKind::Network, format!("TLS: {e}")))
}
