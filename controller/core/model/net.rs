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

/// Why an address or NFS client specification is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// A floating address without its prefix length.
    #[error("invalid CIDR {0:?}: expected ADDRESS/PREFIX, e.g. 192.0.2.100/24")]
    NoPrefix(String),
    /// The address part does not parse.
    #[error("invalid {what} {input:?}: {addr:?} is not an IP address")]
    NotAnAddress {
        /// `CIDR` or `NFS client`.
        what: &'static str,
        /// The whole input.
        input: String,
        /// The address part.
        addr: String,
    },
    /// The prefix length is out of range for the address family.
    #[error("invalid {what} {input:?}: prefix must be 0 to {max}")]
    Prefix {
        /// `CIDR` or `NFS client`.
        what: &'static str,
        /// The whole input.
        input: String,
        /// 32 or 128.
        max: u8,
    },
    /// An address no member may own (unspecified, multicast, loopback).
    #[error("invalid CIDR {0:?}: not a unicast host address")]
    NotUnicast(String),
    /// Not a host, network, netgroup or `*`.
    #[error("invalid NFS client {0:?}")]
    NfsClient(String),
}

/// Parses `ADDR/PREFIX`; the prefix is required since the address is added to
/// an interface.
pub fn parse_cidr(s: &str) -> Result<Cidr, AddressError> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| AddressError::NoPrefix(s.to_string()))?;
    let not_an_address = || AddressError::NotAnAddress {
        what: "CIDR",
        input: s.to_string(),
        addr: addr.to_string(),
    };
    let addr: IpAddr = addr.parse().map_err(|_| not_an_address())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 =
        prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| AddressError::Prefix {
                what: "CIDR",
                input: s.to_string(),
                max,
            })?;
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err(AddressError::NotUnicast(s.to_string()));
    }
    Ok(Cidr { addr, prefix })
}

/// Checks an NFS client specification: `*`, a host name, an address or a
/// network in CIDR form, or a netgroup `@name`.
pub fn check_nfs_client(s: &str) -> Result<(), AddressError> {
    if s == "*" || s.starts_with('@') && s.len() > 1 {
        return Ok(());
    }
    if let Some((addr, prefix)) = s.split_once('/') {
        let a: IpAddr = addr.parse().map_err(|_| AddressError::NotAnAddress {
            what: "NFS client",
            input: s.to_string(),
            addr: addr.to_string(),
        })?;
        let max = if a.is_ipv4() { 32 } else { 128 };
        return match prefix.parse::<u8>() {
            Ok(p) if p <= max => Ok(()),
            _ => Err(AddressError::Prefix {
                what: "NFS client",
                input: s.to_string(),
                max,
            }),
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
        Err(AddressError::NfsClient(s.to_string()))
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
            parse_cidr("192.0.2.100/33").unwrap_err().to_string(),
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
