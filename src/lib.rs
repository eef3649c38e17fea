//! edge-ecli: run eBPF packages (eunomia package.json, raw .bpf.o) on any kernel with BTF.
//!
//! Data flows one way: source -> package (pure) -> args (pure) -> bpf (kernel, aya) -> run
//! (event loop) -> event/hist (pure formatting).

pub mod args;
pub mod bpf;
pub mod btf;
pub mod cli;
pub mod core_btf;
pub mod elf;
pub mod error;
pub mod event;
pub mod hist;
pub mod info;
pub mod json;
pub mod logger;
pub mod meta;
pub mod package;
pub mod poll;
pub mod run;
pub mod source;
pub mod wasm;
