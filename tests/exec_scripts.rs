//! Seed-style user scripts and OCF agents through the executor, for real:
//! bash, child processes killed at the timeout, ownership refusal.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clusvc_agent::events::Recorder;
use clusvc_agent::exec::{Executor, ServiceRef};
use clusvc_agent::resources::Host;
use clusvc_core::model::event::Level;
use clusvc_core::model::{Application, ScalarString, ServiceSpec};

fn executor(dir: &Path) -> (Executor, Arc<Recorder>) {
    let mut host = Host::new("node1");
    host.state_dir = dir.join("state");
    host.ha_rsctmp = dir.join("rsctmp");
    host.kill_grace = Duration::from_millis(500);
    let events = Arc::new(Recorder::default());
    (Executor::new(Arc::new(host), events.clone()), events)
}

fn svc(name: &str, id: u64, timeout: Duration) -> ServiceRef {
    ServiceRef {
        name: name.into(),
        id,
        timeout,
    }
}

fn script_app(path: impl AsRef<Path>) -> ServiceSpec {
    ServiceSpec {
        applications: vec![Application {
            script: Some(path.as_ref().display().to_string()),
            ..Application::default()
        }],
        ..ServiceSpec::default()
    }
}

fn write_script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn messages(events: &Recorder) -> Vec<String> {
    events.events().into_iter().map(|e| e.message).collect()
}

#[tokio::test]
async fn the_seed_sample_script_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (exec, events) = executor(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-sample/service_test");
    let spec = script_app(&script);
    let s = svc("userapp", 3, Duration::from_secs(60));
    let start = exec.start(&s, &spec).await;
    assert!(start.ok(), "{start:?}");
    let check = exec.check(&s, &spec).await;
    assert!(check.ok(), "{check:?}");
    let stop = exec.stop(&s, &spec).await;
    assert!(stop.ok(), "{stop:?}");
    let logged: Vec<_> = events
        .events()
        .into_iter()
        .filter(|e| e.message.starts_with("Running test"))
        .collect();
    let text: Vec<_> = logged.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        text,
        [
            "Running test start script for service userapp",
            "Running test status script for service userapp",
            "Running test stop script for service userapp",
        ]
    );
    assert!(
        logged
            .iter()
            .all(|e| e.service == "userapp" && e.service_id == 3)
    );
    assert_eq!(logged[0].level, Level::Info);
    assert_eq!(logged[1].level, Level::Debug);
}

#[tokio::test]
async fn scripts_see_the_helper_library_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (exec, events) = executor(dir.path());
    exec.host().know_services([(7, "other".to_string())]);
    let p = write_script(
        dir.path(),
        "env_probe",
        r#"env_probe() {
    logAndPrint $LOG_WARNING "id=$(getSvcID $DB web) other=$(getSvcName $DB 7) member=$CLUSVC_MEMBER action=$CLUSVC_ACTION svc=$CLUSVC_SERVICE/$CLUSVC_SERVICE_ID levels=$LOG_EMERG$LOG_DEBUG rc=$SUCCESS$FAIL args=$1,$2"
    echo plain output
    return $SUCCESS
}
"#,
        0o755,
    );
    let report = exec
        .start(&svc("web", 12, Duration::from_secs(10)), &script_app(&p))
        .await;
    assert!(report.ok(), "{report:?}");
    let ev = events.events();
    let probe = ev.iter().find(|e| e.message.starts_with("id=")).unwrap();
    assert_eq!(
        probe.message,
        "id=12 other=other member=node1 action=start svc=web/12 levels=07 rc=01 args=start,12"
    );
    assert_eq!(probe.level, Level::Warning);
    assert!(
        ev.iter()
            .any(|e| e.message == "plain output" && e.level == Level::Info)
    );
}

#[tokio::test]
async fn a_failing_function_fails_the_action_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (exec, _) = executor(dir.path());
    let p = write_script(
        dir.path(),
        "db_broken",
        "broken() { echo 'cannot bind port 5432' >&2; return $FAIL; }\n",
        0o755,
    );
    let report = exec
        .start(&svc("db", 1, Duration::from_secs(10)), &script_app(&p))
        .await;
    assert_eq!(report.failed, Some(0));
    assert_eq!(
        report.reason(),
        Some("db_broken: broken start exited 1: cannot bind port 5432")
    );
}

#[tokio::test]
async fn a_hung_start_is_killed_with_all_its_children_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (exec, _) = executor(dir.path());
    let pids = dir.path().join("pids");
    let p = write_script(
        dir.path(),
        "hang_forever",
        &format!(
            r#"forever() {{
    [ "$1" = start ] || return 0
    sleep 1000 & echo $! >> {pids}
    ( trap '' TERM; while :; do sleep 1; done ) & echo $! >> {pids}
    echo $$ >> {pids}
    sleep 1000
}}
"#,
            pids = pids.display()
        ),
        0o755,
    );
    let report = exec
        .start(&svc("hang", 1, Duration::from_secs(1)), &script_app(&p))
        .await;
    assert_eq!(report.failed, Some(0));
    assert_eq!(report.reason(), Some("timed out after 1s"));
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split(' ').nth(2).is_none_or(|st| st != "Z"))
    };
    assert!(
        common::wait_until(Duration::from_secs(5), || pids.iter().all(|p| !alive(*p))),
        "orphans survived: {:?}",
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_directory_runs_each_script_sorted_following_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let (exec, _) = executor(dir.path());
    let log = dir.path().join("calls");
    let scripts = dir.path().join("elsewhere");
    let d = dir.path().join("services.d");
    std::fs::create_dir(&scripts).unwrap();
    std::fs::create_dir(&d).unwrap();
    let body = |f: &str| {
        format!(
            "{f}() {{ echo \"{f} $1\" >> {}; return $SUCCESS; }}\n",
            log.display()
        )
    };
    write_script(&d, "20_web", &body("web"), 0o755);
    let target = write_script(&scripts, "db_mysql", &body("mysql"), 0o755);
    std::os::unix::fs::symlink(&target, d.join("10_mysql")).unwrap();
    // A file without an execute bit beside the scripts is not one of them.
    std::fs::write(d.join("notes"), "notes() { echo notes $1 >> /dev/null; }\n").unwrap();
    std::fs::set_permissions(d.join("notes"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let spec = ServiceSpec {
        applications: vec![Application {
            directory: Some(d.display().to_string()),
            ..Application::default()
        }],
        ..ServiceSpec::default()
    };
    let s = svc("lamp", 2, Duration::from_secs(10));
    assert!(exec.start(&s, &spec).await.ok());
    assert!(exec.check(&s, &spec).await.ok());
    assert!(exec.stop(&s, &spec).await.ok());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "mysql start\nweb start\nmysql status\nweb status\nweb stop\nmysql stop\n"
    );
}

#[tokio::test]
async fn scripts_writable_by_others_are_refused_as_root() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let (exec, events) = executor(dir.path());
    let flag = dir.path().join("ran");
    let p = write_script(
        dir.path(),
        "open_door",
        &format!("door() {{ touch {}; }}\n", flag.display()),
        0o777,
    );
    let report = exec
        .start(&svc("web", 1, Duration::from_secs(10)), &script_app(&p))
        .await;
    assert_eq!(report.failed, Some(0));
    let reason = report.reason().unwrap();
    assert!(
        reason.starts_with("refused: refusing to run")
            && reason.contains("writable by everyone (mode 777)"),
        "{reason}"
    );
    assert!(!flag.exists(), "the script ran");
    assert!(
        messages(&events)
            .iter()
            .any(|m| m.contains("writable by everyone"))
    );

    // A root-owned script in a directory others can write is refused too.
    let open_dir = dir.path().join("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let p = write_script(&open_dir, "open_door", "door() { :; }\n", 0o755);
    let report = exec
        .start(&svc("web", 1, Duration::from_secs(10)), &script_app(&p))
        .await;
    assert!(report.reason().unwrap().contains("directory"), "{report:?}");
}

/// Gives `path` a POSIX access ACL letting `uid` read and write it (the
/// xattr as `setfacl -m u:UID:rw` writes it).
fn acl_user_rw(path: &Path, uid: u32) {
    let mut blob = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 7u16, u32::MAX), // owner rwx
        (0x02, 6, uid),            // the user: rw-
        (0x04, 5, u32::MAX),       // group r-x
        (0x10, 7, u32::MAX),       // mask rwx
        (0x20, 5, u32::MAX),       // other r-x
    ] {
        blob.extend(tag.to_le_bytes());
        blob.extend(perm.to_le_bytes());
        blob.extend(id.to_le_bytes());
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer we own.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            blob.as_ptr().cast(),
            blob.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
}

/// The ownership rule holds on every run, though a script that passed is
/// not read and resolved again for a second (status checks run it
/// thousands of times a second): a script handed to others right after a
/// passing run is refused at its next run; and write access through an
/// ACL counts (the group bits are then its mask, and root's group is no
/// excuse).
#[tokio::test]
async fn a_script_made_writable_by_others_is_refused_at_its_next_run() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let (exec, _) = executor(dir.path());
    let p = write_script(dir.path(), "handed", "handed() { return 0; }\n", 0o755);
    let (s, spec) = (svc("handed", 1, Duration::from_secs(10)), script_app(&p));
    assert!(exec.check(&s, &spec).await.ok());
    // Given to group 1000 and made group-writable: refused at once.
    std::os::unix::fs::chown(&p, None, Some(1000)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o775)).unwrap();
    let r = exec.check(&s, &spec).await;
    assert!(
        r.reason()
            .is_some_and(|r| r.contains("writable by its group")),
        "{r:?}"
    );
    // Root's again: runs.
    std::os::unix::fs::chown(&p, None, Some(0)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(exec.check(&s, &spec).await.ok());
    // An ACL lets user 65534 write it (group root, so the group bits alone
    // would pass).
    acl_user_rw(&p, 65534);
    let r = exec.check(&s, &spec).await;
    assert!(
        r.reason()
            .is_some_and(|r| r.contains("writable by the users and groups its ACL names")),
        "{r:?}"
    );
    // A directory above it handed over, the file untouched: refused too.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let q = write_script(&sub, "deeper", "deeper() { return 0; }\n", 0o755);
    let (s, spec) = (svc("deeper", 2, Duration::from_secs(10)), script_app(&q));
    assert!(exec.check(&s, &spec).await.ok());
    std::os::unix::fs::chown(&sub, Some(1000), None).unwrap();
    let r = exec.check(&s, &spec).await;
    assert!(r.reason().is_some_and(|r| r.contains("directory")), "{r:?}");
}

#[tokio::test]
async fn ocf_agents_run_with_their_environment_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (exec, _) = executor(dir.path());
    let state = dir.path().join("dummy.state");
    let spec = ServiceSpec {
        applications: vec![Application {
            ocf: Some("heartbeat:Dummy".into()),
            parameters: [(
                "state".to_string(),
                ScalarString(state.display().to_string()),
            )]
            .into_iter()
            .collect(),
            ..Application::default()
        }],
        ..ServiceSpec::default()
    };
    let s = svc("dummy", 4, Duration::from_secs(20));
    let check = exec.check(&s, &spec).await;
    assert_eq!(
        check.reason(),
        Some("heartbeat:Dummy monitor exited 7 (OCF_NOT_RUNNING)")
    );
    assert!(exec.start(&s, &spec).await.ok());
    assert!(state.exists());
    assert!(exec.check(&s, &spec).await.ok());
    assert!(exec.stop(&s, &spec).await.ok());
    assert!(!state.exists());
    // Stopping a stopped resource succeeds.
    assert!(exec.stop(&s, &spec).await.ok());
    let missing = ServiceSpec {
        applications: vec![Application {
            ocf: Some("heartbeat:NoSuchAgent".into()),
            ..Application::default()
        }],
        ..ServiceSpec::default()
    };
    let r = exec.start(&s, &missing).await;
    assert_eq!(
        r.reason(),
        Some("OCF agent /usr/lib/ocf/resource.d/heartbeat/NoSuchAgent is not installed")
    );
}

/// Pids a script wrote to `file`, once it has written `n`.
fn pids_in(file: &Path, n: usize) -> Vec<i32> {
    assert!(
        common::wait_until(Duration::from_secs(5), || std::fs::read_to_string(file)
            .is_ok_and(|t| t.lines().count() >= n)),
        "the script did not write its pids"
    );
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split(' ').nth(2).is_none_or(|st| st != "Z"))
}

/// A start that puts processes in new sessions (`setsid`), one ignoring
/// SIGTERM, then hangs.
fn escaping_script(dir: &Path, pids: &Path) -> PathBuf {
    write_script(
        dir,
        "escape_artist",
        &format!(
            r#"escape() {{
    [ "$1" = start ] || return 0
    setsid sleep 1000 < /dev/null > /dev/null 2>&1 & echo $! >> {pids}
    setsid bash -c 'trap "" TERM; echo $$ >> {pids}; while :; do sleep 1; done' < /dev/null > /dev/null 2>&1 &
    echo $$ >> {pids}
    sleep 1000
}}
"#,
            pids = pids.display()
        ),
        0o755,
    )
}

#[tokio::test]
async fn a_timed_out_action_leaves_nothing_behind_even_processes_that_called_setsid() {
    require_root!();
    use clusvc_agent::resources::sys::cgroup::Cgroups;
    let dir = tempfile::tempdir().unwrap();

    // Process groups alone: a process that called setsid is out of reach
    // (what happened before actions had cgroups).
    let pids = dir.path().join("pids-pg");
    let (exec, _) = executor(dir.path());
    let p = escaping_script(dir.path(), &pids);
    let report = exec
        .start(&svc("pg", 1, Duration::from_secs(1)), &script_app(&p))
        .await;
    assert_eq!(report.reason(), Some("timed out after 1s"));
    let escaped: Vec<i32> = pids_in(&pids, 3)
        .into_iter()
        .filter(|p| alive(*p))
        .collect();
    assert!(
        !escaped.is_empty(),
        "expected setsid escapees without cgroups"
    );
    for p in escaped {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    // Each action in its own cgroup: nothing survives the timeout, and the
    // cgroup is removed.
    let cgroups = Arc::new(Cgroups::detect().expect("cgroup2 is writable as root"));
    let mut host = Host::new("node1");
    host.state_dir = dir.path().join("state");
    host.ha_rsctmp = dir.path().join("rsctmp");
    host.kill_grace = Duration::from_millis(500);
    host.ns.cgroups = Some(cgroups.clone());
    let exec = Executor::new(Arc::new(host), Arc::new(Recorder::default()));
    let pids = dir.path().join("pids-cg");
    let p = escaping_script(dir.path(), &pids);
    let report = exec
        .start(&svc("cg", 2, Duration::from_secs(1)), &script_app(&p))
        .await;
    assert_eq!(report.reason(), Some("timed out after 1s"));
    let pids = pids_in(&pids, 3);
    let survivors: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(survivors.is_empty(), "survived the timeout: {survivors:?}");
    let left: Vec<_> = cgroup_dirs(cgroups.parent())
        .into_iter()
        .filter(|n| n.starts_with('a') || n.starts_with('c'))
        .collect();
    assert!(left.is_empty(), "action cgroups left: {left:?}");
}

/// The names of the cgroups under `dir`.
fn cgroup_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Status checks (1,667 a second at 100,000 services) leave no in-flight
/// markers and run in one cgroup used again and again; a check that leaves
/// a process behind keeps its cgroup, which no later check is given.
#[tokio::test]
async fn status_checks_use_one_cgroup_again_and_leave_no_markers() {
    require_root!();
    use clusvc_agent::resources::sys::cgroup::Cgroups;
    let dir = tempfile::tempdir().unwrap();
    let top = Cgroups::detect().expect("cgroup2 is writable as root");
    let parent = top.parent().join(format!("reuse-{}", std::process::id()));
    std::fs::create_dir(&parent).unwrap();
    let cgroups = Arc::new(Cgroups::at(parent.clone()));
    let mut host = Host::new("node1");
    host.state_dir = dir.path().join("state");
    host.ns.cgroups = Some(cgroups.clone());
    let exec = Executor::new(Arc::new(host), Arc::new(Recorder::default()));
    let (seen, leave, left) = (
        dir.path().join("seen"),
        dir.path().join("leave"),
        dir.path().join("left"),
    );
    let p = write_script(
        dir.path(),
        "probe",
        &format!(
            r#"probe() {{
    [ "$1" = status ] || return 0
    grep "^0::" /proc/self/cgroup >> {seen}
    if [ -e {leave} ]; then setsid sleep 1000 < /dev/null > /dev/null 2>&1 & echo $! > {left}; fi
    return 0
}}
"#,
            seen = seen.display(),
            leave = leave.display(),
            left = left.display()
        ),
        0o755,
    );
    let (s, spec) = (svc("probe", 1, Duration::from_secs(5)), script_app(&p));
    for _ in 0..5 {
        let r = exec.check(&s, &spec).await;
        assert!(r.ok(), "{:?}", r.reason());
    }
    let cgs: Vec<String> = std::fs::read_to_string(&seen)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(cgs.len(), 5);
    assert!(cgs.iter().all(|c| c == &cgs[0]), "{cgs:?}");
    let dirs = cgroup_dirs(&parent);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(
        cgs[0].ends_with(&format!("/{}", dirs[0])),
        "{cgs:?} {dirs:?}"
    );
    let markers: Vec<_> = std::fs::read_dir(dir.path().join("state/inflight"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(markers.is_empty(), "in-flight markers: {markers:?}");
    // A check leaves a process: its cgroup is not handed out again.
    std::fs::write(&leave, "").unwrap();
    assert!(exec.check(&s, &spec).await.ok());
    std::fs::remove_file(&leave).unwrap();
    let pid: i32 = pids_in(&left, 1)[0];
    assert!(exec.check(&s, &spec).await.ok());
    let last = std::fs::read_to_string(&seen).unwrap();
    let last: Vec<&str> = last.lines().collect();
    assert_ne!(last[5], last[6], "a populated cgroup was used again");
    let leftover = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(
        leftover.lines().find(|l| l.starts_with("0::")),
        Some(last[5])
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(common::wait_until(Duration::from_secs(5), || !alive(pid)));
    cgroups.remove_empty();
    assert!(!parent.exists(), "{:?}", cgroup_dirs(&parent));
}

/// A daemon that starts kills what its dead predecessors' status checks
/// left (nobody would read their result or end them at their deadline),
/// and leaves what their starts left alone (a service's own daemons).
#[tokio::test]
async fn a_new_daemon_kills_the_processes_a_dead_daemons_check_left() {
    require_root!();
    use clusvc_agent::resources::sys::cgroup::Cgroups;
    let top = Cgroups::detect().expect("cgroup2 is writable as root");
    // A pid that no process has now.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let old = top.parent().parent().unwrap().join(dead.to_string());
    let spawn_in = |name: &str| {
        let cg = old.join(name);
        std::fs::create_dir_all(&cg).unwrap();
        let child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        std::fs::write(cg.join("cgroup.procs"), child.id().to_string()).unwrap();
        child
    };
    let mut check = spawn_in("c7");
    let mut start = spawn_in("a8");
    let _again = Cgroups::detect().unwrap();
    let killed = common::wait_until(Duration::from_secs(5), || {
        check.try_wait().unwrap().is_some()
    });
    let kept = start.try_wait().unwrap().is_none();
    let _ = check.kill();
    let _ = start.kill();
    let _ = check.wait();
    let _ = start.wait();
    assert!(killed, "the dead daemon's check still runs");
    assert!(kept, "the dead daemon's start's process was killed");
    // Gone once empty (the next daemon removes what is left).
    let _ = Cgroups::detect().unwrap();
    assert!(!old.exists());
}

/// `$DB` lists each service an action ran for once: written whole the
/// first time, then one line appended per new service (a whole rewrite per
/// new service made a cold start quadratic), and a script finds a service
/// added after the first write.
#[tokio::test]
async fn the_service_db_grows_by_one_line_per_new_service() {
    let dir = tempfile::tempdir().unwrap();
    let (exec, events) = executor(dir.path());
    let p = write_script(
        dir.path(),
        "db_probe",
        r#"db_probe() {
    logAndPrint $LOG_INFO "me=$(getSvcName $DB $CLUSVC_SERVICE_ID) first=$(getSvcName $DB 1) id=$(getSvcID $DB $CLUSVC_SERVICE)"
    return $SUCCESS
}
"#,
        0o755,
    );
    use std::os::unix::fs::MetadataExt;
    let db_path = exec.host().state_dir.join("services.db");
    let mut inodes = Vec::new();
    for (name, id) in [("one", 1), ("two", 2), ("three", 3), ("two", 2)] {
        let report = exec
            .start(&svc(name, id, Duration::from_secs(10)), &script_app(&p))
            .await;
        assert!(report.ok(), "{report:?}");
        inodes.push(std::fs::metadata(&db_path).unwrap().ino());
    }
    // Appended to, never replaced, after the first write.
    assert!(inodes.windows(2).all(|w| w[0] == w[1]), "{inodes:?}");
    let said: Vec<String> = events
        .events()
        .into_iter()
        .filter(|e| e.message.starts_with("me="))
        .map(|e| e.message)
        .collect();
    assert_eq!(
        said,
        [
            "me=one first=one id=1",
            "me=two first=one id=2",
            "me=three first=one id=3",
            "me=two first=one id=2"
        ]
    );
    let db = std::fs::read_to_string(&db_path).unwrap();
    assert_eq!(db, "1 one\n2 two\n3 three\n");
}
