//! A CORS preflight's run: APIM evaluates only the `cors` policies on a
//! preflight `OPTIONS` (wherever they sit in the effective inbound section:
//! global, product, API or operation scope, through `<base />`); the other
//! policies run on the request the browser sends once it is approved. So a
//! preflight pipeline follows `<base />` and jumps, skips every other policy
//! without evaluating it, and answers an empty 200 when inbound ends with no
//! `cors` having answered (APIM's answer when no `cors` matches).

use super::super::actions::Action;
use super::super::context::Response;
use super::super::program::{Op, SectionKind};
use super::Chain;

impl Chain {
    /// Whether any document has a `cors` policy in its inbound section: a
    /// preflight without one is not answered (404, as for a request no
    /// operation takes).
    pub fn has_cors(&self) -> bool {
        self.docs.iter().flatten().any(|d| {
            d.section(SectionKind::Inbound)
                .is_some_and(|s| s.ops.iter().any(is_cors))
        })
    }
}

fn is_cors(op: &Op) -> bool {
    matches!(op, Op::Act(a, _) if matches!(**a, Action::Cors(_)))
}

/// What a preflight run does with one op.
pub(super) enum Filter {
    /// Run it (`<base />`, an unconditional jump, `cors`).
    Run,
    /// Skip it: any other policy, a retry's end.
    Skip,
    /// Go to this op without evaluating the condition: a `choose`'s conditions
    /// are taken as false, unevaluated.
    Jump(u32),
}

/// The op's fate in a preflight run.
pub(super) fn filter(op: &Op) -> Filter {
    match op {
        Op::Base | Op::Jump(_) => Filter::Run,
        Op::JumpUnless(_, target, _) => Filter::Jump(*target),
        op if is_cors(op) => Filter::Run,
        _ => Filter::Skip,
    }
}

/// The answer when inbound ends without a `cors` answering: an empty 200
/// without CORS headers, so the browser refuses the actual request.
pub(super) fn unanswered() -> Response {
    Response {
        status: 200,
        reason: "OK".into(),
        body: Some(bytes::Bytes::new()),
        ..Default::default()
    }
}
