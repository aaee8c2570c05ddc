//! Captured frames to DNS segments: the link layer (Ethernet, Linux cooked, BSD loopback, raw
//! IP), IPv4/IPv6, then UDP or TCP with port 53 on one side. Plain Rust, no OS code: the Linux
//! AF_PACKET capture and a macOS `/dev/bpf` reader both feed it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// The DNS port; frames with it on neither side are not DNS.
pub const DNS_PORT: u16 = 53;

/// How a captured frame begins (pcap `LINKTYPE_*` / BPF `DLT_*` values in comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II, with VLAN tags (`LINKTYPE_ETHERNET` 1, `DLT_EN10MB`).
    Ethernet,
    /// Linux "cooked" header, 16 bytes (`LINKTYPE_LINUX_SLL` 113).
    LinuxSll,
    /// BSD loopback: a 4-byte address family in host order (`LINKTYPE_NULL` 0, macOS `lo0`).
    Null,
    /// The IP header first (`LINKTYPE_RAW` 101; AF_PACKET `SOCK_DGRAM`).
    RawIp,
}

impl LinkType {
    /// The pcap link-layer type number.
    pub fn pcap_linktype(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::LinuxSll => 113,
        }
    }

    /// The link type of a pcap link-layer type number, if supported.
    pub fn from_pcap_linktype(n: u32) -> Option<LinkType> {
        match n {
            0 => Some(LinkType::Null),
            1 => Some(LinkType::Ethernet),
            101 | 12 | 14 => Some(LinkType::RawIp),
            113 => Some(LinkType::LinuxSll),
            _ => None,
        }
    }
}

/// The transport a DNS message came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One message per datagram.
    Udp,
    /// A stream of messages, each after a 2-byte length (RFC 1035 §4.2.2).
    Tcp,
}

impl Transport {
    /// `network.transport`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// TCP details the stream reassembly needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// Sequence number of the first payload byte (of the SYN itself when `syn`).
    pub seq: u32,
    /// SYN set: the stream starts at `seq + 1`.
    pub syn: bool,
    /// FIN or RST set: the stream ends.
    pub fin_or_rst: bool,
}

/// One UDP datagram or TCP segment to or from port 53.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sender address.
    pub src: IpAddr,
    /// Receiver address.
    pub dst: IpAddr,
    /// Sender port.
    pub sport: u16,
    /// Receiver port.
    pub dport: u16,
    /// UDP or TCP.
    pub transport: Transport,
    /// TCP sequence and flags (None for UDP).
    pub tcp: Option<TcpInfo>,
    /// The UDP payload or TCP segment data.
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// Sent by a DNS server (source port 53): a response, or a stream carrying responses.
    pub fn from_server(&self) -> bool {
        self.sport == DNS_PORT
    }
}

/// Why a frame yields no DNS segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Headers cut short or inconsistent.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A fragment of an IP datagram (not reassembled: see docs/dns.md).
    #[error("fragmented IP datagram")]
    Fragmented,
    /// Not IP, or IP but neither UDP nor TCP, or no port 53.
    #[error("not DNS over UDP or TCP")]
    NotDns,
}

/// Splits a captured frame into its DNS segment.
pub fn parse_frame(link: LinkType, frame: &[u8]) -> Result<Segment<'_>, FrameError> {
    let sliced = match link {
        LinkType::Ethernet => SlicedPacket::from_ethernet(frame),
        LinkType::LinuxSll => {
            // Read by hand: etherparse refuses some hardware types (loopback among them),
            // and only the protocol field matters here.
            let (head, rest) = frame
                .split_at_checked(16)
                .ok_or_else(|| FrameError::Malformed("cooked header cut short".into()))?;
            let protocol = u16::from_be_bytes([head[14], head[15]]);
            SlicedPacket::from_ether_type(etherparse::EtherType(protocol), rest)
        }
        LinkType::RawIp => SlicedPacket::from_ip(frame),
        LinkType::Null => {
            // The family is in the capturing host's order; the IP version nibble says the
            // same thing in a way that does not depend on who wrote the capture.
            let ip = frame
                .get(4..)
                .ok_or_else(|| FrameError::Malformed("loopback header cut short".into()))?;
            SlicedPacket::from_ip(ip)
        }
    }
    .map_err(|e| FrameError::Malformed(e.to_string()))?;

    let (src, dst, fragmented) = match &sliced.net {
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                v4.is_payload_fragmented(),
            )
        }
        Some(NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                v6.is_payload_fragmented(),
            )
        }
        _ => return Err(FrameError::NotDns),
    };
    if fragmented {
        return Err(FrameError::Fragmented);
    }
    let seg = match sliced.transport {
        Some(TransportSlice::Udp(udp)) => Segment {
            src,
            dst,
            sport: udp.source_port(),
            dport: udp.destination_port(),
            transport: Transport::Udp,
            tcp: None,
            payload: udp.payload(),
        },
        Some(TransportSlice::Tcp(tcp)) => Segment {
            src,
            dst,
            sport: tcp.source_port(),
            dport: tcp.destination_port(),
            transport: Transport::Tcp,
            tcp: Some(TcpInfo {
                seq: tcp.sequence_number(),
                syn: tcp.syn(),
                fin_or_rst: tcp.fin() || tcp.rst(),
            }),
            payload: tcp.payload(),
        },
        _ => return Err(FrameError::NotDns),
    };
    if seg.sport != DNS_PORT && seg.dport != DNS_PORT {
        return Err(FrameError::NotDns);
    }
    Ok(seg)
}

/// Builds a raw IPv4 or IPv6 frame (`LinkType::RawIp`) carrying one UDP datagram or TCP
/// segment, with valid checksums. For tests, benches and replay files written by hand.
#[allow(clippy::too_many_arguments)]
pub fn build_raw_ip(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    transport: Transport,
    tcp_seq: u32,
    tcp_flags: TcpFlags,
    payload: &[u8],
) -> Result<Vec<u8>, FrameError> {
    use etherparse::PacketBuilder;
    let bad = |e: &dyn std::fmt::Display| FrameError::Malformed(e.to_string());
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        _ => return Err(FrameError::Malformed("mixed address families".into())),
    };
    let mut out = Vec::with_capacity(payload.len() + 60);
    match transport {
        Transport::Udp => ip
            .udp(sport, dport)
            .write(&mut out, payload)
            .map_err(|e| bad(&e))?,
        Transport::Tcp => {
            let mut b = ip.tcp(sport, dport, tcp_seq, 65535);
            if tcp_flags.syn {
                b = b.syn();
            }
            if tcp_flags.fin {
                b = b.fin();
            }
            b = b.ack(0).psh();
            b.write(&mut out, payload).map_err(|e| bad(&e))?
        }
    }
    Ok(out)
}

/// TCP flags for [`build_raw_ip`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
}

/// `0.0.0.0` / `::`, the wildcard a socket bound to any address shows.
// Only Linux attributes sockets to processes (procnet); elsewhere this is unused.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn is_unspecified(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => *a == Ipv4Addr::UNSPECIFIED,
        IpAddr::V6(a) => *a == Ipv6Addr::UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_v4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        build_raw_ip(
            "10.0.0.2".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            sport,
            dport,
            Transport::Udp,
            0,
            TcpFlags::default(),
            payload,
        )
        .unwrap()
    }

    #[test]
    fn raw_ipv4_udp_from_the_server() {
        let f = udp_v4(53, 40000, b"abc");
        let s = parse_frame(LinkType::RawIp, &f).unwrap();
        assert_eq!(s.src, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((s.sport, s.dport), (53, 40000));
        assert_eq!(s.transport, Transport::Udp);
        assert_eq!(s.payload, b"abc");
        assert!(s.from_server());
    }

    #[test]
    fn ethernet_sll_and_null_headers_are_skipped() {
        let ip = udp_v4(53, 1234, b"x");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(parse_frame(LinkType::Ethernet, &eth).unwrap().payload, b"x");

        let mut sll = vec![0, 0, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        assert_eq!(parse_frame(LinkType::LinuxSll, &sll).unwrap().payload, b"x");

        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        assert_eq!(parse_frame(LinkType::Null, &null).unwrap().payload, b"x");
    }

    #[test]
    fn ipv6_tcp_keeps_sequence_and_flags() {
        let f = build_raw_ip(
            "::1".parse().unwrap(),
            "::1".parse().unwrap(),
            53,
            5000,
            Transport::Tcp,
            77,
            TcpFlags {
                syn: false,
                fin: true,
            },
            b"\x00\x01z",
        )
        .unwrap();
        let s = parse_frame(LinkType::RawIp, &f).unwrap();
        assert_eq!(s.transport, Transport::Tcp);
        assert_eq!(
            s.tcp,
            Some(TcpInfo {
                seq: 77,
                syn: false,
                fin_or_rst: true
            })
        );
        assert_eq!(s.payload, b"\x00\x01z");
    }

    #[test]
    fn other_ports_and_garbage_are_refused() {
        assert_eq!(
            parse_frame(LinkType::RawIp, &udp_v4(80, 1234, b"")),
            Err(FrameError::NotDns)
        );
        assert!(matches!(
            parse_frame(LinkType::RawIp, &[0x45, 0, 0]),
            Err(FrameError::Malformed(_))
        ));
        assert!(parse_frame(LinkType::Null, &[2, 0]).is_err());
        for n in 0..64 {
            let f = udp_v4(53, 1, &[7; 20]);
            let _ = parse_frame(LinkType::RawIp, &f[..n.min(f.len())]);
        }
    }
}
