// The harness of the wasm_host and wasm_host_kernel fuzz targets (included by both; each
// sets KERNEL). Every host function (WASI, wasm_bpf, callback-wrapper, env) is called with
// fuzzer-chosen pointers, lengths, handles and flags against guest memory that holds the
// fuzzer's bytes and, with KERNEL, a real BPF object and a real package.json, so that handles
// and map fds can be live. A host function may return an error or trap the guest, never
// panic or touch memory outside the guest's. Blocking calls return at once, and a whole run
// ends within 2 ms.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use edge_ecli::bpf::{AttachOptions, KernelBtf};
use edge_ecli::event::sink::{Sink, Stream};
use edge_ecli::event::Control;
use edge_ecli::wasm::{host::Host, wasi::WasiState, HostConfig};
use libfuzzer_sys::fuzz_target;
use wasmi::{Val, ValType};

/// (module, name, params, results) of every host function. A wrong or missing entry makes
/// instantiation fail, which the harness turns into a panic at its first run.
const FUNCS: &[(&str, &str, &str, &str)] = &[
    (
        "wasi_snapshot_preview1",
        "fd_write",
        "i32 i32 i32 i32",
        "i32",
    ),
    (
        "wasi_snapshot_preview1",
        "fd_read",
        "i32 i32 i32 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "fd_close", "i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "fd_seek",
        "i32 i64 i32 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "fd_fdstat_get", "i32 i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "fd_fdstat_set_flags",
        "i32 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "fd_prestat_get", "i32 i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "fd_prestat_dir_name",
        "i32 i32 i32",
        "i32",
    ),
    (
        "wasi_snapshot_preview1",
        "fd_filestat_get",
        "i32 i32",
        "i32",
    ),
    (
        "wasi_snapshot_preview1",
        "path_open",
        "i32 i32 i32 i32 i32 i64 i64 i32 i32",
        "i32",
    ),
    (
        "wasi_snapshot_preview1",
        "path_filestat_get",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "wasi_snapshot_preview1",
        "poll_oneoff",
        "i32 i32 i32 i32",
        "i32",
    ),
    (
        "wasi_snapshot_preview1",
        "clock_time_get",
        "i32 i64 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "clock_res_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "proc_exit", "i32", ""),
    ("wasi_snapshot_preview1", "sched_yield", "", "i32"),
    ("wasi_snapshot_preview1", "random_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "args_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "args_sizes_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "environ_get", "i32 i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "environ_sizes_get",
        "i32 i32",
        "i32",
    ),
    ("wasm_bpf", "wasm_load_bpf_object", "i32 i32", "i64"),
    ("wasm_bpf", "wasm_attach_bpf_program", "i64 i32 i32", "i32"),
    ("wasm_bpf", "wasm_bpf_map_fd_by_name", "i64 i32", "i32"),
    (
        "wasm_bpf",
        "wasm_bpf_map_operate",
        "i32 i32 i32 i32 i32 i64",
        "i32",
    ),
    (
        "wasm_bpf",
        "wasm_bpf_buffer_poll",
        "i64 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    ("wasm_bpf", "wasm_close_bpf_object", "i64", "i32"),
    (
        "callback-wrapper",
        "wasm_bpf_buffer_poll",
        "i64 i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "create_bpf", "i32 i32", "i32"),
    ("env", "run_bpf", "i32", "i32"),
    ("env", "wait_and_poll_bpf", "i32", "i32"),
];

const PAGES: u32 = 2;
const MEM: usize = PAGES as usize * 65536;
/// Where the fuzzer's bytes, the object and the package sit in guest memory.
const FUZZ_AT: usize = 0;
const FUZZ_MAX: usize = 16 << 10;
const OBJ_AT: usize = 32 << 10;
const PKG_AT: usize = 48 << 10;
const OBJECT: &[u8] = include_bytes!("../../examples/sigsnoop/sigsnoop.bpf.o");
const PACKAGE: &[u8] = include_bytes!("../../examples/sigsnoop/package.json");

fn module() -> &'static edge_ecli::wasm::Compiled {
    static M: OnceLock<edge_ecli::wasm::Compiled> = OnceLock::new();
    M.get_or_init(|| {
        assert!(OBJ_AT + OBJECT.len() <= PKG_AT && PKG_AT + PACKAGE.len() < MEM);
        let mut w = String::from("(module\n");
        for (i, (m, n, p, r)) in FUNCS.iter().enumerate() {
            let params = if p.is_empty() {
                String::new()
            } else {
                format!("(param {p})")
            };
            let results = if r.is_empty() {
                String::new()
            } else {
                format!("(result {r})")
            };
            w += &format!("(import \"{m}\" \"{n}\" (func $f{i} {params} {results}))\n");
            w += &format!("(export \"f{i}\" (func $f{i}))\n");
        }
        // A callback for the buffer polls (table slot 0, and TinyGo's go-callback), and
        // what the env ABI looks up.
        w += r#"(func $cb (param i32 i32 i32) (result i32) (i32.const 0))
            (func $cb4 (param i32 i32 i32 i32) (result i32) (i32.const 0))
            (func $malloc (param i32) (result i32) (i32.const 20000))
            (table (export "__indirect_function_table") 2 funcref)
            (elem (i32.const 0) $cb $cb4)
            (export "go-callback" (func $cb4))
            (export "process_event" (func $cb))
            (export "malloc" (func $malloc))
            (func (export "_start"))"#;
        w += &format!("(memory (export \"memory\") {PAGES} {PAGES}))");
        let bytes = wat::parse_str(&w).expect("the harness module");
        edge_ecli::wasm::compile(&bytes).expect("the harness module compiles")
    })
}

/// The part of this kernel's BTF the object needs, cut once: loads then read a few KiB
/// instead of cutting 6 MiB each time (nine tenths of the time otherwise).
fn kernel_btf() -> KernelBtf {
    static P: OnceLock<KernelBtf> = OnceLock::new();
    P.get_or_init(|| {
        use edge_ecli::btf::core::{core_needs, minimal_target, Needs};
        let o = edge_ecli::package::load(OBJECT.to_vec(), "sigsnoop.bpf.o").unwrap();
        let elf = edge_ecli::package::elf::Elf::parse(OBJECT).unwrap();
        let ext = elf
            .section(".BTF.ext")
            .map(|x| elf.section_data(x))
            .unwrap_or(&[]);
        let (Ok(Needs::Names(names)), Ok(vmlinux)) = (
            core_needs(&o.btf, ext),
            std::fs::read("/sys/kernel/btf/vmlinux"),
        ) else {
            return KernelBtf::default();
        };
        let cut = minimal_target(&vmlinux, &names).unwrap();
        let path = std::env::temp_dir().join("edge-ecli-fuzz-kernel.btf");
        std::fs::write(&path, cut).unwrap();
        KernelBtf::file(path.to_string_lossy().into_owned())
    })
    .clone()
}

struct Discard;
impl Sink for Discard {
    fn write(&mut self, _: Stream, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Values worth hitting exactly: the edges of memory, of the object and the package, fds.
fn interesting(i: u8) -> i64 {
    match i % 16 {
        0 => 0,
        1 => 1,
        2 => -1,
        3 => OBJ_AT as i64,
        4 => OBJECT.len() as i64,
        5 => PKG_AT as i64,
        6 => PACKAGE.len() as i64,
        7 => MEM as i64 - 1,
        8 => MEM as i64,
        9 => i32::MAX as i64,
        10 => i32::MIN as i64,
        11 => 3,
        12 => 1 << 20,
        13 => 48,
        14 => 1000,
        _ => 16,
    }
}

struct Input<'a>(&'a [u8]);
impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn raw(&mut self, n: usize) -> Option<i64> {
        let b = self.0.get(..n)?;
        self.0 = &self.0[n..];
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Some(i64::from_le_bytes(v))
    }
    fn val(&mut self, t: &ValType) -> Option<Val> {
        let tag = self.byte()?;
        let v = if tag < 0xc0 {
            interesting(tag)
        } else if *t == ValType::I64 {
            self.raw(8)?
        } else {
            self.raw(4)? as i32 as i64
        };
        Some(match t {
            ValType::I64 => Val::I64(v),
            _ => Val::I32(v as i32),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    static ONCE: Mutex<bool> = Mutex::new(false);
    {
        let mut done = ONCE.lock().unwrap();
        if !*done {
            // A guest reading stdin gets EOF, not a wait on the fuzzer's terminal.
            let null = std::fs::File::open("/dev/null").unwrap();
            // SAFETY: both fds are open; 0 is replaced atomically.
            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0) };
            *done = true;
        }
    }
    // Waits return at once; env's wait_and_poll_bpf polls until a stop by design, so a 2 ms
    // deadline is the stop (then blocking calls get EINTR, and the next one ends the guest,
    // as in a real run).
    let control = Arc::new(
        Control::new(Some(Duration::from_millis(2)))
            .unwrap()
            .limit_waits(Duration::ZERO),
    );
    let host = Host::new(
        WasiState::new(vec!["fuzz".into(), "-x".into()], vec!["K=V".into()]),
        control,
        Box::new(Discard),
        HostConfig {
            load: edge_ecli::bpf::LoadOptions {
                btf: if KERNEL { kernel_btf() } else { KernelBtf::default() },
                ..Default::default()
            },
            attach: AttachOptions::default(),
            event_type: None,
        },
        // The budget is memories and tables together: the memory, and room for the table.
        edge_ecli::wasm::limits::GuestLimits::new(MEM + (1 << 20)),
    );
    let (mut store, instance, _) = edge_ecli::wasm::instantiate_compiled(module(), host, &[])
        .expect("the harness module links");
    let memory = instance.get_memory(&store, "memory").unwrap();
    {
        let m = memory.data_mut(&mut store);
        let n = data.len().min(FUZZ_MAX);
        m[FUZZ_AT..FUZZ_AT + n].copy_from_slice(&data[..n]);
        if KERNEL {
            m[OBJ_AT..OBJ_AT + OBJECT.len()].copy_from_slice(OBJECT);
            m[PKG_AT..PKG_AT + PACKAGE.len()].copy_from_slice(PACKAGE);
        }
    }
    let mut input = Input(data);
    for _ in 0..32 {
        let Some(i) = input.byte() else { break };
        let i = i as usize % FUNCS.len();
        let f = instance.get_func(&store, &format!("f{i}")).unwrap();
        let ty = f.ty(&store);
        let Some(args) = ty
            .params()
            .iter()
            .map(|t| input.val(t))
            .collect::<Option<Vec<Val>>>()
        else {
            break;
        };
        let mut results: Vec<Val> = ty
            .results()
            .iter()
            .map(|t| Val::default_for_ty(*t))
            .collect();
        let _ = store.set_fuel(10_000_000);
        if f.call(&mut store, &args, &mut results).is_err() {
            // A trap (proc_exit, an interrupted guest) ends the guest, as it would.
            break;
        }
    }
    // Dropping the store closes whatever the calls created.
});
