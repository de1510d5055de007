//! Core's top-level modules stand in layers: each may use only the modules
//! below it, so no two import each other (directly or round a circle).
//!
//! The test reads `src/`, finds every `crate::X` a module's code names (comments
//! skipped), and checks each edge against [`LAYERS`]. Run it with
//! `cargo test -p portcullis-core --test module_layers -- --nocapture` to print
//! every edge between top-level modules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Core's top-level modules, lowest first. A module may use any module listed
/// before it, never one listed after it.
const LAYERS: &[&str] = &[
    "machine",
    "cert",
    "pool",
    "http",
    "expr",
    "callout",
    "policy",
    "router",
    "config",
    "sync",
    "telemetry",
    "proxy",
    "ops_endpoints",
];

/// Upward edges allowed, by file and the module it names, each with its
/// reason. A new upward edge fails the test.
const ALLOWED_FOR_NOW: &[(&str, &str, &str)] = &[
    // The expression tests build a real policy context (test code only).
    ("expr/tests.rs", "policy", "test code"),
];

/// One `crate::X` use: the file (relative to `src/`), its module and `X`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    file: String,
    from: String,
    to: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source text names as `crate::X` or `crate::{X, ..}`,
/// outside comments.
fn named_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            // `$crate::` and `portcullis_core::` are not this crate's own paths.
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.push(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        }
    }
    out
}

fn edges() -> Vec<Edge> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out = Vec::new();
    for path in files {
        let Ok(rel) = path.strip_prefix(&src) else {
            continue;
        };
        let file = rel.to_string_lossy().replace('\\', "/");
        if file == "lib.rs" {
            continue;
        }
        let from = file
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_owned();
        let text = fs::read_to_string(&path).unwrap_or_default();
        for to in named_modules(&text) {
            if to != from {
                out.push(Edge {
                    file: file.clone(),
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    for line in lib.lines() {
        if let Some(name) = line.trim().strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(
                layer(name).is_some(),
                "module `{name}` is not in LAYERS: give it its place"
            );
        }
    }
}

#[test]
fn modules_use_only_lower_layers() {
    let edges = edges();
    let mut table: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for e in &edges {
        table
            .entry((e.from.clone(), e.to.clone()))
            .or_default()
            .push(e.file.clone());
    }
    for ((from, to), files) in &table {
        println!("{from} -> {to}: {}", files.join(", "));
    }
    let mut upward = Vec::new();
    for e in &edges {
        let (Some(from), Some(to)) = (layer(&e.from), layer(&e.to)) else {
            // `crate::X` naming something that is not a module (a macro, say).
            continue;
        };
        let allowed = ALLOWED_FOR_NOW
            .iter()
            .any(|(file, to, _)| *file == e.file && *to == e.to);
        if to > from && !allowed {
            upward.push(format!("{} ({}) uses {}", e.file, e.from, e.to));
        }
    }
    assert!(
        upward.is_empty(),
        "modules using a higher layer (order: {LAYERS:?}):\n{}",
        upward.join("\n")
    );
}
