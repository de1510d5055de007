//! The second compatibility corpus (`tests/apim-corpus-2/`): one realistic
//! policy document per policy of APIM's validation, transformation, metric,
//! AI-gateway and WebSocket families, written from APIM's documentation.
//!
//! Every document must compile, and every document must be loaded by a
//! behaviour test somewhere in the workspace (`include_str!` of its path), so a
//! document nobody runs cannot sit in the corpus. `REQUIRED` names the
//! policies the corpus must cover.
//!
//! `cargo test -p portcullis-core --test apim_corpus2 -- --nocapture` prints
//! the table of COMPATIBILITY.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use portcullis_core::policy::compile::{compile_document, CompileEnv};
use portcullis_core::policy::program::Level;

/// File stems the corpus must have (one per policy the issue names).
const REQUIRED: &[&str] = &[];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apim-corpus-2")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core sits in the workspace")
        .to_path_buf()
}

fn corpus() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(corpus_dir())
        .expect("the corpus directory is readable")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                std::fs::read_to_string(&p).expect("corpus file is UTF-8"),
            )
        })
        .collect();
    files.sort();
    files
}

/// Every `{{name}}` in `src` that can be a named value (Liquid's
/// `{{body.id}}` and the like cannot: they have dots, spaces or filters).
fn named_values(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        let name = rest[open + 2..open + 2 + close].trim();
        if !name.is_empty() && !name.contains(['.', ' ', '|']) {
            out.push(name.to_string());
        }
        rest = &rest[open + 2 + close + 2..];
    }
    out
}

/// Rust sources that may hold behaviour tests.
fn test_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                test_sources(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_corpus_document_compiles_and_has_a_behaviour_test() {
    let files = corpus();
    let root = workspace_root();
    let mut sources = Vec::new();
    for dir in ["core", "tests", "driver", "management"] {
        test_sources(&root.join(dir), &mut sources);
    }
    let texts: Vec<String> = sources
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|t| t.contains("apim-corpus-2/"))
        .collect();
    let mut failures = Vec::new();
    println!("| Document | Compiles | Behaviour test |\n|---|---|---|");
    for (name, src) in &files {
        let names = named_values(src);
        let env = CompileEnv {
            named_values: names
                .iter()
                // The corpus's named values are base URLs of services.
                .map(|n| (n.as_str(), ("https://named-value.example", false)))
                .collect::<HashMap<_, _>>(),
            fragments: HashMap::new(),
        };
        let compiled = compile_document(src, Level::Api, &env);
        let needle = format!("apim-corpus-2/{name}");
        let tested = texts.iter().any(|t| t.contains(&needle));
        println!(
            "| {name} | {} | {} |",
            if compiled.is_ok() { "✅" } else { "❌" },
            if tested { "✅" } else { "❌" }
        );
        if let Err(e) = compiled {
            failures.push(format!("{name}: does not compile: {e}"));
        }
        if !tested {
            failures.push(format!("{name}: no test loads it"));
        }
    }
    for stem in REQUIRED {
        if !files
            .iter()
            .any(|(n, _)| n == &format!("{stem}.xml") || n.starts_with(&format!("{stem}.")))
        {
            failures.push(format!("{stem}: the corpus has no document for it"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
