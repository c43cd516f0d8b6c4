//! `clusvc run` end to end, with the real binary: apply and operations,
//! recovery, GitOps on a real git repository, crash safety under `kill -9`,
//! API security, and a live plan that matches what the loop then does.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, script, wait_until};

const T: Duration = Duration::from_secs(20);

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn service_yaml(name: &str, script: &Path, extra: &str) -> String {
    format!(
        "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{extra}  applications:\n    - script: {}\n",
        script.display()
    )
}

#[test]
fn apply_the_seed_sample_then_disable_and_delete_it() {
    let d = Daemon::start(&[]);
    let (code, out, err) = d.run(&["apply", "-f", "examples/seed-sample"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "member/node1 configured\nservice/userapp created\n");
    assert!(d.wait_state("userapp", "running", T));
    let (code, out, _) = d.run(&["get", "services", "-o", "json"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "userapp");
    assert_eq!(list[0]["id"], 0);
    assert_eq!(list[0]["member"], "node1");
    let (_, table, _) = d.run(&["get", "services"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "ID", "STATE", "MEMBER", "LAST", "CHECK", "RESTARTS", "AGE"
        ]
    );
    assert!(
        d.events("userapp")
            .iter()
            .any(|e| e.ends_with("Running test start script for service userapp"))
    );
    // Applying the same again changes nothing.
    let (_, out, _) = d.run(&["apply", "-f", "examples/seed-sample"]);
    assert_eq!(out, "member/node1 unchanged\nservice/userapp unchanged\n");
    let (code, out, _) = d.run(&["disable", "userapp"]);
    assert_eq!((code, out.as_str()), (0, "service/userapp disabled\n"));
    assert!(d.wait_state("userapp", "disabled", T));
    assert!(
        d.events("userapp")
            .iter()
            .any(|e| e.ends_with("Running test stop script for service userapp"))
    );
    let (code, out, _) = d.run(&["delete", "service", "userapp"]);
    assert_eq!((code, out.as_str()), (0, "service/userapp deleted\n"));
    assert!(wait_until(T, || d.service("userapp").is_none()));
    let (code, _, err) = d.run(&["describe", "service", "userapp"]);
    assert_eq!(code, 2, "not found is bad input");
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn a_failing_check_restarts_until_the_limit_then_fails_and_clear_retries() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let healthy = dir.path().join("healthy");
    let starts = dir.path().join("starts");
    let s = script(
        dir.path(),
        "flaky_app",
        &format!(
            "app() {{ case $1 in start) echo x >> {starts}; return 0;; stop) return 0;; status) [ -e {healthy} ];; esac; }}\n",
            starts = starts.display(),
            healthy = healthy.display()
        ),
    );
    write(&healthy, "");
    write(
        &dir.path().join("svc.yaml"),
        &service_yaml(
            "flaky",
            &s,
            "  checkInterval: 1s\n  recovery:\n    maxRestarts: 2\n    restartWindow: 5m\n",
        ),
    );
    let (code, _, err) = d.run(&["apply", "-f", dir.path().join("svc.yaml").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(d.wait_state("flaky", "running", T));
    std::fs::remove_file(&healthy).unwrap();
    // Failed with no member: the restarts (with their backoff) are over.
    assert!(
        wait_until(T, || d
            .service("flaky")
            .is_some_and(|s| s["state"] == "failed" && s["member"].is_null())),
        "{:?}",
        d.service("flaky")
    );
    let svc = d.service("flaky").unwrap();
    assert_eq!(svc["member"], serde_json::Value::Null);
    let failure = &svc["observed"]["failure"];
    assert_eq!(failure["phase"], "check");
    assert_eq!(failure["resource"], "application flaky_app");
    let start_count = || std::fs::read_to_string(&starts).unwrap().lines().count();
    assert_eq!(start_count(), 3, "first start and two restarts");
    let events = d.events("flaky");
    assert!(
        events
            .iter()
            .any(|e| e.contains("restart limit reached (2 of 2 within 5m)")),
        "{events:#?}"
    );
    // Fixed: clear retries.
    write(&healthy, "");
    let (code, out, _) = d.run(&["clear", "flaky"]);
    assert_eq!((code, out.as_str()), (0, "service/flaky cleared\n"));
    assert!(d.wait_state("flaky", "running", T));
    assert_eq!(start_count(), 4);
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn gitops_commits_start_break_recover_and_remove_services() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let app = script(r, "web_app", "app() { return 0; }\n");
    write(&r.join("services/web.yaml"), &service_yaml("web", &app, ""));
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "web"]);
    let d = Daemon::start(&["--manifests", r.to_str().unwrap()]);
    assert!(d.wait_state("web", "running", T));
    // A commit that adds a service starts it.
    write(&r.join("services/db.yaml"), &service_yaml("db", &app, ""));
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "db"]);
    let t0 = Instant::now();
    assert!(d.wait_state("db", "running", T));
    eprintln!("commit to running: {:?}", t0.elapsed());
    let head = String::from_utf8(
        std::process::Command::new("git")
            .arg("-C")
            .arg(r)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(wait_until(T, || d.get_json("/v1/sync")["revision"] == head.trim()));
    // A broken file changes nothing and is reported with file and line.
    write(
        &r.join("services/db.yaml"),
        &service_yaml("db", &app, "  checkInterval: soon\n"),
    );
    std::fs::remove_file(r.join("services/web.yaml")).unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-qm", "broken"]);
    assert!(wait_until(T, || {
        d.get_json("/healthz")["sync"]["error"]
            .as_str()
            .is_some_and(|e| {
                e.contains("services/db.yaml:6:18: spec.checkInterval: invalid duration \"soon\"")
            })
    }));
    let (_, out, _) = d.run(&["get", "sync"]);
    assert!(out.contains("invalid duration"), "{out}");
    assert!(
        d.service("web").is_some_and(|s| s["state"] == "running"),
        "web must survive a broken tree"
    );
    // A revert recovers.
    git(r, &["revert", "--no-edit", "HEAD"]);
    assert!(wait_until(T, || d.get_json("/healthz")["sync"]["error"].is_null()));
    assert!(d.wait_state("db", "running", T));
    // Deleting the file stops and removes the service.
    std::fs::remove_file(r.join("services/db.yaml")).unwrap();
    git(r, &["commit", "-qam", "drop db"]);
    assert!(wait_until(T, || d.service("db").is_none()));
    assert!(
        d.events("db")
            .iter()
            .any(|e| e.contains("stop on node1 (deleted)"))
    );
    // Objects from the tree cannot be overwritten by apply from elsewhere.
    let other = tempfile::tempdir().unwrap();
    write(
        &other.path().join("web.yaml"),
        &service_yaml("web", &app, "  timeout: 5s\n"),
    );
    let (code, _, err) = d.run(&["apply", "-f", other.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("service/web is managed by gitops:"), "{err}");
}

#[test]
fn kill_9_loses_no_acknowledged_object_and_starts_nothing_twice() {
    let mut d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let up = dir.path().join("up");
    let slow = script(
        dir.path(),
        "slow_app",
        &format!(
            "app() {{ case $1 in start) echo x >> {starts}; sleep 1; touch {up}; return 0;; stop) rm -f {up}; return 0;; status) [ -e {up} ];; esac; }}\n",
            starts = starts.display(),
            up = up.display()
        ),
    );
    write(
        &dir.path().join("slow.yaml"),
        &service_yaml("slow", &slow, ""),
    );
    let (code, _, _) = d.run(&[
        "apply",
        "-f",
        dir.path().join("slow.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(wait_until(T, || starts.exists()), "start never began");
    d.crash_and_restart(); // in the middle of the slow start
    assert!(
        d.wait_state("slow", "running", T),
        "{:?}",
        d.service("slow")
    );
    assert!(up.exists());
    assert_eq!(
        std::fs::read_to_string(&starts).unwrap().lines().count(),
        1,
        "the resource was started twice"
    );
    // A burst of applies, killed in the middle.
    let app = script(dir.path(), "noop_app", "app() { return 0; }\n");
    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let f = dir.path().join(format!("b{i}.yaml"));
        write(
            &f,
            &service_yaml(&format!("burst{i}"), &app, "  checkInterval: 0s\n"),
        );
        let (code, out, _) = d.run(&["apply", "-f", f.to_str().unwrap()]);
        if code == 0 && out.contains("created") {
            acknowledged.push(format!("burst{i}"));
        }
        if i == 25 {
            d.kill9();
            break;
        }
    }
    d.crash_and_restart();
    let listed: Vec<String> = d
        .get_json("/v1/services")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    for name in &acknowledged {
        assert!(listed.contains(name), "{name} was acknowledged but is gone");
    }
    assert!(acknowledged.len() >= 25);
    for name in &acknowledged {
        assert!(d.wait_state(name, "running", T), "{name}");
    }
}

#[test]
fn an_unreachable_server_exits_3_with_a_hint() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusvc"))
        .args(["get", "services", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the clusvc server at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("hint: start it with `clusvc run`"), "{err}");
}

#[test]
fn a_live_plan_shows_what_the_loop_then_does() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let a = script(
        dir.path(),
        "one_app",
        &format!(
            "app() {{ echo \"one $1\" >> {}; return 0; }}\n",
            calls.display()
        ),
    );
    let b = script(
        dir.path(),
        "two_app",
        &format!(
            "app() {{ echo \"two $1\" >> {}; return 0; }}\n",
            calls.display()
        ),
    );
    let f = dir.path().join("svc.yaml");
    let two_apps = |second: &Path| {
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n    - script: {}\n",
            a.display(),
            second.display()
        )
    };
    write(
        &f,
        &two_apps(&a.with_file_name("one_app")).replace(
            &format!(
                "    - script: {}\n    - script: {}\n",
                a.display(),
                a.display()
            ),
            &format!("    - script: {}\n", a.display()),
        ),
    );
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(d.wait_state("web", "running", T));
    write(&f, &two_apps(&b));
    let (code, plan, _) = d.run(&["plan", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        plan,
        "service/web (id 0): reconfigure on node1 (application two_app added)\n  node1: start application two_app\nPlan: 0 to start, 0 to relocate, 1 to restart, 0 to stop, 0 unchanged.\n"
    );
    let (code, _, _) = d.run(&["apply", "-f", f.to_str().unwrap(), "--wait"]);
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "one start\ntwo start\n"
    );
    assert!(
        d.events("web")
            .iter()
            .any(|e| e == "service/web (id 0): reconfigure on node1 (application two_app added)")
    );
    let (code, plan, _) = d.run(&["plan"]);
    assert_eq!(
        (code, plan.as_str()),
        (
            0,
            "Plan: 0 to start, 0 to relocate, 0 to restart, 0 to stop, 1 unchanged.\n"
        )
    );
}

#[test]
fn changing_only_the_application_restarts_it_alone() {
    require_root!();
    let member = common::Netns::new("rm");
    let peer = common::Netns::new("rp");
    common::veth(&member, "m0", "192.0.2.1/24", &peer, "p0", "192.0.2.2/24");
    let mnt = common::MountNs::new();
    let disk = common::Loop::ext4(16);
    let d = Daemon::start(&[
        "--member-netns",
        member.path().to_str().unwrap(),
        "--member-mount-ns-of",
        &mnt.pid().to_string(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let rec = |name: &str| {
        script(
            dir.path(),
            &format!("{name}_app"),
            &format!(
                "app() {{ echo \"{name} $1\" >> {}; return 0; }}\n",
                calls.display()
            ),
        )
    };
    let (a, b) = (rec("first"), rec("second"));
    let mp = dir.path().join("data").display().to_string();
    let svc = |app: &Path| {
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: data\nspec:\n  checkInterval: 0s\n  filesystems:\n    - device: {dev}\n      mountPoint: {mp}\n      fsType: ext4\n  ipAddresses:\n    - address: 192.0.2.100/24\n  applications:\n    - script: {app}\n",
            dev = disk.dev,
            app = app.display()
        )
    };
    let f = dir.path().join("data.yaml");
    write(&f, &svc(&a));
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap(), "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(d.wait_state("data", "running", T));
    assert!(mnt.is_mounted(&mp) && member.has_addr("192.0.2.100"));
    write(&f, &svc(&b));
    let (code, plan, _) = d.run(&["plan", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(plan.starts_with("service/data (id 0): reconfigure on node1 (application first_app replaced by application second_app)\n  node1: stop application first_app\n  node1: start application second_app\n"), "{plan}");
    let (code, _, _) = d.run(&["apply", "-f", f.to_str().unwrap(), "--wait"]);
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "first start\nfirst stop\nsecond start\n"
    );
    let events = d.events("data");
    let count = |prefix: &str| events.iter().filter(|e| e.starts_with(prefix)).count();
    assert_eq!(
        count(&format!("filesystem {mp}: start ok")),
        1,
        "{events:#?}"
    );
    assert_eq!(
        count(&format!("filesystem {mp}: stop ok")),
        0,
        "{events:#?}"
    );
    assert_eq!(count("ip 192.0.2.100/24: stop ok"), 0, "{events:#?}");
    assert!(mnt.is_mounted(&mp) && member.has_addr("192.0.2.100"));
    let (code, _, _) = d.run(&["delete", "service", "data"]);
    assert_eq!(code, 0);
    assert!(wait_until(T, || d.service("data").is_none()));
    assert!(!mnt.is_mounted(&mp) && !member.has_addr("192.0.2.100"));
    assert!(disk.detach());
}

#[test]
fn diff_create_events_metrics_and_health() {
    let d = Daemon::start(&[]);
    // create --dry-run -o yaml prints a manifest that applies as is.
    let (code, yaml, err) = d.run(&[
        "create",
        "service",
        "userapp",
        "--userscript",
        "examples/seed-sample/service_test",
        "--check-interval",
        "40s",
        "--timeout",
        "60s",
        "--dry-run",
        "-o",
        "yaml",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        yaml.contains("kind: Service")
            && yaml.contains("checkInterval: 40s")
            && yaml.contains("timeout: 1m"),
        "{yaml}"
    );
    assert!(yaml.contains("service_test"));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("userapp.yaml");
    write(&f, &yaml);
    // diff before apply: differs (exit 1); after: none (exit 0).
    let (code, out, _) = d.run(&["diff", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("+++ new/service/userapp"), "{out}");
    let (code, _, _) = d.run(&["apply", "-f", f.to_str().unwrap(), "--wait"]);
    assert_eq!(code, 0);
    let (code, out, _) = d.run(&["diff", "-f", f.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""));
    // events --follow streams new events.
    let mut follow = d
        .cli()
        .args(["events", "userapp", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // --wait returns once the restart is done, so what follows sees its
    // outcome, not a state in between (the cause of an old flake).
    let (code, _, err) = d.run(&["restart", "userapp", "--wait", "--timeout", "20s"]);
    assert_eq!(code, 0, "{err}");
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + T;
    let mut seen = false;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && line.contains("restart on node1 (restart requested)")
        {
            seen = true;
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen, "events --follow did not stream the restart");
    // describe, metrics, healthz.
    assert!(d.wait_state("userapp", "running", T));
    let (code, out, _) = d.run(&["describe", "service", "userapp"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("State:       running") && out.contains("application service_test"),
        "{out}"
    );
    let mut r = d.http().get(&format!("{}/metrics", d.url)).call().unwrap();
    let metrics = r.body_mut().read_to_string().unwrap();
    assert!(
        metrics.contains("clusvc_services{state=\"running\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("clusvc_actions_total{action=\"start\",result=\"success\"}"));
    assert!(metrics.contains("clusvc_plans_total "));
    assert_eq!(d.get_json("/healthz")["status"], "ok");
}

#[test]
fn a_service_applied_alone_may_name_members_the_server_already_has() {
    // The daemon declares node1 itself; node2 is applied on its own, then
    // a service preferring node2 in a file of its own (as a GitOps-less
    // operator does): the server checks the reference, not the client.
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "alone_app", "app()\n{\n\treturn 0\n}\n");
    let m = dir.path().join("node2.yaml");
    write(
        &m,
        "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node2\nspec: {}\n",
    );
    let (code, _, err) = d.run(&["apply", "-f", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let s = dir.path().join("svc.yaml");
    write(
        &s,
        &service_yaml("alone", &app, "  placement:\n    members: [node1, node2]\n"),
    );
    for verb in [&["plan", "-f"][..], &["diff", "-f"], &["apply", "-f"]] {
        let mut args = verb.to_vec();
        args.push(s.to_str().unwrap());
        let (code, out, err) = d.run(&args);
        assert!(code == 0 || code == 1, "{verb:?}: {code}\n{out}{err}");
    }
    assert!(d.wait_state("alone", "running", T));
    // A member no one declared is still refused, by the server, with the
    // field it is in; nothing is stored.
    let bad = dir.path().join("bad.yaml");
    write(
        &bad,
        &service_yaml("stray", &app, "  placement:\n    members: [node9]\n"),
    );
    let (code, _, err) = d.run(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(r#"spec.placement.members[0]: undeclared member "node9""#),
        "{err}"
    );
    assert!(d.service("stray").is_none());
    // Offline, the input is the whole state: validate still refuses it.
    let (code, _, err) = d.run(&["validate", "-f", s.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("undeclared member \"node2\""), "{err}");
}

#[test]
fn events_follow_fails_when_the_server_goes_away() {
    // `events -f` ends only when the server goes; a script waiting on it
    // must learn that (exit 3, as for an unreachable server), not see a
    // clean end.
    let mut d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "ev_app", "app()\n{\n\treturn 0\n}\n");
    let f = dir.path().join("ev.yaml");
    write(&f, &service_yaml("ev", &app, ""));
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(d.wait_state("ev", "running", T));
    let mut follow = d
        .cli()
        .args(["events", "-f"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Connected once it printed the recent events.
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let first = rx
        .recv_timeout(T)
        .expect("events -f printed the recent events");
    assert!(first.contains("service/ev"), "{first}");
    d.kill9();
    let out = wait_with_deadline(&mut follow, T);
    assert_eq!(out.0, Some(3), "{}", out.1);
    assert!(out.1.contains("ended"), "{}", out.1);
}

/// Waits for a child with a deadline; (exit code, stderr).
fn wait_with_deadline(c: &mut std::process::Child, limit: Duration) -> (Option<i32>, String) {
    use std::io::Read;
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = c.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > end {
            let _ = c.kill();
            return (None, "still running".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn get_observed_replays_a_live_daemon_offline() {
    // `get observed -o json` snapshots what runs; `plan --offline` against
    // that snapshot and the same manifests plans nothing.
    let d = Daemon::start(&[]);
    let (code, _, err) = d.run(&["apply", "-f", "examples/seed-sample", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let (code, json, err) = d.run(&["get", "observed", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["services"]["userapp"]["member"], "node1");
    assert_eq!(v["services"]["userapp"]["state"], "running");
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("observed.json");
    std::fs::write(&snap, &json).unwrap();
    let (code, out, err) = d.run(&[
        "plan",
        "--offline",
        "-f",
        "examples/seed-sample",
        "--observed",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 to start"), "{out}");
}

/// `get services --limit N --continue TOKEN` pages through the services in
/// name order, as the Kubernetes API pages a list; without `--limit` every
/// service is shown (fetched in pages); bad limits and tokens are refused.
#[test]
fn get_services_pages_with_limit_and_continue() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let script = common::script(dir.path(), "pg_app", "app() { return 0; }\n");
    let mut text = String::new();
    for i in 0..7 {
        text.push_str("---\n");
        text.push_str(&service_yaml(
            &format!("pg{i}"),
            &script,
            "  enabled: false\n",
        ));
    }
    let f = dir.path().join("pg.yaml");
    write(&f, &text);
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let names = |out: &str| -> Vec<String> {
        out.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect()
    };
    // Page by page: 3, 3, 1; the token for the next page on stderr.
    let (code, out, err) = d.run(&["get", "services", "--limit", "3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names(&out), ["pg0", "pg1", "pg2"]);
    assert!(
        err.contains("More services: clusvc get services --limit 3 --continue pg2"),
        "{err}"
    );
    let (_, out, err) = d.run(&["get", "services", "--limit", "3", "--continue", "pg2"]);
    assert_eq!(names(&out), ["pg3", "pg4", "pg5"]);
    assert!(err.contains("--continue pg5"), "{err}");
    let (_, out, err) = d.run(&["get", "services", "--limit", "3", "--continue", "pg5"]);
    assert_eq!(names(&out), ["pg6"]);
    assert!(!err.contains("More services"), "{err}");
    // -o json: the page, with its continue token.
    let (_, out, _) = d.run(&["get", "services", "--limit", "2", "-o", "json"]);
    let page: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["continue"], "pg1");
    let (_, out, _) = d.run(&["get", "services", "--limit", "7", "-o", "json"]);
    let page: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(page.get("continue").is_none(), "{page}");
    // Without --limit: all of them.
    let (_, out, _) = d.run(&["get", "services"]);
    assert_eq!(names(&out).len(), 7);
    // Bad input: told what and where, exit 2.
    let (code, _, err) = d.run(&["get", "services", "--limit", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--limit"), "{err}");
    let (code, _, err) = d.run(&["get", "services", "--continue", "pg2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--limit"), "{err}");
    let http = d.http();
    for q in ["limit=10001", "limit=0", "continue=pg2", "limit=x"] {
        let r = http
            .get(&format!("{}/v1/services?{q}", d.url))
            .call()
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
    }
}

/// Request bodies are bounded: 16 MiB for an operation, 256 MiB for
/// apply and plan (which carry whole desired states); a body over the
/// bound is refused with 413 and nothing is applied.
#[test]
fn oversized_request_bodies_are_refused() {
    let d = Daemon::start(&[]);
    let http = d.http();
    let big = vec![b' '; (16 << 20) + 1];
    let r = http
        .post(format!("{}/v1/services/x/ops/relocate", d.url))
        .header("content-type", "application/json")
        .send(&big[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // The same size is accepted as an apply body (and read as JSON: here,
    // whitespace and then an empty apply, refused as such).
    let mut body = big.clone();
    body.extend_from_slice(br#"{"services": [], "members": []}"#);
    let mut r = http
        .post(format!("{}/v1/apply", d.url))
        .header("content-type", "application/json")
        .send(&body[..])
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    assert_ne!(status, 413, "{text}");
    assert_eq!(d.get_json("/v1/services").as_array().map(Vec::len), Some(0));
}
