//! Snapshot validation; also yields the parsed upstreams and router so compiling does not redo it.

use std::collections::{HashMap, HashSet};

use super::compiled::{key_digest, SubScope, SubscriptionRef};
use super::{
    Api, ApiProblem, ConfigError, EntityProblem, OperationProblem, ServiceUrl, Snapshot,
    SubscriptionProblem,
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
        let parsed = service_url::parse(&backend.url).map_err(|reason| {
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
    }

    // Paths, hostnames, methods, templates and duplicates are checked by the
    // router builder itself, so what validates is exactly what routes.
    let router = Router::new(&snapshot.apis)?;
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
fn check_id(id: &str) -> Result<(), &'static str> {
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
        (Some(service_url), None) => service_url::parse(service_url).map_err(|reason| {
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
