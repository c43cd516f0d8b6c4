//! The agent interface: what the controller asks of a member (run steps,
//! check a service, probe what is up), so that cluster mode can move agents
//! to other machines without changing the controller. [`LocalAgent`] runs
//! the executor in-process for `clusvc run`.
//!
//! # Layout
//!
//! - this file: the [`Agent`] trait and [`LocalAgent`].
//! - [`events`]: the [`events::Events`] sink actions report to.
//! - [`exec`]: the executor: a service's steps for one member, in order,
//!   stopping at the first failure, rolling back a failed start; status
//!   checks that stop at the first failure.
//! - [`fence`]: the [`fence::Fencer`] interface the controller fences members
//!   through, and the command fencer.
//! - [`resources`]: what start, stop and status mean per kind
//!   (`resources/kinds/`), on the system interfaces they need
//!   (`resources/sys/`: processes, netlink, ARP, mountinfo, include files).
//!
//! Dependencies: this crate -> `clusvc-manifest` (script checks) ->
//! `clusvc-core`.

pub mod events;
pub mod exec;
pub mod fence;
pub mod remote;
pub mod resources;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::exec::{Executor, RunReport, ServiceRef};
use clusvc_core::model::{ResourceStatus, ServiceSpec};
use clusvc_core::plan::Step;

/// A boxed future, so agents can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Agent errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The member cannot be reached.
    #[error("agent of member {0} is unreachable")]
    Unreachable(String),
    /// The steps cannot be run there.
    #[error(transparent)]
    Exec(#[from] crate::exec::Error),
}

/// A member's agent.
pub trait Agent: Send + Sync {
    /// The member it acts on.
    fn member(&self) -> &str;
    /// Runs steps in order (see [`Executor::execute`]).
    fn execute<'a>(
        &'a self,
        svc: &'a ServiceRef,
        steps: &'a [Step],
    ) -> BoxFuture<'a, Result<RunReport, Error>>;
    /// [`Agent::execute`] as work item `work` (unique per batch of a
    /// plan), so that a controller that takes over can find it again
    /// ([`Agent::adopt`]). Local agents have no work items.
    fn execute_as<'a>(
        &'a self,
        svc: &'a ServiceRef,
        steps: &'a [Step],
        work: &'a str,
    ) -> BoxFuture<'a, Result<RunReport, Error>> {
        let _ = work;
        self.execute(svc, steps)
    }
    /// The report of work item `work` if a predecessor issued it to this
    /// member and it ran (waiting for it while it runs); `None` when it was
    /// never issued, was withdrawn, or was refused without running.
    fn adopt<'a>(
        &'a self,
        svc: &'a ServiceRef,
        work: &'a str,
    ) -> BoxFuture<'a, Result<Option<RunReport>, Error>> {
        let _ = (svc, work);
        Box::pin(async { Ok(None) })
    }
    /// A status check that stops at the first failure.
    fn check<'a>(&'a self, svc: &'a ServiceRef, spec: &'a ServiceSpec) -> BoxFuture<'a, RunReport>;
    /// Waits for actions a crashed predecessor left running to end.
    fn settle(&self) -> BoxFuture<'_, ()>;
    /// Whether the member is another machine (reached through the store).
    fn is_remote(&self) -> bool {
        false
    }
    /// Drops what is kept of the service's last work item once its plan is
    /// carried out and recorded (a remote member's item and result in the
    /// store); best effort.
    fn forget<'a>(&'a self, _service: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// The status of every resource (after a crash, before acting).
    fn probe<'a>(
        &'a self,
        svc: &'a ServiceRef,
        spec: &'a ServiceSpec,
    ) -> BoxFuture<'a, Vec<(String, ResourceStatus)>>;
}

/// The in-process agent of `clusvc run`.
pub struct LocalAgent {
    exec: Arc<Executor>,
}

impl LocalAgent {
    /// Wraps an executor.
    pub fn new(exec: Arc<Executor>) -> Self {
        Self { exec }
    }
}

impl Agent for LocalAgent {
    fn member(&self) -> &str {
        &self.exec.host().member
    }

    fn execute<'a>(
        &'a self,
        svc: &'a ServiceRef,
        steps: &'a [Step],
    ) -> BoxFuture<'a, Result<RunReport, Error>> {
        Box::pin(async move { Ok(self.exec.execute(svc, steps).await?) })
    }

    fn check<'a>(&'a self, svc: &'a ServiceRef, spec: &'a ServiceSpec) -> BoxFuture<'a, RunReport> {
        Box::pin(self.exec.check(svc, spec))
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        Box::pin(crate::resources::process::await_orphans_of(
            self.exec.host(),
        ))
    }

    fn probe<'a>(
        &'a self,
        svc: &'a ServiceRef,
        spec: &'a ServiceSpec,
    ) -> BoxFuture<'a, Vec<(String, ResourceStatus)>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for r in spec.resources() {
                let rep = self.exec.act(svc, r, crate::resources::Verb::Status).await;
                let st = if rep.ok {
                    ResourceStatus::Ok
                } else {
                    ResourceStatus::Stopped
                };
                out.push((rep.resource, st));
            }
            out
        })
    }
}
