//! Package decoding: format detection, the eunomia JSON package (section 3 of design.md) and
//! the reverse, `pack`. Pure: bytes in, `Object` out.

use std::fmt::Write;

use crate::btf;
use crate::error::{Context, Error, Result};
use crate::json::{self, Value};
use crate::meta::{Object, Sample, SampleKind};

/// Largest object we inflate: far above any real BPF object, small enough for an edge node.
pub const MAX_OBJECT_SIZE: usize = 64 << 20;

#[derive(Debug, PartialEq)]
pub enum Kind {
    Json,
    Elf,
    Wasm,
}

pub fn detect(bytes: &[u8]) -> Result<Kind> {
    if bytes.starts_with(b"\0asm") {
        return Ok(Kind::Wasm);
    }
    if bytes.starts_with(b"\x7fELF") {
        return Ok(Kind::Elf);
    }
    let first = bytes.iter().find(|c| !c.is_ascii_whitespace());
    if first == Some(&b'{') {
        return Ok(Kind::Json);
    }
    Err(Error::msg(
        "not a package: expected an eunomia package.json, a BPF ELF object or a Wasm module",
    ))
}

/// Loads any package kind except Wasm into an Object.
pub fn load(bytes: Vec<u8>, name: &str) -> Result<Object> {
    match detect(&bytes)? {
        Kind::Elf => Object::parse(bytes, &obj_name_from_path(name)),
        Kind::Json => load_json(&bytes),
        // `run` hands Wasm modules to the Wasm host before this point.
        Kind::Wasm => Err(Error::msg(
            "a Wasm app carries its BPF object inside its code: `edge-ecli run` it; info and pack read package.json and .bpf.o",
        )),
    }
}

fn obj_name_from_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.strip_suffix(".o").unwrap_or(base);
    let base = base.strip_suffix(".bpf").unwrap_or(base);
    if base.is_empty() || base == "-" {
        "stdin".into()
    } else {
        base.to_string()
    }
}

fn load_json(bytes: &[u8]) -> Result<Object> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::msg("package JSON is not UTF-8"))?;
    let root = json::parse(text)?;
    let field = |k: &str| {
        root.get(k).ok_or_else(|| {
            Error::msg(format!(
                "package JSON has no \"{k}\" (is this an eunomia package.json?)"
            ))
        })
    };
    let b64 = field("bpf_object")?
        .as_str()
        .ok_or_else(|| Error::msg("\"bpf_object\" must be a base64 string"))?;
    let size = field("bpf_object_size")?
        .as_u64()
        .ok_or_else(|| Error::msg("\"bpf_object_size\" must be a non-negative integer"))?;
    let meta = field("meta")?;
    if size as usize > MAX_OBJECT_SIZE {
        return Err(Error::msg(format!(
            "\"bpf_object_size\" {size} exceeds the {MAX_OBJECT_SIZE}-byte limit"
        )));
    }
    let compressed = base64_decode(b64).context("\"bpf_object\"")?;
    let obj = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&compressed, MAX_OBJECT_SIZE)
        .map_err(|e| {
            Error::msg(format!(
                "\"bpf_object\" is not valid zlib data ({:?})",
                e.status
            ))
        })?;
    if obj.len() as u64 != size {
        return Err(Error::msg(format!(
            "\"bpf_object\" inflates to {} bytes but \"bpf_object_size\" says {size}: the package is corrupt",
            obj.len()
        )));
    }
    let skel = meta
        .get("bpf_skel")
        .ok_or_else(|| Error::msg("package JSON has no \"meta.bpf_skel\""))?;
    let obj_name = skel
        .get("obj_name")
        .and_then(Value::as_str)
        .unwrap_or("package")
        .to_string();
    let mut object = Object::parse(obj, &obj_name).context("\"bpf_object\"")?;
    overlay(&mut object, meta, skel)?;
    Ok(object)
}

/// Adds what package JSON says to the Meta derived from the object.
fn overlay(object: &mut Object, meta: &Value, skel: &Value) -> Result<()> {
    let m = &mut object.meta;
    if let Some(doc) = skel.get("doc") {
        let s = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
        m.doc.version = s("version");
        m.doc.brief = s("brief");
        m.doc.details = s("details");
        m.doc.description = s("description");
    }
    for sec in skel
        .get("data_sections")
        .and_then(Value::as_array)
        .unwrap_or(&[])
    {
        for var in sec
            .get("variables")
            .and_then(Value::as_array)
            .unwrap_or(&[])
        {
            let Some(name) = var.get("name").and_then(Value::as_str) else {
                continue;
            };
            let Some(g) = m.globals.iter_mut().find(|g| g.name == name) else {
                continue;
            };
            let cmd = var.get("cmdarg");
            let cs = |k: &str| {
                cmd.and_then(|c| c.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            if let Some(l) = cs("long") {
                g.long = l;
            }
            g.short = cs("short").and_then(|s| s.chars().next());
            g.help = cs("help").or_else(|| {
                var.get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            g.default = cmd
                .and_then(|c| c.get("default"))
                .or_else(|| var.get("value"))
                .and_then(Value::to_arg_text);
        }
    }
    for mj in skel.get("maps").and_then(Value::as_array).unwrap_or(&[]) {
        let name = mj.get("name").and_then(Value::as_str).unwrap_or("");
        let ident = mj.get("ident").and_then(Value::as_str).unwrap_or("");
        let Some(map) = m
            .maps
            .iter_mut()
            .find(|d| d.name == name || d.name == ident)
        else {
            continue;
        };
        if let Some(s) = mj.get("sample") {
            let interval_ms = s.get("interval").and_then(Value::as_u64).ok_or_else(|| {
                Error::msg(format!("map {name}: \"sample.interval\" (ms) is required"))
            })?;
            let kind = match s
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("default_kv")
            {
                "log2_hist" => SampleKind::Log2Hist,
                "linear_hist" => SampleKind::LinearHist,
                "default_kv" => SampleKind::DefaultKv,
                other => {
                    return Err(Error::msg(format!(
                        "map {name}: unknown sample type \"{other}\""
                    )))
                }
            };
            map.sample = Some(Sample {
                interval_ms: interval_ms.max(1),
                kind,
                unit: s
                    .get("unit")
                    .and_then(Value::as_str)
                    .unwrap_or("(unit)")
                    .to_string(),
                clear_map: s.get("clear_map").and_then(Value::as_bool).unwrap_or(false),
            });
        }
        if let Some(id) = mj
            .get("export_config")
            .and_then(|c| c.get("btf_type_id"))
            .and_then(Value::as_u64)
        {
            map.export_type = Some(id as u32);
        }
    }
    for pj in skel.get("progs").and_then(Value::as_array).unwrap_or(&[]) {
        let Some(p) = m
            .progs
            .iter_mut()
            .find(|p| Some(p.name.as_str()) == pj.get("name").and_then(Value::as_str))
        else {
            continue;
        };
        if let Some(h) = pj.get("tchook") {
            p.ifindex = h.get("ifindex").and_then(Value::as_u64).map(|v| v as u32);
            p.tc_attach_point = h
                .get("attach_point")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(i) = pj.get("ifindex").and_then(Value::as_u64) {
            p.ifindex = Some(i as u32);
        }
        if let Some(f) = pj.get("flags").and_then(Value::as_u64) {
            p.xdp_flags = f as u32;
        }
    }
    // export_types: check type_id, name and member count against BTF; use BTF for the rest.
    for et in meta
        .get("export_types")
        .and_then(Value::as_array)
        .unwrap_or(&[])
    {
        let name = et.get("name").and_then(Value::as_str).unwrap_or("");
        let by_id = et.get("type_id").and_then(Value::as_u64).map(|v| v as u32);
        let id = by_id
            .filter(|&id| {
                object
                    .btf
                    .get(id)
                    .is_ok_and(|t| t.name == name && t.kind == btf::KIND_STRUCT)
            })
            .or_else(|| object.btf.find(btf::KIND_STRUCT, name))
            .ok_or_else(|| {
                Error::msg(format!(
                    "export type \"{name}\" is not a struct in the object's BTF"
                ))
            })?;
        if let (Some(members), btf::TypeData::Members(real)) = (
            et.get("members").and_then(Value::as_array),
            &object.btf.get(id)?.data,
        ) {
            if members.len() != real.len() {
                return Err(Error::msg(format!(
                    "export type \"{name}\" lists {} members but the object's BTF has {}",
                    members.len(),
                    real.len()
                )));
            }
        }
        if !object.meta.export_types.contains(&id) {
            object.meta.export_types.push(id);
        }
    }
    let m = &mut object.meta;
    let t = &mut m.tunables;
    if let Some(v) = meta.get("perf_buffer_pages").and_then(Value::as_u64) {
        t.perf_buffer_pages = (v as usize).clamp(1, 4096);
    }
    if let Some(v) = meta.get("poll_timeout_ms").and_then(Value::as_u64) {
        t.poll_timeout_ms = v;
    }
    if let Some(v) = meta.get("perf_buffer_time_ms").and_then(Value::as_u64) {
        t.perf_buffer_time_ms = v;
    }
    if let Some(v) = meta.get("print_header").and_then(Value::as_bool) {
        t.print_header = v;
    }
    if let Some(v) = meta.get("debug_verbose").and_then(Value::as_bool) {
        t.debug_verbose = v;
    }
    Ok(())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let mut lut = [255u8; 256];
    for (i, &c) in B64.iter().enumerate() {
        lut[c as usize] = i as u8;
    }
    let b: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if b.len() % 4 != 0 {
        return Err(Error::msg("bad base64: length is not a multiple of 4"));
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (ci, chunk) in b.chunks_exact(4).enumerate() {
        let last = ci == b.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(Error::msg("bad base64: misplaced '=' padding"));
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { lut[c as usize] };
            if v == 255 {
                return Err(Error::msg(format!(
                    "bad base64: invalid character {:?}",
                    c as char
                )));
            }
            n = (n << 6) | v as u32;
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Ok(out)
}

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Builds an eunomia-compatible package.json from an object (`edge-ecli pack`).
pub fn pack(object: &Object) -> String {
    let m = &object.meta;
    let z = miniz_oxide::deflate::compress_to_vec_zlib(&object.bytes, 9);
    let mut o = String::with_capacity(z.len() * 4 / 3 + 4096);
    o.push_str("{\"bpf_object\":\"");
    o.push_str(&base64_encode(&z));
    let _ = write!(
        o,
        "\",\"bpf_object_size\":{},\"meta\":{{\"bpf_skel\":{{",
        object.bytes.len()
    );
    o.push_str("\"data_sections\":[");
    let mut first_sec = true;
    for sec in [".rodata", ".bss"] {
        let vars: Vec<_> = m.globals.iter().filter(|g| g.section == sec).collect();
        if vars.is_empty() {
            continue;
        }
        if !first_sec {
            o.push(',');
        }
        first_sec = false;
        let _ = write!(o, "{{\"name\":\"{sec}\",\"variables\":[");
        for (i, g) in vars.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("{\"name\":");
            json::write_str(&mut o, &g.name);
            o.push_str(",\"type\":");
            json::write_str(&mut o, &object.btf.plain_type_name(g.type_id));
            o.push('}');
        }
        o.push_str("]}");
    }
    o.push_str("],\"maps\":[");
    for (i, map) in m.maps.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"ident\":");
        json::write_str(&mut o, &map.name);
        o.push_str(",\"name\":");
        json::write_str(&mut o, &map.name);
        o.push('}');
    }
    o.push_str("],\"obj_name\":");
    json::write_str(&mut o, &m.obj_name);
    o.push_str(",\"progs\":[");
    for (i, p) in m.progs.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"attach\":");
        json::write_str(&mut o, &p.section);
        o.push_str(",\"link\":true,\"name\":");
        json::write_str(&mut o, &p.name);
        o.push('}');
    }
    o.push_str("]},\"export_types\":[");
    let exported = crate::event::default_export_types(object);
    for (i, id) in exported.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let Ok(t) = object.btf.get(*id) else { continue };
        o.push_str("{\"members\":[");
        if let btf::TypeData::Members(ms) = &t.data {
            for (j, mem) in ms.iter().enumerate() {
                if j > 0 {
                    o.push(',');
                }
                o.push_str("{\"name\":");
                json::write_str(&mut o, &mem.name);
                o.push_str(",\"type\":");
                json::write_str(&mut o, &object.btf.type_name(mem.type_id));
                o.push('}');
            }
        }
        o.push_str("],\"name\":");
        json::write_str(&mut o, &t.name);
        let _ = write!(o, ",\"size\":{},\"type_id\":{id}}}", t.size_or_type);
    }
    o.push_str("],\"eunomia_version\":\"0.3.4\"}}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0, 255, 128, 7, 9]] {
            assert_eq!(base64_decode(&base64_encode(data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert!(base64_decode("aGVsbG8").is_err());
        assert!(base64_decode("aG=sbG8=").is_err());
        assert!(base64_decode("aGV$bG8=")
            .unwrap_err()
            .to_string()
            .contains("invalid character"));
    }

    #[test]
    fn detects_kinds() {
        assert_eq!(detect(b"\0asm\x01").unwrap(), Kind::Wasm);
        assert_eq!(detect(b"\x7fELF....").unwrap(), Kind::Elf);
        assert_eq!(detect(b"  \n{\"a\":1}").unwrap(), Kind::Json);
        assert!(detect(b"hello")
            .unwrap_err()
            .to_string()
            .contains("not a package"));
    }

    fn pkg(obj_b64: &str, size: usize) -> Vec<u8> {
        format!("{{\"bpf_object\":\"{obj_b64}\",\"bpf_object_size\":{size},\"meta\":{{\"bpf_skel\":{{\"obj_name\":\"x\"}}}}}}")
            .into_bytes()
    }

    #[test]
    fn json_package_errors_are_specific() {
        let err = |b: Vec<u8>| load(b, "p.json").unwrap_err().to_string();
        assert!(err(b"{\"bpf_object\": ".to_vec()).contains("invalid JSON"));
        assert!(err(b"{}".to_vec()).contains("no \"bpf_object\""));
        assert!(err(pkg("!!!!", 3)).contains("bad base64"));
        assert!(err(pkg(&base64_encode(b"not zlib at all"), 3)).contains("not valid zlib"));
        let z = base64_encode(&miniz_oxide::deflate::compress_to_vec_zlib(b"hello", 6));
        assert!(err(pkg(&z, 4)).contains("inflates to 5 bytes"));
        assert!(err(pkg(&z, 5)).contains("not an ELF"));
        assert!(err(pkg(&z, 1 << 40)).contains("exceeds"));
    }
}
