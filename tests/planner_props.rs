//! Planner invariants over random clusters (proptest):
//! - steps honour the fixed order (stop order, then start order; a member's
//!   stops and fences come before any start);
//! - planning the state that results from executing a plan gives no changes;
//! - no plan starts a service on a member while it may run on another;
//! - restricted placement is never violated;
//! - a standby, dead or undeclared member never receives a start.

use std::collections::BTreeMap;

use clusvc_core::model::{
    Application, DesiredState, Device, Failure, Fencing, Filesystem, IpAddress, Member, NfsExport,
    Object, ObservedMember, ObservedService, ObservedState, Phase, Placement, PlacementReason,
    Recovery, RecoveryPolicy, RelocateRequest, ResourceStatus, SambaShare, Service, ServiceSpec,
    ServiceState, Timestamp,
};
use clusvc_core::plan::{Op, Plan, plan, simulate};
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000_000;

fn member_name(i: usize) -> String {
    format!("m{i}")
}

/// Resources with idents unique across the cluster (service index `s`).
fn spec_strategy(s: usize, members: usize) -> impl Strategy<Value = ServiceSpec> {
    let placement = (
        proptest::sample::subsequence((0..members).collect::<Vec<_>>(), 0..=members),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<u32> = (0..8).collect();
            for i in (1..v.len()).rev() {
                v.swap(i, (rng.random::<u32>() as usize) % (i + 1));
            }
            v
        }),
    )
        .prop_map(|(list, ordered, restricted, failback, shuffle)| {
            let mut list = list;
            list.sort_by_key(|i| shuffle.get(*i).copied().unwrap_or(0));
            let restricted = restricted && !list.is_empty();
            Placement {
                members: list.into_iter().map(member_name).collect(),
                ordered,
                restricted,
                failback,
            }
        });
    let recovery = (
        prop_oneof![
            Just(RecoveryPolicy::Restart),
            Just(RecoveryPolicy::Relocate),
            Just(RecoveryPolicy::Disable)
        ],
        0u32..4,
    )
        .prop_map(|(policy, max_restarts)| Recovery {
            policy,
            max_restarts,
            ..Recovery::default()
        });
    (
        proptest::bool::weighted(0.85),
        placement,
        recovery,
        [0usize..3, 0..3, 0..2, 0..3, 0..2, 0..3],
        0u8..4,
    )
        .prop_map(move |(enabled, placement, recovery, counts, variant)| {
            let [nd, nf, ne, ni, ns, na] = counts;
            ServiceSpec {
                enabled,
                placement,
                recovery,
                devices: (0..nd)
                    .map(|i| Device {
                        path: format!("/dev/s{s}d{i}"),
                        activate: vec![],
                        deactivate: vec![],
                    })
                    .collect(),
                filesystems: (0..nf)
                    .map(|i| Filesystem {
                        device: format!("/dev/s{s}d0"),
                        mount_point: format!("/srv/s{s}/f{i}"),
                        fs_type: Some("ext4".into()),
                        options: if variant == 1 {
                            vec!["noatime".into()]
                        } else {
                            vec![]
                        },
                        fsck: false,
                        force_unmount: false,
                    })
                    .collect(),
                nfs_exports: (0..ne)
                    .map(|i| NfsExport {
                        path: format!("/srv/s{s}/e{i}"),
                        clients: vec!["*".into()],
                        options: vec![],
                        server: Default::default(),
                    })
                    .collect(),
                ip_addresses: (0..ni)
                    .map(|i| IpAddress {
                        address: format!("10.{s}.{i}.{}/24", 1 + variant),
                        interface: None,
                    })
                    .collect(),
                samba_shares: (0..ns)
                    .map(|i| SambaShare {
                        name: format!("s{s}share{i}"),
                        path: format!("/srv/s{s}"),
                        parameters: BTreeMap::new(),
                    })
                    .collect(),
                applications: (0..na)
                    .map(|i| Application {
                        ocf: Some(format!("heartbeat:s{s}a{i}")),
                        ..Application::default()
                    })
                    .collect(),
                ..ServiceSpec::default()
            }
        })
}

#[derive(Debug, Clone)]
struct Cluster {
    desired: DesiredState,
    observed: ObservedState,
}

fn observed_service_strategy(
    id: u64,
    members: usize,
    spec: ServiceSpec,
    other: ServiceSpec,
) -> impl Strategy<Value = Option<ObservedService>> {
    let labels: Vec<String> = spec.resources().map(|r| r.label()).collect();
    let state = prop_oneof![
        Just(ServiceState::Stopped),
        Just(ServiceState::Running),
        Just(ServiceState::Running),
        Just(ServiceState::Failed),
        Just(ServiceState::Blocked),
        Just(ServiceState::Starting),
        Just(ServiceState::Stopping),
        Just(ServiceState::Relocating),
        Just(ServiceState::Disabled),
    ];
    let statuses = proptest::collection::vec(
        prop_oneof![
            Just(ResourceStatus::Ok),
            Just(ResourceStatus::Failed),
            Just(ResourceStatus::Stopped),
            Just(ResourceStatus::Unknown)
        ],
        labels.len(),
    );
    proptest::option::weighted(
        0.8,
        (
            state,
            0..members + 1,
            statuses,
            prop_oneof![Just(Phase::Check), Just(Phase::Start), Just(Phase::Stop)],
            proptest::collection::vec(0u64..1_200, 0..4),
            0u8..4,
            proptest::option::of(proptest::option::of(0..members)),
            any::<bool>(),
            prop_oneof![
                Just(None),
                Just(Some(PlacementReason::Initial)),
                Just(Some(PlacementReason::Failover)),
                Just(Some(PlacementReason::Manual)),
                Just(Some(PlacementReason::Failback)),
                Just(Some(PlacementReason::Recovery)),
            ],
            proptest::bool::weighted(0.15),
            proptest::option::of(0u64..120),
        ),
    )
    .prop_map(move |o| {
        let (
            state,
            m,
            statuses,
            phase,
            restarts,
            started,
            relocate,
            restart_req,
            reason,
            frozen,
            failed_ago,
        ) = o?;
        let member = (!matches!(state, ServiceState::Stopped | ServiceState::Disabled))
            .then(|| member_name(m));
        let member = if m == members && state == ServiceState::Failed {
            None
        } else {
            member
        };
        Some(ObservedService {
            id,
            member,
            state,
            frozen,
            resources: labels.iter().cloned().zip(statuses).collect(),
            failure: matches!(state, ServiceState::Failed | ServiceState::Blocked).then(|| {
                Failure {
                    phase: if state == ServiceState::Blocked {
                        Phase::Stop
                    } else {
                        phase
                    },
                    resource: labels.first().cloned().unwrap_or_default(),
                    reason: String::new(),
                    at: failed_ago.map(|s| Timestamp::from_millis(NOW - s * 1000)),
                }
            }),
            restarts: restarts
                .into_iter()
                .map(|s| Timestamp::from_millis(NOW - s * 1000))
                .collect(),
            started_with: match started {
                0 => None,
                1 => Some(other.clone()),
                _ => Some(spec.clone()),
            },
            placement_reason: reason,
            relocate: relocate.map(|to| RelocateRequest {
                to: to.map(member_name),
            }),
            restart_requested: restart_req,
            last_check: None,
            created_at: None,
        })
    })
}

fn cluster_strategy() -> impl Strategy<Value = Cluster> {
    (1usize..6, 0usize..9).prop_flat_map(|(nm, ns)| {
        let members = proptest::collection::vec(
            (
                proptest::bool::weighted(0.2),
                0u8..5,
                any::<bool>(),
                any::<bool>(),
                0u64..120,
                proptest::option::of(0u64..150),
            ),
            nm,
        );
        let specs = (0..ns)
            .map(|s| (spec_strategy(s, nm), spec_strategy(s, nm), any::<bool>()))
            .collect::<Vec<_>>();
        (Just(nm), members, specs).prop_flat_map(|(nm, members, specs)| {
            let observed_services = specs
                .iter()
                .enumerate()
                .map(|(i, (spec, other, _))| {
                    observed_service_strategy(i as u64, nm, spec.clone(), other.clone())
                })
                .collect::<Vec<_>>();
            (Just(members), Just(specs), observed_services).prop_map(
                |(members, specs, observed_services)| {
                    let mut objects = Vec::new();
                    let mut observed = ObservedState::default();
                    for (i, (standby, health, fencing, fence_failed, expired_ago, fenced_ago)) in
                        members.iter().enumerate()
                    {
                        let mut m = Member::new(member_name(i));
                        m.spec.standby = *standby;
                        let fenced_at = fenced_ago.map(|s| Timestamp::from_millis(NOW - s * 1000));
                        if *fencing {
                            m.spec.fencing = Some(Fencing {
                                command: vec!["/bin/true".into()],
                                timeout: clusvc_core::model::Duration::from_secs(5),
                            });
                        }
                        objects.push(Object::Member(m));
                        let om = match health {
                            0 => ObservedMember {
                                alive: false,
                                lease_expired_at: Some(Timestamp::from_millis(
                                    NOW - expired_ago * 1000,
                                )),
                                fencing_failed: *fence_failed,
                                fenced_at,
                                ..ObservedMember::default()
                            },
                            1 => ObservedMember {
                                standby: true,
                                ..ObservedMember::default()
                            },
                            _ => ObservedMember {
                                fenced_at,
                                ..ObservedMember::default()
                            },
                        };
                        observed.members.insert(member_name(i), om);
                    }
                    for (i, ((spec, _, declared), obs)) in
                        specs.into_iter().zip(observed_services).enumerate()
                    {
                        let name = format!("svc{i}");
                        if declared || obs.is_none() {
                            let mut s = Service::new(&name);
                            s.spec = spec;
                            objects.push(Object::Service(s));
                        }
                        if let Some(o) = obs {
                            observed.services.insert(name, o);
                        }
                    }
                    let desired = DesiredState::from_objects(objects)
                        .unwrap_or_else(|e| panic!("generated an invalid cluster: {e:?}"));
                    Cluster { desired, observed }
                },
            )
        })
    })
}

/// Position of each resource label in start order within a spec.
fn positions(spec: &ServiceSpec) -> BTreeMap<String, (clusvc_core::model::Kind, usize)> {
    spec.resources()
        .enumerate()
        .map(|(i, r)| (r.label(), (r.kind(), i)))
        .collect()
}

/// Rank of each resource label in the seed's stop table order, computed
/// from the table itself (not from the planner's helper).
fn stop_ranks(spec: &ServiceSpec) -> BTreeMap<String, (usize, std::cmp::Reverse<usize>)> {
    const STOP_TABLE: [clusvc_core::model::Kind; 6] = [
        clusvc_core::model::Kind::Application,
        clusvc_core::model::Kind::Ip,
        clusvc_core::model::Kind::NfsExport,
        clusvc_core::model::Kind::SambaShare,
        clusvc_core::model::Kind::Filesystem,
        clusvc_core::model::Kind::Device,
    ];
    spec.resources()
        .enumerate()
        .map(|(i, r)| {
            let kind_rank = STOP_TABLE.iter().position(|k| *k == r.kind()).unwrap();
            (r.label(), (kind_rank, std::cmp::Reverse(i)))
        })
        .collect()
}

fn check_order(c: &Cluster, p: &Plan) {
    for sp in &p.services {
        let new = c.desired.services().get(&sp.service).map(|s| &s.spec);
        let obs = c.observed.services.get(&sp.service);
        let old = obs.and_then(|o| o.started_with.as_ref()).or(new);
        let mut started = false;
        let mut last_start: Option<usize> = None;
        let mut last_stop: Option<(usize, std::cmp::Reverse<usize>)> = None;
        for step in &sp.steps {
            match step.op() {
                Some(Op::Start) => {
                    started = true;
                    let pos = positions(new.expect("start needs a desired spec"));
                    let (_, i) = pos[&step.label().unwrap()];
                    assert!(
                        last_start.is_none_or(|l| i > l),
                        "{}: start out of order\n{p}",
                        sp.service
                    );
                    last_start = Some(i);
                }
                Some(Op::Stop) => {
                    assert!(!started, "{}: a stop after a start\n{p}", sp.service);
                    // The seed's stop table: kinds by stop position, several
                    // of a kind in reverse manifest order.
                    let rank = stop_ranks(old.unwrap());
                    let i = rank[&step.label().unwrap()];
                    assert!(
                        last_stop.is_none_or(|l| i > l),
                        "{}: stop out of order (not the stop table)\n{p}",
                        sp.service
                    );
                    last_stop = Some(i);
                }
                None => {
                    assert!(!started, "{}: fence/wait after a start\n{p}", sp.service);
                }
            }
        }
    }
}

fn check_safety(c: &Cluster, p: &Plan) {
    for sp in &p.services {
        let starts: Vec<&str> = sp
            .steps
            .iter()
            .filter(|s| s.op() == Some(Op::Start))
            .map(|s| s.member())
            .collect();
        let Some(&target) = starts.first() else {
            continue;
        };
        assert!(
            starts.iter().all(|m| *m == target),
            "{}: starts on two members\n{p}",
            sp.service
        );
        let svc = &c.desired.services()[&sp.service];
        let member = &c.desired.members().get(target);
        assert!(member.is_some(), "start on undeclared member\n{p}");
        let om = c.observed.members.get(target).cloned().unwrap_or_default();
        assert!(
            om.alive,
            "{}: start on dead member {target}\n{p}",
            sp.service
        );
        assert!(
            !om.standby && !member.unwrap().spec.standby,
            "{}: start on standby member {target}\n{p}",
            sp.service
        );
        if svc.spec.placement.restricted {
            assert!(
                svc.spec.placement.members.iter().any(|m| m == target),
                "{}: restricted placement violated\n{p}",
                sp.service
            );
        }
        // Where it may still run, it must be stopped, fenced or waited for first.
        if let Some(o) = c.observed.services.get(&sp.service)
            && let Some(m) = o.member.as_deref()
            && !matches!(o.state, ServiceState::Stopped | ServiceState::Disabled)
            && m != target
        {
            let first_start = sp
                .steps
                .iter()
                .position(|s| s.op() == Some(Op::Start))
                .unwrap();
            let before = &sp.steps[..first_start];
            let fenced_or_waited = before.iter().any(|s| s.member() == m && s.op().is_none());
            let om = c.observed.members.get(m).cloned().unwrap_or_default();
            let already_fenced = !om.alive && om.fenced_at.is_some();
            if !fenced_or_waited && !already_fenced {
                let running = o
                    .started_with
                    .as_ref()
                    .unwrap_or(&c.desired.services()[&sp.service].spec);
                let stopped: Vec<String> = before
                    .iter()
                    .filter(|s| s.member() == m && s.op() == Some(Op::Stop))
                    .filter_map(|s| s.label())
                    .collect();
                for r in running.resources() {
                    let label = r.label();
                    let status = o.resources.get(&label).copied().unwrap_or_default();
                    let may_be_up = match (o.state, o.failure.as_ref().map(|f| f.phase)) {
                        (ServiceState::Failed, Some(Phase::Start)) => {
                            matches!(status, ResourceStatus::Ok | ResourceStatus::Failed)
                        }
                        (ServiceState::Stopping | ServiceState::Relocating, _) => {
                            status != ResourceStatus::Stopped
                        }
                        _ => true,
                    };
                    assert!(
                        !may_be_up || stopped.contains(&label),
                        "{}: starts on {target} while {label} may run on {m}\n{p}",
                        sp.service
                    );
                }
            }
        }
    }
}

/// `PROPTEST_CASES` when set (a longer run in release), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Preference rank as the spec defines it: list position when ordered,
/// 0 for any listed member when unordered, after every listed member
/// otherwise.
fn rank(p: &Placement, member: &str) -> usize {
    match p.members.iter().position(|m| m == member) {
        Some(i) if p.ordered => i,
        Some(_) => 0,
        None => p.members.len(),
    }
}

/// Members that may take a service, computed from the spec's rules.
fn eligible(c: &Cluster, p: &Placement, fenced_now: &[String]) -> Vec<String> {
    c.desired
        .members()
        .iter()
        .filter(|(name, m)| {
            let om = c.observed.members.get(*name).cloned().unwrap_or_default();
            om.alive
                && !fenced_now.contains(name)
                && !om.standby
                && !m.spec.standby
                && (!p.restricted || p.members.contains(name))
        })
        .map(|(n, _)| n.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    #[test]
    fn steps_honour_the_fixed_order(c in cluster_strategy()) {
        let p = plan(&c.desired, &c.observed, Timestamp::from_millis(NOW));
        check_order(&c, &p);
    }

    #[test]
    fn never_starts_where_it_may_not_or_while_running_elsewhere(c in cluster_strategy()) {
        let p = plan(&c.desired, &c.observed, Timestamp::from_millis(NOW));
        check_safety(&c, &p);
    }

    #[test]
    fn replanning_an_achieved_state_is_empty(c in cluster_strategy()) {
        let now = Timestamp::from_millis(NOW);
        let p = plan(&c.desired, &c.observed, now);
        let after = simulate::apply(&c.desired, &c.observed, &p);
        let again = plan(&c.desired, &after, now);
        prop_assert!(!again.has_changes(), "first plan:\n{p}\nsecond plan:\n{again}");
    }

    #[test]
    fn planning_is_deterministic(c in cluster_strategy()) {
        let now = Timestamp::from_millis(NOW);
        prop_assert_eq!(plan(&c.desired, &c.observed, now), plan(&c.desired, &c.observed, now));
    }

    #[test]
    fn a_disabled_service_never_starts(c in cluster_strategy()) {
        let p = plan(&c.desired, &c.observed, Timestamp::from_millis(NOW));
        for sp in &p.services {
            if c.desired.services().get(&sp.service).is_some_and(|s| !s.spec.enabled) {
                prop_assert!(
                    sp.steps.iter().all(|s| s.op() != Some(Op::Start)),
                    "{} is disabled but starts:\n{p}", sp.service
                );
            }
        }
    }

    #[test]
    fn a_frozen_service_gets_no_plan(c in cluster_strategy()) {
        let p = plan(&c.desired, &c.observed, Timestamp::from_millis(NOW));
        for (name, o) in &c.observed.services {
            if o.frozen {
                prop_assert!(p.service(name).is_none(), "{name} is frozen:\n{p}");
            }
        }
    }

    #[test]
    fn a_blocked_service_starts_elsewhere_only_after_a_fence_for_this_incident(
        c in cluster_strategy()
    ) {
        let p = plan(&c.desired, &c.observed, Timestamp::from_millis(NOW));
        for sp in &p.services {
            let Some(o) = c.observed.services.get(&sp.service) else { continue };
            let Some(m) = o.member.as_deref() else { continue };
            if o.state != ServiceState::Blocked {
                continue;
            }
            let starts_elsewhere = sp
                .steps
                .iter()
                .any(|s| s.op() == Some(Op::Start) && s.member() != m);
            if !starts_elsewhere {
                continue;
            }
            let om = c.observed.members.get(m).cloned().unwrap_or_default();
            let incident = om.lease_expired_at.max(o.failure.as_ref().and_then(|f| f.at));
            let fenced_for_it = om
                .fenced_at
                .is_some_and(|f| incident.is_none_or(|i| f >= i));
            let fences = sp.steps.iter().any(|s| {
                s.member() == m
                    && matches!(
                        s,
                        clusvc_core::plan::Step::Fence { .. }
                            | clusvc_core::plan::Step::AwaitFence { .. }
                    )
            });
            let waits = !om.alive
                && sp.steps.iter().any(|s| {
                    s.member() == m && matches!(s, clusvc_core::plan::Step::AwaitLease { .. })
                });
            prop_assert!(
                fences || waits || (!om.alive && fenced_for_it),
                "{}: blocked on {m} and started elsewhere without a fence for this incident\n{p}",
                sp.service
            );
        }
    }

    #[test]
    fn a_new_or_failed_over_service_lands_on_a_most_preferred_eligible_member(
        c in cluster_strategy()
    ) {
        let p = plan(&c.desired, &c.observed, Timestamp::from_millis(NOW));
        // Members this pass fences count as dead for the whole pass.
        let fenced_now: Vec<String> = p
            .services
            .iter()
            .flat_map(|sp| sp.outcome.fenced.iter().cloned())
            .collect();
        for sp in &p.services {
            let Some(svc) = c.desired.services().get(&sp.service) else { continue };
            let placement = &svc.spec.placement;
            let (target, leaving) = match &sp.change {
                clusvc_core::plan::Change::Start { to }
                    if !c.observed.services.contains_key(&sp.service) => (to, None),
                clusvc_core::plan::Change::Relocate { from, to }
                    if sp.outcome.placement_reason == Some(PlacementReason::Failover) =>
                {
                    (to, Some(from))
                }
                _ => continue,
            };
            let candidates: Vec<String> = eligible(&c, placement, &fenced_now)
                .into_iter()
                .filter(|m| Some(m) != leaving)
                .collect();
            prop_assert!(candidates.contains(target), "{}: {target} is not eligible\n{p}", sp.service);
            let best = candidates.iter().map(|m| rank(placement, m)).min().unwrap();
            prop_assert_eq!(
                rank(placement, target), best,
                "{}: {} is not a most preferred member\n{}", sp.service, target, p
            );
        }
    }

    #[test]
    fn a_plan_fences_each_member_at_most_once(c in cluster_strategy()) {
        let p = plan(&c.desired, &c.observed, Timestamp::from_millis(NOW));
        let mut fenced = std::collections::BTreeSet::new();
        for sp in &p.services {
            for s in &sp.steps {
                if let clusvc_core::plan::Step::Fence { member, .. } = s {
                    prop_assert!(fenced.insert(member.clone()), "{member} fenced twice:\n{p}");
                }
            }
        }
    }
}
