//! Writing files so that readers never see half of one.

use std::path::Path;

use crate::error::{Error, Result};

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
