//! How often and how long loaded programs ran (`bpf_prog_info.run_cnt`, `run_time_ns`), for
//! the daemon's metrics. The kernel counts only while statistics are enabled: by the
//! `kernel.bpf_stats_enabled` sysctl, or by holding what [`enable`] returns (BPF_ENABLE_STATS,
//! Linux 5.8), as ebpf_exporter documents; counting costs every program run a few tens of ns.

use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// One program's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramStats {
    pub id: u32,
    pub run_count: u64,
    pub run_time: Duration,
}

/// The counts of the programs with these ids (those still loaded).
pub fn program_stats(ids: &[u32]) -> Vec<ProgramStats> {
    if ids.is_empty() {
        return vec![];
    }
    aya::programs::loaded_programs()
        .flatten()
        .filter(|p| ids.contains(&p.id()))
        .map(|p| ProgramStats {
            id: p.id(),
            run_count: p.run_count(),
            run_time: p.run_time(),
        })
        .collect()
}

/// Keeps the kernel counting runs while it is held.
pub struct Enabled(#[allow(dead_code)] OwnedFd);

/// Turns run statistics on for as long as the result lives.
pub fn enable() -> Result<Enabled> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map(Enabled)
        .map_err(|e| {
            Error::new(
                ErrorKind::Kernel,
                format!("enabling BPF run statistics (BPF_ENABLE_STATS, Linux 5.8): {e}"),
            )
        })
}
