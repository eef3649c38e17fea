//! Appending text to output buffers without the formatting machinery: these run per field
//! per event. Pure.

/// Appends the decimal digits of `v` (no formatting machinery: this runs per field per event).
/// Two digits per step, and division written as a multiply: at opt-level "z" LLVM keeps `div`.
pub fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while v >= 100 {
        let q = div100(v);
        let r = (v - q * 100) as usize * 2;
        i -= 2;
        buf[i] = DIGIT_PAIRS[r];
        buf[i + 1] = DIGIT_PAIRS[r + 1];
        v = q;
    }
    if v >= 10 {
        i -= 2;
        buf[i] = DIGIT_PAIRS[v as usize * 2];
        buf[i + 1] = DIGIT_PAIRS[v as usize * 2 + 1];
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    // ASCII digits only: the check of at most 20 bytes always passes and costs next to nothing.
    if let Ok(digits) = std::str::from_utf8(&buf[i..]) {
        push_short(out, digits);
    }
}

const DIGIT_PAIRS: &[u8; 200] = b"\
    00010203040506070809101112131415161718192021222324252627282930313233343536373839\
    40414243444546474849505152535455565758596061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// `x / 100` for any u64, as compilers do it at -O2: ((x >> 2) * ceil(2^66 / 100)) >> 66.
#[inline(always)]
fn div100(x: u64) -> u64 {
    (((x >> 2) as u128 * 0x28F5_C28F_5C28_F5C3) >> 66) as u64
}

/// Appends `s`. Strings of up to 16 bytes are copied with fixed-size moves: musl's memcpy
/// starts with `rep movs`, whose start-up cost dominates copies of a few bytes, and keys and
/// short values are appended several times per event.
#[inline]
pub fn push_short(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let n = b.len();
    if n > 16 {
        out.push_str(s);
        return;
    }
    // SAFETY: reserve(16) leaves at least 16 writable bytes past the end; every read is inside
    // `b` (the two 8- or 4-byte halves overlap for n < 16) and exactly n valid UTF-8 bytes of
    // `s` are added to the length.
    unsafe {
        let vec = out.as_mut_vec();
        vec.reserve(16);
        let len = vec.len();
        let dst = vec.as_mut_ptr().add(len);
        let src = b.as_ptr();
        if n >= 8 {
            (dst as *mut u64).write_unaligned((src as *const u64).read_unaligned());
            let (d, s) = (dst.add(n - 8), src.add(n - 8));
            (d as *mut u64).write_unaligned((s as *const u64).read_unaligned());
        } else if n >= 4 {
            (dst as *mut u32).write_unaligned((src as *const u32).read_unaligned());
            let (d, s) = (dst.add(n - 4), src.add(n - 4));
            (d as *mut u32).write_unaligned((s as *const u32).read_unaligned());
        } else if n > 0 {
            *dst = *src;
            *dst.add(n / 2) = *src.add(n / 2);
            *dst.add(n - 1) = *src.add(n - 1);
        }
        vec.set_len(len + n);
    }
}

pub fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Fast path: most strings (comm, paths) need no escaping.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        push_short(out, s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `data` as lowercase hex digits.
pub fn push_hex(out: &mut String, data: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(data.len() * 2);
    for &b in data {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_short_strings_append_exactly() {
        let mut vals = vec![0u64, 9, 10, 99, 100, u32::MAX as u64, u64::MAX];
        vals.extend((0..20).map(|e| 10u64.pow(e)));
        vals.extend((1..20).map(|e| 10u64.pow(e) - 1));
        for v in vals {
            let mut out = String::from("x");
            push_u64(&mut out, v);
            assert_eq!(out, format!("x{v}"));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for v in [x, x >> 20, x >> 40, x % 1000] {
                let mut out = String::new();
                push_u64(&mut out, v);
                assert_eq!(out, v.to_string());
            }
        }
        let mut out = String::from("y");
        push_i64(&mut out, i64::MIN);
        assert_eq!(out, format!("y{}", i64::MIN));
        let text = "abcdefghijklmnopqrstuvwxyz";
        for n in 0..=text.len() {
            let mut out = String::from("z");
            push_short(&mut out, &text[..n]);
            assert_eq!(out, format!("z{}", &text[..n]));
        }
    }

    #[test]
    fn writes_escaped_strings_and_hex() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\n\u{1}");
        assert_eq!(s, r#""a\"b\\c\n\u0001""#);
        let mut h = String::new();
        push_hex(&mut h, &[0, 0xab, 0x7f]);
        assert_eq!(h, "00ab7f");
    }
}

/// The edit distance (insertions, deletions, substitutions, and swaps of neighbours) between
/// two short words, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be what was meant (one edit in
/// a short word, two in a longer one).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    if word.len() > 64 {
        return None;
    }
    let limit = if word.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod suggest_tests {
    use super::*;

    #[test]
    fn close_words_are_suggested() {
        assert_eq!(edit_distance("rnu", "run"), 1);
        assert_eq!(edit_distance("lsit", "list"), 1);
        assert_eq!(closest("rnu", ["run", "info", "pull"]), Some("run"));
        assert_eq!(closest("lsit", ["list", "logs"]), Some("list"));
        assert_eq!(closest("daemn", ["daemon", "ctl"]), Some("daemon"));
        assert_eq!(closest("xyz", ["run", "info"]), None);
    }
}
