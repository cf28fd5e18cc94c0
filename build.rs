//! Generates the C header from the `ffi` module with cbindgen and gives the
//! shared library its SONAME.
//!
//! The header is written into the build tree, never the source tree:
//! `$OUT_DIR/corotls.h` and `target/<profile>/include/corotls.h` (beside the
//! library).  The committed `include/corotls.h` is refreshed by `make header`;
//! `make header-check` (part of `make check`) fails when it differs.

use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // Cargo hands a library's cdylib link args to the cdylibs that depend on
    // it too; the faces (adapters/melon) build the engine without `capi` and
    // name their own library.
    if std::env::var_os("CARGO_FEATURE_CAPI").is_some() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcorotls.so.0");
    }

    let mut config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml is readable");
    // The version macros come from Cargo.toml, the one place it is written.
    let v = |name: &str| std::env::var(name).unwrap();
    config.after_includes = Some(format!(
        "\n/** This header's version (Cargo.toml's); corotls_version() gives the loaded library's. */\n\
         #define COROTLS_VERSION_MAJOR {}\n\
         #define COROTLS_VERSION_MINOR {}\n\
         #define COROTLS_VERSION_PATCH {}\n\
         #define COROTLS_VERSION_STRING \"{}\"",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
        v("CARGO_PKG_VERSION"),
    ));
    // Only the C ABI and the result enum are parsed: the engine's own
    // `extern "C"` declarations of OpenSSL functions must not leak in.
    let bindings = cbindgen::Builder::new()
        .with_src(root.join("src/error.rs"))
        .with_src(root.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut text = Vec::new();
    bindings.write(&mut text);

    let in_out_dir = out_dir.join("corotls.h");
    write_if_changed(&in_out_dir, &text).unwrap_or_else(|e| panic!("{}: {e}", in_out_dir.display()));
    // OUT_DIR is <target>/<profile>/build/corotls-<hash>/out: the copy
    // beside the library is what make uses; a build elsewhere (corotls as
    // a dependency) can do without it.
    if let Some(profile_dir) = out_dir.ancestors().nth(3) {
        let beside_lib = profile_dir.join("include/corotls.h");
        if let Err(e) = write_if_changed(&beside_lib, &text) {
            println!("cargo:warning=corotls.h not written to {}: {e}", beside_lib.display());
        }
    }
}

/// Write `text` to `path` unless it already holds exactly that, so the file
/// keeps its date (and make does not rebuild what depends on it).  Written
/// to a temporary file and renamed: a reader never sees half a header.
fn write_if_changed(path: &Path, text: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("h.tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
