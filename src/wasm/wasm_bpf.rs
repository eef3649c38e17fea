//! The `wasm_bpf` import module (the wasm-bpf ABI) and TinyGo's `callback-wrapper` variant.
//! Objects are loaded, attached and polled through the same `bpf` and `poll` code as packages.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::os::fd::RawFd;
use std::time::Duration;

use wasmi::{Caller, Error as Trap, Func, Linker};

use super::{call_callback, mem, name_trap, Host};
use crate::bpf::{self, rawmap, KernelBtf, Loaded};
use crate::meta::Object;
use crate::poll::{Epoll, EventMap};

const EINVAL: i32 = 22;
const ENOENT: i32 = 2;
const EBADF: i32 = 9;
const EINTR: i32 = 4;
const EFAULT: i32 = 14;

/// Largest object a guest may hand us.
const MAX_OBJECT: i32 = 64 << 20;

pub struct GuestObject {
    pub object: Object,
    pub loaded: Loaded,
    /// Event maps being polled, by fd, with their epoll set (the stop signal included).
    polled: HashMap<RawFd, (EventMap, Epoll)>,
    /// fd -> map name, for every map of the object (taken event maps included).
    fds: HashMap<RawFd, String>,
}

pub struct BpfState {
    pub objects: HashMap<u64, GuestObject>,
    next_id: u64,
    btf: KernelBtf,
}

impl BpfState {
    pub fn new(btf: KernelBtf) -> BpfState {
        BpfState {
            objects: HashMap::new(),
            next_id: 1,
            btf,
        }
    }

    /// The --btf file, when one was given.
    pub fn btf_file(&self) -> Option<String> {
        match &self.btf {
            KernelBtf::Sys => None,
            KernelBtf::File(f) => Some(f.clone()),
        }
    }

    fn btf_src(&self) -> KernelBtf {
        match &self.btf {
            KernelBtf::Sys => KernelBtf::Sys,
            KernelBtf::File(f) => KernelBtf::File(f.clone()),
        }
    }

    /// Loads an object (ELF bytes) into the kernel; returns its handle.
    pub fn load(&mut self, bytes: Vec<u8>, name: &str) -> crate::error::Result<u64> {
        let object = Object::parse(bytes, name)?;
        let loaded = bpf::load(&object, &[], self.btf_src())?;
        let fds = loaded
            .ebpf
            .maps()
            .filter_map(|(n, m)| rawmap::fd_of_any(m).map(|fd| (fd, n.to_string())))
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        self.objects.insert(
            id,
            GuestObject {
                object,
                loaded,
                polled: HashMap::new(),
                fds,
            },
        );
        Ok(id)
    }

    /// Is `fd` a map of one of the guest's objects? Guests may only operate on their own maps.
    fn owns_map(&self, fd: RawFd) -> bool {
        self.objects.values().any(|o| o.fds.contains_key(&fd))
    }
}

fn guest_str(c: &mut Caller<'_, Host>, ptr: i32) -> Option<String> {
    if ptr == 0 {
        return Some(String::new());
    }
    let (m, _) = mem::split(c);
    mem::cstr(m, ptr, 4096).map(str::to_string)
}

pub fn add_to_linker(linker: &mut Linker<Host>) -> Result<(), wasmi::Error> {
    const M: &str = "wasm_bpf";
    linker.func_wrap(M, "wasm_load_bpf_object", |mut c: Caller<'_, Host>, buf: i32, len: i32| -> i64 {
        if !(1..=MAX_OBJECT).contains(&len) {
            eprintln!("edge-ecli: wasm_load_bpf_object: bad object length {len}");
            return 0;
        }
        let (m, h) = mem::split(&mut c);
        let Some(bytes) = mem::slice(m, buf, len).map(<[u8]>::to_vec) else {
            eprintln!("edge-ecli: wasm_load_bpf_object: object at {buf:#x}+{len} lies outside guest memory");
            return 0;
        };
        match h.bpf.load(bytes, "wasm-object") {
            Ok(id) => id as i64,
            Err(e) => {
                // The loader's message reaches the user; the guest sees 0 as libbpf would NULL.
                eprintln!("edge-ecli: wasm_load_bpf_object: {e}");
                0
            }
        }
    })?;
    linker.func_wrap(
        M,
        "wasm_attach_bpf_program",
        |mut c: Caller<'_, Host>, obj: i64, name: i32, target: i32| -> i32 {
            let (Some(name), Some(target)) = (guest_str(&mut c, name), guest_str(&mut c, target))
            else {
                return -EFAULT;
            };
            let h = c.data_mut();
            let Some(o) = h.bpf.objects.get_mut(&(obj as u64)) else {
                return -ENOENT;
            };
            let Some(p) = o.object.meta.progs.iter().find(|p| p.name == name).cloned() else {
                eprintln!(
                    "edge-ecli: wasm_attach_bpf_program: no program named {name} in the object"
                );
                return -ENOENT;
            };
            match o.loaded.attach_one(&p, Some(&target)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("edge-ecli: {e}");
                    -EINVAL
                }
            }
        },
    )?;
    linker.func_wrap(
        M,
        "wasm_bpf_map_fd_by_name",
        |mut c: Caller<'_, Host>, obj: i64, name: i32| -> i32 {
            let Some(name) = guest_str(&mut c, name) else {
                return -EFAULT;
            };
            let h = c.data_mut();
            let Some(o) = h.bpf.objects.get(&(obj as u64)) else {
                return -ENOENT;
            };
            o.fds
                .iter()
                .find(|(_, n)| **n == name)
                .map_or(-ENOENT, |(fd, _)| *fd)
        },
    )?;
    linker.func_wrap(
        M,
        "wasm_bpf_map_operate",
        |mut c: Caller<'_, Host>,
         fd: i32,
         cmd: i32,
         key: i32,
         value: i32,
         next: i32,
         flags: i64|
         -> i32 { map_operate(&mut c, fd, cmd, key, value, next, flags as u64) },
    )?;
    linker.func_wrap(
        M,
        "wasm_bpf_buffer_poll",
        |mut c: Caller<'_, Host>, obj: i64, fd: i32, func: i32, ctx: i32, data: i32, max: i32, timeout: i32| -> Result<i32, Trap> {
            let Some(cb) = c.data().table.and_then(|t| t.get(&c, func as u32 as u64)).and_then(|r| r.as_func().and_then(|f| f.val().copied().copied())) else {
                eprintln!("edge-ecli: wasm_bpf_buffer_poll: callback {func} is not in __indirect_function_table (link with -Wl,--export-table)");
                return Ok(-EINVAL);
            };
            buffer_poll(&mut c, obj, fd, Callback::Table(cb), ctx, data, max, timeout)
        },
    )?;
    linker.func_wrap(
        M,
        "wasm_close_bpf_object",
        |mut c: Caller<'_, Host>, obj: i64| -> i32 {
            match c.data_mut().bpf.objects.remove(&(obj as u64)) {
                Some(o) => {
                    drop(o);
                    0
                }
                None => -ENOENT,
            }
        },
    )?;
    linker.func_wrap(
        "callback-wrapper",
        "wasm_bpf_buffer_poll",
        |mut c: Caller<'_, Host>, obj: i64, fd: i32, ctx: i32, data: i32, max: i32, timeout: i32| -> Result<i32, Trap> {
            let Some(cb) = c.data().exports.get("go-callback").copied() else {
                eprintln!("edge-ecli: callback-wrapper.wasm_bpf_buffer_poll: the module exports no go-callback");
                return Ok(-EINVAL);
            };
            buffer_poll(&mut c, obj, fd, Callback::Export(cb), ctx, data, max, timeout)
        },
    )?;
    Ok(())
}

fn map_operate(
    c: &mut Caller<'_, Host>,
    fd: i32,
    cmd: i32,
    key: i32,
    value: i32,
    next: i32,
    flags: u64,
) -> i32 {
    let (m, h) = mem::split(c);
    if !h.bpf.owns_map(fd) {
        return -EBADF;
    }
    let Ok((_, ks, vs)) = rawmap::info(fd) else {
        return -EBADF;
    };
    let (ks, vs) = (ks as i32, vs as i32);
    let res = match cmd {
        1 => {
            let Some(k) = mem::slice(m, key, ks).map(<[u8]>::to_vec) else {
                return -EFAULT;
            };
            let Some(v) = mem::slice_mut(m, value, vs) else {
                return -EFAULT;
            };
            rawmap::lookup(fd, &k, v)
        }
        2 => {
            let (Some(k), Some(v)) = (mem::slice(m, key, ks), mem::slice(m, value, vs)) else {
                return -EFAULT;
            };
            rawmap::update(fd, k, v, flags)
        }
        3 => {
            let Some(k) = mem::slice(m, key, ks) else {
                return -EFAULT;
            };
            rawmap::delete(fd, k)
        }
        4 => {
            // A NULL key asks for the first key.
            let k = if key == 0 {
                None
            } else {
                match mem::slice(m, key, ks) {
                    Some(k) => Some(k.to_vec()),
                    None => return -EFAULT,
                }
            };
            let Some(n) = mem::slice_mut(m, next, ks) else {
                return -EFAULT;
            };
            match rawmap::next_key(fd, k.as_deref(), n) {
                Ok(true) => Ok(()),
                Ok(false) => Err(std::io::Error::from_raw_os_error(libc::ENOENT)),
                Err(e) => Err(e),
            }
        }
        _ => return -EINVAL,
    };
    match res {
        Ok(()) => 0,
        Err(e) => -e.raw_os_error().unwrap_or(EINVAL),
    }
}

#[derive(Clone, Copy)]
enum Callback {
    /// A function of `__indirect_function_table` (C and Rust guests).
    Table(Func),
    /// TinyGo's exported `go-callback`.
    Export(Func),
}

/// Waits up to `timeout_ms` for samples of map `fd`, then copies each (truncated to `max`)
/// to `data` and calls the guest's callback with (ctx, data, size). Returns the number of
/// samples, the callback's first non-zero return, or a negative errno.
#[allow(clippy::too_many_arguments)]
fn buffer_poll(
    c: &mut Caller<'_, Host>,
    obj: i64,
    fd: i32,
    cb: Callback,
    ctx: i32,
    data: i32,
    max: i32,
    timeout_ms: i32,
) -> Result<i32, Trap> {
    let (m, h) = mem::split(c);
    if max <= 0 || mem::slice(m, data, max).is_none() {
        return Ok(-EFAULT);
    }
    if h.stop.requested() {
        return Ok(-EINTR);
    }
    let sig = h.stop.sig_fd();
    let Some(o) = h.bpf.objects.get_mut(&(obj as u64)) else {
        return Ok(-ENOENT);
    };
    if !o.polled.contains_key(&fd) {
        let Some(name) = o.fds.get(&fd).cloned() else {
            return Ok(-ENOENT);
        };
        // Only event maps can be polled: check before taking the map out of the object, so
        // its fd stays open and owned for map_operate.
        let event_map = matches!(
            o.loaded.ebpf.map(&name),
            Some(aya::maps::Map::RingBuf(_) | aya::maps::Map::PerfEventArray(_))
        );
        if !event_map {
            return Ok(-EINVAL);
        }
        let Some(map) = o.loaded.take_map(&name) else {
            return Ok(-ENOENT);
        };
        let opened =
            EventMap::open(&name, map, o.object.meta.tunables.perf_buffer_pages).and_then(|em| {
                let ep = Epoll::new()?;
                for (i, f) in em.fds().into_iter().enumerate() {
                    ep.add(f, i as u64)?;
                }
                ep.add(sig, u64::MAX)?;
                Ok((em, ep))
            });
        match opened {
            Ok(p) => {
                o.polled.insert(fd, p);
            }
            Err(e) => {
                eprintln!("edge-ecli: wasm_bpf_buffer_poll: {e}");
                return Ok(-EINVAL);
            }
        }
    }
    // Take the buffers out of the host state while guest code runs (it needs &mut Host).
    let (mut em, mut ep) = o.polled.remove(&fd).expect("inserted above");
    let wait = h.stop.cap(Duration::from_millis(timeout_ms.max(0) as u64));
    let ready: Vec<u64> = match ep.wait(wait) {
        Ok(it) => it.collect(),
        Err(_) => vec![],
    };
    let (f, label) = match cb {
        Callback::Table(f) => (f, "the buffer callback (from __indirect_function_table)"),
        Callback::Export(f) => (f, "go-callback"),
    };
    let typed = match f.typed::<(i32, i32, i32), i32>(&*c) {
        Ok(t) => t,
        Err(_) => {
            if let Some(o) = c.data_mut().bpf.objects.get_mut(&(obj as u64)) {
                o.polled.insert(fd, (em, ep));
            }
            eprintln!(
                "edge-ecli: wasm_bpf_buffer_poll: the callback is not (i32, i32, i32) -> i32"
            );
            return Ok(-EINVAL);
        }
    };
    let mut result: Result<i32, Trap> = Ok(0);
    if ready.contains(&u64::MAX) && c.data_mut().stop.requested() {
        result = Ok(-EINTR);
    } else {
        let mut count = 0i32;
        let mut handled = 0u32;
        for i in 0..em.len() {
            let (n, brk) = em.drain(i, |sample| {
                // A producer that never pauses (or a guest tracing its own writes) must not
                // keep us here past a stop request.
                handled += 1;
                if handled % 256 == 0 && c.data_mut().stop.requested() {
                    return ControlFlow::Break(Ok(-EINTR));
                }
                let (m, _) = mem::split(c);
                let n = sample.len().min(max as usize);
                m[data as u32 as usize..data as u32 as usize + n].copy_from_slice(&sample[..n]);
                match call_callback(&mut *c, &typed, (ctx, data, sample.len() as i32)) {
                    Ok(0) => ControlFlow::Continue(()),
                    Ok(r) => ControlFlow::Break(Ok(r)),
                    Err(e) => ControlFlow::Break(Err(name_trap(e, label))),
                }
            });
            count = count.saturating_add(n as i32);
            if let Some(b) = brk {
                // The sample that broke was handed over; the callback's verdict is returned.
                result = b;
                break;
            }
            result = Ok(count);
        }
    }
    if let Some(o) = c.data_mut().bpf.objects.get_mut(&(obj as u64)) {
        o.polled.insert(fd, (em, ep));
    }
    result
}
