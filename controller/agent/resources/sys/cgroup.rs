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
//!
//! Status checks (1,667 a second at 100,000 services checked every 60 s)
//! run in `c<N>` cgroups that are kept and used again once empty: making
//! and removing a cgroup per check cost a tenth of the daemon's CPU. A
//! check's result is only of use to the process that started it, so a
//! daemon that starts kills what its dead predecessors' checks left.

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

/// At most this many empty check cgroups are kept for use again (more
/// checks at once than this make and remove theirs).
const IDLE_MAX: usize = 1024;

/// The prefix of check cgroups (used again; killed by a successor).
const CHECK: &str = "c";

/// The parent of this daemon's action cgroups.
#[derive(Debug)]
pub struct Cgroups {
    parent: PathBuf,
    /// Cgroups of finished actions that still held processes.
    lingering: Mutex<(BTreeSet<PathBuf>, Option<Instant>)>,
    /// Empty check cgroups, with their open files.
    idle: Mutex<Vec<(PathBuf, Files)>>,
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
        // There before this process first looked: a dead daemon's that had
        // this pid (a container's pid 1 always has).
        static FIRST: std::sync::Once = std::sync::Once::new();
        let mut first = false;
        FIRST.call_once(|| first = true);
        if first && parent.exists() {
            kill_checks(&parent);
            remove_tree(&parent);
        }
        std::fs::create_dir_all(&parent).map_err(|source| Error::Create {
            path: parent.clone(),
            source,
        })?;
        // Earlier daemons' directories: kill what their checks left, remove
        // their empty action cgroups, and the directory once empty.
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let pid = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
                let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
                if !alive {
                    kill_checks(&e.path());
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
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Removes the empty action cgroups and, if then empty, the parent (at
    /// shutdown; cgroups still holding daemons an action started stay).
    pub fn remove_empty(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        remove_tree(&self.parent);
    }

    /// The directory holding the action cgroups.
    pub fn parent(&self) -> &Path {
        &self.parent
    }

    /// A new, empty cgroup for one action.
    pub fn create(&self) -> io::Result<ActionCgroup<'_>> {
        self.make("a", false)
    }

    /// An empty cgroup for one status check: one a check used before when
    /// one is free.
    pub fn create_check(&self) -> io::Result<ActionCgroup<'_>> {
        let free = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match free {
            Some((path, files)) => Ok(ActionCgroup {
                owner: self,
                path,
                files: Some(files),
                reuse: true,
            }),
            None => self.make(CHECK, true),
        }
    }

    fn make(&self, prefix: &str, reuse: bool) -> io::Result<ActionCgroup<'_>> {
        self.sweep();
        // Numbered across the process: two `Cgroups` on one parent (tests)
        // never pick one name.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self
            .parent
            .join(format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&path)?;
        let open = || -> io::Result<Files> {
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(path.join("cgroup.procs"))?;
            // Read again and again (pread at 0 asks anew) when the cgroup
            // is used again.
            let events = if reuse {
                std::fs::File::open(path.join("cgroup.events"))
                    .ok()
                    .map(OwnedFd::from)
            } else {
                None
            };
            Ok(Files {
                procs: OwnedFd::from(procs),
                events,
            })
        };
        let files = open().inspect_err(|_| {
            let _ = std::fs::remove_dir(&path);
        })?;
        Ok(ActionCgroup {
            owner: self,
            path,
            files: Some(files),
            reuse,
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

/// Kills the processes in the check cgroups of a dead daemon's directory
/// (nobody waits for their result, nor would end them at their deadline).
fn kill_checks(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let is_check = name
            .to_str()
            .and_then(|n| n.strip_prefix(CHECK))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_check || !populated(&e.path()) {
            continue;
        }
        tracing::info!(
            "killing what a status check of a dead daemon left in {}",
            e.path().display()
        );
        let killed = kill_all(&e.path());
        // Gone in a moment (then the cgroup can be removed).
        let deadline = Instant::now() + Duration::from_secs(1);
        while populated(&e.path()) && Instant::now() < deadline {
            if !killed {
                sigkill_each(&e.path());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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

/// One action's cgroup; removed on drop when empty (a check's is kept for
/// the next check), else later.
#[derive(Debug)]
pub struct ActionCgroup<'a> {
    owner: &'a Cgroups,
    path: PathBuf,
    /// Its open files (taken when the cgroup goes back to the pool).
    files: Option<Files>,
    reuse: bool,
}

/// A cgroup's files kept open.
#[derive(Debug)]
struct Files {
    /// `cgroup.procs`, written by a child to join.
    procs: OwnedFd,
    /// `cgroup.events` (check cgroups), read to see whether it is empty.
    events: Option<OwnedFd>,
}

impl Files {
    /// Whether a process is in the cgroup, by its open `cgroup.events`.
    fn populated(&self) -> Option<bool> {
        let fd = self.events.as_ref()?;
        let mut buf = [0u8; 128];
        // SAFETY: pread into our buffer from a descriptor we own.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let text = std::str::from_utf8(buf.get(..usize::try_from(n).ok()?)?).ok()?;
        Some(text.lines().any(|l| l == "populated 1"))
    }
}

impl ActionCgroup<'_> {
    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A descriptor of its `cgroup.procs`: a child writes `0` to it between
    /// fork and exec to join.
    pub fn procs_fd(&self) -> RawFd {
        self.files.as_ref().map_or(-1, |f| f.procs.as_raw_fd())
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
        let empty = self.reuse
            && self
                .files
                .as_ref()
                .and_then(Files::populated)
                .is_some_and(|p| !p);
        if empty {
            let mut idle = self.owner.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_MAX
                && let Some(files) = self.files.take()
            {
                idle.push((std::mem::take(&mut self.path), files));
                return;
            }
        }
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
    let killed = kill_all(cgroup);
    while populated(cgroup) && Instant::now() < deadline {
        if !killed {
            sigkill_each(cgroup);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `cgroup.kill` (kernel 5.14 and later): whether it was written.
fn kill_all(cgroup: &Path) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.kill"))
        .and_then(|mut f| f.write_all(b"1"))
        .is_ok()
}

/// SIGKILL to each process in the cgroup now (before `cgroup.kill`; a
/// fork may add one meanwhile, so callers ask again until it is empty).
fn sigkill_each(cgroup: &Path) {
    for pid in pids(cgroup) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
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
