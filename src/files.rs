//! Writing files so that readers never see half of one.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads at most `limit` bytes of the file a user named: more is an error rather than memory
/// (`--verify-key /dev/zero` must not read for ever). Errors are the io::Error's kind and a
/// message ("larger than N bytes") for the caller to put its flag name before.
pub fn read_limited(path: impl AsRef<Path>, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut v = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut v)?;
    if v.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(v)
}

/// [`read_limited`] as UTF-8 text.
pub fn read_text_limited(path: impl AsRef<Path>, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_limited(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Writes `data` to `path` through a temporary file beside it and a rename: readers never see
/// a partial file, and an interrupted write leaves none.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let r = std::fs::write(&tmp, data).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::msg(format!("{}: cannot write: {e}", path.display())));
    }
    Ok(())
}
