//! Fencing: powering off or isolating a member so that whatever it still
//! runs can safely run elsewhere. The controller asks a [`Fencer`]; the
//! [`CommandFencer`] runs the member's `spec.fencing.command` by argv with
//! its timeout, as Pacemaker runs a fence agent.

use std::time::Duration;

use clusvc_core::model::Fencing;

use crate::BoxFuture;
use crate::resources::process::{self, Command, Namespaces};

/// Why a member could not be fenced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The member has no fencing configured.
    #[error("no fencing configured")]
    NotConfigured,
    /// The fencing command ran and failed (or timed out).
    #[error("{0}")]
    Failed(String),
    /// The fencing command could not be run.
    #[error(transparent)]
    Process(#[from] process::Error),
}

/// Fences members.
pub trait Fencer: Send + Sync {
    /// Fences `member` as `fencing` says; `Ok` only when the command
    /// reported success.
    fn fence<'a>(
        &'a self,
        member: &'a str,
        fencing: &'a Fencing,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// Runs the fencing command on this machine.
#[derive(Debug, Clone)]
pub struct CommandFencer {
    /// Between SIGTERM and SIGKILL when the command overruns its timeout.
    pub kill_grace: Duration,
}

impl Default for CommandFencer {
    fn default() -> Self {
        Self {
            kill_grace: Duration::from_secs(5),
        }
    }
}

impl Fencer for CommandFencer {
    fn fence<'a>(
        &'a self,
        member: &'a str,
        fencing: &'a Fencing,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            tracing::warn!("fencing {member}: {}", fencing.command.join(" "));
            let out = process::run(
                &Command::new(&fencing.command),
                &Namespaces::default(),
                fencing.timeout.get(),
                self.kill_grace,
            )
            .await?;
            if out.success() {
                Ok(())
            } else {
                Err(Error::Failed(out.describe()))
            }
        })
    }
}
