//! A policy document compiled for execution: four sections of flat operations.
//!
//! Control flow (`choose`, `retry`, `limit-concurrency`) becomes jumps within a
//! section, so the pipeline can stop at any operation (to call the backend, a
//! cache or another service) and resume from a saved position; `<base />`
//! becomes an operation that runs the parent scope's section.

use std::time::Duration;

use super::actions::{Action, ForwardSpec};
use super::error::PolicyError;
use super::xml::Pos;
use crate::expr::Expr;

/// The four scopes, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// All APIs.
    Global = 0,
    /// The product of the request's subscription.
    Product = 1,
    /// The API.
    Api = 2,
    /// The operation.
    Operation = 3,
}

impl Level {
    /// Lower-case name, as `context.LastError.Scope` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Global => "global",
            Level::Product => "product",
            Level::Api => "api",
            Level::Operation => "operation",
        }
    }
}

/// A section of a policy document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// `<inbound>`: the request on its way in.
    Inbound = 0,
    /// `<backend>`: around the call to the backend.
    Backend = 1,
    /// `<outbound>`: the response on its way out.
    Outbound = 2,
    /// `<on-error>`: after a failure anywhere else.
    OnError = 3,
}

impl SectionKind {
    /// The element name.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Inbound => "inbound",
            SectionKind::Backend => "backend",
            SectionKind::Outbound => "outbound",
            SectionKind::OnError => "on-error",
        }
    }

    /// All four, in document order.
    pub const ALL: [SectionKind; 4] = [
        SectionKind::Inbound,
        SectionKind::Backend,
        SectionKind::Outbound,
        SectionKind::OnError,
    ];
}

/// Where an operation came from, for `context.LastError` and traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The policy element's name.
    pub policy: String,
    /// Path of elements from the section, e.g. `choose\when[1]\set-header[2]`.
    pub path: String,
    /// Position in the document.
    pub pos: Pos,
    /// The element's `id` attribute.
    pub id: String,
}

/// How `retry` repeats its body.
#[derive(Debug, Clone)]
pub struct RetrySpec {
    /// Repeat while this is true (evaluated after each attempt).
    pub condition: Expr,
    /// Most repetitions after the first attempt.
    pub count: u32,
    /// Fixed wait between attempts.
    pub interval: Duration,
    /// Upper bound for the growing wait.
    pub max_interval: Option<Duration>,
    /// Growth of the wait per attempt (APIM's `delta`).
    pub delta: Option<Duration>,
    /// The first retry is made at once.
    pub first_fast_retry: bool,
}

impl RetrySpec {
    /// The wait before retry number `n` (1-based), as APIM computes it: fixed, or
    /// linear growth by `delta` (exponential when `max-interval` is also set).
    pub fn wait_before(&self, n: u32) -> Duration {
        if n == 1 && self.first_fast_retry {
            return Duration::ZERO;
        }
        let Some(delta) = self.delta else {
            return self.interval;
        };
        match self.max_interval {
            // Exponential: interval + (2^n - 1) * delta, capped.
            Some(max) => {
                let factor = 2u32
                    .saturating_pow(n.saturating_sub(1).min(20))
                    .saturating_sub(1);
                (self.interval + delta.saturating_mul(factor)).min(max)
            }
            // Linear: interval + (n - 1) * delta.
            None => self.interval + delta.saturating_mul(n.saturating_sub(1)),
        }
    }
}

/// One step of a section.
#[derive(Debug, Clone)]
pub enum Op {
    /// Run the parent scope's same section here.
    Base,
    /// Go on at this index.
    Jump(u32),
    /// Evaluate the condition; go on at the index when it is false.
    JumpUnless(Expr, u32, u32),
    /// Start of a `retry` body; `slot` numbers the retry within the document.
    RetryStart(u16),
    /// End of a `retry` body: repeat from `start` while the condition holds.
    RetryEnd {
        /// Which retry.
        slot: u16,
        /// Index of the `RetryStart`.
        start: u32,
        /// How to repeat.
        spec: Box<RetrySpec>,
        /// Origin of the `retry` element.
        origin: u32,
    },
    /// A policy that does something.
    Act(Box<Action>, u32),
    /// Leave a `limit-concurrency` block (the matching acquire is an `Action`).
    ReleaseConcurrency(u16),
}

/// A compiled section.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// The steps.
    pub ops: Vec<Op>,
}

/// What a compiled document needs from the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The request body must be read in full before the pipeline starts.
    pub request_body: bool,
    /// The backend's response body must be read in full before outbound runs.
    pub response_body: bool,
}

impl Needs {
    /// Both documents' needs.
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            request_body: self.request_body || other.request_body,
            response_body: self.response_body || other.response_body,
        }
    }
}

/// A compiled policy document of one scope.
#[derive(Debug, Clone)]
pub struct Document {
    /// Its scope.
    pub level: Level,
    /// The sections by `SectionKind as usize`; `None` when the document has no such
    /// element, which inherits the parent's section as `<base />` would.
    pub sections: [Option<Section>; 4],
    /// Where each operation came from (indexed by the `u32` in `Op::Act`).
    pub origins: Vec<Origin>,
    /// What it needs buffered.
    pub needs: Needs,
    /// How many `retry` and `limit-concurrency` blocks it has.
    pub slots: u16,
    /// What it names elsewhere in the configuration, in document order.
    pub references: Vec<Reference>,
}

/// What kind of configuration entity a policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// A backend, by `set-backend-service backend-id`.
    Backend,
    /// A policy fragment, by `include-fragment fragment-id`.
    Fragment,
    /// A named value, by `{{name}}`.
    NamedValue,
    /// A certificate, by `authentication-certificate certificate-id`.
    Certificate,
    /// A certificate, by `authentication-certificate thumbprint`.
    CertificateThumbprint,
}

impl RefKind {
    /// The noun messages use: `backend`, `policy fragment`, `named value`.
    pub fn noun(self) -> &'static str {
        match self {
            RefKind::Backend => "backend",
            RefKind::Fragment => "policy fragment",
            RefKind::NamedValue => "named value",
            RefKind::Certificate => "certificate",
            RefKind::CertificateThumbprint => "certificate with thumbprint",
        }
    }
}

/// One reference a policy document makes to another configuration entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// What it names.
    pub kind: RefKind,
    /// The id (or named value name) it names.
    pub id: String,
    /// The element that names it.
    pub policy: String,
    /// Where in the document: for a reference made inside a fragment, the
    /// document's outermost `<include-fragment>` that brought it in.
    pub pos: Pos,
    /// For a reference made inside a fragment: the innermost fragment's id and the
    /// position in that fragment's own text.
    pub fragment: Option<(String, Pos)>,
}

impl Reference {
    /// The compile error of this reference when its target does not exist, in the
    /// shape the compiler reports errors inside fragments.
    pub fn unresolved(&self) -> PolicyError {
        let reason = format!("{} '{}' does not exist", self.kind.noun(), self.id);
        match &self.fragment {
            None => PolicyError {
                pos: self.pos,
                policy: self.policy.clone(),
                message: reason,
            },
            Some((fragment, at)) => PolicyError {
                pos: self.pos,
                policy: "include-fragment".to_string(),
                message: format!(
                    "in fragment '{fragment}' at {at}: <{}>: {reason}",
                    self.policy
                ),
            },
        }
    }
}

impl Document {
    /// Whether running the document changes nothing: every section inherits
    /// (`<base />` only, or absent), or, at the global scope where there is
    /// nothing to inherit, is empty, and the backend section only forwards.
    /// APIM's default global document is such a one.
    pub fn is_passthrough(&self) -> bool {
        SectionKind::ALL.iter().all(|&kind| {
            let Some(section) = self.section(kind) else {
                return true;
            };
            match section.ops.as_slice() {
                [Op::Base] => true,
                [] => self.level == Level::Global && kind != SectionKind::Backend,
                [Op::Act(a, _)] => {
                    self.level == Level::Global
                        && kind == SectionKind::Backend
                        && matches!(**a, Action::Forward(spec) if spec == ForwardSpec::DEFAULT)
                }
                _ => false,
            }
        })
    }

    /// Whether nothing of this document runs once the backend has answered:
    /// its backend section only forwards (or inherits) and its outbound section
    /// is empty or inherits.
    pub fn quiet_after_forward(&self) -> bool {
        let backend = match self.section(SectionKind::Backend).map(|s| s.ops.as_slice()) {
            None | Some([Op::Base]) => true,
            Some([Op::Act(a, _)]) => matches!(
                **a,
                Action::Forward(spec) if !spec.follow_redirects && !spec.fail_on_error_status
            ),
            Some(_) => false,
        };
        let outbound = matches!(
            self.section(SectionKind::Outbound)
                .map(|s| s.ops.as_slice()),
            None | Some([]) | Some([Op::Base])
        );
        backend && outbound
    }

    /// What the document names elsewhere in the configuration (backends,
    /// fragments, named values), so a caller can check them against what exists.
    pub fn references(&self) -> &[Reference] {
        &self.references
    }

    /// Refuses a document naming a backend for which `exists` is false, at the
    /// first such reference. (The compiler itself refuses unknown fragments and
    /// named values; backends are not part of its environment.)
    pub fn check_backends(&self, exists: impl Fn(&str) -> bool) -> Result<(), PolicyError> {
        match self
            .references
            .iter()
            .find(|r| r.kind == RefKind::Backend && !exists(&r.id))
        {
            Some(r) => Err(r.unresolved()),
            None => Ok(()),
        }
    }

    /// Refuses a document whose `authentication-certificate` names (by a
    /// literal id or thumbprint) a certificate for which `exists` is false.
    pub fn check_certificates(
        &self,
        exists: impl Fn(super::auth_cert::CertRef<'_>) -> bool,
    ) -> Result<(), PolicyError> {
        use super::auth_cert::CertRef;
        let missing = self.references.iter().find(|r| match r.kind {
            RefKind::Certificate => !exists(CertRef::Id(&r.id)),
            RefKind::CertificateThumbprint => !exists(CertRef::Thumbprint(&r.id)),
            _ => false,
        });
        match missing {
            Some(r) => Err(r.unresolved()),
            None => Ok(()),
        }
    }

    /// The section of kind `kind`, if the document has one.
    pub fn section(&self, kind: SectionKind) -> Option<&Section> {
        self.sections[kind as usize].as_ref()
    }
}
