//! The member a handler acts on: its namespaces and the host configuration
//! its handlers use (smb.conf, the nfs-ganesha config, the export table...),
//! each with the standard default, so tests can point them at their own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::netlink::NetlinkCache;
use super::process::Namespaces;

/// Settings and context of one member's agent.
#[derive(Debug)]
pub struct Host {
    /// The member name (`CLUSVC_MEMBER`).
    pub member: String,
    /// Namespaces commands run in; none = this process's.
    pub ns: Namespaces,
    /// The mountinfo that shows this member's mounts.
    pub mountinfo: PathBuf,
    /// Agent state: the service database seed scripts read through `$DB`.
    pub state_dir: PathBuf,
    /// smb.conf that `smbcontrol` uses.
    pub smb_conf: PathBuf,
    /// The file clusvc writes Samba shares to; smb.conf must `include` it.
    pub samba_shares: PathBuf,
    /// The kernel NFS server's export table (read for status).
    pub exports_etab: PathBuf,
    /// The file clusvc writes nfs-ganesha EXPORT blocks to; the ganesha
    /// config must `%include` it.
    pub ganesha_exports: PathBuf,
    /// nfs-ganesha's pid file (it is sent SIGHUP to reload).
    pub ganesha_pid: PathBuf,
    /// `OCF_ROOT`.
    pub ocf_root: PathBuf,
    /// `HA_RSCTMP` for OCF agents of this member.
    pub ha_rsctmp: PathBuf,
    /// Time between SIGTERM and SIGKILL of a timed-out action.
    pub kill_grace: Duration,
    /// How long an IP start waits for an ARP reply proving the address is
    /// already in use elsewhere.
    pub arp_probe: Duration,
    /// Refuse scripts writable by anyone but root (default: when running as root).
    pub require_root_owned_scripts: bool,
    pub(crate) netlink: NetlinkCache,
    pub(crate) arp: super::arp::SocketCache,
    pub(crate) services: Mutex<BTreeMap<u64, String>>,
    /// Whether this process wrote the `$DB` file whole (after which new
    /// services are appended to it).
    pub(crate) db_written: std::sync::atomic::AtomicBool,
    pub(crate) file_lock: tokio::sync::Mutex<()>,
    /// Scripts that passed their checks lately.
    pub(crate) scripts: crate::resources::application::ScriptCache,
}

impl Host {
    /// A member with the standard host paths.
    pub fn new(member: impl Into<String>) -> Self {
        Self {
            member: member.into(),
            ns: Namespaces::default(),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            state_dir: PathBuf::from("/var/lib/clusvc"),
            smb_conf: PathBuf::from("/etc/samba/smb.conf"),
            samba_shares: PathBuf::from("/etc/samba/clusvc-shares.conf"),
            exports_etab: PathBuf::from("/var/lib/nfs/etab"),
            ganesha_exports: PathBuf::from("/etc/ganesha/clusvc-exports.conf"),
            ganesha_pid: PathBuf::from("/var/run/ganesha/ganesha.pid"),
            ocf_root: PathBuf::from("/usr/lib/ocf"),
            ha_rsctmp: PathBuf::from("/run/resource-agents"),
            kill_grace: Duration::from_secs(5),
            arp_probe: Duration::from_millis(50),
            require_root_owned_scripts: nix::unistd::geteuid().is_root(),
            netlink: NetlinkCache::default(),
            arp: Default::default(),
            services: Mutex::new(BTreeMap::new()),
            db_written: std::sync::atomic::AtomicBool::new(false),
            file_lock: tokio::sync::Mutex::new(()),
            scripts: Default::default(),
        }
    }

    /// Runs this member's commands in a mount namespace, reading its mounts
    /// from that process's mountinfo: `/proc/PID`.
    pub fn with_mount_namespace_of(mut self, pid: u32) -> Self {
        self.ns.mnt = Some(PathBuf::from(format!("/proc/{pid}/ns/mnt")));
        self.mountinfo = PathBuf::from(format!("/proc/{pid}/mountinfo"));
        self
    }

    /// Runs this member's commands in a network namespace file.
    pub fn with_network_namespace(mut self, path: impl Into<PathBuf>) -> Self {
        self.ns.net = Some(path.into());
        self
    }

    /// Tells scripts (through `$DB`) the names of the services they may ask about.
    pub fn know_services(&self, services: impl IntoIterator<Item = (u64, String)>) {
        let mut known = self.services.lock().unwrap_or_else(|p| p.into_inner());
        known.extend(services);
    }
}
