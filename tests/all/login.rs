//! Registry credentials as podman and docker keep them (`edge-ecli login`/`logout` write the
//! file `podman login` writes, and each reads the other's), and the progress a terminal shows
//! while a large package moves (none on a pipe or with `--quiet`). Against docker-registry
//! with htpasswd on 127.0.0.1, started here.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use crate::distribution::{ok, refused, registry, s, scratch, services, Auth};

/// edge-ecli with `env` and without the caller's credential variables; `stdin` is fed.
fn edge(args: &[&str], env: &[(&str, String)], stdin: &str) -> Finished {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DOCKER_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    Finished {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn podman(args: &[&str], env: &[(&str, String)], stdin: &str) -> std::process::Output {
    let mut child = Command::new("podman")
        .args(args)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("DOCKER_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podman (bash tests/setup.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn login_and_logout_write_what_podman_writes_and_read_what_it_wrote() {
    if !services("login_and_logout_write_what_podman_writes_and_read_what_it_wrote") {
        return;
    }
    let d = scratch("login");
    let htpasswd = d.join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbn", "edge", "s3cret"])
        .output()
        .unwrap();
    std::fs::write(&htpasswd, o.stdout).unwrap();
    let (_reg, addr) = registry(&d, "127.0.0.1", Auth::Htpasswd(&htpasswd));
    let r = format!("{addr}/edge/sigsnoop:v1");
    let xdg = d.join("xdg");
    let env = [("HOME", s(&d.join("home"))), ("XDG_RUNTIME_DIR", s(&xdg))];
    let pkg = example("package.json");
    // No credentials anywhere: the answer says how to log in and where they are read from.
    refused(
        &edge(&["push", &pkg, &r], &env, ""),
        &[
            "401",
            &format!("edge-ecli login {addr}"),
            "containers/auth.json",
        ],
    );
    // A wrong password is checked with the registry and not kept.
    let f = edge(
        &["login", "-u", "edge", "--password-stdin", &addr],
        &env,
        "wrong\n",
    );
    refused(&f, &[&addr, "401", "were refused"]);
    let file = xdg.join("containers/auth.json");
    assert!(!file.exists(), "a refused login was kept");
    let f = edge(
        &["login", "-u", "edge", "--password-stdin", &addr],
        &env,
        "s3cret\n",
    );
    ok(&f, "login");
    assert!(f.stderr.contains("Login Succeeded"), "{}", f.stderr);
    // podman's file, podman's format: podman reads it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!("{{\n\t\"auths\": {{\n\t\t\"{addr}\": {{\n\t\t\t\"auth\": \"ZWRnZTpzM2NyZXQ=\"\n\t\t}}\n\t}}\n}}\n")
    );
    let o = podman(&["login", "--get-login", &addr], &env, "");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "edge",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(&edge(&["push", &pkg, &r], &env, ""), "push after login");
    // logout forgets them; a second logout says there is nothing to forget.
    let f = edge(&["logout", &addr], &env, "");
    ok(&f, "logout");
    refused(&edge(&["push", &pkg, &r], &env, ""), &["401"]);
    refused(
        &edge(&["logout", &addr], &env, ""),
        &[&format!("not logged in to {addr}")],
    );
    // What podman login writes, edge-ecli reads.
    let o = podman(
        &[
            "login",
            "-u",
            "edge",
            "--password-stdin",
            "--tls-verify=false",
            &addr,
        ],
        &env,
        "s3cret\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(
        &edge(&["push", &pkg, &r], &env, ""),
        "push after podman login",
    );
    // Credentials podman keeps in its config directory count too.
    std::fs::remove_file(&file).unwrap();
    let cfg = d.join("home/.config/containers");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("auth.json"), &text).unwrap();
    ok(
        &edge(&["push", &pkg, &r], &env, ""),
        "push with ~/.config/containers/auth.json",
    );
}

/// A Wasm module of `mib` MiB (a custom section of `fill` bytes): a package too large to move
/// quickly, and of its own digest (a registry that has a blob is not sent it again).
fn big_wasm(dir: &Path, mib: usize, fill: u8) -> String {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    let payload = mib << 20;
    let name = b"pad";
    let mut size = payload + 1 + name.len();
    m.push(0);
    loop {
        let mut b = (size & 0x7f) as u8;
        size >>= 7;
        if size != 0 {
            b |= 0x80;
        }
        m.push(b);
        if size == 0 {
            break;
        }
    }
    m.push(name.len() as u8);
    m.extend_from_slice(name);
    m.resize(m.len() + payload, fill);
    let p = dir.join(format!("big{fill}.wasm"));
    std::fs::write(&p, m).unwrap();
    s(&p)
}

#[cfg_attr(edge_skip_registry, ignore = "needs docker-registry etc.")]
#[test]
fn progress_shows_on_a_terminal_only_and_not_with_quiet() {
    if !services("progress_shows_on_a_terminal_only_and_not_with_quiet") {
        return;
    }
    let d = scratch("progress");
    let (_reg, addr) = registry(&d, "127.0.0.1", Auth::None);
    let (big, big2) = (big_wasm(&d, 16, 1), big_wasm(&d, 16, 2));
    let cache = s(&d.join("cache"));
    // Not a terminal: not a byte of progress.
    let r = format!("{addr}/edge/big:v1");
    let f = run(&["push", &big, &r]);
    ok(&f, "push to a pipe");
    assert_eq!(f.stderr, "", "progress on a pipe");
    let f = run(&["pull", "--cache-dir", &cache, &r]);
    ok(&f, "pull to a pipe");
    assert_eq!(f.stderr, "", "progress on a pipe");
    // A terminal: bytes, size and rate, then what it came to.
    let r2 = format!("{addr}/edge/big:v2");
    let (done, shown) = at_a_terminal(&["push", &big2, &r2]);
    assert!(done, "{shown}");
    assert!(shown.contains("pushing sha256:"), "{shown}");
    assert!(shown.contains("/ 16.0 MiB ("), "{shown}");
    assert!(
        shown.contains("16.0 MiB in ") && shown.contains("MiB/s"),
        "{shown}"
    );
    let (done, shown) = at_a_terminal(&["pull", "--cache-dir", &s(&d.join("c2")), &r2]);
    assert!(done, "{shown}");
    assert!(
        shown.contains("fetching sha256:") && shown.contains("16.0 MiB in "),
        "{shown}"
    );
    // --quiet: nothing but the result.
    let big3 = big_wasm(&d, 16, 3);
    let (done, shown) = at_a_terminal(&["push", "-q", &big3, &r2]);
    assert!(done, "{shown}");
    assert!(!shown.contains("pushing"), "{shown}");
    assert!(
        shown.contains(&format!("{addr}/edge/big:v2@sha256:")),
        "{shown}"
    );
    let (_, shown) = at_a_terminal(&["pull", "-q", "--cache-dir", &s(&d.join("c3")), &r2]);
    assert!(!shown.contains("fetching"), "{shown}");
}

#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn build_shows_its_steps_on_a_terminal() {
    if !toolchain_available("build_shows_its_steps_on_a_terminal") {
        return;
    }
    let d = scratch("build_steps");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/build");
    let out = s(&d.join("package.json"));
    let (done, shown) = at_a_terminal(&[
        "build",
        &s(&src.join("writesnoop.bpf.c")),
        &s(&src.join("writesnoop.h")),
        "-o",
        &out,
    ]);
    assert!(done, "{shown}");
    for step in ["[1/3] making vmlinux.h", "[2/3] compiling", "[3/3] packing"] {
        assert!(shown.contains(step), "{step:?} not shown:\n{shown}");
    }
    let f = run(&[
        "build",
        &s(&src.join("writesnoop.bpf.c")),
        &s(&src.join("writesnoop.h")),
        "-o",
        &out,
    ]);
    ok(&f, "build to a pipe");
    assert!(!f.stderr.contains("[2/3]"), "{}", f.stderr);
}
