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

use crate::model::event::Level;
use crate::model::{ResourceRef, ServiceSpec};
use crate::plan::{Op, Step};
use crate::resources::{self, Action, Ctx, Events, Host};

/// The service a run belongs to.
#[derive(Debug, Clone)]
pub struct ServiceRef {
    /// Name.
    pub name: String,
    /// ID.
    pub id: u64,
    /// Limit for one action of one resource.
    pub timeout: Duration,
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// `start`, `stop` or `status`.
    pub action: &'static str,
    /// The resource label.
    pub resource: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
    /// Part of the rollback of a failed start.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

/// What a run of steps did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// Every action taken, in order (rollback included).
    pub steps: Vec<StepReport>,
    /// The index in the given steps of the step that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
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
    /// A resource step without its resource.
    #[error("step {0} carries no resource")]
    NoResource(usize),
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

    fn ctx<'a>(&'a self, svc: &'a ServiceRef, label: String) -> Ctx<'a> {
        Ctx {
            host: &self.host,
            service: &svc.name,
            service_id: svc.id,
            resource: label,
            deadline: Instant::now() + svc.timeout,
            timeout: svc.timeout,
            events: self.events.as_ref(),
        }
    }

    /// Performs one action on one resource, reporting it.
    pub async fn act(&self, svc: &ServiceRef, r: ResourceRef<'_>, action: Action) -> StepReport {
        let started = Instant::now();
        let ctx = self.ctx(svc, r.label());
        let result = resources::act(&ctx, r, action).await;
        let report = StepReport {
            action: action.as_str(),
            resource: ctx.resource.clone(),
            ok: result.is_ok(),
            reason: result.as_ref().err().map(ToString::to_string),
            elapsed: started.elapsed(),
            rollback: false,
        };
        match &result {
            Ok(()) if action != Action::Status => ctx.emit(
                Level::Info,
                format!("{} ok ({} ms)", action.as_str(), report.elapsed.as_millis()),
            ),
            Ok(()) => {}
            Err(e) => ctx.emit(Level::Err, format!("{} failed: {e}", action.as_str())),
        }
        report
    }

    /// Runs a service's steps for this member in order. Stops at the first
    /// failure; a failed start is rolled back first.
    pub async fn execute(&self, svc: &ServiceRef, steps: &[Step]) -> Result<RunReport, Error> {
        for (i, step) in steps.iter().enumerate() {
            if step.member != self.host.member {
                return Err(Error::WrongMember {
                    step: step.member.clone(),
                    local: self.host.member.clone(),
                });
            }
            match step.op {
                Op::Fence => return Err(Error::NotLocal("fence")),
                Op::AwaitLease { .. } => return Err(Error::NotLocal("lease wait")),
                Op::Start | Op::Stop if step.spec.is_none() => return Err(Error::NoResource(i)),
                Op::Start | Op::Stop => {}
            }
        }
        let mut report = RunReport::default();
        let mut started: Vec<&Step> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let r = step.spec.as_ref().expect("checked above").as_ref();
            let action = if step.op == Op::Start {
                Action::Start
            } else {
                Action::Stop
            };
            let rep = self.act(svc, r, action).await;
            let ok = rep.ok;
            report.steps.push(rep);
            if ok {
                if action == Action::Start {
                    started.push(step);
                }
                continue;
            }
            report.failed = Some(i);
            if action == Action::Start {
                // Stop what this run started, and the half-started resource,
                // in stop order.
                for s in std::iter::once(step).chain(started.iter().rev().copied()) {
                    let r = s.spec.as_ref().expect("checked above").as_ref();
                    let mut rep = self.act(svc, r, Action::Stop).await;
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
        crate::plan::steps::start_all(&self.host.member, spec, &mut steps);
        self.execute(svc, &steps).await.expect("local steps")
    }

    /// Stops every resource of `spec` in stop order; stops at the first failure.
    pub async fn stop(&self, svc: &ServiceRef, spec: &ServiceSpec) -> RunReport {
        let mut steps = Vec::new();
        crate::plan::steps::stop_all(&self.host.member, spec, &mut steps);
        self.execute(svc, &steps).await.expect("local steps")
    }

    /// Checks resources in start order; the first failure ends the check.
    pub async fn check(&self, svc: &ServiceRef, spec: &ServiceSpec) -> RunReport {
        let mut report = RunReport::default();
        for (i, r) in spec.resources().enumerate() {
            let rep = self.act(svc, r, Action::Status).await;
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
