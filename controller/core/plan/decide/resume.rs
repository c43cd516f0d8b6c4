//! Work a crash interrupted (the observed record says `starting`,
//! `stopping` or `relocating`): finish it from what is known to be up.

use crate::model::{ObservedService, PlacementReason, ResourceStatus, ServiceSpec, ServiceState};
use crate::plan::steps::{first_change, start_all, start_some, stop_some};
use crate::plan::{Change, ServicePlan};

use super::{Context, Draft, outcome};

impl<'a> Context<'a> {
    /// A stop or relocation interrupted by a crash: stop what may still be
    /// up, then start on the best member (another one for a relocation).
    pub(super) fn resume_move(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        o: &'a ObservedService,
        running: &ServiceSpec,
        m: &'a str,
    ) -> ServicePlan {
        stop_some(
            m,
            running,
            |r| o.resources.get(&r.label()) != Some(&ResourceStatus::Stopped),
            &mut draft.steps,
        );
        self.members.moved(Some(m), None);
        let exclude = (o.state == ServiceState::Relocating).then_some(m);
        let what = if o.state == ServiceState::Relocating {
            "relocation"
        } else {
            "stop"
        };
        let target = self
            .members
            .best(spec, exclude)
            .or_else(|_| self.members.best(spec, None));
        match target {
            Ok(to) => {
                start_all(to, spec, &mut draft.steps);
                self.members.moved(None, Some(to));
                let change = if to == m {
                    Change::Restart { on: m.into() }
                } else {
                    Change::Relocate {
                        from: m.into(),
                        to: to.into(),
                    }
                };
                // Why the interrupted move began is not known: do not let
                // failback bounce it back.
                let reason = if to == m {
                    o.placement_reason
                } else {
                    Some(PlacementReason::Recovery)
                };
                draft.finish(
                    change,
                    format!("resume interrupted {what}"),
                    outcome(ServiceState::Running, Some(to), reason),
                )
            }
            Err(why) => draft.finish(
                Change::Stop { from: m.into() },
                format!("resume interrupted {what}; {why}"),
                outcome(ServiceState::Stopped, None, None),
            ),
        }
    }

    /// A start interrupted by a crash: start what is not up yet; if the spec
    /// changed meanwhile, take down what is up and start the new spec.
    pub(super) fn resume_start(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        o: &'a ObservedService,
        started: &ServiceSpec,
        running: &ServiceSpec,
        m: &'a str,
    ) -> ServicePlan {
        let up = |label: &str| o.resources.get(label) == Some(&ResourceStatus::Ok);
        if first_change(started, spec).is_some() {
            stop_some(
                m,
                running,
                |r| {
                    let st = o.resources.get(&r.label()).copied().unwrap_or_default();
                    matches!(st, ResourceStatus::Ok | ResourceStatus::Failed)
                },
                &mut draft.steps,
            );
            start_all(m, spec, &mut draft.steps);
        } else {
            start_some(m, spec, |r| !up(&r.label()), &mut draft.steps);
        }
        draft.finish(
            Change::Start { to: m.into() },
            "resume interrupted start",
            outcome(ServiceState::Running, Some(m), o.placement_reason),
        )
    }
}
