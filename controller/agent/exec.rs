//! The executor: runs one service's plan steps for the local member, one
//! after another, and its status checks.
//!
//! - Steps run strictly in order; the first failure stops the run. When a
//!   start fails, what this run started (and the failed resource) is stopped
//!   again in stop order before the failure is reported.
//! - A status check visits resources in start order and stops at the first
//!   failure: later resources are not checked.
//! - Every resource action is bounded by the service `timeout` (see
//!   [`crate::resources::process`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::events::Events;
use crate::resources::{self, Ctx, Host, Verb};
use clusvc_core::model::event::Level;
use clusvc_core::model::resource::in_stop_order;
use clusvc_core::model::{ResourceRef, ServiceSpec};
use clusvc_core::plan::{Op, Step};

/// The service a run belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRef {
    /// The service name (`CLUSVC_SERVICE`).
    pub name: String,
    /// ID.
    pub id: u64,
    /// Limit for one action of one resource.
    pub timeout: Duration,
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// What was done.
    pub verb: Verb,
    /// The resource label.
    pub resource: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
    /// Part of the rollback of a failed start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
    /// Refused before anything was done (an unsafe script, an address in
    /// use): there is nothing to undo.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

/// What a run of steps did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// Every action taken, in order (rollback included).
    pub steps: Vec<StepReport>,
    /// The index in the given steps of the step that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<usize>,
}

impl RunReport {
    /// Whether every step succeeded.
    pub fn ok(&self) -> bool {
        self.failed.is_none()
    }

    /// The failure's reason.
    pub fn reason(&self) -> Option<&str> {
        self.steps
            .iter()
            .find(|s| !s.ok && !s.rollback)
            .and_then(|s| s.reason.as_deref())
    }
}

/// Why a step cannot be run by this executor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The step belongs to another member.
    #[error("step for member {step} given to the executor of {local}")]
    WrongMember {
        /// The step's member.
        step: String,
        /// This executor's member.
        local: String,
    },
    /// Fencing and lease waits are the controller's, not a member's.
    #[error("{0} steps are carried out by the controller")]
    NotLocal(&'static str),
}

/// Runs steps and checks on one member.
pub struct Executor {
    host: Arc<Host>,
    events: Arc<dyn Events>,
}

impl Executor {
    /// An executor for the member `host` describes.
    pub fn new(host: Arc<Host>, events: Arc<dyn Events>) -> Self {
        Self { host, events }
    }

    /// The member.
    pub fn host(&self) -> &Host {
        &self.host
    }

    fn ctx<'a>(&'a self, svc: &'a ServiceRef, label: String, verb: Verb) -> Ctx<'a> {
        Ctx {
            host: &self.host,
            service: &svc.name,
            service_id: svc.id,
            resource: label,
            deadline: Instant::now()
                .checked_add(svc.timeout)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600)),
            timeout: svc.timeout,
            verb,
            events: self.events.as_ref(),
        }
    }

    /// Performs one action on one resource, reporting it.
    pub async fn act(&self, svc: &ServiceRef, r: ResourceRef<'_>, verb: Verb) -> StepReport {
        let started = Instant::now();
        let ctx = self.ctx(svc, r.label(), verb);
        let result = resources::act(&ctx, r, verb).await;
        let report = StepReport {
            verb,
            resource: ctx.resource.clone(),
            ok: result.is_ok(),
            reason: result.as_ref().err().map(ToString::to_string),
            elapsed: started.elapsed(),
            rollback: false,
            refused: matches!(result, Err(resources::Error::Refused(_))),
        };
        match &result {
            Ok(()) if verb != Verb::Status => ctx.emit(
                Level::Info,
                format!("{} ok ({} ms)", verb.as_str(), report.elapsed.as_millis()),
            ),
            Ok(()) => {}
            Err(e) => ctx.emit(Level::Err, format!("{} failed: {e}", verb.as_str())),
        }
        report
    }

    /// Runs a service's steps for this member in order. Stops at the first
    /// failure; a failed start is rolled back first.
    pub async fn execute(&self, svc: &ServiceRef, steps: &[Step]) -> Result<RunReport, Error> {
        self.execute_resumed(svc, steps, &[], &mut |_| {}).await
    }

    /// [`Executor::execute`], resumed after the first `done.len()` steps,
    /// which already succeeded (their reports are taken as they are and
    /// what they started is rolled back with the rest on a failed start);
    /// `progress` is told the reports of the steps done so far after each
    /// step that succeeds, so a caller can record them before the next
    /// (an agent that restarts resumes from them instead of running a step
    /// twice).
    pub async fn execute_resumed(
        &self,
        svc: &ServiceRef,
        steps: &[Step],
        done: &[StepReport],
        progress: &mut (dyn FnMut(&[StepReport]) + Send),
    ) -> Result<RunReport, Error> {
        let mut resources = Vec::with_capacity(steps.len());
        for step in steps {
            match step {
                Step::Resource {
                    member,
                    op,
                    resource,
                } if *member == self.host.member => resources.push((*op, resource.as_ref())),
                Step::Resource { member, .. } => {
                    return Err(Error::WrongMember {
                        step: member.clone(),
                        local: self.host.member.clone(),
                    });
                }
                Step::Fence { .. } | Step::AwaitFence { .. } => {
                    return Err(Error::NotLocal("fence"));
                }
                Step::AwaitLease { .. } => return Err(Error::NotLocal("lease wait")),
            }
        }
        let mut report = RunReport::default();
        let mut started: Vec<ResourceRef<'_>> = Vec::new();
        let done = &done[..done.len().min(resources.len())];
        for (&(op, r), rep) in resources.iter().zip(done) {
            if op == Op::Start {
                started.push(r);
            }
            report.steps.push(rep.clone());
        }
        for (i, &(op, r)) in resources.iter().enumerate().skip(done.len()) {
            let verb = match op {
                Op::Start => Verb::Start,
                Op::Stop => Verb::Stop,
            };
            let rep = self.act(svc, r, verb).await;
            let ok = rep.ok;
            report.steps.push(rep);
            if ok {
                if op == Op::Start {
                    started.push(r);
                }
                progress(&report.steps);
                continue;
            }
            report.failed = Some(i);
            if op == Op::Start {
                // Stop what this run started, and the half-started resource
                // unless its start was refused before it did anything, in
                // stop order (the seed's stop table).
                if !report.steps.last().is_some_and(|s| s.refused) {
                    started.push(r);
                }
                let rollback: Vec<ResourceRef<'_>> =
                    in_stop_order(started.iter().copied()).collect();
                for r in rollback {
                    let mut rep = self.act(svc, r, Verb::Stop).await;
                    rep.rollback = true;
                    report.steps.push(rep);
                }
            }
            break;
        }
        Ok(report)
    }

    /// Starts every resource of `spec` in start order (with rollback on
    /// failure): the steps of a plan's start, for tools and tests.
    pub async fn start(&self, svc: &ServiceRef, spec: &ServiceSpec) -> RunReport {
        let mut steps = Vec::new();
        clusvc_core::plan::steps::start_all(&self.host.member, spec, &mut steps);
        self.execute(svc, &steps).await.expect("local steps")
    }

    /// Stops every resource of `spec` in stop order; stops at the first failure.
    pub async fn stop(&self, svc: &ServiceRef, spec: &ServiceSpec) -> RunReport {
        let mut steps = Vec::new();
        clusvc_core::plan::steps::stop_all(&self.host.member, spec, &mut steps);
        self.execute(svc, &steps).await.expect("local steps")
    }

    /// Checks resources in start order; the first failure ends the check.
    pub async fn check(&self, svc: &ServiceRef, spec: &ServiceSpec) -> RunReport {
        let mut report = RunReport::default();
        for (i, r) in spec.resources().enumerate() {
            let rep = self.act(svc, r, Verb::Status).await;
            let ok = rep.ok;
            report.steps.push(rep);
            if !ok {
                report.failed = Some(i);
                break;
            }
        }
        report
    }
}
