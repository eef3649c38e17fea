//! Attach kinds whose target the section cannot name (design.md section 12), each proved on
//! the kernel with our own fixtures and traffic we make: a socket filter and xdp on lo, a
//! cgroup_skb program and sockops on a cgroup we create with a child we put in it, perf_event
//! sampling a busy child, and a Wasm guest that names its cgroup target. After each, nothing
//! is left: no program, map, cgroup attachment or xdp program.

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::*;

/// Where cgroup v2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host).
fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next() == Some("cgroup2"))
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
                .flatten()
        })
        .expect("no cgroup2 mount")
}

/// A cgroup made for one test, removed (with its processes gone) when dropped.
struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    fn new(test: &str) -> Cgroup {
        let path = cgroup2_root().join(format!("edge-ecli-test-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Cgroup { path }
    }

    fn s(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    /// What bpftool lists as attached to it (effective attachments excluded).
    fn attached(&self) -> String {
        let o = Command::new("bpftool")
            .args(["cgroup", "show"])
            .arg(&self.path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// A trigger (`udp PORT N`, `tcp PORT`) waiting for `go` on its stdin.
fn waiting_trigger(args: &[&str]) -> Child {
    Command::new(fixtures().trigger())
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap()
}

fn go(mut c: Child) {
    c.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(c.wait().unwrap().success(), "the trigger failed");
}

fn udp_port() -> (UdpSocket, String) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port().to_string();
    (s, port)
}

fn with_port<'a>(lines: &'a [String], key: &str, port: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| field(l, key) == Some(port))
        .collect()
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn socket_filter_sees_a_packet_on_lo() {
    if !kernel_ready("socket_filter_sees_a_packet_on_lo") {
        return;
    }
    let (sock, port) = udp_port();
    let s = Session::start(&[
        "-j",
        "--iface",
        "lo",
        &fixtures().obj("sockfilter"),
        "--target_port",
        &port,
    ]);
    for _ in 0..3 {
        sock.send_to(b"edge", format!("127.0.0.1:{port}")).unwrap();
    }
    s.wait_for(|o| o.contains(&format!("\"dport\":{port}")));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let lines = json_lines(&f.stdout);
    let seen = with_port(&lines, "dport", &port);
    assert!(!seen.is_empty(), "no packet to {port}:\n{}", f.stdout);
    for l in &seen {
        assert_eq!(field(l, "kind"), Some("1"), "{l}");
        assert_eq!(field(l, "proto"), Some("17"), "{l}");
        // Ethernet + IPv4 + UDP headers and our 4 bytes.
        assert_eq!(field(l, "len"), Some("46"), "{l}");
    }
    assert_no_leaks(&["sock_filter", "pkts"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn xdp_on_lo_sees_a_packet_and_is_detached_after() {
    if !kernel_ready("xdp_on_lo_sees_a_packet_and_is_detached_after") {
        return;
    }
    let (sock, port) = udp_port();
    let s = Session::start(&[
        "-j",
        "--iface",
        "lo",
        &fixtures().obj("xdppkt"),
        "--target_port",
        &port,
    ]);
    let link = || {
        let o = Command::new("ip")
            .args(["link", "show", "lo"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(link().contains("xdp"), "not attached to lo: {}", link());
    sock.send_to(b"edge", format!("127.0.0.1:{port}")).unwrap();
    s.wait_for(|o| o.contains(&format!("\"dport\":{port}")));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let lines = json_lines(&f.stdout);
    let seen = with_port(&lines, "dport", &port);
    assert!(!seen.is_empty(), "no packet to {port}:\n{}", f.stdout);
    assert_eq!(field(seen[0], "kind"), Some("3"));
    assert!(!link().contains("xdp"), "xdp left on lo: {}", link());
    assert_no_leaks(&["xdp_pkt", "pkts"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn cgroup_skb_counts_the_packets_of_a_child_in_our_cgroup() {
    if !kernel_ready("cgroup_skb_counts_the_packets_of_a_child_in_our_cgroup") {
        return;
    }
    let cg = Cgroup::new("skb");
    let (sock, port) = udp_port();
    let s = Session::start(&[
        "-j",
        "--cgroup",
        &cg.s(),
        &fixtures().obj("cgroupskb"),
        "--target_port",
        &port,
    ]);
    assert!(
        cg.attached().contains("count_egress"),
        "not attached to {}: {}",
        cg.s(),
        cg.attached()
    );
    // Ours, from outside the cgroup: not counted.
    sock.send_to(b"out", format!("127.0.0.1:{port}")).unwrap();
    let child = waiting_trigger(&["udp", &port, "3"]);
    cg.add(child.id());
    go(child);
    s.wait_for(|o| o.matches(&format!("\"dport\":{port}")).count() >= 3);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let lines = json_lines(&f.stdout);
    let seen = with_port(&lines, "dport", &port);
    assert_eq!(seen.len(), 3, "{}", f.stdout);
    for l in &seen {
        assert_eq!(field(l, "kind"), Some("2"), "{l}");
        // IPv4 + UDP headers and "edge" (ours, "out", was 3 bytes and outside).
        assert_eq!(field(l, "len"), Some("32"), "{l}");
    }
    assert!(!cg.attached().contains("count_egress"), "{}", cg.attached());
    assert_no_leaks(&["count_egress", "pkts"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn sockops_sees_a_loopback_tcp_connection() {
    if !kernel_ready("sockops_sees_a_loopback_tcp_connection") {
        return;
    }
    let cg = Cgroup::new("sockops");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let s = Session::start(&["-j", "--cgroup", &cg.s(), &fixtures().obj("sockops")]);
    let child = waiting_trigger(&["tcp", &port]);
    cg.add(child.id());
    go(child);
    let _ = listener.accept().unwrap();
    s.wait_for(|o| o.contains(&format!("\"rport\":{port}")));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let lines = json_lines(&f.stdout);
    let active = with_port(&lines, "rport", &port);
    // BPF_SOCK_OPS_TCP_CONNECT_CB (3) then ACTIVE_ESTABLISHED_CB (4), AF_INET (2).
    let ops: Vec<&str> = active.iter().filter_map(|l| field(l, "op")).collect();
    assert_eq!(ops, ["3", "4"], "{}", f.stdout);
    assert!(active.iter().all(|l| field(l, "family") == Some("2")));
    // The accepting side runs in our own cgroup, which nothing is attached to.
    assert!(with_port(&lines, "lport", &port).is_empty(), "{}", f.stdout);
    assert!(!cg.attached().contains("sock_ops"), "{}", cg.attached());
    assert_no_leaks(&["sock_ops", "socks"]);

    // The default cgroup is the cgroup v2 root, wherever it is mounted: it sees ours too.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let s = Session::start(&["-j", &fixtures().obj("sockops")]);
    let _c = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let _ = listener.accept().unwrap();
    s.wait_for(|o| o.contains(&format!("\"lport\":{port}")));
    let f = s.stop_with(libc::SIGINT);
    assert!(
        f.stdout.contains(&format!("\"lport\":{port}")),
        "the passive side was not seen at the root:\n{}\n{}",
        f.stdout,
        f.stderr
    );
    assert_no_leaks(&["sock_ops", "socks"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn perf_event_samples_a_busy_child() {
    if !kernel_ready("perf_event_samples_a_busy_child") {
        return;
    }
    let mut spinner = Command::new(fixtures().trigger())
        .args(["spin", "3"])
        .spawn()
        .unwrap();
    let pid = spinner.id().to_string();
    let s = Session::start(&[
        "-j",
        "--freq",
        "199",
        &fixtures().obj("perfsample"),
        "--target_tgid",
        &pid,
    ]);
    s.wait_for(|o| o.matches(&format!("\"pid\":{pid},")).count() >= 40);
    let f = s.stop_with(libc::SIGINT);
    let _ = spinner.kill();
    let _ = spinner.wait();
    assert!(f.status.success(), "{}", f.stderr);
    let lines = json_lines(&f.stdout);
    // 199 Hz on a busy CPU: well over 40 samples in the time it took; only our spinner.
    assert!(lines.len() >= 40, "{} samples:\n{}", lines.len(), f.stdout);
    assert!(
        lines
            .iter()
            .all(|l| field(l, "pid") == Some(pid.as_str())
                && field(l, "comm") == Some("edge-trigger")),
        "{}",
        f.stdout
    );
    assert_no_leaks(&["do_sample", "samples"]);
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn wasm_guest_names_its_cgroup_target() {
    if !kernel_ready("wasm_guest_names_its_cgroup_target") {
        return;
    }
    // The upstream workflow: build the BPF half (object + skeleton), then the C guest.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cgroup-app");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let b = run(&[
        "build",
        &root()
            .join("tests/fixtures/cgroupskb.bpf.c")
            .to_string_lossy(),
        "-o",
        &dir.join("package.json").to_string_lossy(),
    ]);
    assert!(b.status.success(), "{}", b.stderr);
    let app = dir.join("cgroup_app.wasm");
    let cc = Command::new("clang-19")
        .args([
            "--target=wasm32-wasi",
            "--sysroot=/usr",
            "-O2",
            "-Wl,--export-table",
        ])
        .arg("-I")
        .arg(root().join("sdk/c"))
        .arg("-I")
        .arg(&dir)
        .arg("-I")
        .arg(root().join("tests/fixtures"))
        .arg(root().join("tests/fixtures/build/cgroup_app.c"))
        .arg("-o")
        .arg(&app)
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );

    let cg = Cgroup::new("wasm");
    let (_sock, port) = udp_port();
    let s = Session::start_until(
        &[&app.to_string_lossy(), &cg.s(), &port],
        "cgroup_app: attached to",
    );
    assert!(cg.attached().contains("count_egress"), "{}", cg.attached());
    let child = waiting_trigger(&["udp", &port, "2"]);
    cg.add(child.id());
    go(child);
    s.wait_for(|o| o.matches(&format!("\"dport\":{port}")).count() >= 2);
    let f = s.stop_with(libc::SIGTERM);
    assert!(f.status.success(), "{}", f.stderr);
    let lines = json_lines(&f.stdout);
    let seen = with_port(&lines, "dport", &port);
    assert_eq!(seen.len(), 2, "{}", f.stdout);
    assert!(seen.iter().all(|l| field(l, "kind") == Some("2")));
    assert!(!cg.attached().contains("count_egress"), "{}", cg.attached());
    assert_no_leaks(&["count_egress", "pkts"]);
}
