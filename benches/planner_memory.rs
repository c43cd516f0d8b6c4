//! Peak memory of planning 64 members x 10,000 services with one member dead:
//! the growth of the process's peak RSS (VmHWM) while building the state and
//! planning, printed in MB. `cargo bench --bench planner_memory`.

use std::time::Instant;

use clusvc_core::plan::plan;
use clusvc_core::testkit::Cluster;

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let before = peak_rss_kb();
    let cluster = Cluster::synthetic(64, 10_000).with_dead_member(0);
    let after_state = peak_rss_kb();
    let started = Instant::now();
    let p = plan(&cluster.desired, &cluster.observed, cluster.now);
    let elapsed = started.elapsed();
    let after_plan = peak_rss_kb();
    println!(
        "64x10000, one member dead: {} relocations planned in {:.1} ms; peak RSS {:.1} MB \
         (state {:.1} MB, planning +{:.1} MB, process baseline {:.1} MB)",
        p.summary.relocate,
        elapsed.as_secs_f64() * 1e3,
        after_plan as f64 / 1024.0,
        (after_state - before) as f64 / 1024.0,
        (after_plan - after_state) as f64 / 1024.0,
        before as f64 / 1024.0,
    );
}
