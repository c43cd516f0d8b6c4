//! The system interfaces the kinds are built on: child processes with
//! deadlines, namespaces and their own cgroups, netlink, ARP, mountinfo, managed include
//! files, and the member's host settings.

pub mod arp;
pub mod cgroup;
pub mod host;
pub mod managed_file;
pub mod mountinfo;
pub mod netlink;
pub mod process;
pub mod spawn;
