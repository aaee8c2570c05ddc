//! Arbitrary bytes as a DNS message, as a captured frame of every link type, and as a TCP
//! stream cut into segments: parsing, reassembly and event building must never panic, and
//! the events they make must serialize.
#![no_main]

use agent_dns::frame::TcpInfo;
use agent_dns::tcp::TcpStreams;
use agent_dns::{
    response_event, Decoder, DecoderOptions, Flow, FrameMeta, LinkType, NoAttribution, Transport,
};
use agent_event::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ts = Timestamp::from_unix(1_700_000_000, 0);
    let flow = Flow {
        src: "127.0.0.1".parse().unwrap(),
        sport: 53,
        dst: "127.0.0.1".parse().unwrap(),
        dport: 40000,
        transport: Transport::Udp,
    };
    if let Ok(Some(e)) = response_event(data, &flow, ts) {
        e.to_json().unwrap();
    }

    let mut out = Vec::new();
    for link in [
        LinkType::RawIp,
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::Null,
    ] {
        let mut d = Decoder::new(link, DecoderOptions::default());
        d.push_frame(data, FrameMeta::at(ts), &mut NoAttribution, &mut out);
        d.finish(&mut out);
    }

    // The bytes after the first as a server's TCP stream, in segments of a size the first
    // byte picks.
    let step = usize::from(data.first().copied().unwrap_or(1) % 13) + 1;
    let stream = data.get(1..).unwrap_or_default();
    let mut streams = TcpStreams::default();
    let mut messages = Vec::new();
    let mut seq = 1u32;
    for chunk in stream.chunks(step) {
        let tcp = TcpInfo {
            seq,
            syn: false,
            fin_or_rst: false,
        };
        streams.push(flow, tcp, chunk, 0, &mut messages);
        seq = seq.wrapping_add(chunk.len() as u32);
    }
    for m in &messages {
        if let Ok(Some(e)) = response_event(m, &flow, ts) {
            out.push(e);
        }
    }
    for e in &out {
        e.to_json().unwrap();
    }
});
