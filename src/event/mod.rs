//! Events, from the kernel's buffers to text: record layouts from BTF (`layout`), the one
//! pipeline that reads every event map (`pipeline`, over `poll`), the instance's control block
//! (`control`), sample maps (`sample`), the output formats (`out`) and where output goes
//! (`sink`).

#[doc(hidden)]
pub mod control;
#[cfg(test)]
pub(crate) mod fake;
#[doc(hidden)]
pub mod layout;
#[doc(hidden)]
pub mod out;
#[doc(hidden)]
pub mod percpu;
#[doc(hidden)]
pub mod pipeline;
#[doc(hidden)]
pub mod poll;
#[doc(hidden)]
pub mod results;
#[doc(hidden)]
pub mod sample;
pub mod sink;
#[doc(hidden)]
pub mod symbols;

pub use control::{Control, Counters};
pub use layout::Layout;
pub use out::{Format, OutputOptions};
pub use pipeline::{Pipeline, Polled};
pub use sink::{Memory, Sink, Stdout, Stream};
