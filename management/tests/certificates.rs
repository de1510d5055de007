//! End-to-end tests of certificates, CA certificates and gateways' custom
//! hostnames over real sockets and a real SQLite file: uploads (PEM and
//! PKCS#12), refusals, keys never shown and encrypted at rest, 409 while in
//! use, and the gateway's snapshot carrying what it needs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;
#[allow(dead_code)]
mod client;

use api_common::gateway_setup;
use client::{options, Client};
use portcullis_management::Management;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use serde_json::{json, Value};

/// A management plane whose data directory the test can read.
struct Plane {
    management: Management,
    admin: Client,
    token: String,
    dir: tempfile::TempDir,
}

async fn start() -> Plane {
    let dir = tempfile::tempdir().expect("temp dir");
    let management = Management::start(options(dir.path()))
        .await
        .expect("management plane starts");
    let token = management
        .created_admin_token()
        .expect("admin token")
        .to_owned();
    let admin = Client::new(management.local_addr()).admin(&token);
    Plane {
        management,
        admin,
        token,
        dir,
    }
}

/// A CA that issues leaf certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    issuer_params: CertificateParams,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert,
            key,
            issuer_params: params,
        }
    }

    /// A leaf for `names`, its key.
    fn leaf(&self, names: &[&str], serial: u64) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        params.serial_number = Some(SerialNumber::from(serial));
        let issuer = rcgen::Issuer::from_params(&self.issuer_params, &self.key);
        (params.signed_by(&key, &issuer).unwrap(), key)
    }

    /// A CRL revoking `serials`.
    fn crl(&self, serials: &[u64]) -> String {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = rcgen::Issuer::from_params(&self.issuer_params, &self.key);
        params.signed_by(&issuer).unwrap().pem().unwrap()
    }
}

fn pem_upload(cert: &rcgen::Certificate, ca: &Ca, key: &KeyPair) -> Value {
    json!({
        "certificatePem": format!("{}{}", cert.pem(), ca.cert.pem()),
        "privateKeyPem": key.serialize_pem(),
    })
}

/// SHA-1 of `der`, uppercase hex.
fn thumbprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// A base64 PKCS#12 file with `key` and `chain`, sealed with `password`.
fn pfx(key: &KeyPair, chain: &[&rcgen::Certificate], password: &str) -> String {
    use base64::Engine;
    let certs = chain
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c.der()).unwrap())
        .collect::<Vec<_>>();
    let key = p12_keystore::PrivateKey::from_der(&key.serialize_der()).unwrap();
    let entry = p12_keystore::PrivateKeyChain::new(b"k1".as_slice(), key, certs);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("leaf", p12_keystore::KeyStoreEntry::PrivateKeyChain(entry));
    let bytes = store.writer(password).write().unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The body of a PEM key: a line that appears nowhere else.
fn key_marker(key: &KeyPair) -> String {
    let pem = key.serialize_pem();
    pem.lines()
        .find(|l| !l.starts_with("-----") && l.len() >= 40)
        .expect("a full base64 line")
        .to_owned()
}

fn assert_no_key(value: &Value, markers: &[&str]) {
    let text = value.to_string();
    for m in markers {
        assert!(!text.contains(m), "a private key leaked: {text}");
    }
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(!text.contains("sealedPrivateKey"), "{text}");
    assert!(!text.contains("privateKeyPem"), "{text}");
}

#[tokio::test]
async fn certificates_are_uploaded_described_and_never_show_their_key() {
    let p = start().await;
    let a = &p.admin;
    let ca = Ca::new("Test Root");
    let (leaf, key) = ca.leaf(&["api.example.com", "www.example.com"], 0x1234);

    // PEM: chain and key.
    let r = a
        .put_json("/certificates/site", &pem_upload(&leaf, &ca, &key))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    assert_eq!(body["id"], "site");
    assert_eq!(body["subject"], "CN=api.example.com");
    assert_eq!(body["issuer"], "CN=Test Root");
    assert_eq!(body["thumbprint"], thumbprint(leaf.der()));
    assert_eq!(body["serialNumber"], "1234");
    assert_eq!(
        body["dnsNames"],
        json!(["api.example.com", "www.example.com"])
    );
    assert_eq!(body["hasPrivateKey"], true);
    assert!(body["notBefore"].as_str().unwrap().ends_with('Z'), "{body}");
    assert!(body["notAfter"].as_str().unwrap().ends_with('Z'), "{body}");
    let marker = key_marker(&key);
    assert_no_key(&body, &[&marker]);
    assert!(r.etag().starts_with('"'));

    // PKCS#12 with its password.
    let (leaf2, key2) = ca.leaf(&["pfx.example.com"], 0x99);
    let r = a
        .put_json(
            "/certificates/from-pfx",
            &json!({"pfx": pfx(&key2, &[&leaf2, &ca.cert], "s3cret!"), "password": "s3cret!"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    assert_eq!(body["subject"], "CN=pfx.example.com");
    assert_eq!(body["thumbprint"], thumbprint(leaf2.der()));
    let marker2 = key_marker(&key2);
    assert_no_key(&body, &[&marker2, "s3cret!"]);
    // APIM's name for the PKCS#12 field, `data`, is accepted too.
    let r = a
        .put_json(
            "/certificates/from-pfx",
            &json!({"data": pfx(&key2, &[&leaf2, &ca.cert], "s3cret!"), "password": "s3cret!"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["thumbprint"], thumbprint(leaf2.der()));

    // GET, list and the audit log show neither key nor password.
    let got = a.get("/certificates/site").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["thumbprint"], thumbprint(leaf.der()));
    assert_no_key(&got.json(), &[&marker]);
    let list = a.get("/certificates").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["count"], 2);
    assert_no_key(&list.json(), &[&marker, &marker2, "s3cret!"]);
    let audit = a.get("/audit").await.json();
    assert_no_key(&audit, &[&marker, &marker2, "s3cret!"]);
    assert!(
        audit.to_string().contains("/certificates/from-pfx"),
        "{audit}"
    );

    // Replacing: If-Match honoured, then 200 with a new version.
    a.put_json_with(
        "/certificates/site",
        &pem_upload(&leaf, &ca, &key),
        &[("if-match", "\"999\"")],
    )
    .await
    .problem(412);
    let r = a
        .put_json_with(
            "/certificates/site",
            &pem_upload(&leaf, &ca, &key),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_key(&r.json(), &[&marker]);

    p.management.shutdown().await;
}

#[tokio::test]
async fn bad_uploads_are_refused_with_the_reason() {
    let p = start().await;
    let a = &p.admin;
    let ca = Ca::new("Test Root");
    let (leaf, key) = ca.leaf(&["api.example.com"], 1);
    let (_, other_key) = ca.leaf(&["other.example.com"], 2);

    let mismatched = a
        .put_json(
            "/certificates/c",
            &json!({"certificatePem": leaf.pem(), "privateKeyPem": other_key.serialize_pem()}),
        )
        .await
        .problem(400);
    assert!(
        mismatched["detail"]
            .as_str()
            .unwrap()
            .contains("does not match the leaf certificate"),
        "{mismatched}"
    );

    let garbage = a
        .put_json(
            "/certificates/c",
            &json!({"certificatePem": "not a pem", "privateKeyPem": key.serialize_pem()}),
        )
        .await
        .problem(400);
    assert!(
        garbage["detail"]
            .as_str()
            .unwrap()
            .contains("certificatePem"),
        "{garbage}"
    );

    let no_key = a
        .put_json(
            "/certificates/c",
            &json!({"certificatePem": leaf.pem(), "privateKeyPem": leaf.pem()}),
        )
        .await
        .problem(400);
    assert!(
        no_key["detail"].as_str().unwrap().contains("privateKeyPem"),
        "{no_key}"
    );

    let wrong_password = a
        .put_json(
            "/certificates/c",
            &json!({"pfx": pfx(&key, &[&leaf], "right"), "password": "wrong"}),
        )
        .await
        .problem(400);
    assert!(
        wrong_password["detail"]
            .as_str()
            .unwrap()
            .contains("wrong password"),
        "{wrong_password}"
    );

    let both = a
        .put_json(
            "/certificates/c",
            &json!({"certificatePem": leaf.pem(), "privateKeyPem": key.serialize_pem(), "pfx": "AAAA"}),
        )
        .await
        .problem(400);
    assert!(
        both["detail"].as_str().unwrap().contains("either"),
        "{both}"
    );

    // Nothing was stored.
    assert_eq!(a.get("/certificates").await.json()["count"], 0);
    a.get("/certificates/c").await.problem(404);
    p.management.shutdown().await;
}

#[tokio::test]
async fn private_keys_are_encrypted_at_rest_and_survive_a_restart() {
    let p = start().await;
    let a = &p.admin;
    let ca = Ca::new("Test Root");
    let (leaf, key) = ca.leaf(&["api.example.com"], 7);
    let r = a
        .put_json("/certificates/site", &pem_upload(&leaf, &ca, &key))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (gateway, _) = gateway_setup(a).await;
    let r = a
        .put_json(
            "/gateways/gw1/hostnames/api.example.com",
            &json!({"certificateId": "site"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let before = gateway.get("/gateways/gw1/configuration").await.json();
    p.management.shutdown().await;

    // The database files (WAL included) do not hold the key in any form.
    let data = p.dir.path().join("data");
    let marker = key_marker(&key);
    let der = key.serialize_der();
    let mut checked = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("portcullis.db") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        checked += bytes.len();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&marker), "{name} holds the key's PEM");
        assert!(!text.contains("PRIVATE KEY"), "{name} holds a PEM key");
        assert!(
            !bytes.windows(der.len()).any(|w| w == der.as_slice()),
            "{name} holds the key's DER"
        );
    }
    assert!(checked > 0, "no database file read");
    // But the certificate itself is there (the test reads the right files).
    let all: Vec<u8> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_string_lossy().into_owned();
            name.starts_with("portcullis.db")
                .then(|| std::fs::read(&path).ok())
                .flatten()
        })
        .flatten()
        .collect();
    assert!(String::from_utf8_lossy(&all).contains(&thumbprint(leaf.der())));
    // The key-encryption key is its own owner-only file.
    let kek = data.join(portcullis_management::store::kek::FILE_NAME);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kek).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // After a restart the key is opened again and the snapshot is the same.
    let management = Management::start(options(p.dir.path())).await.unwrap();
    let admin = Client::new(management.local_addr()).admin(&p.token);
    let token = admin
        .post("/gateways/gw1/token", Some(&json!({"keyType": "primary"})))
        .await
        .json()["value"]
        .as_str()
        .expect("token")
        .to_owned();
    let gateway = admin.with_authorization(&token);
    let after = gateway.get("/gateways/gw1/configuration").await.json();
    assert_eq!(after["certificates"], before["certificates"]);
    assert_eq!(
        after["certificates"][0]["privateKeyPem"],
        key.serialize_pem().replace("\r\n", "\n")
    );

    // Without the key-encryption key the store refuses to open rather than
    // serve certificates without keys.
    management.shutdown().await;
    std::fs::remove_file(&kek).unwrap();
    let err = match Management::start(options(p.dir.path())).await {
        Ok(_) => panic!("started without the key-encryption key"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(portcullis_management::store::kek::FILE_NAME),
        "{err}"
    );
}

#[tokio::test]
async fn the_key_encryption_key_can_live_apart_from_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let kek = secrets.path().join("kek");
    let with_kek = || {
        let mut o = options(dir.path());
        o.key_encryption_key_file = Some(kek.clone());
        o
    };
    let management = Management::start(with_kek()).await.unwrap();
    let token = management.created_admin_token().unwrap().to_owned();
    let a = Client::new(management.local_addr()).admin(&token);
    let ca = Ca::new("Test Root");
    let (leaf, key) = ca.leaf(&["api.example.com"], 9);
    let r = a
        .put_json("/certificates/site", &pem_upload(&leaf, &ca, &key))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    management.shutdown().await;
    // Made where it was told, not in the data directory.
    assert_eq!(std::fs::read(&kek).unwrap().len(), 32);
    let default = dir
        .path()
        .join("data")
        .join(portcullis_management::store::kek::FILE_NAME);
    assert!(!default.exists());

    // Restarted with it: the certificate is served with its key.
    let management = Management::start(with_kek()).await.unwrap();
    let a = Client::new(management.local_addr()).admin(&token);
    assert_eq!(a.get("/certificates/site").await.status, 200);
    management.shutdown().await;
    // Without it (the data directory alone): refused, naming the file.
    let err = match Management::start(options(dir.path())).await {
        Ok(_) => panic!("started without the key-encryption key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("certificate 'site'"), "{err}");
}

#[tokio::test]
async fn ca_certificates_with_crls_are_described() {
    let p = start().await;
    let a = &p.admin;
    let root = Ca::new("Test Root");
    let r = a
        .put_json(
            "/ca-certificates/root",
            &json!({"certificatePem": root.cert.pem(), "crlPem": root.crl(&[5, 6, 7])}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    assert_eq!(body["subject"], "CN=Test Root");
    assert_eq!(body["thumbprint"], thumbprint(root.cert.der()));
    assert_eq!(body["selfSigned"], true);
    assert_eq!(body["kind"], "root");
    assert_eq!(body["crls"][0]["revokedCount"], 3);
    assert!(body["crls"][0]["nextUpdate"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(body["notAfter"].is_string());

    // An intermediate: issued by the root, no CRL.
    let (intermediate, _) = root.leaf(&["Intermediate"], 3);
    let r = a
        .put_json(
            "/ca-certificates/inter",
            &json!({"certificatePem": intermediate.pem()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["kind"], "intermediate");
    assert_eq!(r.json()["selfSigned"], false);
    assert_eq!(a.get("/ca-certificates").await.json()["count"], 2);
    // What a GET shows goes back as a PUT body; the shown fields are recomputed.
    let mut shown = a.get("/ca-certificates/root").await.json();
    shown["thumbprint"] = json!("00");
    let r = a.put_json("/ca-certificates/root", &shown).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["thumbprint"], thumbprint(root.cert.der()));
    assert_eq!(r.json()["crls"][0]["revokedCount"], 3);

    // A CRL from another CA, two certificates in one upload, no PEM: 400.
    let other = Ca::new("Other Root");
    let detail = a
        .put_json(
            "/ca-certificates/bad",
            &json!({"certificatePem": root.cert.pem(), "crlPem": other.crl(&[1])}),
        )
        .await
        .problem(400)["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("not by this CA"), "{detail}");
    a.put_json(
        "/ca-certificates/bad",
        &json!({"certificatePem": format!("{}{}", root.cert.pem(), other.cert.pem())}),
    )
    .await
    .problem(400);
    a.put_json(
        "/ca-certificates/bad",
        &json!({"certificatePem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
    )
    .await
    .problem(400);
    a.get("/ca-certificates/bad").await.problem(404);
    p.management.shutdown().await;
}

#[tokio::test]
async fn hostnames_are_managed_per_gateway() {
    let p = start().await;
    let a = &p.admin;
    let ca = Ca::new("Test Root");
    let (leaf, key) = ca.leaf(&["api.example.com"], 1);
    assert_eq!(
        a.put_json("/certificates/site", &pem_upload(&leaf, &ca, &key))
            .await
            .status,
        201
    );
    gateway_setup(a).await;
    let before = api_common::revision(a).await;

    let r = a
        .put_json(
            "/gateways/gw1/hostnames/api.example.com",
            &json!({
                "certificateId": "site",
                "negotiateClientCertificate": true,
                "defaultSslBinding": true,
                "minTlsVersion": "1.3",
                "cipherSuites": ["TLS_AES_256_GCM_SHA384"],
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    assert_eq!(body["hostname"], "api.example.com");
    assert_eq!(body["gatewayId"], "gw1");
    assert_eq!(body["minTlsVersion"], "1.3");
    assert_eq!(body["negotiateClientCertificate"], true);
    let after = api_common::revision(a).await;
    assert_eq!(after, before + 1, "a hostname write bumps the revision");
    assert_eq!(r.etag(), format!("\"{after}\""));

    // A wildcard; a second default binding on the same gateway is refused.
    let r = a
        .put_json(
            "/gateways/gw1/hostnames/*.example.com",
            &json!({"certificateId": "site"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let second = a
        .put_json(
            "/gateways/gw1/hostnames/*.example.com",
            &json!({"certificateId": "site", "defaultSslBinding": true}),
        )
        .await
        .problem(400);
    assert!(
        second["detail"]
            .as_str()
            .unwrap()
            .contains("defaultSslBinding"),
        "{second}"
    );

    // Unknown certificate, bad names, unknown suites, a body naming another host.
    let unknown = a
        .put_json(
            "/gateways/gw1/hostnames/b.example.com",
            &json!({"certificateId": "nope"}),
        )
        .await
        .problem(400);
    assert!(
        unknown["detail"].as_str().unwrap().contains("nope"),
        "{unknown}"
    );
    for bad in [
        "API.example.com",
        "a..example.com",
        "a.*.example.com",
        "-a.example.com",
    ] {
        a.put_json(
            &format!("/gateways/gw1/hostnames/{bad}"),
            &json!({"certificateId": "site"}),
        )
        .await
        .problem(400);
    }
    let suite = a
        .put_json(
            "/gateways/gw1/hostnames/c.example.com",
            &json!({"certificateId": "site", "cipherSuites": ["TLS_RSA_WITH_RC4_128_SHA"]}),
        )
        .await
        .problem(400);
    assert!(
        suite["detail"]
            .as_str()
            .unwrap()
            .contains("TLS_RSA_WITH_RC4_128_SHA"),
        "{suite}"
    );
    a.put_json(
        "/gateways/gw1/hostnames/c.example.com",
        &json!({"hostname": "d.example.com", "certificateId": "site"}),
    )
    .await
    .problem(400);
    a.put_json(
        "/gateways/nope/hostnames/c.example.com",
        &json!({"certificateId": "site"}),
    )
    .await
    .problem(404);

    // GET, list, conditional requests, delete.
    let got = a.get("/gateways/gw1/hostnames/api.example.com").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["certificateId"], "site");
    let etag = got.etag();
    let not_modified = a
        .get_with(
            "/gateways/gw1/hostnames/api.example.com",
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(not_modified.status, 304);
    // What a GET shows goes back as a PUT body unchanged.
    let round_trip = a
        .put_json_with(
            "/gateways/gw1/hostnames/api.example.com",
            &got.json(),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(round_trip.status, 200, "{}", round_trip.text());
    assert_eq!(round_trip.json(), got.json());
    let list = a.get("/gateways/gw1/hostnames").await.json();
    assert_eq!(list["count"], 2);
    assert_eq!(list["value"][0]["hostname"], "*.example.com");
    assert_eq!(list["value"][1]["hostname"], "api.example.com");
    a.get("/gateways/nope/hostnames").await.problem(404);

    // The certificate is in use: 409 naming the hostname.
    let in_use = a.delete("/certificates/site").await.problem(409);
    let detail = in_use["detail"].as_str().unwrap();
    assert!(
        detail.contains("api.example.com") && detail.contains("gw1"),
        "{detail}"
    );

    a.delete_with(
        "/gateways/gw1/hostnames/api.example.com",
        &[("if-match", "\"1\"")],
    )
    .await
    .problem(412);
    assert_eq!(
        a.delete("/gateways/gw1/hostnames/api.example.com")
            .await
            .status,
        204
    );
    a.get("/gateways/gw1/hostnames/api.example.com")
        .await
        .problem(404);
    let audit = a.get("/audit").await.json();
    assert!(
        audit
            .to_string()
            .contains("/gateways/gw1/hostnames/api.example.com"),
        "{audit}"
    );

    // Deleting the gateway takes its hostnames along, and frees the certificate.
    assert_eq!(a.delete("/gateways/gw1").await.status, 204);
    assert_eq!(a.delete("/certificates/site").await.status, 204);
    p.management.shutdown().await;
}

#[tokio::test]
async fn backends_refer_to_certificates_and_cas_that_exist() {
    let p = start().await;
    let a = &p.admin;
    let ca = Ca::new("Backend Root");
    let (leaf, key) = ca.leaf(&["client.example.com"], 1);
    let backend = |ca_ids: Value, cert: Value| {
        json!({
            "url": "https://backend.internal:8443/",
            "tls": {"caCertificateIds": ca_ids, "clientCertificateId": cert, "serverName": "backend.internal"},
        })
    };
    // Unknown ids: 400 naming them.
    let r = a
        .put_json("/backends/b1", &backend(json!(["root"]), Value::Null))
        .await
        .problem(400);
    assert!(r["detail"].as_str().unwrap().contains("root"), "{r}");
    let r = a
        .put_json("/backends/b1", &backend(json!([]), json!("client")))
        .await
        .problem(400);
    assert!(r["detail"].as_str().unwrap().contains("client"), "{r}");

    assert_eq!(
        a.put_json(
            "/ca-certificates/root",
            &json!({"certificatePem": ca.cert.pem()})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        a.put_json("/certificates/client", &pem_upload(&leaf, &ca, &key))
            .await
            .status,
        201
    );
    let r = a
        .put_json("/backends/b1", &backend(json!(["root"]), json!("client")))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // In use: 409 naming the backend.
    let r = a.delete("/ca-certificates/root").await.problem(409);
    assert!(
        r["detail"].as_str().unwrap().contains("backend 'b1'"),
        "{r}"
    );
    let r = a.delete("/certificates/client").await.problem(409);
    assert!(
        r["detail"].as_str().unwrap().contains("backend 'b1'"),
        "{r}"
    );
    assert_eq!(a.delete("/backends/b1").await.status, 204);
    assert_eq!(a.delete("/ca-certificates/root").await.status, 204);

    // A policy that presents the certificate, by id and then by thumbprint
    // (any case): 409 naming the policy and its line.
    let api = json!({"path": "pay", "serviceUrl": "https://pay.internal/",
        "operations": [{"id": "any", "method": "*", "urlTemplate": "/*"}]});
    assert_eq!(a.put_json("/apis/pay", &api).await.status, 201);
    let by_id = "<policies>\n<inbound>\n<authentication-certificate certificate-id=\"client\" />\n</inbound>\n</policies>";
    let r = a.put_xml("/apis/pay/policy", by_id).await;
    assert!(r.status < 300, "{}", r.text());
    let r = a.delete("/certificates/client").await.problem(409);
    let detail = r["detail"].as_str().unwrap();
    assert!(
        detail.contains("api 'pay'") && detail.contains("authentication-certificate, line 3"),
        "{r}"
    );
    let by_thumbprint = format!(
        "<policies><inbound><authentication-certificate thumbprint=\"{}\" /></inbound></policies>",
        thumbprint(leaf.der()).to_ascii_lowercase()
    );
    let r = a.put_xml("/apis/pay/policy", &by_thumbprint).await;
    assert!(r.status < 300, "{}", r.text());
    let r = a.delete("/certificates/client").await.problem(409);
    assert!(r["detail"].as_str().unwrap().contains("api 'pay'"), "{r}");
    assert_eq!(a.delete("/apis/pay").await.status, 204);
    assert_eq!(a.delete("/certificates/client").await.status, 204);
    p.management.shutdown().await;
}

#[tokio::test]
async fn the_gateway_snapshot_carries_its_hostnames_certificates_and_cas() {
    let p = start().await;
    let a = &p.admin;
    let ca = Ca::new("Test Root");
    let (site, site_key) = ca.leaf(&["api.example.com"], 1);
    let (client, client_key) = ca.leaf(&["client"], 2);
    let (by_thumb, by_thumb_key) = ca.leaf(&["thumb"], 3);
    let (unused, unused_key) = ca.leaf(&["unused"], 4);
    for (id, cert, key) in [
        ("site", &site, &site_key),
        ("client", &client, &client_key),
        ("by-thumb", &by_thumb, &by_thumb_key),
        ("unused", &unused, &unused_key),
    ] {
        let r = a
            .put_json(&format!("/certificates/{id}"), &pem_upload(cert, &ca, key))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = a
        .put_json(
            "/ca-certificates/root",
            &json!({"certificatePem": ca.cert.pem(), "crlPem": ca.crl(&[9])}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a
        .put_json(
            "/backends/b1",
            &json!({"url": "https://backend.internal/", "tls": {"caCertificateIds": ["root"], "clientCertificateId": "client"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (gateway, _) = gateway_setup(a).await;
    // A policy of a served API names a certificate by thumbprint (lowercase).
    let xml = format!(
        "<policies><inbound><base /><set-header name=\"x-cert\" exists-action=\"override\"><value>{}</value></set-header></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>",
        thumbprint(by_thumb.der()).to_lowercase()
    );
    let r = a.put_xml("/apis/echo/policy", &xml).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    // Another gateway's hostname stays with that gateway.
    assert_eq!(
        a.put_json(
            "/gateways/gw2",
            &json!({"location": {"name": "Elsewhere"}, "apis": []})
        )
        .await
        .status,
        201
    );
    for (gw, host) in [("gw1", "api.example.com"), ("gw2", "other.example.com")] {
        let r = a
            .put_json(
                &format!("/gateways/{gw}/hostnames/{host}"),
                &json!({"certificateId": "site", "negotiateClientCertificate": true}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }

    let config = gateway.get("/gateways/gw1/configuration").await;
    assert_eq!(config.status, 200, "{}", config.text());
    let snapshot = portcullis_core::config::Snapshot::from_json(&config.body).expect("snapshot");
    let hosts: Vec<&str> = snapshot
        .hostnames
        .iter()
        .map(|h| h.hostname.as_str())
        .collect();
    assert_eq!(hosts, ["api.example.com"]);
    assert!(snapshot.hostnames[0].negotiate_client_certificate);
    let mut ids: Vec<&str> = snapshot
        .certificates
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["by-thumb", "client", "site"]);
    let site_cert = snapshot
        .certificates
        .iter()
        .find(|c| c.id == "site")
        .unwrap();
    assert_eq!(
        site_cert.private_key_pem,
        site_key.serialize_pem().replace("\r\n", "\n")
    );
    assert!(site_cert
        .certificate_pem
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(snapshot.ca_certificates.len(), 1);
    assert_eq!(snapshot.ca_certificates[0].id, "root");
    assert!(snapshot.ca_certificates[0]
        .crl_pem
        .as_deref()
        .is_some_and(|c| c.contains("BEGIN X509 CRL")));
    // What the management plane sends, the gateway compiles.
    portcullis_core::config::CompiledConfig::compile(snapshot).expect("compiles");
    p.management.shutdown().await;
}
