//! Events, from the kernel's buffers to text: record layouts from BTF (`layout`), the one
//! pipeline that reads every event map (`pipeline`, over `poll`), the instance's control block
//! (`control`), sample maps (`sample`), the output formats (`out`) and where output goes
//! (`sink`).

pub mod control;
#[cfg(test)]
pub(crate) mod fake;
pub mod layout;
pub mod out;
pub mod pipeline;
pub mod poll;
pub mod results;
pub mod sample;
pub mod sink;
pub mod symbols;

pub use control::{Control, Counters};
pub use layout::Layout;
pub use out::{Format, OutputOptions};
pub use pipeline::{Pipeline, Polled};
pub use sink::{Memory, Sink, Stdout, Stream};
