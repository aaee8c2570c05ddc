//! TCP connections and DNS answers from packet capture: Endpoint Security has no network
//! events, so on macOS they come from `/dev/bpf`. Plain Rust, compiled and tested on every
//! OS; the macOS reader (`capture`) only opens the devices and feeds [`NetDecoder`].
//!
//! - [`records`] splits a BPF read buffer into its packets (`struct bpf_hdr`).
//! - [`filter`] is the kernel filter program: DNS (UDP or TCP port 53 on either side) and
//!   TCP segments with SYN and ACK set, over IPv4 and IPv6, for Ethernet and BSD loopback
//!   (`lo0`, `utun*`) interfaces. Everything else stays in the kernel.
//! - [`syn_ack_event`]: one SYN-ACK is one established TCP connection, with both ends: the
//!   sender is the server, the receiver the client. Connections refused or never answered
//!   are not reported.
//! - DNS answers go through `agent-dns`'s [`Decoder`] (the Linux capture's parsing).

use std::net::IpAddr;

use agent_dns::{Decoder, DecoderOptions, FrameMeta, LinkType, NoAttribution};
use agent_event::{Endpoint, Event, Timestamp};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// BPF aligns records on this (`BPF_ALIGNMENT`, `sizeof(int32_t)` on macOS).
const BPF_ALIGNMENT: usize = 4;
/// `struct bpf_hdr` without its trailing padding: `timeval32` (2 × i32), caplen, datalen
/// (u32), hdrlen (u16).
const BPF_HDR_LEN: usize = 18;

/// One captured packet of a BPF read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Length of the packet on the wire (`data` may be shorter).
    pub wire_len: u32,
    /// The captured bytes, from the link-layer header.
    pub data: &'a [u8],
}

/// The packets of a BPF read buffer, in order. Stops at the first inconsistent header
/// (a short or corrupt buffer loses only its tail).
pub fn records(buf: &[u8]) -> Records<'_> {
    Records { buf, at: 0 }
}

/// Iterator of [`records`].
#[derive(Debug)]
pub struct Records<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let rest = self.buf.get(self.at..)?;
        let head = rest.get(..BPF_HDR_LEN)?;
        // Host order: BPF writes its headers in the capturing machine's order, and this
        // code runs on that machine (little-endian on every Mac).
        let u32_at =
            |i: usize| u32::from_ne_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let secs = i32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
        let usecs = u32_at(4);
        let caplen = u32_at(8) as usize;
        let wire_len = u32_at(12);
        let hdrlen = usize::from(u16::from_ne_bytes([head[16], head[17]]));
        if hdrlen < BPF_HDR_LEN {
            self.at = self.buf.len();
            return None;
        }
        let data = rest.get(hdrlen..hdrlen.checked_add(caplen)?)?;
        self.at += word_align(hdrlen + caplen);
        Some(Record {
            ts: Timestamp::from_unix(i64::from(secs), usecs.min(999_999) * 1000),
            wire_len,
            data,
        })
    }
}

fn word_align(n: usize) -> usize {
    (n + BPF_ALIGNMENT - 1) & !(BPF_ALIGNMENT - 1)
}

/// One classic BPF instruction, laid out as `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset when true.
    pub jt: u8,
    /// Jump offset when false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

/// Opcodes the filter uses (`<net/bpf.h>`).
pub mod op {
    /// `BPF_LD|BPF_W|BPF_ABS`.
    pub const LD_W_ABS: u16 = 0x20;
    /// `BPF_LD|BPF_H|BPF_ABS`.
    pub const LD_H_ABS: u16 = 0x28;
    /// `BPF_LD|BPF_B|BPF_ABS`.
    pub const LD_B_ABS: u16 = 0x30;
    /// `BPF_LD|BPF_H|BPF_IND`.
    pub const LD_H_IND: u16 = 0x48;
    /// `BPF_LD|BPF_B|BPF_IND`.
    pub const LD_B_IND: u16 = 0x50;
    /// `BPF_LDX|BPF_B|BPF_MSH`: X = 4 * (byte k & 0xf), the IPv4 header length.
    pub const LDX_B_MSH: u16 = 0xb1;
    /// `BPF_ALU|BPF_AND|BPF_K`.
    pub const AND_K: u16 = 0x54;
    /// `BPF_JMP|BPF_JEQ|BPF_K`.
    pub const JEQ_K: u16 = 0x15;
    /// `BPF_JMP|BPF_JSET|BPF_K`.
    pub const JSET_K: u16 = 0x45;
    /// `BPF_RET|BPF_K`.
    pub const RET_K: u16 = 0x06;
}

/// Bytes of a packet the filter lets through (all of it, up to the buffer).
pub const SNAPLEN: u32 = 65_535;

/// A program built with forward jumps to named places, resolved at the end.
struct Program {
    insns: Vec<Insn>,
    /// (instruction, true target, false target) for jumps whose targets are labels.
    jumps: Vec<(usize, Label, Label)>,
    labels: Vec<Option<usize>>,
}

#[derive(Debug, Clone, Copy)]
struct Label(usize);

impl Program {
    fn new() -> Self {
        Program {
            insns: Vec::new(),
            jumps: Vec::new(),
            labels: Vec::new(),
        }
    }
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    fn here(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push(Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }
    /// A conditional jump; a `None` target falls through.
    fn jump(&mut self, code: u16, k: u32, t: Label, f: Label) {
        self.jumps.push((self.insns.len(), t, f));
        self.insns.push(Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }
    fn finish(mut self) -> Vec<Insn> {
        for (at, t, f) in std::mem::take(&mut self.jumps) {
            let off = |l: Label| {
                let target = self.labels[l.0].unwrap_or(at + 1);
                // Only forward jumps: the offset counts from the next instruction.
                u8::try_from(target - at - 1).unwrap_or(u8::MAX)
            };
            self.insns[at].jt = off(t);
            self.insns[at].jf = off(f);
        }
        self.insns
    }
}

/// The kernel filter for an interface of link type `link`: DNS over UDP/TCP (port 53 on
/// either side) and TCP SYN-ACKs, IPv4 (unfragmented or first fragment) and IPv6 (TCP or
/// UDP as the first next header). `None` for link types the collector does not read.
pub fn filter(link: LinkType) -> Option<Vec<Insn>> {
    let l: u32 = match link {
        LinkType::Ethernet => 14,
        LinkType::Null => 4,
        LinkType::RawIp => 0,
        LinkType::LinuxSll => return None,
    };
    let mut p = Program::new();
    let (v4, v6, accept, reject) = (p.label(), p.label(), p.label(), p.label());
    let (udp4, tcp4, v4_ports, udp6, tcp6) =
        (p.label(), p.label(), p.label(), p.label(), p.label());
    let next = p.label();
    match link {
        LinkType::Ethernet => {
            p.stmt(op::LD_H_ABS, 12);
            p.jump(op::JEQ_K, 0x0800, v4, next);
            p.here(next);
            p.jump(op::JEQ_K, 0x86dd, v6, reject);
        }
        LinkType::Null => {
            // The address family, in the host's (little-endian) order, read big-endian:
            // AF_INET 2 → 0x02000000, AF_INET6 30 → 0x1e000000.
            p.stmt(op::LD_W_ABS, 0);
            p.jump(op::JEQ_K, 0x0200_0000, v4, next);
            p.here(next);
            p.jump(op::JEQ_K, 0x1e00_0000, v6, reject);
        }
        _ => {
            p.stmt(op::LD_B_ABS, 0);
            p.stmt(op::AND_K, 0xf0);
            p.jump(op::JEQ_K, 0x40, v4, next);
            p.here(next);
            p.jump(op::JEQ_K, 0x60, v6, reject);
        }
    }
    // IPv4: protocol, no later fragment, then the transport header at X + l.
    p.here(v4);
    p.stmt(op::LD_B_ABS, l + 9);
    let next = p.label();
    p.jump(op::JEQ_K, 17, udp4, next);
    p.here(next);
    p.jump(op::JEQ_K, 6, tcp4, reject);
    p.here(udp4);
    p.here(tcp4);
    p.stmt(op::LD_H_ABS, l + 6);
    p.jump(op::JSET_K, 0x1fff, reject, v4_ports);
    p.here(v4_ports);
    p.stmt(op::LDX_B_MSH, l);
    let next = p.label();
    p.stmt(op::LD_H_IND, l);
    p.jump(op::JEQ_K, 53, accept, next);
    p.here(next);
    let next = p.label();
    p.stmt(op::LD_H_IND, l + 2);
    p.jump(op::JEQ_K, 53, accept, next);
    p.here(next);
    // Not DNS: a TCP SYN-ACK (protocol 6) or nothing.
    let flags4 = p.label();
    p.stmt(op::LD_B_ABS, l + 9);
    p.jump(op::JEQ_K, 6, flags4, reject);
    p.here(flags4);
    p.stmt(op::LD_B_IND, l + 13);
    p.stmt(op::AND_K, 0x12);
    p.jump(op::JEQ_K, 0x12, accept, reject);
    // IPv6: the fixed 40-byte header, then UDP or TCP.
    p.here(v6);
    p.stmt(op::LD_B_ABS, l + 6);
    let next = p.label();
    p.jump(op::JEQ_K, 17, udp6, next);
    p.here(next);
    p.jump(op::JEQ_K, 6, tcp6, reject);
    p.here(udp6);
    p.stmt(op::LD_H_ABS, l + 40);
    let next = p.label();
    p.jump(op::JEQ_K, 53, accept, next);
    p.here(next);
    p.stmt(op::LD_H_ABS, l + 42);
    p.jump(op::JEQ_K, 53, accept, reject);
    p.here(tcp6);
    p.stmt(op::LD_H_ABS, l + 40);
    let next = p.label();
    p.jump(op::JEQ_K, 53, accept, next);
    p.here(next);
    p.stmt(op::LD_H_ABS, l + 42);
    let next = p.label();
    p.jump(op::JEQ_K, 53, accept, next);
    p.here(next);
    p.stmt(op::LD_B_ABS, l + 40 + 13);
    p.stmt(op::AND_K, 0x12);
    p.jump(op::JEQ_K, 0x12, accept, reject);
    p.here(accept);
    p.stmt(op::RET_K, SNAPLEN);
    p.here(reject);
    p.stmt(op::RET_K, 0);
    Some(p.finish())
}

/// The IP packet of a frame of `link` type.
fn sliced(link: LinkType, frame: &[u8]) -> Option<SlicedPacket<'_>> {
    match link {
        LinkType::Ethernet => SlicedPacket::from_ethernet(frame).ok(),
        LinkType::Null => SlicedPacket::from_ip(frame.get(4..)?).ok(),
        LinkType::RawIp => SlicedPacket::from_ip(frame).ok(),
        LinkType::LinuxSll => SlicedPacket::from_ip(frame.get(16..)?).ok(),
    }
}

/// The connection a SYN-ACK frame establishes, as a network connection event (code 3):
/// `source` the client (the SYN-ACK's receiver), `destination` the server. `local` are the
/// host's addresses: a local client is an outbound connection (`connected-to`, egress), a
/// local server an inbound one (`accepted-connection-from`, ingress); loopback on both
/// ends is `internal`.
pub fn syn_ack_event(
    link: LinkType,
    frame: &[u8],
    ts: Timestamp,
    local: &[IpAddr],
) -> Option<Event> {
    let packet = sliced(link, frame)?;
    let (server, client): (IpAddr, IpAddr) = match packet.net? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
        return None;
    };
    if !(tcp.syn() && tcp.ack()) || tcp.rst() {
        return None;
    }
    let end = |ip: IpAddr, port: u16| Endpoint {
        address: ip.to_string(),
        ip: ip.to_string(),
        port: Some(port),
        ..Endpoint::default()
    };
    let client_local = local.contains(&client) || client.is_loopback();
    let inbound = !client_local && (local.contains(&server) || server.is_loopback());
    let mut e = Event::network_connection(
        ts,
        end(client, tcp.destination_port()),
        end(server, tcp.source_port()),
        "tcp",
        inbound,
    );
    if client.is_loopback() && server.is_loopback() {
        e.network.direction = "internal".to_owned();
    }
    e.network.net_type = if server.is_ipv4() { "ipv4" } else { "ipv6" }.to_owned();
    Some(e)
}

/// What a [`NetDecoder`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetOptions {
    /// TCP connections (SYN-ACKs).
    pub tcp: bool,
    /// DNS answers.
    pub dns: bool,
}

/// Frames of one interface to events: TCP connections and DNS answers.
#[derive(Debug)]
pub struct NetDecoder {
    link: LinkType,
    interface: String,
    options: NetOptions,
    dns: Decoder,
}

impl NetDecoder {
    /// A decoder for the frames of `interface`, of type `link`.
    pub fn new(interface: &str, link: LinkType, options: NetOptions) -> NetDecoder {
        NetDecoder {
            link,
            interface: interface.to_owned(),
            options,
            dns: Decoder::new(link, DecoderOptions::default()),
        }
    }

    /// Decodes one frame; events are appended to `out`. `local` are the host's addresses.
    pub fn push(&mut self, frame: &[u8], ts: Timestamp, local: &[IpAddr], out: &mut Vec<Event>) {
        if self.options.tcp {
            if let Some(mut e) = syn_ack_event(self.link, frame, ts, local) {
                e.action
                    .properties
                    .insert("interface".to_owned(), self.interface.clone().into());
                out.push(e);
                return;
            }
        }
        if self.options.dns {
            self.dns
                .push_frame(frame, FrameMeta::at(ts), &mut NoAttribution, out);
        }
    }

    /// Emits DNS events whose aggregation window ended by `now`.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.dns.tick(now, out);
    }

    /// Emits every held DNS event (stop).
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.dns.finish(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// A classic BPF interpreter for the opcodes of [`filter`], following `bpf_filter()`:
    /// a load outside the packet rejects it.
    fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |i: usize| pkt.get(i).copied().map(u32::from);
        let half = |i: usize| Some(byte(i)? << 8 | byte(i + 1)?);
        let word = |i: usize| Some(half(i)? << 16 | half(i + 2)?);
        loop {
            let ins = prog[pc];
            let k = ins.k as usize;
            pc += 1;
            let loaded = match ins.code {
                op::LD_W_ABS => word(k),
                op::LD_H_ABS => half(k),
                op::LD_B_ABS => byte(k),
                op::LD_H_IND => half(x as usize + k),
                op::LD_B_IND => byte(x as usize + k),
                op::LDX_B_MSH => {
                    match byte(k) {
                        Some(b) => x = 4 * (b & 0xf),
                        None => return 0,
                    }
                    continue;
                }
                op::AND_K => {
                    a &= ins.k;
                    continue;
                }
                op::JEQ_K | op::JSET_K => {
                    let hit = if ins.code == op::JEQ_K {
                        a == ins.k
                    } else {
                        a & ins.k != 0
                    };
                    pc += usize::from(if hit { ins.jt } else { ins.jf });
                    continue;
                }
                op::RET_K => return ins.k,
                other => panic!("opcode {other:#x} not in the filter"),
            };
            match loaded {
                Some(v) => a = v,
                None => return 0,
            }
        }
    }

    const MAC_A: [u8; 6] = [0x3c, 0x22, 0xfb, 0x10, 0x20, 0x30];
    const MAC_B: [u8; 6] = [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc];

    fn tcp_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, syn: bool, ack: bool) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1000, 65535);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(2000);
        }
        let mut out = Vec::new();
        b.write(&mut out, &[]).unwrap();
        out
    }

    fn udp_v4(sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([192, 168, 1, 20], [192, 168, 1, 1], 64)
            .udp(sport, dport)
            .write(&mut out, b"\x12\x34")
            .unwrap();
        out
    }

    fn tcp_v6_null(sport: u16, dport: u16, syn: bool, ack: bool) -> Vec<u8> {
        let mut lo = [0u8; 16];
        lo[15] = 1;
        let mut b = PacketBuilder::ipv6(lo, lo, 64).tcp(sport, dport, 1, 65535);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(1);
        }
        // lo0: AF_INET6 (30) in little-endian, then the IPv6 packet.
        let mut out = vec![30, 0, 0, 0];
        b.write(&mut out, &[]).unwrap();
        out
    }

    #[test]
    fn the_filter_keeps_dns_and_syn_acks_only() {
        let eth = filter(LinkType::Ethernet).unwrap();
        let keep = |p: &[u8]| run(&eth, p) == SNAPLEN;
        assert!(keep(&udp_v4(53000, 53)), "DNS query");
        assert!(keep(&udp_v4(53, 53000)), "DNS answer");
        assert!(
            keep(&tcp_v4(
                [10, 0, 0, 5],
                [10, 0, 0, 9],
                443,
                50000,
                true,
                true
            )),
            "SYN-ACK"
        );
        assert!(
            keep(&tcp_v4(
                [10, 0, 0, 5],
                [10, 0, 0, 9],
                53,
                50000,
                false,
                true
            )),
            "DNS over TCP"
        );
        assert!(
            !keep(&tcp_v4(
                [10, 0, 0, 5],
                [10, 0, 0, 9],
                443,
                50000,
                true,
                false
            )),
            "SYN"
        );
        assert!(
            !keep(&tcp_v4(
                [10, 0, 0, 5],
                [10, 0, 0, 9],
                443,
                50000,
                false,
                true
            )),
            "data"
        );
        assert!(!keep(&udp_v4(5353, 5353)), "mDNS");
        let mut fragment = udp_v4(53, 53000);
        fragment[14 + 7] = 0x10; // a later fragment: offset 16 bytes
        assert!(!keep(&fragment), "later fragment");
        let mut arp = udp_v4(53, 53000);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!keep(&arp), "not IP");

        let null = filter(LinkType::Null).unwrap();
        assert_eq!(run(&null, &tcp_v6_null(8080, 50001, true, true)), SNAPLEN);
        assert_eq!(run(&null, &tcp_v6_null(8080, 50001, false, true)), 0);
        assert_eq!(run(&null, &tcp_v6_null(53, 50001, false, true)), SNAPLEN);
        assert_eq!(
            run(&null, &tcp_v6_null(53, 50001, false, true)[..20]),
            0,
            "cut short"
        );
        assert!(filter(LinkType::LinuxSll).is_none());
    }

    #[test]
    fn bpf_records_are_split_on_word_boundaries() {
        fn rec(buf: &mut Vec<u8>, secs: i32, usecs: u32, data: &[u8], wire: u32) {
            buf.extend_from_slice(&secs.to_ne_bytes());
            buf.extend_from_slice(&usecs.to_ne_bytes());
            buf.extend_from_slice(&(data.len() as u32).to_ne_bytes());
            buf.extend_from_slice(&wire.to_ne_bytes());
            buf.extend_from_slice(&18u16.to_ne_bytes());
            buf.extend_from_slice(data);
            while !buf.len().is_multiple_of(4) {
                buf.push(0);
            }
        }
        let mut buf = Vec::new();
        rec(&mut buf, 1_709_630_000, 250_000, b"abcde", 5);
        rec(&mut buf, 1_709_630_001, 7, b"xyz", 1500);
        let got: Vec<_> = records(&buf).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data, b"abcde");
        assert_eq!(got[0].ts, Timestamp::from_unix(1_709_630_000, 250_000_000));
        assert_eq!((got[1].data, got[1].wire_len), (&b"xyz"[..], 1500));
        // A truncated buffer yields what is whole (the last record lacks a data byte).
        assert_eq!(records(&buf[..buf.len() - 4]).count(), 1);
        assert_eq!(records(&[0u8; 10]).count(), 0);
    }

    #[test]
    fn a_syn_ack_is_one_connection_with_both_ends_and_its_direction() {
        let ts = Timestamp::from_unix(1_709_630_000, 0);
        let local: Vec<IpAddr> = vec!["10.0.0.9".parse().unwrap()];
        // The server 10.0.0.5:443 answers this host's connection.
        let out = syn_ack_event(
            LinkType::Ethernet,
            &tcp_v4([10, 0, 0, 5], [10, 0, 0, 9], 443, 50000, true, true),
            ts,
            &local,
        )
        .unwrap();
        let v = out.to_value().unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "@timestamp": "2024-03-05T09:13:20.000Z",
                "event": {"provider": "SEKOIA-IO-Endpoint", "code": 3, "action": "connected-to",
                          "category": ["network"], "type": ["connection", "start"], "outcome": "success"},
                "source": {"address": "10.0.0.9", "ip": "10.0.0.9", "port": 50000},
                "destination": {"address": "10.0.0.5", "ip": "10.0.0.5", "port": 443},
                "network": {"transport": "tcp", "direction": "egress", "type": "ipv4"}
            })
        );
        // This host answers a client: inbound.
        let e = syn_ack_event(
            LinkType::Ethernet,
            &tcp_v4([10, 0, 0, 9], [10, 0, 0, 7], 22, 61000, true, true),
            ts,
            &local,
        )
        .unwrap();
        assert_eq!(e.event.action, "accepted-connection-from");
        assert_eq!(
            (e.source.ip.as_str(), e.source.port),
            ("10.0.0.7", Some(61000))
        );
        assert_eq!(e.network.direction, "ingress");
        // Loopback on both ends.
        let e = syn_ack_event(
            LinkType::Null,
            &tcp_v6_null(8080, 50001, true, true),
            ts,
            &local,
        )
        .unwrap();
        assert_eq!(
            (e.network.direction.as_str(), e.network.net_type.as_str()),
            ("internal", "ipv6")
        );
        // Not a SYN-ACK.
        assert!(syn_ack_event(
            LinkType::Ethernet,
            &tcp_v4([10, 0, 0, 5], [10, 0, 0, 9], 443, 50000, true, false),
            ts,
            &local
        )
        .is_none());
    }

    #[test]
    fn the_decoder_reports_connections_and_dns_answers() {
        let mut d = NetDecoder::new(
            "en0",
            LinkType::Ethernet,
            NetOptions {
                tcp: true,
                dns: true,
            },
        );
        let ts = Timestamp::from_unix(1_709_630_000, 0);
        let local: Vec<IpAddr> = vec!["10.0.0.9".parse().unwrap()];
        let mut out = Vec::new();
        d.push(
            &tcp_v4([10, 0, 0, 5], [10, 0, 0, 9], 443, 50000, true, true),
            ts,
            &local,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].action.properties["interface"], "en0");
        // An answer: example.com A 93.184.216.34.
        let answer: Vec<u8> = [
            &[0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0][..],
            b"\x07example\x03com\x00\x00\x01\x00\x01",
            &[
                0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34,
            ],
        ]
        .concat();
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(MAC_B, MAC_A)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 9], 64)
            .udp(53, 53000)
            .write(&mut frame, &answer)
            .unwrap();
        d.push(&frame, ts, &local, &mut out);
        d.finish(&mut out);
        let dns = out
            .iter()
            .find(|e| e.event.code == Some(22))
            .expect("dns event");
        assert_eq!(dns.dns.question.name, "example.com");
        assert_eq!(dns.dns.resolved_ip, ["93.184.216.34"]);
        // With TCP off, SYN-ACKs give nothing.
        let mut quiet = NetDecoder::new(
            "en0",
            LinkType::Ethernet,
            NetOptions {
                tcp: false,
                dns: true,
            },
        );
        let mut none = Vec::new();
        quiet.push(
            &tcp_v4([10, 0, 0, 5], [10, 0, 0, 9], 443, 50000, true, true),
            ts,
            &local,
            &mut none,
        );
        quiet.finish(&mut none);
        assert!(none.is_empty());
    }
}
