//! The fleet pieces: the Kubernetes manifests, validated offline against the API's schemas
//! and checked for what a node needs; the multi-arch image index, built offline by podman
//! from the three static binaries; and the DaemonSet as shipped, run by `podman run
//! --privileged` with its own arguments, mounts, ConfigMap and probes on this machine.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
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

fn sha256_of(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The image the manifests name: this version, never `latest`.
fn image_name() -> String {
    format!("localhost/edge-ecli:{}", env!("CARGO_PKG_VERSION"))
}

#[cfg_attr(edge_skip_k8s, ignore = "needs kubernetes-validate")]
#[test]
fn the_kubernetes_manifests_validate_offline_and_ask_for_what_a_node_needs() {
    let test = "the_kubernetes_manifests_validate_offline_and_ask_for_what_a_node_needs";
    let missing =
        (!have("kubernetes-validate")).then(|| "kubernetes-validate is not installed".to_string());
    if !skip_unless(
        test,
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
    assert!(files.len() >= 5, "{files:?}");
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
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let ds = read("daemonset.yaml");
    for want in [
        "hostPID: true",
        "hostNetwork: true",
        "dnsPolicy: ClusterFirstWithHostNet",
        "privileged: true",
        "appArmorProfile:\n              type: Unconfined",
        "container.apparmor.security.beta.kubernetes.io/edge-ecli: unconfined",
        "priorityClassName: edge-ecli-node-critical",
        "mountPropagation: Bidirectional",
        "path: /sys/fs/cgroup",
        "/sys/kernel/btf",
        "- --host-root\n            - /host",
        "mountPath: /host",
        "- --metrics-listen",
        "readinessProbe:",
        "livenessProbe:",
        "path: /healthz",
        "/etc/edge-ecli/instances.json",
        "prometheus.io/scrape",
        &format!("image: {}", image_name()),
    ] {
        assert!(ds.contains(want), "{want:?} missing in the DaemonSet");
    }
    assert!(!ds.contains(":latest"), "a version, not latest");
    assert!(
        !ds.contains("--listen"),
        "no TCP API with a token shipped in a Secret"
    );
    assert!(read("namespace.yaml").contains("pod-security.kubernetes.io/enforce: privileged"));
    assert!(read("priorityclass.yaml").contains("name: edge-ecli-node-critical"));
    // What the ConfigMap asks for starts: the image's own package, allowed by its digest.
    let cm = read("configmap.yaml");
    assert!(
        cm.contains("\"source\": \"/packages/sigsnoop.json\""),
        "{cm}"
    );
    let digest = sha256_of(&root().join("examples/sigsnoop/package.json"));
    assert!(
        cm.contains(&format!("sha256:{digest}")),
        "the policy allows the example package as it is now (sha256:{digest}):\n{cm}"
    );
    assert!(
        !cm.contains("example.org"),
        "no registry that does not exist"
    );
}

const TRIPLES: [(&str, &str, u16); 3] = [
    ("amd64", "x86_64-unknown-linux-musl", 0x3e),
    ("arm64", "aarch64-unknown-linux-musl", 0xb7),
    ("riscv64", "riscv64gc-unknown-linux-musl", 0xf3),
];

/// Builds the image index once per test run (targets/image.sh); None, with the reason, when
/// this machine cannot.
fn image_index(test: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let missing = ["podman", "skopeo"]
        .iter()
        .find(|c| !have(c))
        .map(|c| format!("{c} is not installed"))
        .or_else(|| {
            TRIPLES.iter().find_map(|(_, t, _)| {
                let b = root().join(format!("target/{t}/release/edge-ecli"));
                (!b.exists()).then(|| format!("{} is not built", b.display()))
            })
        });
    if !skip_unless(
        test,
        missing,
        "apt-get install podman skopeo; bash targets/build.sh x86_64 aarch64 riscv64",
    ) {
        return None;
    }
    let r = BUILT.get_or_init(|| {
        let o = Command::new("bash")
            .arg("targets/image.sh")
            .current_dir(root())
            .output()
            .unwrap();
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).into_owned());
        }
        Ok(root().join("target/edge-ecli-image.oci.tar"))
    });
    Some(
        r.clone()
            .unwrap_or_else(|e| panic!("targets/image.sh: {e}")),
    )
}

#[cfg_attr(
    edge_skip_registry,
    ignore = "needs podman and skopeo (and the static binaries: targets/build.sh)"
)]
#[test]
fn the_image_index_holds_the_static_binary_of_each_arch() {
    let test = "the_image_index_holds_the_static_binary_of_each_arch";
    let Some(archive) = image_index(test) else {
        return;
    };
    let src = format!("oci-archive:{}", archive.display());
    let o = Command::new("skopeo")
        .args(["inspect", "--raw", &src])
        .output()
        .unwrap();
    let index = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        index.contains("application/vnd.oci.image.index.v1+json"),
        "{index}"
    );
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-index");
    for (arch, triple, machine) in TRIPLES {
        assert!(
            index.contains(&format!("\"architecture\":\"{arch}\"")),
            "{arch}: {index}"
        );
        // The arch's image, copied out: its one layer holds that arch's binary, byte for byte.
        let d = scratch.join(arch);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let o = Command::new("skopeo")
            .args([
                "copy",
                "--override-os",
                "linux",
                "--override-arch",
                arch,
                &src,
            ])
            .arg(format!("dir:{}", d.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let bin = d.join("edge-ecli");
        let script = format!(
            "import tarfile,glob,sys\nfor p in glob.glob('{}/*'):\n  try:\n    t=tarfile.open(p)\n  except Exception:\n    continue\n  for m in t.getmembers():\n    if m.name.lstrip('./')=='edge-ecli':\n      open('{}','wb').write(t.extractfile(m).read()); sys.exit(0)\nsys.exit(1)",
            d.display(),
            bin.display()
        );
        let st = Command::new("python3")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(st.success(), "{arch}: no /edge-ecli in the layer");
        let want = root().join(format!("target/{triple}/release/edge-ecli"));
        assert_eq!(sha256_of(&bin), sha256_of(&want), "{arch}");
        let elf = std::fs::read(&bin).unwrap();
        assert_eq!(
            u16::from_le_bytes([elf[18], elf[19]]),
            machine,
            "{arch}: e_machine"
        );
    }
}

/// What the shipped DaemonSet and ConfigMap say, read by PyYAML (kubernetes-validate's own
/// dependency) into lines: `ARG a`, `ENV k=v`, `MOUNT vol path ro propagation`,
/// `HOST vol path`, `CM vol`, `SECRET vol key path`, `FILE key base64`, `PORT n`.
fn shipped() -> Vec<String> {
    let script = r#"
import base64, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
cm = yaml.safe_load(open(sys.argv[2]))
spec = d["spec"]["template"]["spec"]
c = spec["containers"][0]
for a in c["args"]: print("ARG", a)
for e in c.get("env", []): print("ENV", e["name"] + "=" + e["value"])
for m in c["volumeMounts"]:
    print("MOUNT", m["name"], m["mountPath"], int(m.get("readOnly", False)), m.get("mountPropagation", "None"))
for v in spec["volumes"]:
    if "hostPath" in v: print("HOST", v["name"], v["hostPath"]["path"])
    if "configMap" in v: print("CM", v["name"])
    if "secret" in v:
        for i in v["secret"].get("items", []): print("SECRET", v["name"], i["key"], i["path"])
for k, v in cm["data"].items(): print("FILE", k, base64.b64encode(v.encode()).decode())
print("PORT", c["ports"][0]["containerPort"])
print("PROBE", c["readinessProbe"]["httpGet"]["path"])
"#;
    let dir = root().join("deploy/kubernetes");
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(dir.join("daemonset.yaml"))
        .arg(dir.join("configmap.yaml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut o = String::new();
    c.read_to_string(&mut o).ok()?;
    Some(o)
}

fn unix_req(sock: &Path, method: &str, path: &str, body: &str) -> String {
    let mut c = std::os::unix::net::UnixStream::connect(sock).unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut o = String::new();
    let _ = c.read_to_string(&mut o);
    o
}

/// A container, removed when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "5", &self.0])
            .output();
    }
}

#[cfg_attr(edge_skip_registry_root, ignore = "needs root, BTF, registry")]
#[test]
fn the_shipped_daemonset_runs_under_podman_privileged() {
    let test = "the_shipped_daemonset_runs_under_podman_privileged";
    let _g = serial();
    if !kernel_ready(test) || image_index(test).is_none() {
        return;
    }
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("podman-daemonset");
    let _ = std::fs::remove_dir_all(&d);
    for sub in ["state", "run", "config", "pull"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let lines = shipped();
    let field = |tag: &str| -> Vec<Vec<String>> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{tag} ")))
            .map(|l| l.split(' ').map(str::to_string).collect())
            .collect()
    };
    let port = field("PORT")[0][0].clone();
    let probe = field("PROBE")[0][0].clone();
    // The node's directories are bound as the DaemonSet's hostPaths are, except the state
    // and the socket's directory, which stay in this test's scratch directory.
    let mut podman: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        format!("edge-ecli-test-{}", std::process::id()),
        "--privileged".into(),
        "--pid=host".into(),
        "--network=host".into(),
        // This machine withholds CAP_SYS_RESOURCE, so podman may not raise these limits
        // (its defaults for root containers); lower ones need no privilege.
        "--ulimit".into(),
        "nofile=1024:1024".into(),
        "--ulimit".into(),
        "nproc=4096:4096".into(),
    ];
    for e in field("ENV") {
        podman.extend(["--env".into(), e[0].clone()]);
    }
    let hosts = field("HOST");
    for m in field("MOUNT") {
        let (vol, path, ro, prop) = (&m[0], &m[1], m[2] == "1", &m[3]);
        let source = match hosts.iter().find(|h| &h[0] == vol) {
            Some(h) if h[1] == "/var/lib/edge-ecli" => d.join("state"),
            Some(h) if h[1] == "/run/edge-ecli" => d.join("run"),
            Some(h) => PathBuf::from(&h[1]),
            None if field("CM").iter().any(|c| &c[0] == vol) => d.join("config"),
            None => d.join("pull"),
        };
        let mut opt = String::new();
        if ro {
            opt.push_str(":ro");
        }
        let shared = match prop.as_str() {
            "Bidirectional" => "rshared",
            "HostToContainer" => "rslave",
            _ => "",
        };
        if !shared.is_empty() {
            opt.push_str(if opt.is_empty() { ":" } else { "," });
            opt.push_str(shared);
        }
        podman.extend(["-v".into(), format!("{}:{path}{opt}", source.display())]);
    }
    for f in field("FILE") {
        let mut b64 = Command::new("base64")
            .arg("-d")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        b64.stdin
            .take()
            .unwrap()
            .write_all(f[1].as_bytes())
            .unwrap();
        let out = b64.wait_with_output().unwrap();
        std::fs::write(d.join("config").join(&f[0]), out.stdout).unwrap();
    }
    for s in field("SECRET") {
        std::fs::write(d.join("pull").join(&s[2]), "{\"auths\":{}}").unwrap();
    }
    // For the uprobe check: the fixture, built for a function of the trigger on this node.
    let fx = fixtures();
    podman.extend(["-v".into(), format!("{}:/fixtures:ro", fx.dir.display())]);
    if have("runc") {
        // crun refuses this machine's hybrid cgroup hierarchy; runc takes it.
        podman.insert(0, "--runtime=runc".into());
    }
    podman.push(image_name());
    podman.extend(field("ARG").into_iter().map(|a| a[0].clone()));
    let o = Command::new("podman").args(&podman).output().unwrap();
    assert!(
        o.status.success(),
        "podman {}: {}",
        podman.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    let c = Container(format!("edge-ecli-test-{}", std::process::id()));
    let logs = || {
        let o = Command::new("podman")
            .args(["logs", &c.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    // The probes' endpoint answers, without a token.
    let addr = format!("127.0.0.1:{port}");
    let t0 = Instant::now();
    loop {
        if http_get(&addr, &probe).is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no {probe} on {addr}:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The ConfigMap's package runs from the image's own files, allowed by the shipped policy.
    let sock = d.join("run/edge-ecli.sock");
    let t0 = Instant::now();
    while !unix_req(&sock, "GET", "/v1/instances/sigsnoop", "").contains("\"state\":\"running\"") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "sigsnoop does not run:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    let t0 = Instant::now();
    while !unix_req(&sock, "GET", "/v1/instances/sigsnoop/events", "")
        .contains(&format!("\"tpid\":{cpid}"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no event for {cpid}:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // uprobe/PATH names a file of the node, not of the image: --host-root finds it. The
    // shipped policy refuses it until the ConfigMap's policy lists it, which the daemon
    // reads again when it changes.
    let put = || {
        unix_req(
            &sock,
            "PUT",
            "/v1/instances/up",
            "{\"source\":\"/fixtures/uprobe.bpf.o\"}",
        )
    };
    let r = put();
    assert!(
        r.starts_with("HTTP/1.1 422") && r.contains("allow-list"),
        "{r}"
    );
    let policy = d.join("config/policy.json");
    let text = std::fs::read_to_string(&policy).unwrap();
    let more = text.replace(
        "\"allow_digests\": [",
        &format!(
            "\"allow_digests\": [\"sha256:{}\", ",
            sha256_of(&fx.dir.join("uprobe.bpf.o"))
        ),
    );
    std::fs::write(d.join("config/policy.new"), more).unwrap();
    std::fs::rename(d.join("config/policy.new"), &policy).unwrap();
    let t0 = Instant::now();
    loop {
        let r = put();
        if r.starts_with("HTTP/1.1 201") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "{r}\n{}", logs());
        std::thread::sleep(Duration::from_millis(300));
    }
    trigger(&["uprobe", "4242"]);
    let t0 = Instant::now();
    while !unix_req(&sock, "GET", "/v1/instances/up/events", "").contains("\"arg\":4242") {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no uprobe event:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // What Prometheus scrapes passes promtool.
    let m = http_get(&addr, "/metrics").unwrap();
    let body = m.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    assert!(
        body.contains("edge_ecli_instance_state{ebpf_instance=\"sigsnoop\",state=\"running\"} 1"),
        "{body}"
    );
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let o = p.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // Kubernetes stops a pod with SIGTERM: everything is released.
    let o = Command::new("podman")
        .args(["stop", "-t", "30", &c.0])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("podman")
        .args(["inspect", "--format", "{{.State.ExitCode}}", &c.0])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0", "{}", logs());
    assert_no_leaks(&["sig_trace", "sig_events", "up_target", "up_rb"]);
}
