//! Floating IP addresses: refuse when the address already answers on the
//! link, add it to the given interface (or the one on its subnet), announce
//! it with gratuitous ARP; remove it on stop. Status reads the member's
//! addresses over netlink.

use std::net::IpAddr;

use clusvc_core::model::IpAddress;
use clusvc_core::model::event::Level;
use clusvc_core::model::net::{Cidr, parse_cidr};

use crate::resources::netlink::{Addr, Link};
use crate::resources::{Command, Ctx, Error, Result, Verb, arp};

fn same_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

struct View {
    addrs: Vec<Addr>,
    links: Vec<Link>,
}

impl View {
    fn read(ctx: &Ctx<'_>) -> Result<Self> {
        let ns = ctx.host.ns.net.as_deref();
        let fail = |e: std::io::Error| Error::Failed(format!("cannot read addresses: {e}"));
        Ok(Self {
            addrs: ctx.host.netlink.addresses(ns).map_err(fail)?,
            links: ctx.host.netlink.links(ns).map_err(fail)?,
        })
    }

    fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    /// Where the address is configured now.
    fn holder(&self, cidr: &Cidr, interface: Option<&str>) -> Option<&Link> {
        self.addrs
            .iter()
            .filter(|a| a.addr == cidr.addr)
            .filter_map(|a| self.link_by_index(a.ifindex))
            .find(|l| interface.is_none_or(|i| l.name == i))
    }

    /// The interface to add the address to.
    fn target(&self, cidr: &Cidr, interface: Option<&str>) -> Result<&Link> {
        if let Some(name) = interface {
            return self
                .link_by_name(name)
                .ok_or_else(|| Error::Failed(format!("interface {name} does not exist")));
        }
        self.addrs
            .iter()
            .filter(|a| a.addr != cidr.addr && same_subnet(a.addr, cidr.addr, a.prefix))
            .filter_map(|a| self.link_by_index(a.ifindex))
            .find(|l| l.name != "lo")
            .ok_or_else(|| {
                Error::Failed(format!(
                    "no interface has an address on the subnet of {}/{}; set interface",
                    cidr.addr, cidr.prefix
                ))
            })
    }
}

/// Start, stop or check an address.
pub async fn act(ctx: &Ctx<'_>, ip: &IpAddress, action: Verb) -> Result {
    let cidr = parse_cidr(&ip.address).map_err(|e| Error::Refused(e.to_string()))?;
    let want_if = ip.interface.as_deref();
    let view = View::read(ctx)?;
    match action {
        Verb::Status => match view.holder(&cidr, want_if) {
            Some(_) => Ok(()),
            None => Err(Error::Failed(format!(
                "{} is not on {}",
                cidr.addr,
                want_if.unwrap_or("any interface")
            ))),
        },
        Verb::Start => {
            if view.holder(&cidr, want_if).is_some() {
                return Ok(());
            }
            let link = view.target(&cidr, want_if)?.clone();
            if let (IpAddr::V4(v4), Some(mac)) = (cidr.addr, link.mac) {
                let sock = ctx
                    .host
                    .arp
                    .socket(ctx.host.ns.net.as_deref(), link.index)
                    .map_err(|e| Error::Failed(format!("ARP socket on {}: {e}", link.name)))?;
                let wait = ctx.host.arp_probe;
                let index = link.index;
                let answer =
                    tokio::task::spawn_blocking(move || arp::probe(&sock, index, mac, v4, wait))
                        .await
                        .map_err(|e| Error::Failed(format!("ARP probe: {e}")))?
                        .map_err(|e| Error::Failed(format!("ARP probe on {}: {e}", link.name)))?;
                if let Some(other) = answer {
                    return Err(Error::Refused(format!(
                        "{} already answers on {} from {}",
                        cidr.addr,
                        link.name,
                        other
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<Vec<_>>()
                            .join(":")
                    )));
                }
            }
            ctx.run_ok(&Command::new([
                "ip",
                "addr",
                "add",
                &ip.address,
                "dev",
                &link.name,
            ]))
            .await?;
            if let (IpAddr::V4(v4), Some(mac)) = (cidr.addr, link.mac) {
                let sent = ctx
                    .host
                    .arp
                    .socket(ctx.host.ns.net.as_deref(), link.index)
                    .and_then(|sock| arp::announce(&sock, link.index, mac, v4));
                if let Err(e) = sent {
                    ctx.emit(
                        Level::Warning,
                        format!("gratuitous ARP for {v4} failed: {e}"),
                    );
                }
            }
            Ok(())
        }
        Verb::Stop => {
            let Some(link) = view.holder(&cidr, want_if) else {
                return Ok(());
            };
            ctx.run_ok(&Command::new([
                "ip",
                "addr",
                "del",
                &ip.address,
                "dev",
                &link.name,
            ]))
            .await
            .map(drop)
        }
    }
}
