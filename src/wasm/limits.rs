//! What a guest may allocate, in all: `--max-memory` is the total of every linear memory and
//! every table of the guest (wasmi's own limits are per memory, and a module may declare many
//! memories and grow tables without end), with a cap on how many of each it declares.

use wasmi::errors::{MemoryError, TableError};
use wasmi::ResourceLimiter;
use wasmi_core::LimiterError;

/// Memories and tables a guest may declare (toolchains emit one of each).
pub const MAX_MEMORIES: usize = 16;
pub const MAX_TABLES: usize = 16;
/// What one table element costs the host (a reference).
pub const TABLE_ELEMENT_BYTES: usize = 8;

/// The guest's budget and what it has used of it.
#[derive(Debug)]
pub struct GuestLimits {
    max_bytes: usize,
    used: usize,
    /// The last growth granted, undone if wasmi then fails it.
    last_memory: usize,
    last_table: usize,
}

impl GuestLimits {
    pub fn new(max_bytes: usize) -> GuestLimits {
        GuestLimits {
            max_bytes,
            used: 0,
            last_memory: 0,
            last_table: 0,
        }
    }

    /// Bytes of memories and tables the guest holds.
    pub fn used(&self) -> usize {
        self.used
    }

    fn grant(&mut self, grow: usize) -> bool {
        match self.used.checked_add(grow) {
            Some(t) if t <= self.max_bytes => {
                self.used = t;
                true
            }
            _ => false,
        }
    }
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let grow = desired.saturating_sub(current);
        let ok = self.grant(grow);
        self.last_memory = if ok { grow } else { 0 };
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let grow = desired
            .saturating_sub(current)
            .saturating_mul(TABLE_ELEMENT_BYTES);
        let ok = self.grant(grow);
        self.last_table = if ok { grow } else { 0 };
        Ok(ok)
    }

    fn memory_grow_failed(&mut self, _e: &MemoryError) -> Result<(), LimiterError> {
        self.used -= std::mem::take(&mut self.last_memory);
        Ok(())
    }

    fn table_grow_failed(&mut self, _e: &TableError) -> Result<(), LimiterError> {
        self.used -= std::mem::take(&mut self.last_table);
        Ok(())
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::event::{Control, Sink, Stream};
    use crate::wasm::{run, HostConfig, WasmOptions};

    struct Discard;
    impl Sink for Discard {
        fn write(&mut self, _: Stream, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
        fn note(&mut self, _: &str) {}
    }

    /// Runs a guest under `--max-memory MIB`; its exit code.
    fn exit_code(wat_text: &str, mib: usize) -> i32 {
        let bytes = wat::parse_str(wat_text).unwrap();
        let opts = WasmOptions {
            max_memory: mib << 20,
            ..WasmOptions::default()
        };
        let config = HostConfig {
            load: Default::default(),
            attach: Default::default(),
            event_type: None,
        };
        let control = Arc::new(Control::new(None).unwrap());
        run(
            &bytes,
            "t",
            vec![],
            &opts,
            config,
            Box::new(Discard),
            control,
        )
        .unwrap()
    }

    #[test]
    fn the_memory_limit_is_the_total_of_every_memory_and_table() {
        // Four memories, each grown by 25 MiB: under 64 MiB in all, two of them get it.
        let memories = r#"(module
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory $m0 (export "memory") 0) (memory $m1 0) (memory $m2 0) (memory $m3 0)
          (func (export "_start") (local $ok i32)
            (if (i32.ge_s (memory.grow $m0 (i32.const 400)) (i32.const 0)) (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
            (if (i32.ge_s (memory.grow $m1 (i32.const 400)) (i32.const 0)) (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
            (if (i32.ge_s (memory.grow $m2 (i32.const 400)) (i32.const 0)) (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
            (if (i32.ge_s (memory.grow $m3 (i32.const 400)) (i32.const 0)) (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
            (call $exit (local.get $ok))))"#;
        assert_eq!(exit_code(memories, 64), 2);
        // A table grown past the budget (16 M elements, 128 MiB of references) fails; one that
        // fits (1 M elements) grows.
        let table = r#"(module
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (table $t 0 funcref)
          (func (export "_start")
            (call $exit (i32.add
              (i32.mul (i32.const 10) (i32.ge_s (table.grow $t (ref.null func) (i32.const 16777216)) (i32.const 0)))
              (i32.ge_s (table.grow $t (ref.null func) (i32.const 1048576)) (i32.const 0))))))"#;
        assert_eq!(exit_code(table, 64), 1);
        // More memories than a guest may declare: refused at instantiation.
        let many: String = (0..=MAX_MEMORIES).map(|_| "(memory 0)").collect();
        let wat_many =
            format!(r#"(module (memory (export "memory") 0) {many} (func (export "_start")))"#);
        let bytes = wat::parse_str(&wat_many).unwrap();
        let control = Arc::new(Control::new(None).unwrap());
        let r = run(
            &bytes,
            "t",
            vec![],
            &WasmOptions::default(),
            HostConfig {
                load: Default::default(),
                attach: Default::default(),
                event_type: None,
            },
            Box::new(Discard),
            control,
        );
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn growth_is_accounted_and_failures_undone() {
        let mut l = GuestLimits::new(1 << 20);
        assert!(l.memory_growing(0, 65536, None).unwrap());
        assert!(l.table_growing(0, 1000, Some(2000)).unwrap());
        assert_eq!(l.used(), 65536 + 8000);
        assert!(
            !l.table_growing(1000, 3000, Some(2000)).unwrap(),
            "past its own maximum"
        );
        assert!(
            !l.memory_growing(65536, 2 << 20, None).unwrap(),
            "past the budget"
        );
        assert_eq!(l.used(), 65536 + 8000);
        assert!(l.memory_growing(65536, 131072, None).unwrap());
        assert_eq!(l.used(), 131072 + 8000);
    }
}
