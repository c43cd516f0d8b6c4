//! Recovery after a failed status check or start, by the service's
//! policy, and a restart an operator asked for.

use crate::model::{
    ObservedService, PlacementReason, RecoveryPolicy, Service, ServiceSpec, ServiceState,
};
use crate::plan::steps::{start_all, stop_all};
use crate::plan::{Change, ServicePlan, retry_backoff};

use super::{Context, Draft, failure_text, outcome};

impl<'a> Context<'a> {
    /// A failed check or start on live member `m`: roll back, then recover
    /// per the service's policy.
    pub(super) fn recover(
        &mut self,
        mut draft: Draft<'a>,
        svc: &'a Service,
        o: &'a ObservedService,
        running: &ServiceSpec,
        m: &'a str,
    ) -> ServicePlan {
        let spec = &svc.spec;
        let recovery = &spec.recovery;
        let what = failure_text(o);
        self.leave(o, running, m, &mut draft.steps);
        match recovery.policy {
            RecoveryPolicy::Disable => {
                self.members.moved(Some(m), None);
                draft.finish(
                    Change::Stop { from: m.into() },
                    format!("{what}; recovery policy is disable"),
                    outcome(ServiceState::Failed, None, None),
                )
            }
            RecoveryPolicy::Restart => {
                let since = self.now.minus(recovery.restart_window);
                let recent = o.restarts.iter().filter(|t| **t > since).count();
                let max = recovery.max_restarts as usize;
                let eligible = self.members.ineligible(&spec.placement, m).is_none();
                if recent < max
                    && eligible
                    && let Some(best) = self.failback_target(spec, o, m)
                {
                    // It is down anyway: restart where it prefers to be.
                    start_all(best, spec, &mut draft.steps);
                    self.members.moved(Some(m), Some(best));
                    return draft.finish(
                        Change::Relocate {
                            from: m.into(),
                            to: best.into(),
                        },
                        format!("{what}; restarting on preferred member {best} (failback)"),
                        outcome(
                            ServiceState::Running,
                            Some(best),
                            Some(PlacementReason::Failback),
                        ),
                    );
                }
                // Attempts back off exponentially (capped): a start that fails
                // at once is not retried in a tight loop.
                let last = o.restarts.iter().filter(|t| **t > since).max().copied();
                if recent < max
                    && eligible
                    && let Some(last) = last
                    && self.now < last.plus(retry_backoff(recent))
                {
                    let at = last.plus(retry_backoff(recent));
                    let mut plan = Draft {
                        steps: Vec::new(),
                        ..draft
                    }
                    .finish(
                        Change::Hold {
                            state: ServiceState::Failed,
                        },
                        format!(
                            "{what}; restart {} of {max} at {at} (backing off {})",
                            recent + 1,
                            retry_backoff(recent)
                        ),
                        outcome(ServiceState::Failed, Some(m), o.placement_reason),
                    );
                    plan.retry_at = Some(at);
                    return plan;
                }
                if recent < max && eligible {
                    start_all(m, spec, &mut draft.steps);
                    let mut plan = draft.finish(
                        Change::Restart { on: m.into() },
                        format!("{what}; restart {} of {max}", recent + 1),
                        outcome(ServiceState::Running, Some(m), o.placement_reason),
                    );
                    plan.outcome.counts_restart = true;
                    return plan;
                }
                // Moving away after the limit backs off too, and counts as
                // an attempt: a service that fails on every member moves
                // ever more slowly (up to the cap), never in a tight loop.
                if eligible
                    && let Some(last) = last
                    && self.now < last.plus(retry_backoff(recent))
                {
                    let at = last.plus(retry_backoff(recent));
                    let mut plan = Draft {
                        steps: Vec::new(),
                        ..draft
                    }
                    .finish(
                        Change::Hold {
                            state: ServiceState::Failed,
                        },
                        format!(
                            "{what}; restart limit reached ({recent} of {max} within {}); moving away at {at} (backing off {})",
                            recovery.restart_window,
                            retry_backoff(recent)
                        ),
                        outcome(ServiceState::Failed, Some(m), o.placement_reason),
                    );
                    plan.retry_at = Some(at);
                    return plan;
                }
                self.members.moved(Some(m), None);
                let why = if eligible {
                    format!(
                        "{what}; restart limit reached ({recent} of {max} within {})",
                        recovery.restart_window
                    )
                } else {
                    format!("{what}; member {m} is no longer eligible")
                };
                let mut plan = self.move_away(
                    draft,
                    spec,
                    m,
                    why,
                    ServiceState::Failed,
                    PlacementReason::Recovery,
                );
                if matches!(plan.change, Change::Relocate { .. }) {
                    plan.outcome.counts_restart = true;
                }
                plan
            }
            RecoveryPolicy::Relocate => {
                self.members.moved(Some(m), None);
                self.move_away(
                    draft,
                    spec,
                    m,
                    what,
                    ServiceState::Failed,
                    PlacementReason::Recovery,
                )
            }
        }
    }

    /// `clusvc restart`: stop and start in place.
    pub(super) fn requested_restart(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        o: &'a ObservedService,
        running: &ServiceSpec,
        m: &'a str,
    ) -> ServicePlan {
        stop_all(m, running, &mut draft.steps);
        start_all(m, spec, &mut draft.steps);
        draft.finish(
            Change::Restart { on: m.into() },
            "restart requested",
            outcome(ServiceState::Running, Some(m), o.placement_reason),
        )
    }
}
