//! The state every host function works on, and how guest code is called: in fuel slices, so
//! stop and pause requests are seen while the guest computes, and with one rule for stops at
//! blocking calls: after a stop request the first blocking call returns EINTR (so the guest's
//! loop can end and its libc flush), and a guest that blocks again is interrupted at once.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use wasmi::{Error as Trap, Func, Memory, ResumableCall, Table, Val};

use super::limits::GuestLimits;
use super::{ewasm, wasi, wasm_bpf, HostConfig};
use crate::event::{Control, Sink};

/// How long a guest that computes without blocking gets to end after a stop request.
pub const GRACE: Duration = Duration::from_secs(2);
/// Fuel per slice of guest execution: how often a computing guest is checked for a stop.
const FUEL_SLICE: u64 = 20_000_000;
/// Fuel a per-event callback may use. Callbacks run as plain calls (a resumable call per
/// event costs a third of the callback path in stack set-up): a callback that spins past this
/// budget traps instead of being sliced, so a stop waits at most for this much guest work.
const CALLBACK_FUEL: u64 = 1_000_000_000;

/// The guest was stopped by a stop request, not by a fault of its own.
#[derive(Debug)]
pub struct Interrupted(pub &'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl wasmi::errors::HostError for Interrupted {}

pub struct Host {
    pub memory: Option<Memory>,
    pub table: Option<Table>,
    pub wasi: wasi::WasiState,
    pub bpf: wasm_bpf::BpfState,
    pub ewasm: ewasm::EwasmState,
    pub control: Arc<Control>,
    pub sink: Box<dyn Sink>,
    pub config: HostConfig,
    pub limits: GuestLimits,
    /// Exports looked up once: TinyGo's `go-callback`, the env ABI's `process_event`/`malloc`.
    pub exports: HashMap<&'static str, Func>,
    /// EINTR was returned from a blocking call after the stop request.
    eintr_given: bool,
    /// The guest's stdout not yet passed to the sink: written out when the guest blocks,
    /// writes to stderr, fills [`OUT_BATCH`], uses up a fuel slice or ends. Line-buffered
    /// guests (stdout is a character device to them) make one `fd_write` per line; this keeps
    /// that from being one write(2) per line.
    out_pending: Vec<u8>,
    /// Why the sink refused output, once it did (the reader went away).
    out_error: Option<std::io::ErrorKind>,
}

/// The most guest stdout held before it is written.
pub const OUT_BATCH: usize = 64 << 10;

impl Host {
    pub fn new(
        wasi: wasi::WasiState,
        control: Arc<Control>,
        sink: Box<dyn Sink>,
        config: HostConfig,
        limits: GuestLimits,
    ) -> Host {
        Host {
            memory: None,
            table: None,
            wasi,
            bpf: wasm_bpf::BpfState::default(),
            ewasm: ewasm::EwasmState::default(),
            control,
            sink,
            config,
            limits,
            exports: HashMap::new(),
            eintr_given: false,
            out_pending: Vec::new(),
            out_error: None,
        }
    }

    /// Takes guest stdout; written at once when the batch is full. Err: the output is gone.
    pub fn write_stdout(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(k) = self.out_error {
            return Err(k.into());
        }
        self.out_pending.extend_from_slice(bytes);
        if self.out_pending.len() >= OUT_BATCH {
            self.flush_output()?;
        }
        Ok(())
    }

    /// Writes the guest's pending stdout to the sink.
    pub fn flush_output(&mut self) -> std::io::Result<()> {
        if self.out_pending.is_empty() {
            return Ok(());
        }
        let r = self
            .sink
            .write(crate::event::Stream::Out, &self.out_pending);
        self.out_pending.clear();
        if let Err(e) = &r {
            self.out_error = Some(e.kind());
        }
        r
    }

    /// Called first by every blocking host call. `Ok(true)`: go on and wait. `Ok(false)`: a
    /// stop was asked for; return EINTR. `Err`: the guest already had its EINTR and blocks
    /// again: it is interrupted.
    pub fn before_blocking(&mut self) -> Result<bool, Trap> {
        // What the guest printed goes out before it waits.
        let _ = self.flush_output();
        // A guest that waits for events or time has done its set-up: it is ready.
        self.control.set_ready();
        self.hold_while_paused();
        if !self.control.stop_requested() {
            return Ok(true);
        }
        if self.eintr_given {
            return Err(Trap::host(Interrupted(
                "it kept making blocking calls after the stop request",
            )));
        }
        self.eintr_given = true;
        Ok(false)
    }

    /// A blocking wait that a stop request cut short counts as the guest's EINTR.
    pub fn interrupted_wait(&mut self) {
        self.eintr_given = true;
    }

    /// Keeps a paused guest from running: its event maps are still read (and what they hold
    /// counted as dropped while paused), so the kernel's buffers do not fill up silently.
    pub fn hold_while_paused(&mut self) {
        while self.control.is_paused() && !self.control.stop_requested() {
            let mut any = false;
            for p in self.bpf.pipelines() {
                any = true;
                let _ = p.poll(Duration::from_millis(50), |_, _| {
                    ControlFlow::<()>::Continue(())
                });
            }
            if !any {
                self.control.wait_while_paused();
            }
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.flush_output();
    }
}

/// Calls a guest function, refueling in slices so a stop or pause request is seen even while
/// the guest computes; past the grace period after a stop the guest is interrupted.
pub fn call_guest(
    mut ctx: impl wasmi::AsContextMut<Data = Host>,
    func: &Func,
    args: &[Val],
    results: &mut [Val],
) -> Result<(), Trap> {
    let _ = ctx.as_context_mut().set_fuel(FUEL_SLICE);
    let mut call = func.call_resumable(ctx.as_context_mut(), args, results)?;
    loop {
        match call {
            ResumableCall::Finished => return Ok(()),
            ResumableCall::HostTrap(t) => return Err(t.into_host_error()),
            ResumableCall::OutOfFuel(c) => {
                let mut store = ctx.as_context_mut();
                let host = store.data_mut();
                let _ = host.flush_output();
                host.hold_while_paused();
                if host.control.stop_requested()
                    && host.control.stopping_for().is_some_and(|t| t > GRACE)
                {
                    return Err(Trap::host(Interrupted(
                        "it did not end within 2 s of the stop request",
                    )));
                }
                let _ = ctx.as_context_mut().set_fuel(FUEL_SLICE);
                call = c.resume(ctx.as_context_mut(), results)?;
            }
        }
    }
}

/// Calls a per-event guest callback `f(ctx, data, size) -> i32`.
pub fn call_callback(
    mut ctx: impl wasmi::AsContextMut<Data = Host>,
    f: &wasmi::TypedFunc<(i32, i32, i32), i32>,
    args: (i32, i32, i32),
) -> Result<i32, Trap> {
    let fuel = ctx.as_context().get_fuel().unwrap_or(0);
    let _ = ctx.as_context_mut().set_fuel(CALLBACK_FUEL);
    let r = f.call(ctx.as_context_mut(), args);
    // Give the interrupted outer call back what it had.
    let _ = ctx.as_context_mut().set_fuel(fuel.max(1));
    r.map_err(|e| {
        if e.as_trap_code() == Some(wasmi::TrapCode::OutOfFuel) {
            Trap::new(format!(
                "a callback ran past its budget of {CALLBACK_FUEL} fuel units (a runaway loop?)"
            ))
        } else {
            e
        }
    })
}

/// Says which guest function trapped (an exit or an interruption passes through as it is).
pub fn name_trap(e: Trap, function: &str) -> Trap {
    if e.i32_exit_status().is_some() || e.downcast_ref::<Interrupted>().is_some() {
        return e;
    }
    Trap::new(format!("in {function}: {e}"))
}
