//! Who names an entity in a policy document: what a delete of a backend, fragment,
//! named value or certificate still used by a policy must name in its 409.

use portcullis_core::policy::compile::compile_document;
use portcullis_core::policy::program::{Level, RefKind};

use super::docs::Doc;
use super::fragment;
use super::state::State;
use super::Kind;

/// The policy documents and fragments of `state` that name entity `kind`/`id`, as
/// `the policy of api 'echo' (set-backend-service, line 4)`; empty for kinds a policy
/// cannot name. A reference made inside a fragment is reported once, as the
/// fragment's, not again for every document including it.
pub(crate) fn policy_referrers(state: &State, kind: Kind, id: &str) -> Vec<String> {
    let wanted = match kind {
        Kind::Backend => RefKind::Backend,
        Kind::Fragment => RefKind::Fragment,
        Kind::NamedValue => RefKind::NamedValue,
        Kind::Certificate => RefKind::Certificate,
        _ => return Vec::new(),
    };
    // `authentication-certificate` names a certificate by id or by thumbprint.
    let thumbprint = match state.get(Kind::Certificate, id).map(|s| s.doc.clone()) {
        Some(doc) if kind == Kind::Certificate => match &*doc {
            Doc::Certificate(c) => Some(c.info.thumbprint.clone()),
            _ => None,
        },
        _ => None,
    };
    let names = |r: &portcullis_core::policy::program::Reference| {
        (r.kind == wanted && r.id == id)
            || (r.kind == RefKind::CertificateThumbprint
                && thumbprint
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(&r.id)))
    };
    let may_name = |xml: &str| {
        may_name(xml, id)
            || thumbprint
                .as_deref()
                .is_some_and(|t| xml.to_ascii_uppercase().contains(t))
    };
    let env = fragment::Env::of(state);
    let env = env.compile_env();
    let mut out = Vec::new();
    for (owner, level, xml) in documents(state) {
        if !may_name(&xml) {
            continue;
        }
        // Stored documents compiled when they were stored; one that no longer does
        // names nothing usable.
        let Ok(doc) = compile_document(&xml, level, &env) else {
            continue;
        };
        for r in doc.references() {
            if names(r) && r.fragment.is_none() {
                push(
                    &mut out,
                    format!("the policy of {owner} ({}, line {})", r.policy, r.pos.line),
                );
            }
        }
    }
    for f in state.fragments() {
        if !may_name(&f.policy) {
            continue;
        }
        let Ok(doc) = fragment::probe(&env, &f.id) else {
            continue;
        };
        for r in doc.references() {
            match &r.fragment {
                Some((inner, pos)) if *inner == f.id && names(r) => push(
                    &mut out,
                    format!(
                        "policy fragment '{}' ({}, line {})",
                        f.id, r.policy, pos.line
                    ),
                ),
                _ => {}
            }
        }
    }
    out
}

/// Whether `xml` can name `id` at all: it says so literally, or through a named value.
fn may_name(xml: &str, id: &str) -> bool {
    xml.contains(id) || xml.contains("{{")
}

fn push(out: &mut Vec<String>, referrer: String) {
    if !out.contains(&referrer) {
        out.push(referrer);
    }
}

/// Every stored policy document: (owner for messages, scope, XML).
fn documents(state: &State) -> Vec<(String, Level, String)> {
    let mut out = Vec::new();
    if let Some(p) = &state.global_policy {
        out.push(("the global scope".to_owned(), Level::Global, p.xml.clone()));
    }
    for (id, stored) in state.all(Kind::Product) {
        if let Doc::Product(p) = &*stored.doc {
            if let Some(xml) = &p.policy {
                out.push((format!("product '{id}'"), Level::Product, xml.clone()));
            }
        }
    }
    for (id, stored) in state.all(Kind::Api) {
        if let Doc::Api(api) = &*stored.doc {
            if let Some(xml) = &api.policy {
                out.push((format!("api '{id}'"), Level::Api, xml.clone()));
            }
            for op in &api.operations {
                if let Some(xml) = &op.policy {
                    out.push((
                        format!("api '{id}' operation '{}'", op.id),
                        Level::Operation,
                        xml.clone(),
                    ));
                }
            }
        }
    }
    out
}
