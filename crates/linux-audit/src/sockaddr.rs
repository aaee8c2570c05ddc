//! Decoding of the `saddr` field: the raw `struct sockaddr` a syscall received, hex-encoded.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const AF_NETLINK: u16 = 16;

/// A decoded socket address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// `AF_INET`.
    Inet {
        /// Address.
        addr: Ipv4Addr,
        /// Port (host order).
        port: u16,
    },
    /// `AF_INET6`.
    Inet6 {
        /// Address.
        addr: Ipv6Addr,
        /// Port (host order).
        port: u16,
    },
    /// `AF_UNIX`; an abstract socket's path starts with `@` as `ss` prints it.
    Unix {
        /// Path; empty for an unnamed socket.
        path: String,
    },
    /// `AF_NETLINK`.
    Netlink {
        /// Port id.
        pid: u32,
        /// Multicast groups mask.
        groups: u32,
    },
    /// Any other family (or a truncated address), with its raw bytes.
    Other {
        /// Address family number (0 when the bytes are too short to hold one).
        family: u16,
        /// The whole address as received.
        bytes: Vec<u8>,
    },
}

impl SockAddr {
    /// Decodes a `struct sockaddr`. The family is in the kernel's byte order (audit logs
    /// come from little-endian machines in practice; records are decoded on the machine
    /// that produced them), ports and addresses in network order.
    pub fn decode(b: &[u8]) -> SockAddr {
        let other = |family| SockAddr::Other {
            family,
            bytes: b.to_vec(),
        };
        if b.len() < 2 {
            return other(0);
        }
        let family = u16::from_le_bytes([b[0], b[1]]);
        match family {
            AF_INET if b.len() >= 8 => SockAddr::Inet {
                port: u16::from_be_bytes([b[2], b[3]]),
                addr: Ipv4Addr::new(b[4], b[5], b[6], b[7]),
            },
            AF_INET6 if b.len() >= 24 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[8..24]);
                SockAddr::Inet6 {
                    port: u16::from_be_bytes([b[2], b[3]]),
                    addr: Ipv6Addr::from(a),
                }
            }
            AF_UNIX => {
                let p = &b[2..];
                let path = match p.first() {
                    // Abstract namespace: a leading NUL, the name is the rest (NULs trimmed).
                    Some(0) if p.len() > 1 => {
                        let name = &p[1..];
                        let end = name.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
                        format!("@{}", String::from_utf8_lossy(&name[..end]))
                    }
                    _ => {
                        let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
                        String::from_utf8_lossy(&p[..end]).into_owned()
                    }
                };
                SockAddr::Unix { path }
            }
            AF_NETLINK if b.len() >= 12 => SockAddr::Netlink {
                pid: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                groups: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            },
            f => other(f),
        }
    }

    /// The address family number.
    pub fn family(&self) -> u16 {
        match self {
            SockAddr::Inet { .. } => AF_INET,
            SockAddr::Inet6 { .. } => AF_INET6,
            SockAddr::Unix { .. } => AF_UNIX,
            SockAddr::Netlink { .. } => AF_NETLINK,
            SockAddr::Other { family, .. } => *family,
        }
    }
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet { addr, port } => write!(f, "{addr}:{port}"),
            SockAddr::Inet6 { addr, port } => write!(f, "[{addr}]:{port}"),
            SockAddr::Unix { path } => write!(f, "unix:{path}"),
            SockAddr::Netlink { pid, groups } => write!(f, "netlink:{pid}:{groups:#x}"),
            SockAddr::Other { family, bytes } => {
                write!(f, "family {family}:")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02X}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::decode_hex;

    fn d(hex: &str) -> SockAddr {
        SockAddr::decode(&decode_hex(hex).unwrap())
    }

    #[test]
    fn families_from_reference_logs() {
        assert_eq!(
            d("02000050A9FEA9FE0000000000000000").to_string(),
            "169.254.169.254:80"
        );
        assert_eq!(
            d("0A000016000000000000000000000000000000000000000000000000"),
            SockAddr::Inet6 {
                addr: Ipv6Addr::UNSPECIFIED,
                port: 22
            }
        );
        assert_eq!(
            d("01002F7661722F72756E2F6E7363642F736F636B65740000603B7B47FC7F"),
            SockAddr::Unix {
                path: "/var/run/nscd/socket".into()
            }
        );
        assert_eq!(
            d("01007075626C69632F7069636B7570000000"),
            SockAddr::Unix {
                path: "public/pickup".into()
            }
        );
        assert_eq!(d("0100006162630000").to_string(), "unix:@abc");
        assert_eq!(
            d("100000000000000000000000"),
            SockAddr::Netlink { pid: 0, groups: 0 }
        );
        assert_eq!(d("00000000000000000000000000000000").family(), 0);
        assert_eq!(d("02").family(), 0);
        assert_eq!(d("0200").family(), 2, "truncated inet stays Other");
    }
}
