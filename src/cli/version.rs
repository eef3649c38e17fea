//! `edge-ecli version` (and `--version`, `-V`): what this binary is.

use argh::{ArgsInfo, FromArgs};

use crate::error::Result;

#[derive(FromArgs, ArgsInfo)]
/// Print the version, the architecture and the features this binary was built with.
#[argh(subcommand, name = "version")]
pub struct VersionCmd {}

/// `edge-ecli 0.1.0`
pub fn line() -> String {
    format!("edge-ecli {}", env!("CARGO_PKG_VERSION"))
}

impl VersionCmd {
    pub fn main(self) -> Result<i32> {
        println!("{}", line());
        let libc = if cfg!(target_env = "musl") {
            "musl, static"
        } else if cfg!(target_env = "gnu") {
            "glibc"
        } else {
            "other libc"
        };
        println!("arch:     {} ({libc})", std::env::consts::ARCH);
        let mut features = vec!["wasm (wasm_bpf, env, WASI preview1)"];
        if cfg!(feature = "tls") {
            features.push("tls (rustls, ring)");
        }
        println!("features: {}", features.join(", "));
        println!("packages: eunomia package.json, raw .bpf.o, Wasm modules");
        Ok(0)
    }
}
