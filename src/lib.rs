//! edge-ecli: run portable eBPF packages (eunomia package.json, raw .bpf.o, Wasm apps) on any
//! kernel with BTF, through aya.
//!
//! Data flows one way: `source` (PROG -> bytes) -> `package` (pure decoding) -> `runtime`
//! (an [`runtime::Instance`] per package) -> the loader (`bpf`, the only kernel layer) and the
//! event pipeline (`event`) -> a [`event::Sink`]. The CLI (`cli`) is one caller of the
//! runtime.
//!
//! The documented API is [`runtime`], [`package`], [`source`], [`event::Sink`] and [`error`].
//! The hidden modules are public for the integration tests and fuzz targets only.

pub mod build;
pub mod cli;
pub mod codec;
pub mod daemon;
pub mod error;
pub mod event;
pub mod files;
pub mod package;
pub mod progress;
pub mod runtime;
pub mod source;
pub mod trust;
#[doc(hidden)]
pub mod usdt;

#[doc(hidden)]
pub mod args;
#[doc(hidden)]
pub mod bpf;
#[doc(hidden)]
pub mod btf;
#[doc(hidden)]
pub mod http;
mod logger;
mod sys;
mod text;
#[doc(hidden)]
pub mod wasm;
