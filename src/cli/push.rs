//! `edge-ecli push FILE REF`: publish a package to a registry. Wasm modules go in eunomia
//! ecli's format (config `application/vnd.wasm.config.v1+json`, one
//! `application/vnd.wasm.content.layer.v1+wasm` layer, so `ecli pull` reads them);
//! package.json and `.bpf.o` in ours (an empty config and one `application/vnd.edge-ecli.*`
//! layer, with `artifactType`). The manifest is uploaded exactly as hashed.

use argh::FromArgs;

use crate::codec::sha256_digest;
use crate::error::{Error, ErrorKind, Result};
use crate::http::client::{Client, ClientOptions};
use crate::source::oci::artifact::manifest_for;
use crate::source::oci::manifest::OCI_MANIFEST;
use crate::source::oci::reference::Reference;
use crate::source::oci::registry::Registry;
use crate::{package, source};

#[derive(FromArgs)]
/// Publish a package (package.json, .bpf.o or .wasm) to an OCI registry under REF
/// (HOST[:PORT]/REPO[:TAG]); credentials come from docker's or podman's login files.
#[argh(subcommand, name = "push")]
pub struct PushCmd {
    /// extra CA certificates (PEM) trusted for HTTPS
    #[argh(option, arg_name = "FILE")]
    ca_file: Option<String>,
    /// registry (HOST or HOST:PORT) that may be reached over plain HTTP (repeatable)
    #[argh(option, arg_name = "HOST")]
    insecure_registry: Vec<String>,
    /// carry kernel BTF for kernels without their own, as a btfgen layer beside the package
    /// (application/vnd.gadget.btfgen.v1+binary): a BTFHub directory, such a file, or
    /// ID/VERSION_ID/ARCH/RELEASE=FILE (repeatable; for a Wasm app use pack --btfgen)
    #[argh(option, arg_name = "DIR|FILE")]
    btfgen: Vec<String>,
    /// the package file, or - for standard input
    #[argh(positional, arg_name = "FILE")]
    pub file: String,
    /// where to publish it
    #[argh(positional, arg_name = "REF")]
    reference: String,
}

impl PushCmd {
    pub fn main(self) -> Result<i32> {
        let r = Reference::parse(&self.reference)?;
        if r.digest.is_some() {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "{}: push to a tag, not a digest (the digest is the manifest's)",
                    self.reference
                ),
            ));
        }
        let bytes = source::read(&self.file)?;
        let kind = package::detect(&bytes).map_err(|e| e.context(&self.file))?;
        // Refuse what would not run: the same decoding `run` does.
        let object = if kind != package::Kind::Wasm {
            Some(package::load(bytes.clone(), &self.file).map_err(|e| e.context(&self.file))?)
        } else {
            None
        };
        let kernels = crate::package::btfgen::gather(&self.btfgen)?;
        let btfgen = match (&object, kernels.is_empty()) {
            (_, true) => None,
            (None, false) => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("{}: a Wasm app carries its kernel BTF inside (ecli reads one layer): pack {} --btfgen DIR -o APP, then push APP", self.file, self.file),
                ))
            }
            (Some(o), false) => match crate::package::btfgen::cut(&[o], &kernels)? {
                Some((set, summary)) => {
                    eprintln!("edge-ecli: {}: {summary} (a btfgen layer)", self.file);
                    Some(set)
                }
                None => {
                    eprintln!("edge-ecli: warning: {} has no CO-RE relocations: it needs no kernel BTF, so no btfgen layer is pushed", self.file);
                    None
                }
            },
        };
        let title = self
            .file
            .rsplit('/')
            .next()
            .unwrap_or(&self.file)
            .to_string();
        let layer = sha256_digest(&bytes);
        let btf_layer = btfgen
            .as_ref()
            .map(|s| (sha256_digest(s.bytes()), s.bytes().len()));
        let (config, manifest, digest) = manifest_for(
            kind,
            &layer,
            bytes.len(),
            &title,
            btf_layer.as_ref().map(|(d, n)| (d.as_str(), *n)),
        );
        let client = Client::new(ClientOptions {
            ca_file: self.ca_file.clone(),
            ..ClientOptions::default()
        });
        let mut reg = Registry::new(&client, &r, &self.insecure_registry, true)?;
        reg.push_blob(config)?;
        reg.push_blob(&bytes)?;
        if let Some(s) = &btfgen {
            reg.push_blob(s.bytes())?;
        }
        reg.push_manifest(r.target(), &manifest, OCI_MANIFEST)?;
        println!("{}@{digest}", r.with_tag(r.target()));
        Ok(0)
    }
}
