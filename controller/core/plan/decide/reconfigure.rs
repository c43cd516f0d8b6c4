//! Reconfiguration: a running service whose resources changed restarts the
//! first changed resource and every resource after it in start order
//! (stopped in stop order); earlier resources keep running.

use crate::model::{ObservedService, ServiceSpec, ServiceState};
use crate::plan::steps::{first_change, reconfigure};
use crate::plan::{Change, ServicePlan};

use super::{Context, Draft, outcome};

impl<'a> Context<'a> {
    /// Nothing else applies: reconfigure if the resources changed, else
    /// nothing to do.
    pub(super) fn reconfigure(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        o: &'a ObservedService,
        running: &ServiceSpec,
        m: &'a str,
    ) -> Option<ServicePlan> {
        // `running` is what was started: the changed resources stop as
        // they were started.
        let from = first_change(running, spec)?;
        let old = running.resources().nth(from).map(|r| r.label());
        let new = spec.resources().nth(from).map(|r| r.label());
        let has = |s: &ServiceSpec, label: &str| s.resources().any(|r| r.label() == label);
        let why = match (old, new) {
            (Some(o), Some(n)) if o == n => format!("{n} changed"),
            (Some(o), Some(n)) if !has(spec, &o) && !has(running, &n) => {
                format!("{o} replaced by {n}")
            }
            (Some(o), _) if !has(spec, &o) => format!("{o} removed"),
            (_, Some(n)) if !has(running, &n) => format!("{n} added"),
            (_, Some(n)) => format!("{n} changed"),
            (Some(o), None) => format!("{o} removed"),
            (None, None) => "resources changed".to_string(),
        };
        reconfigure(m, running, spec, from, &mut draft.steps);
        Some(draft.finish(
            Change::Reconfigure { on: m.into() },
            why,
            outcome(ServiceState::Running, Some(m), o.placement_reason),
        ))
    }
}
