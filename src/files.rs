//! Files users name: size-limited reads, regular files only where a FIFO or a device would
//! block or never end, and atomic writes that never follow a planted symlink.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads at most `limit` bytes of the file a user named: more is an error rather than memory
/// (`--verify-key /dev/zero` must not read for ever). Errors are the io::Error's kind and a
/// message ("larger than N bytes") for the caller to put its flag name before.
pub fn read_limited(path: impl AsRef<Path>, limit: u64) -> std::io::Result<Vec<u8>> {
    read_all_limited(File::open(path)?, limit)
}

fn read_all_limited(f: File, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut v = Vec::new();
    f.take(limit + 1).read_to_end(&mut v)?;
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

/// Opens `path` for reading only if it is a regular file. The open itself never blocks (a FIFO
/// nobody writes would wait for a writer for ever) and never makes a terminal ours; what is not
/// a regular file (a FIFO, a device, a socket, a directory) is refused before anything is read.
pub fn open_regular(path: impl AsRef<Path>) -> std::io::Result<File> {
    use std::os::unix::fs::FileTypeExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let t = f.metadata()?.file_type();
    if !t.is_file() {
        let what = if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what}, not a regular file"),
        ));
    }
    Ok(f)
}

/// [`read_limited`] of a regular file only ([`open_regular`]).
pub fn read_regular_limited(path: impl AsRef<Path>, limit: u64) -> std::io::Result<Vec<u8>> {
    read_all_limited(open_regular(path)?, limit)
}

/// 16 random hex digits (getrandom(2)), for names nobody can plant something at in advance.
fn random_suffix() -> String {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Not random, but still unique to this process and moment: O_EXCL keeps it safe.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b = (t ^ u64::from(std::process::id()) << 32).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `data` to `path` through a temporary file beside it and a rename: readers never see
/// a partial file, and an interrupted write leaves none. The temporary file has a random name
/// and is created with O_EXCL|O_NOFOLLOW, so a symlink planted in a writable directory never
/// makes us write through it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", random_suffix()));
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::msg(format!("{}: cannot write: {e}", path.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("edge-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn atomic_writes_never_follow_a_planted_symlink() {
        let d = scratch("symlink");
        let victim = d.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let target = d.join("state.json");
        // Every name the old scheme (and any predictable one) would use.
        let pid = std::process::id();
        for n in [pid, pid + 1, 1] {
            std::os::unix::fs::symlink(&victim, d.join(format!(".state.json.tmp.{n}"))).unwrap();
        }
        write_atomic(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // Written again, over a symlink at the target itself: the link is replaced, not followed.
        std::fs::remove_file(&target).unwrap();
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic(&target, b"again").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn only_regular_files_are_opened_and_fifos_never_block() {
        let d = scratch("regular");
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a C string path and a mode.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
        let e = open_regular("/dev/zero").unwrap_err().to_string();
        assert!(e.contains("a device"), "{e}");
        assert!(open_regular(&d)
            .unwrap_err()
            .to_string()
            .contains("directory"));
        std::fs::write(d.join("f"), "x").unwrap();
        assert_eq!(read_regular_limited(d.join("f"), 1).unwrap(), b"x");
        assert!(read_regular_limited(d.join("f"), 0).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
