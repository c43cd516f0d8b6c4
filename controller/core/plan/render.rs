//! The plan text of SPEC §5, stable enough to review in a pull request.

use std::fmt;

use super::{Change, Plan, ServicePlan, Step};

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for sp in &self.services {
            write!(f, "{sp}")?;
        }
        let s = &self.summary;
        writeln!(
            f,
            "Plan: {} to start, {} to relocate, {} to restart, {} to stop, {} unchanged.",
            s.start, s.relocate, s.restart, s.stop, s.unchanged
        )
    }
}

impl fmt::Display for ServicePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headline = match &self.change {
            Change::Start { to } => format!("start on {to}"),
            Change::Stop { from } => format!("stop on {from}"),
            Change::Relocate { from, to } => format!("relocate {from} -> {to}"),
            Change::Restart { on } => format!("restart on {on}"),
            Change::Reconfigure { on } => format!("reconfigure on {on}"),
            Change::Forget => "delete".to_string(),
            Change::Hold { state } => format!("stays {state}"),
        };
        writeln!(
            f,
            "service/{} (id {}): {headline} ({})",
            self.service, self.id, self.reason
        )?;
        for step in &self.steps {
            writeln!(f, "  {step}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Resource {
                member,
                op,
                resource,
            } => write!(f, "{member}: {} {}", op.as_str(), resource.label()),
            Step::Fence { member, .. } => write!(f, "{member}: fence"),
            Step::AwaitFence { member, .. } => write!(f, "{member}: wait for its fence (above)"),
            Step::AwaitLease { member, until } => {
                write!(f, "{member}: wait for lease expiry (until {until})")
            }
        }
    }
}
