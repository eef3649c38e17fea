//! `edge-ecli pull REF [-o PATH|oci:DIR[:TAG]]`: fetch a package into the cache (checked by
//! the trust policy), and optionally write it out as a file or into an OCI image layout (with
//! its signatures, so the layout verifies offline). The work is in `crate::source`.

use argh::{ArgsInfo, FromArgs};

use super::source_flags::with_source_flags;
use crate::error::{Error, ErrorKind, Result};
use crate::{package, source};

with_source_flags! {
#[derive(FromArgs, ArgsInfo)]
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

impl PullCmd {
    pub fn main(self) -> Result<i32> {
        let f = self.source_flags().fetch_trusted(&self.reference)?;
        if f.bytes.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!("{}: empty package", self.reference),
            ));
        }
        let kind = package::detect(&f.bytes).map_err(|e| e.context(&self.reference))?;
        if let Some(dest) = &self.output {
            for n in source::save(&f, dest)? {
                eprintln!("edge-ecli: {n}");
            }
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
