//! Fencing: a service on a dead member (or one about to be fenced after a
//! failed stop) may start elsewhere only after the member is fenced or its
//! lease has expired plus the grace; a failed stop on a member that cannot be
//! fenced blocks the service.

use crate::model::{ObservedService, PlacementReason, ServiceSpec, ServiceState};
use crate::plan::{Change, LEASE_GRACE, ServicePlan, Step};

use super::{Context, Draft, failure_text, outcome};

impl<'a> Context<'a> {
    /// Its member is dead (or being fenced): fence it or wait for its
    /// lease, then start elsewhere (or stop, when disabled).
    pub(super) fn dead_member(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        o: &'a ObservedService,
        m: &'a str,
    ) -> ServicePlan {
        let why = if !self.members.is_being_fenced(m) {
            format!("member {m} is dead")
        } else if o.state == ServiceState::Blocked {
            format!("{} on {m}; fencing {m}", failure_text(o))
        } else {
            format!("member {m} is being fenced")
        };
        let fenced = self.vacate_dead(m, &mut draft.steps);
        self.members.moved(Some(m), None);
        let mut plan = if !spec.enabled {
            draft.finish(
                Change::Stop { from: m.into() },
                format!("{why}; service is disabled"),
                outcome(ServiceState::Disabled, None, None),
            )
        } else {
            self.move_away(
                draft,
                spec,
                m,
                why,
                ServiceState::Stopped,
                PlacementReason::Failover,
            )
        };
        plan.outcome.fenced = fenced;
        plan
    }

    /// Replaces the stop on a dead member: fence it where configured, else
    /// wait for its lease (plus grace). Returns the members fenced.
    pub(super) fn vacate_dead(&mut self, m: &str, steps: &mut Vec<Step>) -> Vec<String> {
        let observed = self.observed.members.get(m);
        let expired = observed.and_then(|o| o.lease_expired_at);
        // A fence counts only for the incident it was run for: after the
        // lease expired and after the latest failed stop there, and only
        // while the member has not come back (a live member was fenced, if
        // ever, for an earlier incident).
        let incident = self.members.incident_at(m);
        let already_fenced = !self.observed.is_alive(m)
            && observed
                .and_then(|o| o.fenced_at)
                .is_some_and(|f| incident.is_none_or(|i| f >= i));
        if already_fenced {
            return Vec::new();
        }
        let fencing = self
            .desired
            .members()
            .get(m)
            .and_then(|d| d.spec.fencing.as_ref());
        if fencing.is_some() && !observed.is_some_and(|o| o.fencing_failed) {
            // One fence per member in a plan: the first service that needs
            // it carries it, the others wait for it.
            if self.fences_planned.insert(m.to_string()) {
                steps.push(Step::Fence {
                    member: m.into(),
                    incident,
                });
                return vec![m.to_string()];
            }
            steps.push(Step::AwaitFence {
                member: m.into(),
                incident,
            });
            return Vec::new();
        }
        // A member a new controller did not see go is given a lease's
        // time from the election to come back (`rejoinUntil`).
        let until = expired.unwrap_or(self.now).plus(LEASE_GRACE);
        let until = observed
            .and_then(|o| o.rejoin_until)
            .map_or(until, |r| r.max(until));
        steps.push(Step::AwaitLease {
            member: m.into(),
            until,
        });
        Vec::new()
    }

    /// A stop failed on a live member that cannot be fenced (members that
    /// can are treated as dead for the pass, see `Members::new`): hold.
    pub(super) fn blocked(
        &mut self,
        draft: Draft<'a>,
        o: &'a ObservedService,
        m: &'a str,
    ) -> ServicePlan {
        let what = failure_text(o);
        let fence_failed = self
            .observed
            .members
            .get(m)
            .is_some_and(|mo| mo.fencing_failed);
        let hint = if fence_failed {
            "fencing failed"
        } else {
            "no fencing configured"
        };
        draft.finish(
            Change::Hold {
                state: ServiceState::Blocked,
            },
            format!("{what} on {m}; {hint}; fix it, then run clusvc clear"),
            outcome(ServiceState::Blocked, Some(m), o.placement_reason),
        )
    }
}
