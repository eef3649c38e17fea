//! `edge-ecli pull REF [-o PATH|oci:DIR[:TAG]]`: fetch a package into the cache (checked by
//! the trust policy), and optionally write it out as a file or into an OCI image layout (with
//! its signatures, so the layout verifies offline).

use argh::FromArgs;

use super::source_flags::with_source_flags;
use crate::codec::sha256_digest;
use crate::error::{Error, ErrorKind, Result};
use crate::files::write_atomic;
use crate::package;
use crate::source::oci::artifact::manifest_for;
use crate::source::oci::manifest::{Manifest, EMPTY_DIGEST, EMPTY_JSON};
use crate::source::oci::store::{write_layout, Artifact};
use crate::source::{Fetched, Source};
use crate::trust::Signature;

with_source_flags! {
#[derive(FromArgs)]
/// Fetch a package (an OCI reference, a URL, oci:DIR[:TAG], oci-archive:FILE[:TAG]) into the
/// cache, verified; with -o, also write it to PATH or into the image layout oci:DIR[:TAG].
#[argh(subcommand, name = "pull")]
pub struct PullCmd {
    /// where to write it: a file PATH, or oci:DIR[:TAG] for an OCI image layout
    #[argh(option, short = 'o', arg_name = "PATH")]
    output: Option<String>,
    /// what to pull
    #[argh(positional, arg_name = "REF")]
    pub reference: String,
}
}

/// An artifact of our own format around a package that came without one (a URL, a file).
fn wrap(f: &Fetched) -> Result<Artifact> {
    let kind = package::detect(&f.bytes)?;
    let title = f.name.rsplit('/').next().unwrap_or(&f.name).to_string();
    let layer = sha256_digest(&f.bytes);
    let (config, manifest, digest) = manifest_for(kind, &layer, f.bytes.len(), &title, None);
    let parsed = Manifest::parse(&manifest, "our manifest")?;
    let mut blobs = vec![(
        parsed.config.clone().expect("written with a config"),
        config.to_vec(),
    )];
    blobs.push((parsed.layers[0].clone(), f.bytes.clone()));
    debug_assert_eq!(sha256_digest(EMPTY_JSON), EMPTY_DIGEST);
    Ok(Artifact {
        manifest,
        digest,
        media_type: crate::source::oci::manifest::OCI_MANIFEST.into(),
        parsed,
        blobs,
        signature: None,
    })
}

impl PullCmd {
    pub fn main(self) -> Result<i32> {
        let f = self.source_flags().fetch_trusted(&self.reference)?;
        let kind = package::detect(&f.bytes).map_err(|e| e.context(&self.reference))?;
        match self.output.as_deref() {
            None => {}
            Some(o) if o.starts_with("oci:") => {
                let Source::Layout { dir, tag } = Source::parse(o)? else {
                    unreachable!("oci: parses as a layout")
                };
                let tag = tag.unwrap_or_else(|| match Source::parse(&self.reference) {
                    Ok(Source::Registry(r)) => r.tag.unwrap_or_else(|| "latest".into()),
                    _ => "latest".into(),
                });
                let a = match &f.artifact {
                    Some(a) => a.clone(),
                    None => {
                        if f.signatures
                            .iter()
                            .any(|s| matches!(s, Signature::Minisign(_)))
                        {
                            eprintln!(
                                "edge-ecli: note: the .minisig is not carried into an OCI layout"
                            );
                        }
                        wrap(&f)?
                    }
                };
                write_layout(&dir, &tag, &a)?;
                eprintln!("edge-ecli: wrote {} to oci:{dir}:{tag}", a.digest);
            }
            Some(path) => {
                write_atomic(std::path::Path::new(path), &f.bytes)?;
                if f.btfgen.is_some() {
                    eprintln!("edge-ecli: note: the artifact's kernel BTF layer is not written to {path}; pull to oci:DIR to keep it, or run the reference");
                }
                for s in &f.signatures {
                    if let Signature::Minisign(text) = s {
                        write_atomic(
                            std::path::Path::new(&format!("{path}.minisig")),
                            text.as_bytes(),
                        )?;
                    }
                }
            }
        }
        if f.bytes.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!("{}: empty package", self.reference),
            ));
        }
        println!(
            "{} {} ({} bytes, {}){}",
            self.reference,
            f.manifest_digest.as_deref().unwrap_or(&f.content_digest),
            f.bytes.len(),
            kind.name(),
            if f.signatures.is_empty() {
                ""
            } else {
                ", signed"
            }
        );
        Ok(0)
    }
}
