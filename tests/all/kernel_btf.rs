//! Where the kernel's BTF comes from (issue 19), on this host: its sysfs BTF hidden in a mount
//! namespace of edge-ecli's own (a tmpfs over /sys/kernel/btf), so that each later source is
//! the one in use: the package's, the node directory's (BTFHub layout, flat `.tar.xz`), a
//! vmlinux image at libbpf's path, and none. The BTF each source holds is this kernel's own,
//! filed under this host's key; the CO-RE reads of the exec event prove it was applied.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// This host's BTFHub key parts: os-release ID and VERSION_ID, the BTFHub arch, `uname -r`.
fn host_key() -> (String, String, String, String) {
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let get = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        a => a,
    };
    let release = String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    (get("ID"), get("VERSION_ID"), arch.to_string(), release)
}

fn work(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("kernel_btf")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `edge-ecli ARGS` in a mount namespace where /sys/kernel/btf is an empty tmpfs (and, with
/// `boot`, /boot a tmpfs holding only `boot`'s file as vmlinux-RELEASE).
fn hidden(args: &[&str], boot: Option<&Path>) -> Command {
    let mut script = "mount -t tmpfs edge-nobtf /sys/kernel/btf".to_string();
    if let Some(b) = boot {
        script.push_str(&format!(
            " && mount -t tmpfs edge-boot /boot && cp {} /boot/vmlinux-$(uname -r)",
            b.display()
        ));
    }
    script.push_str(" && exec \"$0\" \"$@\"");
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(bin())
        .args(args);
    c
}

/// Runs the exec-event package `pkg` with `extra` flags (sysfs BTF hidden when `hide`),
/// execs the trigger and returns the run's stderr after checking the event: the trigger's
/// path read by the tracepoint, and this process as its parent (a CO-RE read of task_struct).
fn exec_event(pkg: &str, extra: &[&str], hide: bool, boot: Option<&Path>) -> String {
    let mut args = vec!["-v", "run", "-j"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[pkg, "--target_comm", "edge-trigger"]);
    let s = if hide {
        Session::spawn_cmd(hidden(&args, boot), "phases", &[])
    } else {
        let mut c = Command::new(bin());
        c.args(&args);
        Session::spawn_cmd(c, "phases", &[])
    };
    let me = format!("\"ppid\":{}", std::process::id());
    let file = format!("\"filename\":\"{}\"", fixtures().trigger());
    trigger(&["exit", "7"]);
    let out = s.wait_for(|o| o.contains(&file));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{pkg} {extra:?}: {}", f.stderr);
    let row = json_lines(&out)
        .into_iter()
        .find(|l| l.contains(&file))
        .unwrap_or_else(|| panic!("{pkg} {extra:?}: no exec event\n{out}\n{}", f.stderr));
    assert!(row.contains(&me), "{row}");
    f.stderr
}

/// A BTFHub tree holding this kernel's BTF under this host's key.
fn hub_with_own_btf(dir: &Path) -> PathBuf {
    let (id, ver, arch, release) = host_key();
    let leaf = dir.join(&id).join(&ver).join(&arch);
    std::fs::create_dir_all(&leaf).unwrap();
    let file = leaf.join(format!("{release}.btf"));
    std::fs::copy("/sys/kernel/btf/vmlinux", &file).unwrap();
    file
}

#[test]
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
fn kernel_btf_sources_in_order_with_sysfs_hidden() {
    if !kernel_ready("kernel_btf_sources_in_order_with_sysfs_hidden") {
        return;
    }
    let _g = serial();
    let (id, ver, arch, release) = host_key();
    let key = format!("{id}/{ver}/{arch}/{release}.btf");
    let d = work("order");
    let hub = d.join("hub");
    let in_hub = hub_with_own_btf(&hub);
    let obj = fixtures().obj("execcompat");
    let plain = fixtures().packed("execcompat");

    // pack --btfgen cuts the BTF to what the object needs and says what it added.
    let embedded = d.join("embedded.json").to_string_lossy().into_owned();
    let p = run(&[
        "pack",
        &obj,
        "--btfgen",
        &hub.to_string_lossy(),
        "-o",
        &embedded,
    ]);
    assert!(p.status.success(), "{}", p.stderr);
    assert!(
        p.stderr.contains("kernel BTF for 1 kernel(s)")
            && p.stderr.contains("bytes in the package"),
        "{}",
        p.stderr
    );
    let i = run(&["info", &embedded]);
    assert!(i.stdout.contains("kernel BTF carried ("), "{}", i.stdout);
    assert!(i.stdout.contains(&key), "{}", i.stdout);

    // 1. sysfs, when the kernel has it, over what the package carries.
    let e = exec_event(&embedded, &[], false, None);
    assert!(
        e.contains("kernel BTF: sysfs (/sys/kernel/btf/vmlinux)"),
        "{e}"
    );
    // --btf FILE, whatever else there is.
    let own = d.join("own.btf");
    std::fs::copy("/sys/kernel/btf/vmlinux", &own).unwrap();
    let e = exec_event(&embedded, &["--btf", &own.to_string_lossy()], false, None);
    assert!(
        e.contains(&format!("kernel BTF: --btf {}", own.display())),
        "{e}"
    );
    // 2. without sysfs: the package's, over the node directory's.
    let hub_s = hub.to_string_lossy().into_owned();
    let e = exec_event(&embedded, &["--btf-dir", &hub_s], true, None);
    assert!(
        e.contains(&format!("kernel BTF: the package ({key})")),
        "{e}"
    );
    // 3. a package without BTF: the node directory, BTFHub layout ...
    let e = exec_event(&plain, &["--btf-dir", &hub_s], true, None);
    assert!(
        e.contains(&format!(
            "kernel BTF: the node directory ({})",
            in_hub.display()
        )),
        "{e}"
    );
    // ... and flat, as btfhub-archive ships a file (RELEASE.btf.tar.xz, decompressed in Rust).
    let flat = d.join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    let xz = flat.join(format!("{release}.btf.tar.xz"));
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -cf - {release}.btf | xz -6 > {}",
            in_hub.parent().unwrap().display(),
            xz.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let e = exec_event(&plain, &["--btf-dir", &flat.to_string_lossy()], true, None);
    assert!(
        e.contains(&format!(
            "kernel BTF: the node directory ({})",
            xz.display()
        )),
        "{e}"
    );
    // 4. libbpf's vmlinux paths: an ELF whose .BTF section is this kernel's BTF.
    let vmlinux = d.join("vmlinux");
    let o = Command::new("llvm-objcopy-19")
        .arg("--add-section")
        .arg(format!(".BTF={}", own.display()))
        .arg(fixtures().trigger())
        .arg(&vmlinux)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty_s = empty.to_string_lossy().into_owned();
    let e = exec_event(&plain, &["--btf-dir", &empty_s], true, Some(&vmlinux));
    assert!(
        e.contains(&format!(
            "kernel BTF: a vmlinux image (/boot/vmlinux-{release}, its .BTF section)"
        )),
        "{e}"
    );
}

#[test]
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
fn kernel_btf_of_another_key_is_never_used() {
    if !kernel_ready("kernel_btf_of_another_key_is_never_used") {
        return;
    }
    let _g = serial();
    let (id, ver, arch, release) = host_key();
    let d = work("otherkey");
    // This kernel's BTF, filed under another release, another VERSION_ID and another arch.
    let other = [
        format!("{id}/{ver}/{arch}/{release}-other.btf"),
        format!("{id}/0{ver}/{arch}/{release}.btf"),
        format!("{id}/{ver}/riscv64/{release}.btf"),
        format!("{release}-other.btf"),
    ];
    for rel in &other {
        let p = d.join("hub").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy("/sys/kernel/btf/vmlinux", &p).unwrap();
    }
    let hub = d.join("hub").to_string_lossy().into_owned();
    let plain = fixtures().packed("execcompat");
    let o = hidden(&["run", "--timeout", "5", "--btf-dir", &hub, &plain], None)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "kernel BTF not found for {id}/{ver}/{arch}/{release}.btf"
        )) && err.contains("pass --btf FILE"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // A package carrying BTF for other kernels only: the same, and it says so.
    let cut = d.join("carried.json").to_string_lossy().into_owned();
    let p = run(&[
        "pack",
        &fixtures().obj("execcompat"),
        "--btfgen",
        &hub,
        "-o",
        &cut,
    ]);
    assert!(p.status.success(), "{}", p.stderr);
    let o = hidden(&["run", "--timeout", "5", "--btf-dir", &hub, &cut], None)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the package carries BTF for ") && err.contains(" other kernel(s)"),
        "{err}"
    );
}

/// What no BTF from elsewhere can stand in for: a tp_btf program needs the kernel's own.
#[test]
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
fn tp_btf_without_the_kernels_own_btf_is_one_clear_line() {
    if !kernel_ready("tp_btf_without_the_kernels_own_btf_is_one_clear_line") {
        return;
    }
    let _g = serial();
    let d = work("tpbtf");
    let hub = d.join("hub");
    hub_with_own_btf(&hub);
    let o = hidden(
        &[
            "run",
            "--timeout",
            "5",
            "--btf-dir",
            &hub.to_string_lossy(),
            &fixtures().obj("tpbtf"),
        ],
        None,
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "(section \"tp_btf/sched_process_exec\"): tp_btf programs need the kernel's own BTF"
        ),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_no_leaks(&["tpbtf_exec"]);
}

/// `push --btfgen` adds a btfgen layer of Inspektor Gadget's media type beside the package;
/// what `run` fetches from the registry carries it: on a kernel without BTF of its own, that
/// is the BTF used.
#[test]
#[cfg_attr(
    edge_skip_registry_root,
    ignore = "needs root, BTF, registry, clang-19"
)]
fn pushed_btfgen_layer_is_the_kernel_btf_of_the_pulled_package() {
    if !kernel_ready("pushed_btfgen_layer_is_the_kernel_btf_of_the_pulled_package")
        || !crate::distribution::services(
            "pushed_btfgen_layer_is_the_kernel_btf_of_the_pulled_package",
        )
    {
        return;
    }
    let _g = serial();
    let (id, ver, arch, release) = host_key();
    let d = work("push");
    let hub = d.join("hub");
    hub_with_own_btf(&hub);
    let (_reg, addr) =
        crate::distribution::registry(&d, "127.0.0.1", crate::distribution::Auth::None);
    let r = format!("{addr}/edge/execcompat:btf");
    let f = run(&[
        "push",
        &fixtures().obj("execcompat"),
        &r,
        "--btfgen",
        &hub.to_string_lossy(),
    ]);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(
        f.stderr.contains("kernel BTF for 1 kernel(s)"),
        "{}",
        f.stderr
    );
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{r}"),
        ])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&raw.stdout);
    assert!(m.contains("application/vnd.gadget.btfgen.v1+binary"), "{m}");
    let cache = d.join("cache").to_string_lossy().into_owned();
    let e = exec_event(
        &r,
        &["--cache-dir", &cache, "--btf-dir", "/nonexistent"],
        true,
        None,
    );
    assert!(
        e.contains(&format!(
            "kernel BTF: the package ({id}/{ver}/{arch}/{release}.btf)"
        )),
        "{e}"
    );
}

/// An Inspektor Gadget image whose btfgen layer (a tarball in BTFHub layout, xz'd here; our
/// own push writes tar.gz) holds this kernel's BTF: its eBPF layer runs with that BTF when
/// the kernel has none of its own.
#[test]
#[cfg_attr(
    edge_skip_registry_root,
    ignore = "needs root, BTF, registry, clang-19"
)]
fn inspektor_gadget_btfgen_layer_is_read() {
    if !kernel_ready("inspektor_gadget_btfgen_layer_is_read")
        || !crate::distribution::services("inspektor_gadget_btfgen_layer_is_read")
    {
        return;
    }
    let _g = serial();
    let (id, ver, arch, release) = host_key();
    let d = work("gadget");
    let hub = d.join("hub");
    hub_with_own_btf(&hub);
    let tgz = d.join("btfs.tar.xz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&hub)
        .arg("-cJf")
        .arg(&tgz)
        .arg(&id)
        .status()
        .unwrap();
    assert!(st.success());
    let layout = d.join("layout").to_string_lossy().into_owned();
    crate::distribution::py(&[
        "layout",
        &layout,
        "v1",
        "gadget-ebpf",
        &fixtures().obj("execcompat"),
        "amd64",
        &tgz.to_string_lossy(),
    ]);
    let e = exec_event(
        &format!("oci:{layout}:v1"),
        &["--btf-dir", "/nonexistent"],
        true,
        None,
    );
    assert!(
        e.contains(&format!(
            "kernel BTF: the package ({id}/{ver}/{arch}/{release}.btf)"
        )),
        "{e}"
    );
}
