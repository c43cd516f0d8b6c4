//! Services and members as `get` and `describe` show them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Member, ObservedService, Service, ServiceState, Timestamp};

/// A service's state as operators see it: a [`ServiceState`], or `pending`
/// before the controller has recorded the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisplayState {
    /// Applied, not yet seen by the controller.
    Pending,
    /// Its stored object no longer passes validation: held, not acted on.
    Invalid,
    /// A state of SPEC §5.
    #[serde(untagged)]
    State(ServiceState),
}

impl DisplayState {
    /// The state shown for a desired and observed service: frozen wins, a
    /// stopped service that is disabled shows `disabled`.
    pub fn of(desired: Option<&Service>, observed: Option<&ObservedService>) -> Self {
        let Some(o) = observed else {
            return DisplayState::Pending;
        };
        if o.frozen {
            return DisplayState::State(ServiceState::Frozen);
        }
        if o.state == ServiceState::Stopped && desired.is_some_and(|d| !d.spec.enabled) {
            return DisplayState::State(ServiceState::Disabled);
        }
        DisplayState::State(o.state)
    }

    /// The lowercase word.
    pub fn as_str(self) -> &'static str {
        match self {
            DisplayState::Pending => "pending",
            DisplayState::Invalid => "invalid",
            DisplayState::State(s) => s.as_str(),
        }
    }
}

impl fmt::Display for DisplayState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service as `get` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// The service's name.
    pub name: String,
    /// ID (none before the controller recorded it).
    pub id: Option<u64>,
    /// State as operators see it.
    pub state: DisplayState,
    /// Where it runs.
    pub member: Option<String>,
    /// Last status check.
    pub last_check: Option<Timestamp>,
    /// Restarts in the current window.
    pub restarts: usize,
    /// Creation time.
    pub created_at: Option<Timestamp>,
    /// Who applied it.
    pub source: Option<String>,
    /// The desired object (absent when deleted and still stopping).
    pub desired: Option<Service>,
    /// The observed record.
    pub observed: Option<ObservedService>,
    /// Why the stored object is invalid (state `invalid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

/// Most services one page of `GET /v1/services?limit=N` holds.
pub const MAX_PAGE: usize = 10_000;

/// One page of services (`GET /v1/services?limit=N&continue=TOKEN`, as
/// the Kubernetes API pages a list): in name order, and the token that
/// asks for the next page, absent on the last one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePage {
    /// The services of this page.
    pub items: Vec<ServiceView>,
    /// Pass as `continue` for the next page (opaque); none on the last.
    #[serde(rename = "continue", default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A member's state as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Its agent holds a live lease and it takes services.
    Alive,
    /// Its lease expired.
    Dead,
    /// Drained: it takes no services.
    Standby,
}

impl MemberState {
    /// The lowercase word.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Dead => "dead",
            MemberState::Standby => "standby",
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member as `get` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The member's name.
    pub name: String,
    /// Alive, dead or standby.
    pub state: MemberState,
    /// Services it holds.
    pub services: usize,
    /// The desired object.
    pub desired: Member,
    /// What is observed of it: when its lease expired, fencing, a run-time
    /// standby.
    #[serde(default)]
    pub observed: crate::model::ObservedMember,
}
