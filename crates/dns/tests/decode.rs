//! DNS responses built byte for byte, through the whole decoder: the events they make, in
//! the shape of the product's dialect sample, and what is counted and skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use agent_dns::frame::{build_raw_ip, TcpFlags};
use agent_dns::{
    repeat_count, response_event, Decoder, DecoderOptions, Flow, FrameMeta, LinkType,
    NoAttribution, Transport,
};
use agent_event::{Event, Timestamp};
use serde_json::Value;
use simple_dns::rdata::{RData, A, AAAA, CNAME, OPT, PTR, TXT};
use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, RCODE, TYPE};

const SERVER: &str = "127.0.0.53";
const CLIENT: &str = "127.0.0.1";

fn name(s: &str) -> Name<'_> {
    Name::new_unchecked(s)
}

fn response(id: u16, qname: &str, qtype: TYPE, fill: impl FnOnce(&mut Packet<'_>)) -> Vec<u8> {
    let mut p = Packet::new_reply(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED | PacketFlag::RECURSION_AVAILABLE);
    p.questions.push(Question::new(
        name(qname),
        qtype.into(),
        CLASS::IN.into(),
        false,
    ));
    fill(&mut p);
    p.build_bytes_vec().unwrap()
}

fn a(owner: &str, ip: Ipv4Addr, ttl: u32) -> ResourceRecord<'_> {
    ResourceRecord::new(
        name(owner),
        CLASS::IN,
        ttl,
        RData::A(A { address: ip.into() }),
    )
}

fn cname<'a>(owner: &'a str, target: &'a str) -> ResourceRecord<'a> {
    ResourceRecord::new(
        name(owner),
        CLASS::IN,
        300,
        RData::CNAME(CNAME(name(target))),
    )
}

fn flow() -> Flow {
    Flow {
        src: SERVER.parse().unwrap(),
        sport: 53,
        dst: CLIENT.parse().unwrap(),
        dport: 40000,
        transport: Transport::Udp,
    }
}

fn ts() -> Timestamp {
    Timestamp::from_unix(1_700_000_000, 0)
}

fn event(msg: &[u8]) -> Event {
    response_event(msg, &flow(), ts()).unwrap().unwrap()
}

fn answers(e: &Event) -> Vec<(String, String, String)> {
    e.dns
        .answers
        .iter()
        .map(|a| (a.name.clone(), a.record_type.clone(), a.data.clone()))
        .collect()
}

fn t(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

fn udp_frame(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    build_raw_ip(
        src.parse().unwrap(),
        dst.parse().unwrap(),
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
fn a_cname_chain_fills_answers_and_resolved_ips() {
    let msg = response(0x4c40, "WWW.Example.test", TYPE::A, |p| {
        p.answers
            .push(cname("www.example.test", "mid.example.test"));
        p.answers.push(cname("mid.example.test", "a.example.test"));
        p.answers
            .push(a("a.example.test", Ipv4Addr::new(192, 0, 2, 1), 60));
        p.answers
            .push(a("a.example.test", Ipv4Addr::new(192, 0, 2, 2), 60));
    });
    let e = event(&msg);
    assert_eq!(
        e.dns.question.name, "www.example.test",
        "names are lowercased"
    );
    assert_eq!(e.dns.question.record_type, "A");
    assert_eq!(e.dns.question.class, "IN");
    assert_eq!(
        answers(&e),
        vec![
            t("www.example.test", "CNAME", "mid.example.test"),
            t("mid.example.test", "CNAME", "a.example.test"),
            t("a.example.test", "A", "192.0.2.1"),
            t("a.example.test", "A", "192.0.2.2"),
        ]
    );
    assert_eq!(e.dns.resolved_ip, vec!["192.0.2.1", "192.0.2.2"]);
    assert_eq!(e.dns.answers[2].ttl, Some(60));
    assert_eq!(e.dns.response_code, "No Error");
    assert_eq!(e.dns.header_flags, vec!["RD", "RA"]);
    assert_eq!(e.dns.op_code, "Query");
    assert_eq!(e.dns.id, Some(0x4c40));
    assert_eq!(e.event.outcome, "success");
    assert_eq!((e.source.ip.as_str(), e.source.port), (SERVER, Some(53)));
    assert_eq!(
        (e.destination.ip.as_str(), e.destination.port),
        (CLIENT, Some(40000))
    );
    assert_eq!(e.network.transport, "udp");
    assert_eq!(e.network.protocol, "dns");
}

#[test]
fn the_event_has_the_shape_of_the_products_dialect_sample() {
    let samples = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/dialect-samples/endpoint-agent-events.jsonl"
    ))
    .unwrap();
    let sample: Value = samples
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["sample"] == "dns_results_without_ip")
        .unwrap()["message"]
        .clone();

    let msg = response(19552, "example.com", TYPE::Unknown(65), |p| {
        let mut rr = cname("example.com", "self-events-data.trafficmanager.net");
        rr.ttl = 71;
        p.answers.push(rr);
    });
    let mut decoder = Decoder::new(LinkType::RawIp, DecoderOptions::default());
    let mut out: Vec<Event> = Vec::new();
    let frame = udp_frame("192.0.2.53", 53, "192.0.2.1", 49878, &msg);
    decoder.push_frame(&frame, FrameMeta::at(ts()), &mut NoAttribution, &mut out);
    decoder.finish(&mut out);
    assert_eq!(out.len(), 1);
    let ours = out[0].to_value().unwrap();

    fn paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    paths(v, &format!("{prefix}{k}."), out);
                }
            }
            Value::Array(a) if a.first().is_some_and(Value::is_object) => {
                paths(&a[0], &format!("{prefix}[]."), out)
            }
            _ => out.push(prefix.trim_end_matches('.').to_owned()),
        }
    }
    let (mut want, mut got) = (Vec::new(), Vec::new());
    for key in [
        "dns",
        "event",
        "source",
        "destination",
        "network",
        "sekoiaio",
    ] {
        paths(&sample[key], &format!("{key}."), &mut want);
        paths(&ours[key], &format!("{key}."), &mut got);
    }
    // The product writes `resolved_ip: ["<nil>"]` when no answer has an address; the agent
    // leaves the field out. It adds `size_in_char` (as in the Sysmon sample) and
    // `network.protocol` (asked by the issue).
    want.retain(|p| p != "dns.resolved_ip");
    got.retain(|p| p != "dns.question.size_in_char" && p != "network.protocol");
    want.sort();
    got.sort();
    assert_eq!(got, want);

    for (path, value) in [
        ("/dns/answers/0/data", "self-events-data.trafficmanager.net"),
        ("/dns/answers/0/name", "example.com"),
        ("/dns/answers/0/type", "CNAME"),
        ("/dns/question/class", "IN"),
        ("/dns/response_code", "No Error"),
        ("/dns/type", "answer"),
        ("/dns/op_code", "Query"),
        ("/event/action", "dns-query-result"),
        ("/event/provider", "SEKOIA-IO-Endpoint"),
        ("/event/outcome", "success"),
        ("/network/transport", "udp"),
        ("/destination/ip", "192.0.2.1"),
    ] {
        assert_eq!(ours.pointer(path), Some(&Value::from(value)), "{path}");
        assert_eq!(ours.pointer(path), sample.pointer(path), "{path}");
    }
    for path in [
        "/dns/answers/0/ttl",
        "/dns/header_flags",
        "/dns/id",
        "/event/category",
        "/event/type",
        "/event/code",
        "/destination/port",
        "/source/port",
        "/sekoiaio/repeat/count",
    ] {
        assert_eq!(ours.pointer(path), sample.pointer(path), "{path}");
    }
    assert_eq!(ours["dns"]["question"]["type"], "HTTPS");
}

#[test]
fn nxdomain_servfail_and_refused_are_failures_without_answers() {
    for (rcode, text) in [
        (RCODE::NameError, "Non-Existent Domain"),
        (RCODE::ServerFailure, "Server Failure"),
        (RCODE::Refused, "Query Refused"),
    ] {
        let msg = response(7, "nope.test", TYPE::A, |p| *p.rcode_mut() = rcode);
        let e = event(&msg);
        assert_eq!(e.dns.response_code, text);
        assert_eq!(e.event.outcome, "failure");
        assert!(e.dns.answers.is_empty());
        assert!(e.dns.resolved_ip.is_empty());
        let json = e.to_value().unwrap();
        assert!(json["dns"].get("resolved_ip").is_none());
    }
}

#[test]
fn aaaa_ptr_txt_and_unknown_types() {
    let msg = response(1, "v6.test", TYPE::AAAA, |p| {
        p.answers.push(ResourceRecord::new(
            name("v6.test"),
            CLASS::IN,
            30,
            RData::AAAA(AAAA {
                address: "2001:db8::1".parse::<Ipv6Addr>().unwrap().into(),
            }),
        ));
    });
    let e = event(&msg);
    assert_eq!(answers(&e), vec![t("v6.test", "AAAA", "2001:db8::1")]);
    assert_eq!(e.dns.resolved_ip, vec!["2001:db8::1"]);

    let msg = response(2, "1.2.0.192.in-addr.arpa", TYPE::PTR, |p| {
        p.answers.push(ResourceRecord::new(
            name("1.2.0.192.in-addr.arpa"),
            CLASS::IN,
            30,
            RData::PTR(PTR(name("host.test"))),
        ));
    });
    let e = event(&msg);
    assert_eq!(e.dns.question.record_type, "PTR");
    assert_eq!(
        answers(&e),
        vec![t("1.2.0.192.in-addr.arpa", "PTR", "host.test")]
    );

    let msg = response(3, "txt.test", TYPE::TXT, |p| {
        let txt = TXT::new()
            .with_string("v=spf1 ")
            .unwrap()
            .with_string("-all")
            .unwrap();
        p.answers.push(ResourceRecord::new(
            name("txt.test"),
            CLASS::IN,
            30,
            RData::TXT(txt),
        ));
    });
    let e = event(&msg);
    assert_eq!(answers(&e), vec![t("txt.test", "TXT", "v=spf1 -all")]);
    assert!(e.dns.resolved_ip.is_empty());

    let msg = response(4, "x.test", TYPE::Unknown(4242), |_| {});
    assert_eq!(event(&msg).dns.question.record_type, "TYPE4242");
}

#[test]
fn truncated_and_edns_responses() {
    let msg = response(9, "big.test", TYPE::A, |p| {
        p.set_flags(PacketFlag::TRUNCATION);
        *p.opt_mut() = Some(OPT {
            opt_codes: Vec::new(),
            udp_packet_size: 1232,
            version: 0,
        });
    });
    let e = event(&msg);
    assert_eq!(e.dns.header_flags, vec!["TC", "RD", "RA"]);
    assert!(e.dns.answers.is_empty(), "the OPT record is not an answer");
    assert_eq!(e.dns.response_code, "No Error");

    // BADVERS needs the extended code of the OPT record (16 = 1 << 4 | 0).
    let msg = response(10, "v.test", TYPE::A, |p| {
        *p.rcode_mut() = RCODE::BADVERS;
        *p.opt_mut() = Some(OPT {
            opt_codes: Vec::new(),
            udp_packet_size: 1232,
            version: 0,
        });
    });
    assert_eq!(event(&msg).dns.response_code, "Bad OPT Version");
}

#[test]
fn queries_make_no_event_and_set_the_start_of_their_answer() {
    let mut q = Packet::new_query(77);
    q.questions.push(Question::new(
        name("a.test"),
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    let query = q.build_bytes_vec().unwrap();
    let resp = response(77, "a.test", TYPE::A, |p| {
        p.answers.push(a("a.test", Ipv4Addr::new(10, 0, 0, 1), 5))
    });
    let mut d = Decoder::new(LinkType::RawIp, DecoderOptions::default());
    let mut out: Vec<Event> = Vec::new();
    let t0 = Timestamp::from_unix(1_700_000_000, 0);
    let t1 = Timestamp::from_unix(1_700_000_000, 3_000_000);
    d.push_frame(
        &udp_frame(CLIENT, 40000, SERVER, 53, &query),
        FrameMeta::at(t0),
        &mut NoAttribution,
        &mut out,
    );
    d.push_frame(
        &udp_frame(SERVER, 53, CLIENT, 40000, &resp),
        FrameMeta::at(t1),
        &mut NoAttribution,
        &mut out,
    );
    d.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event.start, Some(t0));
    assert_eq!(out[0].event.end, Some(t1));
    let s = d.stats();
    assert_eq!((s.queries, s.responses, s.events), (1, 1, 1));
}

#[test]
fn loopback_copies_count_once_and_repeats_are_aggregated() {
    let resp = response(5, "a.test", TYPE::A, |p| {
        p.answers.push(a("a.test", Ipv4Addr::new(10, 0, 0, 1), 5))
    });
    let frame = udp_frame(SERVER, 53, CLIENT, 40000, &resp);
    let mut d = Decoder::new(LinkType::RawIp, DecoderOptions::default());
    let mut out: Vec<Event> = Vec::new();
    let at = |ms: u32| Timestamp::from_unix(1_700_000_000, ms * 1_000_000);
    for (ms, outgoing) in [(0, true), (0, false), (200, true), (200, false)] {
        let meta = FrameMeta {
            ts: at(ms),
            loopback_outgoing: outgoing,
        };
        d.push_frame(&frame, meta, &mut NoAttribution, &mut out);
    }
    assert!(out.is_empty(), "held for the window");
    d.tick(at(999), &mut out);
    assert!(out.is_empty());
    d.tick(at(1000), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(repeat_count(&out[0]), 2);
    let s = d.stats();
    assert_eq!((s.loopback_duplicates, s.responses, s.repeats), (2, 2, 1));

    // Without a window, each response is its own event, counted 1.
    let mut d = Decoder::new(
        LinkType::RawIp,
        DecoderOptions {
            repeat_window_ms: 0,
            ..DecoderOptions::default()
        },
    );
    let mut out: Vec<Event> = Vec::new();
    for _ in 0..2 {
        d.push_frame(&frame, FrameMeta::at(at(0)), &mut NoAttribution, &mut out);
    }
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|e| repeat_count(e) == 1));
}

#[test]
fn dns_over_tcp_across_segments() {
    let resp = response(6, "big.test", TYPE::A, |p| {
        for i in 0..200u32 {
            p.answers
                .push(a("big.test", Ipv4Addr::from(0x0a01_0000 + i), 60));
        }
    });
    let mut stream = (resp.len() as u16).to_be_bytes().to_vec();
    stream.extend_from_slice(&resp);
    let (srv, cli): (IpAddr, IpAddr) = ("::1".parse().unwrap(), "::1".parse().unwrap());
    let seg = |seq: u32, flags: TcpFlags, data: &[u8]| {
        build_raw_ip(srv, cli, 53, 41000, Transport::Tcp, seq, flags, data).unwrap()
    };
    let mut frames = vec![seg(
        999,
        TcpFlags {
            syn: true,
            fin: false,
        },
        b"",
    )];
    let mut seq = 1000;
    for chunk in stream.chunks(1000) {
        frames.push(seg(seq, TcpFlags::default(), chunk));
        seq += chunk.len() as u32;
    }
    // A retransmission of the second segment changes nothing.
    frames.insert(3, frames[2].clone());
    frames.push(seg(
        seq,
        TcpFlags {
            syn: false,
            fin: true,
        },
        b"",
    ));
    let mut d = Decoder::new(LinkType::RawIp, DecoderOptions::default());
    let mut out: Vec<Event> = Vec::new();
    for f in &frames {
        d.push_frame(f, FrameMeta::at(ts()), &mut NoAttribution, &mut out);
    }
    d.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].network.transport, "tcp");
    assert_eq!(out[0].dns.answers.len(), 200);
    assert_eq!(out[0].dns.resolved_ip[199], "10.1.0.199");
    assert_eq!(d.stats().malformed_messages, 0);
}

#[test]
fn malformed_messages_are_counted_and_skipped() {
    let good = response(8, "a.test", TYPE::A, |p| {
        p.answers.push(a("a.test", Ipv4Addr::new(10, 0, 0, 1), 5))
    });
    let mut d = Decoder::new(LinkType::RawIp, DecoderOptions::default());
    let mut out: Vec<Event> = Vec::new();
    let mut bad = Vec::new();
    // Every cut of a good response, and a header claiming records that are not there.
    for n in 0..good.len() {
        bad.push(good[..n].to_vec());
    }
    let mut liar = good.clone();
    liar[7] = 200;
    bad.push(liar);
    // A compression pointer to itself.
    let mut lp = good[..12].to_vec();
    lp[4..6].copy_from_slice(&1u16.to_be_bytes());
    lp[6..8].copy_from_slice(&0u16.to_be_bytes());
    lp.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    bad.push(lp);
    for b in &bad {
        let f = udp_frame(SERVER, 53, CLIENT, 40000, b);
        d.push_frame(&f, FrameMeta::at(ts()), &mut NoAttribution, &mut out);
    }
    d.finish(&mut out);
    assert!(out.is_empty(), "{:?}", out.first().map(|e| &e.dns));
    let s = d.stats();
    // Cuts shorter than the header are not even responses; the rest are malformed.
    assert_eq!(s.malformed_messages + s.queries, bad.len() as u64);
    assert!(s.malformed_messages >= (bad.len() - 12) as u64);
}
