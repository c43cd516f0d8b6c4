//! What to do with one service: the decisions of SPEC §5, one file per
//! decision, as Pacemaker keeps one `pcmk_sched_*` file per decision.
//!
//! [`Context::decide`] dispatches on what is observed of the service:
//!
//! | file | decision |
//! |---|---|
//! | `placement.rs` | where a stopped service starts; moving off a member that is no longer eligible |
//! | `fencing.rs` | a dead member (fence it or wait for its lease), a blocked stop |
//! | `recovery.rs` | a failed check or start: restart, relocate or disable; an operator's restart |
//! | `relocation.rs` | a manual `clusvc relocate`; failback to a preferred member |
//! | `resume.rs` | work a crash interrupted: a start, a stop or a relocation |
//! | `reconfigure.rs` | a changed spec: restart the changed resource and everything after it |
//! | this file | the dispatch, and stopping a disabled or deleted service |

use crate::model::{
    DesiredState, ObservedService, ObservedState, Phase, PlacementReason, ResourceStatus, Service,
    ServiceSpec, ServiceState, Timestamp,
};

mod fencing;
mod placement;
mod reconfigure;
mod recovery;
mod relocation;
mod resume;

use super::placement::{ClusterIndex, Members};
use super::steps::{self, stop_all, stop_some};
use super::{Change, Outcome, ServicePlan, Step};

/// State shared by the decisions of one planning pass.
pub struct Context<'a> {
    pub(super) desired: &'a DesiredState,
    observed: &'a ObservedState,
    now: Timestamp,
    members: Members<'a>,
    next_id: u64,
    /// Members whose fence a service of this pass already carries.
    fences_planned: std::collections::HashSet<String>,
}

/// The empty spec, for deleted services whose started spec is unknown.
static EMPTY_SPEC: std::sync::LazyLock<ServiceSpec> =
    std::sync::LazyLock::new(ServiceSpec::default);

/// A plan under construction for one service.
pub(super) struct Draft<'a> {
    name: &'a str,
    id: u64,
    steps: Vec<Step>,
}

impl Draft<'_> {
    pub(super) fn finish(
        self,
        change: Change,
        reason: impl Into<String>,
        outcome: Outcome,
    ) -> ServicePlan {
        ServicePlan {
            service: self.name.to_string(),
            id: self.id,
            change,
            reason: reason.into(),
            steps: self.steps,
            outcome,
            retry_at: None,
        }
    }
}

pub(super) fn outcome(
    state: ServiceState,
    member: Option<&str>,
    why: Option<PlacementReason>,
) -> Outcome {
    Outcome {
        state,
        member: member.map(str::to_string),
        placement_reason: why,
        counts_restart: false,
        fenced: Vec::new(),
    }
}

/// Whether the state means the service holds (or may hold) resources on its member.
fn holds_member(state: ServiceState) -> bool {
    !matches!(state, ServiceState::Stopped | ServiceState::Disabled)
}

impl<'a> Context<'a> {
    /// Starts a planning pass.
    pub fn new(desired: &'a DesiredState, observed: &'a ObservedState, now: Timestamp) -> Self {
        Self::with_index(desired, observed, &ClusterIndex::build(observed), now)
    }

    /// Starts a planning pass from an index of `observed` kept elsewhere.
    pub fn with_index(
        desired: &'a DesiredState,
        observed: &'a ObservedState,
        index: &ClusterIndex,
        now: Timestamp,
    ) -> Self {
        Self {
            desired,
            observed,
            now,
            members: Members::with_index(desired, observed, index),
            next_id: index.next_id(),
            fences_planned: std::collections::HashSet::new(),
        }
    }

    /// The plan of one service, or `None` when there is nothing to do or say.
    pub fn decide(&mut self, name: &'a str) -> Option<ServicePlan> {
        let desired = self.desired.services().get(name);
        let obs = self.observed.services.get(name);
        if obs.is_some_and(|o| o.frozen) {
            return None;
        }
        if desired.is_none() && obs.is_none() {
            // Deleted and already forgotten: nothing to do or say.
            return None;
        }
        let id = match obs {
            Some(o) => o.id,
            None => {
                self.next_id += 1;
                self.next_id - 1
            }
        };
        let draft = Draft {
            name,
            id,
            steps: Vec::new(),
        };
        let at: Option<&'a str> = obs
            .filter(|o| holds_member(o.state))
            .and_then(|o| o.member.as_deref());
        let (desired, obs, at) = match (desired, obs, at) {
            (_, Some(o), Some(m)) => (desired, o, m),
            (Some(svc), _, None) => return self.place_stopped(draft, svc, obs),
            (None, Some(_), None) => {
                return Some(draft.finish(
                    Change::Forget,
                    "deleted; not running",
                    outcome(ServiceState::Stopped, None, None),
                ));
            }
            (_, None, Some(_)) => unreachable!("a member comes from an observed record"),
            (None, None, None) => unreachable!("returned above"),
        };
        match desired {
            // A failed stop blocks a deleted service as it blocks any
            // other (stopping it again at once would retry without end).
            None if obs.state == ServiceState::Blocked && self.members.is_alive(at) => {
                Some(self.blocked(draft, obs, at))
            }
            None => {
                let spec = obs.started_with.as_ref().unwrap_or(&EMPTY_SPEC);
                Some(self.stop(draft, obs, spec, at, "deleted", ServiceState::Stopped))
            }
            Some(svc) => self.running(draft, svc, obs, at),
        }
    }

    /// A service that holds member `m`: each decision in turn, the first
    /// that applies wins.
    fn running(
        &mut self,
        draft: Draft<'a>,
        svc: &'a Service,
        o: &'a ObservedService,
        m: &'a str,
    ) -> Option<ServicePlan> {
        let spec = &svc.spec;
        // What runs (for deciding what changed), and the same resources as
        // the spec now defines them where they are the same resource (for
        // stopping: a stop uses today's `forceUnmount`, `deactivate`, ...).
        let started = o.started_with.as_ref().unwrap_or(spec);
        let stopping = steps::for_stop(started, spec);
        let running: &ServiceSpec = &stopping;
        if !self.members.is_alive(m) {
            return Some(self.dead_member(draft, spec, o, m));
        }
        if o.state == ServiceState::Blocked {
            return Some(self.blocked(draft, o, m));
        }
        if !spec.enabled {
            return Some(self.stop(draft, o, running, m, "disabled", ServiceState::Disabled));
        }
        if o.state == ServiceState::Failed {
            return Some(self.recover(draft, svc, o, running, m));
        }
        if let Some(why) = self.members.ineligible(&spec.placement, m) {
            return Some(self.leave_ineligible(draft, spec, running, m, why));
        }
        if matches!(o.state, ServiceState::Stopping | ServiceState::Relocating) {
            return Some(self.resume_move(draft, spec, o, running, m));
        }
        if let Some(req) = &o.relocate {
            return Some(self.manual_relocation(draft, spec, running, m, req.to.as_deref()));
        }
        if let Some(best) = self.failback_target(spec, o, m) {
            return Some(self.failback(draft, spec, o, running, m, best));
        }
        if o.restart_requested {
            return Some(self.requested_restart(draft, spec, o, running, m));
        }
        if o.state == ServiceState::Starting {
            return Some(self.resume_start(draft, spec, o, started, running, m));
        }
        self.reconfigure(draft, spec, o, started, m)
    }

    /// Stop where it runs (alive member), for a disabled or deleted service.
    pub(super) fn stop(
        &mut self,
        mut draft: Draft<'a>,
        o: &'a ObservedService,
        running: &ServiceSpec,
        m: &'a str,
        why: &str,
        end: ServiceState,
    ) -> ServicePlan {
        let mut fenced = Vec::new();
        if !self.members.is_alive(m) {
            fenced = self.vacate_dead(m, &mut draft.steps);
        } else {
            self.leave(o, running, m, &mut draft.steps);
        }
        self.members.moved(Some(m), None);
        let mut plan = draft.finish(
            Change::Stop { from: m.into() },
            why,
            outcome(end, None, None),
        );
        plan.outcome.fenced = fenced;
        plan
    }

    /// The steps that take a service off a live member, given what is up.
    pub(super) fn leave(
        &self,
        o: &ObservedService,
        running: &ServiceSpec,
        m: &str,
        steps: &mut Vec<Step>,
    ) {
        let partial = matches!(
            (o.state, o.failure.as_ref().map(|f| f.phase)),
            (ServiceState::Failed, Some(Phase::Start))
        ) || matches!(o.state, ServiceState::Stopping | ServiceState::Relocating);
        if partial {
            stop_some(
                m,
                running,
                |r| {
                    let st = o.resources.get(&r.label()).copied().unwrap_or_default();
                    match o.state {
                        ServiceState::Failed => {
                            matches!(st, ResourceStatus::Ok | ResourceStatus::Failed)
                        }
                        _ => st != ResourceStatus::Stopped,
                    }
                },
                steps,
            );
        } else {
            stop_all(m, running, steps);
        }
    }
}

/// "status check of ip 192.0.2.100/24 failed: address missing".
pub(super) fn failure_text(o: &ObservedService) -> String {
    match &o.failure {
        Some(f) if f.reason.is_empty() => format!("{} of {} failed", f.phase.word(), f.resource),
        Some(f) => format!("{} of {} failed: {}", f.phase.word(), f.resource, f.reason),
        None => format!("{} with no recorded failure", o.state),
    }
}
