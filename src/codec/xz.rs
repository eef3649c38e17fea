//! xz streams (the tukaani .xz format), decompressed within a limit: btfhub-archive ships
//! each kernel's BTF as `RELEASE.btf.tar.xz`. Pure (lzma-rs, safe Rust).

use std::io::Write;

use crate::error::{Error, Result};

/// A writer that refuses to grow past its limit.
struct Capped {
    out: Vec<u8>,
    limit: usize,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + b.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("over the limit"));
        }
        self.out.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decompresses an xz stream into at most `limit` bytes.
pub fn unxz(data: &[u8], limit: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = Capped {
        out: Vec::new(),
        limit,
        over: false,
    };
    match lzma_rs::xz_decompress(&mut &data[..], &mut out) {
        Ok(()) => Ok(out.out),
        Err(_) if out.over => Err(Error::invalid(format!(
            "{what}: decompresses to more than {limit} bytes"
        ))),
        Err(e) => Err(Error::invalid(format!("{what}: bad xz data ({e})"))),
    }
}

/// The BTF file `name` (e.g. `6.1.0-9-amd64.btf`) of a `.btf.tar.xz` as btfhub-archive ships
/// it: a tar holding that one file.
pub fn btf_from_tar_xz(data: &[u8], name: &str, limit: usize) -> Result<Vec<u8>> {
    let tar = unxz(data, limit, name)?;
    let entries = super::tar::entries(&tar, name)?;
    entries
        .iter()
        .find(|e| e.path.rsplit('/').next() == Some(name))
        .map(|e| e.data.to_vec())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{name}.tar.xz holds no {name} (it has: {}); a BTF filed under another kernel is not used",
                entries.iter().map(|e| e.path.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tar -c 6.1.0-x.btf | xz -9` of a file holding "BTF!", made with xz-utils 5.4 (CRC64).
    const XZ: &[u8] = &[
        253, 55, 122, 88, 90, 0, 0, 4, 230, 214, 180, 70, 2, 0, 33, 1, 28, 0, 0, 0, 16, 207, 88,
        204, 224, 39, 255, 0, 111, 93, 0, 27, 11, 130, 135, 97, 95, 233, 87, 175, 26, 246, 194,
        210, 17, 199, 234, 191, 154, 43, 152, 189, 194, 189, 239, 160, 245, 254, 106, 118, 98, 9,
        199, 191, 105, 7, 248, 64, 241, 169, 201, 113, 116, 255, 165, 232, 159, 183, 23, 255, 160,
        174, 49, 120, 170, 43, 230, 34, 40, 13, 149, 209, 55, 80, 188, 213, 72, 15, 87, 237, 245,
        199, 24, 124, 58, 142, 78, 45, 160, 243, 192, 244, 36, 112, 13, 245, 224, 129, 161, 83,
        210, 75, 164, 39, 216, 154, 69, 149, 68, 13, 234, 230, 128, 211, 134, 49, 232, 199, 192,
        126, 0, 0, 0, 0, 72, 198, 44, 88, 30, 200, 9, 246, 0, 1, 139, 1, 128, 80, 0, 0, 253, 129,
        167, 11, 177, 196, 103, 251, 2, 0, 0, 0, 0, 4, 89, 90,
    ];

    #[test]
    fn reads_btfhub_tar_xz_and_refuses_the_wrong_name() {
        let xz = XZ;
        assert_eq!(
            btf_from_tar_xz(xz, "6.1.0-x.btf", 1 << 20).unwrap(),
            b"BTF!"
        );
        let e = btf_from_tar_xz(xz, "6.1.0-y.btf", 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds no 6.1.0-y.btf") && e.contains("6.1.0-x.btf"),
            "{e}"
        );
        assert!(unxz(xz, 100, "t")
            .unwrap_err()
            .to_string()
            .contains("more than 100"));
        let mut bad = xz.to_vec();
        bad[xz.len() / 2] ^= 0xff;
        assert!(unxz(&bad, 1 << 20, "t").is_err());
        assert!(unxz(b"not xz", 1 << 20, "t").is_err());
    }
}
