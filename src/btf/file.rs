//! Kernel BTF files as operators and BTFHub have them: raw BTF (`pahole
//! --btf_encode_detached`, sysfs), an ELF image's `.BTF` section (a vmlinux), or btfhub-archive's
//! `RELEASE.btf.tar.xz`. Reads files, bounded; decodes nothing.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// Largest kernel BTF read from a file (a whole BTF is 2-10 MB).
pub const MAX_BTF: u64 = 128 << 20;

/// The raw BTF in `path`, whichever of the three forms it has.
pub fn read_any(path: &Path) -> Result<Vec<u8>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(btf_name) = name.strip_suffix(".tar.xz") {
        let xz = crate::files::read_limited(path, MAX_BTF).map_err(io_err)?;
        return crate::codec::xz::btf_from_tar_xz(&xz, btf_name, MAX_BTF as usize);
    }
    read_btf_file(path)
}

fn io_err(e: std::io::Error) -> Error {
    Error::msg(e.to_string())
}

/// A file of raw BTF, or an ELF file's `.BTF` section (read by offset: a vmlinux with debug
/// information is hundreds of MB).
pub fn read_btf_file(path: &Path) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let mut head = [0u8; 64];
    let n = f.read(&mut head).map_err(io_err)?;
    if n >= 4 && head.starts_with(b"\x7fELF") {
        let (off, size) = elf_btf_section(&mut f)?.ok_or_else(|| {
            Error::invalid(
                "an ELF file without a .BTF section (a kernel built without CONFIG_DEBUG_INFO_BTF)",
            )
        })?;
        if size > MAX_BTF {
            return Err(Error::invalid(format!(
                ".BTF section of {size} bytes is over the limit"
            )));
        }
        f.seek(SeekFrom::Start(off)).map_err(io_err)?;
        let mut v = vec![0u8; size as usize];
        f.read_exact(&mut v).map_err(io_err)?;
        return Ok(v);
    }
    f.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut v = Vec::new();
    f.take(MAX_BTF + 1).read_to_end(&mut v).map_err(io_err)?;
    if v.len() as u64 > MAX_BTF {
        return Err(Error::invalid("larger than 128 MiB: not a BTF file"));
    }
    Ok(v)
}

/// Is `path` raw BTF, or an ELF file with a `.BTF` section?
pub fn has_btf(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 4];
    if f.read_exact(&mut magic).is_err() {
        return false;
    }
    magic.starts_with(&[0x9f, 0xeb])
        || (magic == *b"\x7fELF" && matches!(elf_btf_section(&mut f), Ok(Some(_))))
}

/// Offset and size of the `.BTF` section of a 64-bit little-endian ELF file.
fn elf_btf_section(f: &mut std::fs::File) -> Result<Option<(u64, u64)>> {
    let bad = |m: &str| Error::invalid(format!("bad ELF file: {m}"));
    let mut h = [0u8; 64];
    f.seek(SeekFrom::Start(0)).map_err(io_err)?;
    f.read_exact(&mut h).map_err(|_| bad("truncated header"))?;
    if h[4] != 2 || h[5] != 1 {
        return Err(bad("not a 64-bit little-endian ELF file"));
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(&h, 0x28),
        u16_at(&h, 0x3a),
        u16_at(&h, 0x3c),
        u16_at(&h, 0x3e),
    );
    if shentsize < 64 || shnum == 0 || shnum > 65_280 || shstrndx >= shnum {
        return Err(bad("bad section header table"));
    }
    let mut shdrs = vec![0u8; (shentsize * shnum) as usize];
    f.seek(SeekFrom::Start(shoff)).map_err(io_err)?;
    f.read_exact(&mut shdrs)
        .map_err(|_| bad("section headers past the end"))?;
    let sh = |i: u64| &shdrs[(i * shentsize) as usize..(i * shentsize + 64) as usize];
    let strtab = sh(shstrndx);
    let (str_off, str_size) = (u64_at(strtab, 0x18), u64_at(strtab, 0x20).min(1 << 20));
    let mut names = vec![0u8; str_size as usize];
    f.seek(SeekFrom::Start(str_off)).map_err(io_err)?;
    f.read_exact(&mut names)
        .map_err(|_| bad("section names past the end"))?;
    for i in 0..shnum {
        let s = sh(i);
        let name = names.get(u32_at(s, 0) as usize..).unwrap_or(&[]);
        if name.starts_with(b".BTF\0") {
            return Ok(Some((u64_at(s, 0x18), u64_at(s, 0x20))));
        }
    }
    Ok(None)
}
