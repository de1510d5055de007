//! Client certificates in policies: `validate-client-certificate`'s checks
//! (dates, trust to the uploaded CAs, CRLs, identities), its compile errors,
//! its failure through the pipeline (403, `context.LastError`, `<on-error>`,
//! `ignore-error`), and `context.Request.Certificate` /
//! `context.Deployment.Certificates` in expressions. Certificates are made at
//! test time by rcgen with fixed dates; the wall clock is the fixed `NOW`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/client_pki.rs"]
mod client_pki;

use std::sync::Arc;
use std::time::Instant;

use client_pki::{Ca, Client, EXPIRED, FUTURE, GOOD, NOW};
use portcullis_core::cert::ClientCertificate;
use portcullis_core::config::ServiceUrl;
use portcullis_core::expr::{Expr, Value};
use portcullis_core::policy::cert_store::CertificateStore;
use portcullis_core::policy::client_cert::{Refusal, ValidateClientCertificate};
use portcullis_core::policy::compile::{compile_document, CompileEnv};
use portcullis_core::policy::context::Context;
use portcullis_core::policy::pipeline::{Chain, Env, Pipeline, Step};
use portcullis_core::policy::program::Level;
use portcullis_core::policy::xml;

/// The PKI of most tests: a trusted root with a CRL revoking serial 66, a
/// trusted intermediate under it, and a stranger CA nobody uploaded.
struct Pki {
    root: Ca,
    inter: Ca,
    stranger: Ca,
    store: CertificateStore,
}

impl Pki {
    fn new() -> Pki {
        let root = Ca::root("Test Root");
        let inter = root.intermediate("Test Intermediate");
        let stranger = Ca::root("Stranger CA");
        let crl = root.crl(&[66]);
        let (store, skipped) = CertificateStore::build(
            [("root", root.pem.as_str(), Some(crl.as_str()))],
            std::iter::empty(),
        );
        assert!(skipped.is_empty(), "{skipped:?}");
        Pki {
            root,
            inter,
            stranger,
            store,
        }
    }
}

fn parsed(chain: &[&[u8]]) -> ClientCertificate {
    ClientCertificate::from_der_chain(chain.iter().map(|c| c.to_vec()).collect()).expect("parse")
}

fn leaf(c: &Client) -> ClientCertificate {
    parsed(&[&c.der])
}

fn policy(xml_text: &str) -> ValidateClientCertificate {
    ValidateClientCertificate::from_element(&xml::parse(xml_text).expect("xml")).expect("compiles")
}

const DEFAULTS: &str = "<validate-client-certificate />";

#[test]
fn a_certificate_from_an_uploaded_ca_passes_the_defaults() {
    let pki = Pki::new();
    let p = policy(DEFAULTS);
    let c = leaf(&pki.root.client("alice", 1, GOOD));
    assert_eq!(p.decide(Some(&c), &pki.store, NOW), Ok(()));
}

#[test]
fn no_certificate_is_refused_as_missing() {
    let pki = Pki::new();
    assert_eq!(
        policy(DEFAULTS).decide(None, &pki.store, NOW),
        Err(Refusal::Missing)
    );
}

#[test]
fn another_ca_is_not_trusted_unless_trust_is_off() {
    let pki = Pki::new();
    let c = leaf(&pki.stranger.client("mallory", 2, GOOD));
    assert_eq!(
        policy(DEFAULTS).decide(Some(&c), &pki.store, NOW),
        Err(Refusal::NotTrusted)
    );
    let lax = policy(r#"<validate-client-certificate validate-trust="false" />"#);
    assert_eq!(lax.decide(Some(&c), &pki.store, NOW), Ok(()));
}

#[test]
fn a_store_without_cas_trusts_nothing() {
    let pki = Pki::new();
    let (empty, _) = CertificateStore::build(std::iter::empty(), std::iter::empty());
    let c = leaf(&pki.root.client("alice", 1, GOOD));
    assert_eq!(
        policy(DEFAULTS).decide(Some(&c), &empty, NOW),
        Err(Refusal::NotTrusted)
    );
}

#[test]
fn dates_are_checked_at_the_given_time_each_as_configured() {
    let pki = Pki::new();
    let expired = leaf(&pki.root.client("old", 3, EXPIRED));
    let future = leaf(&pki.root.client("new", 4, FUTURE));
    let p = policy(DEFAULTS);
    assert_eq!(
        p.decide(Some(&expired), &pki.store, NOW),
        Err(Refusal::Expired)
    );
    assert_eq!(
        p.decide(Some(&future), &pki.store, NOW),
        Err(Refusal::NotYetValid)
    );
    // The same certificates at a time inside their validity pass.
    let in_2020 = 1_590_000_000; // 2020-05-20
    assert_eq!(p.decide(Some(&expired), &pki.store, in_2020), Ok(()));
    // Each date check can be turned off; the chain is still checked.
    let no_after = policy(r#"<validate-client-certificate validate-not-after="false" />"#);
    assert_eq!(no_after.decide(Some(&expired), &pki.store, NOW), Ok(()));
    assert_eq!(
        no_after.decide(Some(&future), &pki.store, NOW),
        Err(Refusal::NotYetValid)
    );
    let no_before = policy(r#"<validate-client-certificate validate-not-before="false" />"#);
    assert_eq!(no_before.decide(Some(&future), &pki.store, NOW), Ok(()));
    let stranger_expired = leaf(&pki.stranger.client("x", 5, EXPIRED));
    assert_eq!(
        no_after.decide(Some(&stranger_expired), &pki.store, NOW),
        Err(Refusal::NotTrusted)
    );
}

#[test]
fn a_serial_on_the_uploaded_crl_is_revoked_unless_revocation_is_off() {
    let pki = Pki::new();
    let revoked = leaf(&pki.root.client("bob", 66, GOOD));
    let fine = leaf(&pki.root.client("carol", 67, GOOD));
    let p = policy(DEFAULTS);
    assert_eq!(
        p.decide(Some(&revoked), &pki.store, NOW),
        Err(Refusal::Revoked)
    );
    assert_eq!(p.decide(Some(&fine), &pki.store, NOW), Ok(()));
    let no_crl = policy(r#"<validate-client-certificate validate-revocation="false" />"#);
    assert_eq!(no_crl.decide(Some(&revoked), &pki.store, NOW), Ok(()));
    // Without the chain check, the CRL is still read (by issuer and serial).
    let no_trust = policy(r#"<validate-client-certificate validate-trust="false" />"#);
    assert_eq!(
        no_trust.decide(Some(&revoked), &pki.store, NOW),
        Err(Refusal::Revoked)
    );
    assert_eq!(no_trust.decide(Some(&fine), &pki.store, NOW), Ok(()));
}

#[test]
fn intermediates_come_from_the_client_chain() {
    let pki = Pki::new();
    let c = pki.inter.client("dave", 7, GOOD);
    let p = policy(DEFAULTS);
    assert_eq!(
        p.decide(Some(&parsed(&[&c.der, &pki.inter.der])), &pki.store, NOW),
        Ok(())
    );
    assert_eq!(
        p.decide(Some(&leaf(&c)), &pki.store, NOW),
        Err(Refusal::NotTrusted)
    );
    // The issuer's thumbprint is found in the client's chain too.
    let inter_thumb = parsed(&[&pki.inter.der]).thumbprint;
    let by_issuer = policy(&format!(
        r#"<validate-client-certificate><identities><identity issuer-thumbprint="{inter_thumb}" issuer-subject="CN=Test Intermediate, O=Portcullis Tests" /></identities></validate-client-certificate>"#
    ));
    let with_chain = parsed(&[&c.der, &pki.inter.der]);
    assert_eq!(by_issuer.decide(Some(&with_chain), &pki.store, NOW), Ok(()));
    let root_client = leaf(&pki.root.client("erin", 8, GOOD));
    assert_eq!(
        by_issuer.decide(Some(&root_client), &pki.store, NOW),
        Err(Refusal::IdentityMismatch)
    );
    // An uploaded intermediate is trusted on its own.
    let (with_inter, _) = CertificateStore::build(
        [("inter", pki.inter.pem.as_str(), None)],
        std::iter::empty(),
    );
    assert_eq!(p.decide(Some(&leaf(&c)), &with_inter, NOW), Ok(()));
}

#[test]
fn an_identity_matches_when_all_its_attributes_do() {
    let pki = Pki::new();
    let c = leaf(&pki.root.client("alice", 0x1234, GOOD));
    let root_thumb = {
        let r = parsed(&[&pki.root.der]);
        r.thumbprint
    };
    let ids = |identity: &str| {
        policy(&format!(
            "<validate-client-certificate><identities>{identity}</identities></validate-client-certificate>"
        ))
    };
    let pass = |identity: &str| ids(identity).decide(Some(&c), &pki.store, NOW);
    let thumb = c.thumbprint.to_ascii_lowercase();
    assert_eq!(
        pass(&format!(r#"<identity thumbprint="{thumb}" />"#)),
        Ok(())
    );
    assert_eq!(pass(r#"<identity serial-number="1234" />"#), Ok(()));
    assert_eq!(pass(r#"<identity common-name="alice" />"#), Ok(()));
    assert_eq!(
        pass(r#"<identity subject="CN=alice, O=Client Org" />"#),
        Ok(())
    );
    assert_eq!(
        pass(r#"<identity dns-name="ALICE.clients.test" />"#),
        Ok(())
    );
    assert_eq!(
        pass(r#"<identity issuer-subject="CN=Test Root, O=Portcullis Tests" />"#),
        Ok(())
    );
    assert_eq!(
        pass(&format!(r#"<identity issuer-thumbprint="{root_thumb}" />"#)),
        Ok(())
    );
    assert_eq!(pass(r#"<identity issuer-certificate-id="root" />"#), Ok(()));
    // Every attribute of one identity must match...
    assert_eq!(
        pass(r#"<identity common-name="alice" serial-number="99" />"#),
        Err(Refusal::IdentityMismatch)
    );
    assert_eq!(
        pass(r#"<identity issuer-certificate-id="nope" />"#),
        Err(Refusal::IdentityMismatch)
    );
    // ...and one identity of the list is enough.
    assert_eq!(
        pass(r#"<identity common-name="bob" /><identity common-name="alice" />"#),
        Ok(())
    );
    assert_eq!(
        pass(r#"<identity common-name="bob" /><identity thumbprint="00" />"#),
        Err(Refusal::IdentityMismatch)
    );
}

#[test]
fn bad_policies_are_rejected_at_compile_time_with_line_and_reason() {
    let env = CompileEnv::default();
    let err = |body: &str| {
        let doc = format!("<policies>\n<inbound>\n{body}\n</inbound>\n</policies>");
        match compile_document(&doc, Level::Api, &env) {
            Ok(_) => panic!("compiled: {body}"),
            Err(e) => e,
        }
    };
    let e = err(r#"<validate-client-certificate validate-chain="true" />"#);
    assert_eq!(e.pos.line, 3);
    assert_eq!(e.policy, "validate-client-certificate");
    assert!(
        e.message.contains("unknown attribute 'validate-chain'"),
        "{e}"
    );
    let e = err(r#"<validate-client-certificate ignore-error="yes" />"#);
    assert!(e.message.contains("must be true or false"), "{e}");
    let eleven = r#"<identity common-name="x" />"#.repeat(11);
    let e = err(&format!(
        "<validate-client-certificate><identities>{eleven}</identities></validate-client-certificate>"
    ));
    assert!(e.message.contains("at most 10"), "{e}");
    let e = err(
        r#"<validate-client-certificate><identities><identity subject="@(context.Api.Id)" /></identities></validate-client-certificate>"#,
    );
    assert!(
        e.message.contains("does not allow policy expressions"),
        "{e}"
    );
    let e = err(
        r#"<validate-client-certificate><identities><identity issuer-thumbprint="AA" issuer-certificate-id="x" /></identities></validate-client-certificate>"#,
    );
    assert!(e.message.contains("cannot be used together"), "{e}");
    let e = err(
        r#"<validate-client-certificate><identities><identity /></identities></validate-client-certificate>"#,
    );
    assert!(e.message.contains("at least one attribute"), "{e}");
    let e = err(
        r#"<validate-client-certificate><identities><identity name="x" /></identities></validate-client-certificate>"#,
    );
    assert!(e.message.contains("unknown attribute 'name'"), "{e}");
    let e = err(
        r#"<validate-client-certificate><identity common-name="x" /></validate-client-certificate>"#,
    );
    assert!(e.message.contains("unexpected element <identity>"), "{e}");
    let doc =
        "<policies><inbound /><outbound><validate-client-certificate /></outbound></policies>";
    let e = compile_document(doc, Level::Api, &env).expect_err("outbound");
    assert!(e.message.contains("not allowed in <outbound>"), "{e}");
    // Ten identities are fine.
    let ten = r#"<identity common-name="x" />"#.repeat(10);
    let doc = format!(
        "<policies><inbound><validate-client-certificate><identities>{ten}</identities></validate-client-certificate></inbound></policies>"
    );
    compile_document(&doc, Level::Api, &env).expect("ten identities");
}

// ---- through the pipeline ----

fn ctx_with(store: CertificateStore, cert: Option<ClientCertificate>) -> Context {
    let mut c = Context::default();
    c.request.method = "GET".into();
    c.request.url.scheme = "http".into();
    c.request.url.host = "backend".into();
    c.request.url.port = 80;
    c.request.url.path = "/items".into();
    c.now_unix_ms = NOW * 1000;
    c.fixed.certificates = Arc::new(store);
    c.request.certificate = cert.map(Arc::new);
    c
}

/// Runs the document to its response; returns how many times it forwarded.
fn run(xml_doc: &str, c: &mut Context) -> usize {
    let doc = compile_document(xml_doc, Level::Api, &CompileEnv::default()).expect("compiles");
    let mut chain = Chain::default();
    chain.docs[2] = Some(Arc::new(doc));
    let mut p = Pipeline::new(chain);
    let none = |_: &str| -> Option<&ServiceUrl> { None };
    let env = Env {
        now: Instant::now(),
        backend: &none,
        tls: &portcullis_core::policy::auth_cert::NoTls,
    };
    let mut forwards = 0;
    loop {
        match p.run(c, &env) {
            Step::Forward(_) => {
                forwards += 1;
                c.response = Some(portcullis_core::http::Response {
                    status: 200,
                    reason: "OK".into(),
                    ..Default::default()
                });
                p.forward_done(c, Ok(()));
            }
            Step::Respond => return forwards,
            other => panic!("unexpected step {other:?}"),
        }
    }
}

const VALIDATE: &str =
    "<policies><inbound><validate-client-certificate /></inbound><backend><forward-request /></backend></policies>";

#[test]
fn a_refused_certificate_stops_the_request_with_apims_403() {
    let pki = Pki::new();
    let c = leaf(&pki.stranger.client("mallory", 2, GOOD));
    let mut ctx = ctx_with(pki.store, Some(c));
    assert_eq!(run(VALIDATE, &mut ctx), 0);
    let r = ctx.response.as_ref().expect("response");
    assert_eq!(r.status, 403);
    assert_eq!(r.headers.get("Content-Type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(r.body.as_deref().expect("body")).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"statusCode": 403, "message": "Invalid client certificate"})
    );
    let e = ctx.last_error.as_ref().expect("last error");
    assert_eq!(e.source, "validate-client-certificate");
    assert_eq!(e.reason, "ClientCertificateNotTrusted");
    assert_eq!(e.section, "inbound");
}

#[test]
fn a_good_certificate_goes_to_the_backend() {
    let pki = Pki::new();
    let c = leaf(&pki.root.client("alice", 1, GOOD));
    let mut ctx = ctx_with(pki.store, Some(c));
    assert_eq!(run(VALIDATE, &mut ctx), 1);
    assert_eq!(ctx.response.as_ref().map(|r| r.status), Some(200));
    assert!(ctx.last_error.is_none());
}

#[test]
fn ignore_error_lets_the_request_go_on() {
    let pki = Pki::new();
    let mut ctx = ctx_with(pki.store, None);
    let doc = r#"<policies><inbound><validate-client-certificate ignore-error="true" /></inbound><backend><forward-request /></backend></policies>"#;
    assert_eq!(run(doc, &mut ctx), 1);
    assert_eq!(ctx.response.as_ref().map(|r| r.status), Some(200));
}

#[test]
fn on_error_sees_the_reason_and_can_answer_otherwise() {
    let pki = Pki::new();
    let cases = [
        (None, "ClientCertificateMissing"),
        (
            Some(leaf(&pki.root.client("old", 3, EXPIRED))),
            "ClientCertificateExpired",
        ),
        (
            Some(leaf(&pki.root.client("new", 4, FUTURE))),
            "ClientCertificateNotYetValid",
        ),
        (
            Some(leaf(&pki.root.client("bob", 66, GOOD))),
            "ClientCertificateRevoked",
        ),
        (
            Some(leaf(&pki.root.client("alice", 1, GOOD))),
            "ClientCertificateIdentityMismatch",
        ),
    ];
    let doc = r#"<policies>
      <inbound><validate-client-certificate><identities><identity common-name="zed" /></identities></validate-client-certificate></inbound>
      <backend><forward-request /></backend>
      <on-error>
        <return-response>
          <set-status code="401" reason="Unauthorized" />
          <set-body>@(context.LastError.Source + "|" + context.LastError.Reason)</set-body>
        </return-response>
      </on-error>
    </policies>"#;
    for (cert, reason) in cases {
        let (store, _) = CertificateStore::build(
            [(
                "root",
                pki.root.pem.as_str(),
                Some(pki.root.crl(&[66]).as_str()),
            )],
            std::iter::empty(),
        );
        let mut ctx = ctx_with(store, cert);
        assert_eq!(run(doc, &mut ctx), 0, "{reason}");
        let r = ctx.response.as_ref().expect("response");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.body.as_deref(),
            Some(format!("validate-client-certificate|{reason}").as_bytes())
        );
    }
}

// ---- expressions ----

fn eval(src: &str, ctx: &Context) -> Value {
    Expr::compile(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval(ctx)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn text(src: &str, ctx: &Context) -> String {
    eval(src, ctx).to_display_string()
}

#[test]
fn the_request_certificate_in_expressions() {
    let pki = Pki::new();
    let client = pki.root.client("alice", 0x0102_0304, GOOD);
    let c = leaf(&client);
    let thumb = c.thumbprint.clone();
    let (store, _) = CertificateStore::build(
        [("root", pki.root.pem.as_str(), None)],
        [("mine", client.pem.as_str())],
    );
    let ctx = ctx_with(store, Some(c));
    let r = "context.Request.Certificate";
    assert_eq!(
        text(&format!("@({r}.Subject)"), &ctx),
        "CN=alice, O=Client Org"
    );
    assert_eq!(
        text(&format!("@({r}.Issuer)"), &ctx),
        "CN=Test Root, O=Portcullis Tests"
    );
    assert_eq!(text(&format!("@({r}.Thumbprint)"), &ctx), thumb);
    assert_eq!(text(&format!("@({r}.SerialNumber)"), &ctx), "01020304");
    assert_eq!(
        text(&format!("@({r}.NotBefore.ToString(\"yyyy-MM-dd\"))"), &ctx),
        "2029-01-01"
    );
    assert_eq!(text(&format!("@({r}.NotAfter.Year)"), &ctx), "2031");
    assert_eq!(
        text(&format!("@({r}.SubjectName.Name)"), &ctx),
        "CN=alice, O=Client Org"
    );
    assert_eq!(
        text(&format!("@({r}.IssuerName.Name)"), &ctx),
        "CN=Test Root, O=Portcullis Tests"
    );
    assert_eq!(text(&format!("@({r} != null)"), &ctx), "True");
    assert_eq!(text(&format!("@({r} == null)"), &ctx), "False");
    assert_eq!(text(&format!("@({r}.Verify())"), &ctx), "True");
    assert_eq!(
        text(&format!("@({r}.NotAfter > DateTime.UtcNow)"), &ctx),
        "True"
    );
    assert_eq!(text(&format!("@({r}.GetCertHashString())"), &ctx), thumb);
    assert_eq!(text(&format!("@({r}.RawData.Length > 100)"), &ctx), "True");
    assert_eq!(
        text(
            &format!(
                "@{{ X509Certificate2 cert = {r}; return cert.Subject.Contains(\"alice\"); }}"
            ),
            &ctx
        ),
        "True"
    );
    assert_eq!(text("@(context.Deployment.Certificates.Count)", &ctx), "1");
    assert_eq!(
        text(
            &format!("@(context.Deployment.Certificates.ContainsKey({r}.Thumbprint))"),
            &ctx
        ),
        "True"
    );
    assert_eq!(
        text(
            &format!(
                "@(context.Deployment.Certificates[\"{}\"].Subject)",
                thumb.to_lowercase()
            ),
            &ctx
        ),
        "CN=alice, O=Client Org"
    );
}

#[test]
fn verify_is_false_for_an_untrusted_expired_or_revoked_certificate() {
    let pki = Pki::new();
    let verify = |client: &Client, store: CertificateStore| {
        let ctx = ctx_with(store, Some(leaf(client)));
        text("@(context.Request.Certificate.Verify())", &ctx)
    };
    let with_crl = || {
        CertificateStore::build(
            [(
                "root",
                pki.root.pem.as_str(),
                Some(pki.root.crl(&[66]).as_str()),
            )],
            std::iter::empty(),
        )
        .0
    };
    assert_eq!(verify(&pki.root.client("a", 1, GOOD), with_crl()), "True");
    assert_eq!(
        verify(&pki.stranger.client("m", 2, GOOD), with_crl()),
        "False"
    );
    assert_eq!(
        verify(&pki.root.client("o", 3, EXPIRED), with_crl()),
        "False"
    );
    assert_eq!(verify(&pki.root.client("b", 66, GOOD), with_crl()), "False");
}

#[test]
fn without_a_certificate_it_is_null() {
    let pki = Pki::new();
    let ctx = ctx_with(pki.store, None);
    assert_eq!(text("@(context.Request.Certificate == null)", &ctx), "True");
    assert_eq!(
        text("@(context.Request.Certificate?.Subject ?? \"none\")", &ctx),
        "none"
    );
    let err = Expr::compile("@(context.Request.Certificate.Subject)")
        .expect("compiles")
        .eval(&ctx)
        .expect_err("null");
    assert!(err.message.contains("Object reference"), "{err}");
    assert_eq!(text("@(context.Deployment.Certificates.Count)", &ctx), "0");
}

#[test]
fn unknown_certificate_members_fail_at_compile_time() {
    let e = Expr::compile("@(context.Request.Certificate.PrivateKey)").expect_err("unknown");
    assert!(e.message.contains("PrivateKey"), "{e}");
    let e = Expr::compile("@(context.Request.Certificate.Claims)").expect_err("jwt member");
    assert!(e.message.contains("X509Certificate2"), "{e}");
    let e = Expr::compile("@(new X509Certificate2(new byte[0]).Subject)").expect_err("new");
    assert!(e.message.contains("cannot be made in expressions"), "{e}");
}
