//! `wait`: runs its immediate children in parallel and completes when all of
//! them did (`for="all"`, the default) or the first did (`for="any"`; the others
//! are cancelled). APIM allows only `send-request`, `cache-lookup-value` and
//! `choose` as children; anything else is a compile error.
//!
//! A `wait` whose children are all `send-request` compiles to one
//! [`WaitCalls`]: the calls leave together (`Step::CallAll`) and are in flight
//! at once. A `wait` with `choose` or `cache-lookup-value` children runs them one
//! after the other (each waits for one thing at a time), which for `any` means
//! the first child is the one waited for.

use super::actions::Action;
use super::attrs;
use super::error::PolicyError;
use super::program::Op;
use super::send::SendRequest;
use super::xml::Element;

/// The children APIM allows in `wait`.
const CHILDREN: &[&str] = &["send-request", "cache-lookup-value", "choose"];

/// Several `send-request`s in flight at once.
#[derive(Debug, Clone)]
pub struct WaitCalls {
    /// The calls, in document order.
    pub sends: Vec<SendRequest>,
    /// Each call's origin in its document (a failure names its `send-request`).
    pub origins: Vec<u32>,
    /// `for="any"`: go on at the first answer.
    pub any: bool,
}

/// Checks `<wait>`'s attribute and children; `Ok(true)` for `for="any"`.
pub fn check(el: &Element) -> Result<bool, PolicyError> {
    attrs::only(el, &["for"])?;
    attrs::only_children(el, CHILDREN).map_err(|e| PolicyError {
        message: format!(
            "{} (wait may contain only send-request, cache-lookup-value and choose)",
            e.message
        ),
        ..e
    })?;
    match el.attr("for").map(str::trim) {
        None | Some("all") => Ok(false),
        Some("any") => Ok(true),
        Some(other) => Err(PolicyError::at(
            el,
            format!("for must be all or any, not '{other}'"),
        )),
    }
}

/// The children of a `wait` compiled into `ops[start..]` as one [`WaitCalls`]
/// (taken out of `ops`) when they are all `send-request`s (at least two: one
/// call is in flight alone anyway); else `None`, the ops left as they are.
pub(crate) fn parallel(ops: &mut Vec<Op>, start: usize, any: bool) -> Option<Action> {
    let children = ops.get(start..)?;
    let all_calls = children.len() > 1
        && children
            .iter()
            .all(|op| matches!(op, Op::Act(a, _) if matches!(&**a, Action::Send(s) if !s.one_way)));
    if !all_calls {
        return None;
    }
    let (sends, origins) = ops
        .drain(start..)
        .filter_map(|op| match op {
            Op::Act(a, origin) => match *a {
                Action::Send(s) => Some((s, origin)),
                _ => None,
            },
            _ => None,
        })
        .unzip();
    Some(Action::WaitCalls(Box::new(WaitCalls {
        sends,
        origins,
        any,
    })))
}
