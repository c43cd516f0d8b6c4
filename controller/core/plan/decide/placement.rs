//! Placement: where a service that runs nowhere starts, where a service
//! that must leave its member goes, and leaving a member that is no longer
//! eligible (standby, outside a restricted list, undeclared).

use crate::model::{ObservedService, PlacementReason, Service, ServiceSpec, ServiceState};
use crate::plan::steps::{start_all, stop_all};
use crate::plan::{Change, ServicePlan};

use super::{Context, Draft, failure_text, outcome};
use crate::plan::placement::Ineligible;

impl<'a> Context<'a> {
    /// A service that runs nowhere.
    pub(super) fn place_stopped(
        &mut self,
        mut draft: Draft<'a>,
        svc: &'a Service,
        obs: Option<&'a ObservedService>,
    ) -> Option<ServicePlan> {
        let spec = &svc.spec;
        if let Some(o) = obs
            && o.state == ServiceState::Failed
        {
            if !spec.enabled {
                return None;
            }
            let what = failure_text(o);
            return Some(draft.finish(
                Change::Hold {
                    state: ServiceState::Failed,
                },
                format!("{what}; run clusvc enable or clusvc clear to retry"),
                outcome(ServiceState::Failed, None, None),
            ));
        }
        if !spec.enabled {
            return None;
        }
        match self.members.best(spec, None) {
            Ok(to) => {
                start_all(to, spec, &mut draft.steps);
                self.members.moved(None, Some(to));
                let reason = if obs.is_some() {
                    "not running"
                } else {
                    "new service"
                };
                Some(draft.finish(
                    Change::Start { to: to.into() },
                    reason,
                    outcome(
                        ServiceState::Running,
                        Some(to),
                        Some(PlacementReason::Initial),
                    ),
                ))
            }
            Err(why) => {
                let mut plan = draft.finish(
                    Change::Hold {
                        state: ServiceState::Stopped,
                    },
                    why.to_string(),
                    outcome(ServiceState::Stopped, None, None),
                );
                if why.is_waiting() {
                    // Planned again shortly (the reports also wake it).
                    plan.retry_at = Some(self.now.plus(crate::model::Duration::from_secs(1)));
                }
                Some(plan)
            }
        }
    }

    /// The member it runs on is no longer eligible: stop it there and
    /// start it on the best other member.
    pub(super) fn leave_ineligible(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        running: &ServiceSpec,
        m: &'a str,
        why: Ineligible,
    ) -> ServicePlan {
        stop_all(m, running, &mut draft.steps);
        self.members.moved(Some(m), None);
        self.move_away(
            draft,
            spec,
            m,
            format!("member {m} {why}"),
            ServiceState::Stopped,
            PlacementReason::Failover,
        )
    }

    /// After the service has left `m` (steps already in the draft): start it
    /// on the best other member, or stay in `stuck` with the reason.
    pub(super) fn move_away(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        m: &'a str,
        why: String,
        stuck: ServiceState,
        reason: PlacementReason,
    ) -> ServicePlan {
        match self.members.best(spec, Some(m)) {
            Ok(to) => {
                start_all(to, spec, &mut draft.steps);
                self.members.moved(None, Some(to));
                draft.finish(
                    Change::Relocate {
                        from: m.into(),
                        to: to.into(),
                    },
                    why,
                    outcome(ServiceState::Running, Some(to), Some(reason)),
                )
            }
            Err(none) => draft.finish(
                Change::Stop { from: m.into() },
                format!("{why}; {none}"),
                outcome(stuck, None, None),
            ),
        }
    }
}
