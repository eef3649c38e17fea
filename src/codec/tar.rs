//! Reading and writing tar archives (ustar, GNU long names, pax paths), bounded: for
//! oci-archive files, the tar+gzip layers of bytecode images and kernel BTF sets. Pure.

use crate::error::{Error, ErrorKind, Result};

/// At most this many entries are read from one archive.
const MAX_ENTRIES: usize = 100_000;

fn bad(what: &str, m: &str) -> Error {
    Error::on(what, ErrorKind::Invalid, m)
}

fn octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    &field[..end]
}

/// One regular file of an archive.
pub struct Entry<'a> {
    pub path: String,
    pub data: &'a [u8],
}

/// The regular files of a tar archive, in order. `what` names it in errors.
pub fn entries<'a>(tar: &'a [u8], what: &str) -> Result<Vec<Entry<'a>>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    let mut long_name: Option<String> = None;
    while off + 512 <= tar.len() {
        let h = &tar[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u64
                }
            })
            .sum();
        if octal(&h[148..156]) != Some(sum) {
            return Err(bad(
                what,
                "a tar header has a bad checksum (not a tar archive?)",
            ));
        }
        let size = octal(&h[124..136]).ok_or_else(|| bad(what, "bad size in a tar header"))?;
        let data_start = off + 512;
        let data_end = data_start
            .checked_add(size as usize)
            .filter(|&e| e <= tar.len())
            .ok_or_else(|| {
                bad(
                    what,
                    "a tar entry runs past the end of the archive (truncated)",
                )
            })?;
        let data = &tar[data_start..data_end];
        let name = {
            let n = String::from_utf8_lossy(cstr(&h[0..100])).into_owned();
            let prefix = if &h[257..262] == b"ustar" {
                String::from_utf8_lossy(cstr(&h[345..500])).into_owned()
            } else {
                String::new()
            };
            if prefix.is_empty() {
                n
            } else {
                format!("{prefix}/{n}")
            }
        };
        match h[156] {
            b'L' => long_name = Some(String::from_utf8_lossy(cstr(data)).into_owned()),
            b'x' => {
                // pax: "LEN path=VALUE\n" records.
                for rec in String::from_utf8_lossy(data).lines() {
                    if let Some(p) = rec
                        .split_once(' ')
                        .and_then(|(_, kv)| kv.strip_prefix("path="))
                    {
                        long_name = Some(p.to_string());
                    }
                }
            }
            b'0' | 0 => {
                if out.len() == MAX_ENTRIES {
                    return Err(bad(what, "more than 100000 entries"));
                }
                let path = long_name.take().unwrap_or(name);
                out.push(Entry {
                    path: path.trim_start_matches("./").to_string(),
                    data,
                });
            }
            _ => long_name = None,
        }
        off = data_start + (size as usize).div_ceil(512) * 512;
    }
    Ok(out)
}

/// A ustar archive of regular files, reproducible (mode 0644, owner 0, time 0). Paths longer
/// than 100 bytes are split into ustar's prefix and name at a `/`.
pub fn write(files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (p, d) in files {
        let (prefix, name) = if p.len() <= 100 {
            ("", *p)
        } else {
            p.char_indices()
                .filter(|&(i, c)| c == '/' && i <= 155 && p.len() - i - 1 <= 100)
                .map(|(i, _)| (&p[..i], &p[i + 1..]))
                .next()
                .ok_or_else(|| bad(p, "path too long for a tar archive"))?
        };
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", d.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(d);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    Ok(out)
}

#[cfg(test)]
pub mod testutil {
    /// A ustar archive of (path, data) files.
    pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (p, d) in files {
            let mut h = [0u8; 512];
            h[..p.len()].copy_from_slice(p.as_bytes());
            h[100..107].copy_from_slice(b"0000644");
            h[124..135].copy_from_slice(format!("{:011o}", d.len()).as_bytes());
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| b as u32).sum();
            h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(d);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        out.extend_from_slice(&[0; 8]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn reads_tar_and_gzip_and_refuses_damage() {
        let t = tar(&[("./index.json", b"{}"), ("blobs/sha256/ab", b"hello")]);
        let e = entries(&t, "a").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].path.as_str(), e[0].data), ("index.json", &b"{}"[..]));
        assert_eq!(e[1].data, b"hello");
        let mut broken = t.clone();
        broken[0] ^= 1;
        assert!(entries(&broken, "a").is_err(), "checksum");
        assert!(
            entries(&t[..1024 + 512 + 3], "a").is_err(),
            "truncated inside an entry"
        );
        let z = gzip(&t);
        assert_eq!(crate::codec::gzip::gunzip(&z, 1 << 20, "g").unwrap(), t);
        assert!(crate::codec::gzip::gunzip(&z, 100, "g")
            .unwrap_err()
            .to_string()
            .contains("more than 100"));
        assert!(crate::codec::gzip::gunzip(b"not gzip at all....", 100, "g").is_err());
    }

    #[test]
    fn writes_what_it_reads_long_paths_too() {
        let long = format!("{}/{}.btf", "d".repeat(120), "r".repeat(60));
        let files: [(&str, &[u8]); 3] = [("a/b.btf", b"x"), (&long, &[7; 700]), ("e", b"")];
        let t = write(&files).unwrap();
        let got = entries(&t, "w").unwrap();
        let got: Vec<(&str, &[u8])> = got.iter().map(|e| (e.path.as_str(), e.data)).collect();
        assert_eq!(got, files);
        assert_eq!(t, write(&files).unwrap(), "reproducible");
        assert!(write(&[(&"x".repeat(300), b"")]).is_err());
    }
}
