//! The eunomia JSON package (section 3 of design.md): decoding, and the reverse, `pack`.
//! Pure: bytes in, `Object` out.

use std::fmt::Write;

use super::meta::{Meta, Object, Sample, SampleKind, Tunables};
use super::MAX_OBJECT_SIZE;
use crate::btf;
use crate::btf::hub::BtfArchive;
use crate::codec::base64;
use crate::codec::json::{self, Value};
use crate::error::{Context, Error, Result};
use crate::text::push_json_str;

/// The top-level key of the kernel BTF a package carries: standard base64 of a tar.gz whose
/// files are `ID/VERSION_ID/ARCH/RELEASE.btf` (BTFHub's layout, the content of Inspektor
/// Gadget's btfgen layer). eunomia's ecli ignores it.
pub const BTFGEN_KEY: &str = "btfgen";

pub fn load(bytes: &[u8]) -> Result<Object> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::invalid("package JSON is not UTF-8"))?;
    let root = json::parse(text)?;
    let field = |k: &str| {
        root.get(k).ok_or_else(|| {
            Error::invalid(format!(
                "package JSON has no \"{k}\" (is this an eunomia package.json?)"
            ))
        })
    };
    let b64 = field("bpf_object")?
        .as_str()
        .ok_or_else(|| Error::invalid("\"bpf_object\" must be a base64 string"))?;
    let size = field("bpf_object_size")?
        .as_u64()
        .ok_or_else(|| Error::invalid("\"bpf_object_size\" must be a non-negative integer"))?;
    let meta = field("meta")?;
    if size as usize > MAX_OBJECT_SIZE {
        return Err(Error::invalid(format!(
            "\"bpf_object_size\" {size} exceeds the {MAX_OBJECT_SIZE}-byte limit"
        )));
    }
    let compressed = base64::decode(b64).context("\"bpf_object\"")?;
    let obj = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&compressed, MAX_OBJECT_SIZE)
        .map_err(|e| {
            Error::invalid(format!(
                "\"bpf_object\" is not valid zlib data ({:?})",
                e.status
            ))
        })?;
    if obj.len() as u64 != size {
        return Err(Error::invalid(format!(
            "\"bpf_object\" inflates to {} bytes but \"bpf_object_size\" says {size}: the package is corrupt",
            obj.len()
        )));
    }
    let skel = meta
        .get("bpf_skel")
        .ok_or_else(|| Error::invalid("package JSON has no \"meta.bpf_skel\""))?;
    let obj_name = skel
        .get("obj_name")
        .and_then(Value::as_str)
        .unwrap_or("package")
        .to_string();
    let mut object = Object::parse(obj, &obj_name).context("\"bpf_object\"")?;
    if let Some(v) = root.get(BTFGEN_KEY) {
        let b64 = v.as_str().ok_or_else(|| {
            Error::invalid(format!(
                "\"{BTFGEN_KEY}\" must be a base64 string (a tar.gz of BTF files in BTFHub layout)"
            ))
        })?;
        let tgz = base64::decode(b64).context(format!("\"{BTFGEN_KEY}\""))?;
        object.btfs = Some(BtfArchive::tar_gz(tgz).context(format!("\"{BTFGEN_KEY}\""))?);
    }
    overlay(&mut object, meta, skel)?;
    object.meta.tunables.package_json = true;
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
    overlay_globals(m, skel);
    overlay_maps(m, skel)?;
    overlay_progs(m, skel);
    overlay_export_types(object, meta)?;
    overlay_tunables(&mut object.meta.tunables, meta);
    Ok(())
}

/// `data_sections[].variables[]`: flag spellings, help and defaults of the globals.
fn overlay_globals(m: &mut Meta, skel: &Value) {
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
            // ecc lists writable (.bss) globals too: ecli makes flags of them, and so do we.
            if let Some(i) = m.results.iter().position(|g| g.name == name) {
                let g = m.results.remove(i);
                m.globals.push(g);
            }
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
}

/// `maps[]`: sample maps and export configs.
fn overlay_maps(m: &mut Meta, skel: &Value) -> Result<()> {
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
            if !matches!(s, Value::Object(_)) {
                // What ecc writes for a @sample annotation that was not JSON.
                log::warn!("map {name}: \"sample\" is not an object, so the map is not sampled");
                continue;
            }
            let interval_ms = s.get("interval").and_then(Value::as_u64).ok_or_else(|| {
                Error::invalid(format!("map {name}: \"sample.interval\" (ms) is required"))
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
                    return Err(Error::invalid(format!(
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
    Ok(())
}

/// `progs[]`: tc and xdp attach parameters.
fn overlay_progs(m: &mut Meta, skel: &Value) {
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
}

/// `export_types`: type_id, name and member count are checked against BTF; the rest comes
/// from BTF.
fn overlay_export_types(object: &mut Object, meta: &Value) -> Result<()> {
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
                Error::invalid(format!(
                    "export type \"{name}\" is not a struct in the object's BTF"
                ))
            })?;
        if let (Some(members), btf::TypeData::Members(real)) = (
            et.get("members").and_then(Value::as_array),
            &object.btf.get(id)?.data,
        ) {
            if members.len() != real.len() {
                return Err(Error::invalid(format!(
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
    Ok(())
}

fn overlay_tunables(t: &mut Tunables, meta: &Value) {
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
}

/// Builds an eunomia-compatible package.json from an object (`edge-ecli pack`).
pub fn pack(object: &Object) -> String {
    pack_with(object, &Docs::default())
}

/// What `build` adds to a package from the source's doc comments: extra keys of the skeleton's
/// `doc`, of variables, maps and programs by name. Values are JSON text.
#[derive(Debug, Default)]
pub struct Docs {
    pub doc: Vec<(String, String)>,
    pub vars: Vec<(String, Vec<(String, String)>)>,
    pub maps: Vec<(String, Vec<(String, String)>)>,
    pub progs: Vec<(String, Vec<(String, String)>)>,
}

fn push_keys(o: &mut String, items: &[(String, Vec<(String, String)>)], name: &str) {
    for (_, keys) in items.iter().filter(|(n, _)| n == name) {
        for (k, v) in keys {
            o.push(',');
            push_json_str(o, k);
            o.push(':');
            o.push_str(v);
        }
    }
}

/// `pack` with the keys of `docs` written into the items they name.
pub fn pack_with(object: &Object, docs: &Docs) -> String {
    let m = &object.meta;
    let z = miniz_oxide::deflate::compress_to_vec_zlib(&object.bytes, 9);
    let mut o = String::with_capacity(z.len() * 4 / 3 + 4096);
    o.push_str("{\"bpf_object\":\"");
    o.push_str(&base64::encode(&z));
    let _ = write!(o, "\",\"bpf_object_size\":{},", object.bytes.len());
    if let Some(a) = object.btfs.as_ref().filter(|a| a.is_gzipped()) {
        let _ = write!(o, "\"{BTFGEN_KEY}\":\"{}\",", base64::encode(a.bytes()));
    }
    o.push_str("\"meta\":{\"bpf_skel\":{");
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
            push_json_str(&mut o, &g.name);
            o.push_str(",\"type\":");
            push_json_str(&mut o, &object.btf.plain_type_name(g.type_id));
            push_keys(&mut o, &docs.vars, &g.name);
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
        push_json_str(&mut o, &map.name);
        o.push_str(",\"name\":");
        push_json_str(&mut o, &map.name);
        push_keys(&mut o, &docs.maps, &map.name);
        o.push('}');
    }
    o.push_str("],\"obj_name\":");
    push_json_str(&mut o, &m.obj_name);
    o.push_str(",\"progs\":[");
    for (i, p) in m.progs.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"attach\":");
        push_json_str(&mut o, &p.section);
        o.push_str(",\"link\":true,\"name\":");
        push_json_str(&mut o, &p.name);
        push_keys(&mut o, &docs.progs, &p.name);
        o.push('}');
    }
    o.push(']');
    if !docs.doc.is_empty() {
        o.push_str(",\"doc\":{");
        for (i, (k, v)) in docs.doc.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            push_json_str(&mut o, k);
            o.push(':');
            o.push_str(v);
        }
        o.push('}');
    }
    o.push_str("},\"export_types\":[");
    write_export_types(&mut o, object);
    o.push_str("],\"eunomia_version\":\"0.3.4\"}}\n");
    o
}

/// The `export_types` list of `pack`: every event type with its members.
fn write_export_types(o: &mut String, object: &Object) {
    let exported = object.export_types();
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
                push_json_str(o, &mem.name);
                o.push_str(",\"type\":");
                push_json_str(o, &object.btf.type_name(mem.type_id));
                o.push('}');
            }
        }
        o.push_str("],\"name\":");
        push_json_str(o, &t.name);
        let _ = write!(o, ",\"size\":{},\"type_id\":{id}}}", t.size_or_type);
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::base64::encode as base64_encode;

    fn pkg(obj_b64: &str, size: usize) -> Vec<u8> {
        format!("{{\"bpf_object\":\"{obj_b64}\",\"bpf_object_size\":{size},\"meta\":{{\"bpf_skel\":{{\"obj_name\":\"x\"}}}}}}")
            .into_bytes()
    }

    #[test]
    fn json_package_errors_are_specific() {
        let err = |b: Vec<u8>| crate::package::load(b, "p.json").unwrap_err().to_string();
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
