//! The in-memory view of the database, and the snapshots built from it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use portcullis_core::config::{
    Api, Backend, NamedValue, PolicyFragment, Product, Snapshot, Subscription,
};

use super::docs::{Doc, GatewayDoc, SubscriptionDoc};
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
            Kind::Subscription | Kind::NamedValue | Kind::Fragment | Kind::Gateway => {}
        }
        out
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
        let apis: Vec<Api> = self.apis().filter(|a| serves(&a.id)).cloned().collect();
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
        Snapshot {
            revision: self.revision,
            apis,
            backends: self.backends().cloned().collect(),
            named_values: self.named_values().cloned().collect(),
            subscriptions,
            products,
            policy: self.global_policy.as_ref().map(|p| p.xml.clone()),
            fragments: self.fragments().collect(),
            // Filled in by the certificate work (issue 17): the certificates and
            // CAs a gateway needs, and its custom hostnames.
            certificates: Vec::new(),
            ca_certificates: Vec::new(),
            hostnames: Vec::new(),
            store_id: None,
            digest: None,
        }
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
