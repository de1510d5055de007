//! Compiles the C shim against the system's libxslt and libxml2 (Debian:
//! `libxslt1-dev`). Without their headers the crate builds its stand-in
//! instead (cfg `portcullis_no_libxslt`), so `cargo run -- demo` works on a
//! fresh machine; `xsl-transform` then refuses to load, saying why.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(portcullis_no_libxslt)");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=PORTCULLIS_NO_LIBXSLT");
    let headers = [
        "/usr/include/libxslt/xslt.h",
        "/usr/include/libxml2/libxml/tree.h",
    ];
    for h in headers {
        println!("cargo:rerun-if-changed={h}");
    }
    let wanted = std::env::var_os("PORTCULLIS_NO_LIBXSLT").is_none();
    if !wanted || !headers.iter().all(|h| Path::new(h).exists()) {
        println!("cargo:rustc-cfg=portcullis_no_libxslt");
        if wanted {
            println!(
                "cargo:warning=libxslt's headers are missing (Debian: libxslt1-dev): \
                 building without xsl-transform"
            );
        }
        return;
    }
    let mut build = cc::Build::new();
    build.file("src/shim.c").include("/usr/include/libxml2");
    build.compile("portcullis_xslt_shim");
    println!("cargo:rustc-link-lib=xslt");
    println!("cargo:rustc-link-lib=xml2");
}
