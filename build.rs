//! Tells the integration tests (`tests/all`) what this machine lacks, so that a test that
//! cannot run here is compiled `#[ignore = "needs ..."]` and `cargo test` counts it among the
//! ignored in its own summary, instead of passing it without running it. `cargo test --
//! --include-ignored` runs them anyway (each then skips and says why; the run ends with a
//! count of what skipped). Under `CI=true` nothing is ignored: every test runs, and a
//! missing need fails it. Nothing here changes the library or the binary.

use std::path::Path;

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
