//! Shipping throughput and CPU cost, against a baseline measured in the same run.
//!
//! Ships `BENCH_EVENTS` (default 200 000) real dialect events (the reference samples,
//! with varying timestamps and sequence numbers) through the full path: routed records
//! from a memory source → batches of 250 → `/batch` JSON → gzip → TLS → the loopback HTTPS
//! intake (running on another thread), until the last one is acknowledged. The CPU time
//! of the shipper thread (getrusage RUSAGE_THREAD) is compared with the CPU time of only
//! gzip-compressing the same request bodies on the same thread.
//!
//! Then the same events are shipped with one request in flight and with
//! [`TransportConfig::max_in_flight`] (4) to the loopback intake, answering at once and
//! after `BENCH_RTT_MS` (default 20) as over a network round trip: events/s of both and
//! their ratio.
//!
//! Run: `cargo bench -p agent-transport` (set `BENCH_EVENTS` for a shorter CI run).

#[cfg(target_os = "linux")]
#[path = "../tests/common/server.rs"]
mod server;

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the shipping benchmark measures thread CPU time with getrusage: Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use agent_pipeline::{RecordKind, RoutedRecord};
    use agent_transport::framing::{batch_body, gzip};
    use agent_transport::{Counters, MemorySource, Shipper, TransportConfig};

    use super::server::{Action, Intake};

    const SAMPLES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/dialect-samples/endpoint-agent-events.jsonl"
    );
    const KEY: &str = "BENCHKEY0123456789abcdefghijklmnopqr";

    /// CPU time (user + system) of the calling thread.
    fn thread_cpu() -> Duration {
        // SAFETY: getrusage only writes into the zeroed struct we own; RUSAGE_THREAD is
        // valid on Linux.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut ru), 0);
            ru
        };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }

    fn events(n: usize) -> Vec<Vec<u8>> {
        let text = std::fs::read_to_string(SAMPLES).expect("reference dialect samples");
        let samples: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("sample JSON")["message"]
                    .clone()
            })
            .collect();
        (0..n)
            .map(|i| {
                let mut ev = samples[i % samples.len()].clone();
                if let Some(obj) = ev.as_object_mut() {
                    obj.insert(
                        "@timestamp".into(),
                        format!(
                            "2026-11-28T12:{:02}:{:02}.{:06}Z",
                            (i / 60_000) % 60,
                            (i / 1000) % 60,
                            i % 1_000_000
                        )
                        .into(),
                    );
                    obj.insert("seq".into(), i.into());
                }
                serde_json::to_vec(&ev).expect("serialize")
            })
            .collect()
    }

    pub fn main() {
        let n: usize = std::env::var("BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let payloads = events(n);
        let raw_bytes: usize = payloads.iter().map(Vec::len).sum();

        let intake = Intake::start(Box::new(|_| Action::Accept));
        let source = MemorySource::new();
        for p in &payloads {
            let rec = RoutedRecord {
                kind: RecordKind::Event,
                intake_key: KEY,
                payload: p,
            };
            source.push(rec.encode().expect("encode"));
        }
        let mut cfg = TransportConfig::new(intake.url().parse().expect("intake URL"));
        cfg.extra_ca_file = Some(intake.ca_file.clone());
        cfg.proxy_from_env = false;

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let counters = Arc::new(Counters::default());
        let mut shipper = Shipper::new(cfg.clone(), counters.clone()).expect("shipper");
        let mut src = source.clone();
        let last = (n - 1) as u64;
        let wall = Instant::now();
        let cpu0 = thread_cpu();
        rt.block_on(async {
            let done = async {
                while source.acked() != Some(last) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            shipper.run(&mut src, done).await.expect("ship");
        });
        let ship_cpu = thread_cpu() - cpu0;
        let ship_wall = wall.elapsed();
        let c = counters.snapshot();
        assert_eq!(c.events_sent as usize, n, "all events delivered");
        assert_eq!(intake.accepted_count(), n);

        // Baseline: gzip only, the same bodies, same level, same thread.
        let bodies: Vec<Vec<u8>> = payloads
            .chunks(250)
            .map(|c| batch_body(KEY, c.iter().map(Vec::as_slice)))
            .collect();
        let cpu1 = thread_cpu();
        let mut gz_total = 0usize;
        for b in &bodies {
            gz_total += gzip(b, cfg.gzip_level).expect("gzip").len();
        }
        let gzip_cpu = thread_cpu() - cpu1;

        let per_million = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "transport/ship: {n} events, {:.1} MB of event JSON, {} requests",
            raw_bytes as f64 / 1e6,
            c.requests
        );
        println!(
            "  body bytes plain {} -> gzip {} (ratio {:.1}x); baseline gzip {}",
            c.bytes_plain,
            c.bytes_gzip,
            c.bytes_plain as f64 / c.bytes_gzip as f64,
            gz_total
        );
        println!(
            "  shipped:   {:>10.0} events/s wall, {:.3} CPU s per million events (shipper thread)",
            n as f64 / ship_wall.as_secs_f64(),
            per_million(ship_cpu)
        );
        println!(
            "  gzip only: {:>10.0} events/s,      {:.3} CPU s per million events",
            n as f64 / gzip_cpu.as_secs_f64().max(1e-9),
            per_million(gzip_cpu)
        );
        println!(
            "  ratio ship CPU / gzip-only CPU: {:.2}",
            ship_cpu.as_secs_f64() / gzip_cpu.as_secs_f64().max(1e-9)
        );

        // Requests in flight, against an intake with a round trip.
        let rtt = Duration::from_millis(
            std::env::var("BENCH_RTT_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(20),
        );
        let n_flight = n.min(100_000);
        let default_flight = TransportConfig::new(cfg.intake.clone()).max_in_flight;
        for rtt in [Duration::ZERO, rtt] {
            let one = in_flight_run(&payloads[..n_flight], rtt, 1);
            let many = in_flight_run(&payloads[..n_flight], rtt, default_flight);
            println!(
                "transport/in-flight: {n_flight} events, intake answers after {rtt:?}, batches of 250"
            );
            println!(
                "  1 in flight: {:>10.0} events/s; {default_flight} in flight: {:>10.0} events/s; ratio {:.2}",
                n_flight as f64 / one.as_secs_f64(),
                n_flight as f64 / many.as_secs_f64(),
                one.as_secs_f64() / many.as_secs_f64()
            );
        }
    }

    /// Ships `payloads` with `in_flight` requests at most to an intake answering after
    /// `rtt`; returns the time until the last one is acknowledged.
    fn in_flight_run(payloads: &[Vec<u8>], rtt: Duration, in_flight: usize) -> Duration {
        let intake = Intake::start(Box::new(move |_| Action::AcceptAfter(rtt)));
        let source = MemorySource::new();
        for p in payloads {
            let rec = RoutedRecord {
                kind: RecordKind::Event,
                intake_key: KEY,
                payload: p,
            };
            source.push(rec.encode().expect("encode"));
        }
        let mut cfg = TransportConfig::new(intake.url().parse().expect("intake URL"));
        cfg.extra_ca_file = Some(intake.ca_file.clone());
        cfg.proxy_from_env = false;
        cfg.max_in_flight = in_flight;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let counters = Arc::new(Counters::default());
        let mut shipper = Shipper::new(cfg, counters.clone()).expect("shipper");
        let mut src = source.clone();
        let last = (payloads.len() - 1) as u64;
        let wall = Instant::now();
        rt.block_on(async {
            let done = async {
                while source.acked() != Some(last) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            shipper.run(&mut src, done).await.expect("ship");
        });
        let took = wall.elapsed();
        assert_eq!(counters.snapshot().events_sent as usize, payloads.len());
        assert_eq!(intake.accepted_count(), payloads.len());
        took
    }
}
