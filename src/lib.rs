//! edge-ecli: run portable eBPF packages (eunomia package.json, raw .bpf.o, Wasm apps) on any
//! Linux kernel, through aya.
//!
//! Data flows one way: `source` (PROG -> bytes) -> `trust` -> `package` (pure decoding) ->
//! `runtime` (an [`Instance`] per package) -> the loader (`bpf`, the only kernel layer) and the
//! event pipeline (`event`) -> a [`Sink`]. The CLI (`cli`) and the daemon (`daemon`) are
//! callers of the runtime.
//!
//! The documented API is what this page re-exports: fetch a package ([`fetch`]), decode it
//! ([`Package`]), run it ([`Instance`]) into a [`Sink`]. The hidden modules are public for the
//! binary, the integration tests and the fuzz targets only; they are not a stable API.
//!
//! ```no_run
//! use edge_ecli::{fetch, FetchOptions, Instance, Options, Package, Policy};
//! # fn main() -> edge_ecli::Result<()> {
//! let fetched = fetch("examples/hello/package.json", &FetchOptions::default(), &Policy::default())?;
//! let package = Package::decode(fetched.bytes, &fetched.name)?;
//! let instance = Instance::start(package, vec![], Options::default(), Box::new(edge_ecli::event::sink::Stdout))?;
//! instance.wait()?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod event;
pub mod package;
pub mod runtime;
pub mod source;

pub use error::{Error, ErrorKind, Result};
pub use event::{Control, Sink};
pub use package::{Object, Package};
pub use runtime::{Instance, Options, Outcome, State, Stats};
pub use source::{fetch, FetchOptions, Fetched};
pub use trust::Policy;

/// Modules public only for the binary, the integration tests and the fuzz targets: hidden
/// from the docs, outside the documented API and its `missing_docs` rule.
macro_rules! internal {
    ($($m:ident),*) => { $( #[doc(hidden)] #[allow(missing_docs)] pub mod $m; )* };
}
internal!(args, bpf, btf, build, cli, codec, daemon, files, http, progress, trust, usdt, wasm);

mod logger;
mod sys;
mod text;
