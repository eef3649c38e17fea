fn main() {
    // Buffer callbacks are function-table indices: export the table.
    println!("cargo:rustc-link-arg=--export-table");
    println!("cargo:rerun-if-env-changed=BOOTSTRAP_BPF_OBJ");
}
