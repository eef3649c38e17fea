//! The README runs as pasted. The rule: every ```sh block of README.md is run by `bash -e`,
//! from the checkout's root, with the binary under test first on PATH as `edge-ecli`; each must
//! exit 0 and end by itself within [`LIMIT`], and afterwards the checkout must be as it was
//! (`git status`). A block right after a line `<!-- README test: not run (REASON) -->` is not
//! run; there must be a reason, and the blocks left out are few. So the README cannot go stale
//! silently: a changed flag, a renamed file or a block that waits for Ctrl-C fails here.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(120);
const MARK: &str = "<!-- README test: not run (";

struct Block {
    line: usize,
    text: String,
    /// Why it is not run, if it is not.
    skip: Option<String>,
}

/// The ```sh blocks of a Markdown text, with the marker before each.
fn sh_blocks(md: &str) -> Vec<Block> {
    let lines: Vec<&str> = md.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() == "```sh" {
            let skip = i
                .checked_sub(1)
                .and_then(|p| lines[p].trim().strip_prefix(MARK))
                .map(|r| r.trim_end_matches(") -->").to_string());
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim_end() != "```" {
                end += 1;
            }
            out.push(Block {
                line: i + 1,
                text: lines[start..end].join("\n") + "\n",
                skip,
            });
            i = end;
        }
        i += 1;
    }
    out
}

fn git_status(root: &Path) -> String {
    let o = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(root)
        .output()
        .expect("git");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs one block; its output, or why it failed.
fn run_block(root: &Path, path_dir: &Path, b: &Block) -> Result<String, String> {
    let path = format!(
        "{}:{}",
        path_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &b.text])
        .current_dir(root)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let (err, err_thread) = collect_stderr(&mut child);
    let mut stdout = child.stdout.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if t0.elapsed() > LIMIT {
            // The whole group: what the block started in the background too.
            // SAFETY: kill(2) of the process group we spawned; no memory is involved.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the block left running is stopped with it.
    // SAFETY: kill(2) of the process group we spawned; no memory is involved.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = err_thread.join();
    let out = out_thread.join().unwrap_or_default();
    let text = format!("{out}{}", err.lock().unwrap());
    match status {
        None => Err(format!(
            "did not end by itself within {} s:\n{text}",
            LIMIT.as_secs()
        )),
        Some(st) if !st.success() => Err(format!("exited {st}:\n{text}")),
        Some(_) if text.contains("panicked") => Err(format!("a panic:\n{text}")),
        Some(_) => Ok(text),
    }
}

use std::os::unix::process::CommandExt;

#[test]
fn readme_blocks_are_found_and_every_skip_has_a_reason() {
    let md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = sh_blocks(&md);
    let run = blocks.iter().filter(|b| b.skip.is_none()).count();
    let skipped: Vec<&Block> = blocks.iter().filter(|b| b.skip.is_some()).collect();
    assert!(run >= 5, "only {run} blocks would run");
    assert!(skipped.len() <= run + 1, "too many blocks left out");
    for b in &skipped {
        let why = b.skip.as_deref().unwrap_or("");
        assert!(why.len() >= 10, "README line {}: give a reason", b.line);
    }
    // Every block that runs and uses edge-ecli uses it from PATH, not from a build directory.
    for b in blocks.iter().filter(|b| b.skip.is_none()) {
        assert!(
            !b.text.contains("target/release/edge-ecli"),
            "README line {}: call edge-ecli from PATH",
            b.line
        );
    }
}

#[cfg_attr(edge_skip_registry_root, ignore = "needs root, BTF, registry")]
#[test]
fn the_readme_runs_as_pasted() {
    let _g = serial();
    if !kernel_ready("the_readme_runs_as_pasted")
        || !crate::distribution::services("the_readme_runs_as_pasted")
    {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let md = std::fs::read_to_string(root.join("README.md")).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("edge-ecli");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let before = git_status(root);
    let mut failures = Vec::new();
    let mut ran = 0;
    for b in sh_blocks(&md) {
        if let Some(why) = &b.skip {
            eprintln!("README line {}: not run ({why})", b.line);
            continue;
        }
        ran += 1;
        match run_block(root, &dir, &b) {
            Ok(out) => eprintln!("README line {}: ok\n{out}", b.line),
            Err(e) => failures.push(format!("README line {}: {e}\n---\n{}", b.line, b.text)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran >= 5, "{ran} blocks ran");
    assert_eq!(
        git_status(root),
        before,
        "the README's blocks wrote into the checkout"
    );
    assert_no_leaks(&["sig_trace", "sig_events"]);
}
