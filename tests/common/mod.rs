//! Real parts for integration tests: network namespaces joined by veth
//! pairs, loop devices with ext4, private mount namespaces, a private smbd.
//! Each helper cleans up on drop. Tests that need them run as root (CI
//! does); elsewhere they print "skipped: needs root" and pass.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether this process may create namespaces, loop devices and mounts.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Returns early from a test that needs root, saying so; under `CI=true`
/// the test fails instead, so CI never passes a test it did not run.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            common::skip("needs root (namespaces, loop devices, mounts)");
            return;
        }
    };
}

/// Reports a skipped test: fails under `CI=true`; elsewhere prints
/// `skipped: REASON` and records the test in `target/tmp/skipped-tests`
/// (`.ci/run` and the README say how to read the count).
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_string();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run here ({reason}), and CI=true allows no skipped test");
    }
    eprintln!("skipped: {reason}");
    let list = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(list)
    {
        use std::io::Write as _;
        let _ = writeln!(f, "{test}: {reason}");
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn sh(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command; returns (success, stdout).
pub fn try_sh(argv: &[&str]) -> (bool, String) {
    match Command::new(argv[0]).args(&argv[1..]).output() {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        Err(_) => (false, String::new()),
    }
}

/// Waits until `f` holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call.
pub fn unique(tag: &str) -> String {
    format!(
        "cs{}{}{}",
        tag,
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub mod cluster;
pub mod lan;

/// A network namespace, deleted on drop.
pub struct Netns {
    /// Its name (`ip netns`).
    pub name: String,
}

impl Netns {
    /// Creates it with `lo` up.
    pub fn new(tag: &str) -> Self {
        let name = unique(tag);
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    /// The namespace file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// A command run inside it.
    pub fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Whether `addr` is configured on any interface here.
    pub fn has_addr(&self, addr: &str) -> bool {
        let out = sh(&["ip", "-n", &self.name, "-o", "addr", "show"]);
        out.split_whitespace()
            .any(|w| w.split('/').next() == Some(addr))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Joins two namespaces with a veth pair and addresses them.
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    sh(&[
        "ip", "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        sh(&["ip", "-n", &ns.name, "addr", "add", addr, "dev", ifname]);
        sh(&["ip", "-n", &ns.name, "link", "set", ifname, "up"]);
    }
}

/// A loop device backed by a sparse file holding ext4; detached on drop.
pub struct Loop {
    /// `/dev/loopN`.
    pub dev: String,
    _dir: tempfile::TempDir,
}

impl Loop {
    /// A fresh ext4 image of `mb` MiB on a loop device.
    pub fn ext4(mb: u64) -> Self {
        Self::ext4_with_dirs(mb, &[])
    }

    /// A fresh ext4 image holding the given (empty) directories.
    pub fn ext4_with_dirs(mb: u64, dirs: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(mb << 20).unwrap();
        sh(&[
            "mkfs.ext4",
            "-q",
            "-F",
            "-d",
            root.to_str().unwrap(),
            img.to_str().unwrap(),
        ]);
        let dev = sh(&["losetup", "--find", "--show", img.to_str().unwrap()])
            .trim()
            .to_string();
        Self { dev, _dir: dir }
    }

    /// Detaches now; true when the device was free.
    pub fn detach(&self) -> bool {
        try_sh(&["losetup", "-d", &self.dev]).0
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // After a forced unmount the kernel may release the device a moment later.
        wait_until(Duration::from_secs(2), || {
            !Path::new(&format!(
                "/sys/block/{}/loop",
                self.dev.trim_start_matches("/dev/")
            ))
            .exists()
                || try_sh(&["losetup", "-d", &self.dev]).0
        });
    }
}

/// A private mount namespace held open by a sleeping process.
pub struct MountNs {
    child: Child,
}

impl MountNs {
    /// Creates it (`unshare -m --propagation private`).
    pub fn new() -> Self {
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mine = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || {
                std::fs::read_link(format!("/proc/{pid}/ns/mnt")).is_ok_and(|l| l != mine)
            }),
            "unshare did not enter a new mount namespace"
        );
        Self { child }
    }

    /// The holder's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The namespace's mountinfo text.
    pub fn mountinfo(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap()
    }

    /// Whether something is mounted at `path` in this namespace.
    pub fn is_mounted(&self, path: &str) -> bool {
        self.mountinfo()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(path))
    }

    /// Runs a command inside the namespace.
    pub fn run(&self, argv: &[&str]) -> bool {
        let t = format!("--target={}", self.pid());
        let mut full = vec!["nsenter", t.as_str(), "-m", "--"];
        full.extend_from_slice(argv);
        try_sh(&full).0
    }
}

impl Drop for MountNs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private smbd on 127.0.0.1:port, all state under a temp dir, including
/// the shares file clusvc manages. Stopped (with samba-dcerpcd) on drop.
pub struct Smbd {
    child: Child,
    /// Its port.
    pub port: u16,
    /// Its directory.
    pub dir: tempfile::TempDir,
}

impl Smbd {
    /// Starts it and waits until it accepts connections.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        for sub in ["pid", "lock", "state", "cache", "private", "ncalrpc"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let port = free_port();
        let conf = format!(
            "[global]\n  smb ports = {port}\n  bind interfaces only = yes\n  interfaces = 127.0.0.1\n  pid directory = {d}/pid\n  lock directory = {d}/lock\n  state directory = {d}/state\n  cache directory = {d}/cache\n  private dir = {d}/private\n  ncalrpc dir = {d}/ncalrpc\n  log file = {d}/log.%m\n  map to guest = Bad User\n  server role = standalone server\n  load printers = no\n  printing = bsd\n  printcap name = /dev/null\n  disable spoolss = yes\n  include = {d}/shares.conf\n"
        );
        std::fs::write(dir.path().join("smb.conf"), conf).unwrap();
        std::fs::write(dir.path().join("shares.conf"), "").unwrap();
        let child = Command::new("smbd")
            .args(["-F", "--no-process-group", "-s"])
            .arg(dir.path().join("smb.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smbd (Debian package samba) is installed");
        assert!(
            wait_until(Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "smbd did not start"
        );
        Self { child, port, dir }
    }

    /// smb.conf path.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("smb.conf")
    }

    /// The shares file clusvc manages.
    pub fn shares(&self) -> PathBuf {
        self.dir.path().join("shares.conf")
    }

    /// Share names `smbclient -L` lists.
    pub fn list(&self) -> Vec<String> {
        let out = Command::new("smbclient")
            .args(["-N", "-p", &self.port.to_string(), "-L", "127.0.0.1", "-s"])
            .arg(self.conf())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(" Disk "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    }
}

impl Drop for Smbd {
    fn drop(&mut self) {
        let pid_of = |name: &str| {
            std::fs::read_to_string(self.dir.path().join("pid").join(name))
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
        };
        if let Some(pid) = pid_of("samba-dcerpcd.pid") {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nfs-ganesha serving NFSv4 inside a network namespace; exports come from
/// an `%include`d file clusvc manages. Stopped on drop.
pub struct Ganesha {
    child: Child,
    /// Its directory (config, pid file, exports file).
    pub dir: tempfile::TempDir,
}

impl Ganesha {
    /// Starts it in `ns` and waits until it serves.
    pub fn start(ns: &Netns) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("rec")).unwrap();
        std::fs::write(dir.path().join("exports.conf"), "").unwrap();
        std::fs::write(
            dir.path().join("ganesha.conf"),
            format!(
                "NFS_CORE_PARAM {{\n  Protocols = 4;\n  Enable_NLM = false;\n  Enable_RQUOTA = false;\n}}\nNFSV4 {{\n  Graceless = true;\n  RecoveryBackend = fs;\n  RecoveryRoot = \"{d}/rec\";\n}}\n%include \"{d}/exports.conf\"\n"
            ),
        )
        .unwrap();
        let child = ns
            .cmd(&[
                "ganesha.nfsd",
                "-F",
                "-f",
                &format!("{d}/ganesha.conf"),
                "-p",
                &format!("{d}/ganesha.pid"),
                "-L",
                &format!("{d}/ganesha.log"),
                "-N",
                "NIV_EVENT",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ganesha.nfsd (Debian nfs-ganesha) is installed");
        let log = dir.path().join("ganesha.log");
        assert!(
            wait_until(Duration::from_secs(20), || {
                std::fs::read_to_string(&log).is_ok_and(|t| t.contains("NFS SERVER INITIALIZED"))
            }),
            "nfs-ganesha did not start"
        );
        Self { child, dir }
    }

    /// The exports file.
    pub fn exports(&self) -> PathBuf {
        self.dir.path().join("exports.conf")
    }

    /// The pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("ganesha.pid")
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(self.pid_file())
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `clusvc run` daemon with its own state directory, socket
/// (`STATE/clusvc.sock`, which the CLI uses) and TCP port (with the token
/// it creates, for raw HTTP); killed on drop.
pub struct Daemon {
    child: Option<Child>,
    /// Its TCP URL.
    pub url: String,
    /// Its bearer token for TCP.
    pub token: String,
    /// Its state directory.
    pub state: PathBuf,
    args: Vec<String>,
    /// The command and its leading arguments (`run --member node1`).
    head: Vec<String>,
    /// `--listen` (default `127.0.0.1:0`).
    listen: String,
    _dir: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts `clusvc run --member node1` plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_as(&["run", "--member", "node1"], extra)
    }

    /// Starts `clusvc server --name NAME --store etcd:URL` plus `extra`
    /// arguments (a cluster server).
    pub fn server(name: &str, etcd: &str, extra: &[&str]) -> Self {
        Self::start_as(
            &["server", "--name", name, "--store", &format!("etcd:{etcd}")],
            extra,
        )
    }

    /// [`Daemon::server`] listening on `listen` (an address other
    /// namespaces reach; `extra` says how, e.g. `--insecure-no-tls`).
    pub fn server_on(name: &str, etcd: &str, listen: &str, extra: &[&str]) -> Self {
        Self::start_listening(
            &["server", "--name", name, "--store", &format!("etcd:{etcd}")],
            listen,
            extra,
        )
    }

    fn start_as(head: &[&str], extra: &[&str]) -> Self {
        Self::start_listening(head, "127.0.0.1:0", extra)
    }

    fn start_listening(head: &[&str], listen: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut d = Self {
            child: None,
            url: String::new(),
            token: String::new(),
            state,
            args: extra.iter().map(|s| s.to_string()).collect(),
            head: head.iter().map(|s| s.to_string()).collect(),
            listen: listen.to_string(),
            _dir: Some(dir),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        // The daemon binds a free port itself and says which in
        // `<state-dir>/address`: no port is picked here and raced for.
        let address = self.state.join("address");
        let _ = std::fs::remove_file(&address);
        let child = Command::new(env!("CARGO_BIN_EXE_clusvc"))
            .args(&self.head)
            .args(["--listen", &self.listen])
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--socket")
            .arg(self.socket())
            .args(&self.args)
            .env("CLUSVC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .unwrap();
        self.child = Some(child);
        assert!(
            wait_until(Duration::from_secs(20), || {
                std::fs::read_to_string(&address)
                    .is_ok_and(|a| a.starts_with("http") && a.ends_with('\n'))
            }),
            "clusvc run did not come up; its log:\n{}",
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        );
        self.url = std::fs::read_to_string(&address)
            .unwrap()
            .trim()
            .to_string();
        let token_file = self
            .args
            .iter()
            .position(|a| a == "--token-file")
            .map_or_else(
                || self.state.join("token"),
                |i| self.args[i + 1].clone().into(),
            );
        self.token = std::fs::read_to_string(token_file)
            .unwrap()
            .trim()
            .to_string();
    }

    /// Where its stderr goes (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.state.with_file_name("daemon.log")
    }

    fn log_file(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    /// Its Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.state.join("clusvc.sock")
    }

    /// An HTTP agent that sends the token and returns error statuses as
    /// answers.
    pub fn http(&self) -> ureq::Agent {
        let auth = format!("Bearer {}", self.token);
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .middleware(
                move |mut req: ureq::http::Request<ureq::SendBody>,
                      next: ureq::middleware::MiddlewareNext| {
                    req.headers_mut()
                        .insert("authorization", auth.parse().unwrap());
                    next.handle(req)
                },
            )
            .build()
            .into()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Whether it still runs (a cluster server exits when it loses its
    /// leadership; a supervisor would start it again).
    pub fn runs(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// `kill -9`, then start again on the same state directory.
    pub fn crash_and_restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The CLI pointed at this daemon's socket.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_clusvc"));
        c.env("CLUSVC_SERVER", format!("unix:{}", self.socket().display()))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        c
    }

    /// Runs the CLI; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cli().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// GET a JSON document from the API.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let mut r = self
            .http()
            .get(&format!("{}{path}", self.url))
            .call()
            .unwrap();
        // Lists of 10,000 services are larger than ureq's default 10 MiB.
        let text = r
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Logs in to the web console with `token`: the session cookie
    /// (`clusvc_session=ID`) and the session's CSRF token.
    pub fn console_login(&self, token: &str) -> (String, String) {
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let r = http
            .post(&format!("{}/ui/login", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .send(format!("token={token}"))
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "console login");
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let page = http
            .get(&format!("{}/ui/", self.url))
            .header("cookie", &cookie)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let csrf = page
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("the console page has its CSRF token")
            .to_string();
        (cookie, csrf)
    }

    /// The service view, if listed.
    pub fn service(&self, name: &str) -> Option<serde_json::Value> {
        self.get_json("/v1/services")
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
    }

    /// Waits until the service is in `state`.
    pub fn wait_state(&self, name: &str, state: &str, limit: Duration) -> bool {
        wait_until(limit, || {
            self.service(name).is_some_and(|s| s["state"] == state)
        })
    }

    /// Events of a service, as the API returns them.
    pub fn events_json(&self, service: &str) -> Vec<serde_json::Value> {
        let url = format!("{}/v1/events?service={service}&limit=1000", self.url);
        let mut r = self.http().get(&url).call().unwrap();
        r.body_mut()
            .read_to_string()
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect()
    }

    /// Event messages of a service (`resource: message` for resource events).
    pub fn events(&self, service: &str) -> Vec<String> {
        self.events_json(service)
            .into_iter()
            .map(|e| {
                let res = e["resource"].as_str().unwrap_or("");
                if res.is_empty() {
                    e["message"].as_str().unwrap_or("").to_string()
                } else {
                    format!("{res}: {}", e["message"].as_str().unwrap_or(""))
                }
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Writes an executable script.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Spec builders, so a test reads as its scenario.
pub mod spec {
    use clusvc_core::model::{Application, Device, Filesystem};

    /// A block device with no activation commands.
    pub fn device(path: &str) -> Device {
        Device {
            path: path.to_string(),
            activate: vec![],
            deactivate: vec![],
        }
    }

    /// An ext4 filesystem from `device` at `mount_point`.
    pub fn ext4(device: &str, mount_point: &str) -> Filesystem {
        Filesystem {
            device: device.to_string(),
            mount_point: mount_point.to_string(),
            fs_type: Some("ext4".into()),
            options: vec![],
            fsck: false,
            force_unmount: false,
        }
    }

    /// A seed-style script application.
    pub fn script(path: impl AsRef<std::path::Path>) -> Application {
        Application {
            script: Some(path.as_ref().display().to_string()),
            ..Application::default()
        }
    }
}

/// A real etcd cluster of `n` members on 127.0.0.1 (free ports), its data
/// under a temp dir; killed on drop. `None` (a reported skip) where etcd is
/// not installed, which fails under `CI=true`.
pub struct EtcdCluster {
    children: Vec<Option<Child>>,
    clients: Vec<String>,
    peers: Vec<String>,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster answers.
    pub fn start(n: usize) -> Option<Self> {
        let installed = Command::new("etcd")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            skip("etcd is not installed (Debian etcd-server)");
            return None;
        }
        let clients = (0..n)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let peers = (0..n)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let mut c = Self {
            children: (0..n).map(|_| None).collect(),
            clients,
            peers,
            dir: tempfile::tempdir().unwrap(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        let ok = wait_until(Duration::from_secs(30), || {
            c.clients.iter().all(|u| {
                ureq::get(format!("{u}/health"))
                    .call()
                    .ok()
                    .and_then(|mut r| r.body_mut().read_to_string().ok())
                    .is_some_and(|b| b.contains("\"health\":\"true\""))
            })
        });
        assert!(ok, "etcd did not come up");
        Some(c)
    }

    fn spawn(&mut self, i: usize) {
        let cluster: Vec<String> = self
            .peers
            .iter()
            .enumerate()
            .map(|(j, p)| format!("e{j}={p}"))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("e{i}.log")))
            .unwrap();
        let child = Command::new("etcd")
            .args(["--name", &format!("e{i}"), "--data-dir"])
            .arg(self.dir.path().join(format!("e{i}")))
            .args([
                "--listen-client-urls",
                &self.clients[i],
                "--advertise-client-urls",
                &self.clients[i],
                "--listen-peer-urls",
                &self.peers[i],
                "--initial-advertise-peer-urls",
                &self.peers[i],
                "--initial-cluster",
                &cluster.join(","),
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                // Sized for applies of 10,000 services, as docs/cluster.md
                // advises (the defaults are 128 operations and 1.5 MiB).
                "--max-txn-ops",
                "25000",
                "--max-request-bytes",
                "10485760",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    /// The client URLs, comma-separated (for `--store etcd:...`).
    pub fn endpoints(&self) -> String {
        self.clients.join(",")
    }

    /// The index of the member that leads the etcd cluster now, as the
    /// members that answer say.
    pub fn leader(&self) -> Option<usize> {
        let status = |i: usize| {
            ureq::post(format!("{}/v3/maintenance/status", self.clients[i]))
                .send("{}")
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
        };
        let live: Vec<usize> = (0..self.clients.len())
            .filter(|i| self.children[*i].is_some())
            .collect();
        let leader = live
            .iter()
            .find_map(|i| status(*i).and_then(|v| v["leader"].as_str().map(str::to_string)))?;
        live.into_iter().find(|i| {
            status(*i).is_some_and(|v| v["header"]["member_id"].as_str() == Some(leader.as_str()))
        })
    }

    /// The store's revision now (every write raises it; lease renewals
    /// do not), as the first live member says.
    pub fn revision(&self) -> Option<u64> {
        (0..self.clients.len())
            .filter(|i| self.children[*i].is_some())
            .find_map(|i| {
                ureq::post(format!("{}/v3/maintenance/status", self.clients[i]))
                    .send("{}")
                    .ok()
                    .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
                    .and_then(|v| v["header"]["revision"].as_str()?.parse().ok())
            })
    }

    /// How many keys are under `prefix` (etcd's JSON gateway).
    pub fn count(&self, prefix: &str) -> Option<u64> {
        let b64 = |b: &[u8]| {
            const A: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut out = String::new();
            for c in b.chunks(3) {
                let n = (u32::from(c[0]) << 16)
                    | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                    | u32::from(*c.get(2).unwrap_or(&0));
                for k in 0..4 {
                    if k <= c.len() {
                        out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
                    } else {
                        out.push('=');
                    }
                }
            }
            out
        };
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let body = serde_json::json!({
            "key": b64(prefix.as_bytes()),
            "range_end": b64(&end),
            "count_only": true,
        });
        (0..self.clients.len())
            .filter(|i| self.children[*i].is_some())
            .find_map(|i| {
                ureq::post(format!("{}/v3/kv/range", self.clients[i]))
                    .send(body.to_string())
                    .ok()
                    .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
                    .map(|v| {
                        v["count"]
                            .as_str()
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(0)
                    })
            })
    }

    /// The process id of member `i` (0 when it is down).
    pub fn pid(&self, i: usize) -> u32 {
        self.children[i].as_ref().map_or(0, Child::id)
    }

    /// `kill -9` of member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again (on its data).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
