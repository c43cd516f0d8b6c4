//! Resource steps in the fixed order of SPEC §1: start in start order
//! (several of a kind in manifest order), stop by the stop table (several of
//! a kind in reverse manifest order). Every stop sequence the planner emits
//! comes from here.

use crate::model::resource::in_stop_order;
use crate::model::{ResourceRef, ServiceSpec};

use super::{Op, Step};

fn step(member: &str, op: Op, r: ResourceRef<'_>) -> Step {
    Step::resource(member, op, r.to_owned())
}

/// Start every resource of `spec` on `member`.
pub fn start_all(member: &str, spec: &ServiceSpec, out: &mut Vec<Step>) {
    start_some(member, spec, |_| true, out);
}

/// Stop every resource of `spec` on `member`.
pub fn stop_all(member: &str, spec: &ServiceSpec, out: &mut Vec<Step>) {
    stop_some(member, spec, |_| true, out);
}

/// Stop, in stop order, the resources of `spec` for which `keep` holds.
pub fn stop_some(
    member: &str,
    spec: &ServiceSpec,
    keep: impl FnMut(&ResourceRef<'_>) -> bool,
    out: &mut Vec<Step>,
) {
    out.extend(
        spec.resources_in_stop_order()
            .filter(keep)
            .map(|r| step(member, Op::Stop, r)),
    );
}

/// Start, in start order, the resources of `spec` for which `keep` holds.
pub fn start_some(
    member: &str,
    spec: &ServiceSpec,
    keep: impl FnMut(&ResourceRef<'_>) -> bool,
    out: &mut Vec<Step>,
) {
    out.extend(
        spec.resources()
            .filter(keep)
            .map(|r| step(member, Op::Start, r)),
    );
}

/// The start position of the first resource that differs between `old` and
/// `new` (a resource added or removed counts), or `None` when the resources
/// are the same.
pub fn first_change(old: &ServiceSpec, new: &ServiceSpec) -> Option<usize> {
    let mut a = old.resources();
    let mut b = new.resources();
    let mut i = 0;
    loop {
        match (a.next(), b.next()) {
            (None, None) => return None,
            (Some(x), Some(y)) if x == y => i += 1,
            _ => return Some(i),
        }
    }
}

/// Reconfigure from start position `from`: stop the old resources from
/// there (the changed one and every one after it in start order) in stop
/// order, then start the new ones from there in start order. Earlier
/// resources keep running.
pub fn reconfigure(
    member: &str,
    old: &ServiceSpec,
    new: &ServiceSpec,
    from: usize,
    out: &mut Vec<Step>,
) {
    out.extend(in_stop_order(old.resources().skip(from)).map(|r| step(member, Op::Stop, r)));
    out.extend(
        new.resources()
            .skip(from)
            .map(|r| step(member, Op::Start, r)),
    );
}
