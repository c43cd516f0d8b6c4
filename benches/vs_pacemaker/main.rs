//! clusvc's planner beside Pacemaker's scheduler, on the same shape: M
//! members (nodes) and N services of six resources (groups of six
//! primitives), all running round-robin with their operation history, and
//! one member lost. Both whole processes are timed as an operator runs
//! them (`clusvc plan --offline -f DIR --observed FILE` and `crm_simulate
//! -R -x cib.xml`, from Debian `pacemaker-cli-utils`), and both plans are
//! checked to move the same services: exactly those of the lost member.
//!
//! `cargo bench --bench vs_pacemaker [-- MxN ... [--runs R]]` (default
//! `16x1000`; `64x1000` takes Pacemaker about two minutes a run here).

#[path = "../gen/mod.rs"]
mod generate;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use generate::{NOW_MS, member};

/// The CIB: nodes, groups of six `ocf:heartbeat:Dummy` primitives (a
/// 60 s monitor each), a resource stickiness of 100 (what runs stays),
/// and the status section: every primitive started on its node (start
/// and monitor history), node 0 lost (offline, not expected down). Fencing is off (clusvc's members here have no fencing
/// either: both wait for nothing and move).
pub fn cib(members: usize, services: usize) -> String {
    let kinds = ["dev", "fs", "nfs", "ip", "smb", "app"];
    let mut x = String::with_capacity(services * 6 * 900);
    x.push_str(r#"<cib crm_feature_set="3.16.2" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0" have-quorum="1" dc-uuid="2">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="false"/>
        <nvpair id="opt-quorum" name="no-quorum-policy" value="ignore"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
"#);
    for m in 0..members {
        let _ = writeln!(x, r#"      <node id="{}" uname="{}"/>"#, m + 1, member(m));
    }
    x.push_str("    </nodes>\n    <resources>\n");
    for s in 0..services {
        let _ = writeln!(x, r#"      <group id="svc{s:06}">"#);
        for k in kinds {
            let _ = write!(
                x,
                r#"        <primitive id="svc{s:06}-{k}" class="ocf" provider="heartbeat" type="Dummy">
          <operations><op id="svc{s:06}-{k}-monitor" name="monitor" interval="60s"/></operations>
        </primitive>
"#
            );
        }
        x.push_str("      </group>\n");
    }
    // Stickiness, as every production cluster sets it: what runs stays
    // where it runs (clusvc moves nothing without a reason either).
    x.push_str(
        r#"    </resources>
    <constraints/>
    <rsc_defaults>
      <meta_attributes id="rsc-options">
        <nvpair id="rsc-stickiness" name="resource-stickiness" value="100"/>
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status>
"#,
    );
    let t = NOW_MS / 1000 - 3600;
    for m in 0..members {
        let (ccm, crmd, join) = if m == 0 {
            ("false", "offline", "down")
        } else {
            ("true", "online", "member")
        };
        let _ = write!(
            x,
            r#"    <node_state id="{id}" uname="{name}" in_ccm="{ccm}" crmd="{crmd}" join="{join}" expected="member">
      <lrm id="{id}">
        <lrm_resources>
"#,
            id = m + 1,
            name = member(m)
        );
        for s in (m..services).step_by(members) {
            for k in kinds {
                let r = format!("svc{s:06}-{k}");
                let _ = write!(
                    x,
                    r#"          <lrm_resource id="{r}" class="ocf" provider="heartbeat" type="Dummy">
            <lrm_rsc_op id="{r}_last_0" operation_key="{r}_start_0" operation="start" crm-debug-origin="do_update_resource" crm_feature_set="3.16.2" transition-key="1:1:0:00000000-0000-0000-0000-000000000000" transition-magic="0:0;1:1:0:00000000-0000-0000-0000-000000000000" exit-reason="" on_node="{n}" call-id="1" rc-code="0" op-status="0" interval="0" last-rc-change="{t}" exec-time="10" queue-time="0"/>
            <lrm_rsc_op id="{r}_monitor_60000" operation_key="{r}_monitor_60000" operation="monitor" crm-debug-origin="do_update_resource" crm_feature_set="3.16.2" transition-key="2:1:0:00000000-0000-0000-0000-000000000000" transition-magic="0:0;2:1:0:00000000-0000-0000-0000-000000000000" exit-reason="" on_node="{n}" call-id="2" rc-code="0" op-status="0" interval="60000" last-rc-change="{t}" exec-time="5" queue-time="0"/>
          </lrm_resource>
"#,
                    n = member(m)
                );
            }
        }
        x.push_str("        </lrm_resources>\n      </lrm>\n    </node_state>\n");
    }
    x.push_str("  </status>\n</cib>\n");
    x
}

/// The services (groups) whose resources Pacemaker's transition moves.
fn pacemaker_moves(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim_start().strip_prefix("* ")?;
            let mut w = l.split_whitespace();
            let verb = w.next()?;
            let rsc = w.next()?;
            matches!(verb, "Move" | "Recover" | "Start")
                .then(|| rsc.rsplit_once('-').map_or(rsc, |(g, _)| g).to_string())
        })
        .collect()
}

/// The services clusvc's plan relocates (JSON plan).
fn clusvc_moves(json: &str) -> BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_str(json).expect("plan -o json");
    v["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["action"]["type"] == "relocate")
        .filter_map(|s| s["service"].as_str().map(String::from))
        .collect()
}

fn timed(cmd: &mut Command) -> (Duration, String) {
    let started = Instant::now();
    let out = cmd.output().expect("runs");
    let took = started.elapsed();
    (took, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    let mut shapes = Vec::new();
    let mut runs = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
        } else if let Some((m, n)) = a.split_once('x')
            && let (Ok(m), Ok(n)) = (m.parse::<usize>(), n.parse::<usize>())
        {
            shapes.push((m, n));
        }
    }
    if shapes.is_empty() {
        shapes.push((16, 1_000));
    }
    if Command::new("crm_simulate")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("crm_simulate not found: apt-get install pacemaker-cli-utils");
        std::process::exit(2);
    }
    let dir = tempfile::tempdir().unwrap();
    let script = generate::script(dir.path());
    let now = generate::now_rfc3339();
    println!(
        "{:<12} {:>14} {:>14} {:>8} {:>14}",
        "shape", "clusvc", "crm_simulate", "ratio", "services moved"
    );
    for (members, services) in shapes {
        let m = generate::manifests(dir.path(), members, services, &script);
        let obs = generate::observed(dir.path(), &m, members);
        let cib_path = dir.path().join(format!("cib-{members}x{services}.xml"));
        std::fs::write(&cib_path, cib(members, services)).unwrap();
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let (mut our_moves, mut their_moves) = (BTreeSet::new(), BTreeSet::new());
        let mut their_out = String::new();
        for _ in 0..runs {
            let (t, out) = timed(Command::new(generate::bin()).args([
                "plan",
                "--offline",
                "-f",
                m.to_str().unwrap(),
                "--observed",
                obs.to_str().unwrap(),
                "--now",
                &now,
                "-o",
                "json",
            ]));
            ours.push(t);
            our_moves = clusvc_moves(&out);
            let (t, out) = timed(
                Command::new("crm_simulate")
                    .arg("-R")
                    .arg("-x")
                    .arg(&cib_path),
            );
            theirs.push(t);
            their_moves = pacemaker_moves(&out);
            their_out = out;
        }
        let lost: BTreeSet<String> = (0..services)
            .step_by(members)
            .map(|s| format!("svc{s:06}"))
            .collect();
        assert_eq!(
            our_moves, lost,
            "clusvc moves exactly the lost member's services"
        );
        assert_eq!(
            their_moves,
            lost,
            "Pacemaker moves exactly the lost node's groups:\n{}",
            their_out.lines().take(60).collect::<Vec<_>>().join("\n")
        );
        ours.sort();
        theirs.sort();
        let (a, b) = (ours[runs / 2], theirs[runs / 2]);
        println!(
            "{:<12} {:>12.3} s {:>12.3} s {:>7.0}x {:>14}",
            format!("{members}x{services}"),
            a.as_secs_f64(),
            b.as_secs_f64(),
            b.as_secs_f64() / a.as_secs_f64(),
            lost.len()
        );
    }
}
