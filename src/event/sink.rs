//! Where an instance's output goes: formatted records, histograms, a Wasm guest's stdout and
//! stderr, and notes about the instance. The CLI writes to its own stdout and stderr
//! ([`Stdout`]); the daemon keeps a bounded log per instance that clients follow.

use std::io::Write;

/// Which of an instance's two outputs a write belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Events, results, a guest's stdout.
    Out,
    /// Notes, warnings, a guest's stderr.
    Err,
}

/// Where an instance writes its output; implement it to take the output somewhere else.
pub trait Sink: Send {
    /// Appends output. Event output arrives in whole lines; a guest's writes as it makes them.
    /// An error (the reader went away) ends the instance's event loop.
    fn write(&mut self, stream: Stream, bytes: &[u8]) -> std::io::Result<()>;

    /// A one-line note about the instance (a warning, what it reads), without a newline.
    fn note(&mut self, msg: &str) {
        let line = format!("edge-ecli: {msg}\n");
        let _ = self.write(Stream::Err, line.as_bytes());
    }
}

/// The process's own stdout and stderr.
pub struct Stdout;

impl Sink for Stdout {
    fn write(&mut self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
        match stream {
            Stream::Out => {
                let mut o = std::io::stdout().lock();
                o.write_all(bytes)?;
                o.flush()
            }
            Stream::Err => std::io::stderr().lock().write_all(bytes),
        }
    }
}

/// Collects everything in memory (tests, and the examples' self-checks).
#[derive(Default, Clone)]
pub struct Memory(pub std::sync::Arc<std::sync::Mutex<Writes>>);

/// What a [`Memory`] sink was given, in order.
pub type Writes = Vec<(Stream, Vec<u8>)>;

impl Memory {
    /// Everything written to `stream`, as text.
    pub fn text(&self, stream: Stream) -> String {
        let v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = v
            .iter()
            .filter(|(s, _)| *s == stream)
            .flat_map(|(_, b)| b.iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Sink for Memory {
    fn write(&mut self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((stream, bytes.to_vec()));
        Ok(())
    }
}
