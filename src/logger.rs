//! `log` backend: one line per record on stderr, prefixed with the program name.

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "edge-ecli: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

pub fn init(verbosity: u8) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match verbosity {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        _ => LevelFilter::Debug,
    });
}

pub fn raise_to_debug() {
    log::set_max_level(LevelFilter::Debug);
}

static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Marks the start of the process, for the phase log (`-v`).
pub fn mark_start() {
    let _ = START.set(std::time::Instant::now());
}

/// Milliseconds since `mark_start` (or since the first call).
pub fn since_start_ms() -> u64 {
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}
