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

/// A self-signed certificate (public material only; the key below is a
/// placeholder: core checks a key's PEM label, the management plane checks
/// that it matches).
const FIXTURE_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBjDCCATGgAwIBAgIUMNcZ28+fAcBoc+d+zqdp996bYsQwCgYIKoZIzj0EAwIw\nGjEYMBYGA1UEAwwPZml4dHVyZS5leGFtcGxlMCAXDTI2MTIwNzE2MjczNloYDzIx\nMjYxMTEzMTYyNzM2WjAaMRgwFgYDVQQDDA9maXh0dXJlLmV4YW1wbGUwWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAAQTvMT9t6nV7F8YfBuVYy7EocfeU4KBw7eXZ9XX\nZkv/mgn3Rf3zv2nw7eY1LEE2ARd4Ky7ZvNH7akYeBJxKX+4Lo1MwUTAdBgNVHQ4E\nFgQUFRBdhLWwzafZKM1bUTQ5KFt8Z3kwHwYDVR0jBBgwFoAUFRBdhLWwzafZKM1b\nUTQ5KFt8Z3kwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAoHoS\nxlMpFdoLAAQOBHWqQ0RiT9KsS5QsPPll+s79tcwCIQD298fF/5K6JhGWbN3xsRYU\nnIhR9X+4hDOldzUUFxVDng==\n-----END CERTIFICATE-----\n";
const PLACEHOLDER_KEY: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

/// A snapshot with certificate `c1`, CA `ca1`, and the given hostnames and backends (JSON arrays).
fn tls_snapshot(hostnames: &str, backends: &str) -> Snapshot {
    let json = format!(
        r#"{{"revision": 1,
            "certificates": [{{"id": "c1", "certificatePem": {cert}, "privateKeyPem": {key}}}],
            "caCertificates": [{{"id": "ca1", "certificatePem": {cert}}}],
            "hostnames": {hostnames},
            "backends": {backends}}}"#,
        cert = serde_json::Value::from(FIXTURE_CERT),
        key = serde_json::Value::from(PLACEHOLDER_KEY),
    );
    match Snapshot::from_json(json.as_bytes()) {
        Ok(s) => s,
        Err(e) => panic!("{e}: {json}"),
    }
}

fn tls_error(hostnames: &str, backends: &str) -> ConfigError {
    match tls_snapshot(hostnames, backends).validate() {
        Ok(()) => panic!("accepted: {hostnames} {backends}"),
        Err(e) => e,
    }
}

#[test]
fn hostnames_and_backend_tls_refer_to_what_the_snapshot_has() {
    use super::TlsProblem;
    let ok = tls_snapshot(
        r#"[{"hostname": "api.example.com", "certificateId": "c1", "defaultSslBinding": true},
            {"hostname": "*.example.com", "certificateId": "c1", "cipherSuites": ["TLS_AES_128_GCM_SHA256"]}]"#,
        r#"[{"id": "b1", "url": "https://b.internal/", "tls": {"caCertificateIds": ["ca1"], "clientCertificateId": "c1", "serverName": "b.internal"}}]"#,
    );
    assert_eq!(ok.clone().validate(), Ok(()));
    CompiledConfig::compile(ok).expect("compiles");

    let host = |hostname: &str, problem| ConfigError::Hostname {
        hostname: hostname.to_owned(),
        problem,
    };
    assert_eq!(
        tls_error(
            r#"[{"hostname": "a.example.com", "certificateId": "nope"}]"#,
            "[]"
        ),
        host(
            "a.example.com",
            TlsProblem::UnknownCertificate("nope".into())
        )
    );
    assert_eq!(
        tls_error(
            r#"[{"hostname": "a.example.com", "certificateId": "c1", "defaultSslBinding": true},
                {"hostname": "b.example.com", "certificateId": "c1", "defaultSslBinding": true}]"#,
            "[]"
        ),
        host(
            "b.example.com",
            TlsProblem::SecondDefault("a.example.com".into())
        )
    );
    assert_eq!(
        tls_error(
            r#"[{"hostname": "a.example.com", "certificateId": "c1"},
                {"hostname": "a.example.com", "certificateId": "c1"}]"#,
            "[]"
        ),
        host("a.example.com", TlsProblem::DuplicateId)
    );
    assert_eq!(
        tls_error(
            r#"[{"hostname": "a.example.com", "certificateId": "c1", "cipherSuites": ["TLS_RSA_WITH_RC4_128_SHA"]}]"#,
            "[]"
        ),
        host(
            "a.example.com",
            TlsProblem::UnknownCipherSuite("TLS_RSA_WITH_RC4_128_SHA".into())
        )
    );
    for bad in [
        "A.example.com",
        "a..b",
        "*.*.example.com",
        "a.*.b",
        "-a.b",
        "",
        "a b",
    ] {
        let json = format!(r#"[{{"hostname": "{bad}", "certificateId": "c1"}}]"#);
        match tls_error(&json, "[]") {
            ConfigError::Hostname {
                problem: TlsProblem::InvalidHostname(_),
                ..
            } => {}
            other => panic!("{bad}: {other}"),
        }
    }

    let backend = |problem| ConfigError::BackendTls {
        backend: "b1".into(),
        problem,
    };
    assert_eq!(
        tls_error(
            "[]",
            r#"[{"id": "b1", "url": "https://b/", "tls": {"caCertificateIds": ["ca1", "ca2"]}}]"#
        ),
        backend(TlsProblem::UnknownCaCertificate("ca2".into()))
    );
    assert_eq!(
        tls_error(
            "[]",
            r#"[{"id": "b1", "url": "https://b/", "tls": {"clientCertificateId": "c2"}}]"#
        ),
        backend(TlsProblem::UnknownCertificate("c2".into()))
    );
    assert_eq!(
        tls_error(
            "[]",
            r#"[{"id": "b1", "url": "https://b/", "tls": {"serverName": "not a name"}}]"#
        ),
        backend(TlsProblem::InvalidServerName("not a name".into()))
    );
}

#[test]
fn certificate_and_crl_pems_must_parse() {
    use super::TlsProblem;
    let mut s = tls_snapshot("[]", "[]");
    s.certificates[0].certificate_pem = "garbage".into();
    assert!(matches!(
        s.validate(),
        Err(ConfigError::Certificate {
            problem: TlsProblem::InvalidPem {
                field: "certificatePem",
                ..
            },
            ..
        })
    ));
    let mut s = tls_snapshot("[]", "[]");
    s.certificates[0].private_key_pem = FIXTURE_CERT.into();
    assert!(matches!(
        s.validate(),
        Err(ConfigError::Certificate {
            problem: TlsProblem::InvalidPem {
                field: "privateKeyPem",
                ..
            },
            ..
        })
    ));
    let mut s = tls_snapshot("[]", "[]");
    s.ca_certificates[0].certificate_pem = format!("{FIXTURE_CERT}{FIXTURE_CERT}");
    assert!(matches!(
        s.validate(),
        Err(ConfigError::CaCertificate { .. })
    ));
    let mut s = tls_snapshot("[]", "[]");
    s.ca_certificates[0].crl_pem =
        Some("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n".into());
    assert!(matches!(
        s.validate(),
        Err(ConfigError::CaCertificate {
            problem: TlsProblem::InvalidPem {
                field: "crlPem",
                ..
            },
            ..
        })
    ));
    let mut s = tls_snapshot("[]", "[]");
    s.certificates.push(s.certificates[0].clone());
    assert!(matches!(
        s.validate(),
        Err(ConfigError::Certificate {
            problem: TlsProblem::DuplicateId,
            ..
        })
    ));
}
