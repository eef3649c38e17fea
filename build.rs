//! Two jobs at build time:
//! - Packs the BPF-side headers that `edge-ecli build` carries (libbpf's, third_party/libbpf/include,
//!   see its README; the C SDK's BPF side, sdk/c/edge, as `edge/`) into one deflated blob the binary embeds: for each file, its path relative
//!   to that directory, a NUL, its length as 8 little-endian bytes, its bytes.
//! - Tells the integration tests (`tests/all`) what this machine lacks, so that a test that
//!   cannot run here is compiled `#[ignore = "needs ..."]` and `cargo test` counts it among the
//!   ignored in its own summary, instead of passing it without running it. `cargo test --
//!   --include-ignored` runs them anyway (each then skips and says why; the run ends with a
//!   list of what skipped). Under `CI=true` nothing is ignored: every test runs, and a missing
//!   need fails it. These cfgs change nothing in the library or the binary.

use std::path::Path;

fn collect(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let rel_name = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if p.is_dir() {
            collect(&p, &rel_name, out);
        } else {
            out.push((rel_name, std::fs::read(&p).expect("a header")));
        }
    }
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

fn all_on_path(cmds: &[&str]) -> bool {
    cmds.iter().all(|c| on_path(c))
}

/// Root, from /proc (the build script has no libc of its own).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().nth(1))
            == Some("0")
    })
}

fn python_has_cryptography() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() {
    pack_headers();
    test_skips();
}

fn pack_headers() {
    let dir = Path::new("third_party/libbpf/include");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    collect(dir, "", &mut files);
    let sdk = Path::new("sdk/c/edge");
    println!("cargo:rerun-if-changed={}", sdk.display());
    collect(sdk, "edge", &mut files);
    let mut raw = Vec::new();
    for (name, data) in files {
        raw.extend_from_slice(name.as_bytes());
        raw.push(0);
        raw.extend_from_slice(&(data.len() as u64).to_le_bytes());
        raw.extend_from_slice(&data);
    }
    let packed = miniz_oxide::deflate::compress_to_vec(&raw, 9);
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("libbpf-headers.bin");
    std::fs::write(out, packed).expect("writing the packed headers");
}

fn test_skips() {
    println!("cargo:rerun-if-changed=build.rs");
    for v in ["CI", "PATH", "USER", "SUDO_UID"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    let root = is_root() && Path::new("/sys/kernel/btf/vmlinux").exists();
    let toolchain = all_on_path(&["clang-19", "bpftool", "cc"]);
    let registry = all_on_path(&[
        "docker-registry",
        "skopeo",
        "minisign",
        "htpasswd",
        "openssl",
        "podman",
    ]) && python_has_cryptography();
    let cli = all_on_path(&["zsh", "fish", "groff", "systemd-analyze", "script"]);
    let k8s = on_path("kubernetes-validate");
    // What each class of test needs; a class whose needs are missing is skipped.
    let classes = [
        ("edge_skip_kernel", root && toolchain),
        ("edge_skip_root", root),
        ("edge_skip_toolchain", toolchain),
        ("edge_skip_registry", registry),
        ("edge_skip_registry_root", registry && root),
        ("edge_skip_cli", cli),
        ("edge_skip_k8s", k8s),
    ];
    let ci = std::env::var("CI").as_deref() == Ok("true");
    for (cfg, has) in classes {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if !has && !ci {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}
