//! The skip rule itself (issue 21 item 2): every test that can skip at run time is also marked
//! for the runner (`#[cfg_attr(edge_skip_CLASS, ignore = "...")]`), so that a machine lacking
//! what it needs shows it as ignored in the summary instead of a silent pass.

use std::collections::BTreeSet;

/// The functions that return false (skip) when something is missing.
const GATES: [&str; 5] = [
    "skip_unless",
    "kernel_ready",
    "toolchain_available",
    "kernel_available",
    "services",
];

struct Item {
    name: String,
    attrs: String,
    body: String,
    is_test: bool,
}

/// The top-level `fn` items of a test module, with their attributes and bodies.
fn items(src: &str) -> Vec<Item> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    let mut attrs = String::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.starts_with("#[") {
            // An attribute may span lines (rustfmt splits long ones): up to its closing `]`.
            attrs.push_str(l.trim());
            while !lines[i].trim_end().ends_with(']') && i + 1 < lines.len() {
                i += 1;
                attrs.push_str(lines[i].trim());
            }
            attrs.push('\n');
        } else if let Some(rest) = ["fn ", "pub fn ", "pub(crate) fn "]
            .iter()
            .find_map(|p| l.strip_prefix(p))
        {
            let name = rest.split(['(', '<']).next().unwrap_or("").to_string();
            let mut body = String::new();
            i += 1;
            while i < lines.len() && lines[i] != "}" {
                body.push_str(lines[i]);
                body.push('\n');
                i += 1;
            }
            out.push(Item {
                name,
                is_test: attrs.contains("#[test]"),
                attrs: std::mem::take(&mut attrs),
                body,
            });
        } else if !l.starts_with("///") && !l.trim().is_empty() {
            attrs.clear();
        }
        i += 1;
    }
    out
}

fn calls(body: &str, gates: &BTreeSet<String>) -> bool {
    gates.iter().any(|g| body.contains(&format!("{g}(")))
}

#[test]
fn every_test_that_can_skip_is_marked_for_the_runner() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/all");
    let mut unmarked = Vec::new();
    let mut gated = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // common.rs defines the gates; this file names them in its own test.
        if path.extension().is_none_or(|e| e != "rs")
            || path.ends_with("common.rs")
            || path.ends_with("gates.rs")
        {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let items = items(&src);
        // A module's own helpers that call a gate are gates too (to a fixed point).
        let mut gates: BTreeSet<String> = GATES.iter().map(|g| g.to_string()).collect();
        loop {
            let before = gates.len();
            for it in items.iter().filter(|it| !it.is_test) {
                if calls(&it.body, &gates) {
                    gates.insert(it.name.clone());
                }
            }
            if gates.len() == before {
                break;
            }
        }
        for it in items
            .iter()
            .filter(|it| it.is_test && calls(&it.body, &gates))
        {
            gated += 1;
            if !it.attrs.contains("cfg_attr(edge_skip_") {
                unmarked.push(format!("{}: {}", path.display(), it.name));
            }
        }
    }
    eprintln!("{gated} tests can skip; each is marked for the runner");
    assert!(
        gated > 50,
        "only {gated} gated tests found: is the scan still right?"
    );
    assert!(
        unmarked.is_empty(),
        "tests that can skip without the runner knowing (add #[cfg_attr(edge_skip_CLASS, ignore = \"needs ...\")]):\n{}",
        unmarked.join("\n")
    );
}

#[test]
fn the_scan_sees_an_unmarked_gated_test() {
    let src = "fn helper() -> bool {\n    kernel_ready(\"x\")\n}\n\n#[test]\nfn a() {\n    if !helper() {\n        return;\n    }\n}\n\n#[cfg_attr(\n    edge_skip_kernel,\n    ignore = \"needs root\"\n)]\n#[test]\nfn b() {\n    if !kernel_ready(\"b\") {\n        return;\n    }\n}\n";
    let it = items(src);
    let names: Vec<(&str, bool, bool)> = it
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.is_test,
                i.attrs.contains("cfg_attr(edge_skip_"),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("helper", false, false),
            ("a", true, false),
            ("b", true, true)
        ]
    );
}
