//! Client certificates through the whole connection machine, in memory: a
//! client connection presents the certificate chain its TLS handshake would
//! have carried (as the driver hands it over), and `validate-client-certificate`
//! and `context.Request.Certificate` decide with the snapshot's CAs and CRLs.
//! Certificates, CAs and CRLs are made at test time by rcgen, valid around the
//! gateway's wall clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../core/tests/support/client_pki.rs"]
mod client_pki;

use axum::http::Method;
use client_pki::{around, Ca, Client, Validity};
use common::memory::*;
use common::policy_docs::{
    assert_apim_error, cfg, inbound, papi, policies, request, unix_now, LAST_ERROR_HEADER,
};
use common::Response;
use serde_json::{json, Value};

const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;
const REVOKED_SERIAL: u64 = 66;

fn now() -> i64 {
    i64::try_from(unix_now()).unwrap()
}

fn good() -> Validity {
    around(now(), -2 * DAY, YEAR)
}

fn expired() -> Validity {
    around(now(), -3 * YEAR, -2 * YEAR)
}

/// The uploaded root (with a CRL revoking `REVOKED_SERIAL`) and a CA nobody uploaded.
struct Pki {
    root: Ca,
    stranger: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            root: Ca::root("Decisions Root"),
            stranger: Ca::root("Decisions Stranger"),
        }
    }

    /// A configuration with these APIs and the root uploaded with its CRL.
    fn config(&self, apis: Vec<Value>) -> Value {
        let mut doc = cfg(apis);
        let crl = self
            .root
            .crl_between(&[REVOKED_SERIAL], around(now(), -30 * DAY, YEAR));
        doc["caCertificates"] = json!([{
            "id": "root",
            "certificatePem": self.root.pem,
            "crlPem": crl,
        }]);
        doc
    }
}

/// `GET path` on a new connection that presented `cert` (or none).
fn get_as(gw: &MemGateway, cert: Option<&Client>, path: &str) -> Response {
    let mut c = gw.client();
    if let Some(cert) = cert {
        c.present_certificate(vec![cert.der.clone()]);
    }
    c.send(request("GET", path, &[], b""));
    c.response_to(&Method::GET)
}

const VALIDATE: &str = "<validate-client-certificate />";

#[test]
fn a_certificate_from_the_uploaded_ca_reaches_the_backend() {
    let pki = Pki::new();
    let backend = MemBackend::echo();
    let gw =
        MemGateway::start(&pki.config(vec![papi("a", "api", backend.addr, &inbound(VALIDATE))]));
    let alice = pki.root.client("alice", 1, good());
    let r = get_as(&gw, Some(&alice), "/api/x");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().target(), "/x");
}

#[test]
fn refused_certificates_get_apims_403_and_never_reach_the_backend() {
    let pki = Pki::new();
    let backend = MemBackend::echo();
    let gw =
        MemGateway::start(&pki.config(vec![papi("a", "api", backend.addr, &inbound(VALIDATE))]));
    let other_ca = pki.stranger.client("mallory", 2, good());
    let old = pki.root.client("old", 3, expired());
    let revoked = pki.root.client("bob", REVOKED_SERIAL, good());
    for (who, cert) in [
        ("another CA", Some(&other_ca)),
        ("expired", Some(&old)),
        ("revoked", Some(&revoked)),
        ("no certificate", None),
    ] {
        let r = get_as(&gw, cert, "/api/x");
        assert_eq!(r.status, 403, "{who}: {r:?}");
        assert_apim_error(&r, 403, "Invalid client certificate");
    }
    assert!(
        backend.requests().is_empty(),
        "a refused request reached the backend"
    );
}

#[test]
fn on_error_sees_the_source_and_reason() {
    let pki = Pki::new();
    let backend = MemBackend::echo();
    let policy = policies(VALIDATE, "", "", LAST_ERROR_HEADER);
    let gw = MemGateway::start(&pki.config(vec![papi("a", "api", backend.addr, &policy)]));
    let other_ca = pki.stranger.client("mallory", 2, good());
    let old = pki.root.client("old", 3, expired());
    let revoked = pki.root.client("bob", REVOKED_SERIAL, good());
    for (cert, reason) in [
        (Some(&other_ca), "ClientCertificateNotTrusted"),
        (Some(&old), "ClientCertificateExpired"),
        (Some(&revoked), "ClientCertificateRevoked"),
        (None, "ClientCertificateMissing"),
    ] {
        let r = get_as(&gw, cert, "/api/x");
        assert_apim_error(&r, 403, "Invalid client certificate");
        let error = r.header("x-error").unwrap_or_default();
        assert!(error.starts_with(&format!("{reason}: ")), "{error}");
    }
    let source = r#"<set-header name="X-Source" exists-action="override"><value>@(context.LastError.Source)</value></set-header>"#;
    let policy = policies(VALIDATE, "", "", source);
    let gw = MemGateway::start(&pki.config(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_as(&gw, None, "/api/x");
    assert_eq!(
        r.header("x-source").as_deref(),
        Some("validate-client-certificate")
    );
}

#[test]
fn identities_pick_certificates_by_thumbprint_or_subject() {
    let pki = Pki::new();
    let backend = MemBackend::echo();
    let alice = pki.root.client("alice", 1, good());
    let carol = pki.root.client("carol", 2, good());
    let alice_thumb =
        portcullis_core::cert::ClientCertificate::from_der_chain(vec![alice.der.clone()])
            .unwrap()
            .thumbprint
            .to_lowercase();
    let by_thumb = inbound(&format!(
        r#"<validate-client-certificate><identities><identity thumbprint="{alice_thumb}" /></identities></validate-client-certificate>"#
    ));
    let by_subject = inbound(
        r#"<validate-client-certificate><identities><identity subject="CN=carol, O=Client Org" issuer-certificate-id="root" /></identities></validate-client-certificate>"#,
    );
    let gw = MemGateway::start(&pki.config(vec![
        papi("t", "thumb", backend.addr, &by_thumb),
        papi("s", "subject", backend.addr, &by_subject),
    ]));
    assert_eq!(get_as(&gw, Some(&alice), "/thumb/x").status, 200);
    assert_apim_error(
        &get_as(&gw, Some(&carol), "/thumb/x"),
        403,
        "Invalid client certificate",
    );
    assert_eq!(get_as(&gw, Some(&carol), "/subject/x").status, 200);
    assert_apim_error(
        &get_as(&gw, Some(&alice), "/subject/x"),
        403,
        "Invalid client certificate",
    );
    assert_eq!(backend.requests().len(), 2);
}

#[test]
fn ignore_error_lets_the_request_through() {
    let pki = Pki::new();
    let backend = MemBackend::echo();
    let policy = inbound(r#"<validate-client-certificate ignore-error="true" />"#);
    let gw = MemGateway::start(&pki.config(vec![papi("a", "api", backend.addr, &policy)]));
    let other_ca = pki.stranger.client("mallory", 2, good());
    assert_eq!(get_as(&gw, Some(&other_ca), "/api/x").status, 200);
    assert_eq!(get_as(&gw, None, "/api/x").status, 200);
    assert_eq!(backend.requests().len(), 2);
}

#[test]
fn the_certificate_in_expressions_for_every_request_of_the_connection() {
    let pki = Pki::new();
    let backend = MemBackend::echo();
    let header = |name: &str, expr: &str| {
        format!(
            r#"<set-header name="{name}" exists-action="override"><value>@({expr})</value></set-header>"#
        )
    };
    let c = "context.Request.Certificate";
    let policy = inbound(
        &[
            header("X-Has-Cert", &format!("{c} != null")),
            header(
                "X-Subject",
                &format!(r#"{c} == null ? "none" : {c}.Subject"#),
            ),
            header(
                "X-Issuer",
                &format!(r#"{c} == null ? "none" : {c}.IssuerName.Name"#),
            ),
            header(
                "X-Thumbprint",
                &format!(r#"{c} == null ? "none" : {c}.Thumbprint"#),
            ),
            header(
                "X-Serial",
                &format!(r#"{c} == null ? "none" : {c}.SerialNumber"#),
            ),
            header(
                "X-Verified",
                &format!(r#"{c} == null ? "none" : {c}.Verify().ToString()"#),
            ),
            header(
                "X-Valid-Now",
                &format!(
                    r#"{c} == null ? "none" : ({c}.NotBefore <= DateTime.UtcNow && DateTime.UtcNow <= {c}.NotAfter).ToString()"#
                ),
            ),
        ]
        .concat(),
    );
    let gw = MemGateway::start(&pki.config(vec![papi("a", "api", backend.addr, &policy)]));
    let alice = pki.root.client("alice", 0x0a0b, good());
    let thumbprint =
        portcullis_core::cert::ClientCertificate::from_der_chain(vec![alice.der.clone()])
            .unwrap()
            .thumbprint;

    // Two requests on one connection: the handshake's certificate holds for both.
    let mut conn = gw.client();
    conn.present_certificate(vec![alice.der.clone()]);
    for _ in 0..2 {
        conn.send(request("GET", "/api/x", &[], b""));
        assert_eq!(conn.response_to(&Method::GET).status, 200);
    }
    drop(conn);
    let stranger = pki.stranger.client("mallory", 2, good());
    assert_eq!(get_as(&gw, Some(&stranger), "/api/x").status, 200);
    assert_eq!(get_as(&gw, None, "/api/x").status, 200);

    let seen: Vec<[Option<String>; 7]> = backend
        .requests()
        .iter()
        .map(|r| {
            [
                "x-has-cert",
                "x-subject",
                "x-issuer",
                "x-thumbprint",
                "x-serial",
                "x-verified",
                "x-valid-now",
            ]
            .map(|h| r.header(h))
        })
        .collect();
    let alice_seen = [
        Some("True".to_string()),
        Some("CN=alice, O=Client Org".to_string()),
        Some("CN=Decisions Root, O=Portcullis Tests".to_string()),
        Some(thumbprint),
        Some("0A0B".to_string()),
        Some("True".to_string()),
        Some("True".to_string()),
    ];
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0], alice_seen);
    assert_eq!(seen[1], alice_seen);
    assert_eq!(seen[2][1].as_deref(), Some("CN=mallory, O=Client Org"));
    assert_eq!(
        seen[2][5].as_deref(),
        Some("False"),
        "not from an uploaded CA"
    );
    assert_eq!(seen[3][0].as_deref(), Some("False"));
    assert_eq!(seen[3][1].as_deref(), Some("none"));
}
