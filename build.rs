//! Generates `include/corotls.h` from the `ffi` module with cbindgen and
//! gives the shared library its SONAME.  The header is committed; CI checks
//! that a build leaves it unchanged.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // Cargo hands a library's cdylib link args to the cdylibs that depend on
    // it too; the faces (adapters/melon) build the engine without `capi` and
    // name their own library.
    if std::env::var_os("CARGO_FEATURE_CAPI").is_some() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcorotls.so.0");
    }

    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml is readable");
    // Only the C ABI and the result enum are parsed: the engine's own
    // `extern "C"` declarations of OpenSSL functions must not leak in.
    let bindings = cbindgen::Builder::new()
        .with_src(root.join("src/error.rs"))
        .with_src(root.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    // Only touch the file when the text changes, so `make` does not rebuild
    // every C program after each cargo build.
    bindings.write_to_file(root.join("include/corotls.h"));
}
