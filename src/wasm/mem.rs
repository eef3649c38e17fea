//! Checked access to guest memory. Every pointer and length a guest passes goes through here:
//! out-of-range access is refused, never performed.

use wasmi::Caller;

use super::host::Host;

/// The guest's memory and the host state, borrowed together.
pub fn split<'a>(c: &'a mut Caller<'_, Host>) -> (&'a mut [u8], &'a mut Host) {
    match c.data().memory {
        Some(m) => m.data_and_store_mut(c),
        None => (&mut [], c.data_mut()),
    }
}

fn range(m_len: usize, ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let p = ptr as u32 as usize;
    let l = u32::try_from(len).ok()? as usize;
    let end = p.checked_add(l)?;
    (end <= m_len).then_some(p..end)
}

pub fn slice(m: &[u8], ptr: i32, len: i32) -> Option<&[u8]> {
    range(m.len(), ptr, len).map(|r| &m[r])
}

pub fn slice_mut(m: &mut [u8], ptr: i32, len: i32) -> Option<&mut [u8]> {
    range(m.len(), ptr, len).map(move |r| &mut m[r])
}

pub fn write(m: &mut [u8], ptr: i32, data: &[u8]) -> bool {
    match slice_mut(m, ptr, data.len() as i32) {
        Some(d) => {
            d.copy_from_slice(data);
            true
        }
        None => false,
    }
}

/// A NUL-terminated string at `ptr`, at most `max` bytes long.
pub fn cstr(m: &[u8], ptr: i32, max: usize) -> Option<&str> {
    let start = ptr as u32 as usize;
    let tail = m.get(start..)?;
    let tail = &tail[..tail.len().min(max + 1)];
    let end = tail.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&tail[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_out_of_range() {
        let m = [1u8, 2, 3, 0, 5];
        assert_eq!(slice(&m, 1, 2), Some(&[2u8, 3][..]));
        assert_eq!(slice(&m, 4, 2), None);
        assert_eq!(
            slice(&m, -1, 1),
            None,
            "negative pointers are large u32 offsets"
        );
        assert_eq!(slice(&m, 0, -1), None);
        assert_eq!(cstr(&m, 0, 16), Some("\u{1}\u{2}\u{3}"));
        assert_eq!(cstr(&m, 4, 16), None, "no terminator inside memory");
        assert_eq!(cstr(&m, 0, 2), None, "longer than max");
        let mut w = [0u8; 4];
        assert!(!write(&mut w, 2, &[1, 2, 3]));
        assert!(write(&mut w, 1, &[1, 2, 3]));
    }
}
