//! The package's own flags from hostile values: argv (NUL-separated) against packages whose
//! globals have every type edge-ecli turns into flags (objects/types.bpf.c), and the
//! .rodata/.bss bytes they make.
#![no_main]

use std::sync::OnceLock;

use edge_ecli::package::{self, meta::Object};
use libfuzzer_sys::fuzz_target;

fn objects() -> &'static [Object] {
    static O: OnceLock<Vec<Object>> = OnceLock::new();
    O.get_or_init(|| {
        let load = |b: &[u8], name| package::load(b.to_vec(), name).expect("the example loads");
        vec![
            load(
                include_bytes!("../../examples/sigsnoop/package.json"),
                "sigsnoop",
            ),
            load(
                include_bytes!("../../examples/sigsnoop/sigsnoop.bpf.o"),
                "sigsnoop.bpf.o",
            ),
            load(include_bytes!("../objects/types.bpf.o"), "types.bpf.o"),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let objs = objects();
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let o = &objs[pick as usize % objs.len()];
    let args: Vec<String> = rest
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let _ = edge_ecli::args::parse(&o.meta, &o.btf, &Default::default(), &args);
});
