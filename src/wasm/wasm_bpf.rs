//! The `wasm_bpf` import module (the wasm-bpf ABI) and TinyGo's `callback-wrapper` variant.
//! Objects are loaded and attached through the same loader as packages, and polled through the
//! same event pipeline: one pipeline per polled map, since a guest polls one map at a time.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use wasmi::{Caller, Error as Trap, Func, Linker};

use super::host::{call_callback, name_trap, Host};
use super::mem;
use crate::bpf::sys::{KernelMap, MapOps};
use crate::bpf::{self, section, Loaded};
use crate::event::{Control, Pipeline};
use crate::package::Object;

const EINVAL: i32 = 22;
const ENOENT: i32 = 2;
const EBADF: i32 = 9;
const EINTR: i32 = 4;
const EFAULT: i32 = 14;

/// Largest object a guest may hand us.
const MAX_OBJECT: i32 = 64 << 20;

// wasm_bpf_map_operate commands (libbpf's bpf_map_*_elem).
const MAP_LOOKUP: i32 = 1;
const MAP_UPDATE: i32 = 2;
const MAP_DELETE: i32 = 3;
const MAP_NEXT_KEY: i32 = 4;

pub struct GuestObject {
    pub object: Object,
    pub loaded: Loaded,
    /// Event maps being polled, by fd.
    polled: HashMap<RawFd, Pipeline>,
    /// fd -> (map name, element access), for every map of the object.
    maps: HashMap<RawFd, (String, Box<dyn MapOps>)>,
}

#[derive(Default)]
pub struct BpfState {
    pub objects: HashMap<u64, GuestObject>,
    next_id: u64,
}

impl BpfState {
    /// Loads an object (ELF bytes) into the kernel; returns its handle.
    pub fn load(
        &mut self,
        bytes: Vec<u8>,
        name: &str,
        opts: &bpf::LoadOptions,
        control: &Arc<Control>,
    ) -> crate::error::Result<u64> {
        let object = Object::parse(bytes, name)?;
        // A guest may load several objects: each takes the `--map` sizes of its own maps.
        let mut opts = opts.clone();
        opts.map_sizes
            .retain(|s| object.meta.maps.iter().any(|m| m.name == s.map));
        let mut loaded = bpf::load(&object, &[], &opts)?;
        let mut maps: HashMap<RawFd, (String, Box<dyn MapOps>)> = HashMap::new();
        for (n, fd) in loaded.map_fds() {
            if let Ok(m) = KernelMap::new(fd) {
                maps.insert(fd, (n, Box::new(m)));
            }
        }
        // Every event map's buffers are open before the guest can attach a program: a perf
        // event array drops what is emitted on a CPU whose buffer is not open yet, and a
        // guest opens its buffers only when it first polls.
        let mut polled = HashMap::new();
        for (fd, (n, _)) in &maps {
            if loaded.is_event_map(n) {
                let bufs = loaded.event_buffers(n, object.meta.tunables.perf_buffer_pages)?;
                let mut p = Pipeline::new(control.clone())?;
                p.add(bufs)?;
                polled.insert(*fd, p);
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        self.objects.insert(
            id,
            GuestObject {
                object,
                loaded,
                polled,
                maps,
            },
        );
        Ok(id)
    }

    /// The map behind `fd`, if it belongs to one of the guest's objects: guests may only
    /// operate on their own maps.
    fn map(&self, fd: RawFd) -> Option<&dyn MapOps> {
        self.objects
            .values()
            .find_map(|o| o.maps.get(&fd).map(|(_, m)| m.as_ref()))
    }

    /// Every pipeline being polled (a paused guest's maps are still drained).
    pub fn pipelines(&mut self) -> impl Iterator<Item = &mut Pipeline> {
        self.objects
            .values_mut()
            .flat_map(|o| o.polled.values_mut())
    }
}

fn guest_str(c: &mut Caller<'_, Host>, ptr: i32) -> Option<String> {
    if ptr == 0 {
        return Some(String::new());
    }
    let (m, _) = mem::split(c);
    mem::cstr(m, ptr, 4096).map(str::to_string)
}

fn load_object(c: &mut Caller<'_, Host>, buf: i32, len: i32) -> i64 {
    if !(1..=MAX_OBJECT).contains(&len) {
        c.data_mut()
            .sink
            .note(&format!("wasm_load_bpf_object: bad object length {len}"));
        return 0;
    }
    let (m, h) = mem::split(c);
    let Some(bytes) = mem::slice(m, buf, len).map(<[u8]>::to_vec) else {
        h.sink.note(&format!(
            "wasm_load_bpf_object: object at {buf:#x}+{len} lies outside guest memory"
        ));
        return 0;
    };
    let opts = h.config.load.clone();
    let control = h.control.clone();
    match h.bpf.load(bytes, "wasm-object", &opts, &control) {
        Ok(id) => id as i64,
        Err(e) => {
            // The loader's message reaches the user; the guest sees 0 as libbpf would NULL.
            h.sink.note(&format!("wasm_load_bpf_object: {e}"));
            0
        }
    }
}

fn attach_program(c: &mut Caller<'_, Host>, obj: i64, name: i32, target: i32) -> i32 {
    let (Some(name), Some(target)) = (guest_str(c, name), guest_str(c, target)) else {
        return -EFAULT;
    };
    let h = c.data_mut();
    let Some(o) = h.bpf.objects.get_mut(&(obj as u64)) else {
        return -ENOENT;
    };
    let Some(p) = o.object.meta.progs.iter().find(|p| p.name == name).cloned() else {
        h.sink.note(&format!(
            "wasm_attach_bpf_program: no program named {name} in the object"
        ));
        return -ENOENT;
    };
    let opts = match section::Section::parse(&p.section) {
        Ok(sec) => h.config.attach.with_target(&sec, &target),
        Err(_) => h.config.attach.clone(),
    };
    match o.loaded.attach_one(&p, &opts) {
        Ok(()) => 0,
        Err(e) => {
            h.sink.note(&e.to_string());
            -EINVAL
        }
    }
}

pub fn add_to_linker(linker: &mut Linker<Host>) -> Result<(), wasmi::Error> {
    const M: &str = "wasm_bpf";
    linker.func_wrap(
        M,
        "wasm_load_bpf_object",
        |mut c: Caller<'_, Host>, buf: i32, len: i32| -> i64 { load_object(&mut c, buf, len) },
    )?;
    linker.func_wrap(
        M,
        "wasm_attach_bpf_program",
        |mut c: Caller<'_, Host>, obj: i64, name: i32, target: i32| -> i32 {
            attach_program(&mut c, obj, name, target)
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
            o.maps
                .iter()
                .find(|(_, (n, _))| *n == name)
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
                c.data_mut().sink.note(&format!("wasm_bpf_buffer_poll: callback {func} is not in __indirect_function_table (link with -Wl,--export-table)"));
                return Ok(-EINVAL);
            };
            let poll = Poll { obj, fd, ctx, data, max, timeout_ms: timeout };
            buffer_poll(&mut c, poll, cb, "the buffer callback (from __indirect_function_table)")
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
        |mut c: Caller<'_, Host>,
         obj: i64,
         fd: i32,
         ctx: i32,
         data: i32,
         max: i32,
         timeout: i32|
         -> Result<i32, Trap> {
            let Some(cb) = c.data().exports.get("go-callback").copied() else {
                c.data_mut().sink.note(
                    "callback-wrapper.wasm_bpf_buffer_poll: the module exports no go-callback",
                );
                return Ok(-EINVAL);
            };
            let poll = Poll {
                obj,
                fd,
                ctx,
                data,
                max,
                timeout_ms: timeout,
            };
            buffer_poll(&mut c, poll, cb, "go-callback")
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
    let Some(map) = h.bpf.map(fd) else {
        return -EBADF;
    };
    let Ok(info) = map.info() else {
        return -EBADF;
    };
    let (ks, vs) = (info.key_size as i32, info.value_size as i32);
    let res = match cmd {
        MAP_LOOKUP => {
            let Some(k) = mem::slice(m, key, ks).map(<[u8]>::to_vec) else {
                return -EFAULT;
            };
            let Some(v) = mem::slice_mut(m, value, vs) else {
                return -EFAULT;
            };
            map.lookup(&k, v)
        }
        MAP_UPDATE => {
            let (Some(k), Some(v)) = (mem::slice(m, key, ks), mem::slice(m, value, vs)) else {
                return -EFAULT;
            };
            map.update(k, v, flags)
        }
        MAP_DELETE => {
            let Some(k) = mem::slice(m, key, ks) else {
                return -EFAULT;
            };
            map.delete(k)
        }
        MAP_NEXT_KEY => {
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
            match map.next_key(k.as_deref(), n) {
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

/// The arguments of one buffer poll.
struct Poll {
    obj: i64,
    fd: i32,
    ctx: i32,
    data: i32,
    max: i32,
    timeout_ms: i32,
}

/// The pipeline of event map `fd` of object `obj` (made at load), taken out while polled.
fn pipeline_of(h: &mut Host, obj: u64, fd: RawFd) -> Result<Pipeline, i32> {
    let Some(o) = h.bpf.objects.get_mut(&obj) else {
        return Err(-ENOENT);
    };
    if let Some(p) = o.polled.remove(&fd) {
        return Ok(p);
    }
    // Not an event map, or not one of this object's maps.
    Err(if o.maps.contains_key(&fd) {
        -EINVAL
    } else {
        -ENOENT
    })
}

/// Waits up to `timeout_ms` for samples of map `fd`, then copies each (truncated to `max`)
/// to `data` and calls the guest's callback with (ctx, data, size). Returns the number of
/// samples, the callback's first non-zero return, or a negative errno.
fn buffer_poll(c: &mut Caller<'_, Host>, a: Poll, cb: Func, label: &str) -> Result<i32, Trap> {
    let (m, h) = mem::split(c);
    if a.max <= 0 || mem::slice(m, a.data, a.max).is_none() {
        return Ok(-EFAULT);
    }
    if !h.before_blocking()? {
        return Ok(-EINTR);
    }
    let Ok(typed) = cb.typed::<(i32, i32, i32), i32>(&*c) else {
        c.data_mut()
            .sink
            .note("wasm_bpf_buffer_poll: the callback is not (i32, i32, i32) -> i32");
        return Ok(-EINVAL);
    };
    let mut pipeline = match pipeline_of(c.data_mut(), a.obj as u64, a.fd) {
        Ok(p) => p,
        Err(e) => return Ok(e),
    };
    // The pipeline is out of the host state while guest code runs (that needs &mut Host).
    let timeout = Duration::from_millis(a.timeout_ms.max(0) as u64);
    let data = a.data as u32 as usize;
    let polled = pipeline.poll(timeout, |_, sample| {
        let (m, _) = mem::split(c);
        let n = sample.len().min(a.max as usize);
        m[data..data + n].copy_from_slice(&sample[..n]);
        match call_callback(&mut *c, &typed, (a.ctx, a.data, sample.len() as i32)) {
            Ok(0) => ControlFlow::Continue(()),
            Ok(r) => ControlFlow::Break(Ok(r)),
            Err(e) => ControlFlow::Break(Err(name_trap(e, label))),
        }
    });
    let h = c.data_mut();
    if let Some(o) = h.bpf.objects.get_mut(&(a.obj as u64)) {
        o.polled.insert(a.fd, pipeline);
    }
    let polled = match polled {
        Ok(p) => p,
        Err(e) => {
            h.sink.note(&format!("wasm_bpf_buffer_poll: {e}"));
            return Ok(-EINVAL);
        }
    };
    match polled.broke {
        // The callback's verdict, or its trap.
        Some(r) => r,
        None if polled.stop && polled.records == 0 => {
            h.interrupted_wait();
            Ok(-EINTR)
        }
        None => Ok(polled.records.min(i32::MAX as u64) as i32),
    }
}
