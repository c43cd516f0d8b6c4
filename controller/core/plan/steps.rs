//! Resource steps in the fixed order of SPEC §1: start in start order
//! (several of a kind in manifest order), stop by the stop table (several of
//! a kind in reverse manifest order). Every stop sequence the planner emits
//! comes from here.

use std::borrow::Cow;

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

/// Whether two definitions are the same resource in the same place, so that
/// stopping one with the other's definition does the same thing: same kind
/// and identity (label), same interface for an address, same device for a
/// filesystem, same server for an export.
pub fn same_resource(a: ResourceRef<'_>, b: ResourceRef<'_>) -> bool {
    use ResourceRef as R;
    match (a, b) {
        (R::Ip(x), R::Ip(y)) => x.address == y.address && x.interface == y.interface,
        (R::Filesystem(x), R::Filesystem(y)) => {
            x.mount_point == y.mount_point && x.device == y.device
        }
        (R::NfsExport(x), R::NfsExport(y)) => x.path == y.path && x.server == y.server,
        (x, y) => x.kind() == y.kind() && x.label() == y.label(),
    }
}

/// The spec to stop `started` with: each of its resources as `current`
/// defines it where that is the same resource (see [`same_resource`]), so
/// a retried stop uses today's `forceUnmount` or `deactivate`; otherwise as
/// it was started. Borrowed when nothing differs.
pub fn for_stop<'s>(started: &'s ServiceSpec, current: &ServiceSpec) -> Cow<'s, ServiceSpec> {
    if started == current {
        return Cow::Borrowed(started);
    }
    let pick = |r: ResourceRef<'_>| -> Option<crate::model::Resource> {
        current
            .resources()
            .find(|c| *c != r && same_resource(*c, r))
            .map(|c| c.to_owned())
    };
    let mut out = started.clone();
    let mut changed = false;
    macro_rules! merge {
        ($field:ident, $variant:ident) => {
            for x in out.$field.iter_mut() {
                if let Some(crate::model::Resource::$variant(c)) = pick(ResourceRef::$variant(x)) {
                    *x = c;
                    changed = true;
                }
            }
        };
    }
    merge!(devices, Device);
    merge!(filesystems, Filesystem);
    merge!(nfs_exports, NfsExport);
    merge!(ip_addresses, Ip);
    merge!(samba_shares, SambaShare);
    merge!(applications, Application);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(started)
    }
}
