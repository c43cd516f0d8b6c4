//! Resource kinds on a member: start, stop and status of devices,
//! filesystems, NFS exports, IP addresses, Samba shares and applications
//! (SPEC §4). Every action is idempotent (starting a started resource or
//! stopping a stopped one succeeds), runs commands by argv, and is bounded
//! by the service timeout.

pub mod kinds;
pub mod sys;

pub use kinds::{application, device, filesystem, ip, nfs, samba};
pub use sys::{arp, host, managed_file, mountinfo, netlink, process};

use std::time::{Duration, Instant};

use clusvc_core::model::ResourceRef;
use clusvc_core::model::event::{Event, Level};

use crate::events::Events;

pub use host::Host;
pub use process::Command;

/// What to do with a resource: the plan's start and stop, and the
/// status check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// Bring it up.
    Start,
    /// Take it down.
    Stop,
    /// Check it.
    Status,
}

impl Verb {
    /// `start`, `stop` or `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Status => "status",
        }
    }
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Running a command failed (includes "timed out after 60s").
    #[error(transparent)]
    Process(#[from] process::Error),
    /// The resource is not in the required state, or a command failed.
    #[error("{0}")]
    Failed(String),
    /// Refused for safety (address in use, unsafe script, bad value).
    #[error("refused: {0}")]
    Refused(String),
}

/// Result of resource actions.
pub type Result<T = (), E = Error> = std::result::Result<T, E>;

/// The service an action belongs to, and its deadline.
pub struct Ctx<'a> {
    /// The member.
    pub host: &'a Host,
    /// Service name.
    pub service: &'a str,
    /// Service ID.
    pub service_id: u64,
    /// The label of the resource acted on (for events).
    pub resource: String,
    /// When the action must be done.
    pub deadline: Instant,
    /// The service timeout (for messages).
    pub timeout: Duration,
    /// What is done: a status check runs untracked (nothing it does needs
    /// waiting for after a crash; a successor kills what it left), in a
    /// cgroup used again.
    pub verb: Verb,
    /// Where events go.
    pub events: &'a dyn Events,
}

impl Ctx<'_> {
    /// Records an event about this resource.
    pub fn emit(&self, level: Level, message: impl Into<String>) {
        let message = message.into();
        match level {
            Level::Emerg | Level::Alert | Level::Crit | Level::Err => {
                tracing::error!(service = self.service, id = self.service_id, resource = %self.resource, "{message}")
            }
            Level::Warning => {
                tracing::warn!(service = self.service, id = self.service_id, resource = %self.resource, "{message}")
            }
            Level::Notice | Level::Info => {
                tracing::info!(service = self.service, id = self.service_id, resource = %self.resource, "{message}")
            }
            Level::Debug => {
                tracing::debug!(service = self.service, id = self.service_id, resource = %self.resource, "{message}")
            }
        }
        self.events.emit(Event {
            at: None,
            service: self.service.to_string(),
            service_id: self.service_id,
            member: self.host.member.clone(),
            resource: self.resource.clone(),
            level,
            message,
            reason: None,
            revision: None,
        });
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Runs a command in the member's namespaces within the deadline; its
    /// stdout lines become debug events and its stderr lines warnings.
    pub async fn run(&self, cmd: &Command) -> Result<process::Output> {
        let out = self.run_quiet(cmd).await?;
        for line in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
            self.emit(Level::Debug, format!("{}: {line}", cmd.program()));
        }
        Ok(out)
    }

    /// Like [`Ctx::run`], but leaves stdout to the caller (scripts' stdout
    /// carries `logAndPrint` levels).
    pub async fn run_quiet(&self, cmd: &Command) -> Result<process::Output> {
        let left = self.remaining();
        if left.is_zero() {
            return Err(process::Error::Timeout(self.timeout).into());
        }
        // Starts and stops leave a marker a successor waits on (see
        // `process::await_orphans`): 4 file operations, a fifth of the
        // daemon's CPU when spent on every check too.
        // A check is tracked only where it has no cgroup: there the
        // successor's wait is what ends one that hangs.
        let untracked = self.verb == Verb::Status && self.host.ns.cgroups.is_some();
        let track = (!untracked).then(|| self.host.state_dir.join("inflight"));
        let out = process::run_tracked(
            cmd,
            &self.host.ns,
            left,
            self.host.kill_grace,
            track.as_deref(),
        )
        .await
        .map_err(|e| match e {
            process::Error::Timeout(_) => process::Error::Timeout(self.timeout),
            other => other,
        })?;
        for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
            self.emit(Level::Warning, format!("{}: {line}", cmd.program()));
        }
        Ok(out)
    }

    /// Runs a command that must exit 0.
    pub async fn run_ok(&self, cmd: &Command) -> Result<process::Output> {
        let out = self.run(cmd).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(Error::Failed(format!(
                "{} {}",
                cmd.program(),
                out.describe()
            )))
        }
    }
}

/// Performs `action` on resource `r`.
pub async fn act(ctx: &Ctx<'_>, r: ResourceRef<'_>, action: Verb) -> Result {
    match r {
        ResourceRef::Device(d) => device::act(ctx, d, action).await,
        ResourceRef::Filesystem(f) => filesystem::act(ctx, f, action).await,
        ResourceRef::NfsExport(e) => nfs::act(ctx, e, action).await,
        ResourceRef::Ip(i) => ip::act(ctx, i, action).await,
        ResourceRef::SambaShare(s) => samba::act(ctx, s, action).await,
        ResourceRef::Application(a) => application::act(ctx, a, action).await,
    }
}
