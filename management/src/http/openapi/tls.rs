//! The OpenAPI of certificates, CA certificates and gateways' custom hostnames.

use serde_json::{json, Map, Value};

use super::{header_param, json_content, ok_json, operation, page_schema, param, problem};
use super::{schema_ref, with_etag};

/// `/gateways/{id}/hostnames` and `/gateways/{id}/hostnames/{hostname}`.
pub(super) fn hostname_paths() -> Vec<(String, Value)> {
    let gateway = param("id", "The gateway's id");
    let hostname = param(
        "hostname",
        "The host name, lowercase (`api.example.com`), or a wildcard (`*.example.com`)",
    );
    let collection = json!({
        "get": operation(
            "List a gateway's custom hostnames",
            vec![gateway.clone(), header_param("top"), header_param("skip")],
            None,
            vec![
                ("200", ok_json("One page, ordered by host name", page_schema(schema_ref("Hostname")))),
                ("400", problem("A bad top or skip")),
                ("404", problem("No such gateway")),
            ],
        ),
    });
    let item = json!({
        "get": operation(
            "Get a custom hostname",
            vec![gateway.clone(), hostname.clone(), header_param("IfNoneMatch")],
            None,
            vec![
                ("200", with_etag(ok_json("The hostname", schema_ref("Hostname")))),
                ("304", with_etag(json!({ "description": "Not modified since the given ETag" }))),
                ("404", problem("No such gateway or hostname")),
            ],
        ),
        "put": operation(
            "Create or replace a custom hostname (bumps the revision: the gateway serves it from its next snapshot)",
            vec![gateway.clone(), hostname.clone(), header_param("IfMatch"), header_param("IfNoneMatch")],
            Some(json!({ "required": true, "content": json_content(schema_ref("Hostname")) })),
            vec![
                ("200", with_etag(ok_json("Replaced", schema_ref("Hostname")))),
                ("201", with_etag(ok_json("Created", schema_ref("Hostname")))),
                ("400", problem("Not valid: host name syntax, an unknown certificateId, a second defaultSslBinding on the gateway, an unknown cipher suite")),
                ("404", problem("No such gateway")),
                ("412", problem("If-Match or If-None-Match does not hold")),
            ],
        ),
        "delete": operation(
            "Delete a custom hostname",
            vec![gateway, hostname, header_param("IfMatch")],
            None,
            vec![
                ("204", json!({ "description": "Deleted" })),
                ("404", problem("No such gateway or hostname")),
                ("412", problem("If-Match does not hold")),
            ],
        ),
    });
    vec![
        ("/gateways/{id}/hostnames".to_owned(), collection),
        ("/gateways/{id}/hostnames/{hostname}".to_owned(), item),
    ]
}

/// `Certificate`, `CaCertificate`, `Hostname` and `BackendTls`.
pub(super) fn tls_schemas(schemas: &mut Map<String, Value>) {
    let string = json!({ "type": "string" });
    let date_time = json!({ "type": "string", "format": "date-time" });
    let suites = json!({
        "type": "array",
        "items": { "type": "string", "enum": portcullis_core::config::CIPHER_SUITES },
        "description": "IANA names of the suites allowed; empty or absent: the gateway's defaults",
    });
    let version = json!({ "type": "string", "enum": ["1.2", "1.3"], "default": "1.2" });
    schemas.insert(
        "Certificate".into(),
        json!({
            "type": "object",
            "description": "A certificate chain with its private key. Upload either certificatePem and privateKeyPem, or pfx and password; the key must match the leaf. Responses, lists and the audit log never show the key or the password; the key is stored encrypted (AES-256-GCM, key-encryption key in the data directory's certificate-keys.kek).",
            "properties": {
                "id": string,
                "certificatePem": { "type": "string", "description": "The chain, PEM CERTIFICATE blocks, leaf first (shown in responses, normalized)" },
                "privateKeyPem": { "type": "string", "writeOnly": true, "description": "Unencrypted PKCS#8, PKCS#1 or SEC1 PEM; never returned" },
                "pfx": { "type": "string", "format": "byte", "writeOnly": true, "description": "A PKCS#12 file, base64; never returned" },
                "data": { "type": "string", "format": "byte", "writeOnly": true, "description": "APIM's name for `pfx` (the same field)" },
                "password": { "type": "string", "writeOnly": true, "description": "The PKCS#12 file's password; never stored" },
                "subject": { "type": "string", "readOnly": true },
                "issuer": { "type": "string", "readOnly": true },
                "thumbprint": { "type": "string", "readOnly": true, "description": "SHA-1 of the leaf's DER, uppercase hex" },
                "serialNumber": { "type": "string", "readOnly": true, "description": "Uppercase hex" },
                "notBefore": { "type": "string", "format": "date-time", "readOnly": true },
                "notAfter": { "type": "string", "format": "date-time", "readOnly": true },
                "dnsNames": { "type": "array", "items": string, "readOnly": true, "description": "subjectAltName DNS names" },
                "hasPrivateKey": { "type": "boolean", "readOnly": true },
            },
        }),
    );
    schemas.insert(
        "CaCertificate".into(),
        json!({
            "type": "object",
            "required": ["certificatePem"],
            "description": "A trusted root or intermediate CA for client certificates and backends, with the CRLs it issued (the gateway never fetches one).",
            "properties": {
                "id": string,
                "certificatePem": { "type": "string", "description": "One PEM CERTIFICATE block" },
                "crlPem": { "type": "string", "description": "PEM X509 CRL blocks issued by this CA" },
                "subject": { "type": "string", "readOnly": true },
                "issuer": { "type": "string", "readOnly": true },
                "thumbprint": { "type": "string", "readOnly": true },
                "serialNumber": { "type": "string", "readOnly": true },
                "notBefore": { "type": "string", "format": "date-time", "readOnly": true },
                "notAfter": { "type": "string", "format": "date-time", "readOnly": true },
                "dnsNames": { "type": "array", "items": string, "readOnly": true },
                "selfSigned": { "type": "boolean", "readOnly": true },
                "kind": { "type": "string", "enum": ["root", "intermediate"], "readOnly": true },
                "crls": {
                    "type": "array",
                    "readOnly": true,
                    "items": {
                        "type": "object",
                        "properties": {
                            "thisUpdate": date_time,
                            "nextUpdate": date_time,
                            "revokedCount": { "type": "integer" },
                        },
                    },
                },
            },
        }),
    );
    schemas.insert(
        "Hostname".into(),
        json!({
            "type": "object",
            "required": ["certificateId"],
            "description": "A custom hostname of a gateway's HTTPS listener (the URL gives the host name)",
            "properties": {
                "hostname": { "type": "string", "description": "Optional in a PUT body; must match the URL" },
                "gatewayId": { "type": "string", "readOnly": true },
                "certificateId": { "type": "string", "description": "The certificate served for it" },
                "negotiateClientCertificate": { "type": "boolean", "default": false, "description": "Ask for a client certificate on the first handshake (no renegotiation)" },
                "defaultSslBinding": { "type": "boolean", "default": false, "description": "Served when SNI is absent or matches no hostname; at most one per gateway" },
                "minTlsVersion": version,
                "cipherSuites": suites,
                "http2Enabled": { "type": "boolean", "default": false, "description": "Reserved: ALPN offers http/1.1 only today" },
            },
        }),
    );
    schemas.insert(
        "BackendTls".into(),
        json!({
            "type": "object",
            "description": "How an https backend's TLS is checked, and the client certificate presented",
            "properties": {
                "validateCertificateChain": { "type": "boolean", "default": true },
                "validateCertificateName": { "type": "boolean", "default": true },
                "caCertificateIds": { "type": "array", "items": string, "description": "CA certificates trusted instead of the public roots" },
                "serverName": { "type": "string", "description": "SNI sent and checked instead of the URL's host" },
                "minTlsVersion": version,
                "cipherSuites": suites,
                "clientCertificateId": { "type": "string", "description": "The certificate presented when the backend asks" },
            },
        }),
    );
}
