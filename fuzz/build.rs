//! Compiles the C parts of the melon and silly targets: the Melon host
//! fixture (c_tests/melon/melon_host) with c/melon_fuzz.c, and the silly
//! shim (adapters/silly/silly_tls.c) with c/silly_fuzz.c, against the
//! system Lua 5.4 (Debian: liblua5.4-dev).  When cargo fuzz builds with
//! AddressSanitizer, the C files are compiled with it too (gcc's
//! instrumentation, checked by the runtime rustc links), so a memory error
//! in the shim or the fixture is caught where it happens.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let melon_host = root.join("c_tests/melon/melon_host");
    for f in ["c/melon_fuzz.c", "c/silly_fuzz.c"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed={}", melon_host.display());
    println!("cargo:rerun-if-changed={}", root.join("adapters/silly").display());

    // cargo sets CARGO_CFG_SANITIZE for -Zsanitizer=... builds.
    let asan = std::env::var("CARGO_CFG_SANITIZE").is_ok_and(|s| s.split(',').any(|x| x == "address"));
    let mut melon = cc::Build::new();
    let mut silly = cc::Build::new();
    if asan {
        for b in [&mut melon, &mut silly] {
            b.flag("-fsanitize=address").flag("-fno-omit-frame-pointer");
        }
    }
    melon
        .file("c/melon_fuzz.c")
        .file(melon_host.join("melon_host.c"))
        .define("MLN_TLS", None)
        .include(root.join("include/melon"))
        .include(melon_host.join("include"))
        .flag("-std=gnu11")
        .warnings(true)
        .compile("corotls_fuzz_melon");

    let lua = ["/usr/include/lua5.4", "/usr/local/include/lua5.4"]
        .into_iter()
        .find(|d| std::path::Path::new(d).join("lua.h").exists())
        .expect("Lua 5.4 headers not found (Debian: apt-get install liblua5.4-dev)");
    silly
        .file("c/silly_fuzz.c")
        .file(root.join("adapters/silly/silly_tls.c"))
        .define("_GNU_SOURCE", None)
        .include(lua)
        .include(root.join("include"))
        .include(root.join("adapters/silly"))
        .flag("-std=gnu11")
        .warnings(true)
        .compile("corotls_fuzz_silly");
    println!("cargo:rustc-link-lib=lua5.4");
}
