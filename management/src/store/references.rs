//! Who names an entity in a policy document: what a delete of a backend, fragment or
//! named value still used by a policy must name in its 409.

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
        _ => return Vec::new(),
    };
    let env = fragment::Env::of(state);
    let env = env.compile_env();
    let mut out = Vec::new();
    for (owner, level, xml) in documents(state) {
        if !may_name(&xml, id) {
            continue;
        }
        // Stored documents compiled when they were stored; one that no longer does
        // names nothing usable.
        let Ok(doc) = compile_document(&xml, level, &env) else {
            continue;
        };
        for r in doc.references() {
            if r.kind == wanted && r.id == id && r.fragment.is_none() {
                push(
                    &mut out,
                    format!("the policy of {owner} ({}, line {})", r.policy, r.pos.line),
                );
            }
        }
    }
    for f in state.fragments() {
        if !may_name(&f.policy, id) {
            continue;
        }
        let Ok(doc) = fragment::probe(&env, &f.id) else {
            continue;
        };
        for r in doc.references() {
            match &r.fragment {
                Some((inner, pos)) if *inner == f.id && r.kind == wanted && r.id == id => push(
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
