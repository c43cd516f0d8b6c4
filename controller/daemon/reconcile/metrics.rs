//! Prometheus metrics: services by state, actions by kind and result with
//! durations, plan computations, failovers, lease renewals.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges of one server.
/// An action and its result (`success` or `failure`).
type ActionKey = (&'static str, &'static str);

#[derive(Default)]
pub struct Metrics {
    /// Plans computed.
    pub plans: AtomicU64,
    /// Reconciles run.
    pub reconciles: AtomicU64,
    /// Relocations after failures.
    pub failovers: AtomicU64,
    /// Lease renewals by the local agent.
    pub lease_renewals: AtomicU64,
    /// (action, result) -> (count, total seconds).
    actions: Mutex<BTreeMap<ActionKey, (u64, f64)>>,
}

impl Metrics {
    /// Records one resource action.
    pub fn action(&self, action: &'static str, ok: bool, seconds: f64) {
        let mut a = self.actions.lock().unwrap_or_else(|p| p.into_inner());
        let e = a
            .entry((action, if ok { "success" } else { "failure" }))
            .or_default();
        e.0 += 1;
        e.1 += seconds;
    }

    /// Prometheus text, with the services-by-state gauge given by the caller.
    pub fn render(&self, states: &BTreeMap<String, usize>) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP clusvc_services Services by state.\n# TYPE clusvc_services gauge"
        );
        for (state, n) in states {
            let _ = writeln!(s, "clusvc_services{{state=\"{state}\"}} {n}");
        }
        let counters = [
            ("clusvc_plans_total", "Plans computed.", &self.plans),
            (
                "clusvc_reconciles_total",
                "Reconcile passes.",
                &self.reconciles,
            ),
            (
                "clusvc_failovers_total",
                "Relocations after a failure.",
                &self.failovers,
            ),
            (
                "clusvc_lease_renewals_total",
                "Lease renewals of the local agent.",
                &self.lease_renewals,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP clusvc_actions_total Resource actions.\n# TYPE clusvc_actions_total counter"
        );
        let a = self.actions.lock().unwrap_or_else(|p| p.into_inner());
        for ((action, result), (n, _)) in a.iter() {
            let _ = writeln!(
                s,
                "clusvc_actions_total{{action=\"{action}\",result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(
            s,
            "# HELP clusvc_action_seconds_total Time spent in resource actions.\n# TYPE clusvc_action_seconds_total counter"
        );
        for ((action, result), (_, secs)) in a.iter() {
            let _ = writeln!(
                s,
                "clusvc_action_seconds_total{{action=\"{action}\",result=\"{result}\"}} {secs:.6}"
            );
        }
        s
    }
}
