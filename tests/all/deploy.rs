//! The fleet pieces: the container image, built offline by podman and run from its own
//! filesystem, and the Kubernetes manifests, validated offline against the API's schemas.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg_attr(edge_skip_k8s, ignore = "needs kubernetes-validate")]
#[test]
fn the_kubernetes_manifests_validate_offline() {
    let missing =
        (!have("kubernetes-validate")).then(|| "kubernetes-validate is not installed".to_string());
    if !skip_unless(
        "the_kubernetes_manifests_validate_offline",
        missing,
        "pip install kubernetes-validate (tests/setup.sh does)",
    ) {
        return;
    }
    let dir = root().join("deploy/kubernetes");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let o = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.30.0"])
        .args(&files)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    for f in &files {
        assert!(
            out.contains(f.rsplit('/').next().unwrap()),
            "{f} was not checked:\n{out}"
        );
    }
    // The DaemonSet runs the daemon with the desired state, the policy and the token mounted.
    let ds = std::fs::read_to_string(dir.join("daemonset.yaml")).unwrap();
    for want in [
        "hostPID: true",
        "/sys/fs/bpf",
        "/sys/kernel/btf",
        "/etc/edge-ecli/instances.json",
        "--token-file",
        "prometheus.io/scrape",
    ] {
        assert!(ds.contains(want), "{want} missing in the DaemonSet");
    }
}

#[cfg_attr(edge_skip_registry_root, ignore = "needs root, BTF, registry")]
#[test]
fn the_image_builds_offline_and_runs_a_package_from_its_own_files() {
    let _g = serial();
    if !kernel_available("the_image_builds_offline_and_runs_a_package_from_its_own_files") {
        return;
    }
    let missing = (!have("podman")).then(|| "podman is not installed".to_string());
    if !skip_unless(
        "the_image_builds_offline_and_runs_a_package_from_its_own_files",
        missing,
        "apt-get install podman (tests/setup.sh does)",
    ) {
        return;
    }
    let bin = root().join("target/x86_64-unknown-linux-musl/release/edge-ecli");
    let missing = (!bin.exists()).then(|| {
        format!(
            "{} is not built (bash targets/build.sh x86_64)",
            bin.display()
        )
    });
    if !skip_unless(
        "the_image_builds_offline_and_runs_a_package_from_its_own_files",
        missing,
        "the image holds the static binary",
    ) {
        return;
    }
    let tag = "localhost/edge-ecli:test";
    let o = Command::new("podman")
        .args([
            "build",
            "--network=none",
            "-f",
            "deploy/Containerfile",
            "-t",
            tag,
            ".",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "podman build: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new("podman")
        .args(["image", "mount", tag])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "podman image mount: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mnt = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let files: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.contains(&"edge-ecli".to_string()) && files.contains(&"packages".to_string()),
        "{files:?}"
    );
    // The image's own filesystem, with the kernel's /sys and /proc bound in (what a
    // privileged container gets), runs its package.
    let me = std::process::id().to_string();
    let script = format!(
        "mount --rbind /sys {mnt}/sys && mount -t proc proc {mnt}/proc && exec chroot {mnt} /edge-ecli run -j --timeout 4 /packages/sigsnoop.json --filtered_pid {me}"
    );
    let mut child = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the chrooted run did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let _ = Command::new("podman")
        .args(["image", "unmount", tag])
        .output();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        json_lines(&out)
            .iter()
            .any(|l| field(l, "tpid") == Some(cpid.as_str()) && field(l, "sig") == Some("10")),
        "no event from the image:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_no_leaks(&["sig_trace", "sig_events"]);
}
