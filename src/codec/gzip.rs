//! gzip (RFC 1952) streams, inflated within a limit: OCI layers, /proc/config.gz. Pure.

use crate::error::{Error, Result};

fn bad(what: &str, m: &str) -> Error {
    Error::invalid(format!("{what}: {m}"))
}

/// Inflates a gzip stream (RFC 1952) into at most `limit` bytes.
pub fn gunzip(gz: &[u8], limit: usize, what: &str) -> Result<Vec<u8>> {
    if gz.len() < 18 || gz[0] != 0x1f || gz[1] != 0x8b || gz[2] != 8 {
        return Err(bad(what, "not a gzip stream"));
    }
    let flags = gz[3];
    let mut i = 10usize;
    let field = |i: usize| -> Result<usize> {
        gz.get(i..)
            .and_then(|r| r.iter().position(|&c| c == 0))
            .map(|p| i + p + 1)
            .ok_or_else(|| bad(what, "truncated gzip header"))
    };
    if flags & 4 != 0 {
        let xlen = u16::from_le_bytes([gz[i], gz[i + 1]]) as usize;
        i += 2 + xlen;
    }
    if flags & 8 != 0 {
        i = field(i)?;
    }
    if flags & 16 != 0 {
        i = field(i)?;
    }
    if flags & 2 != 0 {
        i += 2;
    }
    let body = gz
        .get(i..gz.len().saturating_sub(8))
        .ok_or_else(|| bad(what, "truncated gzip stream"))?;
    miniz_oxide::inflate::decompress_to_vec_with_limit(body, limit).map_err(|e| {
        bad(
            what,
            &match e.status {
                miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
                    format!("inflates to more than {limit} bytes")
                }
                s => format!("bad gzip data ({s:?})"),
            },
        )
    })
}

/// CRC-32 (IEEE 802.3, as gzip and zlib use it) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        t[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

/// A gzip stream (RFC 1952) of `data`: no name, no timestamp, so equal input gives equal
/// bytes (reproducible packages).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 9));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_with_a_real_crc() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926); // the CRC-32 check value
        let data = b"hello hello hello gzip".repeat(50);
        let gz = gzip(&data);
        assert_eq!(gunzip(&gz, 1 << 20, "t").unwrap(), data);
        assert_eq!(gz, gzip(&data), "reproducible");
        assert_eq!(&gz[gz.len() - 4..], &(data.len() as u32).to_le_bytes());
        let e = gunzip(&gz, 10, "t").unwrap_err().to_string();
        assert!(e.contains("more than 10 bytes"), "{e}");
    }
}
