//! Planning one pass after a member died: 16 x 1,000, 64 x 1,000 and
//! 64 x 10,000 services of six resources each.
//!
//! `cargo bench --bench planner`; peak memory: `cargo bench --bench planner_memory`.

use std::hint::black_box;

use clusvc_core::plan::plan;
use clusvc_core::testkit::Cluster;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_one_member_dead");
    for (members, services) in [(16, 1_000), (64, 1_000), (64, 10_000)] {
        let cluster = Cluster::synthetic(members, services).with_dead_member(0);
        let p = plan(&cluster.desired, &cluster.observed, cluster.now);
        assert_eq!(p.summary.relocate, services.div_ceil(members));
        group.bench_function(format!("{members}x{services}"), |b| {
            b.iter(|| {
                plan(
                    black_box(&cluster.desired),
                    black_box(&cluster.observed),
                    cluster.now,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
