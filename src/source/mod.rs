//! Resolves PROG to bytes: a path, or `-` for standard input. Size-limited.

use std::io::Read;

use crate::error::{Error, Result};

/// No package we run is anywhere near this; anything larger is refused before it is read.
pub const MAX_PACKAGE_SIZE: u64 = 128 << 20;

/// What `-` becomes on the command line (argh would read a lone `-` as an option).
pub const STDIN_PATH: &str = "/dev/stdin";

pub fn read(prog: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let limit = MAX_PACKAGE_SIZE + 1;
    let r = if prog == "-" || prog == STDIN_PATH {
        std::io::stdin().lock().take(limit).read_to_end(&mut buf)
    } else {
        let f = std::fs::File::open(prog)
            .map_err(|e| Error::msg(format!("{prog}: cannot open: {e}")))?;
        f.take(limit).read_to_end(&mut buf)
    };
    r.map_err(|e| Error::msg(format!("{prog}: cannot read: {e}")))?;
    if buf.len() as u64 > MAX_PACKAGE_SIZE {
        return Err(Error::msg(format!(
            "{prog}: larger than the {MAX_PACKAGE_SIZE}-byte package limit"
        )));
    }
    if buf.is_empty() {
        return Err(Error::msg(format!("{prog}: empty input")));
    }
    Ok(buf)
}
