//! Raw `bpf(2)` map access by fd, for maps whose key and value sizes are only known at run time
//! (aya's typed maps need them at compile time): sample maps and the Wasm guests' map
//! operations. [`MapOps`] is what callers use; [`FakeMap`] stands in for the kernel in unit
//! tests.

#[cfg(test)]
use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
#[cfg(test)]
use std::sync::Mutex;

use aya_obj::generated::bpf_cmd;

use crate::package::meta::map_type;

// bpf_cmd values, from the kernel's UAPI as aya binds it.
const BPF_MAP_LOOKUP_ELEM: i32 = bpf_cmd::BPF_MAP_LOOKUP_ELEM as i32;
const BPF_MAP_UPDATE_ELEM: i32 = bpf_cmd::BPF_MAP_UPDATE_ELEM as i32;
const BPF_MAP_DELETE_ELEM: i32 = bpf_cmd::BPF_MAP_DELETE_ELEM as i32;
const BPF_MAP_GET_NEXT_KEY: i32 = bpf_cmd::BPF_MAP_GET_NEXT_KEY as i32;
const BPF_OBJ_GET_INFO_BY_FD: i32 = bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as i32;

/// What user space sees of a map: its type and the sizes of a key and of a whole value (one per
/// possible CPU for per-CPU maps, each 8-byte aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapInfo {
    pub map_type: u32,
    pub key_size: usize,
    pub value_size: usize,
}

/// Element operations on one map. `next_key(None)` is the first key; `Ok(false)` the end.
pub trait MapOps: Send + Sync {
    fn info(&self) -> io::Result<MapInfo>;
    fn lookup(&self, key: &[u8], value: &mut [u8]) -> io::Result<()>;
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> io::Result<()>;
    fn delete(&self, key: &[u8]) -> io::Result<()>;
    fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool>;
}

/// A kernel map, by fd (owned by the loaded object, or a duplicate owned here), with its
/// sizes read once.
#[derive(Debug)]
pub struct KernelMap {
    fd: RawFd,
    _owned: Option<std::os::fd::OwnedFd>,
    info: MapInfo,
}

#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf<T>(cmd: i32, attr: &T) -> io::Result<i64> {
    // SAFETY: attr is a valid prefix of union bpf_attr for `cmd`, and every pointer inside it
    // refers to a buffer its caller sized for the map.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl KernelMap {
    pub fn new(fd: RawFd) -> io::Result<KernelMap> {
        Ok(KernelMap {
            fd,
            _owned: None,
            info: map_info(fd)?,
        })
    }

    /// A map of its own: the fd is duplicated, so it outlives the object that made it.
    pub fn dup(fd: RawFd) -> io::Result<KernelMap> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: F_DUPFD_CLOEXEC on an open fd returns a new fd or -1.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if d < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: d was just created and nobody else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(d) };
        Ok(KernelMap {
            fd: owned.as_raw_fd(),
            info: map_info(owned.as_raw_fd())?,
            _owned: Some(owned),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    fn elem(&self, cmd: i32, key: *const u8, value: *mut u8, flags: u64) -> io::Result<()> {
        let attr = ElemAttr {
            map_fd: self.fd as u32,
            _pad: 0,
            key: key as u64,
            value: value as u64,
            flags,
        };
        bpf(cmd, &attr).map(|_| ())
    }

    /// Checks that a buffer has the size the kernel will read or write.
    fn sized(buf: usize, want: usize) -> io::Result<()> {
        if buf == want {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        }
    }
}

/// A map's type and sizes, from the kernel.
pub fn map_info(fd: RawFd) -> io::Result<MapInfo> {
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // struct bpf_map_info starts: type, id, key_size, value_size (u32 each).
    let mut info = [0u32; 20];
    let attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &attr)?;
    let (ty, key, value) = (info[0], info[2] as usize, info[3] as usize);
    let value = if map_type::is_percpu(ty) {
        let n = possible_cpus()?;
        value.div_ceil(8) * 8 * n
    } else {
        value
    };
    Ok(MapInfo {
        map_type: ty,
        key_size: key,
        value_size: value,
    })
}

impl MapOps for KernelMap {
    fn info(&self) -> io::Result<MapInfo> {
        Ok(self.info)
    }

    fn lookup(&self, key: &[u8], value: &mut [u8]) -> io::Result<()> {
        let i = self.info;
        Self::sized(key.len(), i.key_size)?;
        Self::sized(value.len(), i.value_size)?;
        self.elem(BPF_MAP_LOOKUP_ELEM, key.as_ptr(), value.as_mut_ptr(), 0)
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
        let i = self.info;
        Self::sized(key.len(), i.key_size)?;
        Self::sized(value.len(), i.value_size)?;
        // The kernel only reads the value of an update.
        self.elem(
            BPF_MAP_UPDATE_ELEM,
            key.as_ptr(),
            value.as_ptr() as *mut u8,
            flags,
        )
    }

    fn delete(&self, key: &[u8]) -> io::Result<()> {
        Self::sized(key.len(), self.info.key_size)?;
        self.elem(BPF_MAP_DELETE_ELEM, key.as_ptr(), std::ptr::null_mut(), 0)
    }

    fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
        let ks = self.info.key_size;
        Self::sized(next.len(), ks)?;
        if let Some(k) = key {
            Self::sized(k.len(), ks)?;
        }
        let kp = key.map_or(std::ptr::null(), |k| k.as_ptr());
        match self.elem(BPF_MAP_GET_NEXT_KEY, kp, next.as_mut_ptr(), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The samples a perf event dropped, when it was opened with PERF_FORMAT_LOST (read(2) then
/// gives the count and the drops; without it, only the count).
pub fn perf_lost_samples(fd: std::os::fd::RawFd) -> Option<u64> {
    let mut v = [0u64; 2];
    // SAFETY: fd is an open perf event; v is writable for its whole size.
    let n = unsafe { libc::read(fd, v.as_mut_ptr().cast(), std::mem::size_of_val(&v)) };
    (n == std::mem::size_of_val(&v) as isize).then_some(v[1])
}

/// Possible CPUs (per-CPU map values have one slot for each), from sysfs: "0-3,8".
pub fn possible_cpus() -> io::Result<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    parse_cpu_list(&text).map(|v| v.len()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot parse /sys/devices/system/cpu/possible: {text:?}"),
        )
    })
}

/// Online CPUs, in order.
pub fn online_cpus() -> io::Result<Vec<u32>> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online")?;
    parse_cpu_list(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot parse /sys/devices/system/cpu/online: {text:?}"),
        )
    })
}

fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut v = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse().ok()?;
                (a, a)
            }
        };
        if b < a || b - a > 65535 {
            return None;
        }
        v.extend(a..=b);
    }
    Some(v)
}

/// A map held in memory: a hash map with the kernel's element semantics (sizes checked, flags
/// BPF_NOEXIST/BPF_EXIST honoured, errno values as the kernel returns them).
#[cfg(test)]
pub struct FakeMap {
    pub info: MapInfo,
    pub max_entries: usize,
    elems: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

#[cfg(test)]
impl FakeMap {
    pub fn new(map_type: u32, key_size: usize, value_size: usize, max_entries: usize) -> FakeMap {
        FakeMap {
            info: MapInfo {
                map_type,
                key_size,
                value_size,
            },
            max_entries,
            elems: Mutex::new(BTreeMap::new()),
        }
    }

    fn check(&self, key: &[u8], value: Option<usize>) -> io::Result<()> {
        let einval = || io::Error::from_raw_os_error(libc::EINVAL);
        if key.len() != self.info.key_size {
            return Err(einval());
        }
        match value {
            Some(v) if v != self.info.value_size => Err(einval()),
            _ => Ok(()),
        }
    }
}

/// A fake shared with the test that made it, which keeps a handle to look inside.
#[cfg(test)]
impl MapOps for std::sync::Arc<FakeMap> {
    fn info(&self) -> io::Result<MapInfo> {
        (**self).info()
    }
    fn lookup(&self, k: &[u8], v: &mut [u8]) -> io::Result<()> {
        (**self).lookup(k, v)
    }
    fn update(&self, k: &[u8], v: &[u8], f: u64) -> io::Result<()> {
        (**self).update(k, v, f)
    }
    fn delete(&self, k: &[u8]) -> io::Result<()> {
        (**self).delete(k)
    }
    fn next_key(&self, k: Option<&[u8]>, n: &mut [u8]) -> io::Result<bool> {
        (**self).next_key(k, n)
    }
}

#[cfg(test)]
impl MapOps for FakeMap {
    fn info(&self) -> io::Result<MapInfo> {
        Ok(self.info)
    }

    fn lookup(&self, key: &[u8], value: &mut [u8]) -> io::Result<()> {
        self.check(key, Some(value.len()))?;
        let m = self.elems.lock().unwrap_or_else(|e| e.into_inner());
        let v = m
            .get(key)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        value.copy_from_slice(v);
        Ok(())
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
        self.check(key, Some(value.len()))?;
        let mut m = self.elems.lock().unwrap_or_else(|e| e.into_inner());
        let exists = m.contains_key(key);
        match flags {
            0 => {}
            1 if exists => return Err(io::Error::from_raw_os_error(libc::EEXIST)),
            2 if !exists => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
            1 | 2 => {}
            _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
        if !exists && m.len() >= self.max_entries {
            return Err(io::Error::from_raw_os_error(libc::E2BIG));
        }
        m.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> io::Result<()> {
        self.check(key, None)?;
        let mut m = self.elems.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(key)
            .map(|_| ())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
        if next.len() != self.info.key_size {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let m = self.elems.lock().unwrap_or_else(|e| e.into_inner());
        let found = match key {
            None => m.keys().next(),
            Some(k) => {
                self.check(k, None)?;
                m.range::<[u8], _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))
                    .next()
                    .map(|(k, _)| k)
            }
        };
        match found {
            Some(k) => {
                next.copy_from_slice(k);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_like_sysfs_writes_them() {
        assert_eq!(parse_cpu_list("0-3,8\n"), Some(vec![0, 1, 2, 3, 8]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn fake_map_behaves_like_a_hash_map() {
        let m = FakeMap::new(map_type::HASH, 4, 8, 2);
        let mut v = [0u8; 8];
        let mut k = [0u8; 4];
        assert!(!m.next_key(None, &mut k).unwrap());
        m.update(&1u32.to_le_bytes(), &7u64.to_le_bytes(), 0)
            .unwrap();
        m.update(&2u32.to_le_bytes(), &9u64.to_le_bytes(), 0)
            .unwrap();
        assert_eq!(
            m.update(&3u32.to_le_bytes(), &1u64.to_le_bytes(), 0)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::E2BIG)
        );
        assert_eq!(
            m.update(&1u32.to_le_bytes(), &1u64.to_le_bytes(), 1)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EEXIST)
        );
        m.lookup(&2u32.to_le_bytes(), &mut v).unwrap();
        assert_eq!(u64::from_le_bytes(v), 9);
        assert!(m.next_key(None, &mut k).unwrap());
        assert_eq!(u32::from_le_bytes(k), 1);
        let prev = k;
        assert!(m.next_key(Some(&prev), &mut k).unwrap());
        assert_eq!(u32::from_le_bytes(k), 2);
        let prev = k;
        assert!(!m.next_key(Some(&prev), &mut k).unwrap());
        m.delete(&1u32.to_le_bytes()).unwrap();
        assert_eq!(
            m.lookup(&[1, 0], &mut v).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}
