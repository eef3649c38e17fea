//! The Wasm host ABI with live kernel objects: as wasm_host, with a real BPF object and a
//! real package.json in guest memory, so loads reach the kernel and handles and map fds are
//! live. Each load costs the kernel's verifier milliseconds: tens of runs a second. Needs root.
#![no_main]

const KERNEL: bool = true;
include!("wasm_host_harness.rs");
