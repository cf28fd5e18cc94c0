//! Gives libcorotls_melon.so its SONAME.  Undefined symbols (the host's
//! mln_alloc_* / mln_chain_* / mln_file_tmp_open) are allowed at link time
//! on Linux; they must resolve when a Melon host loads the library.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcorotls_melon.so.0");
}
