//! Backend TLS decided in core: a backend entity's `tls` resolved per
//! revision, the pool key that keeps connections of different settings apart,
//! `authentication-certificate` checked at load time and its choice carried by
//! `ConnectUpstream` and by a `send-request` call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use portcullis_core::config::{CompiledConfig, ConfigError, Snapshot};
use portcullis_core::http::{Limits, UpstreamTls};
use portcullis_core::proxy::*;
use serde_json::{json, Value};

/// A self-signed certificate and its key (made with `openssl req -x509`),
/// whose SHA-1 thumbprint `openssl x509 -fingerprint -sha1` printed as below.
const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUKNCrS5enYwwhek0xj/9e4zI0hK0wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOZ2F0ZXdheS5jbGllbnQwIBcNMjYxMjA3MTYxODU4WhgPMjEy
NjExMTMxNjE4NThaMBkxFzAVBgNVBAMMDmdhdGV3YXkuY2xpZW50MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAE2p+34ZdvMOF7HYuvKn4q8fGhEEbN14UcF1mZcV8T
exqNIat6FLgbNW2mDZul2m9D2sJW0vym2DuontzTgoA5a6NTMFEwHQYDVR0OBBYE
FGobKeCbYWFU0e0IxUqYMvVuL+0+MB8GA1UdIwQYMBaAFGobKeCbYWFU0e0IxUqY
MvVuL+0+MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhANc50Oy8
4kHmOyMeByExLnLK8gyFiI7badllG8gxkfPdAiBKVaxIjl8yUAogR6vPCzHHDgn5
edixx/VcMfaq24pwmQ==
-----END CERTIFICATE-----
";
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+c1JRaxA/MB9qcUD
6CmMocFnxDkNIhZ3oIXXv/FqRg2hRANCAATan7fhl28w4Xsdi68qfirx8aEQRs3X
hRwXWZlxXxN7Go0hq3oUuBs1baYNm6Xab0PawlbS/KbYO6ie3NOCgDlr
-----END PRIVATE KEY-----
";
const THUMBPRINT: &str = "BFF1995D67CA373D1AC19465C1A20EDAB11A0DE7";

fn api(id: &str, backend: &str, policy: Option<&str>) -> Value {
    let mut api = json!({
        "id": id, "path": id, "backendId": backend, "subscriptionRequired": false,
        "operations": [{"id": "any", "method": "*", "urlTemplate": "/*"}],
    });
    if let Some(p) = policy {
        api["policy"] = json!(p);
    }
    api
}

fn snapshot(revision: u64, backends: Value, apis: Vec<Value>) -> Value {
    json!({
        "revision": revision,
        "certificates": [{"id": "client", "certificatePem": CERT_PEM, "privateKeyPem": KEY_PEM}],
        "caCertificates": [{"id": "ca", "certificatePem": CERT_PEM}],
        "backends": backends,
        "apis": apis,
    })
}

fn compile(doc: &Value) -> Result<CompiledConfig, ConfigError> {
    let snapshot = Snapshot::from_json(doc.to_string().as_bytes()).expect("parses");
    CompiledConfig::compile(snapshot)
}

fn compiled(doc: &Value) -> Arc<CompiledConfig> {
    Arc::new(compile(doc).unwrap_or_else(|e| panic!("compiles: {e}")))
}

fn backends() -> Value {
    json!([
        {"id": "plain", "url": "https://backend.test"},
        {"id": "strict", "url": "https://backend.test", "tls": {
            "caCertificateIds": ["ca"], "serverName": "internal.test",
            "minTlsVersion": "1.3", "cipherSuites": ["TLS13_AES_256_GCM_SHA384"],
            "clientCertificateId": "client"}},
        {"id": "lax", "url": "https://backend.test", "tls": {
            "validateCertificateChain": false, "validateCertificateName": false}},
        {"id": "http", "url": "http://backend.test", "tls": {"validateCertificateChain": false}},
    ])
}

#[test]
fn a_backend_entitys_tls_is_resolved_once_per_revision() {
    let config = compiled(&snapshot(
        1,
        backends(),
        vec![
            api("plain", "plain", None),
            api("strict", "strict", None),
            api("lax", "lax", None),
        ],
    ));
    assert!(config.upstream_tls(0).is_none(), "a backend without tls");
    let strict = config.upstream_tls(1).expect("strict has tls");
    assert!(strict.validate_chain() && strict.validate_name());
    assert_eq!(strict.trusted_cas(), Some(&[CERT_PEM.to_string()][..]));
    assert_eq!(strict.server_name(), Some("internal.test"));
    assert!(strict.tls13_only());
    assert_eq!(strict.cipher_suites(), ["TLS13_AES_256_GCM_SHA384"]);
    let identity = strict.client_identity().expect("client certificate");
    assert_eq!(identity.id, "client");
    assert_eq!(identity.thumbprint.as_deref(), Some(THUMBPRINT));
    assert!(
        !format!("{identity:?}").contains("PRIVATE KEY"),
        "the key is never printed"
    );
    let lax = config.upstream_tls(2).expect("lax has tls");
    assert!(!lax.validate_chain() && !lax.validate_name());
    assert_eq!(lax.trusted_cas(), None, "the gateway's roots");
}

#[test]
fn pool_keys_keep_settings_apart_and_survive_revisions_that_keep_them() {
    let apis = || {
        vec![
            api("plain", "plain", None),
            api("strict", "strict", None),
            api("lax", "lax", None),
            api("http", "http", None),
        ]
    };
    let one = compiled(&snapshot(1, backends(), apis()));
    let keys: Vec<&str> = (0..4).map(|i| &**one.upstream_pool_key(i)).collect();
    assert_eq!(keys[0], "https://backend.test:443");
    assert!(
        keys[1].starts_with("https://backend.test:443#tls="),
        "{}",
        keys[1]
    );
    assert!(
        keys[2].starts_with("https://backend.test:443#tls="),
        "{}",
        keys[2]
    );
    assert_ne!(keys[1], keys[2]);
    assert_eq!(
        keys[3], "http://backend.test:80",
        "plain HTTP has no TLS to tell apart"
    );

    // The same settings in a later revision: the same keys, so pooled
    // connections and the driver's TLS configurations carry over.
    let two = compiled(&snapshot(2, backends(), apis()));
    for i in 0..4 {
        assert_eq!(one.upstream_pool_key(i), two.upstream_pool_key(i));
    }
    // Changing any setting changes the key.
    let mut changed = backends();
    changed[1]["tls"]["serverName"] = json!("other.test");
    let three = compiled(&snapshot(3, changed, apis()));
    assert_ne!(one.upstream_pool_key(1), three.upstream_pool_key(1));
    assert_eq!(one.upstream_pool_key(2), three.upstream_pool_key(2));
}

#[test]
fn adding_a_client_identity_changes_the_key_and_keeps_the_rest() {
    let config = compiled(&snapshot(
        1,
        backends(),
        vec![api("strict", "strict", None)],
    ));
    let strict = config.upstream_tls(0).expect("tls");
    let bare = UpstreamTls::default();
    let identity = strict.client_identity().cloned().expect("identity");
    let with = bare.with_identity(identity);
    assert_ne!(with.key(), bare.key());
    assert!(with.validate_chain() && with.trusted_cas().is_none());
    assert_eq!(
        with.key(),
        UpstreamTls::default()
            .with_identity(strict.client_identity().cloned().expect("identity"))
            .key()
    );
}

fn inbound(body: &str) -> String {
    format!(
        "<policies>\n<inbound>\n{body}\n</inbound>\n<backend><forward-request /></backend>\n<outbound /><on-error /></policies>"
    )
}

fn policy_error(policy: &str) -> String {
    let doc = snapshot(1, backends(), vec![api("a", "plain", Some(policy))]);
    match compile(&doc) {
        Ok(_) => panic!("compiled: {policy}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_certificates_are_refused_at_load_with_line_and_reason() {
    let e = policy_error(&inbound(
        r#"<authentication-certificate certificate-id="nope" />"#,
    ));
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("certificate 'nope' does not exist"), "{e}");
    let e = policy_error(&inbound(
        r#"<authentication-certificate thumbprint="00FF" />"#,
    ));
    assert!(
        e.contains("certificate with thumbprint '00FF' does not exist"),
        "{e}"
    );
    // Inside send-request too.
    let e = policy_error(&inbound(
        r#"<send-request mode="new" response-variable-name="r">
             <set-url>https://other.test/</set-url>
             <authentication-certificate certificate-id="nope" />
           </send-request>"#,
    ));
    assert!(e.contains("line 5"), "{e}");
    assert!(e.contains("certificate 'nope' does not exist"), "{e}");
}

#[test]
fn bad_authentication_certificate_elements_are_refused() {
    let cases = [
        (
            r#"<authentication-certificate body="@(new byte[0])" password="x" />"#,
            "not supported yet",
        ),
        (
            r#"<authentication-certificate certificate-id="client" thumbprint="AB" />"#,
            "not both",
        ),
        (r#"<authentication-certificate />"#, "is required"),
        (
            r#"<authentication-certificate certificate-id="client" store="x" />"#,
            "unknown attribute 'store'",
        ),
    ];
    for (policy, why) in cases {
        let e = policy_error(&inbound(policy));
        assert!(e.contains(why), "{policy}: {e}");
    }
    let outbound = r#"<policies><inbound /><backend><forward-request /></backend>
        <outbound><authentication-certificate certificate-id="client" /></outbound><on-error /></policies>"#;
    let e = policy_error(outbound);
    assert!(e.contains("authentication-certificate"), "{e}");
    // Known by id, by thumbprint in any case, or from an expression (checked per request).
    for ok in [
        r#"<authentication-certificate certificate-id="client" />"#,
        &format!(
            r#"<authentication-certificate thumbprint="{}" />"#,
            THUMBPRINT.to_lowercase()
        ),
        r#"<authentication-certificate certificate-id="@("cli" + "ent")" />"#,
    ] {
        let doc = snapshot(1, backends(), vec![api("a", "plain", Some(&inbound(ok)))]);
        compile(&doc).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

struct Fixed(Arc<CompiledConfig>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        Some(self.0.clone())
    }
}

/// A client connection on `config`, as an adapter would make it.
fn connection(config: Arc<CompiledConfig>, now: Instant) -> ProxyConn {
    let settings = Arc::new(ConnSettings {
        limits: Limits::default(),
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(Fixed(config)),
        policy: PolicyEnv::default(),
        telemetry: portcullis_core::telemetry::discard(),
        allow_underscores_in_headers: false,
        https_port: None,
    });
    ProxyConn::new(settings, "192.0.2.7", IdSeq::default(), now)
}

/// Sends a GET for `path` to a connection on `config`; the events that follow.
fn request(config: Arc<CompiledConfig>, path: &str) -> Vec<Event> {
    let now = Instant::now();
    let mut conn = connection(config, now);
    let head = format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n\r\n");
    conn.handle_client_data(head.as_bytes(), now);
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn connect_target(events: &[Event]) -> &UpstreamTarget {
    match events {
        [.., Event::ConnectUpstream { target, .. }] => target,
        other => panic!("expected a connect, got {other:?}"),
    }
}

#[test]
fn connect_upstream_carries_the_tls_the_policies_chose() {
    let by_thumbprint = inbound(&format!(
        r#"<authentication-certificate thumbprint="{}" />"#,
        THUMBPRINT.to_lowercase()
    ));
    let retarget = inbound(r#"<set-backend-service backend-id="lax" />"#);
    let retarget_with_cert = inbound(
        r#"<set-backend-service backend-id="lax" />
           <authentication-certificate certificate-id="@("client")" />"#,
    );
    let to_url = inbound(r#"<set-backend-service base-url="https://backend.test" />"#);
    let config = compiled(&snapshot(
        1,
        backends(),
        vec![
            api("strict", "strict", None),
            api("cert", "plain", Some(&by_thumbprint)),
            api("retarget", "strict", Some(&retarget)),
            api("both", "plain", Some(&retarget_with_cert)),
            api("url", "strict", Some(&to_url)),
        ],
    ));

    // The API's backend entity.
    let events = request(config.clone(), "/strict/x");
    let target = connect_target(&events);
    assert_eq!(
        target.tls().map(|t| t.key()),
        config.upstream_tls(0).map(|t| t.key())
    );
    assert_eq!(target.pool_key(), config.upstream_pool_key(0));

    // authentication-certificate on a backend without tls: the defaults and the certificate.
    let events = request(config.clone(), "/cert/x");
    let target = connect_target(&events);
    let tls = target.tls().expect("tls chosen");
    assert_eq!(tls.client_identity().map(|i| i.id.as_str()), Some("client"));
    assert!(tls.validate_chain() && tls.trusted_cas().is_none());
    assert_ne!(target.pool_key(), config.upstream_pool_key(1));
    assert!(target.pool_key().ends_with(&**tls.key()));

    // set-backend-service backend-id: that backend's tls, not the API's.
    let lax = config.tls_lookup().backend_tls("lax");
    let events = request(config.clone(), "/retarget/x");
    let target = connect_target(&events);
    let tls = target.tls().expect("tls chosen");
    assert!(!tls.validate_chain() && !tls.validate_name());
    assert!(tls.client_identity().is_none());
    assert_eq!(
        Some(tls.key()),
        lax.as_ref().map(|t| t.key()),
        "exactly the lax backend's"
    );

    // Both: the chosen backend's settings with the certificate.
    let events = request(config.clone(), "/both/x");
    let tls = connect_target(&events).tls().expect("tls chosen");
    assert!(!tls.validate_chain());
    assert_eq!(tls.client_identity().map(|i| i.id.as_str()), Some("client"));

    // A base URL is no backend entity: the defaults, and the URL's own pool.
    let events = request(config.clone(), "/url/x");
    let target = connect_target(&events);
    assert!(target.tls().is_none());
    assert_eq!(&**target.pool_key(), "https://backend.test:443");
}

#[test]
fn send_request_carries_the_certificate_of_its_authentication_certificate() {
    let policy = inbound(
        r#"<send-request mode="new" response-variable-name="r">
             <set-url>https://other.test/call</set-url>
             <authentication-certificate certificate-id="client" />
           </send-request>"#,
    );
    let plain = inbound(
        r#"<send-request mode="new" response-variable-name="r">
             <set-url>https://other.test/call</set-url>
           </send-request>"#,
    );
    let one_way = inbound(
        r#"<send-one-way-request mode="new">
             <set-url>https://other.test/call</set-url>
             <authentication-certificate certificate-id="client" />
           </send-one-way-request>"#,
    );
    let config = compiled(&snapshot(
        1,
        backends(),
        vec![
            api("a", "plain", Some(&policy)),
            api("b", "plain", Some(&plain)),
            api("c", "plain", Some(&one_way)),
        ],
    ));
    let events = request(config.clone(), "/c/x");
    match events.first() {
        Some(Event::Call {
            request,
            one_way: true,
        }) => {
            let id = request
                .tls
                .as_ref()
                .and_then(|t| t.client_identity().cloned());
            assert_eq!(id.map(|i| i.id.clone()).as_deref(), Some("client"));
        }
        other => panic!("expected a one-way call first, got {other:?}"),
    }
    let call_tls = |path: &str| {
        let events = request(config.clone(), path);
        match events.as_slice() {
            [Event::Call {
                request,
                one_way: false,
            }] => request.tls.clone(),
            other => panic!("expected a call, got {other:?}"),
        }
    };
    let tls = call_tls("/a/x").expect("tls for the call");
    assert_eq!(
        tls.client_identity().and_then(|i| i.thumbprint.as_deref()),
        Some(THUMBPRINT)
    );
    assert!(tls.validate_chain() && tls.validate_name() && tls.trusted_cas().is_none());
    assert!(call_tls("/b/x").is_none());
}

#[test]
fn a_computed_certificate_that_does_not_exist_fails_the_request() {
    let policy = inbound(r#"<authentication-certificate certificate-id="@("no" + "pe")" />"#);
    let with_handler = format!(
        "<policies>\n<inbound>{}</inbound>\n<backend><forward-request /></backend>\n<outbound />\n\
         <on-error><return-response><set-status code=\"599\" reason=\"x\" />\
         <set-header name=\"X-Reason\" exists-action=\"override\"><value>@(context.LastError.Reason)</value></set-header>\
         </return-response></on-error></policies>",
        r#"<authentication-certificate certificate-id="@("no" + "pe")" />"#
    );
    let config = compiled(&snapshot(
        1,
        backends(),
        vec![
            api("a", "plain", Some(&policy)),
            api("b", "plain", Some(&with_handler)),
        ],
    ));
    for path in ["/a/x", "/b/x"] {
        let events = request(config.clone(), path);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::ConnectUpstream { .. })),
            "{path}: nothing is forwarded: {events:?}"
        );
    }
    let now = Instant::now();
    let mut conn = connection(config, now);
    conn.handle_client_data(b"GET /b/x HTTP/1.1\r\nHost: gw.test\r\n\r\n", now);
    let out = String::from_utf8_lossy(conn.client_pending()).into_owned();
    assert!(out.starts_with("HTTP/1.1 599"), "{out}");
    assert!(out.contains("X-Reason: CertificateNotFound\r\n"), "{out}");
}
