//! The one integration test binary: each module is one area. Fixtures are built once per run
//! (`common::fixtures`); tests that need no compiler, bpftool or root use the committed
//! examples.

mod attach;
mod build;
mod common;
mod compat;
mod core_btf;
mod daemon;
mod daemon_safety;
mod deploy;
mod distribution;
mod errors;
mod examples;
mod kernel;
mod kernel_btf;
mod runtime;
mod soak;
mod wasm;
