//! The local end of a socket, which audit does not record: found through
//! `/proc/PID/fd/FD` → `socket:[inode]` → the inode's row in `/proc/PID/net/{tcp,udp}{,6}`.
//! Best effort: the process or the socket may already be gone when the event is read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The local address of a socket and its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEnd {
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// Local address.
    pub ip: IpAddr,
    /// Local port.
    pub port: u16,
}

/// Looks up the local end of socket `fd` of process `pid` under `proc_root`.
pub fn local_end(proc_root: &Path, pid: u32, fd: u64) -> Option<LocalEnd> {
    let link = std::fs::read_link(proc_root.join(format!("{pid}/fd/{fd}"))).ok()?;
    let inode = link
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .to_owned();
    for (table, transport) in [
        ("tcp", "tcp"),
        ("tcp6", "tcp"),
        ("udp", "udp"),
        ("udp6", "udp"),
    ] {
        let Ok(text) = std::fs::read_to_string(proc_root.join(format!("{pid}/net/{table}"))) else {
            continue;
        };
        if let Some((ip, port)) = find_inode(&text, &inode) {
            return Some(LocalEnd {
                transport,
                ip,
                port,
            });
        }
    }
    None
}

/// The local address of the row whose inode column is `inode`.
fn find_inode(table: &str, inode: &str) -> Option<(IpAddr, u16)> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(9) != Some(&inode) {
            return None;
        }
        parse_addr(cols.get(1)?)
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:port` (IPv6): each 32-bit word is printed as
/// the kernel holds it in memory, so its bytes are in native order.
fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_row_of_the_inode() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                find_inode(table, "4242"),
                Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 8080))
            );
        }
        assert_eq!(find_inode(table, "4243"), None);
    }

    #[test]
    fn ipv6_loopback_parses() {
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_addr("00000000000000000000000001000000:0050"),
                Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 80))
            );
        }
    }

    #[test]
    fn live_socket_of_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let fd = u64::try_from(l.as_raw_fd()).unwrap();
            if cfg!(target_os = "linux") {
                let end = local_end(Path::new("/proc"), std::process::id(), fd).unwrap();
                assert_eq!(end.transport, "tcp");
                assert_eq!(end.ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
                assert_eq!(end.port, port);
            }
        }
        let _ = port;
    }
}
