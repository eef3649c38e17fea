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
#[doc(hidden)]
#[allow(missing_docs)]
pub mod progress;
pub mod runtime;
pub mod source;

pub use error::{Error, ErrorKind, Result};
pub use event::{Control, Sink};
pub use package::{Object, Package};
pub use runtime::{Instance, Options, Outcome, State, Stats};
pub use source::{fetch, FetchOptions, Fetched};
pub use trust::Policy;

#[doc(hidden)]
#[allow(missing_docs)]
pub mod args;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bpf;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod btf;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod build;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod cli;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod codec;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod daemon;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod files;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod http;
mod logger;
mod sys;
mod text;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod trust;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod usdt;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod wasm;
