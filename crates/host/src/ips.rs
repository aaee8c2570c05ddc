//! Host IP addresses (`host.ip[]`).

use std::net::IpAddr;

/// The host's non-loopback, non-unspecified addresses, IPv4 first, without duplicates.
///
/// Unix: `getifaddrs(3)` over all interfaces that are up. Elsewhere: the address the OS would
/// use for an outbound route (a UDP socket "connected" to a documentation address; no packet
/// is sent), which is the primary address on most hosts.
pub fn host_ips() -> Vec<IpAddr> {
    let mut ips = raw_ips();
    ips.retain(|ip| !ip.is_loopback() && !ip.is_unspecified());
    ips.sort_by_key(|ip| ip.is_ipv6());
    let mut seen = std::collections::HashSet::new();
    ips.retain(|ip| seen.insert(*ip));
    ips
}

#[cfg(unix)]
fn raw_ips() -> Vec<IpAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success getifaddrs stores a list we own and
    // free below with freeifaddrs exactly once.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list returned by getifaddrs, which stays
        // valid until freeifaddrs; we only read it.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let up = ifa.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
        if ifa.ifa_addr.is_null() || !up {
            continue;
        }
        // SAFETY: `ifa_addr` is non-null and points to a sockaddr owned by the list.
        let family = libc::c_int::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_INET {
            // SAFETY: for AF_INET the kernel/libc store a full sockaddr_in at this address;
            // read_unaligned avoids assuming the alignment of the libc-provided storage.
            let sin = unsafe { std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in>()) };
            out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))));
        } else if family == libc::AF_INET6 {
            // SAFETY: for AF_INET6 the storage holds a full sockaddr_in6 (same reasoning).
            let sin6 =
                unsafe { std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in6>()) };
            out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once; no reference into
    // the list outlives this call (addresses were copied out).
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(not(unix))]
fn raw_ips() -> Vec<IpAddr> {
    use std::net::UdpSocket;
    let mut out = Vec::new();
    // connect() on UDP only selects a route and a local address; nothing goes on the wire.
    for (bind, target) in [("0.0.0.0:0", "192.0.2.1:9"), ("[::]:0", "[2001:db8::1]:9")] {
        if let Ok(sock) = UdpSocket::bind(bind) {
            if sock.connect(target).is_ok() {
                if let Ok(local) = sock.local_addr() {
                    out.push(local.ip());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn host_ips_match_the_kernel_view_and_exclude_loopback() {
        let ips = host_ips();
        assert!(ips.iter().all(|ip| !ip.is_loopback()));
        // Cross-check the IPv4 addresses against /proc/net/fib_trie "/32 host LOCAL" entries.
        let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap();
        let lines: Vec<&str> = trie.lines().collect();
        let mut kernel_v4 = std::collections::HashSet::new();
        for w in lines.windows(2) {
            if w[1].contains("/32 host LOCAL") {
                if let Some(a) = w[0].split_whitespace().last() {
                    if let Ok(ip) = a.parse::<std::net::Ipv4Addr>() {
                        if !ip.is_loopback() {
                            kernel_v4.insert(IpAddr::V4(ip));
                        }
                    }
                }
            }
        }
        let ours: std::collections::HashSet<IpAddr> =
            ips.iter().copied().filter(IpAddr::is_ipv4).collect();
        // Addresses of interfaces that are down are LOCAL in the trie but skipped by us.
        assert!(
            ours.is_subset(&kernel_v4),
            "ours {ours:?} kernel {kernel_v4:?}"
        );
        assert_eq!(
            ips.len(),
            ips.iter().collect::<std::collections::HashSet<_>>().len()
        );
    }
}
