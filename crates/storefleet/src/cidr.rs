//! Address ranges as NetworkPolicy names them (`ipBlock.cidr`), parsed at the edge: the SMTP relay's
//! (`--smtp-relay-cidr`, `mail.rs`) and the S3 endpoint's (`--backup-s3-cidr`,
//! `backups/settings.rs`), which the store chart's egress policies open.
use std::fmt;
use std::net::IpAddr;

/// An address range. Kept as the network address, so `192.0.2.7/24` and `192.0.2.0/24` are the same
/// range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad =
            || format!("{raw:?} is not a CIDR (`192.0.2.10/32`, `10.20.0.0/16`, `2001:db8::/64`)");
        let (addr, prefix) = raw.trim().split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(bad());
        }
        Ok(Self {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// Exactly one address.
    pub fn host(ip: IpAddr) -> Self {
        Self {
            network: ip,
            prefix: if ip.is_ipv4() { 32 } else { 128 },
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_to_their_network() {
        assert_eq!(
            Cidr::parse("192.0.2.7/24").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            Cidr::parse(" 10.0.5.20/32 ").unwrap().to_string(),
            "10.0.5.20/32"
        );
        assert!(Cidr::parse("192.0.2.7").is_err());
        assert!(Cidr::parse("192.0.2.7/33").is_err());
        assert!(Cidr::parse("s3.example.net/32").is_err());
        assert!(Cidr::parse("").is_err());
        assert_eq!(
            Cidr::parse("2001:db8::1/64").unwrap().to_string(),
            "2001:db8::/64"
        );
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        let cidr = Cidr::parse("10.20.0.0/16").unwrap();
        assert!(cidr.contains("10.20.3.4".parse().unwrap()));
        assert!(!cidr.contains("10.21.0.1".parse().unwrap()));
        assert!(!cidr.contains("::ffff:10.20.3.4".parse().unwrap()));
        assert_eq!(
            Cidr::host("2001:db8::7".parse().unwrap()).to_string(),
            "2001:db8::7/128"
        );
    }
}
