//! Event (de)serialization throughput, as ratios against baselines measured in the same run:
//! - writing a typed `Event` vs writing the same event held as a `serde_json::Value`
//!   (the generic JSON tree a model-less design would serialize);
//! - reading the reference dialect samples into `Event` vs into `serde_json::Value`
//!   (the typed model reads through a `Value`, so this ratio is its whole extra cost).
//!
//! Run: `cargo bench -p agent-event --bench serialize` (iterations as first argument,
//! default 100000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use agent_event::{Event, File, Hashes, Process, Timestamp};
use serde_json::{json, Value};

const SAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/dialect-samples/endpoint-agent-events.jsonl"
);

/// Best of `runs` timings of `a` and of `b`, measured alternately so that load changes on
/// a shared machine hit both sides alike.
fn best_pair<A: FnMut(), B: FnMut()>(runs: usize, mut a: A, mut b: B) -> (Duration, Duration) {
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    (0..runs).fold((Duration::MAX, Duration::MAX), |(ba, bb), _| {
        (ba.min(time(&mut a)), bb.min(time(&mut b)))
    })
}

/// A file-creation event as the Linux collector emits it.
fn typical() -> Event {
    let mut e = Event::file_created(
        Timestamp::from_unix(1_768_827_054, 116_000_000),
        File {
            hash: Hashes {
                md5: "68b329da9893e34099c7d8ad5cb9c940".into(),
                sha1: "adc83b19e793491b1c6ea0fd8b46cd9f32e592fc".into(),
                sha256: "01ba4719c80b6fe911b091a7c05124b64eeece964e09c058ef8f9805daca546b".into(),
                ..Hashes::default()
            },
            size: Some(34),
            mode: "0644".into(),
            owner: "root".into(),
            group: "root".into(),
            inode: "1048671".into(),
            ..File::from_path("/etc/ld.so.preload")
        },
    );
    e.agent.id = "d6285cf5d51861d13acbb34971e6b72e8e91fbcfcce44cfc5a9f1d45c8f0510c".into();
    e.agent.version = "v0.1.0+8865f7f248fdcadfcc23d83e9a25922a7167f808".into();
    e.host.hostname = "example.com".into();
    e.host.os.os_type = "linux".into();
    e.host.ip = vec!["10.0.0.1".into(), "fe80::1".into()];
    e.process = Process {
        pid: Some(23116),
        executable: "/tmp/malware".into(),
        name: "malware".into(),
        command_line: "/tmp/malware --quiet".into(),
        args: vec!["/tmp/malware".into(), "--quiet".into()],
        working_directory: "/tmp".into(),
        parent: Some(Box::new(Process {
            pid: Some(23115),
            executable: "/usr/bin/sudo".into(),
            command_line: "sudo /tmp/malware".into(),
            ..Process::default()
        })),
        ..Process::default()
    };
    e.sekoiaio.process.guid = "11111111-1111-1111-1111-111111111111".into();
    e.sekoiaio.process.parent_guid = "22222222-2222-2222-2222-222222222222".into();
    for (k, v) in [
        ("syscall", "openat"),
        ("a0", "ffffffffffffff9c"),
        ("a1", "5590006b7f60"),
        ("a2", "241"),
        ("a3", "1a4"),
        ("exit", "3"),
        ("tty", "pts2"),
    ] {
        e.action.properties.insert(k.into(), json!(v));
    }
    e.tags = vec!["rootkit_preload".into()];
    e
}

fn main() {
    let iters: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);

    // Writing.
    let event = typical();
    let as_value = event.to_value().expect("to_value");
    let mut buf = Vec::with_capacity(4096);
    let bytes = {
        event.write_json(&mut buf).expect("write");
        buf.len()
    };
    let mut buf2 = Vec::with_capacity(4096);
    let (typed, generic) = best_pair(
        9,
        || {
            for _ in 0..iters {
                buf.clear();
                black_box(&event).write_json(&mut buf).expect("write");
                black_box(&buf);
            }
        },
        || {
            for _ in 0..iters {
                buf2.clear();
                serde_json::to_writer(&mut buf2, black_box(&as_value)).expect("write");
                black_box(&buf2);
            }
        },
    );
    let rate = |d: Duration, n: usize| n as f64 / d.as_secs_f64();
    println!(
        "write ({bytes} B event): Event {:.0} events/s, Value baseline {:.0} events/s, ratio {:.2}x",
        rate(typed, iters),
        rate(generic, iters),
        generic.as_secs_f64() / typed.as_secs_f64()
    );

    // Reading.
    let text = std::fs::read_to_string(SAMPLES).expect("dialect samples");
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            serde_json::to_string(&v["message"]).expect("json")
        })
        .collect();
    let rounds = (iters / lines.len()).max(1);
    let (typed, generic) = best_pair(
        9,
        || {
            for _ in 0..rounds {
                for l in &lines {
                    black_box(Event::from_json(black_box(l)).expect("event"));
                }
            }
        },
        || {
            for _ in 0..rounds {
                for l in &lines {
                    black_box(serde_json::from_str::<Value>(black_box(l)).expect("json"));
                }
            }
        },
    );
    let n = rounds * lines.len();
    println!(
        "read ({} samples): Event {:.0} events/s, Value baseline {:.0} events/s, ratio {:.2}x",
        lines.len(),
        rate(typed, n),
        rate(generic, n),
        generic.as_secs_f64() / typed.as_secs_f64()
    );
}
