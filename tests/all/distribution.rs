//! Distribution against real services the tests start on 127.0.0.1: Debian's docker-registry
//! (anonymous, htpasswd Basic, and Bearer tokens from a small issuer), skopeo both ways, a
//! Python web server over HTTP and over HTTPS with a test CA, and a server that misbehaves on
//! purpose. Packages fetched each way run on the kernel; signatures verify offline.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const PYTHON: &str = "/usr/bin/python3";

fn tools() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools/oci.py")
        .to_string_lossy()
        .into_owned()
}

/// Skips (or fails under CI) unless the service binaries are installed.
pub(crate) fn services(test: &str) -> bool {
    let missing = [
        "docker-registry",
        "skopeo",
        "minisign",
        "htpasswd",
        "openssl",
    ]
    .iter()
    .find(|c| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
    })
    .map(|c| format!("{c} is not installed"));
    let missing = missing.or_else(|| {
        let ok = Command::new(PYTHON)
            .args(["-c", "import cryptography"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        (!ok).then(|| "python3-cryptography is not installed".to_string())
    });
    skip_unless(test, missing, "bash tests/setup.sh installs docker-registry, skopeo, minisign, apache2-utils, python3-cryptography")
}

/// A scratch directory for one test, emptied first.
pub(crate) fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dist")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(crate) fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A background service, killed when dropped.
pub(crate) struct Service(Child);

impl Service {
    pub(crate) fn start(cmd: &mut Command, addr: &str) -> Service {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let t0 = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{cmd:?} never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Service(child)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) enum Auth<'a> {
    None,
    Htpasswd(&'a Path),
    Token { realm: String, cert: &'a Path },
}

/// docker-registry on 127.0.0.1 (or `host`), storing under `dir`.
pub(crate) fn registry(dir: &Path, host: &str, auth: Auth) -> (Service, String) {
    let port = free_port();
    let addr = format!("{host}:{port}");
    let auth = match auth {
        Auth::None => String::new(),
        Auth::Htpasswd(f) => format!("auth:\n  htpasswd:\n    realm: edge-test\n    path: {}\n", f.display()),
        Auth::Token { realm, cert } => format!(
            "auth:\n  token:\n    realm: {realm}\n    service: edge-registry\n    issuer: edge-issuer\n    rootcertbundle: {}\n",
            cert.display()
        ),
    };
    let cfg = dir.join(format!("registry-{port}.yml"));
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
            dir.join(format!("storage-{port}")).display()
        ),
    )
    .unwrap();
    let svc = Service::start(
        Command::new("docker-registry").arg("serve").arg(&cfg),
        &addr,
    );
    (svc, addr)
}

pub(crate) fn py(args: &[&str]) {
    let o = Command::new(PYTHON)
        .arg(tools())
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oci.py {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub(crate) fn ok(f: &Finished, what: &str) {
    assert!(
        f.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        f.status,
        f.stdout,
        f.stderr
    );
}

/// One line on stderr, exit 1, with every `want` in it.
pub(crate) fn refused(f: &Finished, want: &[&str]) {
    assert_eq!(
        f.status.code(),
        Some(1),
        "stdout {}\nstderr {}",
        f.stdout,
        f.stderr
    );
    let lines: Vec<&str> = f.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{}", f.stderr);
    for w in want {
        assert!(lines[0].contains(w), "{w:?} not in {:?}", lines[0]);
    }
    assert!(!f.stderr.contains("panicked"));
}

/// Runs sigsnoop from `prog` (a package or object) with `opts`, sends a signal, checks the event.
fn sigsnoop_event(opts: &[&str], prog: &str, env: &[(&str, &str)]) -> String {
    let me = std::process::id().to_string();
    let mut args: Vec<&str> = vec!["-j"];
    args.extend_from_slice(opts);
    args.extend([prog, "--filtered_pid", me.as_str()]);
    let sess = Session::start_env(&args, env);
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    let out = sess.wait_for(|o| o.contains(&cpid));
    let f = sess.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{prog}: {}", f.stderr);
    let out = out + &f.stdout;
    let row = json_lines(&out)
        .into_iter()
        .find(|l| field(l, "tpid") == Some(cpid.as_str()))
        .unwrap_or_else(|| panic!("{prog}: no event for {cpid}:\n{out}\n{}", f.stderr));
    assert_eq!(field(&row, "sig"), Some("10"), "{row}");
    assert_no_leaks(&["sig_trace", "sig_events"]);
    f.stderr
}

/// Runs the example Wasm app from `prog`, sends a signal, checks its JSON line.
fn wasm_event(opts: &[&str], prog: &str) {
    let me = std::process::id().to_string();
    let mut args: Vec<&str> = opts.to_vec();
    args.extend([prog, "-p", me.as_str()]);
    let sess = Session::start_until(&args, "tracing signals");
    let cpid = signal_sleeper(&[libc::SIGUSR2]);
    let out = sess.wait_for(|o| o.contains(&cpid));
    let f = sess.stop_with(libc::SIGTERM);
    assert!(f.status.success(), "{prog}: {}", f.stderr);
    let out = out + &f.stdout;
    assert!(
        json_lines(&out)
            .iter()
            .any(|l| field(l, "tpid") == Some(cpid.as_str())
                && field(l, "sig_name") == Some("SIGUSR2")),
        "{prog}: no event for {cpid}:\n{out}"
    );
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

/// Files of the cache dir: (refs, blobs, leftover temporary files).
fn cache_files(cache: &Path) -> (usize, usize, usize) {
    let count = |d: &Path, pred: &dyn Fn(&str) -> bool| {
        std::fs::read_dir(d)
            .map(|r| {
                r.filter_map(Result::ok)
                    .filter(|e| pred(&e.file_name().to_string_lossy()))
                    .count()
            })
            .unwrap_or(0)
    };
    let tmp = |n: &str| n.contains(".tmp.");
    let all = |_: &str| true;
    (
        count(&cache.join("refs"), &all),
        count(&cache.join("blobs/sha256"), &|n| !tmp(n)),
        count(&cache.join("refs"), &tmp) + count(&cache.join("blobs/sha256"), &tmp),
    )
}

#[cfg_attr(edge_skip_registry_root, ignore = "needs root, BTF, registry")]
#[test]
fn push_pull_and_run_every_kind_from_a_registry() {
    let _g = serial();
    if !services("push_pull_and_run_every_kind_from_a_registry")
        || !kernel_available("push_pull_and_run_every_kind_from_a_registry")
    {
        return;
    }
    let d = scratch("every_kind");
    let (_reg, addr) = registry(&d, "127.0.0.1", Auth::None);
    let cache = s(&d.join("cache"));
    for (file, tag) in [
        ("package.json", "json"),
        ("sigsnoop.bpf.o", "obj"),
        ("sigsnoop.wasm", "wasm"),
    ] {
        let r = format!("{addr}/edge/sigsnoop:{tag}");
        let f = run(&["push", &example(file), &r]);
        ok(&f, "push");
        assert!(
            f.stdout.trim().starts_with(&format!("{r}@sha256:")),
            "{}",
            f.stdout
        );
        // pull -o writes the very bytes that were pushed.
        let out = s(&d.join(format!("pulled-{tag}")));
        ok(
            &run(&["pull", "--cache-dir", &cache, &r, "-o", &out]),
            "pull",
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(example(file)).unwrap()
        );
        if tag == "wasm" {
            wasm_event(&["--cache-dir", &cache], &r);
        } else {
            sigsnoop_event(&["--cache-dir", &cache], &r, &[]);
            let i = run(&["info", "--cache-dir", &cache, &r]);
            ok(&i, "info");
            assert!(i.stdout.contains("sig_trace"), "{}", i.stdout);
        }
    }
    // What we push for Wasm is ecli's format: one Wasm layer, a Wasm config.
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{addr}/edge/sigsnoop:wasm"),
        ])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&raw.stdout);
    assert!(
        m.contains("application/vnd.wasm.config.v1+json")
            && m.matches("application/vnd.wasm.content.layer.v1+wasm")
                .count()
                == 1,
        "{m}"
    );
}

#[cfg_attr(edge_skip_registry_root, ignore = "needs root, BTF, registry")]
#[test]
fn the_cache_runs_a_reference_offline_and_by_digest() {
    let _g = serial();
    if !services("the_cache_runs_a_reference_offline_and_by_digest")
        || !kernel_available("the_cache_runs_a_reference_offline_and_by_digest")
    {
        return;
    }
    let d = scratch("offline");
    let cache = s(&d.join("cache"));
    let (reg, addr) = registry(&d, "127.0.0.1", Auth::None);
    let r = format!("{addr}/edge/sigsnoop:v1");
    let pushed = run(&["push", &example("package.json"), &r]);
    ok(&pushed, "push");
    let digest = pushed.stdout.trim().rsplit('@').next().unwrap().to_string();
    sigsnoop_event(&["--cache-dir", &cache], &r, &[]);
    drop(reg);
    // The registry is gone: the tag runs from the cache, and says so.
    let err = sigsnoop_event(&["--cache-dir", &cache], &r, &[]);
    assert!(
        err.contains("unreachable") && err.contains(&digest),
        "{err}"
    );
    // By digest: from the cache, checked.
    let by_digest = format!("{addr}/edge/sigsnoop@{digest}");
    let err = sigsnoop_event(&["--cache-dir", &cache], &by_digest, &[]);
    assert!(err.contains("from the cache"), "{err}");
    // A reference never pulled here cannot run offline.
    let never = format!("{addr}/edge/other:v1");
    refused(
        &run(&["info", "--cache-dir", &cache, &never]),
        &[&never, "never pulled"],
    );
    // A wrong digest is refused.
    let wrong = format!("{addr}/edge/sigsnoop@sha256:{}", "0".repeat(64));
    let f = run(&["info", "--cache-dir", &cache, &wrong]);
    assert_eq!(f.status.code(), Some(1), "{}", f.stderr);
}

/// Writes a docker config.json with credentials for `registry`.
fn docker_config(dir: &Path, registry: &str, user: &str, pass: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let auth = std::process::Command::new("sh")
        .args(["-c", &format!("printf %s '{user}:{pass}' | base64 -w0")])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(
        dir.join("config.json"),
        format!(
            "{{\"auths\":{{\"{registry}\":{{\"auth\":\"{}\"}}}}}}",
            String::from_utf8_lossy(&auth)
        ),
    )
    .unwrap();
    s(dir)
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn basic_auth_with_docker_credentials() {
    if !services("basic_auth_with_docker_credentials") {
        return;
    }
    let d = scratch("basic");
    let htpasswd = d.join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbn", "edge", "s3cret"])
        .output()
        .unwrap();
    std::fs::write(&htpasswd, o.stdout).unwrap();
    let (_reg, addr) = registry(&d, "127.0.0.1", Auth::Htpasswd(&htpasswd));
    let r = format!("{addr}/edge/sigsnoop:v1");
    let home = s(&d.join("home"));
    let none = [("HOME", home.as_str()), ("DOCKER_CONFIG", "/nonexistent")];
    refused(
        &run_env(&["push", &example("package.json"), &r], &none),
        &[&r, "401", "docker login"],
    );
    let good = docker_config(&d.join("good"), &addr, "edge", "s3cret");
    let env = [("HOME", home.as_str()), ("DOCKER_CONFIG", good.as_str())];
    ok(
        &run_env(&["push", &example("package.json"), &r], &env),
        "push with credentials",
    );
    let cache = s(&d.join("cache"));
    let f = run_env(&["pull", "--cache-dir", &cache, &r], &env);
    ok(&f, "pull with credentials");
    let bad = docker_config(&d.join("bad"), &addr, "edge", "wrong");
    let f = run_env(
        &["pull", "--cache-dir", &cache, &r],
        &[("HOME", home.as_str()), ("DOCKER_CONFIG", bad.as_str())],
    );
    refused(&f, &[&r, "401", "were refused"]);
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn bearer_tokens_from_a_realm_with_podman_credentials() {
    if !services("bearer_tokens_from_a_realm_with_podman_credentials") {
        return;
    }
    let d = scratch("bearer");
    py(&["ca", &s(&d)]);
    let users = d.join("users");
    std::fs::write(&users, "edge:t0ken-pass\n").unwrap();
    let tport = free_port();
    let _issuer = Service::start(
        Command::new(PYTHON).arg(tools()).args([
            "token",
            &tport.to_string(),
            &s(&d.join("key.pem")),
            &s(&d.join("cert.pem")),
            &s(&users),
            "edge-issuer",
        ]),
        &format!("127.0.0.1:{tport}"),
    );
    let (_reg, addr) = registry(
        &d,
        "127.0.0.1",
        Auth::Token {
            realm: format!("http://127.0.0.1:{tport}/token"),
            cert: &d.join("ca.pem"),
        },
    );
    let r = format!("{addr}/edge/sigsnoop:v1");
    let home = s(&d.join("home"));
    // Anonymous tokens may pull but not push.
    let anon = [
        ("HOME", home.as_str()),
        ("DOCKER_CONFIG", "/nonexistent"),
        ("REGISTRY_AUTH_FILE", "/nonexistent"),
    ];
    let f = run_env(&["push", &example("package.json"), &r], &anon);
    assert_eq!(f.status.code(), Some(1), "{}", f.stderr);
    assert!(f.stderr.contains("401"), "{}", f.stderr);
    let auth = d.join("auth.json");
    std::fs::write(
        &auth,
        "{\"auths\":{\"".to_string() + &addr + "\":{\"auth\":\"ZWRnZTp0MGtlbi1wYXNz\"}}}",
    )
    .unwrap();
    let env = [
        ("HOME", home.as_str()),
        ("DOCKER_CONFIG", "/nonexistent"),
        ("REGISTRY_AUTH_FILE", auth.to_str().unwrap()),
    ];
    ok(
        &run_env(&["push", &example("sigsnoop.bpf.o"), &r], &env),
        "push with a token",
    );
    let cache = s(&d.join("cache"));
    ok(
        &run_env(&["pull", "--cache-dir", &cache, &r], &env),
        "pull with a token",
    );
    ok(
        &run_env(&["info", "--cache-dir", &s(&d.join("c2")), &r], &anon),
        "anonymous pull",
    );
    std::fs::write(
        &auth,
        "{\"auths\":{\"".to_string() + &addr + "\":{\"auth\":\"ZWRnZTpub3BlCg==\"}}}",
    )
    .unwrap();
    refused(
        &run_env(&["pull", "--cache-dir", &cache, &r], &env),
        &[&r, "token realm refused"],
    );
}

#[cfg_attr(edge_skip_registry_root, ignore = "needs root, BTF, registry")]
#[test]
fn skopeo_reads_what_we_push_and_we_run_what_it_pushes() {
    let _g = serial();
    if !services("skopeo_reads_what_we_push_and_we_run_what_it_pushes")
        || !kernel_available("skopeo_reads_what_we_push_and_we_run_what_it_pushes")
    {
        return;
    }
    let d = scratch("skopeo");
    let (_reg, addr) = registry(&d, "127.0.0.1", Auth::None);
    let cache = s(&d.join("cache"));
    let skopeo = |args: &[&str]| {
        let o = Command::new("skopeo").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    // Ours -> skopeo -> an OCI layout and an oci-archive -> we run them.
    let r = format!("{addr}/edge/app:v1");
    ok(&run(&["push", &example("sigsnoop.wasm"), &r]), "push");
    let lay = s(&d.join("layout"));
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{r}"),
        &format!("oci:{lay}:v1"),
    ]);
    wasm_event(&[], &format!("oci:{lay}:v1"));
    let arc = s(&d.join("app.tar"));
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{r}"),
        &format!("oci-archive:{arc}:v1"),
    ]);
    wasm_event(&[], &format!("oci-archive:{arc}"));
    // Layouts in other publishers' formats -> skopeo pushes them -> we run them.
    for fmt in ["bumblebee", "bpfman", "index"] {
        let l = s(&d.join(format!("l-{fmt}")));
        py(&["layout", &l, "v1", fmt, &example("sigsnoop.bpf.o"), "amd64"]);
        let target = format!("{addr}/pub/{fmt}:v1");
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--all",
            &format!("oci:{l}:v1"),
            &format!("docker://{target}"),
        ]);
        sigsnoop_event(&["--cache-dir", &cache], &target, &[]);
    }
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn inspektor_gadget_images_run_their_ebpf_layer_and_refuse_their_wasm() {
    if !services("inspektor_gadget_images_run_their_ebpf_layer_and_refuse_their_wasm") {
        return;
    }
    let d = scratch("gadget");
    let e = s(&d.join("ebpf"));
    py(&[
        "layout",
        &e,
        "v1",
        "gadget-ebpf",
        &example("sigsnoop.bpf.o"),
    ]);
    let f = run(&["info", &format!("oci:{e}:v1")]);
    ok(&f, "gadget eBPF layer");
    assert!(f.stdout.contains("sig_trace"), "{}", f.stdout);
    let w = s(&d.join("wasm"));
    py(&["layout", &w, "v1", "gadget-wasm", &example("sigsnoop.wasm")]);
    refused(
        &run(&["info", &format!("oci:{w}:v1")]),
        &["Inspektor Gadget", "Wasm"],
    );
}

#[cfg_attr(edge_skip_registry_root, ignore = "needs root, BTF, registry")]
#[test]
fn cosign_signatures_verify_offline_and_travel_with_a_layout() {
    let _g = serial();
    if !services("cosign_signatures_verify_offline_and_travel_with_a_layout")
        || !kernel_available("cosign_signatures_verify_offline_and_travel_with_a_layout")
    {
        return;
    }
    let d = scratch("cosign");
    let (a, apub) = (s(&d.join("a.key")), s(&d.join("a.pub")));
    let (b, bpub) = (s(&d.join("b.key")), s(&d.join("b.pub")));
    py(&["keygen", &a, &apub]);
    py(&["keygen", &b, &bpub]);
    let (reg, addr) = registry(&d, "127.0.0.1", Auth::None);
    let cache = s(&d.join("cache"));
    // Signed with A; another repository unsigned; a third signed for another digest.
    let signed = s(&d.join("signed"));
    py(&[
        "layout",
        &signed,
        "v1",
        "bumblebee",
        &example("sigsnoop.bpf.o"),
    ]);
    py(&[
        "sign-layout",
        &signed,
        "v1",
        &a,
        &format!("{addr}/s/signed"),
    ]);
    py(&["push-layout", &signed, "v1", &addr, "s/signed"]);
    let unsigned = s(&d.join("unsigned"));
    py(&[
        "layout",
        &unsigned,
        "v1",
        "bumblebee",
        &example("sigsnoop.bpf.o"),
    ]);
    py(&["push-layout", &unsigned, "v1", &addr, "s/unsigned"]);
    let r = format!("{addr}/s/signed:v1");
    let verify_a = ["--cache-dir", cache.as_str(), "--verify-key", apub.as_str()];
    let info = |extra: &[&str], prog: &str| {
        let mut v = vec!["info"];
        v.extend_from_slice(extra);
        v.push(prog);
        run(&v)
    };
    ok(&info(&verify_a, &r), "signed with the trusted key");
    refused(
        &info(&["--cache-dir", &cache, "--verify-key", &bpub], &r),
        &[&r, "refused by the trust policy", "does not verify"],
    );
    let u = format!("{addr}/s/unsigned:v1");
    refused(&info(&verify_a, &u), &[&u, "not signed"]);
    // Refused before loading: nothing reaches the kernel.
    refused(
        &run(&["run", "--cache-dir", &cache, "--verify-key", &apub, &u]),
        &["not signed"],
    );
    assert_no_leaks(&["sig_trace", "sig_events"]);
    // A valid signature of another manifest, put under this one's signature tag.
    let forged = s(&d.join("forged"));
    py(&[
        "layout",
        &forged,
        "v1",
        "bumblebee",
        &example("package.json"),
    ]);
    let elsewhere = format!("sha256:{}", "e".repeat(64));
    py(&["sign-layout", &forged, "v1", &a, "x", &elsewhere]);
    py(&["push-layout", &forged, "v1", &addr, "s/forged"]);
    let fr = format!("{addr}/s/forged:v1");
    refused(
        &info(&verify_a, &fr),
        &[&fr, &format!("for {elsewhere}, not this artifact")],
    );
    // pull to a layout keeps the signature; with the registry gone the layout verifies.
    let lay = s(&d.join("pulled"));
    ok(
        &run(&[
            "pull",
            "--cache-dir",
            &cache,
            "--verify-key",
            &apub,
            &r,
            "-o",
            &format!("oci:{lay}:v1"),
        ]),
        "pull to a layout",
    );
    drop(reg);
    ok(
        &info(&verify_a, &format!("oci:{lay}:v1")),
        "the layout verifies offline",
    );
    refused(
        &info(&["--verify-key", &bpub], &format!("oci:{lay}:v1")),
        &["does not verify"],
    );
    ok(&info(&verify_a, &r), "the cache verifies offline");
    sigsnoop_event(&["--verify-key", &apub], &format!("oci:{lay}:v1"), &[]);
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn minisign_signatures_of_files_and_urls() {
    if !services("minisign_signatures_of_files_and_urls") {
        return;
    }
    let d = scratch("minisign");
    let (pk, sk) = (d.join("minisign.pub"), d.join("minisign.key"));
    let o = Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&pk)
        .arg("-s")
        .arg(&sk)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "minisign -G: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let www = d.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let pkg = www.join("package.json");
    std::fs::copy(example("package.json"), &pkg).unwrap();
    let o = Command::new("minisign")
        .args(["-S", "-s"])
        .arg(&sk)
        .arg("-m")
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "minisign -S: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let key = s(&pk);
    let p = s(&pkg);
    ok(&run(&["info", "--verify-key", &key, &p]), "signed file");
    let tampered = d.join("tampered.json");
    let text = std::fs::read_to_string(&pkg)
        .unwrap()
        .replacen("sig_trace", "sig_tracf", 1);
    std::fs::write(&tampered, text).unwrap();
    std::fs::copy(
        format!("{p}.minisig"),
        format!("{}.minisig", tampered.display()),
    )
    .unwrap();
    refused(
        &run(&["info", "--verify-key", &key, &s(&tampered)]),
        &["refused by the trust policy", "does not match"],
    );
    refused(
        &run(&["info", "--verify-key", &key, &example("package.json")]),
        &["not signed"],
    );
    // A URL and its .minisig beside it.
    let port = free_port();
    let _web = Service::start(
        Command::new(PYTHON)
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(&www),
        &format!("127.0.0.1:{port}"),
    );
    let url = format!("http://127.0.0.1:{port}/package.json");
    let cache = s(&d.join("cache"));
    ok(
        &run(&["info", "--cache-dir", &cache, "--verify-key", &key, &url]),
        "signed URL",
    );
    refused(
        &run(&[
            "info",
            "--cache-dir",
            &cache,
            &format!("http://127.0.0.1:{port}/nothing.json"),
        ]),
        &["not found"],
    );
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn policy_files_and_digest_allow_lists() {
    if !services("policy_files_and_digest_allow_lists") {
        return;
    }
    let d = scratch("policy");
    let (k, kp) = (s(&d.join("c.key")), s(&d.join("c.pub")));
    py(&["keygen", &k, &kp]);
    let pkg = example("package.json");
    let digest = format!(
        "sha256:{}",
        String::from_utf8_lossy(&Command::new("sha256sum").arg(&pkg).output().unwrap().stdout)
            .split_whitespace()
            .next()
            .unwrap()
    );
    let policy = d.join("policy.json");
    std::fs::write(
        &policy,
        "{\"require_signature\": true, \"keys\": [\"c.pub\"]}",
    )
    .unwrap();
    refused(
        &run(&["info", "--policy", &s(&policy), &pkg]),
        &["not signed"],
    );
    std::fs::write(&policy, format!("{{\"allow_digests\": [\"{digest}\"]}}")).unwrap();
    ok(
        &run(&["info", "--policy", &s(&policy), &pkg]),
        "listed digest",
    );
    let other = format!("sha256:{}", "1".repeat(64));
    refused(
        &run(&["info", "--allow-digest", &other, &pkg]),
        &["not in the allow-list"],
    );
    ok(
        &run(&["info", "--allow-digest", &digest, &pkg]),
        "--allow-digest",
    );
    std::fs::write(&policy, "{\"keys\": 7}").unwrap();
    refused(
        &run(&["info", "--policy", &s(&policy), &pkg]),
        &["not a policy"],
    );
    // A value that does not parse is a bad command line: exit 2.
    let f = run(&["info", "--allow-digest", "sha256:xyz", &pkg]);
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);
    assert!(
        f.stderr.contains("--allow-digest sha256:xyz"),
        "{}",
        f.stderr
    );
    refused(
        &run(&["info", "--verify-key", "/nonexistent.pub", &pkg]),
        &["--verify-key /nonexistent.pub"],
    );
}

#[cfg_attr(edge_skip_registry_root, ignore = "needs root, BTF, registry")]
#[test]
fn https_urls_trust_the_system_roots_and_a_ca_file() {
    let _g = serial();
    if !services("https_urls_trust_the_system_roots_and_a_ca_file")
        || !kernel_available("https_urls_trust_the_system_roots_and_a_ca_file")
    {
        return;
    }
    let d = scratch("https");
    py(&["ca", &s(&d)]);
    let www = d.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::copy(example("package.json"), www.join("package.json")).unwrap();
    let port = free_port();
    let _srv = Service::start(
        Command::new(PYTHON).arg(tools()).args([
            "https",
            &s(&www),
            &port.to_string(),
            &s(&d.join("cert.pem")),
            &s(&d.join("key.pem")),
        ]),
        &format!("127.0.0.1:{port}"),
    );
    let url = format!("https://127.0.0.1:{port}/package.json");
    let cache = s(&d.join("cache"));
    let f = run(&["info", "--cache-dir", &cache, &url]);
    refused(&f, &[&url, "certificate"]);
    sigsnoop_event(
        &["--cache-dir", &cache, "--ca-file", &s(&d.join("ca.pem"))],
        &url,
        &[],
    );
}

#[cfg_attr(edge_skip_registry_root, ignore = "needs root, BTF, registry")]
#[test]
fn plain_http_only_to_loopback_or_named_insecure_registries() {
    if !services("plain_http_only_to_loopback_or_named_insecure_registries")
        || !kernel_available("plain_http_only_to_loopback_or_named_insecure_registries")
    {
        return;
    }
    // A non-loopback address, put on this machine's lo for the test: traffic stays local.
    let ip = "10.254.77.1";
    let sh = |c: &str| {
        Command::new("sh")
            .args(["-c", c])
            .status()
            .unwrap()
            .success()
    };
    let _ = sh(&format!("ip addr del {ip}/32 dev lo 2>/dev/null"));
    assert!(sh(&format!("ip addr add {ip}/32 dev lo")));
    struct Down(&'static str);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["addr", "del", &format!("{}/32", self.0), "dev", "lo"])
                .status();
        }
    }
    let _down = Down(ip);
    let d = scratch("insecure");
    let (_reg, addr) = registry(&d, ip, Auth::None);
    let r = format!("{addr}/edge/sigsnoop:v1");
    refused(
        &run(&["push", &example("package.json"), &r]),
        &[
            &r,
            "plain HTTP is only used for loopback registries and --insecure-registry hosts",
        ],
    );
    ok(
        &run(&[
            "push",
            "--insecure-registry",
            &addr,
            &example("package.json"),
            &r,
        ]),
        "push to an insecure registry",
    );
    let cache = s(&d.join("cache"));
    refused(
        &run(&["info", "--cache-dir", &cache, &r]),
        &["--insecure-registry"],
    );
    ok(
        &run(&["info", "--cache-dir", &cache, "--insecure-registry", ip, &r]),
        "info from an insecure registry",
    );
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn hostile_servers_get_one_line_errors_and_leave_nothing_in_the_cache() {
    if !services("hostile_servers_get_one_line_errors_and_leave_nothing_in_the_cache") {
        return;
    }
    let d = scratch("hostile");
    let www = d.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let port = free_port();
    let _srv = Service::start(
        Command::new(PYTHON)
            .arg(tools())
            .args(["hostile", &port.to_string(), &s(&www)]),
        &format!("127.0.0.1:{port}"),
    );
    let cache = d.join("cache");
    let c = s(&cache);
    let cases: &[(&str, &[&str])] = &[
        ("bigmanifest", &["larger than", "refusing"]),
        ("bigblob", &["over the", "package limit"]),
        ("liarblob", &["larger than the 64-byte limit"]),
        ("baddigest", &["digest mismatch"]),
        ("badsize", &["size mismatch"]),
        ("truncated", &["truncated"]),
        ("loop", &["more than 5 redirects"]),
        ("stall", &["sent nothing for 1 s"]),
        ("badjson", &["malformed manifest JSON"]),
        (
            "oddtypes",
            &["not an eBPF package", "application/x-mystery"],
        ),
        ("unauthorized", &["401", "docker login"]),
        ("missing", &["not found"]),
    ];
    for (case, want) in cases {
        let r = format!("127.0.0.1:{port}/{case}/x:v1");
        let t0 = Instant::now();
        let f = run(&["info", "--cache-dir", &c, "--fetch-timeout", "1", &r]);
        let mut w = vec![r.as_str()];
        w.extend_from_slice(want);
        refused(&f, &w);
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{case} took {:?}",
            t0.elapsed()
        );
        let (refs, blobs, tmp) = cache_files(&cache);
        assert_eq!(
            (refs, tmp),
            (0, 0),
            "{case}: a failed pull left refs or partial files"
        );
        assert!(blobs == 0, "{case}: a failed pull left {blobs} blobs");
    }
    for (name, want) in [
        ("loop.json", "more than 5 redirects"),
        ("stall.json", "sent nothing for 1 s"),
        ("none.json", "not found"),
    ] {
        let url = format!("http://127.0.0.1:{port}/files/{name}");
        refused(
            &run(&["info", "--cache-dir", &c, "--fetch-timeout", "1", &url]),
            &[&url, want],
        );
    }
    // A server that sends a byte every 300 ms never trips the idle timeout: the deadline of
    // the whole transfer ends it, head or body.
    let drips = [
        format!("127.0.0.1:{port}/driphead/x:v1"),
        format!("127.0.0.1:{port}/dripbody/x:v1"),
        format!("http://127.0.0.1:{port}/files/drip.json"),
    ];
    for what in &drips {
        let t0 = Instant::now();
        let f = run(&[
            "info",
            "--cache-dir",
            &c,
            "--fetch-timeout",
            "1",
            "--fetch-deadline",
            "3",
            what,
        ]);
        refused(
            &f,
            &[what, "did not end within its deadline", "--fetch-deadline"],
        );
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what} took {:?}",
            t0.elapsed()
        );
        assert_eq!(cache_files(&cache), (0, 0, 0), "{what}");
    }
    // A stalled connect: a listening socket that never accepts (backlog full) is hard to make
    // portable; an address nobody listens on gives the connect error at once.
    let dead = format!("127.0.0.1:{}/edge/x:v1", free_port());
    refused(
        &run(&["info", "--cache-dir", &c, &dead]),
        &[&dead, "cannot connect"],
    );
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn a_file_named_like_a_reference_is_neither_until_the_user_says_which() {
    if !services("a_file_named_like_a_reference_is_neither_until_the_user_says_which") {
        return;
    }
    let d = scratch("ambiguous");
    let (_reg, addr) = registry(&d, "127.0.0.1", Auth::None);
    let r = format!("{addr}/edge/sigsnoop:v1");
    ok(&run(&["push", &example("package.json"), &r]), "push");
    // A file in the working directory with the very name of the reference.
    let file = d.join(&r);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::copy(example("sigsnoop.bpf.o"), &file).unwrap();
    let cache = s(&d.join("cache"));
    let info = |prog: &str| {
        let o = Command::new(bin())
            .args(["info", "--cache-dir", &cache, prog])
            .current_dir(&d)
            .output()
            .unwrap();
        Finished {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    };
    // Which one is meant is for the command line to say: a usage error (exit 2), one line.
    let f = info(&r);
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);
    assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
    for w in [
        &format!("./{r}"),
        &format!("oci://{r}"),
        "both a file here and a registry reference",
    ] {
        assert!(f.stderr.contains(w), "{w:?} not in {}", f.stderr);
    }
    // Said which: the file (a raw object) and the registry's package (a package.json).
    let f = info(&format!("./{r}"));
    ok(&f, "the file");
    let g = info(&format!("oci://{r}"));
    ok(&g, "the registry");
    assert_ne!(f.stdout, g.stdout, "two different packages");
    ok(&info(&format!("docker://{r}")), "skopeo's prefix");
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn https_never_turns_into_plain_http_and_credentials_travel_only_over_tls() {
    if !services("https_never_turns_into_plain_http_and_credentials_travel_only_over_tls") {
        return;
    }
    let d = scratch("downgrade");
    py(&["ca", &s(&d)]);
    let (port, plain) = (free_port(), free_port());
    let log = d.join("plain.log");
    let _srv = Service::start(
        Command::new(PYTHON).arg(tools()).args([
            "downgrade",
            &port.to_string(),
            &s(&d.join("cert.pem")),
            &s(&d.join("key.pem")),
            &plain.to_string(),
            &s(&log),
        ]),
        &format!("127.0.0.1:{port}"),
    );
    let ca = s(&d.join("ca.pem"));
    let cache = s(&d.join("cache"));
    // A redirect from HTTPS to plain HTTP is not followed.
    let url = format!("https://127.0.0.1:{port}/redirect/package.json");
    refused(
        &run(&["info", "--ca-file", &ca, "--cache-dir", &cache, &url]),
        &[&url, "plain HTTP", "refused"],
    );
    // An HTTPS registry whose token realm is plain HTTP gets no credentials there.
    let r = format!("127.0.0.1:{port}/edge/x:v1");
    let home = d.join("home");
    let cfg = docker_config(
        &home.join(".docker"),
        &format!("127.0.0.1:{port}"),
        "edge",
        "s3cret",
    );
    let f = run_env(
        &["info", "--ca-file", &ca, "--cache-dir", &cache, &r],
        &[
            ("DOCKER_CONFIG", cfg.as_str()),
            ("REGISTRY_AUTH_FILE", "/nonexistent"),
        ],
    );
    refused(&f, &[&r, "token realm", "plain HTTP", "refused"]);
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(
        !seen.contains("Authorization=Basic"),
        "credentials went over plain HTTP: {seen}"
    );
    assert!(
        !seen.contains("package.json"),
        "the redirect was followed: {seen}"
    );
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn a_package_the_policy_refuses_leaves_nothing_a_later_run_could_use() {
    let _g = serial();
    if !services("a_package_the_policy_refuses_leaves_nothing_a_later_run_could_use") {
        return;
    }
    let d = scratch("refused_cache");
    let (k, kp) = (s(&d.join("c.key")), s(&d.join("c.pub")));
    py(&["keygen", &k, &kp]);
    let (reg, addr) = registry(&d, "127.0.0.1", Auth::None);
    let r = format!("{addr}/edge/unsigned:v1");
    ok(&run(&["push", &example("package.json"), &r]), "push");
    let cache = d.join("cache");
    let c = s(&cache);
    for cmd in ["info", "pull"] {
        refused(
            &run(&[cmd, "--verify-key", &kp, "--cache-dir", &c, &r]),
            &[&r, "not signed"],
        );
        assert_eq!(
            cache_files(&cache),
            (0, 0, 0),
            "{cmd} left a refused package cached"
        );
    }
    // Offline, without a policy: nothing was kept to run.
    drop(reg);
    refused(
        &run(&["info", "--cache-dir", &c, &r]),
        &[&r, "never pulled"],
    );
}
