//! The Linux capture against a real dnsmasq in a private network namespace: the collector's
//! events for dig's queries (exact names, types, answers, codes, counts; loopback seen once),
//! the kernel filter, process attribution, and the replay of a recorded capture.

#![cfg(target_os = "linux")]

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use agent_dns::capture::Capture;
use agent_dns::pcap::{self, PcapWriter};
use agent_dns::{
    repeat_count, Decoder, DecoderOptions, DnsCollector, DnsConfig, FrameMeta, LinkType,
    NoAttribution,
};
use agent_event::{Event, Timestamp};
use agent_pipeline::{Collector, CollectorState, Overflow, Sink};
use common::{dig, enter_private_netns, in_thread, require_root_and_tools, Dnsmasq, BIG};

/// One test at a time: a child spawned by another test's thread holds, between fork and
/// exec, a copy of this process's sockets, and a socket with two holders names no process.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One event as the assertions compare it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    name: String,
    qtype: String,
    code: String,
    transport: String,
    server: String,
    answers: Vec<String>,
    count: u64,
    tc: bool,
}

fn seen(e: &Event) -> Seen {
    let mut answers: Vec<String> = e
        .dns
        .answers
        .iter()
        .map(|a| format!("{} {} {}", a.name, a.record_type, a.data))
        .collect();
    // dnsmasq orders the many records of big.test its own way.
    if e.dns.question.name == "big.test" {
        answers.sort();
    }
    Seen {
        name: e.dns.question.name.clone(),
        qtype: e.dns.question.record_type.clone(),
        code: e.dns.response_code.clone(),
        transport: e.network.transport.clone(),
        server: e.source.ip.clone(),
        answers,
        count: repeat_count(e),
        tc: e.dns.header_flags.iter().any(|f| f == "TC"),
    }
}

fn s(name: &str, qtype: &str, code: &str, server: &str, answers: &[&str], count: u64) -> Seen {
    Seen {
        name: name.into(),
        qtype: qtype.into(),
        code: code.into(),
        transport: "udp".into(),
        server: server.into(),
        answers: answers.iter().map(|a| (*a).to_owned()).collect(),
        count,
        tc: false,
    }
}

/// A query from a socket of this process, kept open until the caller drops it.
fn query_from_here(name: &str) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut q = simple_dns::Packet::new_query(4321);
    q.set_flags(simple_dns::PacketFlag::RECURSION_DESIRED);
    q.questions.push(simple_dns::Question::new(
        simple_dns::Name::new_unchecked(name),
        simple_dns::TYPE::A.into(),
        simple_dns::CLASS::IN.into(),
        false,
    ));
    sock.send_to(&q.build_bytes_vec().unwrap(), "127.0.0.1:53")
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 512];
    sock.recv(&mut buf).unwrap();
    sock
}

#[test]
fn the_collector_reports_every_answer_of_dnsmasq_once() {
    require_root_and_tools();
    let _serial = serial();
    let events = in_thread(|| {
        enter_private_netns();
        let _dnsmasq = Dnsmasq::start();
        let mut collector = DnsCollector::new(DnsConfig::default());
        let (sink, rx) = Sink::channel("dns", 4096, Overflow::Drop);
        let report = sink.report().clone();
        collector.start(sink).unwrap();
        assert_eq!(report.state(), CollectorState::Running);
        assert_eq!(
            report.snapshot().mode.as_deref(),
            Some("AF_PACKET with a kernel BPF filter, all interfaces")
        );
        assert_eq!(collector.name(), "dns");
        assert_eq!(collector.overflow(), Overflow::Drop);

        // First, while attribution's /proc scan budget (10 a second) is whole, so that
        // this answer is attributed for certain.
        let own = query_from_here("www.test");
        // Before a child is spawned: between fork and exec a child holds a copy of every
        // descriptor, this socket included, and a socket with two holders names no process.
        std::thread::sleep(Duration::from_millis(300));
        dig(&["@127.0.0.1", "www.test", "A"]);
        dig(&["@127.0.0.1", "a.test", "A"]);
        dig(&["@127.0.0.1", "a.test", "A"]);
        dig(&["@::1", "a.test", "AAAA"]);
        dig(&["@127.0.0.1", "txt.test", "TXT"]);
        dig(&["@127.0.0.1", "nx.test", "A"]);
        dig(&["@127.0.0.1", "-x", "10.0.0.1"]);
        let big = dig(&["@127.0.0.1", "big.test", "A"]);
        assert!(big.contains("Truncated, retrying in TCP mode"), "{big}");

        // Events are held for the repeat window (1 s), then sent.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        while events.len() < 9 && Instant::now() < deadline {
            if let Ok(e) = rx.recv_timeout(Duration::from_millis(100)) {
                events.push(*e);
            }
        }
        drop(own);
        collector.stop().unwrap();
        events.extend(rx.try_iter().map(|e| *e));
        assert_eq!(report.dropped(), 0);
        assert_eq!(report.source_lost(), 0);
        events
    });

    let mut got: Vec<Seen> = events.iter().map(seen).collect();
    got.sort();
    let mut big_answers: Vec<String> = (0..BIG)
        .map(|i| format!("big.test A 10.1.{}.{}", i / 256, i % 256))
        .collect();
    big_answers.sort();
    let big_refs: Vec<&str> = big_answers.iter().map(String::as_str).collect();
    let chain = [
        "www.test CNAME mid.test",
        "mid.test CNAME a.test",
        "a.test A 10.0.0.1",
    ];
    let mut want = vec![
        // Asked twice within the window: one event, counted twice.
        s(
            "a.test",
            "A",
            "No Error",
            "127.0.0.1",
            &["a.test A 10.0.0.1"],
            2,
        ),
        s(
            "a.test",
            "AAAA",
            "No Error",
            "::1",
            &["a.test AAAA fd00::1"],
            1,
        ),
        // dig's query and this process's query: the same answer, one event.
        s("www.test", "A", "No Error", "127.0.0.1", &chain, 2),
        s(
            "txt.test",
            "TXT",
            "No Error",
            "127.0.0.1",
            &["txt.test TXT v=spf1 -all"],
            1,
        ),
        s("nx.test", "A", "Non-Existent Domain", "127.0.0.1", &[], 1),
        s(
            "1.0.0.10.in-addr.arpa",
            "PTR",
            "No Error",
            "127.0.0.1",
            &["1.0.0.10.in-addr.arpa PTR a.test"],
            1,
        ),
        Seen {
            transport: "tcp".into(),
            ..s("big.test", "A", "No Error", "127.0.0.1", &big_refs, 1)
        },
    ];
    // The truncated UDP answer is an event of its own, flagged TC.
    let tc: Vec<&Seen> = got.iter().filter(|e| e.tc).collect();
    assert_eq!(tc.len(), 1, "{got:#?}");
    assert_eq!(
        (tc[0].name.as_str(), tc[0].transport.as_str()),
        ("big.test", "udp")
    );
    want.push(tc[0].clone());
    want.sort();
    assert_eq!(got, want);

    // Attribution: this process's socket was open when the answer came; it is named.
    // dig's sockets may be closed by then: a dig event names dig or no process.
    let www = events
        .iter()
        .find(|e| e.dns.question.name == "www.test")
        .unwrap();
    assert_eq!(
        www.process.pid,
        Some(std::process::id()),
        "{:?}",
        www.process
    );
    assert_eq!(
        www.process.executable,
        std::env::current_exe().unwrap().to_string_lossy()
    );
    assert_eq!(www.sekoiaio.process.guid.len(), 36);
    for e in &events {
        if e.dns.question.name != "www.test" {
            assert!(
                e.process.pid.is_none() || e.process.name == "dig",
                "{:?}",
                e.process
            );
        }
        assert_eq!(e.event.code, Some(22));
        assert_eq!(e.destination.ip, e.source.ip, "loopback");
    }
}

#[test]
fn the_kernel_filter_passes_port_53_only() {
    require_root_and_tools();
    let _serial = serial();
    in_thread(|| {
        enter_private_netns();
        let cap = Capture::open(1 << 20).unwrap();
        let rx = UdpSocket::bind("127.0.0.1:9999").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..50 {
            tx.send_to(b"not dns", "127.0.0.1:9999").unwrap();
        }
        let dns_rx = UdpSocket::bind("127.0.0.1:53").unwrap();
        tx.send_to(b"to port 53", "127.0.0.1:53").unwrap();
        let mut buf = vec![0u8; 65536];
        let mut frames = Vec::new();
        while let Some(r) = cap.recv(&mut buf, Duration::from_millis(300)).unwrap() {
            frames.push((buf[..r.len].to_vec(), r));
        }
        drop((rx, dns_rx));
        // Loopback hands over a sent copy and a received copy of the one port-53
        // datagram; the filter drops the sent copy in the kernel.
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert!(!frames[0].1.loopback_outgoing);
        for (f, _) in &frames {
            assert!(f.ends_with(b"to port 53"));
        }
        assert_eq!(cap.take_drops().unwrap(), 0);
    });
}

#[test]
fn a_recorded_capture_replays_to_the_same_events() {
    require_root_and_tools();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dns.pcap");
    let path = file.clone();
    let live = in_thread(move || {
        enter_private_netns();
        let _dnsmasq = Dnsmasq::start();
        let cap = Capture::open(1 << 20).unwrap();
        let mut writer =
            PcapWriter::new(std::fs::File::create(&path).unwrap(), LinkType::LinuxSll).unwrap();
        let queries = std::thread::spawn(|| {
            dig(&["@127.0.0.1", "www.test", "A"]);
            dig(&["@127.0.0.1", "nx.test", "A"]);
            dig(&["@127.0.0.1", "big.test", "A"]);
        });
        let mut decoder = Decoder::new(LinkType::RawIp, DecoderOptions::default());
        let mut live: Vec<Box<Event>> = Vec::new();
        let mut buf = vec![0u8; 1 << 18];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match cap.recv(&mut buf, Duration::from_millis(300)).unwrap() {
                Some(r) => {
                    // Microseconds, as the pcap file keeps them.
                    let now = Timestamp::now();
                    let ts =
                        Timestamp::from_unix(now.unix_seconds(), now.subsec_nanos() / 1000 * 1000);
                    let mut framed = pcap::sll_header(r.pkttype, r.hatype, r.protocol).to_vec();
                    framed.extend_from_slice(&buf[..r.len]);
                    writer.write(ts, &framed).unwrap();
                    let meta = FrameMeta {
                        ts,
                        loopback_outgoing: r.loopback_outgoing,
                    };
                    decoder.push_frame(&buf[..r.len], meta, &mut NoAttribution, &mut live);
                }
                None if queries.is_finished() => break,
                None => {}
            }
        }
        queries.join().unwrap();
        writer.into_inner().unwrap();
        decoder.finish(&mut live);
        live
    });

    let (link, records) = pcap::read_all(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(link, LinkType::LinuxSll);
    let mut decoder = Decoder::new(link, DecoderOptions::default());
    let mut replayed: Vec<Box<Event>> = Vec::new();
    for r in &records {
        let meta = FrameMeta {
            ts: r.ts,
            loopback_outgoing: pcap::sll_loopback_outgoing(&r.frame),
        };
        decoder.push_frame(&r.frame, meta, &mut NoAttribution, &mut replayed);
    }
    decoder.finish(&mut replayed);
    let stats = decoder.stats();
    assert_eq!(stats.malformed_frames + stats.malformed_messages, 0);
    // The kernel filter already dropped loopback's sent copies.
    assert_eq!(stats.loopback_duplicates, 0, "{stats:?}");

    let json = |v: &[Box<Event>]| -> Vec<String> {
        let mut j: Vec<String> = v.iter().map(|e| e.to_json().unwrap()).collect();
        j.sort();
        j
    };
    assert_eq!(json(&replayed), json(&live));
    let mut names: Vec<(String, String)> = replayed
        .iter()
        .map(|e| (e.dns.question.name.clone(), e.network.transport.clone()))
        .collect();
    names.sort();
    let want: Vec<(String, String)> = [
        ("big.test", "tcp"),
        ("big.test", "udp"),
        ("nx.test", "udp"),
        ("www.test", "udp"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(names, want);
}

/// Drops CAP_NET_RAW from the calling thread's effective set (capabilities are per thread).
fn drop_net_raw_in_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    let mut header = Header {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and a two-element data array, as capget(2) expects for version 3.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(r, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_NET_RAW);
    // SAFETY: as above; capset only reads them.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    assert_eq!(r, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn without_cap_net_raw_the_collector_fails_with_a_clear_reason() {
    require_root_and_tools();
    let _serial = serial();
    in_thread(|| {
        drop_net_raw_in_this_thread();
        let mut collector = DnsCollector::new(DnsConfig::default());
        let (sink, _rx) = Sink::channel("dns", 16, Overflow::Drop);
        let report = sink.report().clone();
        let err = collector.start(sink).unwrap_err().to_string();
        assert!(err.contains("CAP_NET_RAW"), "{err}");
        match report.state() {
            CollectorState::Failed(reason) => assert!(reason.contains("CAP_NET_RAW"), "{reason}"),
            other => panic!("{other:?}"),
        }
    });
}
