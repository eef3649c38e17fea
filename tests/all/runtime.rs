//! The runtime as a library: several instances in one process, each on its own thread,
//! stopped one at a time while the others keep delivering.

use std::time::{Duration, Instant};

use edge_ecli::event::sink::Memory;
use edge_ecli::event::{Format, Stream};
use edge_ecli::package::Package;
use edge_ecli::runtime::{Instance, Options, State};

use crate::common::*;

fn start(path: &str, args: &[String], format: Format) -> (Instance, Memory) {
    let bytes = std::fs::read(path).unwrap();
    let pkg = Package::decode(bytes, path).unwrap();
    let sink = Memory::default();
    let opts = Options {
        format,
        ..Options::default()
    };
    let inst = Instance::start(pkg, args.to_vec(), opts, Box::new(sink.clone()))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    (inst, sink)
}

/// Waits until `sink`'s stdout contains `what` (10 s at most).
fn saw(sink: &Memory, what: &str) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if sink.text(Stream::Out).contains(what) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn three_instances_in_one_process_stop_one_at_a_time() {
    let _g = serial();
    if !kernel_ready("three_instances_in_one_process_stop_one_at_a_time") {
        return;
    }
    let me = std::process::id().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let fx = fixtures();
    let (sig_pkg, sig_out) = start(
        &example("package.json"),
        &s(&["--filtered_pid", &me]),
        Format::Json,
    );
    let (open_obj, open_out) = start(
        &fx.obj("opensnoop"),
        &s(&["--target_comm", "edge-trigger"]),
        Format::Json,
    );
    let (wasm, wasm_out) = start(&example("sigsnoop.wasm"), &s(&["-p", &me]), Format::Plain);
    for i in [&sig_pkg, &open_obj, &wasm] {
        assert!(matches!(i.state(), State::Running), "{:?}", i.state());
    }

    // All three deliver.
    let dir = std::env::temp_dir().join(format!("edge-ecli-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = dir.join("first").to_string_lossy().into_owned();
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    trigger(&["open", &first]);
    assert!(
        saw(&sig_out, &format!("\"tpid\":{cpid}")),
        "package: {}",
        sig_out.text(Stream::Out)
    );
    assert!(
        saw(&open_out, &first),
        "object: {}",
        open_out.text(Stream::Out)
    );
    assert!(
        saw(&wasm_out, &format!("\"tpid\":{cpid}")),
        "wasm: {}",
        wasm_out.text(Stream::Out)
    );

    // Stop the package; the other two keep delivering, it delivers nothing more.
    sig_pkg.stop();
    assert!(matches!(
        sig_pkg.wait(),
        Ok(edge_ecli::runtime::Outcome::Done)
    ));
    let before = sig_out.text(Stream::Out);
    let second = dir.join("second").to_string_lossy().into_owned();
    let cpid2 = signal_sleeper(&[libc::SIGUSR2]);
    trigger(&["open", &second]);
    assert!(
        saw(&open_out, &second),
        "object after the stop: {}",
        open_out.text(Stream::Out)
    );
    assert!(
        saw(&wasm_out, &format!("\"tpid\":{cpid2}")),
        "wasm after the stop: {}",
        wasm_out.text(Stream::Out)
    );
    assert_eq!(
        sig_out.text(Stream::Out),
        before,
        "a stopped instance delivers nothing"
    );
    assert!(open_obj.stats().events >= 2, "{:?}", open_obj.stats());

    // Stop the rest: nothing of any of them is left in the kernel.
    open_obj.stop();
    wasm.stop();
    assert!(open_obj.wait().is_ok());
    assert!(wasm.wait().is_ok());
    assert_no_leaks(&[
        "sig_trace",
        "sig_events",
        "open_enter",
        "open_exit",
        "open_rb",
        "open_start",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn a_failing_start_returns_the_error_and_leaves_nothing() {
    if !kernel_available("a_failing_start_returns_the_error_and_leaves_nothing") {
        return;
    }
    let bytes = std::fs::read(example("sigsnoop.bpf.o")).unwrap();
    let pkg = Package::decode(bytes, "sigsnoop.bpf.o").unwrap();
    let opts = Options {
        event_type: Some("no_such_struct".into()),
        ..Options::default()
    };
    let e = Instance::start(pkg, vec![], opts, Box::new(Memory::default()))
        .err()
        .expect("an unknown --event-type fails the start");
    assert!(
        e.to_string().contains("no struct named no_such_struct"),
        "{e}"
    );
}
