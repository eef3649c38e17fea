//! `edge-ecli push FILE REF`: publish a package to a registry (`source::oci::publish` says in
//! which format); progress on a terminal.

use argh::{ArgsInfo, FromArgs};

use crate::error::Result;
use crate::http::client::ClientOptions;
use crate::source::{self, oci::publish};

#[derive(FromArgs, ArgsInfo)]
/// Publish a package (package.json, .bpf.o or .wasm) to an OCI registry under REF
/// (HOST[:PORT]/REPO[:TAG]); credentials come from `edge-ecli login` (podman's file) or
/// docker's.
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
    /// no progress on the terminal
    #[argh(switch, short = 'q')]
    quiet: bool,
    /// the package file, or - for standard input
    #[argh(positional, arg_name = "FILE")]
    pub file: String,
    /// where to publish it
    #[argh(positional, arg_name = "REF")]
    reference: String,
}

impl PushCmd {
    pub fn main(self) -> Result<i32> {
        let bytes = source::read(&self.file)?;
        let opts = publish::PushOptions {
            http: ClientOptions {
                ca_file: self.ca_file.clone(),
                ..ClientOptions::default()
            },
            insecure: self.insecure_registry.clone(),
            meter: super::progress::meter("pushing", self.quiet),
            btfgen: self.btfgen.clone(),
        };
        println!(
            "{}",
            publish::push(&bytes, &self.file, &self.reference, &opts)?
        );
        Ok(0)
    }
}
