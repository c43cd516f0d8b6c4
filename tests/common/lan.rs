//! A little cluster network for the cluster tests and the failover
//! benchmark: a bridge in this namespace (the servers' side, `.1`), one
//! network namespace per member (`eth0`, `.10`, `.11`, ...) and a client
//! namespace (`.200`), all on one /24; plus an ownership checker that
//! samples, every 20 ms, which members hold a floating address and which
//! run an application, and records every moment with two of either.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Netns, sh};

static SUBNET: AtomicU32 = AtomicU32::new(0);

/// One member's namespace, with a process kept in it (so its network can
/// be read through `/proc/PID/net` without spawning anything).
pub struct Member {
    /// The member's name.
    pub name: String,
    /// Its namespace.
    pub ns: Netns,
    /// Its address.
    pub addr: String,
    anchor: Child,
}

impl Member {
    /// Whether `addr` is configured here.
    pub fn holds(&self, addr: &str) -> bool {
        fib_has_local(&format!("/proc/{}/net/fib_trie", self.anchor.id()), addr)
    }

    /// Cuts (`false`) or restores (`true`) its link.
    pub fn link(&self, up: bool) {
        sh(&[
            "ip",
            "-n",
            &self.ns.name,
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
    }
}

/// Whether a fib_trie dump lists `addr` as a local (/32 host) address.
fn fib_has_local(path: &str, addr: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().trim_start_matches("|-- ").trim() == addr
            && lines.next().is_some_and(|n| n.contains("/32 host LOCAL"))
        {
            return true;
        }
    }
    false
}

/// The network.
pub struct Lan {
    /// `10.A.B` (without the last byte).
    pub prefix: String,
    bridge: String,
    /// The members, in order.
    pub members: Vec<Member>,
    /// The client namespace.
    pub client: Netns,
}

impl Lan {
    /// A bridge and namespaces for `members`.
    pub fn new(members: &[&str]) -> Self {
        let n = SUBNET.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("10.{}.{}", 100 + std::process::id() % 100, 10 + n);
        let bridge = super::unique("br");
        sh(&["ip", "link", "add", &bridge, "type", "bridge"]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{prefix}.1/24"),
            "dev",
            &bridge,
        ]);
        sh(&["ip", "link", "set", &bridge, "up"]);
        let attach = |ns: &Netns, addr: &str| {
            let host_if = super::unique("v");
            sh(&[
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns",
                &ns.name,
            ]);
            sh(&["ip", "link", "set", &host_if, "master", &bridge]);
            sh(&["ip", "link", "set", &host_if, "up"]);
            sh(&[
                "ip",
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", &ns.name, "link", "set", "eth0", "up"]);
        };
        let members = members
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let ns = Netns::new("m");
                let addr = format!("{prefix}.{}", 10 + i);
                attach(&ns, &addr);
                let anchor = ns
                    .cmd(&["sleep", "1000000"])
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap();
                Member {
                    name: name.to_string(),
                    ns,
                    addr,
                    anchor,
                }
            })
            .collect();
        let client = Netns::new("c");
        attach(&client, &format!("{prefix}.200"));
        Self {
            prefix,
            bridge,
            members,
            client,
        }
    }

    /// The servers' address (on the bridge).
    pub fn server_addr(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> &Member {
        self.members.iter().find(|m| m.name == name).unwrap()
    }

    /// `curl` from the client namespace: the body, if it answered within
    /// `limit`.
    pub fn curl(&self, url: &str, limit: Duration) -> Option<String> {
        let out = self
            .client
            .cmd(&[
                "curl",
                "-sf",
                "--max-time",
                &format!("{:.1}", limit.as_secs_f64()),
                url,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// Samples ownership every 20 ms until stopped.
pub struct Checker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// (time since start, what was seen) for every moment with two owners.
    pub violations: Arc<Mutex<Vec<String>>>,
    samples: Arc<AtomicU32>,
}

/// What the checker watches.
pub struct Watched {
    /// The member's name and its `/proc/PID/net/fib_trie`.
    pub members: Vec<(String, String)>,
    /// The floating address.
    pub addr: String,
    /// `DIR/app.MEMBER.pid` files name each member's application process.
    pub pid_dir: PathBuf,
}

fn runs_app(dir: &Path, member: &str) -> bool {
    let Ok(pid) = std::fs::read_to_string(dir.join(format!("app.{member}.pid"))) else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

impl Checker {
    /// Starts sampling `lan`'s members for `addr` and the application.
    pub fn start(lan: &Lan, addr: &str, pid_dir: &Path) -> Self {
        let watched = Watched {
            members: lan
                .members
                .iter()
                .map(|m| {
                    (
                        m.name.clone(),
                        format!("/proc/{}/net/fib_trie", m.anchor.id()),
                    )
                })
                .collect(),
            addr: addr.to_string(),
            pid_dir: pid_dir.to_path_buf(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(AtomicU32::new(0));
        let thread = {
            let (stop, violations, samples) = (stop.clone(), violations.clone(), samples.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let holders: Vec<&str> = watched
                        .members
                        .iter()
                        .filter(|(_, fib)| fib_has_local(fib, &watched.addr))
                        .map(|(n, _)| n.as_str())
                        .collect();
                    let runners: Vec<&str> = watched
                        .members
                        .iter()
                        .filter(|(n, _)| runs_app(&watched.pid_dir, n))
                        .map(|(n, _)| n.as_str())
                        .collect();
                    if holders.len() > 1 || runners.len() > 1 {
                        violations.lock().unwrap().push(format!(
                            "{:?}: address on {holders:?}, application on {runners:?}",
                            t0.elapsed()
                        ));
                    }
                    samples.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Self {
            stop,
            thread: Some(thread),
            violations,
            samples,
        }
    }

    /// Stops sampling; panics if two members ever owned the address or
    /// ran the application at once. Returns the number of samples.
    pub fn finish(mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "two owners at once:\n{}", v.join("\n"));
        self.samples.load(Ordering::Relaxed)
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
