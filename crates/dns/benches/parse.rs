//! DNS decoding throughput and cost, next to the capture socket's receive alone.
//!
//! `cargo bench -p agent-dns [-- --responses N]`. Prints, for N distinct responses (a mix of
//! A, AAAA, CNAME chains, TXT and NXDOMAIN, as raw IP frames):
//! - decode: frame → `dns-query-result` event (the collector's whole per-response work
//!   before the sink), responses/s and CPU seconds per million responses;
//! - on Linux as root, in a private network namespace: the same responses sent over
//!   loopback from port 53, read by the capture socket (kernel BPF filter) alone, then read
//!   and decoded, with the capture thread's CPU per million responses and the kernel's drops.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use agent_dns::{Decoder, DecoderOptions, FrameMeta, LinkType, NoAttribution, Transport};
use agent_event::{Event, Timestamp};
use simple_dns::rdata::{RData, A, AAAA, CNAME, TXT};
use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, RCODE, TYPE};

/// DNS response messages, each with a distinct question name.
fn messages(n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let host = format!("host{i}.example.test");
        let alias = format!("cdn{i}.example.test");
        let mut p = Packet::new_reply((i % 65536) as u16);
        p.set_flags(PacketFlag::RECURSION_DESIRED | PacketFlag::RECURSION_AVAILABLE);
        let qname = Name::new_unchecked(&host);
        let kind = i % 5;
        let qtype = match kind {
            1 => TYPE::AAAA,
            3 => TYPE::TXT,
            _ => TYPE::A,
        };
        p.questions.push(Question::new(
            qname.clone(),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        let ip = Ipv4Addr::from(0x0a00_0000 + i as u32);
        match kind {
            0 => {
                for k in 0..3 {
                    let a = A {
                        address: u32::from(ip) + k,
                    };
                    p.answers.push(ResourceRecord::new(
                        qname.clone(),
                        CLASS::IN,
                        60,
                        RData::A(a),
                    ));
                }
            }
            1 => p.answers.push(ResourceRecord::new(
                qname.clone(),
                CLASS::IN,
                60,
                RData::AAAA(AAAA {
                    address: 0x2001_0db8_0000_0000_0000_0000_0000_0000 + i as u128,
                }),
            )),
            2 => {
                p.answers.push(ResourceRecord::new(
                    qname.clone(),
                    CLASS::IN,
                    300,
                    RData::CNAME(CNAME(Name::new_unchecked(&alias))),
                ));
                p.answers.push(ResourceRecord::new(
                    Name::new_unchecked(&alias),
                    CLASS::IN,
                    60,
                    RData::A(A { address: ip.into() }),
                ));
            }
            3 => p.answers.push(ResourceRecord::new(
                qname.clone(),
                CLASS::IN,
                60,
                RData::TXT(TXT::new().with_string("v=spf1 -all").unwrap()),
            )),
            _ => *p.rcode_mut() = RCODE::NameError,
        }
        out.push(p.build_bytes_vec_compressed().unwrap());
    }
    out
}

fn frames(msgs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    msgs.iter()
        .enumerate()
        .map(|(i, m)| {
            agent_dns::frame::build_raw_ip(
                "192.0.2.53".parse().unwrap(),
                "192.0.2.1".parse().unwrap(),
                53,
                10_000 + (i % 50_000) as u16,
                Transport::Udp,
                0,
                Default::default(),
                m,
            )
            .unwrap()
        })
        .collect()
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Duration::ZERO
    }
}

fn report(what: &str, n: usize, wall: Duration, cpu: Duration) {
    let per_s = n as f64 / wall.as_secs_f64();
    let cpu_per_m = cpu.as_secs_f64() * 1e6 / n as f64;
    println!(
        "{what:<28} {n:>9} responses  {per_s:>12.0} responses/s  {cpu_per_m:>7.2} CPU s per million"
    );
}

fn decode(frames: &[Vec<u8>]) -> (Duration, Duration, u64) {
    // Repeat window on, as the collector runs; every name is distinct, so each response
    // is built into an event and held, like real traffic with few repeats.
    let mut d = Decoder::new(LinkType::RawIp, DecoderOptions::default());
    let mut out: Vec<Box<Event>> = Vec::with_capacity(1024);
    let base = 1_700_000_000i64;
    let (t0, c0) = (Instant::now(), thread_cpu());
    let mut events = 0u64;
    for (i, f) in frames.iter().enumerate() {
        let ts = Timestamp::from_unix(base + (i / 100_000) as i64, (i % 1000) as u32 * 1000);
        d.push_frame(f, FrameMeta::at(ts), &mut NoAttribution, &mut out);
        events += out.len() as u64;
        black_box(out.drain(..).count());
    }
    d.finish(&mut out);
    events += out.len() as u64;
    (t0.elapsed(), thread_cpu() - c0, events)
}

fn main() {
    let mut n = 1_000_000usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--responses") {
        n = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(n);
    }
    let msgs = messages(n);
    let frames = frames(&msgs);
    let avg = msgs.iter().map(Vec::len).sum::<usize>() / n.max(1);
    println!("{n} responses, {avg} bytes on average");

    let mut best = (Duration::MAX, Duration::MAX, 0);
    for _ in 0..3 {
        let r = decode(&frames);
        if r.0 < best.0 {
            best = r;
        }
    }
    assert_eq!(best.2, n as u64, "one event per distinct response");
    report("decode (frame -> event)", n, best.0, best.1);

    #[cfg(target_os = "linux")]
    attribution();
    #[cfg(target_os = "linux")]
    capture::run(&msgs);
}

/// Process attribution of one response from /proc (a socket of this process, found among
/// the host's sockets), per call: the collector pays it once per response.
#[cfg(target_os = "linux")]
fn attribution() {
    use agent_dns::{Attribution, Flow};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let flow = Flow {
        src: "127.0.0.1".parse().unwrap(),
        sport: 53,
        dst: "127.0.0.1".parse().unwrap(),
        dport: sock.local_addr().unwrap().port(),
        transport: Transport::Udp,
    };
    let mut a = agent_dns::procnet::ProcAttribution::new();
    let n = 10_000;
    let (t0, c0) = (Instant::now(), thread_cpu());
    for _ in 0..n {
        assert!(black_box(a.process_of(&flow)).is_some());
    }
    let sockets = ["udp", "udp6"]
        .iter()
        .map(|t| {
            std::fs::read_to_string(format!("/proc/self/net/{t}"))
                .map_or(0, |s| s.lines().count().saturating_sub(1))
        })
        .sum::<usize>();
    report("attribution (/proc)", n, t0.elapsed(), thread_cpu() - c0);
    println!("{:<28} with {sockets} UDP sockets on the host", "");
}

#[cfg(target_os = "linux")]
mod capture {
    use super::*;
    use agent_dns::capture::Capture;
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    pub fn run(msgs: &[Vec<u8>]) {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("capture: skipped (needs root for a network namespace and AF_PACKET)");
            return;
        }
        let msgs = msgs.to_vec();
        std::thread::spawn(move || {
            // SAFETY: CLONE_NEWNET only changes this thread's namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                println!(
                    "capture: skipped (unshare: {})",
                    std::io::Error::last_os_error()
                );
                return;
            }
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status();
            if !up.is_ok_and(|s| s.success()) {
                println!("capture: skipped (`ip link set lo up` failed)");
                return;
            }
            // At most what one run of the sender fits through the socket buffers.
            let n = msgs.len().min(300_000);
            for decode_too in [false, true] {
                one(&msgs[..n], decode_too);
            }
        })
        .join()
        .unwrap();
    }

    fn one(msgs: &[Vec<u8>], decode_too: bool) {
        let cap = Capture::open(64 << 20).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = client.local_addr().unwrap();
        let server = UdpSocket::bind("127.0.0.1:53").unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let sender_done = Arc::clone(&done);
        let to_send = msgs.to_vec();
        // The client drains its socket so that the kernel never refuses the datagrams.
        let drain = std::thread::spawn(move || {
            client
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 2048];
            while client.recv(&mut buf).is_ok() {}
        });
        let sender = std::thread::spawn(move || {
            for m in &to_send {
                server.send_to(m, dest).unwrap();
            }
            sender_done.store(true, Ordering::Relaxed);
        });

        let mut d = Decoder::new(LinkType::RawIp, DecoderOptions::default());
        let mut out: Vec<Box<Event>> = Vec::with_capacity(1024);
        let mut buf = vec![0u8; 1 << 18];
        let mut received = 0usize;
        let mut events = 0usize;
        let (t0, c0) = (Instant::now(), thread_cpu());
        let mut idle_since: Option<Instant> = None;
        loop {
            match cap.recv(&mut buf, Duration::from_millis(50)).unwrap() {
                Some(r) => {
                    idle_since = None;
                    if r.loopback_outgoing {
                        continue;
                    }
                    received += 1;
                    if decode_too {
                        let meta = FrameMeta {
                            ts: Timestamp::now(),
                            loopback_outgoing: false,
                        };
                        d.push_frame(&buf[..r.len], meta, &mut NoAttribution, &mut out);
                        events += out.len();
                        out.clear();
                    } else {
                        black_box(&buf[..r.len]);
                    }
                }
                None => {
                    if done.load(Ordering::Relaxed) {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_millis(200) {
                            break;
                        }
                    }
                }
            }
        }
        let wall = t0.elapsed();
        let cpu = thread_cpu() - c0;
        d.finish(&mut out);
        events += out.len();
        sender.join().unwrap();
        drain.join().unwrap();
        let drops = cap.take_drops().unwrap();
        let what = if decode_too {
            "capture receive + decode"
        } else {
            "capture receive alone"
        };
        report(what, received, wall, cpu);
        println!(
            "{:<28} sent {}, kernel drops {drops}{}",
            "",
            msgs.len(),
            if decode_too {
                format!(", events {events}")
            } else {
                String::new()
            }
        );
    }
}
