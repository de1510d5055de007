//! Snapshot validation; also yields the parsed upstreams and router so compiling does not redo it.

use std::collections::{HashMap, HashSet};

use super::compiled::{key_digest, SubScope, SubscriptionRef};
use super::{
    Api, ApiProblem, ConfigError, EntityProblem, OperationProblem, ServiceUrl, Snapshot,
    SubscriptionProblem, TlsProblem,
};
use crate::http::service_url;
use crate::router::Router;

/// What a valid snapshot compiles to.
pub(crate) struct Checked {
    /// Upstream of each API, by API index.
    pub(crate) upstreams: Vec<ServiceUrl>,
    /// Subscription index by key (primary and secondary).
    pub(crate) keys: HashMap<[u8; 32], SubscriptionRef>,
    /// Router over all APIs.
    pub(crate) router: Router,
    /// Every backend's parsed URL, by id (for `set-backend-service backend-id`).
    pub(crate) backends: HashMap<String, ServiceUrl>,
}

/// Checks the snapshot in document order and stops at the first problem.
pub(crate) fn check(snapshot: &Snapshot) -> Result<Checked, ConfigError> {
    let mut backends: HashMap<&str, ServiceUrl> = HashMap::new();
    for backend in &snapshot.backends {
        let fail = |problem| ConfigError::Backend {
            backend: backend.id.clone(),
            problem,
        };
        check_id(&backend.id).map_err(|r| fail(EntityProblem::InvalidId(r)))?;
        let parsed = service_url::parse_upstream(&backend.url).map_err(|reason| {
            fail(EntityProblem::InvalidUrl {
                url: backend.url.clone(),
                reason,
            })
        })?;
        if backends.insert(&backend.id, parsed).is_some() {
            return Err(fail(EntityProblem::DuplicateId));
        }
    }

    let mut names = HashSet::new();
    for nv in &snapshot.named_values {
        let fail = |problem| ConfigError::NamedValue {
            name: nv.name.clone(),
            problem,
        };
        check_id(&nv.name).map_err(|r| fail(EntityProblem::InvalidId(r)))?;
        if !names.insert(nv.name.as_str()) {
            return Err(fail(EntityProblem::DuplicateId));
        }
    }

    let mut ids = HashSet::new();
    let mut upstreams = Vec::with_capacity(snapshot.apis.len());
    for api in &snapshot.apis {
        let fail = |problem| ConfigError::api(&api.id, problem);
        check_id(&api.id).map_err(|r| fail(ApiProblem::InvalidId(r)))?;
        if !ids.insert(api.id.as_str()) {
            return Err(fail(ApiProblem::DuplicateId));
        }
        if api.protocols.is_empty() {
            return Err(fail(ApiProblem::NoProtocols));
        }
        if !(1..=3600).contains(&api.timeout_seconds) {
            return Err(fail(ApiProblem::InvalidTimeout(api.timeout_seconds)));
        }
        if let Some(t) = api.telemetry.filter(|t| t.sampling_percentage > 100) {
            return Err(fail(ApiProblem::InvalidSampling(t.sampling_percentage)));
        }
        check_key_names(api)?;
        upstreams.push(resolve_upstream(api, &backends)?);
        check_operation_ids(api)?;
        super::api_type::check(api, &snapshot.backends)
            .map_err(|r| fail(ApiProblem::ApiType(r)))?;
    }

    // Paths, hostnames, methods, templates and duplicates are checked by the
    // router builder itself, so what validates is exactly what routes.
    let routed = super::versions::check(snapshot)?;
    let router = Router::new(&routed)?;
    check_tls(snapshot)?;
    check_products(snapshot)?;
    let keys = check_subscriptions(snapshot)?;
    Ok(Checked {
        upstreams,
        keys,
        router,
        backends: backends
            .into_iter()
            .map(|(id, url)| (id.to_owned(), url))
            .collect(),
    })
}

/// Checks product ids and that their APIs exist.
fn check_products(snapshot: &Snapshot) -> Result<(), ConfigError> {
    let mut ids = HashSet::new();
    for product in &snapshot.products {
        let fail = |problem| ConfigError::Product {
            product: product.id.clone(),
            problem,
        };
        check_id(&product.id).map_err(|r| fail(EntityProblem::InvalidId(r)))?;
        if !ids.insert(product.id.as_str()) {
            return Err(fail(EntityProblem::DuplicateId));
        }
        for api in &product.apis {
            if !snapshot.apis.iter().any(|a| &a.id == api) {
                return Err(fail(EntityProblem::UnknownApi(api.clone())));
            }
        }
    }
    Ok(())
}

/// Checks subscriptions and indexes them by key.
fn check_subscriptions(
    snapshot: &Snapshot,
) -> Result<HashMap<[u8; 32], SubscriptionRef>, ConfigError> {
    let mut ids = HashSet::new();
    let mut keys: HashMap<[u8; 32], SubscriptionRef> = HashMap::new();
    for (index, sub) in snapshot.subscriptions.iter().enumerate() {
        let fail = |problem| ConfigError::Subscription {
            subscription: sub.id.clone(),
            problem,
        };
        check_id(&sub.id).map_err(|r| fail(SubscriptionProblem::InvalidId(r)))?;
        if !ids.insert(sub.id.as_str()) {
            return Err(fail(SubscriptionProblem::DuplicateId));
        }
        let scope = match sub.scope.trim_end_matches('/') {
            "/apis" => Some(SubScope::All),
            other => {
                if let Some(id) = other.strip_prefix("/apis/") {
                    snapshot
                        .apis
                        .iter()
                        .position(|a| a.id == id)
                        .map(SubScope::Api)
                } else if let Some(id) = other.strip_prefix("/products/") {
                    snapshot
                        .products
                        .iter()
                        .position(|p| p.id == id)
                        .map(SubScope::Product)
                } else {
                    None
                }
            }
        }
        .ok_or_else(|| fail(SubscriptionProblem::InvalidScope(sub.scope.clone())))?;
        for (which, key) in [
            ("primary", &sub.primary_key),
            ("secondary", &sub.secondary_key),
        ] {
            check_key(key)
                .map_err(|reason| fail(SubscriptionProblem::InvalidKey { which, reason }))?;
            let entry = SubscriptionRef { index, scope };
            if let Some(other) = keys.insert(key_digest(key.as_bytes()), entry) {
                let other = snapshot.subscriptions[other.index].id.clone();
                return Err(fail(SubscriptionProblem::DuplicateKey { which, other }));
            }
        }
    }
    Ok(keys)
}

/// Keys travel in headers and query strings: visible ASCII, long enough to be unguessable.
fn check_key(key: &str) -> Result<(), &'static str> {
    if key.len() < 16 {
        return Err("shorter than 16 characters");
    }
    if key.len() > 256 {
        return Err("longer than 256 characters");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err("may hold only letters, digits, '-', '.', '_' and '~'");
    }
    Ok(())
}

/// Ids and names appear in management URLs and `{{name}}` references: URL-unreserved only.
pub(crate) fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("must not be empty");
    }
    if id.len() > 256 {
        return Err("longer than 256 characters");
    }
    // Ids are segments of management URLs, which resolve these away.
    if id == "." || id == ".." {
        return Err("must not be `.` or `..`");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err("may hold only letters, digits, '-', '.', '_' and '~'");
    }
    Ok(())
}

fn check_key_names(api: &Api) -> Result<(), ConfigError> {
    let names = &api.subscription_key_parameter_names;
    let fail = |which, name: &str, reason| {
        ConfigError::api(
            &api.id,
            ApiProblem::InvalidKeyParameterName {
                which,
                name: name.to_owned(),
                reason,
            },
        )
    };
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~";
    let header_ok = !names.header.is_empty()
        && names
            .header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || TCHAR.contains(&b));
    if !header_ok {
        return Err(fail("header", &names.header, "not an HTTP header name"));
    }
    // Compared against raw query keys, so only characters that never need encoding.
    let query_ok = !names.query.is_empty()
        && names
            .query
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !query_ok {
        return Err(fail(
            "query",
            &names.query,
            "may hold only letters, digits, '-', '.', '_' and '~'",
        ));
    }
    Ok(())
}

fn resolve_upstream(
    api: &Api,
    backends: &HashMap<&str, ServiceUrl>,
) -> Result<ServiceUrl, ConfigError> {
    let fail = |problem| ConfigError::api(&api.id, problem);
    match (&api.service_url, &api.backend_id) {
        (Some(_), Some(_)) => Err(fail(ApiProblem::ConflictingUpstream)),
        (None, None) => Err(fail(ApiProblem::MissingUpstream)),
        (Some(service_url), None) => service_url::parse_upstream(service_url).map_err(|reason| {
            fail(ApiProblem::InvalidServiceUrl {
                url: service_url.clone(),
                reason,
            })
        }),
        (None, Some(id)) => backends
            .get(id.as_str())
            .cloned()
            .ok_or_else(|| fail(ApiProblem::UnknownBackend(id.clone()))),
    }
}

fn check_operation_ids(api: &Api) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for op in &api.operations {
        let fail = |problem| ConfigError::operation(&api.id, &op.id, problem);
        check_id(&op.id).map_err(|r| fail(OperationProblem::InvalidId(r)))?;
        if !seen.insert(op.id.as_str()) {
            return Err(fail(OperationProblem::DuplicateId));
        }
    }
    Ok(())
}

/// Checks certificates, CAs, hostnames and backends' TLS settings: ids, that
/// PEMs parse (cheaply: blocks decode and certificates and CRLs are DER X.509;
/// whether a key matches its certificate is the management plane's check) and
/// that every reference resolves.
fn check_tls(snapshot: &Snapshot) -> Result<(), ConfigError> {
    let mut certificates = HashSet::new();
    for cert in &snapshot.certificates {
        let fail = |problem| ConfigError::Certificate {
            certificate: cert.id.clone(),
            problem,
        };
        check_id(&cert.id).map_err(|r| fail(TlsProblem::InvalidId(r)))?;
        if !certificates.insert(cert.id.as_str()) {
            return Err(fail(TlsProblem::DuplicateId));
        }
        check_certificate_pem(&cert.certificate_pem, false).map_err(&fail)?;
        check_private_key_pem(&cert.private_key_pem).map_err(&fail)?;
    }
    let mut cas = HashSet::new();
    for ca in &snapshot.ca_certificates {
        let fail = |problem| ConfigError::CaCertificate {
            ca: ca.id.clone(),
            problem,
        };
        check_id(&ca.id).map_err(|r| fail(TlsProblem::InvalidId(r)))?;
        if !cas.insert(ca.id.as_str()) {
            return Err(fail(TlsProblem::DuplicateId));
        }
        check_certificate_pem(&ca.certificate_pem, true).map_err(&fail)?;
        if let Some(crl) = &ca.crl_pem {
            check_crl_pem(crl).map_err(&fail)?;
        }
    }
    let mut names = HashSet::new();
    let mut default: Option<&str> = None;
    for host in &snapshot.hostnames {
        let fail = |problem| ConfigError::Hostname {
            hostname: host.hostname.clone(),
            problem,
        };
        check_hostname(&host.hostname).map_err(|r| fail(TlsProblem::InvalidHostname(r)))?;
        if !names.insert(host.hostname.as_str()) {
            return Err(fail(TlsProblem::DuplicateId));
        }
        if !certificates.contains(host.certificate_id.as_str()) {
            return Err(fail(TlsProblem::UnknownCertificate(
                host.certificate_id.clone(),
            )));
        }
        if host.default_ssl_binding {
            if let Some(other) = default {
                return Err(fail(TlsProblem::SecondDefault(other.to_owned())));
            }
            default = Some(&host.hostname);
        }
        check_cipher_suites(&host.cipher_suites).map_err(&fail)?;
    }
    for backend in &snapshot.backends {
        let Some(tls) = &backend.tls else { continue };
        let fail = |problem| ConfigError::BackendTls {
            backend: backend.id.clone(),
            problem,
        };
        for id in &tls.ca_certificate_ids {
            if !cas.contains(id.as_str()) {
                return Err(fail(TlsProblem::UnknownCaCertificate(id.clone())));
            }
        }
        if let Some(id) = &tls.client_certificate_id {
            if !certificates.contains(id.as_str()) {
                return Err(fail(TlsProblem::UnknownCertificate(id.clone())));
            }
        }
        if let Some(name) = &tls.server_name {
            if name.parse::<std::net::IpAddr>().is_err() && check_dns_name(name).is_err() {
                return Err(fail(TlsProblem::InvalidServerName(name.clone())));
            }
        }
        check_cipher_suites(&tls.cipher_suites).map_err(&fail)?;
    }
    Ok(())
}

fn check_cipher_suites(suites: &[String]) -> Result<(), TlsProblem> {
    match suites.iter().find(|s| super::cipher_suite(s).is_none()) {
        Some(unknown) => Err(TlsProblem::UnknownCipherSuite(unknown.clone())),
        None => Ok(()),
    }
}

/// A hostname is what SNI carries, lowercased: a DNS name, or `*.` and one.
fn check_hostname(name: &str) -> Result<(), &'static str> {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if rest.contains('*') {
        return Err("`*` only as the whole first label (`*.example.com`)");
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("has uppercase letters");
    }
    check_dns_name(rest)
}

/// Letters, digits and inner hyphens in labels of 1 to 63 bytes, 253 bytes at most.
fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("must have 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("every label must have 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("may hold only letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label must not start or end with '-'");
        }
    }
    Ok(())
}

fn pem_problem(field: &'static str, reason: impl Into<String>) -> TlsProblem {
    TlsProblem::InvalidPem {
        field,
        reason: reason.into(),
    }
}

/// The PEM blocks of `text`, or why it is not PEM.
fn pem_blocks(text: &str, field: &'static str) -> Result<Vec<x509_parser::pem::Pem>, TlsProblem> {
    let blocks = x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_problem(field, format!("not PEM: {e}")))?;
    if blocks.is_empty() {
        return Err(pem_problem(field, "holds no PEM block"));
    }
    Ok(blocks)
}

/// `CERTIFICATE` blocks that parse as X.509; exactly one for a CA.
fn check_certificate_pem(text: &str, single: bool) -> Result<(), TlsProblem> {
    const FIELD: &str = "certificatePem";
    let blocks = pem_blocks(text, FIELD)?;
    if single && blocks.len() != 1 {
        return Err(pem_problem(
            FIELD,
            "must hold exactly one CERTIFICATE block",
        ));
    }
    for (index, block) in blocks.iter().enumerate() {
        if block.label != "CERTIFICATE" {
            return Err(pem_problem(
                FIELD,
                format!("block {} is `{}`, not CERTIFICATE", index + 1, block.label),
            ));
        }
        block.parse_x509().map_err(|e| {
            pem_problem(
                FIELD,
                format!("certificate {} is not X.509: {e}", index + 1),
            )
        })?;
    }
    Ok(())
}

/// One PKCS#8, PKCS#1 or SEC1 private key block.
fn check_private_key_pem(text: &str) -> Result<(), TlsProblem> {
    const FIELD: &str = "privateKeyPem";
    let blocks = pem_blocks(text, FIELD)?;
    if blocks.len() != 1 {
        return Err(pem_problem(
            FIELD,
            "must hold exactly one private key block",
        ));
    }
    match blocks[0].label.as_str() {
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => Ok(()),
        other => Err(pem_problem(
            FIELD,
            format!("`{other}` is not PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY"),
        )),
    }
}

/// `X509 CRL` blocks that parse as revocation lists.
fn check_crl_pem(text: &str) -> Result<(), TlsProblem> {
    use x509_parser::prelude::FromDer;
    const FIELD: &str = "crlPem";
    for (index, block) in pem_blocks(text, FIELD)?.iter().enumerate() {
        if block.label != "X509 CRL" {
            return Err(pem_problem(
                FIELD,
                format!("block {} is `{}`, not X509 CRL", index + 1, block.label),
            ));
        }
        x509_parser::revocation_list::CertificateRevocationList::from_der(&block.contents)
            .map_err(|e| pem_problem(FIELD, format!("CRL {} does not parse: {e}", index + 1)))?;
    }
    Ok(())
}
