//! Running Wasm eBPF apps on wasmi. One module per ABI, each a table of host functions over one
//! shared [`host::Host`]: `wasi` (preview1), `wasm_bpf` (wasm-bpf, plus TinyGo's
//! callback-wrapper) and `ewasm` (the seed article's `env` ABI). Guests drive the same loader
//! (`bpf`) and event pipeline (`event::pipeline`) as packages; a guest's output goes to the
//! instance's sink.

pub mod ewasm;
pub mod host;
pub mod inspect;
pub mod limits;
pub mod mem;
pub mod wasi;
pub mod wasm_bpf;

use std::sync::Arc;

use wasmi::{CompilationMode, Config, Engine, Linker, Module, Store};

use crate::bpf::AttachOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Control, Sink};
use host::{call_guest, Host, Interrupted};

/// What a Wasm guest may see of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmOptions {
    /// Environment variables `K=V` (none by default).
    pub env: Vec<String>,
    /// Host directories granted, as (host path, the name the guest sees).
    pub dirs: Vec<(String, String)>,
    /// Cap on all of the guest's linear memories and tables together, in bytes.
    pub max_memory: usize,
}

pub const DEFAULT_MAX_MEMORY: usize = 256 << 20;

impl Default for WasmOptions {
    fn default() -> Self {
        WasmOptions {
            env: Vec::new(),
            dirs: Vec::new(),
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

/// What the host functions need of the instance's options.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Kernel BTF, pin directory and map sizes of the objects the guest loads.
    pub load: crate::bpf::LoadOptions,
    pub attach: AttachOptions,
    /// `--event-type`, for env-ABI packages.
    pub event_type: Option<String>,
}

/// Whether the linker defines `module.name`. (wasmi's `Linker::get` does not report host
/// functions; defining a placeholder fails exactly when the name is taken. The placeholder is
/// harmless: a module with any unknown import is refused before instantiation.)
fn provided(module: &str, name: &str, linker: &mut Linker<Host>) -> bool {
    linker.func_wrap(module, name, || {}).is_err()
}

/// Runs a guest to its end; its exit code (0 when a stop request had to interrupt it).
pub fn run(
    bytes: &[u8],
    name: &str,
    args: Vec<String>,
    wasm: &WasmOptions,
    config: HostConfig,
    sink: Box<dyn Sink>,
    control: Arc<Control>,
) -> Result<i32> {
    let argv: Vec<String> = std::iter::once(name.to_string()).chain(args).collect();
    let host = Host::new(
        wasi::WasiState::new(argv.clone(), wasm.env.clone()),
        control,
        sink,
        config,
        limits::GuestLimits::new(wasm.max_memory),
    );
    let (mut store, instance, entry) = instantiate_compiled(&compile(bytes)?, host, &wasm.dirs)?;
    let outcome = if entry == "bpf_main" {
        ewasm::call_bpf_main(&mut store, &instance, &argv)
    } else {
        let start = instance
            .get_func(&store, "_start")
            .ok_or_else(|| Error::invalid("no _start"))?;
        call_guest(&mut store, &start, &[], &mut []).map(|()| 0)
    };
    // Everything the guest printed is out before any note about how it ended.
    let _ = store.data_mut().flush_output();
    let code = match outcome {
        Ok(code) => Ok(code),
        Err(e) => match (e.i32_exit_status(), e.downcast_ref::<Interrupted>()) {
            (Some(code), _) => Ok(code),
            (None, Some(why)) => {
                store
                    .data_mut()
                    .sink
                    .note(&format!("stopped the guest by force: {why}"));
                Ok(0)
            }
            (None, None) => Err(Error::invalid(format!("the guest trapped in {entry}: {e}"))),
        },
    };
    // Dropping the store releases every kernel object the guest created.
    drop(store);
    code
}

/// A validated module, the engine it was compiled for and its entry point.
#[doc(hidden)]
pub struct Compiled {
    engine: Engine,
    module: Module,
    entry: &'static str,
}

/// Validates and compiles (lazily) a module; finds its entry point (`_start`, or the env
/// ABI's `bpf_main`).
#[doc(hidden)]
pub fn compile(bytes: &[u8]) -> Result<Compiled> {
    let mut engine_config = Config::default();
    engine_config.consume_fuel(true);
    engine_config.compilation_mode(CompilationMode::Lazy);
    let engine = Engine::new(&engine_config);
    let module = Module::new(&engine, bytes)
        .map_err(|e| Error::invalid(format!("invalid Wasm module: {e}")))?;
    let entry = if module.exports().any(|e| e.name() == "bpf_main") {
        "bpf_main"
    } else if module.exports().any(|e| e.name() == "_start") {
        "_start"
    } else {
        return Err(Error::invalid(
            "the module exports neither _start nor bpf_main: build it as a WASI command (e.g. clang --target=wasm32-wasi, cargo --target wasm32-wasip1)",
        ));
    };
    Ok(Compiled {
        engine,
        module,
        entry,
    })
}

/// Instantiates a compiled module with every ABI linked. Public for the host ABI's fuzz
/// target, which calls the host functions through a module that re-exports them, compiled
/// once for all its runs.
#[doc(hidden)]
pub fn instantiate_compiled(
    compiled: &Compiled,
    mut host: Host,
    dirs: &[(String, String)],
) -> Result<(Store<Host>, wasmi::Instance, &'static str)> {
    let Compiled {
        engine,
        module,
        entry,
    } = compiled;
    for (host_dir, guest) in dirs {
        host.wasi
            .preopen(host_dir, guest)
            .map_err(|e| Error::new(ErrorKind::Usage, format!("--dir {host_dir}: {e}")))?;
    }
    let mut store = Store::new(engine, host);
    store.limiter(|h| &mut h.limits);
    let mut linker = Linker::<Host>::new(engine);
    wasi::add_to_linker(&mut linker).map_err(|e| Error::msg(e.to_string()))?;
    wasm_bpf::add_to_linker(&mut linker).map_err(|e| Error::msg(e.to_string()))?;
    ewasm::add_to_linker(&mut linker).map_err(|e| Error::msg(e.to_string()))?;
    let unknown: Vec<String> = module
        .imports()
        .filter(|i| !provided(i.module(), i.name(), &mut linker))
        .map(|i| format!("{}.{}", i.module(), i.name()))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::invalid(format!(
            "the module imports functions edge-ecli does not provide: {} (provided: wasi_snapshot_preview1, wasm_bpf, callback-wrapper, env.create_bpf/run_bpf/wait_and_poll_bpf)",
            unknown.join(", ")
        )));
    }
    // A module's start function runs inside instantiation: it needs fuel too.
    let _ = store.set_fuel(20_000_000);
    let instance = linker
        .instantiate_and_start(&mut store, module)
        .map_err(|e| Error::invalid(format!("instantiating the module: {e}")))?;
    let memory = instance
        .get_memory(&store, "memory")
        .ok_or_else(|| Error::invalid("the module exports no memory named \"memory\""))?;
    store.data_mut().memory = Some(memory);
    store.data_mut().table = instance.get_table(&store, "__indirect_function_table");
    for name in ["go-callback", "process_event", "malloc", "_initialize"] {
        if let Some(f) = instance.get_func(&store, name) {
            store.data_mut().exports.insert(name, f);
        }
    }
    Ok((store, instance, *entry))
}
