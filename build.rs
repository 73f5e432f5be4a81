//! Writes `include/xsocket.h` from the `extern "C"` items in `src/ffi/` with cbindgen.
//!
//! The header is committed; `make test` fails when the committed copy is stale.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    println!("cargo:rerun-if-changed=src");
    // The shared library's soname: `make install` adds the libxsocket.so.0 link.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libxsocket.so.0");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let header = crate_dir.join("include").join("xsocket.h");
    match cbindgen::generate_with_config(&crate_dir, config) {
        Ok(bindings) => {
            bindings.write_to_file(&header);
        }
        // A syntax error in src/ is reported by rustc itself, with a better message.
        Err(err) => println!("cargo:warning=cbindgen could not write {}: {err}", header.display()),
    }
}
