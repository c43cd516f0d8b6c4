//! Who may use the API, against the real binary: the Unix socket admits
//! root and the admin group by their peer credentials (other local users,
//! run with `setpriv` under ids no account has, get nothing or read only);
//! TCP always wants the token, off loopback TLS; objects are recorded
//! under a source derived from the caller.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Daemon, wait_until};

const T: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_clusvc");

/// A local user with no account: uid 4242.
const NOBODY: &str = "4242";
/// The admin group of these tests (no group file entry needed).
const ADMINS: &str = "4343";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the CLI as uid 4242 with these supplementary groups (`-` for
/// none), its primary group `gid`.
fn as_user(gid: &str, groups: &str, socket: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", NOBODY, "--regid", gid]);
    if groups == "-" {
        c.arg("--clear-groups");
    } else {
        c.args(["--groups", groups]);
    }
    c.arg(BIN)
        .args(args)
        .env("CLUSVC_SERVER", format!("unix:{}", socket.display()))
        .current_dir("/")
        .output()
        .expect("setpriv (util-linux) is installed")
}

fn manifest(dir: &Path, name: &str) -> PathBuf {
    let f = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &f,
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  enabled: false\n  checkInterval: 0s\n"
        ),
    )
    .unwrap();
    // Readable by the unprivileged user.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    f
}

fn source_of(d: &Daemon, service: &str) -> String {
    d.get_json(&format!("/v1/services/{service}"))["source"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A scratch directory everyone may read (for the unprivileged user).
fn open_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

#[test]
fn the_socket_admits_root_and_the_admin_group_and_refuses_everyone_else() {
    require_root!();
    let d = Daemon::start(&["--admin-group", ADMINS]);
    let sock = d.socket();
    let md = std::fs::metadata(&sock).unwrap();
    assert_eq!(md.mode() & 0o777, 0o660, "socket mode");
    assert_eq!((md.uid(), md.gid()), (0, 4343), "socket owner");
    let files = open_dir();
    let mine = manifest(files.path(), "mine");

    // Before: any local user could POST to the API and have root run a
    // script. Now a user outside the group cannot even connect...
    let out = as_user(NOBODY, "-", &sock, &["apply", "-f", mine.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("Permission denied") && text(&out).contains("admin group"),
        "{}",
        text(&out)
    );
    // ...nor over TCP without the token.
    let r = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(&format!("{}/v1/apply", d.url))
        .send_json(serde_json::json!({"services": []}))
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(d.service("mine").is_none());

    // A member of the group (supplementary, as `usermod -aG` makes one)
    // may write; the objects are recorded under its source.
    let out = as_user(
        NOBODY,
        ADMINS,
        &sock,
        &["apply", "-f", mine.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(source_of(&d, "mine"), "apply@uid:4242");
    // Primary group membership counts as well.
    let out = as_user(ADMINS, "-", &sock, &["get", "services"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Root applies its own objects; the group member's prune cannot touch
    // them, nor the member clusvc declared (source `local`), even when it
    // names those labels: its source is LABEL@uid:4242.
    let roots = manifest(files.path(), "roots");
    let (code, _, err) = d.run(&["apply", "-f", roots.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(source_of(&d, "roots"), "apply@root");
    for (label, object) in [("apply", "other"), ("local", "other2")] {
        let f = manifest(files.path(), object);
        let out = as_user(
            NOBODY,
            ADMINS,
            &sock,
            &[
                "apply",
                "--prune",
                "--source",
                label,
                "-f",
                f.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    // Nor take root's object over by applying it (then pruning it).
    let out = as_user(
        NOBODY,
        ADMINS,
        &sock,
        &["apply", "-f", roots.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("service/roots is managed by apply@root"),
        "{}",
        text(&out)
    );
    assert_eq!(source_of(&d, "roots"), "apply@root");
    assert!(d.service("roots").is_some(), "root's service was pruned");
    assert!(
        d.get_json("/v1/members/node1")["name"] == "node1",
        "the local member was pruned"
    );
    // `apply@uid:4242` pruned its own `mine` (no longer in its input).
    assert!(d.service("mine").is_none());
    // A manifests directory's source cannot be claimed.
    let r = d
        .http()
        .post(&format!("{}/v1/apply", d.url))
        .send_json(serde_json::json!({"source": "gitops:/srv", "services": []}))
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[test]
fn allow_read_all_lets_others_read_and_nothing_more() {
    require_root!();
    let d = Daemon::start(&["--allow-read-all"]);
    let sock = d.socket();
    assert_eq!(
        std::fs::metadata(&sock).unwrap().mode() & 0o777,
        0o666,
        "socket mode"
    );
    let files = open_dir();
    let f = manifest(files.path(), "web");
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for read in [
        vec!["get", "services"],
        vec!["describe", "service", "web"],
        vec!["events"],
    ] {
        let out = as_user(NOBODY, "-", &sock, &read);
        assert_eq!(out.status.code(), Some(0), "{read:?}: {}", text(&out));
    }
    // A plan changes nothing: allowed (exit 0 no change or 1 changes).
    let out = as_user(NOBODY, "-", &sock, &["plan"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    for write in [
        vec!["apply", "-f", f.to_str().unwrap()],
        vec!["delete", "service", "web"],
        vec!["enable", "web"],
        vec!["restart", "web"],
    ] {
        let out = as_user(NOBODY, "-", &sock, &write);
        assert_eq!(out.status.code(), Some(1), "{write:?}: {}", text(&out));
        assert!(
            text(&out).contains("uid 4242 may only read"),
            "{write:?}: {}",
            text(&out)
        );
    }
    assert!(d.service("web").is_some());
}

#[test]
fn tcp_always_needs_the_token_and_off_loopback_tls() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("run")
            .args(args)
            .arg("--state-dir")
            .arg(dir.path().join("refused"))
            .arg("--socket")
            .arg(dir.path().join("refused.sock"))
            .output()
            .unwrap()
    };
    // Off loopback: TLS, or an explicit --insecure-no-tls.
    let out = run(&["--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("without TLS"), "{}", text(&out));
    // The token file: non-empty, its owner's only.
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("it is empty"), "{}", text(&out));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Loopback too: no token, no answer.
    let d = Daemon::start(&["--token-file", token.to_str().unwrap()]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let services = format!("{}/v1/services", d.url);
    assert_eq!(agent.get(&services).call().unwrap().status(), 401);
    for (header, status) in [
        ("Bearer s3cret-tokeN", 401),
        ("Basic s3cret-token", 401),
        ("Bearer s3cret-token", 200),
        // The scheme is case-insensitive (RFC 7235).
        ("bearer s3cret-token", 200),
    ] {
        let r = agent
            .get(&services)
            .header("Authorization", header)
            .call()
            .unwrap();
        assert_eq!(r.status(), status, "{header}");
    }
    let tcp = |extra: &[&str]| {
        Command::new(BIN)
            .args(["get", "services", "--server", &d.url])
            .args(extra)
            .env_remove("CLUSVC_TOKEN")
            .env_remove("CLUSVC_TOKEN_FILE")
            .output()
            .unwrap()
    };
    let out = tcp(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("bearer token"), "{}", text(&out));
    let out = tcp(&["--token-file", token.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_tcp_listener_without_a_token_gets_one_created_on_first_start() {
    let mut d = Daemon::start(&[]);
    let file = d.state.join("token");
    let md = std::fs::metadata(&file).unwrap();
    assert_eq!(md.mode() & 0o777, 0o600);
    // What the daemon keeps is its own: the store and events are private,
    // the state directory can only be passed through.
    for (path, mode) in [
        (d.state.clone(), 0o711),
        (d.state.join("store"), 0o700),
        (d.state.join("store/wal"), 0o600),
        (d.state.join("events.jsonl"), 0o600),
    ] {
        let m = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(m, mode, "{} is {m:o}", path.display());
    }
    let first = d.token.clone();
    assert_eq!(first.len(), 64, "{first}");
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
    // Restarts keep it.
    d.crash_and_restart();
    assert_eq!(d.token, first);
    assert_eq!(d.get_json("/healthz")["status"], "ok");
}

#[test]
fn insecure_no_tls_is_allowed_on_purpose_and_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--member", "node1", "--listen", "0.0.0.0:0"])
        .arg("--insecure-no-tls")
        .arg("--state-dir")
        .arg(dir.path())
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = dir.path().join("address");
    let up = wait_until(T, || {
        std::fs::read_to_string(&address).is_ok_and(|a| a.starts_with("http://0.0.0.0:"))
    });
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(up, "{}", text(&out));
    assert!(
        text(&out).contains("--insecure-no-tls: the API on 0.0.0.0"),
        "{}",
        text(&out)
    );
}

/// A CA and a server certificate for 127.0.0.1 it signed (webpki wants a
/// CA apart from the end entity); returns (CA, server cert, server key).
fn openssl_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "2",
        "-subj",
        "/CN=clusvc test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    openssl(&csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[test]
fn tls_serves_https_to_clients_that_trust_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = openssl_cert(dir.path());
    // A key others may read is refused.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--state-dir")
        .arg(dir.path().join("refused"))
        .arg("--socket")
        .arg(dir.path().join("refused.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("readable"), "{}", text(&out));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let d = Daemon::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(d.url.starts_with("https://127.0.0.1:"), "{}", d.url);
    let token = d.state.join("token");
    let cli = |server: &str, extra: &[&str]| {
        Command::new(BIN)
            .args(["get", "members", "--server", server, "--token-file"])
            .arg(&token)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = cli(&d.url, &["--ca-file", ca.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("node1"), "{}", text(&out));
    // Without the CA the certificate is not trusted.
    let out = cli(&d.url, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // Plain HTTP to the TLS port gets no answer.
    let plain = d.url.replace("https://", "http://");
    let out = cli(&plain, &[]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn the_cli_finds_the_default_socket_with_no_setup() {
    require_root!();
    // Root: /run/clusvc/clusvc.sock.
    let dir = tempfile::tempdir().unwrap();
    let start = |state: &Path| {
        Command::new(BIN)
            .args(["run", "--member", "node1", "--state-dir"])
            .arg(state)
            .env("CLUSVC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = start(&dir.path().join("a"));
    let address = dir.path().join("a/address");
    assert!(wait_until(T, || std::fs::read_to_string(&address)
        .is_ok_and(|a| a == "unix:/run/clusvc/clusvc.sock\n")));
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env_remove("CLUSVC_SERVER")
            .output()
            .unwrap()
    };
    let out = cli(&["get", "members"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("node1"));
    // A second daemon does not take the socket of a live one.
    let out = start(&dir.path().join("b")).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("another clusvc daemon is serving /run/clusvc/clusvc.sock"),
        "{}",
        text(&out)
    );
    // After kill -9 the stale socket is replaced.
    first.kill().unwrap();
    first.wait().unwrap();
    let _ = std::fs::remove_file(&address);
    let mut again = start(&dir.path().join("a"));
    assert!(wait_until(T, || std::fs::read_to_string(&address).is_ok()));
    let out = cli(&["get", "members"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // SIGTERM removes it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(again.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    again.wait().unwrap();
    assert!(!Path::new("/run/clusvc/clusvc.sock").exists());
    let out = cli(&["get", "members"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("clusvc run"), "{}", text(&out));

    // Not root: STATE-DIR/clusvc.sock under the user's home, found by the
    // same user's CLI.
    let home = open_dir();
    nix::unistd::chown(
        home.path(),
        Some(nix::unistd::Uid::from_raw(4242)),
        Some(nix::unistd::Gid::from_raw(4242)),
    )
    .unwrap();
    let user = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
            .arg(BIN)
            .args(args)
            .env_remove("CLUSVC_SERVER")
            .env_remove("XDG_STATE_HOME")
            .env("HOME", home.path())
            .env("CLUSVC_LOG", "warn")
            .current_dir("/");
        c
    };
    let mut daemon = user(&["run", "--member", "node1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sock = home.path().join(".local/state/clusvc/clusvc.sock");
    let up = wait_until(T, || sock.exists());
    let out = user(&["get", "members"]).output().unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(up, "no socket at {}", sock.display());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// A local user holding connections open cannot starve the daemon: past
/// its per-user cap a connection is closed at once, idle ones are closed
/// when no request head arrives in time, and root is still served.
#[test]
fn a_user_holding_connections_open_does_not_starve_the_daemon() {
    require_root!();
    let d = Daemon::start(&["--allow-read-all"]);
    let script = r#"
import socket, sys, time, select
path, n = sys.argv[1], int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    socks.append(s)
def closed(s, wait):
    r, _, _ = select.select([s], [], [], wait)
    return bool(r) and s.recv(1) == b""
kept_closed = sum(1 for s in socks[:60] if closed(s, 0))
at_once = sum(1 for s in socks[100:] if closed(s, 1.0))
print("closed_at_once", at_once, "of_kept", kept_closed, flush=True)
sys.stdin.readline()
t0 = time.time()
left = socks[:60]
while left and time.time() - t0 < 30:
    left = [s for s in left if not closed(s, 0.2)]
print("still_open", len(left), "after", round(time.time() - t0), flush=True)
"#;
    let mut attacker = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .args(["/usr/bin/python3", "-c", script])
        .arg(d.socket())
        .arg("200")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (Debian python3) is installed");
    use std::io::{BufRead, Write};
    let mut lines = std::io::BufReader::new(attacker.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // 200 opened, 64 allowed: the last 100 closed at once, the first 60
    // kept.
    assert_eq!(first, "closed_at_once 100 of_kept 0", "{first}");
    // Root is served meanwhile.
    let (code, out, err) = d.run(&["get", "members"]);
    assert_eq!(code, 0, "{out}{err}");
    // The held ones are closed once no request head came in time.
    writeln!(attacker.stdin.as_mut().unwrap()).unwrap();
    let last = lines.next().unwrap().unwrap();
    assert!(last.starts_with("still_open 0 "), "{last}");
    let _ = attacker.wait();
}

/// Files root writes go only into directories no one else can change,
/// and are never followed through links; the CLI talks only to a socket
/// root or the caller made.
#[test]
fn directories_and_files_another_user_controls_are_refused() {
    require_root!();
    let base = open_dir();
    let theirs = base.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    nix::unistd::chown(
        &theirs,
        Some(nix::unistd::Uid::from_raw(4242)),
        Some(nix::unistd::Gid::from_raw(4242)),
    )
    .unwrap();
    let run = |state: &Path, socket: &Path, extra: &[&str]| {
        Command::new(BIN)
            .args(["run", "--member", "node1", "--state-dir"])
            .arg(state)
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .output()
            .unwrap()
    };
    // A state directory another user owns.
    let out = run(&theirs, &base.path().join("a.sock"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("belongs to uid 4242"), "{}", text(&out));
    // A socket in a directory another user owns.
    let mine = base.path().join("mine");
    let out = run(&mine, &theirs.join("s.sock"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("socket's directory"), "{}", text(&out));
    // A token that is a link to a file another user can read.
    let leak = theirs.join("known");
    std::fs::write(&leak, "attacker-knows-this\n").unwrap();
    std::fs::set_permissions(&leak, std::fs::Permissions::from_mode(0o600)).unwrap();
    nix::unistd::chown(&leak, Some(nix::unistd::Uid::from_raw(4242)), None).unwrap();
    std::fs::create_dir_all(&mine).unwrap();
    std::os::unix::fs::symlink(&leak, mine.join("token")).unwrap();
    let out = run(
        &mine,
        &base.path().join("b.sock"),
        &["--listen", "127.0.0.1:0"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("symbolic link"), "{}", text(&out));
    // Nor as --token-file: the file belongs to another user.
    let out = run(
        &mine,
        &base.path().join("c.sock"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            leak.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("belongs to uid 4242"), "{}", text(&out));
    // The CLI does not talk to a socket another user made.
    let fake = theirs.join("fake.sock");
    let listener = std::os::unix::net::UnixListener::bind(&fake).unwrap();
    nix::unistd::chown(&fake, Some(nix::unistd::Uid::from_raw(4242)), None).unwrap();
    let out = Command::new(BIN)
        .args(["get", "services", "--server"])
        .arg(format!("unix:{}", fake.display()))
        .output()
        .unwrap();
    drop(listener);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refusing to talk to"), "{}", text(&out));
}
