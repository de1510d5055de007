//! Checking a policy fragment on its own: the core compiles fragments only where a
//! document includes them, so an unused fragment is tried in each section.

use portcullis_core::config::ConfigError;
use portcullis_core::policy::compile::{compile_document, CompileEnv};
use portcullis_core::policy::error::PolicyError;
use portcullis_core::policy::program::Level;
use portcullis_core::policy::xml::Pos;

use super::state::State;

/// The sections a fragment may be meant for.
const SECTIONS: [&str; 4] = ["inbound", "backend", "outbound", "on-error"];

/// Accepts fragment `id` of `state` if it compiles in at least one section; otherwise
/// the error of the first section, positioned in the fragment's own text.
pub(crate) fn check(state: &State, id: &str) -> Result<(), ConfigError> {
    let named: Vec<(String, String, bool)> = state
        .named_values()
        .map(|n| (n.name.clone(), n.value.clone(), n.secret))
        .collect();
    let fragments: Vec<_> = state.fragments().collect();
    let env = CompileEnv {
        named_values: named
            .iter()
            .map(|(n, v, s)| (n.as_str(), (v.as_str(), *s)))
            .collect(),
        fragments: fragments
            .iter()
            .map(|f| (f.id.as_str(), f.policy.as_str()))
            .collect(),
    };
    let mut first = None;
    for section in SECTIONS {
        let probe = format!(
            r#"<policies><{section}><include-fragment fragment-id="{id}" /></{section}></policies>"#
        );
        match compile_document(&probe, Level::Api, &env) {
            Ok(_) => return Ok(()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Err(ConfigError::Policy {
            owner: format!("policy fragment `{id}`"),
            error: unwrap_include(id, e),
        }),
        None => Ok(()),
    }
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
