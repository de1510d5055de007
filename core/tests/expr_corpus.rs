//! Compiles every expression in the APIM policy-snippets corpus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use portcullis_core::expr::{expression_extent, Expr};

/// Where the samples are: `$PORTCULLIS_APIM_SNIPPETS`, or the copy vendored in
/// `core/tests/apim-policies` (so a clean clone runs the test).
fn corpus_dir() -> Option<PathBuf> {
    let p = match std::env::var_os("PORTCULLIS_APIM_SNIPPETS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apim-policies"),
    };
    p.is_dir().then_some(p)
}

fn xml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            xml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "xml") {
            out.push(p);
        }
    }
}

/// Replaces `{{named-value}}` placeholders (APIM substitutes them before compiling) with `1`.
fn substitute_named_values(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(e)
                if after[..e]
                    .chars()
                    .all(|c| c.is_alphanumeric() || "-_.".contains(c))
                    && e > 0 =>
            {
                out.push('1');
                rest = &after[e + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("<!--") {
        out.push_str(&rest[..i]);
        match rest[i..].find("-->") {
            Some(e) => rest = &rest[i + e + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Every `@(...)`/`@{...}` that starts an attribute value or element text.
fn extract(text: &str) -> Vec<Result<String, String>> {
    let t = substitute_named_values(&unescape(&strip_comments(text)));
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = t[i..].find('@') {
        let at = i + off;
        i = at + 1;
        let rest = &t[at..];
        if !(rest.starts_with("@(") || rest.starts_with("@{")) {
            continue;
        }
        let prev = t[..at].trim_end().chars().last();
        if !matches!(prev, Some('"' | '\'' | '>')) {
            continue;
        }
        match expression_extent(rest) {
            Some(n) => {
                out.push(Ok(rest[..n].to_string()));
                i = at + n;
            }
            None => out.push(Err(rest.chars().take(60).collect())),
        }
    }
    out
}

#[test]
fn corpus_compiles() {
    let Some(dir) = corpus_dir() else {
        panic!("the APIM policy-snippets corpus is missing (core/tests/apim-policies)");
    };
    let mut files = Vec::new();
    xml_files(&dir, &mut files);
    files.sort();
    let mut total = 0;
    let mut ok = 0;
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for e in extract(&text) {
            total += 1;
            match e {
                Ok(src) => match Expr::compile(&src) {
                    Ok(_) => ok += 1,
                    Err(err) => failures
                        .entry(err.message.clone())
                        .or_default()
                        .push(format!(
                            "{name}: {}",
                            src.chars().take(100).collect::<String>().replace('\n', " ")
                        )),
                },
                Err(head) => failures
                    .entry("unterminated expression".into())
                    .or_default()
                    .push(format!("{name}: {head}")),
            }
        }
    }
    eprintln!("corpus: {ok} of {total} expressions compile");
    for (msg, where_) in &failures {
        eprintln!("  {} x {msg}", where_.len());
        for w in where_.iter().take(3) {
            eprintln!("      {w}");
        }
    }
    assert!(total >= 400, "found only {total} expressions");
    assert!(ok >= MIN_COMPILED, "only {ok} of {total} compile");
}

/// The floor for `corpus_compiles`.
const MIN_COMPILED: usize = 422;
