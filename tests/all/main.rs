//! The one integration test binary: each module is one area. Fixtures are built once per run
//! (`common::fixtures`); tests that need no compiler, bpftool or root use the committed
//! examples.

mod attach;
mod build;
mod cli;
mod common;
mod compat;
mod core_btf;
mod daemon;
mod deploy;
mod distribution;
mod errors;
mod examples;
mod kernel;
mod login;
mod output;
mod runtime;
mod soak;
mod wasm;
