//! Write the user-space half of an eBPF tool in Rust, compile it to `wasm32-wasip1`, run it
//! with `edge-ecli run app.wasm`.
//!
//! ```ignore
//! let mut open = edge_bpf_guest::OpenObject::new(include_bytes!("app.bpf.o"));
//! open.set_global("target_pid", &pid.to_le_bytes())?;     // before load, like skel->rodata
//! let obj = open.load()?;
//! obj.attach("handle_exec", None)?;
//! let events = obj.map("rb")?;
//! loop {
//!     match obj.poll(&events, 100, |data| { println!("{} bytes", data.len()); 0 }) {
//!         Err(e) if e == edge_bpf_guest::EINTR => break,  // Ctrl-C, SIGTERM, --timeout
//!         Err(e) => return Err(e),
//!         Ok(_) => {}
//!     }
//! }
//! ```
//! Buffer callbacks go through the function table: link with `--export-table`
//! (`println!("cargo:rustc-link-arg=--export-table")` in build.rs).

/// An errno value, as the host returns it (positive here).
pub type Errno = i32;
pub const ENOENT: Errno = 2;
pub const EINTR: Errno = 4;
pub const EINVAL: Errno = 22;

#[link(wasm_import_module = "wasm_bpf")]
extern "C" {
    fn wasm_load_bpf_object(obj_buf: *const u8, obj_buf_sz: i32) -> u64;
    fn wasm_attach_bpf_program(obj: u64, name: *const u8, attach_target: *const u8) -> i32;
    fn wasm_bpf_map_fd_by_name(obj: u64, name: *const u8) -> i32;
    fn wasm_bpf_map_operate(fd: i32, cmd: i32, key: *const u8, value: *mut u8, next_key: *mut u8, flags: u64) -> i32;
    fn wasm_bpf_buffer_poll(
        program: u64,
        fd: i32,
        sample_func: i32,
        ctx: u32,
        data: *mut u8,
        max_size: i32,
        timeout_ms: i32,
    ) -> i32;
    fn wasm_close_bpf_object(obj: u64) -> i32;
}

fn cstring(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

fn check(r: i32) -> Result<i32, Errno> {
    if r < 0 {
        Err(-r)
    } else {
        Ok(r)
    }
}

/// An object not yet loaded: its globals can still be set.
pub struct OpenObject {
    elf: Vec<u8>,
}

fn rd(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(n)?)?;
    Some(s.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
}

impl OpenObject {
    pub fn new(elf: &[u8]) -> OpenObject {
        OpenObject { elf: elf.to_vec() }
    }

    /// Sets a global (`const volatile` in .rodata, or initialised .data) before load, as a
    /// libbpf skeleton's `skel->rodata->name = value` does. `value` must have its exact size.
    pub fn set_global(&mut self, name: &str, value: &[u8]) -> Result<(), Errno> {
        let e = &self.elf;
        if e.get(..4) != Some(b"\x7fELF") {
            return Err(EINVAL);
        }
        let shoff = rd(e, 40, 8).ok_or(EINVAL)? as usize;
        let shnum = rd(e, 60, 2).ok_or(EINVAL)? as usize;
        let sh = |i: usize, at: usize, n: usize| rd(e, shoff.checked_add(i * 64 + at)?, n);
        for i in 0..shnum {
            if sh(i, 4, 4) != Some(2) {
                continue; // not SHT_SYMTAB
            }
            let (off, size, link) = (
                sh(i, 24, 8).ok_or(EINVAL)? as usize,
                sh(i, 32, 8).ok_or(EINVAL)? as usize,
                sh(i, 40, 4).ok_or(EINVAL)? as usize,
            );
            let stroff = sh(link, 24, 8).ok_or(EINVAL)? as usize;
            let strs = e.get(stroff..).ok_or(EINVAL)?;
            for s in (off..off + size).step_by(24).skip(1) {
                let nm = rd(e, s, 4).ok_or(EINVAL)? as usize;
                let Some(sym) = strs.get(nm..).and_then(|t| t.split(|&c| c == 0).next()) else { continue };
                if sym != name.as_bytes() {
                    continue;
                }
                let shndx = rd(e, s + 6, 2).ok_or(EINVAL)? as usize;
                let at = rd(e, s + 8, 8).ok_or(EINVAL)? as usize;
                let len = rd(e, s + 16, 8).ok_or(EINVAL)? as usize;
                if len != value.len() || shndx == 0 || shndx >= shnum || sh(shndx, 4, 4) == Some(8) {
                    return Err(EINVAL);
                }
                let data = sh(shndx, 24, 8).ok_or(EINVAL)? as usize;
                let dst = data.checked_add(at).ok_or(EINVAL)?;
                self.elf.get_mut(dst..dst + len).ok_or(EINVAL)?.copy_from_slice(value);
                return Ok(());
            }
        }
        Err(ENOENT)
    }

    /// Loads the object into the kernel. On failure the host prints the loader's message.
    pub fn load(self) -> Result<Object, Errno> {
        // SAFETY: the buffer is valid for its length during the call.
        let handle = unsafe { wasm_load_bpf_object(self.elf.as_ptr(), self.elf.len() as i32) };
        if handle == 0 {
            return Err(EINVAL);
        }
        Ok(Object { handle })
    }
}

/// A loaded object. Dropping it detaches and frees everything in the kernel.
pub struct Object {
    handle: u64,
}

/// A map of a loaded object.
pub struct Map {
    pub fd: i32,
}

impl Object {
    /// Attaches program `prog` (its C function name). `target` overrides the section's target:
    /// an interface name for xdp/tc, `PATH:FUNC` for uprobes.
    pub fn attach(&self, prog: &str, target: Option<&str>) -> Result<(), Errno> {
        let p = cstring(prog);
        let t = cstring(target.unwrap_or(""));
        // SAFETY: both strings are NUL-terminated and live for the call.
        check(unsafe { wasm_attach_bpf_program(self.handle, p.as_ptr(), t.as_ptr()) }).map(|_| ())
    }

    pub fn map(&self, name: &str) -> Result<Map, Errno> {
        let n = cstring(name);
        // SAFETY: n is NUL-terminated and lives for the call.
        check(unsafe { wasm_bpf_map_fd_by_name(self.handle, n.as_ptr()) }).map(|fd| Map { fd })
    }

    /// Waits up to `timeout_ms` for samples of a ring buffer or perf event array and calls
    /// `f` with each one. Returns how many were handled, or the first non-zero return of `f`
    /// as `Ok` too; `Err(EINTR)` once edge-ecli is asked to stop.
    pub fn poll<F: FnMut(&[u8]) -> i32>(&self, map: &Map, timeout_ms: i32, mut f: F) -> Result<i32, Errno> {
        let mut buf = vec![0u8; 4096];
        let mut ctx = Ctx { f: &mut f, cap: buf.len() };
        let tramp: extern "C" fn(u32, u32, u32) -> i32 = trampoline;
        // SAFETY: ctx and buf outlive the call; the host calls `trampoline` only during it.
        check(unsafe {
            wasm_bpf_buffer_poll(
                self.handle,
                map.fd,
                tramp as usize as i32,
                &mut ctx as *mut Ctx as u32,
                buf.as_mut_ptr(),
                buf.len() as i32,
                timeout_ms,
            )
        })
    }
}

struct Ctx<'a> {
    f: &'a mut dyn FnMut(&[u8]) -> i32,
    cap: usize,
}

extern "C" fn trampoline(ctx: u32, data: u32, size: u32) -> i32 {
    // SAFETY: ctx is the Ctx passed to wasm_bpf_buffer_poll, alive during the poll; the host
    // copied min(size, cap) bytes to data.
    unsafe {
        let ctx = &mut *(ctx as *mut Ctx);
        let n = (size as usize).min(ctx.cap);
        (ctx.f)(std::slice::from_raw_parts(data as *const u8, n))
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: the handle came from wasm_load_bpf_object.
        unsafe { wasm_close_bpf_object(self.handle) };
    }
}

impl Map {
    fn op(&self, cmd: i32, key: *const u8, value: *mut u8, next: *mut u8, flags: u64) -> Result<(), Errno> {
        // SAFETY: the host checks every pointer against guest memory with the map's sizes.
        check(unsafe { wasm_bpf_map_operate(self.fd, cmd, key, value, next, flags) }).map(|_| ())
    }

    /// Looks `key` up into `value` (which must have the map's value size). Ok(false): no entry.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool, Errno> {
        match self.op(1, key.as_ptr(), value.as_mut_ptr(), std::ptr::null_mut(), 0) {
            Ok(()) => Ok(true),
            Err(ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), Errno> {
        self.op(2, key.as_ptr(), value.as_ptr() as *mut u8, std::ptr::null_mut(), flags)
    }

    pub fn delete(&self, key: &[u8]) -> Result<(), Errno> {
        self.op(3, key.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), 0)
    }

    /// All keys (each `key_size` bytes), in the kernel's order.
    pub fn keys(&self, key_size: usize) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut next = vec![0u8; key_size];
            let prev = out.last().map_or(std::ptr::null(), |k| k.as_ptr());
            if self.op(4, prev, std::ptr::null_mut(), next.as_mut_ptr(), 0).is_err() {
                return out;
            }
            out.push(next);
        }
    }
}
