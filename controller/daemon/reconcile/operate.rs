//! Operator requests that change what is observed of a service, not its
//! spec: relocate, restart, freeze, unfreeze, clear. The next reconcile acts
//! on them. (`enable` and `disable` change the spec: see `crate::api`.)

use std::fmt;

use clusvc_core::model::event::Level;
use clusvc_core::model::{ObservedService, RelocateRequest, ServiceState};
use clusvc_core::plan::placement::Members;
use clusvc_store::Store;

use super::{Controller, Error};

/// An operator request on a service's observed record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "op", content = "to")]
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
        match self {
            Request::Relocate(Some(to)) => write!(f, "relocate to {to}"),
            Request::Relocate(None) => f.write_str("relocate to the best other member"),
            Request::Restart => f.write_str("restart"),
            Request::Freeze => f.write_str("freeze"),
            Request::Unfreeze => f.write_str("unfreeze"),
            Request::Clear => f.write_str("clear"),
        }
    }
}

/// Why a request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    /// No such service (nothing recorded for it yet).
    #[error("services \"{0}\" not found")]
    NotFound(String),
    /// A relocation to a member that is not declared.
    #[error("members \"{0}\" not found")]
    UnknownMember(String),
    /// The request cannot be carried out in the current state, and why.
    #[error("{0}")]
    Impossible(String),
    /// Recording it failed.
    #[error(transparent)]
    Controller(#[from] Error),
    /// (Cluster servers) no leader took the request in time; it stays
    /// recorded and the next leader carries it out.
    #[error(
        "no controller took the request within {0:?} (is a server elected?); it stays recorded and the next leader carries it out"
    )]
    NoLeader(std::time::Duration),
}

impl<S: Store> Controller<S> {
    /// Checks a request against the current state, as `clusvcadm` does:
    /// what cannot be done is refused at once with the reason, never kept
    /// as a lasting constraint.
    fn check_request(
        &self,
        name: &str,
        o: &ObservedService,
        request: &Request,
    ) -> Result<(), OperateError> {
        let impossible = |why: String| Err(OperateError::Impossible(why));
        let running = o.member.as_deref().filter(|_| {
            matches!(
                o.state,
                ServiceState::Running | ServiceState::Starting | ServiceState::Failed
            )
        });
        match request {
            Request::Relocate(_) | Request::Restart if o.frozen => {
                impossible(format!("service {name} is frozen; unfreeze it first"))
            }
            Request::Relocate(to) => {
                let Some(current) = running else {
                    return impossible(format!("service {name} is not running"));
                };
                let c = self.cache.read();
                let Some(svc) = c.services().get(name) else {
                    return impossible(format!("service {name} is being deleted"));
                };
                let members = Members::new(c.desired(), &c.observed);
                match to.as_deref() {
                    Some(t) if !c.members().contains_key(t) => {
                        Err(OperateError::UnknownMember(t.to_string()))
                    }
                    Some(t) if t == current => {
                        impossible(format!("service {name} already runs on {t}"))
                    }
                    Some(t) => match members.cannot_start(&svc.spec, t) {
                        Some(why) => {
                            impossible(format!("cannot relocate {name}: member {t} {why}"))
                        }
                        None => Ok(()),
                    },
                    None => match members.best(&svc.spec, Some(current)) {
                        Ok(_) => Ok(()),
                        Err(none) => impossible(format!("cannot relocate {name}: {none}")),
                    },
                }
            }
            Request::Restart if running.is_none() => {
                impossible(format!("service {name} is not running"))
            }
            _ => Ok(()),
        }
    }

    /// Checks a request against what this controller knows now (a
    /// cluster server, before it hands the request to the leader).
    pub(crate) fn precheck(&self, name: &str, request: &Request) -> Result<(), OperateError> {
        let o = self
            .cache
            .read()
            .observed
            .services
            .get(name)
            .cloned()
            .ok_or_else(|| OperateError::NotFound(name.to_string()))?;
        self.check_request(name, &o, request)
    }

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
        self.check_request(name, &o, &request)?;
        match &request {
            Request::Relocate(to) => {
                o.relocate = Some(RelocateRequest { to: to.clone() });
            }
            Request::Restart => o.restart_requested = true,
            Request::Freeze => o.frozen = true,
            Request::Unfreeze => o.frozen = false,
            Request::Clear => o.clear_failure(),
        }
        self.record(name, Some(&o)).await?;
        self.emit(name, Level::Notice, format!("operator: {request}"));
        self.sched.now(name);
        Ok(())
    }
}
