//! One cgroup (v2) per action, as systemd and Kubernetes contain what they
//! start: a process of the action cannot leave it by `setsid` or double
//! forking, so at the deadline `cgroup.kill` ends every one of them.
//!
//! The daemon makes `clusvc-actions/<pid>/` under its own cgroup (found
//! through `/proc/self/cgroup` on the cgroup2 mount, `/sys/fs/cgroup` or a
//! hybrid host's `/sys/fs/cgroup/unified`); each action gets a child
//! `a<N>`, which the child process joins between fork and exec. After a
//! normal exit the cgroup is removed, or, while daemons the action started
//! still live in it, removed later once they are gone. Where cgroups cannot
//! be written (not root, no cgroup2) actions run in their process group
//! only, and the daemon says so once.

use std::collections::BTreeSet;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why action cgroups are not available.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cgroup2 hierarchy is mounted.
    #[error("no cgroup2 hierarchy is mounted")]
    NoCgroup2,
    /// This process's cgroup could not be found.
    #[error("cannot find this process's cgroup in /proc/self/cgroup")]
    NoOwnCgroup,
    /// The parent cgroup could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Where lingering cgroups are retried at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The parent of this daemon's action cgroups.
#[derive(Debug)]
pub struct Cgroups {
    parent: PathBuf,
    /// Cgroups of finished actions that still held processes.
    lingering: Mutex<(BTreeSet<PathBuf>, Option<Instant>)>,
}

impl PartialEq for Cgroups {
    fn eq(&self, other: &Self) -> bool {
        self.parent == other.parent
    }
}

impl Eq for Cgroups {}

/// The cgroup2 mount point, from a mountinfo text.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// This process's cgroup v2 path, from a `/proc/self/cgroup` text.
fn own_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().trim_start_matches('/').to_string())
}

impl Cgroups {
    /// Creates `clusvc-actions/<pid>/` under this process's cgroup, and
    /// removes what dead daemons left there empty.
    pub fn detect() -> Result<Self, Error> {
        let mount = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|m| cgroup2_mount(&m))
            .ok_or(Error::NoCgroup2)?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|c| own_cgroup(&c))
            .ok_or(Error::NoOwnCgroup)?;
        let base = mount.join(own).join("clusvc-actions");
        let parent = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&parent).map_err(|source| Error::Create {
            path: parent.clone(),
            source,
        })?;
        // Earlier daemons' directories: remove their empty action cgroups,
        // and the directory once empty.
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let pid = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
                let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
                if !alive {
                    remove_tree(&e.path());
                }
            }
        }
        Ok(Self::at(parent))
    }

    /// Action cgroups under `parent` (which must exist).
    pub fn at(parent: PathBuf) -> Self {
        Self {
            parent,
            lingering: Mutex::new((BTreeSet::new(), None)),
        }
    }

    /// Removes the empty action cgroups and, if then empty, the parent (at
    /// shutdown; cgroups still holding daemons an action started stay).
    pub fn remove_empty(&self) {
        remove_tree(&self.parent);
    }

    /// The directory holding the action cgroups.
    pub fn parent(&self) -> &Path {
        &self.parent
    }

    /// A new, empty cgroup for one action.
    pub fn create(&self) -> io::Result<ActionCgroup<'_>> {
        self.sweep();
        // Numbered across the process: two `Cgroups` on one parent (tests)
        // never pick one name.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self
            .parent
            .join(format!("a{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&path)?;
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(path.join("cgroup.procs"))
            .inspect_err(|_| {
                let _ = std::fs::remove_dir(&path);
            })?;
        Ok(ActionCgroup {
            owner: self,
            path,
            procs: OwnedFd::from(procs),
        })
    }

    /// Retries removing cgroups whose daemons were still running.
    fn sweep(&self) {
        let mut l = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        let (set, last) = &mut *l;
        if set.is_empty() || last.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        set.retain(|p| std::fs::remove_dir(p).is_err() && p.exists());
    }
}

/// Removes the empty cgroups of a tree, children first.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// One action's cgroup; removed on drop when empty, else later.
#[derive(Debug)]
pub struct ActionCgroup<'a> {
    owner: &'a Cgroups,
    path: PathBuf,
    procs: OwnedFd,
}

impl ActionCgroup<'_> {
    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A descriptor of its `cgroup.procs`: a child writes `0` to it between
    /// fork and exec to join.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Whether any process is in it.
    pub fn populated(&self) -> bool {
        populated(&self.path)
    }

    /// Sends `signal` to every process in it.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        for pid in pids(&self.path) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// Kills every process in it (`cgroup.kill`, or SIGKILL to each on
    /// kernels before 5.14) and waits, up to `limit`, until it is empty.
    pub async fn kill(&self, limit: Duration) {
        kill_path(&self.path, limit).await;
    }
}

impl Drop for ActionCgroup<'_> {
    fn drop(&mut self) {
        if std::fs::remove_dir(&self.path).is_err() && self.path.exists() {
            // Daemons the action started live on in it.
            let mut l = self
                .owner
                .lingering
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            l.0.insert(self.path.clone());
        }
    }
}

/// [`ActionCgroup::kill`] by path (for an action a crashed daemon left).
pub async fn kill_path(cgroup: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    let killed = std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.kill"))
        .and_then(|mut f| f.write_all(b"1"))
        .is_ok();
    while populated(cgroup) && Instant::now() < deadline {
        if !killed {
            for pid in pids(cgroup) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn populated(cgroup: &Path) -> bool {
    match std::fs::read_to_string(cgroup.join("cgroup.events")) {
        Ok(t) => t.lines().any(|l| l == "populated 1"),
        Err(_) => !pids(cgroup).is_empty(),
    }
}

fn pids(cgroup: &Path) -> Vec<i32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_and_own_cgroup() {
        let hybrid = "25 18 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("1 0 0:1 / / rw - ext4 /dev/sda rw\n"), None);
        assert_eq!(
            own_cgroup("4:memory:/x\n0::/system.slice/clusvc.service\n").as_deref(),
            Some("system.slice/clusvc.service")
        );
        assert_eq!(own_cgroup("0::/\n").as_deref(), Some(""));
    }
}
