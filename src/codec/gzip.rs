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
