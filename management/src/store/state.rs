//! The in-memory view of the database, and the snapshots built from it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use portcullis_core::config::{
    Api, Backend, CaCertificate, Certificate, Hostname, NamedValue, PolicyFragment, Product,
    Snapshot, Subscription, VersionSet,
};

use super::docs::{Doc, GatewayDoc, SubscriptionDoc};
use super::tls_docs::{CaCertificateDoc, CertificateDoc};
use super::{GatewayKeys, Kind, PolicyDoc};

/// One entity and the revision it was last written at.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The entity.
    pub doc: Arc<Doc>,
    /// Its version (ETag).
    pub version: u64,
}

/// Everything the database holds but heartbeats, the audit log and admin tokens.
///
/// Writes apply a change to a clone, compile that, store it, and only then replace
/// the live view, so a refused or failed write leaves it untouched.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// The revision counter.
    pub revision: u64,
    /// Entities by kind, then id.
    pub entities: BTreeMap<Kind, BTreeMap<String, Stored>>,
    /// The global policy document.
    pub global_policy: Option<PolicyDoc>,
    /// Gateway keys by gateway id.
    pub gateway_keys: BTreeMap<String, GatewayKeys>,
    /// The OpenAPI document last imported into each API, by API id: the
    /// contract snapshots carry to the gateways (`Api::openapi`).
    pub api_documents: BTreeMap<String, Arc<serde_json::Value>>,
}

impl State {
    /// One entity.
    pub fn get(&self, kind: Kind, id: &str) -> Option<&Stored> {
        self.entities.get(&kind)?.get(id)
    }

    /// The entities of one kind, by id.
    pub fn all(&self, kind: Kind) -> impl Iterator<Item = (&String, &Stored)> {
        self.entities.get(&kind).into_iter().flatten()
    }

    /// How many entities of one kind there are.
    pub fn count(&self, kind: Kind) -> usize {
        self.entities.get(&kind).map_or(0, BTreeMap::len)
    }

    /// Stores an entity at `version`.
    pub fn put(&mut self, doc: Doc, id: &str, version: u64) {
        self.entities.entry(doc.kind()).or_default().insert(
            id.to_owned(),
            Stored {
                doc: Arc::new(doc),
                version,
            },
        );
    }

    /// Removes an entity.
    pub fn remove(&mut self, kind: Kind, id: &str) {
        if let Some(map) = self.entities.get_mut(&kind) {
            map.remove(id);
        }
    }

    fn apis(&self) -> impl Iterator<Item = &Api> {
        self.all(Kind::Api).filter_map(|(_, s)| match &*s.doc {
            Doc::Api(a) => Some(a),
            _ => None,
        })
    }

    fn version_sets(&self) -> impl Iterator<Item = &VersionSet> {
        self.all(Kind::VersionSet)
            .filter_map(|(_, s)| match &*s.doc {
                Doc::VersionSet(v) => Some(v),
                _ => None,
            })
    }

    /// The non-current revisions of API `id`, by entity id.
    pub fn revisions_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Api> + 'a {
        self.apis()
            .filter(move |a| a.api_revision_of.as_deref() == Some(id))
    }

    fn products(&self) -> impl Iterator<Item = &Product> {
        self.all(Kind::Product).filter_map(|(_, s)| match &*s.doc {
            Doc::Product(p) => Some(p),
            _ => None,
        })
    }

    /// Every subscription.
    pub fn subscriptions(&self) -> impl Iterator<Item = &SubscriptionDoc> {
        self.all(Kind::Subscription)
            .filter_map(|(_, s)| match &*s.doc {
                Doc::Subscription(d) => Some(d),
                _ => None,
            })
    }

    /// Every gateway.
    pub fn gateways(&self) -> impl Iterator<Item = &GatewayDoc> {
        self.all(Kind::Gateway).filter_map(|(_, s)| match &*s.doc {
            Doc::Gateway(g) => Some(g),
            _ => None,
        })
    }

    fn backends(&self) -> impl Iterator<Item = &Backend> {
        self.all(Kind::Backend).filter_map(|(_, s)| match &*s.doc {
            Doc::Backend(b) => Some(b),
            _ => None,
        })
    }

    /// Every named value.
    pub fn named_values(&self) -> impl Iterator<Item = &NamedValue> {
        self.all(Kind::NamedValue)
            .filter_map(|(_, s)| match &*s.doc {
                Doc::NamedValue(n) => Some(n),
                _ => None,
            })
    }

    /// Every fragment, as the core models it.
    pub fn fragments(&self) -> impl Iterator<Item = PolicyFragment> + '_ {
        self.all(Kind::Fragment).filter_map(|(_, s)| match &*s.doc {
            Doc::Fragment(f) => Some(PolicyFragment {
                id: f.id.clone(),
                policy: f.value.clone(),
            }),
            _ => None,
        })
    }

    /// Who refers to entity `kind`/`id`, as `product 'p'`, for a 409's message.
    pub fn referrers(&self, kind: Kind, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        match kind {
            Kind::Api => {
                for p in self.products().filter(|p| p.apis.iter().any(|a| a == id)) {
                    out.push(format!("product '{}'", p.id));
                }
                for g in self.gateways().filter(|g| g.apis.iter().any(|a| a == id)) {
                    out.push(format!("gateway '{}'", g.id));
                }
                for s in self
                    .subscriptions()
                    .filter(|s| scope_target(&s.scope) == Some(ScopeTarget::Api(id)))
                {
                    out.push(format!("subscription '{}'", s.id));
                }
            }
            Kind::Product => {
                for s in self
                    .subscriptions()
                    .filter(|s| scope_target(&s.scope) == Some(ScopeTarget::Product(id)))
                {
                    out.push(format!("subscription '{}'", s.id));
                }
            }
            Kind::VersionSet => {
                for a in self
                    .apis()
                    .filter(|a| a.api_version_set_id.as_deref() == Some(id))
                {
                    out.push(format!("api '{}'", a.id));
                }
            }
            Kind::Backend => {
                for a in self.apis().filter(|a| a.backend_id.as_deref() == Some(id)) {
                    out.push(format!("api '{}'", a.id));
                }
            }
            Kind::User => {
                for s in self
                    .subscriptions()
                    .filter(|s| s.owner_id.as_deref().map(owner_user) == Some(id))
                {
                    out.push(format!("subscription '{}'", s.id));
                }
            }
            Kind::Certificate => {
                for (gateway, host) in self.all_hostnames() {
                    if host.certificate_id == id {
                        out.push(format!(
                            "hostname '{}' of gateway '{gateway}'",
                            host.hostname
                        ));
                    }
                }
                for b in self.backends() {
                    let tls = b.tls.as_ref();
                    if tls.and_then(|t| t.client_certificate_id.as_deref()) == Some(id) {
                        out.push(format!("backend '{}' (tls.clientCertificateId)", b.id));
                    }
                }
            }
            Kind::CaCertificate => {
                for b in self.backends() {
                    let tls = b.tls.as_ref();
                    if tls.is_some_and(|t| t.ca_certificate_ids.iter().any(|c| c == id)) {
                        out.push(format!("backend '{}' (tls.caCertificateIds)", b.id));
                    }
                }
            }
            Kind::Subscription
            | Kind::NamedValue
            | Kind::Fragment
            | Kind::Gateway
            | Kind::Hostname => {}
        }
        out
    }

    /// Every custom hostname, with its gateway's id.
    fn all_hostnames(&self) -> impl Iterator<Item = (&str, &Hostname)> {
        self.all(Kind::Hostname).filter_map(|(_, s)| match &*s.doc {
            Doc::Hostname(h) => Some((h.gateway_id.as_str(), &h.hostname)),
            _ => None,
        })
    }

    /// The custom hostnames of gateway `gateway`, by name.
    pub fn hostnames_of<'a>(&'a self, gateway: &'a str) -> impl Iterator<Item = &'a Hostname> {
        self.all_hostnames()
            .filter(move |(g, _)| *g == gateway)
            .map(|(_, h)| h)
    }

    fn certificate_docs(&self) -> impl Iterator<Item = &CertificateDoc> {
        self.all(Kind::Certificate)
            .filter_map(|(_, s)| match &*s.doc {
                Doc::Certificate(c) => Some(c),
                _ => None,
            })
    }

    fn ca_docs(&self) -> impl Iterator<Item = &CaCertificateDoc> {
        self.all(Kind::CaCertificate)
            .filter_map(|(_, s)| match &*s.doc {
                Doc::CaCertificate(c) => Some(c),
                _ => None,
            })
    }

    /// What a change of gateway `gateway`'s hostnames is compiled with: its
    /// hostnames and every certificate, nothing else.
    pub fn hostnames_snapshot(&self, gateway: &str) -> Snapshot {
        Snapshot {
            revision: self.revision,
            apis: Vec::new(),
            backends: Vec::new(),
            named_values: Vec::new(),
            subscriptions: Vec::new(),
            products: Vec::new(),
            policy: None,
            fragments: Vec::new(),
            certificates: self.certificate_docs().map(snapshot_certificate).collect(),
            ca_certificates: Vec::new(),
            hostnames: self.hostnames_of(gateway).cloned().collect(),
            version_sets: Vec::new(),
            store: None,
            store_id: None,
            digest: None,
        }
    }

    /// The whole configuration, every API included, as a write's candidate is compiled:
    /// the policy documents of APIs (and their operations) for which `keep_policies`
    /// is false are left out.
    pub fn candidate_snapshot(&self, keep_policies: impl Fn(&str) -> bool) -> Snapshot {
        let mut snapshot = self.snapshot(None);
        for api in &mut snapshot.apis {
            if !keep_policies(&api.id) {
                api.policy = None;
                for op in &mut api.operations {
                    op.policy = None;
                }
            }
        }
        snapshot
    }

    /// The whole configuration, every API and policy included.
    #[cfg(test)]
    pub fn full_snapshot(&self) -> Snapshot {
        self.snapshot(None)
    }

    /// What gateway `gateway` serves: the global policy, fragments, named values and
    /// backends; its APIs; the products restricted to those APIs (dropped when none is
    /// left); and the subscriptions whose scope is `/apis`, one of its APIs or a kept product.
    pub fn gateway_snapshot(&self, gateway: &GatewayDoc) -> Snapshot {
        self.snapshot(Some(gateway))
    }

    fn snapshot(&self, gateway: Option<&GatewayDoc>) -> Snapshot {
        let assigned: Option<BTreeSet<&str>> =
            gateway.map(|g| g.apis.iter().map(String::as_str).collect());
        let serves = |api: &str| assigned.as_ref().is_none_or(|set| set.contains(api));
        // A gateway assigned an API serves its revisions too.
        let apis: Vec<Api> = self
            .apis()
            .filter(|a| serves(a.revision_base()))
            .map(|a| {
                let mut api = a.clone();
                if let Some(document) = self.api_documents.get(&a.id) {
                    api.openapi = Some(serde_json::Value::clone(document));
                }
                api
            })
            .collect();
        let products: Vec<Product> = self
            .products()
            .filter_map(|p| {
                if assigned.is_none() {
                    return Some(p.clone());
                }
                let kept: Vec<String> = p.apis.iter().filter(|a| serves(a)).cloned().collect();
                (!kept.is_empty()).then(|| Product {
                    apis: kept,
                    ..p.clone()
                })
            })
            .collect();
        let subscriptions = self
            .subscriptions()
            .filter(|s| {
                if assigned.is_none() {
                    return true;
                }
                match scope_target(&s.scope) {
                    Some(ScopeTarget::All) => true,
                    Some(ScopeTarget::Api(a)) => serves(a),
                    Some(ScopeTarget::Product(p)) => products.iter().any(|k| k.id == p),
                    None => false,
                }
            })
            .map(|s| Subscription {
                id: s.id.clone(),
                display_name: s.display_name.clone(),
                scope: s.scope.clone(),
                primary_key: s.primary_key.clone(),
                secondary_key: s.secondary_key.clone(),
                state: s.state,
            })
            .collect();
        let mut snapshot = Snapshot {
            revision: self.revision,
            apis,
            backends: self.backends().cloned().collect(),
            named_values: self.named_values().cloned().collect(),
            subscriptions,
            products,
            policy: self.global_policy.as_ref().map(|p| p.xml.clone()),
            fragments: self.fragments().collect(),
            certificates: Vec::new(),
            ca_certificates: self.ca_docs().map(snapshot_ca).collect(),
            hostnames: Vec::new(),
            version_sets: self.version_sets().cloned().collect(),
            // The gateway's own, password included: the snapshot is signed and
            // read only with the gateway's token.
            store: gateway.and_then(|g| g.store.clone()),
            store_id: None,
            digest: None,
        };
        match gateway {
            // A candidate: every certificate, so backends' references are checked;
            // hostnames are checked per gateway (`hostnames_snapshot`).
            None => {
                snapshot.certificates = self.certificate_docs().map(snapshot_certificate).collect();
            }
            Some(gateway) => {
                snapshot.hostnames = self.hostnames_of(&gateway.id).cloned().collect();
                snapshot.certificates = self.certificates_for(&snapshot);
            }
        }
        snapshot
    }

    /// The certificates a gateway's snapshot needs: those of its hostnames, its
    /// backends' client certificates, and any whose id or thumbprint a policy
    /// document, fragment or named value it serves mentions (for
    /// `authentication-certificate`; a plain search: a spare certificate costs
    /// little, a missing one breaks a call).
    fn certificates_for(&self, snapshot: &Snapshot) -> Vec<Certificate> {
        let mut wanted: BTreeSet<&str> = snapshot
            .hostnames
            .iter()
            .map(|h| h.certificate_id.as_str())
            .collect();
        for b in &snapshot.backends {
            if let Some(id) = b
                .tls
                .as_ref()
                .and_then(|t| t.client_certificate_id.as_deref())
            {
                wanted.insert(id);
            }
        }
        let mut texts: Vec<&str> = Vec::new();
        texts.extend(snapshot.policy.as_deref());
        for p in &snapshot.products {
            texts.extend(p.policy.as_deref());
        }
        for a in &snapshot.apis {
            texts.extend(a.policy.as_deref());
            texts.extend(a.operations.iter().filter_map(|o| o.policy.as_deref()));
        }
        texts.extend(snapshot.fragments.iter().map(|f| f.policy.as_str()));
        texts.extend(snapshot.named_values.iter().map(|n| n.value.as_str()));
        self.certificate_docs()
            .filter(|c| {
                wanted.contains(c.id.as_str())
                    || texts.iter().any(|t| {
                        t.contains(c.id.as_str()) || contains_ignore_case(t, &c.info.thumbprint)
                    })
            })
            .map(snapshot_certificate)
            .collect()
    }
}

/// What a subscription scope opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeTarget<'a> {
    /// `/apis`: every API.
    All,
    /// `/apis/{id}`.
    Api(&'a str),
    /// `/products/{id}`.
    Product(&'a str),
}

/// Reads a subscription scope the way the core does.
pub(crate) fn scope_target(scope: &str) -> Option<ScopeTarget<'_>> {
    let scope = scope.trim_end_matches('/');
    if scope == "/apis" {
        Some(ScopeTarget::All)
    } else if let Some(id) = scope.strip_prefix("/apis/") {
        Some(ScopeTarget::Api(id))
    } else {
        scope.strip_prefix("/products/").map(ScopeTarget::Product)
    }
}

/// The user id in an owner reference: `u1` or APIM's `/users/u1`.
pub(crate) fn owner_user(owner: &str) -> &str {
    owner.strip_prefix("/users/").unwrap_or(owner)
}

/// A certificate as a snapshot carries it: the chain and the key in the clear
/// (the snapshot is signed, sent over the gateway's authenticated channel and
/// sealed in its backup).
fn snapshot_certificate(doc: &CertificateDoc) -> Certificate {
    Certificate {
        id: doc.id.clone(),
        certificate_pem: doc.certificate_pem.clone(),
        private_key_pem: doc.private_key_pem.clone(),
    }
}

fn snapshot_ca(doc: &CaCertificateDoc) -> CaCertificate {
    CaCertificate {
        id: doc.id.clone(),
        certificate_pem: doc.certificate_pem.clone(),
        crl_pem: doc.crl_pem.clone(),
    }
}

/// Whether `text` holds `needle` in any ASCII case (thumbprints are written either way).
fn contains_ignore_case(text: &str, needle: &str) -> bool {
    !needle.is_empty()
        && text
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}
