//! The lease and self-fencing protocol's safety, checked by spin on the
//! Promela model `tests/model/lease.pml` (see `docs/cluster.md`, "Why a
//! service never runs on two members"): exhaustively, with the documented
//! bound `GRACE > STOP - MARGIN + 3 * DRIFT` met, no state has two members
//! running the service; one tick short of the bound, spin finds one (so
//! this test can fail).
//!
//! And `tests/model/rejoin.pml`: a member whose lease expired while its
//! agent kept its services (failsafe) comes back; the grant of its next
//! lease and a controller moving its services race, each one store
//! transaction. An agent told to keep never keeps a service that was
//! moved; without either transaction's condition, spin finds it does.

mod common;

use std::path::Path;
use std::process::Command;

/// Runs spin on the model with these `-D` definitions; returns pan's
/// report.
fn check(defines: &[(&str, u32)]) -> String {
    check_model("lease.pml", defines)
}

/// Runs spin on `tests/model/MODEL` with these `-D` definitions.
fn check_model(model: &str, defines: &[(&str, u32)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/model")
        .join(model);
    let mut spin = Command::new("spin");
    for (k, v) in defines {
        spin.arg(format!("-D{k}={v}"));
    }
    let out = spin
        .arg("-a")
        .arg(&model)
        .current_dir(dir.path())
        .output()
        .expect("spin (Debian package spin) is installed");
    assert!(
        out.status.success(),
        "spin -a: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new("gcc")
        .args(["-O2", "-DSAFETY", "-DCOLLAPSE", "-o", "pan", "pan.c"])
        .current_dir(dir.path())
        .output()
        .expect("gcc is installed");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(dir.path().join("pan"))
        .arg("-m100000")
        .current_dir(dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tools_present() -> bool {
    let ok = |c: &str, a: &str| Command::new(c).arg(a).output().is_ok();
    if ok("spin", "-V") && ok("gcc", "--version") {
        return true;
    }
    common::skip("needs spin and gcc (Debian packages spin, gcc)");
    false
}

#[test]
fn no_two_members_run_a_service_with_the_documented_timing() {
    if !tools_present() {
        return;
    }
    // The defaults of the model: TTL 4, MARGIN 1, STOP 1, DRIFT 1, GRACE 4;
    // and the ratios clusvc ships: the agent gives up at half its lease
    // (MARGIN = TTL/2), its stop is bounded by a quarter (STOP = TTL/4),
    // it renews about every fifth, with a drift of an eighth of the lease
    // (far more than real clocks) the bound asks for GRACE 2.
    for defines in [&[][..], SHIPPED] {
        let report = check(defines);
        assert!(report.contains("errors: 0"), "{defines:?}: {report}");
        assert!(
            !report.contains("assertion violated") && !report.contains("violated"),
            "{defines:?}: {report}"
        );
        // Exhaustive: pan ran out of nothing.
        assert!(
            !report.contains("max search depth too small"),
            "{defines:?}: {report}"
        );
    }
}

/// The shipped ratios in ticks: TTL 8, MARGIN 4, STOP 2, RENEW 2, GRACE 2.
const SHIPPED: &[(&str, u32)] = &[
    ("TTL", 8),
    ("RENEW", 2),
    ("MARGIN", 4),
    ("STOP", 2),
    ("GRACE", 2),
    ("TMAX", 20),
];

#[test]
fn one_tick_short_of_the_bound_the_checker_finds_two_owners() {
    if !tools_present() {
        return;
    }
    let mut shipped_short = SHIPPED.to_vec();
    shipped_short.retain(|(k, _)| *k != "GRACE");
    shipped_short.push(("GRACE", 1));
    for defines in [
        &[("GRACE", 3)][..],
        &[("GRACE", 4), ("MARGIN", 0)][..],
        &shipped_short[..],
    ] {
        let report = check(defines);
        assert!(
            report.contains("assertion violated") && !report.contains("errors: 0"),
            "{defines:?}: {report}"
        );
    }
}

#[test]
fn a_member_told_to_keep_its_services_never_keeps_a_moved_one() {
    if !tools_present() {
        return;
    }
    let report = check_model("rejoin.pml", &[]);
    assert!(report.contains("errors: 0"), "{report}");
    assert!(!report.contains("violated"), "{report}");
    // Without the grant's condition on the mark, or the controller's on
    // the lease, the checker finds a kept service that was moved.
    for broken in ["NO_MARK_CHECK", "NO_LEASE_CHECK"] {
        let report = check_model("rejoin.pml", &[(broken, 1)]);
        assert!(
            report.contains("assertion violated") && !report.contains("errors: 0"),
            "{broken}: {report}"
        );
    }
}
