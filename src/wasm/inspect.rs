//! What a Wasm app carries, read without running it (`edge-ecli info app.wasm`): the host
//! ABIs its imports speak, its memory limits, its entry point, and the eBPF packages embedded
//! in its data segments (BPF ELF objects, eunomia package.json text). Pure, and bounded:
//! wasmparser (already wasmi's parser) reads the sections, nothing is instantiated.

use wasmparser::{DataKind, ExternalKind, Parser, Payload, TypeRef};

use crate::error::{Error, Result};

/// The import modules edge-ecli provides, and what each one is.
pub const ABIS: &[(&str, &str)] = &[
    ("wasi_snapshot_preview1", "WASI preview1"),
    ("wasm_bpf", "wasm_bpf (the wasm-bpf ABI)"),
    (
        "callback-wrapper",
        "callback-wrapper (wasm-bpf's TinyGo variant)",
    ),
    ("env", "env (the seed article's ewasm ABI)"),
];

/// The `env` functions of the ewasm ABI (other `env` imports are not provided).
const ENV_FUNCS: &[&str] = &["create_bpf", "run_bpf", "wait_and_poll_bpf"];

#[derive(Debug, Default)]
pub struct Imports {
    /// (module, names) in the order of the import section.
    pub by_module: Vec<(String, Vec<String>)>,
}

/// Memory limits, in 64 KiB pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimits {
    pub initial: u64,
    pub maximum: Option<u64>,
    pub imported: bool,
    pub memory64: bool,
}

/// A package found in a data segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    /// Which data segment, and where in it.
    pub segment: usize,
    pub offset: usize,
    /// `BPF object` or `package.json`.
    pub kind: crate::package::Kind,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Inspected {
    pub imports: Imports,
    pub memories: Vec<MemoryLimits>,
    pub exports: Vec<String>,
    pub embedded: Vec<Embedded>,
    pub data_bytes: usize,
}

impl Inspected {
    /// The entry point edge-ecli calls: `_start` (WASI command) or `bpf_main` (env ABI).
    pub fn entry(&self) -> Option<&str> {
        ["bpf_main", "_start"]
            .into_iter()
            .find(|e| self.exports.iter().any(|x| x == e))
    }

    /// The ABIs the module's imports speak, as ABIS names them.
    pub fn abis(&self) -> Vec<&'static str> {
        ABIS.iter()
            .filter(|(m, _)| self.imports.by_module.iter().any(|(n, _)| n == m))
            .map(|(_, what)| *what)
            .collect()
    }

    /// Imports edge-ecli does not provide: a module with any is refused at `run`.
    pub fn unknown_imports(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (m, names) in &self.imports.by_module {
            let known = ABIS.iter().any(|(a, _)| a == m);
            for n in names {
                if !known || (m == "env" && !ENV_FUNCS.contains(&n.as_str())) {
                    v.push(format!("{m}.{n}"));
                }
            }
        }
        v
    }
}

/// Where an ELF image that starts at `b[0]` ends: past its section header table and past
/// every section's bytes (clang puts the table last, but nothing requires it).
fn elf_len(b: &[u8]) -> Option<usize> {
    let rd16 = |o: usize| {
        b.get(o..o + 2)
            .map(|x| u16::from_le_bytes([x[0], x[1]]) as usize)
    };
    let rd32 = |o: usize| {
        b.get(o..o + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
    };
    let rd64 = |o: usize| {
        b.get(o..o + 8).and_then(|x| {
            usize::try_from(u64::from_le_bytes([
                x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7],
            ]))
            .ok()
        })
    };
    // 64-bit, little-endian, EM_BPF: what clang -target bpf writes.
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) || rd16(18)? != 247 {
        return None;
    }
    let (shoff, shentsize, shnum) = (rd64(0x28)?, rd16(0x3a)?, rd16(0x3c)?);
    if shentsize < 64 {
        return None;
    }
    let mut end = shoff.checked_add(shentsize.checked_mul(shnum)?)?;
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        const SHT_NOBITS: usize = 8;
        if rd32(h + 4)? == SHT_NOBITS {
            continue;
        }
        end = end.max(rd64(h + 0x18)?.checked_add(rd64(h + 0x20)?)?);
    }
    (end <= b.len()).then_some(end)
}

/// Every BPF object and package.json text inside `data`.
fn find_packages(segment: usize, data: &[u8], out: &mut Vec<Embedded>) {
    let mut i = 0;
    while let Some(at) = memfind(&data[i..], b"\x7fELF") {
        let start = i + at;
        if let Some(len) = elf_len(&data[start..]) {
            out.push(Embedded {
                segment,
                offset: start,
                kind: crate::package::Kind::Elf,
                bytes: data[start..start + len].to_vec(),
            });
            i = start + len;
        } else {
            i = start + 4;
        }
    }
    let mut i = 0;
    while let Some(at) = memfind(&data[i..], b"\"bpf_object\"") {
        let key = i + at;
        i = key + 12;
        // The object's opening brace, before the key and blanks.
        let before = &data[..key];
        let Some(open) = before.iter().rposition(|c| !c.is_ascii_whitespace()) else {
            continue;
        };
        if before[open] != b'{' {
            continue;
        }
        // A C string: up to the NUL, or the segment's end.
        let end = data[open..]
            .iter()
            .position(|&c| c == 0)
            .map_or(data.len(), |n| open + n);
        out.push(Embedded {
            segment,
            offset: open,
            kind: crate::package::Kind::Json,
            bytes: data[open..end].to_vec(),
        });
        i = end.max(i);
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads a Wasm module's sections.
pub fn inspect(bytes: &[u8]) -> Result<Inspected> {
    let bad =
        |e: wasmparser::BinaryReaderError| Error::invalid(format!("invalid Wasm module: {e}"));
    let mut r = Inspected::default();
    let mut segment = 0;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(bad)? {
            Payload::ImportSection(s) => {
                for imp in s {
                    let imp = imp.map_err(bad)?;
                    if let TypeRef::Memory(m) = imp.ty {
                        r.memories.push(MemoryLimits {
                            initial: m.initial,
                            maximum: m.maximum,
                            imported: true,
                            memory64: m.memory64,
                        });
                    }
                    match r
                        .imports
                        .by_module
                        .iter_mut()
                        .find(|(n, _)| n == imp.module)
                    {
                        Some((_, names)) => names.push(imp.name.to_string()),
                        None => r
                            .imports
                            .by_module
                            .push((imp.module.to_string(), vec![imp.name.to_string()])),
                    }
                }
            }
            Payload::MemorySection(s) => {
                for m in s {
                    let m = m.map_err(bad)?;
                    r.memories.push(MemoryLimits {
                        initial: m.initial,
                        maximum: m.maximum,
                        imported: false,
                        memory64: m.memory64,
                    });
                }
            }
            Payload::ExportSection(s) => {
                for e in s {
                    let e = e.map_err(bad)?;
                    if matches!(
                        e.kind,
                        ExternalKind::Func | ExternalKind::Memory | ExternalKind::Table
                    ) {
                        r.exports.push(e.name.to_string());
                    }
                }
            }
            Payload::DataSection(s) => {
                for d in s {
                    let d = d.map_err(bad)?;
                    if matches!(d.kind, DataKind::Active { .. } | DataKind::Passive) {
                        r.data_bytes += d.data.len();
                        find_packages(segment, d.data, &mut r.embedded);
                    }
                    segment += 1;
                }
            }
            _ => {}
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_abis_memory_and_embedded_packages() {
        let obj = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/sigsnoop/sigsnoop.bpf.o"
        ))
        .unwrap();
        let mut data = b"junk\x7fELF not one".to_vec();
        data.extend_from_slice(&obj);
        data.extend_from_slice(b"tail{ \"bpf_object\":\"x\"}\0more");
        let hex: String = data.iter().map(|b| format!("\\{b:02x}")).collect();
        let wat = format!(
            r#"(module
                (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                (import "wasm_bpf" "wasm_load_bpf_object" (func (param i32 i32) (result i64)))
                (import "env" "printf" (func))
                (memory (export "memory") 2 300)
                (func (export "_start"))
                (data (i32.const 1024) "{hex}"))"#
        );
        let m = inspect(&wat::parse_str(&wat).unwrap()).unwrap();
        assert_eq!(m.entry(), Some("_start"));
        assert_eq!(
            m.memories,
            [MemoryLimits {
                initial: 2,
                maximum: Some(300),
                imported: false,
                memory64: false
            }]
        );
        assert_eq!(m.abis().len(), 3);
        assert_eq!(m.unknown_imports(), ["env.printf"]);
        assert_eq!(m.embedded.len(), 2, "{:?}", m.embedded);
        assert_eq!(m.embedded[0].bytes, obj, "the object is cut at its end");
        assert_eq!(m.embedded[1].bytes, b"{ \"bpf_object\":\"x\"}");
        assert!(inspect(b"\0asm\x01\0\0\0\x0b\x05").is_err());
    }
}
