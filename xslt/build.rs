//! Compiles the C shim against the system's libxslt and libxml2 (Debian:
//! `libxslt1-dev`), found with pkg-config's standard paths.

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    let mut build = cc::Build::new();
    build.file("src/shim.c").include("/usr/include/libxml2");
    build.compile("portcullis_xslt_shim");
    println!("cargo:rustc-link-lib=xslt");
    println!("cargo:rustc-link-lib=xml2");
}
