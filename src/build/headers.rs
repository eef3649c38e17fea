//! The headers `build` carries (third_party/libbpf: libbpf 1.7's `bpf/*.h` and an errno
//! header; sdk/c/edge: `edge/compat.bpf.h`), embedded deflated by build.rs and written where clang looks first.

use std::path::Path;

use crate::error::{Error, Result};

static PACKED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libbpf-headers.bin"));

/// (path, bytes) of every carried header.
pub fn carried() -> Result<Vec<(String, Vec<u8>)>> {
    let raw = miniz_oxide::inflate::decompress_to_vec_with_limit(PACKED, 8 << 20).map_err(|e| {
        Error::msg(format!(
            "the carried libbpf headers are corrupt ({:?})",
            e.status
        ))
    })?;
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let bad = || Error::msg("the carried libbpf headers are corrupt");
        let nul = raw[at..].iter().position(|&c| c == 0).ok_or_else(bad)?;
        let name = String::from_utf8_lossy(&raw[at..at + nul]).into_owned();
        let len_at = at + nul + 1;
        let len = raw
            .get(len_at..len_at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(bad)? as usize;
        let data = raw.get(len_at + 8..len_at + 8 + len).ok_or_else(bad)?;
        out.push((name, data.to_vec()));
        at = len_at + 8 + len;
    }
    Ok(out)
}

/// Writes the carried headers under `dir` (`dir/bpf/bpf_helpers.h`...).
pub fn write(dir: &Path) -> Result<()> {
    for (name, data) in carried()? {
        let p = dir.join(&name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::msg(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&p, data).map_err(|e| Error::msg(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn carries_libbpf_1_7_headers() {
        let files = super::carried().unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "bpf/bpf_helpers.h",
            "bpf/bpf_tracing.h",
            "bpf/usdt.bpf.h",
            "linux/errno.h",
            "edge/compat.bpf.h",
        ] {
            assert!(names.contains(&want), "{names:?}");
        }
        let tracing = &files
            .iter()
            .find(|(n, _)| n == "bpf/bpf_tracing.h")
            .unwrap()
            .1;
        assert!(String::from_utf8_lossy(tracing).contains("#define BPF_UPROBE"));
        let helpers = &files
            .iter()
            .find(|(n, _)| n == "bpf/bpf_helpers.h")
            .unwrap()
            .1;
        assert!(String::from_utf8_lossy(helpers).contains("bpf_ksym_exists"));
    }
}
