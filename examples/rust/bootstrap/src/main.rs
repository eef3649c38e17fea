//! bootstrap in Rust/Wasm: exec and exit events of processes, like libbpf-bootstrap's bootstrap.
//! The kernel half is tests/fixtures/bootstrap.bpf.c, embedded at build time
//! (BOOTSTRAP_BPF_OBJ=path/to/bootstrap.bpf.o cargo build --target wasm32-wasip1).
//!
//! Usage: bootstrap [-d MIN_DURATION_MS] [-c COMM]

use edge_bpf_guest::{OpenObject, EINTR};

static OBJ: &[u8] = include_bytes!(env!("BOOTSTRAP_BPF_OBJ"));

/// struct event of bootstrap.bpf.c.
fn field_i32(d: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(d[at..at + 4].try_into().unwrap())
}

fn cstr(d: &[u8]) -> String {
    let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut min_ms: u64 = 0;
    let mut comm = String::new();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "-d" => {
                i += 1;
                min_ms = args.get(i).and_then(|v| v.parse().ok()).unwrap_or_else(|| usage());
            }
            "-c" => {
                i += 1;
                comm = args.get(i).cloned().unwrap_or_else(|| usage());
            }
            _ => usage(),
        }
        i += 1;
    }
    let mut open = OpenObject::new(OBJ);
    open.set_global("min_duration_ns", &(min_ms * 1_000_000).to_le_bytes()).expect("min_duration_ns");
    let mut c = [0u8; 16];
    let n = comm.len().min(15);
    c[..n].copy_from_slice(&comm.as_bytes()[..n]);
    open.set_global("target_comm", &c).expect("target_comm");
    let obj = open.load().unwrap_or_else(|_| fail("loading the BPF object failed"));
    for prog in ["boot_exec", "boot_exit"] {
        obj.attach(prog, None).unwrap_or_else(|e| fail(&format!("attaching {prog}: errno {e}")));
    }
    let rb = obj.map("boot_rb").unwrap_or_else(|_| fail("no map boot_rb"));
    println!("{:<8} {:<5} {:<16} {:<7} {:<7} {}", "TIME", "EVENT", "COMM", "PID", "PPID", "FILENAME/EXIT CODE");
    loop {
        let r = obj.poll(&rb, 100, |d| {
            if d.len() < 168 {
                return 0;
            }
            let (pid, ppid, code) = (field_i32(d, 0), field_i32(d, 4), field_i32(d, 8));
            let dur = u64::from_le_bytes(d[16..24].try_into().unwrap());
            let comm = cstr(&d[24..40]);
            if d[167] != 0 {
                println!("{:<8} {:<5} {:<16} {:<7} {:<7} [{}] ({}ms)", "", "EXIT", comm, pid, ppid, code, dur / 1_000_000);
            } else {
                println!("{:<8} {:<5} {:<16} {:<7} {:<7} {}", "", "EXEC", comm, pid, ppid, cstr(&d[40..167]));
            }
            0
        });
        match r {
            Ok(_) => {}
            Err(EINTR) => break,
            Err(e) => fail(&format!("polling: errno {e}")),
        }
    }
}

fn usage() -> ! {
    eprintln!("Usage: bootstrap [-d MIN_DURATION_MS] [-c COMM]");
    std::process::exit(2)
}

fn fail(msg: &str) -> ! {
    eprintln!("bootstrap: {msg}");
    std::process::exit(1)
}
