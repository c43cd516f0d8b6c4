//! Reading a member's interfaces and addresses over rtnetlink, without
//! spawning anything: a status check of an IP address is one dump on a
//! socket opened once in the member's network namespace.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    /// Interface index.
    pub ifindex: u32,
    /// Prefix length.
    pub prefix: u8,
    /// The address.
    pub addr: IpAddr,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The kernel's interface index.
    pub index: u32,
    /// The interface name (`eth0`).
    pub name: String,
    /// Hardware address, for Ethernet-like links.
    pub mac: Option<[u8; 6]>,
}

/// One netlink socket per member, opened on first use.
#[derive(Debug, Default)]
pub struct NetlinkCache {
    sock: Mutex<Option<(Option<PathBuf>, OwnedFd, u32)>>,
}

/// Runs `f` on a thread that has joined the network namespace `ns` (sockets
/// created there stay in that namespace).
pub fn in_netns<T: Send>(
    ns: Option<&Path>,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let Some(ns) = ns else {
        return f();
    };
    let file = std::fs::File::open(ns)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)?;
            f()
        })
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))?
    })
}

fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_GETLINK: u16 = 18;
const RTM_NEWLINK: u16 = 16;
const RTM_GETADDR: u16 = 22;
const RTM_NEWADDR: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl NetlinkCache {
    /// Sends a dump request with `body` and collects the payloads of the
    /// replies of type `want`.
    fn dump(
        &self,
        ns: Option<&Path>,
        kind: u16,
        body: &[u8],
        want: u16,
    ) -> io::Result<Vec<Vec<u8>>> {
        let mut guard = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|(p, _, _)| p.as_deref() != ns) {
            let fd = in_netns(ns, open_socket)?;
            *guard = Some((ns.map(Path::to_path_buf), fd, 1));
        }
        let (_, fd, seq) = guard.as_mut().expect("socket just opened");
        *seq = seq.wrapping_add(1);
        let seq = *seq;
        let len = 16 + body.len();
        let mut req = Vec::with_capacity(len);
        req.extend_from_slice(&(len as u32).to_ne_bytes());
        req.extend_from_slice(&kind.to_ne_bytes());
        req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(body);
        // SAFETY: req is a valid buffer of req.len() bytes.
        let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if sent < 0 {
            let err = io::Error::last_os_error();
            *guard = None;
            return Err(err);
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let err = io::Error::last_os_error();
                *guard = None;
                return Err(err);
            }
            let mut msg = &buf[..n as usize];
            while msg.len() >= 16 {
                let mlen = u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize;
                let mtype = u16::from_ne_bytes(msg[4..6].try_into().unwrap());
                let mseq = u32::from_ne_bytes(msg[8..12].try_into().unwrap());
                if mlen < 16 || mlen > msg.len() {
                    break;
                }
                if mseq == seq {
                    match mtype {
                        NLMSG_DONE => return Ok(out),
                        NLMSG_ERROR => {
                            let code = i32::from_ne_bytes(msg[16..20].try_into().unwrap_or([0; 4]));
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        t if t == want => out.push(msg[16..mlen].to_vec()),
                        _ => {}
                    }
                }
                msg = &msg[align4(mlen).min(msg.len())..];
            }
        }
    }

    /// Every address in the namespace.
    pub fn addresses(&self, ns: Option<&Path>) -> io::Result<Vec<Addr>> {
        let body = [0u8; 8]; // ifaddrmsg, AF_UNSPEC
        let msgs = self.dump(ns, RTM_GETADDR, &body, RTM_NEWADDR)?;
        let mut out = Vec::new();
        for m in msgs {
            if m.len() < 8 {
                continue;
            }
            let family = m[0] as i32;
            let prefix = m[1];
            let ifindex = u32::from_ne_bytes(m[4..8].try_into().unwrap());
            let mut local = None;
            let mut address = None;
            for (t, data) in attrs(&m[8..]) {
                let ip = match (family, data.len()) {
                    (libc::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(
                        data[0], data[1], data[2], data[3],
                    ))),
                    (libc::AF_INET6, 16) => {
                        let b: [u8; 16] = data.try_into().unwrap();
                        Some(IpAddr::V6(Ipv6Addr::from(b)))
                    }
                    _ => None,
                };
                match t {
                    1 => address = ip,
                    2 => local = ip,
                    _ => {}
                }
            }
            if let Some(addr) = local.or(address) {
                out.push(Addr {
                    ifindex,
                    prefix,
                    addr,
                });
            }
        }
        Ok(out)
    }

    /// Every interface in the namespace.
    pub fn links(&self, ns: Option<&Path>) -> io::Result<Vec<Link>> {
        let body = [0u8; 16]; // ifinfomsg, AF_UNSPEC
        let msgs = self.dump(ns, RTM_GETLINK, &body, RTM_NEWLINK)?;
        let mut out = Vec::new();
        for m in msgs {
            if m.len() < 16 {
                continue;
            }
            let index = i32::from_ne_bytes(m[4..8].try_into().unwrap()) as u32;
            let mut name = String::new();
            let mut mac = None;
            for (t, data) in attrs(&m[16..]) {
                match t {
                    1 if data.len() == 6 => mac = Some(data.try_into().unwrap()),
                    3 => {
                        name = String::from_utf8_lossy(data)
                            .trim_end_matches('\0')
                            .to_string()
                    }
                    _ => {}
                }
            }
            out.push(Link { index, name, mac });
        }
        Ok(out)
    }
}

/// Iterates rtattrs: `(type, data)`.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes(b[0..2].try_into().unwrap()) as usize;
        let t = u16::from_ne_bytes(b[2..4].try_into().unwrap()) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((t, data))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_loopback() {
        let cache = NetlinkCache::default();
        let links = cache.links(None).unwrap();
        let lo = links.iter().find(|l| l.name == "lo").expect("lo exists");
        let addrs = cache.addresses(None).unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.ifindex == lo.index && a.addr == IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{addrs:?}"
        );
    }
}
