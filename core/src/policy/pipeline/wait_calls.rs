//! A `wait` of `send-request`s: every call leaves at once (`Step::CallAll`),
//! and the answers come back together (`calls_done`): all of them for
//! `for="all"`, the first for `for="any"` (the others were cancelled and leave
//! their variables as they were). Each answer is taken as a lone
//! `send-request`'s would be: the response in its variable, or with
//! `ignore-error` null, or the failure (the first, in document order, named
//! by its own `send-request` in `context.LastError`).

use std::sync::Arc;

use super::super::context::{Context, Response};
use super::super::error::Failure;
use super::super::wait::WaitCalls;
use super::{Env, Pipeline, Step, Waiting};
use crate::expr::Value;

/// Per call of the pending `wait`: its response variable, `ignore-error` and
/// origin.
pub(super) type PendingCalls = Vec<(Option<String>, bool, u32)>;

impl Pipeline {
    /// Builds every call of `w` and asks for them together.
    pub(super) fn wait_calls(
        &mut self,
        w: &WaitCalls,
        ctx: &Context,
        env: &Env<'_>,
    ) -> Result<Step, Failure> {
        let requests = w
            .sends
            .iter()
            .map(|s| s.build(ctx, env.tls))
            .collect::<Result<Vec<_>, _>>()?;
        self.pending_calls = w
            .sends
            .iter()
            .zip(&w.origins)
            .map(|(s, origin)| (s.response_variable.clone(), s.ignore_error, *origin))
            .collect();
        // The origin is filled in by `run_inner`.
        self.waiting = Waiting::Calls { origin: (0, 0) };
        Ok(Step::CallAll {
            requests,
            any: w.any,
        })
    }

    /// The calls of a `Step::CallAll` finished: one result per call, in order,
    /// `None` for a call cancelled because another finished first (`any`).
    pub fn calls_done(
        &mut self,
        ctx: &mut Context,
        results: Vec<Option<Result<Response, Failure>>>,
    ) {
        let Waiting::Calls { origin } = self.waiting else {
            return;
        };
        self.waiting = Waiting::Nothing;
        let mut failed = None;
        for ((variable, ignore_error, call_origin), result) in
            std::mem::take(&mut self.pending_calls)
                .into_iter()
                .zip(results)
        {
            match result {
                None => {}
                Some(Ok(resp)) => {
                    if let Some(v) = variable {
                        ctx.variables.insert(v, Value::Response(Arc::new(resp)));
                    }
                }
                Some(Err(_)) if ignore_error => {
                    if let Some(v) = variable {
                        ctx.variables.insert(v, Value::Null);
                    }
                }
                Some(Err(failure)) => {
                    failed.get_or_insert((failure, call_origin));
                }
            }
        }
        if let Some((failure, idx)) = failed {
            // The failing send-request's own origin, in the wait's document.
            let (level, _) = origin;
            if let Some(doc) = self.chain.docs[usize::from(level)].clone() {
                // The step is returned by the next `run`.
                self.fail_in(ctx, failure, &doc, idx);
            }
        }
        crate::machine::debug_check(self);
    }
}
