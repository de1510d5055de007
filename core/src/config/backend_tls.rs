//! The TLS of a revision's backends, resolved once when the snapshot is
//! compiled: each backend entity's `tls` with its CAs and client certificate
//! looked up, the certificates `authentication-certificate` may name (by id
//! and by thumbprint), and every API's settings with its pool key.

use std::collections::HashMap;
use std::sync::Arc;

use super::{BackendTls, ServiceUrl, Snapshot, TlsVersion};
use crate::http::{ClientIdentity, UpstreamTls};
use crate::policy::auth_cert::{CertRef, TlsLookup};

/// Backend TLS settings and the certificates presentable to backends, of one revision.
#[derive(Debug, Default)]
pub(crate) struct TlsIndex {
    /// Backends that have `tls`, by id.
    backends: HashMap<String, Arc<UpstreamTls>>,
    /// Certificates by id.
    by_id: HashMap<String, Arc<ClientIdentity>>,
    /// Certificates by thumbprint, uppercase.
    by_thumbprint: HashMap<String, Arc<ClientIdentity>>,
    /// Per API: its backend entity's settings (none for a service URL or a
    /// backend without `tls`) and the pool key of its upstream with them.
    apis: Vec<(Option<Arc<UpstreamTls>>, Arc<str>)>,
}

impl TlsIndex {
    /// Resolves the snapshot's backend TLS; `upstreams` are the APIs' upstreams.
    ///
    /// A CA or certificate id no entry of the snapshot has fails closed (no
    /// CA is trusted, no certificate is presented): the snapshot's validation
    /// refuses such references before this runs, so it only guards against
    /// a snapshot that skipped it.
    pub(crate) fn build(snapshot: &Snapshot, upstreams: &[ServiceUrl]) -> TlsIndex {
        let mut index = TlsIndex::default();
        for cert in &snapshot.certificates {
            let identity = Arc::new(ClientIdentity::new(
                &cert.id,
                &cert.certificate_pem,
                &cert.private_key_pem,
            ));
            if let Some(thumbprint) = &identity.thumbprint {
                index
                    .by_thumbprint
                    .insert(thumbprint.clone(), identity.clone());
            }
            index.by_id.insert(cert.id.clone(), identity);
        }
        for backend in &snapshot.backends {
            if let Some(tls) = &backend.tls {
                let resolved = index.resolve(snapshot, tls);
                index
                    .backends
                    .insert(backend.id.clone(), Arc::new(resolved));
            }
        }
        for (api, service) in snapshot.apis.iter().zip(upstreams) {
            let tls = api
                .backend_id
                .as_deref()
                .and_then(|id| index.backends.get(id))
                .cloned();
            let key = UpstreamTls::pool_key(tls.as_deref(), service);
            index.apis.push((tls, key));
        }
        index
    }

    fn resolve(&self, snapshot: &Snapshot, tls: &BackendTls) -> UpstreamTls {
        let trusted_cas = (!tls.ca_certificate_ids.is_empty()).then(|| {
            tls.ca_certificate_ids
                .iter()
                .filter_map(|id| snapshot.ca_certificates.iter().find(|c| &c.id == id))
                .map(|c| c.certificate_pem.clone())
                .collect()
        });
        let identity = tls.client_certificate_id.as_ref().and_then(|id| {
            let found = self.by_id.get(id).cloned();
            if found.is_none() {
                tracing::warn!(certificate = %id, "backend TLS names an unknown certificate: none is presented");
            }
            found
        });
        UpstreamTls::new(
            tls.validate_certificate_chain,
            tls.validate_certificate_name,
            trusted_cas,
            tls.server_name.clone(),
            tls.min_tls_version == TlsVersion::Tls13,
            tls.cipher_suites.clone(),
            identity,
        )
    }

    /// API `api`'s backend TLS settings, if its backend entity has some.
    pub(crate) fn api_tls(&self, api: usize) -> Option<&Arc<UpstreamTls>> {
        self.apis.get(api).and_then(|(tls, _)| tls.as_ref())
    }

    /// The pool key of API `api`'s upstream with its TLS settings.
    pub(crate) fn api_pool_key(&self, api: usize) -> Option<&Arc<str>> {
        self.apis.get(api).map(|(_, key)| key)
    }
}

impl TlsLookup for TlsIndex {
    fn backend_tls(&self, id: &str) -> Option<Arc<UpstreamTls>> {
        self.backends.get(id).cloned()
    }

    fn certificate(&self, by: CertRef<'_>) -> Option<Arc<ClientIdentity>> {
        match by {
            CertRef::Id(id) => self.by_id.get(id).cloned(),
            CertRef::Thumbprint(t) => self
                .by_thumbprint
                .get(t.trim().to_ascii_uppercase().as_str())
                .cloned(),
        }
    }
}
