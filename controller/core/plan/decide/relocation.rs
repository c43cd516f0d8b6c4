//! Moves nobody's failure asked for: a manual `clusvc relocate`, and
//! failback to a more preferred member after a failover.

use crate::model::{ObservedService, PlacementReason, ServiceSpec, ServiceState};
use crate::plan::steps::{start_all, stop_all};
use crate::plan::{Change, ServicePlan};

use super::{Context, Draft, outcome};
use crate::plan::placement::Members;

impl<'a> Context<'a> {
    /// A pending `clusvc relocate [--to]`.
    pub(super) fn manual_relocation(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        running: &ServiceSpec,
        m: &'a str,
        to: Option<&'a str>,
    ) -> ServicePlan {
        let target = match to {
            Some(t) if t == m => Err(format!("it already runs on {m}")),
            Some(t) => match self.members.cannot_start(spec, t) {
                None => Ok(self
                    .desired
                    .members()
                    .get_key_value(t)
                    .map_or(t, |(k, _)| k.as_str())),
                Some(why) => Err(format!("member {t} {why}")),
            },
            None => self.members.best(spec, Some(m)).map_err(|e| e.to_string()),
        };
        match target {
            Ok(t) => {
                stop_all(m, running, &mut draft.steps);
                start_all(t, spec, &mut draft.steps);
                self.members.moved(Some(m), Some(t));
                draft.finish(
                    Change::Relocate {
                        from: m.into(),
                        to: t.into(),
                    },
                    "manual relocation",
                    outcome(
                        ServiceState::Running,
                        Some(t),
                        Some(PlacementReason::Manual),
                    ),
                )
            }
            Err(why) => draft.finish(
                Change::Hold {
                    state: ServiceState::Running,
                },
                format!("relocation request cannot be carried out: {why}"),
                outcome(ServiceState::Running, Some(m), None),
            ),
        }
    }

    /// The more preferred member a service placed by failover should return
    /// to, if failback is on and one is eligible.
    pub(super) fn failback_target(
        &self,
        spec: &ServiceSpec,
        o: &ObservedService,
        m: &str,
    ) -> Option<&'a str> {
        if !spec.placement.failback || o.placement_reason != Some(PlacementReason::Failover) {
            return None;
        }
        let best = self.members.best(spec, None).ok()?;
        (Members::rank(&spec.placement, best) < Members::rank(&spec.placement, m)).then_some(best)
    }

    /// Failback: stop here, start on the preferred member.
    pub(super) fn failback(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        _o: &'a ObservedService,
        running: &ServiceSpec,
        m: &'a str,
        best: &'a str,
    ) -> ServicePlan {
        stop_all(m, running, &mut draft.steps);
        start_all(best, spec, &mut draft.steps);
        self.members.moved(Some(m), Some(best));
        draft.finish(
            Change::Relocate {
                from: m.into(),
                to: best.into(),
            },
            format!("failback to preferred member {best}"),
            outcome(
                ServiceState::Running,
                Some(best),
                Some(PlacementReason::Failback),
            ),
        )
    }
}
