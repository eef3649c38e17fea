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
