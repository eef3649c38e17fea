//! The C skeleton header a Wasm guest includes, as ecc makes for wasm-bpf: the object embedded,
//! `NAME__open()`, `__load()`, `__open_and_load()`, `__attach()`, `__destroy()`, with
//! `skel->maps.X`, `skel->progs.Y` and `skel->rodata->Z` (written before load, as with a
//! libbpf skeleton), over `sdk/c/edge_bpf.h`. Pure: an object in, header text out.

use std::fmt::Write;

use crate::btf::{self, TypeData};
use crate::package::elf::{self, Elf};
use crate::package::Object;

/// The header for `object`, whose C prefix is `ident` (`sigsnoop_bpf`); `source` names the
/// file it was built from.
pub fn render(object: &Object, ident: &str, source: &str) -> String {
    let m = &object.meta;
    let guard = format!("EDGE_SKEL_{}_H", ident.to_ascii_uppercase());
    let mut o = String::with_capacity(object.bytes.len() * 6 + 4096);
    let _ = writeln!(
        o,
        "/* {ident}.skel.h: the BPF object built from {source}, for a Wasm guest.\n * Made by `edge-ecli build`; do not edit. Needs sdk/c on the include path. */"
    );
    let _ = writeln!(o, "#ifndef {guard}\n#define {guard}\n");
    o.push_str("#include <stddef.h>\n#include \"edge_bpf.h\"\n\n");
    let _ = writeln!(
        o,
        "static const unsigned char {ident}__elf_bytes[{}] = {{",
        object.bytes.len()
    );
    for chunk in object.bytes.chunks(16) {
        o.push('\t');
        for b in chunk {
            let _ = write!(o, "0x{b:02x},");
        }
        o.push('\n');
    }
    o.push_str("};\n\n");

    let rodata = rodata_struct(object, ident);
    if let Some(def) = &rodata {
        o.push_str(def);
    }
    let _ = writeln!(o, "struct {ident} {{\n\tstruct bpf_object *obj;");
    let maps: Vec<&str> = m.maps.iter().map(|d| d.name.as_str()).collect();
    let progs: Vec<&str> = m.progs.iter().map(|p| p.name.as_str()).collect();
    let _ = writeln!(o, "\tstruct {{");
    for n in &maps {
        let _ = writeln!(o, "\t\tstruct bpf_map *{n};");
    }
    if maps.is_empty() {
        o.push_str("\t\tchar none__;\n");
    }
    o.push_str("\t} maps;\n\tstruct {\n");
    for n in &progs {
        let _ = writeln!(o, "\t\tstruct bpf_program *{n};");
    }
    if progs.is_empty() {
        o.push_str("\t\tchar none__;\n");
    }
    o.push_str("\t} progs;\n");
    if rodata.is_some() {
        let _ = writeln!(
            o,
            "\t/* Points into the object: set before load, as with libbpf. */\n\tstruct {ident}__rodata *rodata;"
        );
    }
    let _ = writeln!(
        o,
        "\tstruct bpf_map map_slots__[{}];\n\tstruct bpf_program prog_slots__[{}];\n}};\n",
        maps.len().max(1),
        progs.len().max(1)
    );

    let _ = writeln!(
        o,
        "static inline void {ident}__destroy(struct {ident} *s)\n{{\n\tif (!s)\n\t\treturn;\n\tbpf_object__close(s->obj);\n\tfree(s);\n}}\n"
    );
    let _ = writeln!(
        o,
        "static inline struct {ident} *{ident}__open(void)\n{{\n\tstruct {ident} *s = calloc(1, sizeof(*s));\n\tif (!s)\n\t\treturn NULL;\n\ts->obj = bpf_object__open_mem({ident}__elf_bytes, sizeof({ident}__elf_bytes));\n\tif (!s->obj) {{\n\t\tfree(s);\n\t\treturn NULL;\n\t}}"
    );
    for (i, n) in maps.iter().enumerate() {
        let _ = writeln!(
            o,
            "\ts->maps.{n} = bpf_map__init(&s->map_slots__[{i}], s->obj, \"{n}\");"
        );
    }
    for (i, n) in progs.iter().enumerate() {
        let _ = writeln!(
            o,
            "\ts->progs.{n} = bpf_program__init(&s->prog_slots__[{i}], s->obj, \"{n}\");"
        );
    }
    if rodata.is_some() {
        let _ = writeln!(
            o,
            "\ts->rodata = (struct {ident}__rodata *)bpf_object__section_data(s->obj, \".rodata\",\n\t\t\t\t\t\t\t\t\t   sizeof(struct {ident}__rodata));\n\tif (!s->rodata) {{\n\t\t{ident}__destroy(s);\n\t\treturn NULL;\n\t}}"
        );
    }
    o.push_str("\treturn s;\n}\n\n");
    let _ = writeln!(
        o,
        "static inline int {ident}__load(struct {ident} *s)\n{{\n\treturn bpf_object__load(s->obj);\n}}\n"
    );
    let _ = writeln!(
        o,
        "static inline struct {ident} *{ident}__open_and_load(void)\n{{\n\tstruct {ident} *s = {ident}__open();\n\tif (s && {ident}__load(s)) {{\n\t\t{ident}__destroy(s);\n\t\treturn NULL;\n\t}}\n\treturn s;\n}}\n"
    );
    let _ = writeln!(
        o,
        "/* Attaches every program not turned off with bpf_program__set_autoattach, each to what\n * its section names or to the target set with bpf_set_prog_attach_target. 0 or the first\n * error (-errno). */\nstatic inline int {ident}__attach(struct {ident} *s)\n{{\n\tfor (size_t i = 0; i < {}; i++) {{\n\t\tint err = bpf_program__attach(&s->prog_slots__[i]);\n\t\tif (err)\n\t\t\treturn err;\n\t}}\n\treturn 0;\n}}\n",
        progs.len()
    );
    let _ = writeln!(o, "#endif /* {guard} */");
    o
}

/// `struct IDENT__rodata`, laid out at the offsets the ELF symbols of `.rodata` give (clang
/// leaves the DATASEC's offsets for the loader to fix up), or None without `.rodata` globals.
fn rodata_struct(object: &Object, ident: &str) -> Option<String> {
    let b = &object.btf;
    let elf = Elf::parse(&object.bytes).ok()?;
    let sec = elf.sections.iter().position(|s| s.name == ".rodata")?;
    let (_, datasec) = b
        .iter()
        .find(|(_, t)| t.kind == btf::KIND_DATASEC && t.name == ".rodata")?;
    let TypeData::DataSec(btf_vars) = &datasec.data else {
        return None;
    };
    // Global variables' BTF types by name.
    let types: Vec<(String, u32)> = btf_vars
        .iter()
        .filter_map(|v| {
            let var = b.get(v.type_id).ok()?;
            let global = matches!(var.data, TypeData::Var { linkage } if linkage != 0);
            (var.kind == btf::KIND_VAR && global).then(|| (var.name.clone(), var.size_or_type))
        })
        .collect();
    let mut vars: Vec<(u64, u64, String, u32)> = elf
        .symbols
        .iter()
        .filter(|s| s.section as usize == sec && s.kind == elf::STT_OBJECT && s.size > 0)
        .filter(|s| !s.name.starts_with(crate::package::meta::DUMMY_PREFIX))
        .filter_map(|s| {
            let ty = types.iter().find(|(n, _)| *n == s.name)?.1;
            Some((s.value, s.size, s.name.clone(), ty))
        })
        .collect();
    if vars.is_empty() {
        return None;
    }
    vars.sort_by_key(|v| v.0);
    let mut o = format!("struct {ident}__rodata {{\n");
    let mut at = 0u64;
    let mut asserts = String::new();
    for (i, (off, size, name, ty)) in vars.iter().enumerate() {
        if *off < at {
            continue; // overlapping (never from clang): keep the first
        }
        if *off > at {
            let _ = writeln!(o, "\tunsigned char pad{i}__[{}];", off - at);
        }
        let _ = writeln!(o, "\t{};", declare(object, *ty, *size, name));
        let _ = writeln!(
            asserts,
            "_Static_assert(offsetof(struct {ident}__rodata, {name}) == {off}, \"{name}\");"
        );
        at = off + size;
    }
    o.push_str("} __attribute__((packed));\n");
    o.push_str(&asserts);
    o.push('\n');
    Some(o)
}

/// A C declaration of `name` with the BTF type `ty` of `size` bytes: scalars and arrays of
/// scalars spelled with fixed-width types, anything else as bytes.
fn declare(object: &Object, ty: u32, size: u64, name: &str) -> String {
    let b = &object.btf;
    let mut dims = String::new();
    let mut id = b.resolve(ty).unwrap_or(0);
    for _ in 0..8 {
        match b.get(id).map(|t| (t.kind, t.data.clone())) {
            Ok((btf::KIND_ARRAY, TypeData::Array { elem, nelems })) => {
                let _ = write!(dims, "[{nelems}]");
                id = b.resolve(elem).unwrap_or(0);
            }
            _ => break,
        }
    }
    let scalar = b.get(id).ok().and_then(|t| {
        let sz = t.size_or_type;
        Some(match (t.kind, &t.data) {
            (btf::KIND_INT, TypeData::Int { encoding, .. }) => {
                if encoding & btf::INT_BOOL != 0 {
                    "_Bool".to_string()
                } else if encoding & btf::INT_CHAR != 0 || (sz == 1 && t.name == "char") {
                    "char".to_string()
                } else if matches!(sz, 1 | 2 | 4 | 8) {
                    let u = if encoding & btf::INT_SIGNED != 0 {
                        ""
                    } else {
                        "u"
                    };
                    format!("{u}int{}_t", sz * 8)
                } else {
                    return None;
                }
            }
            (btf::KIND_ENUM | btf::KIND_ENUM64, _) if matches!(sz, 1 | 2 | 4 | 8) => {
                format!("int{}_t", sz * 8)
            }
            (btf::KIND_FLOAT, _) if sz == 4 => "float".to_string(),
            (btf::KIND_FLOAT, _) if sz == 8 => "double".to_string(),
            // A BPF pointer is 64-bit; a wasm32 one is not.
            (btf::KIND_PTR, _) => "uint64_t".to_string(),
            _ => return None,
        })
    });
    match scalar {
        Some(t) => format!("{t} {name}{dims}"),
        None => format!("unsigned char {name}[{size}]"),
    }
}
