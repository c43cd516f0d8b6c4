//! The plan text of SPEC §5, stable enough to review in a pull request.

use std::fmt::{self, Write as _};

use super::{Action, Op, Plan, ServicePlan, Step};

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
        let headline = match &self.action {
            Action::Start { to } => format!("start on {to}"),
            Action::Stop { from } => format!("stop on {from}"),
            Action::Relocate { from, to } => format!("relocate {from} -> {to}"),
            Action::Restart { on } => format!("restart on {on}"),
            Action::Reconfigure { on } => format!("reconfigure on {on}"),
            Action::Forget => "delete".to_string(),
            Action::Hold { state } => format!("stays {state}"),
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
        let mut line = String::new();
        let _ = write!(line, "{}: ", self.member);
        match (self.op, &self.resource) {
            (Op::Start, Some(r)) => {
                let _ = write!(line, "start {r}");
            }
            (Op::Stop, Some(r)) => {
                let _ = write!(line, "stop {r}");
            }
            (Op::Start, None) => line.push_str("start"),
            (Op::Stop, None) => line.push_str("stop"),
            (Op::Fence, _) => line.push_str("fence"),
            (Op::AwaitLease { until }, _) => {
                let _ = write!(line, "wait for lease expiry (until {until})");
            }
        }
        f.write_str(&line)
    }
}
