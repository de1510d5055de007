//! Compatibility walk over Microsoft's public APIM policy snippets
//! (`tests/apim-policies/`, MIT, see its LICENSE): every document is compiled
//! and either compiles or fails with a located, "unsupported construct" reason.
//!
//! How documents are compiled:
//! - A `<policies>` document is compiled at API scope with every `<fragment>`
//!   file of the corpus registered by its file stem (so `<include-fragment>`
//!   resolves), and every `{{name}}` it (or a fragment) mentions defined with a
//!   dummy value of a plausible shape (see [`dummy_value`]), so that missing
//!   named values are never the blocker.
//! - A `<fragment>` file is compiled the way APIM uses it: a document
//!   `<policies><inbound><include-fragment fragment-id="STEM" /></inbound></policies>`
//!   includes it (every fragment in the corpus is used in `<inbound>`). The
//!   engine reports errors inside a fragment on the `<include-fragment>` element
//!   with the inner position in the message; the walk reports that inner
//!   element and line, which are the fragment file's own.
//! - Any other root (a single policy, e.g. `<authentication-managed-identity>`)
//!   is a snippet meant for `<inbound>`: it is wrapped in
//!   `<policies><inbound>...</inbound></policies>` inserted right before and
//!   after the root element, so line numbers stay those of the file.
//!
//! `cargo test -p portcullis-core --test apim_compat -- --nocapture` prints the
//! results as the markdown tables of COMPATIBILITY.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use portcullis_core::policy::compile::{compile_document, CompileEnv};
use portcullis_core::policy::error::PolicyError;
use portcullis_core::policy::program::Level;
use portcullis_core::policy::xml;

/// Documents of the corpus that must compile; raise it when support grows.
const MIN_COMPILING: usize = 40;

/// How a file was compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Policies,
    Fragment,
    Snippet,
}

/// Why a file does not compile, in the file's own terms.
#[derive(Debug, Clone)]
struct Blocker {
    policy: String,
    line: u32,
    message: String,
}

#[derive(Debug)]
struct Outcome {
    file: String,
    kind: Kind,
    result: Result<(), Blocker>,
    /// The engine panicked (the message); `result` is then meaningless.
    crash: Option<String>,
}

/// Files on which the engine is known to panic instead of answering with an
/// error (a bug to fix, not a blocker): a file listed here may stop crashing
/// (then remove it); no other file may crash. Empty since `xml::parse` scans
/// bytes (it used to panic on a byte-order mark, in two files of the corpus).
const KNOWN_CRASHES: &[&str] = &[];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apim-policies")
}

fn xml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus directory is readable")
        .map(|e| e.expect("corpus directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            xml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "xml") {
            out.push(p);
        }
    }
}

/// Every `{{name}}` in `src` that the engine treats as a named value reference.
fn named_values(src: &str, out: &mut Vec<String>) {
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        let name = rest[open + 2..open + 2 + close].trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if valid && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
        rest = &rest[open + 4 + close..];
    }
}

/// A stand-in value shaped like what the snippet's authors would configure:
/// numbers for durations, weights and key selectors, URLs for hosts and
/// endpoints, base64 for keys and secrets, plain text otherwise.
fn dummy_value(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if n.ends_with("encryptionkey") || has(&["timeout", "seconds", "expiry", "weight", "cachetime"])
    {
        "1"
    } else if has(&["path-and-query"]) {
        "/alternate/path?x=1"
    } else if has(&[
        "url",
        "host",
        "server",
        "adress",
        "address",
        "endpoint",
        "send-request",
    ]) {
        "https://backend.example.com"
    } else if has(&["key", "secret", "-iv"]) {
        // 32 bytes, base64.
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    } else {
        "dummy-value"
    }
}

/// `in fragment 'id' at line L, column C: <policy>: message`, possibly nested:
/// the innermost element and position.
fn inside_fragment(err: &PolicyError) -> Option<Blocker> {
    let mut msg = err.message.as_str();
    let mut found = None;
    loop {
        let Some(rest) = msg.strip_prefix("in fragment '") else {
            // `fragment 'id' at line L, column C: message` (not well-formed, wrong root).
            if let Some(rest) = msg.strip_prefix("fragment '") {
                let (line, message) = position_prefix(rest.split_once("' at ")?.1)?;
                return Some(Blocker {
                    policy: "fragment".into(),
                    line,
                    message: message.to_string(),
                });
            }
            return found;
        };
        let (line, rest) = position_prefix(rest.split_once("' at ")?.1)?;
        let rest = rest.strip_prefix('<')?;
        let (policy, message) = rest.split_once(">: ")?;
        found = Some(Blocker {
            policy: policy.to_string(),
            line,
            message: message.to_string(),
        });
        msg = message;
    }
}

/// `line L, column C: rest` → (L, rest).
fn position_prefix(s: &str) -> Option<(u32, &str)> {
    let s = s.strip_prefix("line ")?;
    let (line, s) = s.split_once(", column ")?;
    let (column, rest) = s.split_once(": ")?;
    column.parse::<u32>().ok()?;
    Some((line.parse().ok()?, rest))
}

fn walk() -> Vec<Outcome> {
    let root = corpus_dir();
    let mut files = Vec::new();
    xml_files(&root, &mut files);
    let sources: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|p| {
            let src = std::fs::read_to_string(&p).expect("corpus file is UTF-8 text");
            (p, src)
        })
        .collect();

    // A panic is recorded as a crash of that file, quietly.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let parse = |src: &str| catch_unwind(|| xml::parse(src).map(|el| el.name));

    // Fragments by file stem.
    let mut fragments: HashMap<String, &str> = HashMap::new();
    for (path, src) in &sources {
        if matches!(parse(src), Ok(Ok(ref name)) if name == "fragment") {
            let stem = path
                .file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            fragments.insert(stem, src.as_str());
        }
    }

    let mut outcomes = Vec::new();
    for (path, src) in &sources {
        let file = path
            .strip_prefix(&root)
            .expect("under the corpus")
            .to_string_lossy()
            .into_owned();
        let mut names = Vec::new();
        named_values(src, &mut names);
        for f in fragments.values() {
            named_values(f, &mut names);
        }
        let env = CompileEnv {
            named_values: names
                .iter()
                .map(|n| (n.as_str(), (dummy_value(n), false)))
                .collect(),
            fragments: fragments.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
        };

        let run = catch_unwind(AssertUnwindSafe(|| {
            let (kind, doc) = match xml::parse(src) {
                Ok(el) if el.name == "policies" => (Kind::Policies, src.clone()),
                Ok(el) if el.name == "fragment" => {
                    let stem = path.file_stem().expect("a file name").to_string_lossy();
                    (
                        Kind::Fragment,
                        format!(
                            "<policies><inbound><include-fragment fragment-id=\"{stem}\" /></inbound></policies>"
                        ),
                    )
                }
                Ok(el) => (Kind::Snippet, wrap_snippet(src, el.pos)),
                // Not well-formed: compile it as is to get the engine's located error.
                Err(_) => (Kind::Policies, src.clone()),
            };
            (kind, compile_document(&doc, Level::Api, &env))
        }));
        let outcome = match run {
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let what: String = what.chars().take(120).collect();
                Outcome {
                    file,
                    kind: Kind::Policies,
                    result: Ok(()),
                    crash: Some(what),
                }
            }
            Ok((kind, compiled)) => {
                let result = compiled.map(|_| ()).map_err(|e| match kind {
                    // Unlocated (line 0) if the message has no inner position:
                    // the assertions then name the file.
                    Kind::Fragment => inside_fragment(&e).unwrap_or(Blocker {
                        policy: e.policy.clone(),
                        line: 0,
                        message: e.message.clone(),
                    }),
                    _ => Blocker {
                        policy: e.policy.clone(),
                        line: e.pos.line,
                        message: e.message.clone(),
                    },
                });
                Outcome {
                    file,
                    kind,
                    result,
                    crash: None,
                }
            }
        };
        outcomes.push(outcome);
    }
    std::panic::set_hook(hook);
    outcomes
}

/// `<policies><inbound>` right before the root element at `pos` and the closing
/// tags at the end, so lines stay the file's.
fn wrap_snippet(src: &str, pos: xml::Pos) -> String {
    let line_start: usize = src
        .split_inclusive('\n')
        .take(pos.line as usize - 1)
        .map(str::len)
        .sum();
    let col: usize = src[line_start..]
        .chars()
        .take(pos.column as usize - 1)
        .map(char::len_utf8)
        .sum();
    let at = line_start + col;
    format!(
        "{}<policies><inbound>{}</inbound></policies>",
        &src[..at],
        &src[at..]
    )
}

/// Policies that stand for an Azure service, whatever the engine says about them.
const AZURE_ONLY: &[&str] = &["authentication-managed-identity"];

/// The construct a failure is blocked by, for grouping.
fn group(b: &Blocker) -> String {
    let m = b.message.as_str();
    if m.contains("needs Azure services") || AZURE_ONLY.contains(&b.policy.as_str()) {
        format!("Azure-only policy `<{}>`", b.policy)
    } else if m.starts_with("unknown or unsupported policy") {
        format!("unsupported policy `<{}>`", b.policy)
    } else if let Some(i) = m.find("expression") {
        // `expression in attribute 'x': reason` → `expression: reason`
        let reason = m[i..].split_once(": ").map_or(m, |(_, r)| r);
        format!("expression: {reason}")
    } else {
        format!("`<{}>`: {m}", b.policy)
    }
}

fn escape_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn compiling(outcomes: &[Outcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| o.crash.is_none() && o.result.is_ok())
        .count()
}

fn report(outcomes: &[Outcome]) -> String {
    let total = outcomes.len();
    let ok = compiling(outcomes);
    let mut out = String::new();
    let _ = writeln!(out, "{ok} of {total} documents compile.\n");
    let _ = writeln!(out, "| File | Kind | Result |");
    let _ = writeln!(out, "|---|---|---|");
    for o in outcomes {
        let kind = match o.kind {
            Kind::Policies => "policies",
            Kind::Fragment => "fragment",
            Kind::Snippet => "snippet",
        };
        let result = match (&o.crash, &o.result) {
            (Some(panic), _) => format!("💥 engine panic: {}", escape_cell(panic)),
            (None, Ok(())) => "✅".to_string(),
            (None, Err(b)) => format!(
                "❌ `<{}>` line {}: {}",
                b.policy,
                b.line,
                escape_cell(&b.message)
            ),
        };
        let _ = writeln!(out, "| {} | {kind} | {result} |", escape_cell(&o.file));
    }
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for o in outcomes {
        if o.crash.is_some() {
            groups
                .entry("engine panic (see KNOWN_CRASHES)".into())
                .or_default()
                .push(&o.file);
        } else if let Err(b) = &o.result {
            groups.entry(group(b)).or_default().push(&o.file);
        }
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    let _ = writeln!(out, "\n| Blocking construct | Files |");
    let _ = writeln!(out, "|---|---|");
    for (g, files) in &groups {
        let _ = writeln!(out, "| {} | {} |", escape_cell(g), files.len());
    }
    out
}

#[test]
fn apim_policy_snippets_compile_or_fail_with_a_located_reason() {
    let outcomes = walk();
    println!("{}", report(&outcomes));
    assert!(outcomes.len() >= 50, "corpus missing: {}", outcomes.len());

    for o in &outcomes {
        if let Some(panic) = &o.crash {
            assert!(
                KNOWN_CRASHES.contains(&o.file.as_str()),
                "{}: the engine panicked: {panic}",
                o.file
            );
            continue;
        }
        let Err(b) = &o.result else { continue };
        // (a) located and explained
        assert!(!b.policy.is_empty(), "{}: no element named: {b:?}", o.file);
        assert!(b.line > 0, "{}: no line: {b:?}", o.file);
        assert!(!b.message.trim().is_empty(), "{}: no reason: {b:?}", o.file);
        // (c) a reason about the document, not the engine
        let lower = b.message.to_ascii_lowercase();
        for word in ["panic", "internal error", "unreachable", "bug", "overflow"] {
            assert!(
                !lower.contains(word),
                "{}: engine-side failure: {b:?}",
                o.file
            );
        }
    }

    // (b) no regressions
    let ok = compiling(&outcomes);
    assert!(
        ok >= MIN_COMPILING,
        "only {ok} documents compile, expected at least {MIN_COMPILING}"
    );
}
