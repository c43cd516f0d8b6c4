//! Operator requests that change what is observed of a service, not its
//! spec: relocate, restart, freeze, unfreeze, clear. The next reconcile acts
//! on them. (`enable` and `disable` change the spec: see `crate::api`.)

use std::fmt;

use clusvc_core::model::event::Level;
use clusvc_core::model::{RelocateRequest, ServiceState};
use clusvc_store::Store;

use super::{Controller, Error};

/// An operator request on a service's observed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Move it, to a member or the best other one.
    Relocate(Option<String>),
    /// Stop and start it in place.
    Restart,
    /// Stop checking and changing it.
    Freeze,
    /// Undo `Freeze`.
    Unfreeze,
    /// Forget a failure (failed or blocked) and retry.
    Clear,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The words events have always used: `operator: relocate(some("n2"))`.
        let text = match self {
            Request::Relocate(to) => format!("relocate({to:?})"),
            Request::Restart => "restart".into(),
            Request::Freeze => "freeze".into(),
            Request::Unfreeze => "unfreeze".into(),
            Request::Clear => "clear".into(),
        };
        f.write_str(&text.to_lowercase())
    }
}

/// Why a request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    /// No such service (nothing recorded for it yet).
    #[error("service {0:?} not found")]
    NotFound(String),
    /// A relocation of a service that runs nowhere.
    #[error("service {0:?} is not running")]
    NotRunning(String),
    /// Recording it failed.
    #[error(transparent)]
    Controller(#[from] Error),
}

impl<S: Store> Controller<S> {
    /// Records an operator request on a service and wakes it.
    pub async fn operate(&self, name: &str, request: Request) -> Result<(), OperateError> {
        let service_lock = self.lock_for(name);
        let _guard = service_lock.lock().await;
        let mut o = self
            .cache
            .read()
            .observed
            .services
            .get(name)
            .cloned()
            .ok_or_else(|| OperateError::NotFound(name.to_string()))?;
        match &request {
            Request::Relocate(to) => {
                if o.member.is_none() {
                    return Err(OperateError::NotRunning(name.to_string()));
                }
                o.relocate = Some(RelocateRequest { to: to.clone() });
            }
            Request::Restart => o.restart_requested = true,
            Request::Freeze => o.frozen = true,
            Request::Unfreeze => o.frozen = false,
            Request::Clear => {
                match o.state {
                    ServiceState::Failed if o.member.is_none() => o.state = ServiceState::Stopped,
                    ServiceState::Failed => {}
                    ServiceState::Blocked => o.state = ServiceState::Stopping,
                    _ => {}
                }
                o.failure = None;
                o.restarts.clear();
            }
        }
        self.record(name, Some(&o)).await?;
        self.emit(name, Level::Notice, format!("operator: {request}"));
        self.sched.now(name);
        Ok(())
    }
}
