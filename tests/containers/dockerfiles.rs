//! The two ways to build the image make the same image: the repository's
//! Dockerfile (build in rust:1-bookworm) and deploy/Dockerfile.local (the
//! binary built on the host, deploy/build-image.sh) share their final stage
//! line for line, and deploy/rootfs.sh assembles what both copy in. No Docker
//! needed.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The lines from the last `FROM` on.
fn final_stage(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(path)).expect(path);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    lines[start..].to_vec()
}

#[test]
fn both_dockerfiles_end_in_the_same_final_stage() {
    let registry = final_stage("Dockerfile");
    let local = final_stage("deploy/Dockerfile.local");
    assert_eq!(registry, local);
    let text = registry.join("\n");
    for needed in [
        "FROM scratch",
        "USER 65532:65532",
        "STOPSIGNAL SIGTERM",
        "HEALTHCHECK",
        "EXPOSE 8080 8081 9090",
        "ENTRYPOINT [\"/usr/local/bin/portcullis\"]",
        "CMD [\"gateway\"]",
        "org.opencontainers.image.licenses",
    ] {
        assert!(text.contains(needed), "final stage lacks {needed}");
    }
}

#[test]
fn the_root_file_system_has_the_binary_its_libraries_and_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rootfs");
    let status = Command::new("sh")
        .arg(Path::new(ROOT).join("deploy/rootfs.sh"))
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .arg(&out)
        .status()
        .expect("running deploy/rootfs.sh");
    assert!(status.success());
    assert!(out.join("usr/local/bin/portcullis").is_file());
    assert!(out.join("etc/ssl/certs/ca-certificates.crt").is_file());
    let passwd = std::fs::read_to_string(out.join("etc/passwd")).unwrap();
    assert!(passwd.contains("portcullis:x:65532:65532:"), "{passwd}");
    for dir in ["backup", "data", "bootstrap"] {
        assert!(out.join("var/lib/portcullis").join(dir).is_dir(), "{dir}");
    }
    // Every library the binary loads is there, at the path it is loaded from.
    let ldd = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .output()
        .unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    let libs: Vec<&str> = ldd
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .collect();
    assert!(!libs.is_empty(), "{ldd}");
    for lib in libs {
        let inside = out.join(lib.trim_start_matches('/'));
        assert!(inside.is_file(), "{lib} missing from the root file system");
    }
    // No shell: the image runs nothing but the binary.
    assert!(!out.join("bin/sh").exists());
    // The script refuses to write over a non-empty directory.
    let again = Command::new("sh")
        .arg(Path::new(ROOT).join("deploy/rootfs.sh"))
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
}
