//! Address syntax checks; pure.

use std::net::IpAddr;

/// An address with its prefix length, `192.0.2.100/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

/// Parses `ADDR/PREFIX`; the prefix is required since the address is added to
/// an interface.
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let (addr, prefix) = s.split_once('/').ok_or_else(|| {
        format!("invalid CIDR {s:?}: expected ADDRESS/PREFIX, e.g. 192.0.2.100/24")
    })?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid CIDR {s:?}: {addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| format!("invalid CIDR {s:?}: prefix must be 0 to {max}"))?;
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err(format!("invalid CIDR {s:?}: not a unicast host address"));
    }
    Ok(Cidr { addr, prefix })
}

/// Checks an NFS client specification: `*`, a host name, an address or a
/// network in CIDR form, or a netgroup `@name`.
pub fn check_nfs_client(s: &str) -> Result<(), String> {
    if s == "*" || s.starts_with('@') && s.len() > 1 {
        return Ok(());
    }
    if let Some((addr, prefix)) = s.split_once('/') {
        let a: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid NFS client {s:?}: {addr:?} is not an IP address"))?;
        let max = if a.is_ipv4() { 32 } else { 128 };
        return match prefix.parse::<u8>() {
            Ok(p) if p <= max => Ok(()),
            _ => Err(format!(
                "invalid NFS client {s:?}: prefix must be 0 to {max}"
            )),
        };
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let host_ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '?'));
    if host_ok {
        Ok(())
    } else {
        Err(format!("invalid NFS client {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_needs_a_valid_prefix() {
        assert!(parse_cidr("192.0.2.100/24").is_ok());
        assert!(parse_cidr("2001:db8::5/64").is_ok());
        assert_eq!(
            parse_cidr("192.0.2.100/33").unwrap_err(),
            r#"invalid CIDR "192.0.2.100/33": prefix must be 0 to 32"#
        );
        assert!(parse_cidr("192.0.2.300/24").is_err());
        assert!(parse_cidr("192.0.2.1").is_err());
    }

    #[test]
    fn nfs_clients() {
        for ok in ["*", "192.0.2.0/24", "host.example", "@trusted", "10.0.0.1"] {
            assert!(check_nfs_client(ok).is_ok(), "{ok}");
        }
        for bad in ["192.0.2.0/40", "a b", ""] {
            assert!(check_nfs_client(bad).is_err(), "{bad}");
        }
    }
}
