//! ARP on a member's interface, natively: a duplicate-address probe (is the
//! address already answering elsewhere?) and a gratuitous ARP after a move,
//! so peers update their caches at once.
//!
//! Packet sockets are opened once per interface and kept: closing a packet
//! socket waits for an RCU grace period (tens of milliseconds), which would
//! dominate an IP start.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::netlink::in_netns;

const ETH_P_ARP: u16 = 0x0806;

fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            ETH_P_ARP.to_be() as i32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = sockaddr(ifindex, [0; 6]);
    // SAFETY: addr is a valid sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn sockaddr(ifindex: u32, dest: [u8; 6]) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; zero is a valid value.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = ETH_P_ARP.to_be();
    a.sll_ifindex = ifindex as i32;
    a.sll_halen = 6;
    a.sll_addr[..6].copy_from_slice(&dest);
    a
}

/// An ARP packet body (Ethernet/IPv4).
fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes());
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&op.to_be_bytes());
    p[8..14].copy_from_slice(&sha);
    p[14..18].copy_from_slice(&spa.octets());
    p[18..24].copy_from_slice(&tha);
    p[24..28].copy_from_slice(&tpa.octets());
    p
}

fn send(fd: &OwnedFd, ifindex: u32, packet: &[u8]) -> io::Result<()> {
    let dest = sockaddr(ifindex, [0xff; 6]);
    // SAFETY: packet and dest are valid for the sizes passed.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&dest as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// (network namespace, interface index).
type Key = (Option<PathBuf>, u32);

/// ARP sockets by (network namespace, interface index), kept open.
#[derive(Debug, Default)]
pub struct SocketCache(Mutex<HashMap<Key, Arc<OwnedFd>>>);

impl SocketCache {
    /// The socket for an interface of a namespace, opened on first use.
    pub fn socket(&self, ns: Option<&Path>, ifindex: u32) -> io::Result<Arc<OwnedFd>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = (ns.map(Path::to_path_buf), ifindex);
        if let Some(fd) = map.get(&key) {
            return Ok(fd.clone());
        }
        let fd = Arc::new(in_netns(ns, || packet_socket(ifindex))?);
        map.insert(key, fd.clone());
        Ok(fd)
    }
}

fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 128];
    // SAFETY: buf is a valid writable buffer; the socket is non-blocking.
    while unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) } > 0 {}
}

/// Probes whether `addr` answers on the link (RFC 5227 probe: sender
/// address 0.0.0.0). Returns the MAC that answered, if any, within `wait`.
pub fn probe(
    fd: &OwnedFd,
    ifindex: u32,
    mac: [u8; 6],
    addr: Ipv4Addr,
    wait: Duration,
) -> io::Result<Option<[u8; 6]>> {
    drain(fd);
    send(
        fd,
        ifindex,
        &arp(1, mac, Ipv4Addr::UNSPECIFIED, [0; 6], addr),
    )?;
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 128];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        if r == 0 {
            continue;
        }
        // SAFETY: buf is a valid writable buffer.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 28 {
            continue;
        }
        let p = &buf[..n as usize];
        let sha: [u8; 6] = p[8..14].try_into().unwrap();
        let spa = Ipv4Addr::new(p[14], p[15], p[16], p[17]);
        if spa == addr && sha != mac {
            return Ok(Some(sha));
        }
    }
}

/// Announces `addr` at `mac` (gratuitous ARP request and reply).
pub fn announce(fd: &OwnedFd, ifindex: u32, mac: [u8; 6], addr: Ipv4Addr) -> io::Result<()> {
    send(fd, ifindex, &arp(1, mac, addr, [0; 6], addr))?;
    send(fd, ifindex, &arp(2, mac, addr, [0xff; 6], addr))
}
