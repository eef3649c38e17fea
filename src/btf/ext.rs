//! `.BTF.ext` edits: renaming the program sections it names (func and line info, CO-RE
//! relocations) when the loader renames ELF sections. Pure.

use super::str_at;
use crate::error::{Error, Result};

/// Renames program sections inside .BTF.ext: appends the new names to the .BTF string section
/// and points every func_info/line_info/CO-RE block of a renamed section at them. Returns the
/// new .BTF and .BTF.ext bytes.
pub fn rename_sections(
    btf: &[u8],
    ext: &[u8],
    renames: &[(String, String)],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let bad = |m: &str| Error::invalid(format!("bad BTF.ext: {m}"));
    let rd = |d: &[u8], o: usize| -> Result<u32> {
        d.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad("truncated"))
    };
    if btf.len() < 24 || ext.len() < 8 {
        return Err(bad("too short"));
    }
    let hdr_len = rd(btf, 4)? as usize;
    let (type_off, type_len, str_off, str_len) = (
        rd(btf, 8)? as usize,
        rd(btf, 12)? as usize,
        rd(btf, 16)? as usize,
        rd(btf, 20)? as usize,
    );
    if str_off < type_off + type_len || hdr_len + str_off + str_len != btf.len() {
        return Err(bad("the string section is not last in .BTF"));
    }
    let strings = &btf[hdr_len + str_off..];
    let mut new_btf = btf.to_vec();
    let mut new_offsets = Vec::new();
    for (_, new) in renames {
        new_offsets.push((new_btf.len() - hdr_len - str_off) as u32);
        new_btf.extend_from_slice(new.as_bytes());
        new_btf.push(0);
    }
    let new_str_len = (new_btf.len() - hdr_len - str_off) as u32;
    new_btf[20..24].copy_from_slice(&new_str_len.to_le_bytes());

    let mut new_ext = ext.to_vec();
    let ext_hdr = rd(ext, 4)? as usize;
    // func_info, line_info and (when the header has them) core_relo: (offset, length) pairs.
    let mut parts = vec![(rd(ext, 8)?, rd(ext, 12)?), (rd(ext, 16)?, rd(ext, 20)?)];
    if ext_hdr >= 32 {
        parts.push((rd(ext, 24)?, rd(ext, 28)?));
    }
    for (off, len) in parts {
        if len == 0 {
            continue;
        }
        let start = ext_hdr + off as usize;
        let end = start
            .checked_add(len as usize)
            .filter(|&e| e <= ext.len())
            .ok_or_else(|| bad("part out of range"))?;
        let rec_size = rd(ext, start)? as usize;
        if rec_size == 0 {
            return Err(bad("zero record size"));
        }
        let mut p = start + 4;
        while p + 8 <= end {
            let name_off = rd(ext, p)?;
            let n = rd(ext, p + 4)? as usize;
            let name = str_at(strings, name_off)?;
            if let Some(i) = renames.iter().position(|(old, _)| *old == name) {
                new_ext[p..p + 4].copy_from_slice(&new_offsets[i].to_le_bytes());
            }
            p = n
                .checked_mul(rec_size)
                .and_then(|b| (p + 8).checked_add(b))
                .ok_or_else(|| bad("block overflows"))?;
        }
    }
    Ok((new_btf, new_ext))
}
