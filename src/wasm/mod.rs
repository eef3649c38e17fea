//! Running Wasm eBPF apps on wasmi. One module per ABI, each a table of host functions over one
//! shared `Host`: `wasi` (preview1), `wasm_bpf` (wasm-bpf, plus TinyGo's callback-wrapper) and
//! `ewasm` (the seed article's `env` ABI). The guests drive the same loader (`bpf`) and event
//! buffers (`poll`) as the JSON path.

pub mod ewasm;
pub mod mem;
pub mod wasi;
pub mod wasm_bpf;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wasmi::{
    CompilationMode, Config, Engine, Error as Trap, Func, Linker, Memory, Module, ResumableCall,
    Store, StoreLimits, StoreLimitsBuilder, Table, Val,
};

use crate::bpf::KernelBtf;
use crate::error::{Error, Result};
use crate::poll::{Epoll, SignalFd};

pub struct WasmOptions {
    pub name: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// (host directory, name the guest sees)
    pub dirs: Vec<(String, String)>,
    pub max_memory: usize,
    pub timeout: Option<f64>,
    pub btf: Option<String>,
}

/// How long a guest gets to end by itself after Ctrl-C, SIGTERM or --timeout.
const GRACE: Duration = Duration::from_secs(2);
/// Fuel per slice of guest execution: how often a spinning guest is checked for a stop.
const FUEL_SLICE: u64 = 20_000_000;

/// Stop requests: signals and the deadline. Blocking host calls wait on it.
pub struct Stop {
    sig: SignalFd,
    epoll: Epoll,
    deadline: Option<Instant>,
    requested: Option<Instant>,
}

impl Stop {
    fn new(timeout: Option<f64>) -> Result<Stop> {
        let sig = SignalFd::new()?;
        let epoll = Epoll::new()?;
        epoll.add(sig.fd, 0)?;
        Ok(Stop {
            sig,
            epoll,
            deadline: timeout.map(|t| Instant::now() + Duration::from_secs_f64(t)),
            requested: None,
        })
    }

    /// True once a stop was asked for (checks the signalfd and the deadline).
    pub fn requested(&mut self) -> bool {
        if self.requested.is_none()
            && (self.sig.pending() || self.deadline.is_some_and(|d| Instant::now() >= d))
        {
            self.requested = Some(Instant::now());
        }
        self.requested.is_some()
    }

    /// Time left before the deadline, capped at `d`.
    pub fn cap(&self, d: Duration) -> Duration {
        match self.deadline {
            Some(dl) => d.min(dl.saturating_duration_since(Instant::now())),
            None => d,
        }
    }

    /// Sleeps `d` unless a stop comes first; false when interrupted.
    pub fn sleep(&mut self, d: Duration) -> bool {
        if self.requested() {
            return false;
        }
        let end = Instant::now() + d;
        loop {
            let now = Instant::now();
            if now >= end {
                return true;
            }
            let wait = self.cap(end - now);
            let woke = self
                .epoll
                .wait(wait)
                .map(|mut it| it.next().is_some())
                .unwrap_or(false);
            if woke || self.requested() {
                return !self.requested();
            }
        }
    }

    /// Waits until `fd` is readable; false when a stop request comes first.
    pub fn wait_readable(&mut self, fd: i32) -> bool {
        loop {
            if self.requested() {
                return false;
            }
            let mut fds = [
                libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.sig.fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ms = self.cap(Duration::from_secs(1)).as_millis() as i32;
            // SAFETY: fds is a valid array of two pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if n > 0 && fds[0].revents != 0 {
                return true;
            }
        }
    }

    pub fn sig_fd(&self) -> i32 {
        self.sig.fd
    }

    fn overdue(&self) -> bool {
        self.requested.is_some_and(|t| t.elapsed() > GRACE)
    }
}

/// The state every host function works on.
pub struct Host {
    pub memory: Option<Memory>,
    pub table: Option<Table>,
    pub wasi: wasi::WasiState,
    pub bpf: wasm_bpf::BpfState,
    pub ewasm: ewasm::EwasmState,
    pub stop: Stop,
    limits: StoreLimits,
    /// Exports looked up once: TinyGo's `go-callback`, the env ABI's `process_event`/`malloc`.
    pub exports: HashMap<&'static str, Func>,
}

/// Calls a guest function, refueling in slices so a stop request is seen even while the guest
/// spins; past the grace period the call is abandoned.
pub fn call_guest(
    mut ctx: impl wasmi::AsContextMut<Data = Host>,
    func: &Func,
    args: &[Val],
    results: &mut [Val],
) -> std::result::Result<(), Trap> {
    let _ = ctx.as_context_mut().set_fuel(FUEL_SLICE);
    let mut call = func.call_resumable(ctx.as_context_mut(), args, results)?;
    loop {
        match call {
            ResumableCall::Finished => return Ok(()),
            ResumableCall::HostTrap(t) => return Err(t.into_host_error()),
            ResumableCall::OutOfFuel(c) => {
                let mut host = ctx.as_context_mut();
                let stop = &mut host.data_mut().stop;
                stop.requested();
                if stop.overdue() {
                    return Err(Trap::new(format!(
                        "interrupted: the guest did not stop within {} s of the stop request",
                        GRACE.as_secs()
                    )));
                }
                let _ = ctx.as_context_mut().set_fuel(FUEL_SLICE);
                call = c.resume(ctx.as_context_mut(), results)?;
            }
        }
    }
}

/// Fuel a per-event callback may use. Callbacks run as plain calls (a resumable call per event
/// costs a third of the callback path in stack set-up): a callback that spins past this budget
/// traps instead of being sliced, so a stop request waits at most for this much guest work.
const CALLBACK_FUEL: u64 = 1_000_000_000;

/// Calls a per-event guest callback `f(ctx, data, size) -> i32`.
pub fn call_callback(
    mut ctx: impl wasmi::AsContextMut<Data = Host>,
    f: &wasmi::TypedFunc<(i32, i32, i32), i32>,
    args: (i32, i32, i32),
) -> std::result::Result<i32, Trap> {
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

/// Says which guest function trapped (an exit request passes through as it is).
pub fn name_trap(e: Trap, function: &str) -> Trap {
    if e.i32_exit_status().is_some() {
        return e;
    }
    Trap::new(format!("in {function}: {e}"))
}

/// Whether the linker defines `module.name`. (wasmi's `Linker::get` does not report host
/// functions; defining a placeholder fails exactly when the name is taken. The placeholder is
/// harmless: a module with any unknown import is refused before instantiation.)
fn provided(module: &str, name: &str, linker: &mut Linker<Host>) -> bool {
    linker.func_wrap(module, name, || {}).is_err()
}

pub fn run(bytes: &[u8], opts: WasmOptions) -> Result<i32> {
    let stop = Stop::new(opts.timeout)?;
    let mut config = Config::default();
    config.consume_fuel(true);
    config.compilation_mode(CompilationMode::Lazy);
    let engine = Engine::new(&config);
    let module =
        Module::new(&engine, bytes).map_err(|e| Error::msg(format!("invalid Wasm module: {e}")))?;

    let entry = if module.exports().any(|e| e.name() == "bpf_main") {
        "bpf_main"
    } else if module.exports().any(|e| e.name() == "_start") {
        "_start"
    } else {
        return Err(Error::msg(
            "the module exports neither _start nor bpf_main: build it as a WASI command (e.g. clang --target=wasm32-wasi, cargo --target wasm32-wasip1)",
        ));
    };

    let mut wasi = wasi::WasiState::new(
        std::iter::once(opts.name.clone())
            .chain(opts.args.clone())
            .collect(),
        opts.env.clone(),
    );
    for (host, guest) in &opts.dirs {
        wasi.preopen(host, guest)
            .map_err(|e| Error::msg(format!("--dir {host}: {e}")))?;
    }
    let host = Host {
        memory: None,
        table: None,
        wasi,
        bpf: wasm_bpf::BpfState::new(opts.btf.clone().map_or(KernelBtf::Sys, KernelBtf::File)),
        ewasm: ewasm::EwasmState::default(),
        stop,
        limits: StoreLimitsBuilder::new()
            .memory_size(opts.max_memory)
            .build(),
        exports: HashMap::new(),
    };
    let mut store = Store::new(&engine, host);
    store.limiter(|h| &mut h.limits);
    let mut linker = Linker::<Host>::new(&engine);
    wasi::add_to_linker(&mut linker).map_err(|e| Error::msg(e.to_string()))?;
    wasm_bpf::add_to_linker(&mut linker).map_err(|e| Error::msg(e.to_string()))?;
    ewasm::add_to_linker(&mut linker).map_err(|e| Error::msg(e.to_string()))?;

    let unknown: Vec<String> = module
        .imports()
        .filter(|i| !provided(i.module(), i.name(), &mut linker))
        .map(|i| format!("{}.{}", i.module(), i.name()))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::msg(format!(
            "the module imports functions edge-ecli does not provide: {} (provided: wasi_snapshot_preview1, wasm_bpf, callback-wrapper, env.create_bpf/run_bpf/wait_and_poll_bpf)",
            unknown.join(", ")
        )));
    }
    // A module's start function runs inside instantiation: it needs fuel too.
    let _ = store.set_fuel(FUEL_SLICE);
    let instance = linker
        .instantiate_and_start(&mut store, &module)
        .map_err(|e| Error::msg(format!("instantiating the module: {e}")))?;
    let memory = instance
        .get_memory(&store, "memory")
        .ok_or_else(|| Error::msg("the module exports no memory named \"memory\""))?;
    store.data_mut().memory = Some(memory);
    store.data_mut().table = instance.get_table(&store, "__indirect_function_table");
    for name in ["go-callback", "process_event", "malloc", "_initialize"] {
        if let Some(f) = instance.get_func(&store, name) {
            store.data_mut().exports.insert(name, f);
        }
    }

    let outcome = if entry == "bpf_main" {
        ewasm::call_bpf_main(&mut store, &instance, &opts)
    } else {
        let start = instance
            .get_func(&store, "_start")
            .ok_or_else(|| Error::msg("no _start"))?;
        call_guest(&mut store, &start, &[], &mut []).map(|()| 0)
    };
    let code = match outcome {
        Ok(code) => Ok(code),
        Err(e) => match e.i32_exit_status() {
            Some(code) => Ok(code),
            None => Err(Error::msg(format!("the guest trapped in {entry}: {e}"))),
        },
    };
    // Dropping the store releases every kernel object the guest created.
    drop(store);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_sleep_times_out_and_honours_deadline() {
        let mut s = Stop::new(Some(0.05)).unwrap();
        let t0 = Instant::now();
        assert!(
            !s.sleep(Duration::from_secs(5)),
            "the deadline interrupts a long sleep"
        );
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(s.requested());
    }
}
