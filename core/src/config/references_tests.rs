//! The references a compiled document makes, and a configuration naming a backend
//! it does not have refused when it is loaded.

use super::{CompiledConfig, ConfigError, Snapshot};
use crate::policy::compile::{compile_document, CompileEnv};
use crate::policy::program::{Level, RefKind, Reference};
use crate::policy::xml::Pos;

fn env<'a>(named: &[(&'a str, &'a str)], fragments: &[(&'a str, &'a str)]) -> CompileEnv<'a> {
    CompileEnv {
        named_values: named.iter().map(|(n, v)| (*n, (*v, false))).collect(),
        fragments: fragments.iter().copied().collect(),
    }
}

fn refs(src: &str, env: &CompileEnv<'_>) -> Vec<Reference> {
    match compile_document(src, Level::Api, env) {
        Ok(doc) => doc.references().to_vec(),
        Err(e) => panic!("{e}"),
    }
}

fn at(line: u32, column: u32) -> Pos {
    Pos { line, column }
}

#[test]
fn a_document_lists_backends_fragments_and_named_values_with_their_lines() {
    let frag = "<fragment>\n  <set-header name=\"x\" exists-action=\"override\"><value>{{inner}}</value></set-header>\n  <set-backend-service backend-id=\"b2\" />\n</fragment>";
    let env = env(&[("calls", "5"), ("inner", "v")], &[("f1", frag)]);
    let src = "<policies>\n  <inbound>\n    <base />\n    <rate-limit calls=\"{{calls}}\" renewal-period=\"60\" />\n    <set-backend-service backend-id=\"b1\" />\n    <include-fragment fragment-id=\"f1\" />\n  </inbound>\n</policies>";
    let got = refs(src, &env);
    let want = vec![
        Reference {
            kind: RefKind::NamedValue,
            id: "calls".into(),
            policy: "rate-limit".into(),
            pos: at(4, 5),
            fragment: None,
        },
        Reference {
            kind: RefKind::Backend,
            id: "b1".into(),
            policy: "set-backend-service".into(),
            pos: at(5, 5),
            fragment: None,
        },
        Reference {
            kind: RefKind::Fragment,
            id: "f1".into(),
            policy: "include-fragment".into(),
            pos: at(6, 5),
            fragment: None,
        },
        Reference {
            kind: RefKind::NamedValue,
            id: "inner".into(),
            policy: "value".into(),
            pos: at(6, 5),
            fragment: Some(("f1".into(), at(2, 49))),
        },
        Reference {
            kind: RefKind::Backend,
            id: "b2".into(),
            policy: "set-backend-service".into(),
            pos: at(6, 5),
            fragment: Some(("f1".into(), at(3, 3))),
        },
    ];
    assert_eq!(got, want);
}

#[test]
fn references_in_nested_fragments_name_the_innermost_fragment() {
    let outer = "<fragment><include-fragment fragment-id=\"inner\" /></fragment>";
    let inner = "<fragment>\n<set-backend-service backend-id=\"deep\" /></fragment>";
    let env = env(&[], &[("outer", outer), ("inner", inner)]);
    let src =
        "<policies>\n<inbound><include-fragment fragment-id=\"outer\" /></inbound></policies>";
    let got = refs(src, &env);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        (got[0].kind, got[0].id.as_str()),
        (RefKind::Fragment, "outer")
    );
    assert_eq!(got[1].kind, RefKind::Fragment);
    assert_eq!(got[1].fragment, Some(("outer".into(), at(1, 11))));
    assert_eq!(got[2].kind, RefKind::Backend);
    assert_eq!(got[2].pos, at(2, 10));
    assert_eq!(got[2].fragment, Some(("inner".into(), at(2, 1))));
    assert_eq!(
        got[2].unresolved().to_string(),
        "line 2, column 10: <include-fragment>: in fragment 'inner' at line 2, column 1: <set-backend-service>: backend 'deep' does not exist"
    );
}

#[test]
fn base_url_and_literal_braces_are_not_references() {
    let src = r#"<policies><inbound><set-backend-service base-url="http://127.0.0.1:1/" /><set-body>{{ not a name }}</set-body></inbound></policies>"#;
    assert!(refs(src, &env(&[], &[])).is_empty());
}

fn snapshot(policy: &str, backends: &str) -> Snapshot {
    let json = serde_json::json!({
        "revision": 3,
        "apis": [{
            "id": "echo", "path": "echo", "serviceUrl": "http://127.0.0.1:9/",
            "subscriptionRequired": false,
            "policy": policy,
            "operations": [{"id": "get", "method": "GET", "urlTemplate": "/"}]
        }],
        "backends": serde_json::from_str::<serde_json::Value>(backends).unwrap_or_default(),
    });
    match Snapshot::from_json(json.to_string().as_bytes()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

const GHOST: &str = "<policies>\n  <inbound>\n    <base />\n    <set-backend-service backend-id=\"ghost\" />\n  </inbound>\n</policies>";

#[test]
fn a_configuration_naming_a_missing_backend_is_refused_at_load_time() {
    match CompiledConfig::compile(snapshot(GHOST, "[]")) {
        Err(ConfigError::Policy { owner, error }) => {
            assert_eq!(owner, "api `echo`");
            assert_eq!(error.pos, at(4, 5));
            assert_eq!(error.policy, "set-backend-service");
            assert_eq!(error.message, "backend 'ghost' does not exist");
        }
        Err(other) => panic!("not a policy error: {other}"),
        Ok(_) => panic!("a missing backend was accepted"),
    }
    let backends = r#"[{"id": "ghost", "url": "http://127.0.0.1:10/"}]"#;
    if let Err(e) = CompiledConfig::compile(snapshot(GHOST, backends)) {
        panic!("an existing backend was refused: {e}");
    }
}

#[test]
fn a_missing_backend_inside_a_fragment_is_refused_at_the_include() {
    let mut s = snapshot(
        "<policies>\n<inbound><include-fragment fragment-id=\"f\" /></inbound></policies>",
        "[]",
    );
    s.fragments.push(super::PolicyFragment {
        id: "f".into(),
        policy: "<fragment>\n\n<set-backend-service backend-id=\"ghost\" /></fragment>".into(),
    });
    match CompiledConfig::compile(s) {
        Err(ConfigError::Policy { error, .. }) => {
            assert_eq!(error.pos, at(2, 10));
            assert_eq!(error.policy, "include-fragment");
            assert_eq!(
                error.message,
                "in fragment 'f' at line 3, column 1: <set-backend-service>: backend 'ghost' does not exist"
            );
        }
        Err(other) => panic!("not a policy error: {other}"),
        Ok(_) => panic!("a missing backend was accepted"),
    }
}

#[test]
fn a_missing_backend_named_through_a_secret_value_does_not_show_the_secret() {
    let mut s = snapshot(
        "<policies><inbound><set-backend-service backend-id=\"{{route}}\" /></inbound></policies>",
        "[]",
    );
    s.named_values.push(super::NamedValue {
        name: "route".into(),
        value: "s3cr3t-route".into(),
        secret: true,
    });
    match CompiledConfig::compile(s) {
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("backend '***' does not exist"), "{shown}");
        }
        Ok(_) => panic!("a missing backend was accepted"),
    }
}
