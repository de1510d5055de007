//! A snapshot compiled for serving: validated, upstreams parsed, router built.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use super::backend_tls::TlsIndex;
use super::{validate, Api, ConfigError, Operation, ServiceUrl, Snapshot, SubscriptionState};
use crate::http::UpstreamTls;
use crate::http::Url;
use crate::policy::auth_cert::TlsLookup;
use crate::policy::cert_store::CertificateStore;
use crate::policy::compile::{compile_document, CompileEnv};
use crate::policy::context::{ApiInfo, OperationInfo, ProductInfo, SubscriptionInfo};
use crate::policy::pipeline::Chain;
use crate::policy::program::{Document, Level};
use crate::router::Router;

/// Everything derived from one snapshot that requests need; built once, then read-only.
///
/// API and operation indices in route matches refer to this snapshot, so a request
/// must keep using the `CompiledConfig` it was routed with (the adapters hold it in
/// an `Arc` and swap in a new one atomically).
#[derive(Debug)]
pub struct CompiledConfig {
    snapshot: Snapshot,
    upstreams: Vec<ServiceUrl>,
    keys: KeyIndex,
    router: Router,
    policies: PolicySet,
    /// Every backend's parsed URL, by id.
    backends: HashMap<String, ServiceUrl>,
    /// The CAs, CRLs and certificates as client-certificate checks use them,
    /// parsed once per revision.
    certificates: Arc<CertificateStore>,
    /// Backend TLS settings and the certificates presentable to backends.
    tls: TlsIndex,
}

/// What a subscription opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubScope {
    /// Every API.
    All,
    /// One API (index).
    Api(usize),
    /// The APIs of one product (index).
    Product(usize),
}

/// Where a subscription key leads: the subscription and what it opens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubscriptionRef {
    /// Index in `Snapshot::subscriptions`.
    pub(crate) index: usize,
    /// What it opens.
    pub(crate) scope: SubScope,
}

/// Subscriptions by the SHA-256 of their keys, so looking a key up takes the
/// same time whatever it shares with a real key; its `Debug` prints no keys.
pub(crate) struct KeyIndex(pub(crate) HashMap<[u8; 32], SubscriptionRef>);

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyIndex({} keys)", self.0.len())
    }
}

/// The SHA-256 digest a key is indexed by.
pub(crate) fn key_digest(key: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The outcome of checking a subscription key against an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// The key belongs to this active subscription (index in `Snapshot::subscriptions`),
    /// which opens the API, through `product` when it is product-scoped.
    Valid {
        /// Index of the subscription.
        subscription: usize,
        /// Index of the product the subscription is for, if any.
        product: Option<usize>,
        /// The request used the secondary key.
        secondary: bool,
    },
    /// Unknown key, inactive subscription, or a scope that does not include the API.
    Invalid,
}

/// The compiled policy documents and the facts `context` shows, per scope.
#[derive(Debug, Default)]
struct PolicySet {
    global: Option<Arc<Document>>,
    products: Vec<Option<Arc<Document>>>,
    apis: Vec<Option<Arc<Document>>>,
    operations: Vec<Vec<Option<Arc<Document>>>>,
    api_info: Vec<Arc<ApiInfo>>,
    operation_info: Vec<Vec<Arc<OperationInfo>>>,
    product_info: Vec<Arc<ProductInfo>>,
    /// Per subscription: `context.Subscription` with the primary, then the secondary key.
    subscription_info: Vec<[Arc<SubscriptionInfo>; 2]>,
    /// Per API, the products containing it.
    api_products: Vec<Vec<usize>>,
    /// Per API, an open product (no subscription needed) containing it.
    open_product: Vec<Option<usize>>,
}

impl CompiledConfig {
    /// Validates `snapshot`, resolves every API's upstream, builds the router and
    /// compiles every policy document.
    pub fn compile(snapshot: Snapshot) -> Result<CompiledConfig, ConfigError> {
        let checked = validate::check(&snapshot)?;
        let certificates = Arc::new(certificate_store(&snapshot));
        let tls = TlsIndex::build(&snapshot, &checked.upstreams);
        let policies = compile_policies(&snapshot, &checked.upstreams, &tls)?;
        Ok(CompiledConfig {
            snapshot,
            upstreams: checked.upstreams,
            keys: KeyIndex(checked.keys),
            router: checked.router,
            policies,
            backends: checked.backends,
            certificates,
            tls,
        })
    }

    /// The snapshot's revision.
    pub fn revision(&self) -> u64 {
        self.snapshot.revision
    }

    /// The snapshot this was compiled from.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The API at `idx` (`RouteMatch::api as usize`).
    ///
    /// # Panics
    /// If `idx` does not come from this configuration's router.
    pub fn api(&self, idx: usize) -> &Api {
        &self.snapshot.apis[idx]
    }

    /// Operation `op` of API `api` (from `RouteMatch::api` and `RouteMatch::operation`).
    ///
    /// # Panics
    /// If the indices do not come from this configuration's router.
    pub fn operation(&self, api: usize, op: usize) -> &Operation {
        &self.api(api).operations[op]
    }

    /// The upstream of API `api_idx`: its `serviceUrl`, or its backend's URL.
    ///
    /// # Panics
    /// If `api_idx` does not come from this configuration's router.
    pub fn upstream(&self, api_idx: usize) -> &ServiceUrl {
        &self.upstreams[api_idx]
    }

    /// The parsed URL of backend `id`.
    pub fn backend_url(&self, id: &str) -> Option<&ServiceUrl> {
        // Any backend of the snapshot, whether or not an API names it.
        self.backends.get(id)
    }

    /// The TLS settings of API `api_idx`'s backend entity, if it has some.
    pub fn upstream_tls(&self, api_idx: usize) -> Option<&Arc<UpstreamTls>> {
        self.tls.api_tls(api_idx)
    }

    /// The pool key of API `api_idx`'s upstream with its TLS settings.
    ///
    /// # Panics
    /// If `api_idx` does not come from this configuration's router.
    pub fn upstream_pool_key(&self, api_idx: usize) -> &Arc<str> {
        self.tls
            .api_pool_key(api_idx)
            .unwrap_or(&self.upstreams[api_idx].pool_key)
    }

    /// Backend TLS settings and certificates, as policies look them up.
    pub fn tls_lookup(&self) -> &dyn TlsLookup {
        &self.tls
    }

    /// Whether `key` opens API `api_idx`, and through which product.
    pub fn check_key(&self, api_idx: usize, key: &[u8]) -> KeyCheck {
        let Some(found) = self.keys.0.get(&key_digest(key)) else {
            return KeyCheck::Invalid;
        };
        let sub = &self.snapshot.subscriptions[found.index];
        // The digest matched; compare the key itself too, in constant time.
        let primary = constant_time_eq(sub.primary_key.as_bytes(), key);
        let secondary = constant_time_eq(sub.secondary_key.as_bytes(), key);
        if !(primary || secondary) || sub.state != SubscriptionState::Active {
            return KeyCheck::Invalid;
        }
        let (in_scope, product) = match found.scope {
            SubScope::All => (true, None),
            // A subscription to an API opens its revisions too.
            SubScope::Api(api) => (
                api == api_idx
                    || self.snapshot.apis[api_idx].api_revision_of.as_deref()
                        == Some(self.snapshot.apis[api].id.as_str()),
                None,
            ),
            SubScope::Product(p) => (self.policies.api_products[api_idx].contains(&p), Some(p)),
        };
        if in_scope {
            KeyCheck::Valid {
                subscription: found.index,
                product,
                secondary: !primary,
            }
        } else {
            KeyCheck::Invalid
        }
    }

    /// A product that contains API `api_idx` and needs no subscription, if any:
    /// such an API can be called without a key.
    pub fn open_product(&self, api_idx: usize) -> Option<usize> {
        self.policies.open_product[api_idx]
    }

    /// The router over this snapshot's APIs.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The policy documents that apply to a request (`None` scopes inherit).
    pub fn chain(&self, api: usize, operation: usize, product: Option<usize>) -> Chain {
        let p = &self.policies;
        Chain {
            docs: [
                p.global.clone(),
                product.and_then(|i| p.products[i].clone()),
                p.apis[api].clone(),
                p.operations[api][operation].clone(),
            ],
        }
    }

    /// Whether no policy document applies to any request of API `api`,
    /// operation `operation` whatever the product.
    pub fn policy_free(&self, api: usize, operation: usize) -> bool {
        let p = &self.policies;
        p.global.is_none()
            && p.apis[api].is_none()
            && p.operations[api][operation].is_none()
            && p.api_products[api].iter().all(|&i| p.products[i].is_none())
    }

    /// The `<openid-config url>` of every `validate-jwt` policy, deduplicated:
    /// what the adapter must fetch key sets for.
    pub fn openid_urls(&self) -> Vec<String> {
        let p = &self.policies;
        let docs = p
            .global
            .iter()
            .chain(p.products.iter().flatten())
            .chain(p.apis.iter().flatten())
            .chain(p.operations.iter().flatten().flatten());
        let mut urls: Vec<String> = Vec::new();
        for doc in docs {
            for section in doc.sections.iter().flatten() {
                for op in &section.ops {
                    if let crate::policy::program::Op::Act(a, _) = op {
                        if let crate::policy::actions::Action::ValidateJwt(v) = &**a {
                            for u in v.openid_urls() {
                                if !urls.contains(u) {
                                    urls.push(u.clone());
                                }
                            }
                        }
                    }
                }
            }
        }
        urls
    }

    /// `context.Api` of API `api`.
    pub fn api_info(&self, api: usize) -> &Arc<ApiInfo> {
        &self.policies.api_info[api]
    }

    /// `context.Operation` of an operation.
    pub fn operation_info(&self, api: usize, operation: usize) -> &Arc<OperationInfo> {
        &self.policies.operation_info[api][operation]
    }

    /// `context.Subscription` of subscription `index` used with its primary or
    /// secondary key (built once per configuration, shared by requests).
    pub fn subscription_info(&self, index: usize, secondary: bool) -> &Arc<SubscriptionInfo> {
        &self.policies.subscription_info[index][usize::from(secondary)]
    }

    /// The revision's trust anchors, revocation lists and certificates.
    pub fn certificate_store(&self) -> &Arc<CertificateStore> {
        &self.certificates
    }

    /// `context.Product` of product `product`.
    pub fn product_info(&self, product: usize) -> &Arc<ProductInfo> {
        &self.policies.product_info[product]
    }
}

/// The snapshot's CAs (with their CRLs) and certificates, parsed for
/// client-certificate checks; what cannot be read is logged and left out.
fn certificate_store(snapshot: &Snapshot) -> CertificateStore {
    let (store, skipped) = CertificateStore::build(
        snapshot.ca_certificates.iter().map(|c| {
            (
                c.id.as_str(),
                c.certificate_pem.as_str(),
                c.crl_pem.as_deref(),
            )
        }),
        snapshot
            .certificates
            .iter()
            .map(|c| (c.id.as_str(), c.certificate_pem.as_str())),
    );
    for s in skipped {
        tracing::warn!(revision = snapshot.revision, "left out: {s}");
    }
    store
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn compile_policies(
    snapshot: &Snapshot,
    upstreams: &[ServiceUrl],
    tls: &TlsIndex,
) -> Result<PolicySet, ConfigError> {
    let mut env = CompileEnv::default();
    for nv in &snapshot.named_values {
        env.named_values
            .insert(nv.name.as_str(), (nv.value.as_str(), nv.secret));
    }
    for f in &snapshot.fragments {
        env.fragments.insert(f.id.as_str(), f.policy.as_str());
    }
    let backends: HashSet<&str> = snapshot.backends.iter().map(|b| b.id.as_str()).collect();
    let doc = |src: &Option<String>,
               level: Level,
               owner: &dyn Fn() -> String|
     -> Result<Option<Arc<Document>>, ConfigError> {
        match src.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            // A document that changes nothing is dropped, so requests it
            // covers keep the proxy's fast path.
            Some(xml) => compile_document(xml, level, &env)
                // Found at load time, not as a failure of every request reaching it.
                .and_then(|d| {
                    d.check_backends(|id| backends.contains(id))
                        .and_then(|()| d.check_certificates(|r| tls.certificate(r).is_some()))
                        .map_err(|e| env.redact(e))
                        .map(|()| d)
                })
                .map(|d| (!d.is_passthrough()).then(|| Arc::new(d)))
                .map_err(|error| ConfigError::Policy {
                    owner: owner(),
                    error,
                }),
        }
    };
    let mut set = PolicySet {
        global: doc(&snapshot.policy, Level::Global, &|| "global".into())?,
        ..Default::default()
    };
    for p in &snapshot.products {
        set.products.push(doc(&p.policy, Level::Product, &|| {
            format!("product `{}`", p.id)
        })?);
        set.product_info.push(Arc::new(ProductInfo {
            id: p.id.clone(),
            name: if p.display_name.is_empty() {
                p.id.clone()
            } else {
                p.display_name.clone()
            },
        }));
    }
    for s in &snapshot.subscriptions {
        let info = |key: &str| {
            Arc::new(SubscriptionInfo {
                id: s.id.clone(),
                name: if s.display_name.is_empty() {
                    s.id.clone()
                } else {
                    s.display_name.clone()
                },
                key: key.to_string(),
                primary_key: s.primary_key.clone(),
                secondary_key: s.secondary_key.clone(),
            })
        };
        set.subscription_info
            .push([info(&s.primary_key), info(&s.secondary_key)]);
    }
    for (i, api) in snapshot.apis.iter().enumerate() {
        set.apis.push(doc(&api.policy, Level::Api, &|| {
            format!("api `{}`", api.id)
        })?);
        let mut ops = Vec::with_capacity(api.operations.len());
        let mut infos = Vec::with_capacity(api.operations.len());
        for op in &api.operations {
            ops.push(doc(&op.policy, Level::Operation, &|| {
                format!("api `{}` operation `{}`", api.id, op.id)
            })?);
            infos.push(Arc::new(OperationInfo {
                id: op.id.clone(),
                name: if op.display_name.is_empty() {
                    op.id.clone()
                } else {
                    op.display_name.clone()
                },
                method: op.method.clone(),
                url_template: op.url_template.clone(),
                contract: None,
            }));
        }
        set.operations.push(ops);
        set.operation_info.push(infos);
        let up = &upstreams[i];
        set.api_info.push(Arc::new(ApiInfo {
            id: api.id.clone(),
            name: if api.display_name.is_empty() {
                api.id.clone()
            } else {
                api.display_name.clone()
            },
            path: api.normalized_path().to_string(),
            service_url: Url {
                scheme: up.scheme.as_str().to_string(),
                host: up.host.to_string(),
                port: up.port,
                path: up.base_path.clone(),
                query: Vec::new(),
            },
            subscription_key_required: api.subscription_required,
        }));
        let products: Vec<usize> = snapshot
            .products
            .iter()
            .enumerate()
            .filter(|(_, p)| p.apis.iter().any(|a| a == api.revision_base()))
            .map(|(j, _)| j)
            .collect();
        set.open_product.push(
            products
                .iter()
                .copied()
                .find(|&j| !snapshot.products[j].subscription_required),
        );
        set.api_products.push(products);
    }
    attach_contracts(snapshot, &mut set)?;
    Ok(set)
}

/// Compiles each API's OpenAPI document into its operations' contracts (with
/// JSON Schemas only when a validation policy is configured somewhere) and
/// hands them to `context.Operation`.
fn attach_contracts(snapshot: &Snapshot, set: &mut PolicySet) -> Result<(), ConfigError> {
    use crate::policy::validate::contract;
    if snapshot.apis.iter().all(|a| a.openapi.is_none()) {
        return Ok(());
    }
    let mut needs = contract::Needs::default();
    let docs = set
        .global
        .iter()
        .chain(set.products.iter().flatten())
        .chain(set.apis.iter().flatten())
        .chain(set.operations.iter().flatten().flatten());
    for doc in docs {
        for section in doc.sections.iter().flatten() {
            for op in &section.ops {
                if let crate::policy::program::Op::Act(a, _) = op {
                    if let crate::policy::actions::Action::Validate(v) = &**a {
                        needs.schemas = true;
                        for variant in v.variants() {
                            if !needs.variants.contains(&variant) {
                                needs.variants.push(variant);
                            }
                        }
                    }
                }
            }
        }
    }
    for (i, api) in snapshot.apis.iter().enumerate() {
        let Some(document) = &api.openapi else {
            continue;
        };
        let keys: Vec<contract::OperationKey<'_>> = api
            .operations
            .iter()
            .map(|op| contract::OperationKey {
                method: &op.method,
                url_template: &op.url_template,
            })
            .collect();
        let contracts = match contract::compile(document, &keys, &needs) {
            Ok(contracts) => contracts,
            // Without a validation policy the contract only feeds
            // mock-response's examples: a document imported before contracts
            // existed (or using what they cannot read) must not stop a
            // configuration from loading; its API just has no contract.
            Err(error) if !needs.schemas => {
                tracing::debug!(api = %api.id, %error, "the API's OpenAPI document gives no contract");
                continue;
            }
            Err(error) => {
                return Err(ConfigError::Contract {
                    api: api.id.clone(),
                    error,
                })
            }
        };
        for (j, c) in contracts.into_iter().enumerate() {
            if c.is_some() {
                let info = &mut set.operation_info[i][j];
                let mut with = OperationInfo::clone(info);
                with.contract = c;
                *info = Arc::new(with);
            }
        }
    }
    Ok(())
}
