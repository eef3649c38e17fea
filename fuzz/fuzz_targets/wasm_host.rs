//! The Wasm host ABI, without the kernel: every host function with fuzzer-chosen pointers,
//! lengths and handles, against guest memory holding only the fuzzer's bytes (so handles are
//! never live and object loads fail in parsing). Thousands of runs a second; the live-handle
//! paths are wasm_host_kernel's.
#![no_main]

const KERNEL: bool = false;
include!("wasm_host_harness.rs");
