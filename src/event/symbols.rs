//! Stack ids to frames, as bpftrace and libbpf-tools' profile print them: kernel addresses by
//! /proc/kallsyms (`schedule+44`), user addresses by the process's mappings (/proc/PID/maps)
//! and the ELF symbol tables of the files mapped there (`clock_nanosleep+110 (libc.so.6)`),
//! an address and file offset where no symbol covers it. Symbol tables are read once, lazily,
//! and within size limits; a process that has exited leaves bare addresses.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, OnceLock};

use super::out::Frames;
use crate::bpf::sys::MapOps;

/// Symbol tables of one file or of the kernel: sorted starts, with the names in one string.
#[derive(Debug, Default)]
pub struct SymbolTable {
    /// (address, size or 0, offset of the name in `names`)
    syms: Vec<(u64, u64, u32)>,
    names: String,
}

impl SymbolTable {
    fn push(&mut self, addr: u64, size: u64, name: &str) {
        if self.names.len() > u32::MAX as usize - name.len() {
            return;
        }
        self.syms.push((addr, size, self.names.len() as u32));
        self.names.push_str(name);
        self.names.push('\0');
    }

    fn finish(&mut self) {
        self.syms.sort_unstable_by_key(|s| s.0);
        self.syms.dedup_by_key(|s| s.0);
    }

    fn name(&self, off: u32) -> &str {
        let rest = &self.names[off as usize..];
        &rest[..rest.find('\0').unwrap_or(rest.len())]
    }

    /// The symbol at or below `addr` (within its size, when it has one): name and offset.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.syms.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        let (start, size, name) = self.syms[i];
        if size != 0 && addr >= start.saturating_add(size) {
            return None;
        }
        Some((self.name(name), addr - start))
    }

    /// /proc/kallsyms: text symbols only (`t`/`T`/`w`/`W`), module suffixes dropped.
    pub fn parse_kallsyms(text: &str) -> SymbolTable {
        let mut t = SymbolTable::default();
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(a), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if !matches!(kind, "t" | "T" | "w" | "W") {
                continue;
            }
            if let Ok(addr) = u64::from_str_radix(a, 16) {
                if addr != 0 {
                    t.push(addr, 0, name);
                }
            }
        }
        t.finish();
        t
    }
}

/// Most symbol-table bytes read from one file (a debug build's .symtab of a large program is
/// tens of MB; beyond this the file's frames are shown as offsets).
const MAX_SYMTAB_BYTES: u64 = 64 << 20;

fn rd<const N: usize>(d: &[u8], o: usize) -> Option<[u8; N]> {
    d.get(o..o + N).and_then(|b| b.try_into().ok())
}
fn u16le(d: &[u8], o: usize) -> Option<u64> {
    rd::<2>(d, o).map(|b| u16::from_le_bytes(b) as u64)
}
fn u32le(d: &[u8], o: usize) -> Option<u64> {
    rd::<4>(d, o).map(|b| u32::from_le_bytes(b) as u64)
}
fn u64le(d: &[u8], o: usize) -> Option<u64> {
    rd::<8>(d, o).map(u64::from_le_bytes)
}

/// A mapped file's function symbols and loadable segments, for user addresses.
#[derive(Debug, Default)]
pub struct ElfSymbols {
    table: SymbolTable,
    /// (file offset, virtual address, file size) of each PT_LOAD segment.
    loads: Vec<(u64, u64, u64)>,
}

impl ElfSymbols {
    /// Reads the program headers and the `.symtab`/`.dynsym` function symbols of an ELF64
    /// little-endian file, by positioned reads (the file itself is never read whole).
    pub fn read(f: &impl FileExt) -> io::Result<ElfSymbols> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "not an ELF64 LE file");
        let read = |off: u64, len: u64| -> io::Result<Vec<u8>> {
            let mut v = vec![0u8; len as usize];
            f.read_exact_at(&mut v, off)?;
            Ok(v)
        };
        let h = read(0, 64)?;
        if &h[..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 {
            return Err(bad());
        }
        let (phoff, shoff) = (
            u64le(&h, 32).ok_or_else(bad)?,
            u64le(&h, 40).ok_or_else(bad)?,
        );
        let (phnum, shnum) = (
            u16le(&h, 56).ok_or_else(bad)?,
            u16le(&h, 60).ok_or_else(bad)?,
        );
        let mut out = ElfSymbols::default();
        let ph = read(phoff, phnum * 56)?;
        for p in ph.chunks_exact(56) {
            if u32le(p, 0) == Some(1) {
                // PT_LOAD
                let (off, vaddr, filesz) = (u64le(p, 8), u64le(p, 16), u64le(p, 32));
                if let (Some(o), Some(v), Some(s)) = (off, vaddr, filesz) {
                    out.loads.push((o, v, s));
                }
            }
        }
        let sh = read(shoff, shnum * 64)?;
        let sec = |i: u64| -> Option<(u64, u64, u64, u64)> {
            let s = sh.get(i as usize * 64..i as usize * 64 + 64)?;
            Some((u32le(s, 4)?, u64le(s, 24)?, u64le(s, 32)?, u32le(s, 40)?))
        };
        let mut budget = MAX_SYMTAB_BYTES;
        for i in 0..shnum {
            let Some((kind, off, size, link)) = sec(i) else {
                continue;
            };
            // SHT_SYMTAB 2, SHT_DYNSYM 11
            if kind != 2 && kind != 11 {
                continue;
            }
            let Some((_, str_off, str_size, _)) = sec(link) else {
                continue;
            };
            if size.saturating_add(str_size) > budget {
                continue;
            }
            budget -= size + str_size;
            let (syms, strs) = (read(off, size)?, read(str_off, str_size)?);
            for e in syms.chunks_exact(24) {
                // STT_FUNC with a section index
                if e[4] & 0xf != 2 || u16le(e, 6) == Some(0) {
                    continue;
                }
                let (Some(name), Some(value), Some(sz)) = (u32le(e, 0), u64le(e, 8), u64le(e, 16))
                else {
                    continue;
                };
                let Some(rest) = strs.get(name as usize..) else {
                    continue;
                };
                let end = rest
                    .iter()
                    .position(|&c| c == 0)
                    .unwrap_or(rest.len())
                    .min(4096);
                if let Ok(n) = std::str::from_utf8(&rest[..end]) {
                    if value != 0 && !n.is_empty() {
                        out.table.push(value, sz, n);
                    }
                }
            }
        }
        out.table.finish();
        Ok(out)
    }

    /// The symbol of the byte at `file_off` of the file.
    pub fn lookup_offset(&self, file_off: u64) -> Option<(&str, u64)> {
        let &(o, v, _) = self
            .loads
            .iter()
            .find(|(o, _, s)| file_off >= *o && file_off < o.saturating_add(*s))?;
        self.table.lookup(file_off - o + v)
    }
}

/// One line of /proc/PID/maps that maps a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

/// The file-backed mappings of /proc/PID/maps.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    let mut v = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(range), Some(_perms), Some(off), Some(_dev), Some(_ino), Some(path)) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        ) else {
            continue;
        };
        if !path.starts_with('/') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        if let (Ok(start), Ok(end), Ok(offset)) = (
            u64::from_str_radix(a, 16),
            u64::from_str_radix(b, 16),
            u64::from_str_radix(off, 16),
        ) {
            v.push(Mapping {
                start,
                end,
                offset,
                path: path.to_string(),
            });
        }
    }
    v
}

/// Stack ids of one stack trace map, symbolized.
pub struct Symbolizer {
    map: Box<dyn MapOps>,
    /// Bytes of one stack (frames × 8).
    value_size: usize,
    kernel: OnceLock<Option<SymbolTable>>,
    procs: Mutex<HashMap<u32, Arc<Vec<Mapping>>>>,
    files: Mutex<HashMap<String, Option<Arc<ElfSymbols>>>>,
}

/// Processes and files whose symbols are kept at once (a long run sees many processes).
const MAX_CACHED: usize = 256;

impl Symbolizer {
    pub fn new(map: Box<dyn MapOps>) -> io::Result<Symbolizer> {
        let value_size = map.info()?.value_size;
        Ok(Symbolizer {
            map,
            value_size,
            kernel: OnceLock::new(),
            procs: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
        })
    }

    fn kernel_frame(&self, ip: u64) -> String {
        let k = self.kernel.get_or_init(|| {
            std::fs::read_to_string("/proc/kallsyms")
                .ok()
                .map(|t| SymbolTable::parse_kallsyms(&t))
        });
        match k.as_ref().and_then(|t| t.lookup(ip)) {
            Some((name, off)) => format!("{name}+{off}"),
            None => format!("0x{ip:x}"),
        }
    }

    fn mappings(&self, pid: u32) -> Arc<Vec<Mapping>> {
        let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = procs.get(&pid) {
            return m.clone();
        }
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .map(|t| parse_maps(&t))
            .unwrap_or_default();
        if procs.len() >= MAX_CACHED {
            procs.clear();
        }
        let m = Arc::new(maps);
        procs.insert(pid, m.clone());
        m
    }

    fn file(&self, pid: u32, path: &str) -> Option<Arc<ElfSymbols>> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = files.get(path) {
            return f.clone();
        }
        // Through the process's root: the file it mapped, also inside a container.
        let syms = std::fs::File::open(format!("/proc/{pid}/root{path}"))
            .or_else(|_| std::fs::File::open(path))
            .and_then(|f| ElfSymbols::read(&f))
            .ok()
            .map(Arc::new);
        if files.len() >= MAX_CACHED {
            files.clear();
        }
        files.insert(path.to_string(), syms.clone());
        syms
    }

    fn user_frame(&self, ip: u64, pid: u32) -> String {
        let maps = self.mappings(pid);
        let Some(m) = maps.iter().find(|m| ip >= m.start && ip < m.end) else {
            return format!("0x{ip:x}");
        };
        let file_off = ip - m.start + m.offset;
        let base = m.path.rsplit('/').next().unwrap_or(&m.path);
        match self
            .file(pid, &m.path)
            .as_ref()
            .and_then(|f| f.lookup_offset(file_off).map(|(n, o)| (n.to_string(), o)))
        {
            Some((name, off)) => format!("{name}+{off} ({base})"),
            None => format!("0x{ip:x} ({base}+0x{file_off:x})"),
        }
    }
}

impl Frames for Symbolizer {
    fn frames(&self, id: i64, user: bool, pid: u32) -> Vec<String> {
        if id < 0 {
            // What bpf_get_stackid returned instead of an id (-EFAULT, -EEXIST...).
            return vec![format!("[no stack: error {}]", -id)];
        }
        let mut raw = vec![0u8; self.value_size];
        if self
            .map
            .lookup(&(id as u32).to_le_bytes(), &mut raw)
            .is_err()
        {
            return vec![format!("[stack {id} is not in the stack map]")];
        }
        raw.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .take_while(|&ip| ip != 0)
            .map(|ip| {
                if user {
                    self.user_frame(ip, pid)
                } else {
                    self.kernel_frame(ip)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_lookups_give_name_and_offset() {
        let t = SymbolTable::parse_kallsyms(
            "ffffffff81000000 T _stext\nffffffff81000100 t schedule\n0000000000000000 A zero\nffffffff81000200 D data_sym\nffffffffc0000000 t mod_fn\t[ext4]\n",
        );
        assert_eq!(t.lookup(0xffffffff81000105), Some(("schedule", 5)));
        assert_eq!(t.lookup(0xffffffff81000000), Some(("_stext", 0)));
        assert_eq!(t.lookup(0xffffffffc0000010), Some(("mod_fn", 16)));
        assert_eq!(t.lookup(0x10), None);
    }

    #[test]
    fn maps_lines_keep_file_mappings() {
        let m = parse_maps(
            "55d0c000-55d0d000 r-xp 00001000 08:01 123 /usr/bin/true\n7ffd0000-7ffd1000 rw-p 00000000 00:00 0 [stack]\n7f00-7f10 r--p 00000000 00:00 0\n",
        );
        assert_eq!(
            m,
            vec![Mapping {
                start: 0x55d0c000,
                end: 0x55d0d000,
                offset: 0x1000,
                path: "/usr/bin/true".into()
            }]
        );
    }

    #[test]
    fn this_test_binary_symbolizes_its_own_function() {
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let syms = ElfSymbols::read(&f).unwrap();
        // Find the file offset of this function through our own mappings.
        let ip = this_test_binary_symbolizes_its_own_function as *const () as u64;
        let maps = parse_maps(&std::fs::read_to_string("/proc/self/maps").unwrap());
        let m = maps.iter().find(|m| ip >= m.start && ip < m.end).unwrap();
        let (name, off) = syms.lookup_offset(ip - m.start + m.offset).unwrap();
        assert!(
            name.contains("this_test_binary_symbolizes_its_own_function"),
            "{name}"
        );
        assert_eq!(off, 0);
    }

    #[test]
    fn hostile_elf_headers_are_errors() {
        let bad_path = format!("/tmp/edge-ecli-bad-elf.{}", std::process::id());
        let mut f = std::fs::File::create(&bad_path).unwrap();
        use std::io::Write;
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        h[56..58].copy_from_slice(&3u16.to_le_bytes());
        f.write_all(&h).unwrap();
        drop(f);
        let f = std::fs::File::open(&bad_path).unwrap();
        assert!(ElfSymbols::read(&f).is_err());
        let _ = std::fs::remove_file(&bad_path);
    }
}
