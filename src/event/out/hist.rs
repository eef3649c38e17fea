//! Histograms byte-identical to libbpf-tools' `print_log2_hist` / `print_linear_hist`
//! (trace_helpers.c), which copy BCC's output.

use std::fmt::Write;

fn stars(out: &mut String, val: u32, val_max: u32, width: u32) {
    let num_stars = (val.min(val_max) as u64 * width as u64 / val_max.max(1) as u64) as u32;
    for _ in 0..num_stars {
        out.push('*');
    }
    for _ in num_stars..width {
        out.push(' ');
    }
    if val > val_max {
        out.push('+');
    }
}

pub fn log2(out: &mut String, vals: &[u32], val_type: &str) {
    let idx_max = match vals.iter().rposition(|&v| v > 0) {
        Some(i) => i,
        None => return,
    };
    let val_max = vals.iter().copied().max().unwrap_or(0);
    let small = idx_max <= 32;
    let _ = writeln!(
        out,
        "{:w1$}{:<w2$} : count    distribution",
        "",
        val_type,
        w1 = if small { 5 } else { 15 },
        w2 = if small { 19 } else { 29 }
    );
    let stars_max = if small { 40 } else { 20 };
    let width = if small { 10 } else { 20 };
    for (i, &val) in vals.iter().enumerate().take(idx_max + 1) {
        let mut low: u64 = (1u128 << (i + 1) >> 1) as u64;
        let high: u64 = ((1u128 << (i + 1)) - 1) as u64;
        if low == high {
            low -= 1;
        }
        // C prints %lld of unsigned long long: values above i64::MAX show negative.
        let _ = write!(
            out,
            "{:>width$} -> {:<width$} : {:<8} |",
            low as i64, high as i64, val as i32
        );
        stars(out, val, val_max, stars_max);
        out.push_str("|\n");
    }
}

pub fn linear(out: &mut String, vals: &[u32], base: u32, step: u32, val_type: &str) {
    let Some(idx_min) = vals.iter().position(|&v| v > 0) else {
        return;
    };
    let idx_max = vals.iter().rposition(|&v| v > 0).unwrap_or(idx_min);
    let val_max = vals.iter().copied().max().unwrap_or(0);
    let _ = writeln!(out, "     {val_type:<13} : count     distribution");
    for (i, &val) in vals.iter().enumerate().take(idx_max + 1).skip(idx_min) {
        if val == 0 {
            continue;
        }
        let bucket = base.wrapping_add((i as u32).wrapping_mul(step)) as i32;
        let _ = write!(out, "        {bucket:<10} : {:<8} |", val as i32);
        stars(out, val, val_max, 40);
        out.push_str("|\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_matches_libbpf_tools() {
        let mut out = String::new();
        log2(&mut out, &[0, 1, 4, 2, 0], "usecs");
        let want = "     usecs               : count    distribution\n\
\x20        0 -> 1          : 0        |                                        |\n\
\x20        2 -> 3          : 1        |**********                              |\n\
\x20        4 -> 7          : 4        |****************************************|\n\
\x20        8 -> 15         : 2        |********************                    |\n";
        assert_eq!(out, want);
        out.clear();
        log2(&mut out, &[0; 4], "x");
        assert_eq!(out, "");
    }

    #[test]
    fn linear_skips_empty_buckets() {
        let mut out = String::new();
        linear(&mut out, &[0, 3, 0, 6], 0, 5, "msecs");
        let want = "     msecs         : count     distribution\n\
\x20       5          : 3        |********************                    |\n\
\x20       15         : 6        |****************************************|\n";
        assert_eq!(out, want);
    }
}
