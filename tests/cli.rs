//! The offline commands as users run them: `validate`, `plan --offline`,
//! `schema`, with their exit codes and output.

use assert_cmd::Command;
use predicates::prelude::*;

fn clusvc() -> Command {
    let mut c = Command::cargo_bin("clusvc").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// `clusvc plan --offline -f DIR --observed FILE` with `observed` as the
/// file's text, plus `extra` arguments.
fn plan_observed(dir: &str, observed: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("observed.yaml");
    std::fs::write(&file, observed).unwrap();
    clusvc()
        .args(["plan", "--offline", "-f", dir])
        .args(extra)
        .arg("--observed")
        .arg(&file)
        .assert()
}

#[test]
fn validate_accepts_every_example_and_the_default_manifests() {
    // Each example is its own tree (seed-sample-v2 is the next version of
    // seed-sample, so the two together declare `userapp` twice).
    let mut checked = 0;
    for entry in std::fs::read_dir("examples").unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() || dir.ends_with("invalid") {
            continue;
        }
        clusvc()
            .args(["validate", "-f"])
            .arg(&dir)
            .assert()
            .success()
            .stdout(predicate::str::starts_with("valid: "));
        checked += 1;
    }
    assert!(checked >= 5, "{checked} examples");
    clusvc()
        .args(["validate", "-f", "manifests/"])
        .assert()
        .success();
}

#[test]
fn validate_exits_2_on_bad_input_and_reads_stdin() {
    clusvc()
        .args(["validate", "-f", "-"])
        .write_stdin("apiVersion: clusvc/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  timeout: later\n")
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "-:5:12: spec.timeout: invalid duration \"later\"\n",
        ));
}

#[test]
fn plan_offline_prints_six_kinds_in_seed_start_order() {
    let out = clusvc()
        .args([
            "plan",
            "--offline",
            "-f",
            "examples/nfs-samba-ip",
            "--now",
            "2026-11-25T10:00:00Z",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nas1: start "))
        .map(|rest| {
            [
                "device",
                "filesystem",
                "nfs export",
                "ip",
                "samba share",
                "application",
            ]
            .into_iter()
            .find(|k| rest.starts_with(k))
            .unwrap()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "device",
            "filesystem",
            "nfs export",
            "ip",
            "ip",
            "samba share",
            "application"
        ]
    );
    assert!(
        text.ends_with("Plan: 1 to start, 0 to relocate, 0 to restart, 0 to stop, 0 unchanged.\n")
    );
}

#[test]
fn plan_against_the_achieved_state_exits_0() {
    plan_observed(
        "examples/seed-sample",
        "services:\n  userapp: {id: 0, member: node1, state: running}\n",
        &[],
    )
    .code(0)
    .stdout("Plan: 0 to start, 0 to relocate, 0 to restart, 0 to stop, 1 unchanged.\n");
}

#[test]
fn plan_what_if_a_member_fails() {
    plan_observed(
        "examples/apache-mysql",
        "services:\n  lamp: {id: 7, member: web1, state: running}\n",
        &["--fail-member", "web1", "--now", "2026-11-25T10:00:00Z"],
    )
    .code(1)
    .stdout(predicate::str::starts_with(
        "service/lamp (id 7): relocate web1 -> web2 (member web1 is dead)\n  web1: wait for lease expiry (until 2026-11-25T10:00:00.250Z)\n  web2: start ip 192.0.2.120/24\n  web2: start application services.d/\n",
    ));
}

#[test]
fn plan_json_and_yaml_are_machine_readable() {
    let out = clusvc()
        .args([
            "plan",
            "--offline",
            "-f",
            "examples/seed-sample",
            "-o",
            "json",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["summary"]["start"], 1);
    assert_eq!(v["services"][0]["service"], "userapp");
    assert_eq!(v["services"][0]["action"]["type"], "start");
    assert_eq!(
        v["services"][0]["steps"][0]["resource"],
        "application service_test"
    );
    let out = clusvc()
        .args([
            "plan",
            "--offline",
            "-f",
            "examples/seed-sample",
            "-o",
            "yaml",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let y: serde_json::Value = serde_saphyr::from_slice(&out).unwrap();
    assert_eq!(y["summary"], v["summary"]);
}

#[test]
fn plan_rejects_bad_observed_state_and_unknown_members() {
    plan_observed(
        "examples/seed-sample",
        "services:\n  userapp: {id: 0, state: sleeping}\n",
        &[],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "observed.yaml:2:27: services.userapp.state: unknown value \"sleeping\"",
    ));
    clusvc()
        .args([
            "plan",
            "--offline",
            "-f",
            "examples/seed-sample",
            "--fail-member",
            "node7",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "\"node7\" is not a declared member",
        ));
}

#[test]
fn live_plan_without_a_server_exits_3() {
    clusvc()
        .args(["plan", "-f", "examples/seed-sample"])
        .assert()
        .code(3);
}

#[test]
fn schema_prints_every_kind() {
    let out = clusvc()
        .arg("schema")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    for kind in ["Member", "Service", "ObservedState"] {
        assert!(v[kind]["properties"].is_object(), "{kind}");
    }
}

#[test]
fn an_agent_clock_rate_fault_outside_the_documented_bound_is_refused() {
    // The hidden fault-injection flag stays within what the timing
    // argument allows (10%); nothing is contacted before it is checked.
    for rate in ["1.2", "0.5", "NaN", "inf"] {
        clusvc()
            .args([
                "agent",
                "--member",
                "node2",
                "--server",
                "http://127.0.0.1:9",
            ])
            .args(["--token-file", "/nonexistent", "--fault-clock-rate", rate])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("--fault-clock-rate").and(
                    predicate::str::contains("outside 0.9..=1.1")
                        .or(predicate::str::contains("invalid")),
                ),
            );
    }
}

#[test]
fn plan_offline_reads_every_file_of_an_observed_directory_and_refuses_duplicates() {
    // An observed state split over two files: both are read (only the
    // first was, and the plan started services that already ran).
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("desired");
    let o = tmp.path().join("observed");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::create_dir_all(&o).unwrap();
    let mut desired = String::new();
    for m in ["node1", "node2"] {
        desired.push_str(&format!(
            "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: {m}\nspec: {{}}\n---\n"
        ));
    }
    for s in ["a", "b"] {
        desired.push_str(&format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {s}\nspec:\n  applications:\n    - script: /bin/true\n---\n"
        ));
    }
    std::fs::write(d.join("all.yaml"), desired).unwrap();
    std::fs::write(
        o.join("one.yaml"),
        "services:\n  a: {id: 0, member: node1, state: running}\n",
    )
    .unwrap();
    std::fs::write(
        o.join("two.yaml"),
        "services:\n  b: {id: 1, member: node2, state: running}\n",
    )
    .unwrap();
    let plan = |extra: &[&str]| {
        clusvc()
            .args(["plan", "--offline", "--skip-script-checks", "-f"])
            .arg(&d)
            .arg("--observed")
            .arg(&o)
            .args(extra)
            .assert()
    };
    plan(&[]).code(0).stdout(predicate::str::contains(
        "0 to start, 0 to relocate, 0 to restart, 0 to stop, 2 unchanged",
    ));
    // The same service in two files: an error naming both, no plan.
    std::fs::write(
        o.join("three.yaml"),
        "services:\n  a: {id: 0, member: node2, state: running}\n",
    )
    .unwrap();
    plan(&[]).code(2).stdout(predicate::str::is_empty()).stderr(
        predicate::str::contains("three.yaml: service \"a\" is also in")
            .and(predicate::str::contains("one.yaml")),
    );
}

#[test]
fn plan_offline_takes_a_large_observed_state_in_json_or_yaml() {
    // 20,000 services running: their observed state is over the manifest
    // limits (4 MiB as JSON, 200,000 YAML events as YAML), which it went
    // through before ("input exceeds the manifest size limits").
    let n = 20_000;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("desired");
    std::fs::create_dir_all(&d).unwrap();
    let service = |i: usize| {
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: svc{i:05}\nspec:\n  applications:\n    - script: /bin/true\n"
        )
    };
    // Manifests in files of 4,000 services (a file is bounded to 200,000
    // YAML events).
    for (k, range) in (0..n).step_by(4_000).map(|a| a..a + 4_000).enumerate() {
        let mut text = String::new();
        if k == 0 {
            text.push_str(
                "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\nspec: {}\n---\n",
            );
        }
        text.push_str(&range.map(service).collect::<Vec<_>>().join("---\n"));
        std::fs::write(d.join(format!("part{k}.yaml")), text).unwrap();
    }
    let mut json = String::from("{\"services\": {");
    let mut yaml = String::from("services:\n");
    for i in 0..n {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "\"svc{i:05}\": {{\"id\": {i}, \"member\": \"node1\", \"state\": \"running\", \"placementReason\": \"initial\", \"resources\": {{\"application true\": \"ok\"}}, \"createdAt\": \"2026-11-25T09:58:00.000Z\", \"lastCheck\": \"2026-11-25T09:58:00.000Z\"}}"
        ));
        yaml.push_str(&format!(
            "  svc{i:05}: {{id: {i}, member: node1, state: running, placementReason: initial, resources: {{application true: ok}}}}\n"
        ));
    }
    json.push_str("}}");
    assert!(json.len() > 4 << 20, "{} bytes", json.len());
    let (oj, oy) = (tmp.path().join("o.json"), tmp.path().join("o.yaml"));
    std::fs::write(&oj, json).unwrap();
    std::fs::write(&oy, yaml).unwrap();
    for o in [&oj, &oy] {
        clusvc()
            .args(["plan", "--offline", "--skip-script-checks", "-f"])
            .arg(&d)
            .arg("--observed")
            .arg(o)
            .assert()
            .code(0)
            .stdout(predicate::str::contains(format!(
                "0 to start, 0 to relocate, 0 to restart, 0 to stop, {n} unchanged"
            )));
    }
    // Bad JSON says where.
    std::fs::write(&oj, "{\"services\": {\"a\": {\"id\": \"x\"}}}").unwrap();
    clusvc()
        .args(["plan", "--offline", "--skip-script-checks", "-f"])
        .arg(&d)
        .arg("--observed")
        .arg(&oj)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("o.json:1:"));
}
