//! The one integration test binary: each module is one area. Fixtures are built once per run
//! (`common::fixtures`); tests that need no compiler, bpftool or root use the committed
//! examples.
//!
//! A test that needs something a machine may lack says so twice: `#[cfg_attr(edge_skip_CLASS,
//! ignore = "needs ...")]` (build.rs sets the class when this machine lacks it, so the runner's
//! summary counts the test as ignored), and a run-time gate (`kernel_ready`, `toolchain_available`,
//! `services`, `skip_unless`) for `--include-ignored` and CI. Classes: `edge_skip_kernel` (root,
//! BTF, clang-19, bpftool), `edge_skip_root` (root, BTF), `edge_skip_toolchain`,
//! `edge_skip_registry`, `edge_skip_registry_root`, `edge_skip_cli`, `edge_skip_k8s`. Under
//! CI=true nothing is ignored and a skip is a failure.

mod attach;
mod build;
mod cli;
mod common;
mod compat;
mod core_btf;
mod daemon;
mod daemon_safety;
mod deploy;
mod distribution;
mod errors;
mod examples;
mod gates;
mod kernel;
mod kernel_btf;
mod login;
mod output;
mod readme;
mod runtime;
mod soak;
mod wasm;
