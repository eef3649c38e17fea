//! Packs the BPF-side headers that `edge-ecli build` carries (libbpf's, third_party/libbpf/include,
//! see its README; the C SDK's BPF side, sdk/c/edge as `edge/`) into one deflated blob the binary embeds: for each file, its path relative
//! to that directory, a NUL, its length as 8 little-endian bytes, its bytes.

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

fn main() {
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
