//! Time and the end of the guest: clock_time_get, clock_res_get, poll_oneoff (sleeping, cut
//! short by a stop), sched_yield, random_get, proc_exit.

use std::time::Duration;

use wasmi::{Caller, Error as Trap, Linker};

use super::{put32, put64, written, M};
use super::{EFAULT, EINTR, EINVAL, EIO, ESUCCESS};
use crate::wasm::host::Host;
use crate::wasm::mem;

pub(super) fn add_to_linker(linker: &mut Linker<Host>) -> Result<(), wasmi::Error> {
    linker.func_wrap(M, "poll_oneoff", poll_oneoff)?;
    linker.func_wrap(
        M,
        "clock_time_get",
        |mut c: Caller<'_, Host>, id: i32, _prec: i64, out: i32| -> i32 {
            let clock = match id {
                0 => libc::CLOCK_REALTIME,
                1 => libc::CLOCK_MONOTONIC,
                2 => libc::CLOCK_PROCESS_CPUTIME_ID,
                3 => libc::CLOCK_THREAD_CPUTIME_ID,
                _ => return EINVAL,
            };
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: ts is a valid out-pointer.
            unsafe { libc::clock_gettime(clock, &mut ts) };
            let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            let (m, _) = mem::split(&mut c);
            written(put64(m, out, ns))
        },
    )?;
    linker.func_wrap(
        M,
        "clock_res_get",
        |mut c: Caller<'_, Host>, _id: i32, out: i32| -> i32 {
            let (m, _) = mem::split(&mut c);
            written(put64(m, out, 1))
        },
    )?;
    linker.func_wrap(
        M,
        "proc_exit",
        |_c: Caller<'_, Host>, code: i32| -> Result<(), Trap> { Err(Trap::i32_exit(code)) },
    )?;
    linker.func_wrap(M, "sched_yield", |_c: Caller<'_, Host>| -> i32 { ESUCCESS })?;
    linker.func_wrap(
        M,
        "random_get",
        |mut c: Caller<'_, Host>, buf: i32, len: i32| -> i32 {
            let (m, _) = mem::split(&mut c);
            let Some(dst) = mem::slice_mut(m, buf, len) else {
                return EFAULT;
            };
            let mut done = 0;
            while done < dst.len() {
                // SAFETY: writing into a checked slice of guest memory.
                let r = unsafe {
                    libc::getrandom(dst[done..].as_mut_ptr().cast(), dst.len() - done, 0)
                };
                if r <= 0 {
                    return EIO;
                }
                done += r as usize;
            }
            ESUCCESS
        },
    )?;
    Ok(())
}

/// poll_oneoff: clock subscriptions sleep (interruptibly: Ctrl-C or --timeout ends the wait
/// with EINTR); fd subscriptions are reported ready at once.
fn poll_oneoff(
    mut c: Caller<'_, Host>,
    sin: i32,
    sout: i32,
    nsubs: i32,
    nevents: i32,
) -> Result<i32, Trap> {
    if !(1..=64).contains(&nsubs) {
        return Ok(EINVAL);
    }
    if !c.data_mut().before_blocking()? {
        return Ok(EINTR);
    }
    Ok(poll_subscriptions(&mut c, sin, sout, nsubs, nevents))
}

fn poll_subscriptions(
    c: &mut Caller<'_, Host>,
    sin: i32,
    sout: i32,
    nsubs: i32,
    nevents: i32,
) -> i32 {
    let (m, h) = mem::split(c);
    let Some(subs) = mem::slice(m, sin, nsubs * 48).map(|s| s.to_vec()) else {
        return EFAULT;
    };
    let mut sleep: Option<Duration> = None;
    let mut events = Vec::new();
    for s in subs.chunks_exact(48) {
        let userdata = &s[0..8];
        let tag = s[8];
        let mut ev = [0u8; 32];
        ev[0..8].copy_from_slice(userdata);
        ev[10] = tag;
        match tag {
            0 => {
                let timeout = u64::from_le_bytes(s[24..32].try_into().unwrap_or_default());
                let abs = u16::from_le_bytes([s[40], s[41]]) & 1 != 0;
                let clock = match u32::from_le_bytes([s[16], s[17], s[18], s[19]]) {
                    0 => libc::CLOCK_REALTIME,
                    1 => libc::CLOCK_MONOTONIC,
                    _ => return EINVAL,
                };
                let d = if abs {
                    let mut ts = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    // SAFETY: valid out-pointer.
                    unsafe { libc::clock_gettime(clock, &mut ts) };
                    let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                    Duration::from_nanos(timeout.saturating_sub(now))
                } else {
                    Duration::from_nanos(timeout)
                };
                sleep = Some(sleep.map_or(d, |s: Duration| s.min(d)));
                events.push((Some(d), ev));
            }
            _ => events.push((None, ev)),
        }
    }
    let fd_ready = events.iter().any(|e| e.0.is_none());
    if let (Some(d), false) = (sleep, fd_ready) {
        if !h.control.sleep(d) {
            h.interrupted_wait();
            return EINTR;
        }
        // A guest paused while it slept does not wake up until resumed.
        h.hold_while_paused();
    }
    let mut n = 0;
    for (d, ev) in events.iter() {
        if fd_ready && d.is_some() {
            continue;
        }
        if !mem::write(m, sout.wrapping_add(32 * n), ev) {
            return EFAULT;
        }
        n += 1;
    }
    written(put32(m, nevents, n as u32))
}
