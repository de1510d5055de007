//! Checking a policy fragment on its own: the core compiles fragments only where a
//! document includes them, so an unused fragment is tried in each section.

use portcullis_core::config::{ConfigError, PolicyFragment};
use portcullis_core::policy::compile::{compile_document, CompileEnv};
use portcullis_core::policy::error::PolicyError;
use portcullis_core::policy::program::{Document, Level};
use portcullis_core::policy::xml::Pos;

use super::state::State;
use super::Kind;

/// The sections a fragment may be meant for.
const SECTIONS: [&str; 4] = ["inbound", "backend", "outbound", "on-error"];

/// The compile environment of `state`: its named values and fragments.
pub(crate) struct Env {
    named: Vec<(String, String, bool)>,
    fragments: Vec<PolicyFragment>,
}

impl Env {
    /// Copies what documents of `state` may refer to.
    pub(crate) fn of(state: &State) -> Env {
        Env {
            named: state
                .named_values()
                .map(|n| (n.name.clone(), n.value.clone(), n.secret))
                .collect(),
            fragments: state.fragments().collect(),
        }
    }

    /// The core's view of it.
    pub(crate) fn compile_env(&self) -> CompileEnv<'_> {
        CompileEnv {
            named_values: self
                .named
                .iter()
                .map(|(n, v, s)| (n.as_str(), (v.as_str(), *s)))
                .collect(),
            fragments: self
                .fragments
                .iter()
                .map(|f| (f.id.as_str(), f.policy.as_str()))
                .collect(),
        }
    }
}

/// Fragment `id` compiled on its own, included by a one-line document in the first
/// section it compiles in; otherwise the error of the first section.
pub(crate) fn probe(env: &CompileEnv<'_>, id: &str) -> Result<Document, PolicyError> {
    let mut first = None;
    for section in SECTIONS {
        let probe = format!(
            r#"<policies><{section}><include-fragment fragment-id="{id}" /></{section}></policies>"#
        );
        match compile_document(&probe, Level::Api, env) {
            Ok(doc) => return Ok(doc),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    // `first` is set: SECTIONS is not empty. The fallback only avoids a panic path.
    Err(first.unwrap_or_else(|| PolicyError {
        pos: Pos { line: 1, column: 1 },
        policy: "fragment".to_owned(),
        message: "does not compile".to_owned(),
    }))
}

/// Accepts fragment `id` of `state` if it compiles in at least one section and every
/// backend it names exists; otherwise the error, positioned in the fragment's own text.
pub(crate) fn check(state: &State, id: &str) -> Result<(), ConfigError> {
    let env = Env::of(state);
    let env = env.compile_env();
    probe(&env, id)
        .and_then(|doc| {
            doc.check_backends(|b| state.get(Kind::Backend, b).is_some())
                .map_err(|e| env.redact(e))
        })
        .map_err(|e| ConfigError::Policy {
            owner: format!("policy fragment `{id}`"),
            error: unwrap_include(id, e),
        })
}

/// The core reports a fragment's error at the `<include-fragment>` element, with the
/// position inside the fragment in the message: `in fragment 'f' at line 3, column 5:
/// <rate-limit>: reason` or `fragment 'f' at line 1, column 9: reason`. Takes that apart
/// so the error points into the fragment; anything else is kept as it is.
fn unwrap_include(id: &str, err: PolicyError) -> PolicyError {
    let parse = |message: &str| -> Option<PolicyError> {
        let (rest, nested) = match message.strip_prefix(&format!("in fragment '{id}' at line ")) {
            Some(rest) => (rest, true),
            None => (
                message.strip_prefix(&format!("fragment '{id}' at line "))?,
                false,
            ),
        };
        let (line, rest) = rest.split_once(", column ")?;
        let (column, rest) = rest.split_once(": ")?;
        let pos = Pos {
            line: line.parse().ok()?,
            column: column.parse().ok()?,
        };
        let (policy, message) = if nested {
            let rest = rest.strip_prefix('<')?;
            let (policy, message) = rest.split_once(">: ")?;
            (policy.to_owned(), message.to_owned())
        } else {
            ("fragment".to_owned(), rest.to_owned())
        };
        Some(PolicyError {
            pos,
            policy,
            message,
        })
    };
    parse(&err.message).unwrap_or(err)
}
