//! Acceptance tests against a real HTTPS intake on 127.0.0.1 (hyper + rustls, rcgen
//! certificate trusted through the extra-CA option).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_transport::{MemorySource, SourceRecord};
use common::{config, event, line, seq_of, ship_until, Action, Intake, LogCapture};

fn push_events(source: &MemorySource, key: &str, range: std::ops::Range<usize>) {
    for i in range {
        source.push(event(key, i));
    }
}

/// The sequence numbers the intake accepted under `key`, in arrival order.
fn arrival_order(intake: &Intake, key: &str) -> Vec<usize> {
    intake
        .accepted()
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, p)| seq_of(p))
        .collect()
}

/// The sequence numbers the intake accepted under `key`, sorted: with several requests
/// in flight, batches may arrive in any order, but each record exactly once (a duplicate
/// shows up here twice).
fn accepted_seqs(intake: &Intake, key: &str) -> Vec<usize> {
    let mut seqs = arrival_order(intake, key);
    seqs.sort_unstable();
    seqs
}

#[test]
fn ten_thousand_events_arrive_once_in_order_in_batches_of_at_most_250() {
    let intake = Intake::start(Box::new(|_| Action::Accept));
    let source = MemorySource::new();
    push_events(&source, "KEY-ten-thousand", 0..10_000);
    let (counters, _) = ship_until(config(&intake), &source, Duration::from_secs(60), || {
        source.acked() == Some(9_999)
    });

    assert_eq!(intake.violations(), Vec::<String>::new());
    assert_eq!(
        accepted_seqs(&intake, "KEY-ten-thousand"),
        (0..10_000).collect::<Vec<_>>()
    );
    let seen = intake.seen();
    assert!(seen
        .iter()
        .all(|s| s.path == "/batch" && s.records.len() <= 250));
    assert_eq!(seen.len(), 40, "full batches of 250");
    assert!(source.unacked().is_empty());
    let c = counters.snapshot();
    assert_eq!(c.events_sent, 10_000);
    assert_eq!(c.requests, 40);
    assert_eq!(c.retries, 0);
    assert!(
        c.bytes_gzip > 0 && c.bytes_gzip * 3 < c.bytes_plain,
        "{c:?}"
    );
    assert_eq!(
        c.bytes_gzip,
        seen.iter().map(|s| s.wire_len as u64).sum::<u64>()
    );
    assert!(c.last_success.is_some());
}

#[test]
fn mixed_keys_go_to_array_and_log_lines_to_plain_batch_as_raw_bytes() {
    let intake = Intake::start(Box::new(|_| Action::Accept));
    let source = MemorySource::new();
    let raw: &[&[u8]] = &[
        b"GET / HTTP/1.1 200",
        b"caf\xe9 latin-1 \xff",
        b"{\"not\":\"parsed\"}",
    ];
    for i in 0..30 {
        source.push(event(if i % 2 == 0 { "KEY-A" } else { "KEY-B" }, i));
        source.push(line("KEY-LOGS", raw[i % raw.len()]));
    }
    let mut cfg = config(&intake);
    cfg.batch_max_events = 20;
    // One request at a time: the lines arrive in the buffer's order.
    cfg.max_in_flight = 1;
    ship_until(cfg, &source, Duration::from_secs(30), || {
        source.acked() == Some(59)
    });

    assert_eq!(intake.violations(), Vec::<String>::new());
    let seen = intake.seen();
    assert!(seen.iter().any(|s| s.path == "/array"));
    assert!(
        seen.iter().all(|s| s.path != "/batch"),
        "every batch mixes keys"
    );
    let plain: Vec<Vec<u8>> = seen
        .iter()
        .filter(|s| s.path == "/plain/batch")
        .flat_map(|s| s.records.clone())
        .collect();
    let expected: Vec<Vec<u8>> = (0..30).map(|i| raw[i % raw.len()].to_vec()).collect();
    assert_eq!(plain, expected, "lines sent byte for byte, in order");
    assert_eq!(
        accepted_seqs(&intake, "KEY-A"),
        (0..30).step_by(2).collect::<Vec<_>>()
    );
    assert_eq!(
        accepted_seqs(&intake, "KEY-B"),
        (1..30).step_by(2).collect::<Vec<_>>()
    );
}

#[test]
fn lone_event_is_sent_after_five_seconds() {
    let intake = Intake::start(Box::new(|_| Action::Accept));
    let source = MemorySource::new();
    let mut cfg = config(&intake);
    cfg.batch_max_delay = Duration::from_secs(5);
    let pushed = Instant::now();
    source.push(event("KEY-lone", 1));
    ship_until(cfg, &source, Duration::from_secs(15), || {
        source.acked() == Some(0)
    });
    let seen = intake.seen();
    assert_eq!(seen.len(), 1);
    let waited = seen[0].at.duration_since(pushed);
    assert!(
        waited >= Duration::from_millis(4_900) && waited <= Duration::from_secs(7),
        "sent after {waited:?}"
    );
}

#[test]
fn intake_down_for_20_s_then_recovery_loses_nothing_and_backs_off() {
    let mut first: Option<Instant> = None;
    let intake = Intake::start(Box::new(move |s: &common::server::Seen| {
        let t0 = *first.get_or_insert(s.at);
        if s.at.duration_since(t0) < Duration::from_secs(20) {
            Action::Status(503, vec![])
        } else {
            Action::Accept
        }
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-outage", 0..600);
    let mut cfg = config(&intake);
    // The nominal 1 s, 2 s, 4 s, 8 s, 8 s ... keeps the test near 25 s.
    cfg.backoff_max = Duration::from_secs(8);
    let (counters, _) = ship_until(cfg, &source, Duration::from_secs(60), || {
        source.acked() == Some(599)
    });

    assert_eq!(
        accepted_seqs(&intake, "KEY-outage"),
        (0..600).collect::<Vec<_>>()
    );
    let seen = intake.seen();
    // The requests in flight when the intake failed fail together (one round); after
    // that, one request at a time.
    let mut failed: Vec<Instant> = Vec::new();
    for s in seen.iter().filter(|s| s.status == 503) {
        if failed
            .last()
            .is_none_or(|t| s.at.duration_since(*t) > Duration::from_millis(300))
        {
            failed.push(s.at);
        }
    }
    let failed_requests = seen.iter().filter(|s| s.status == 503).count();
    assert!(failed.len() >= 4, "{} failed attempts", failed.len());
    let gaps: Vec<Duration> = failed.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(900), "{gaps:?}");
    assert!(
        gaps[1] > gaps[0] && gaps[2] > gaps[1],
        "backoff grows: {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_millis(8_500)),
        "capped: {gaps:?}"
    );
    let c = counters.snapshot();
    assert_eq!(c.retries as usize, failed_requests);
    assert!(failed_requests <= failed.len() + 3, "{failed_requests}");
    assert_eq!(c.events_sent, 600);
}

#[test]
fn retry_after_is_honoured() {
    let intake = Intake::start(Box::new(|s: &common::server::Seen| {
        if s.index == 0 {
            Action::Status(429, vec![("retry-after", "2".to_owned())])
        } else {
            Action::Accept
        }
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-429", 0..10);
    ship_until(config(&intake), &source, Duration::from_secs(20), || {
        source.acked() == Some(9)
    });
    let seen = intake.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(2) && gap < Duration::from_secs(4),
        "{gap:?}"
    );
    assert_eq!(
        accepted_seqs(&intake, "KEY-429"),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn too_large_requests_are_split() {
    let intake = Intake::start(Box::new(|s: &common::server::Seen| {
        if s.records.len() > 70 {
            Action::Status(413, vec![])
        } else {
            Action::Accept
        }
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-413", 0..250);
    let (counters, _) = ship_until(config(&intake), &source, Duration::from_secs(30), || {
        source.acked() == Some(249)
    });
    assert_eq!(
        accepted_seqs(&intake, "KEY-413"),
        (0..250).collect::<Vec<_>>()
    );
    let seen = intake.seen();
    assert!(seen.iter().any(|s| s.status == 413));
    assert!(seen
        .iter()
        .filter(|s| s.status == 200)
        .all(|s| s.records.len() <= 70));
    assert_eq!(counters.snapshot().rejected, 0);
}

#[test]
fn one_event_rejected_with_400_is_the_only_one_dropped() {
    let intake = Intake::start(Box::new(|s: &common::server::Seen| {
        if s.records.iter().any(|r| seq_of(r) == 137) {
            Action::Status(400, vec![])
        } else {
            Action::Accept
        }
    }));
    let (logs, _guard) = LogCapture::install();
    let source = MemorySource::new();
    push_events(&source, "KEY-with-bad-event", 0..250);
    let (counters, _) = ship_until(config(&intake), &source, Duration::from_secs(30), || {
        source.acked() == Some(249)
    });
    let expected: Vec<usize> = (0..250).filter(|&i| i != 137).collect();
    assert_eq!(accepted_seqs(&intake, "KEY-with-bad-event"), expected);
    let c = counters.snapshot();
    assert_eq!(c.rejected, 1);
    assert_eq!(c.events_sent, 249);
    assert!(c.last_error.unwrap().contains("...vent"));
    let text = logs.text();
    assert!(text.contains("refused a record for good"), "{text}");
    // Bisection: log2(250) ≈ 8 levels, not one request per event.
    assert!(intake.seen().len() < 40, "{} requests", intake.seen().len());
}

#[test]
fn revoked_key_keeps_its_records_without_blocking_other_keys() {
    let revoked_ok = Arc::new(AtomicBool::new(false));
    let flag = revoked_ok.clone();
    let intake = Intake::start(Box::new(move |s: &common::server::Seen| {
        if s.keys.iter().any(|k| k == "KEY-REVOKED-xyz9") && !flag.load(Ordering::SeqCst) {
            Action::Status(401, vec![])
        } else {
            Action::Accept
        }
    }));
    let (logs, _guard) = LogCapture::install();
    let source = MemorySource::new();
    for i in 0..200 {
        let key = if i % 2 == 0 {
            "KEY-good"
        } else {
            "KEY-REVOKED-xyz9"
        };
        source.push(event(key, i));
    }
    let mut cfg = config(&intake);
    cfg.batch_max_events = 50;
    cfg.auth_retry_interval = Duration::from_secs(1);

    // Phase 1 (4 s): the good key flows, the revoked key's records are kept and retried.
    // Phase 2: the key is accepted again and everything is delivered once, in order.
    let start = Instant::now();
    let phase1 = std::sync::Mutex::new(None);
    ship_until(cfg, &source, Duration::from_secs(30), || {
        if !revoked_ok.load(Ordering::SeqCst) && start.elapsed() >= Duration::from_secs(4) {
            *phase1.lock().unwrap() = Some((
                accepted_seqs(&intake, "KEY-good"),
                accepted_seqs(&intake, "KEY-REVOKED-xyz9"),
                source.acked(),
                source.unacked().len(),
                // Probes: one record each, once the key is held (the requests in flight
                // when the first refusal came back are refused too, all at once).
                intake
                    .seen()
                    .iter()
                    .filter(|s| s.status == 401 && s.records.len() == 1)
                    .count(),
            ));
            revoked_ok.store(true, Ordering::SeqCst);
        }
        source.acked() == Some(199)
    });
    let good: Vec<usize> = (0..200).step_by(2).collect();
    let (mut good1, revoked1, acked1, unacked1, probes) = phase1.lock().unwrap().take().unwrap();
    good1.sort_unstable();
    assert_eq!(good1, good, "other keys are not blocked");
    assert!(revoked1.is_empty());
    assert_eq!(
        acked1,
        Some(0),
        "acknowledged only up to the first revoked record"
    );
    assert_eq!(unacked1, 199, "nothing lost");
    assert!(
        (2..=8).contains(&probes),
        "retried slowly: {probes} refused requests"
    );
    let text = logs.text();
    assert!(
        text.contains("ERROR") && text.contains("...xyz9") && text.contains("401"),
        "{text}"
    );
    assert!(
        !text.contains("KEY-REVOKED-xyz9"),
        "the full key is never logged"
    );

    assert_eq!(accepted_seqs(&intake, "KEY-good"), good);
    assert_eq!(
        accepted_seqs(&intake, "KEY-REVOKED-xyz9"),
        (1..200).step_by(2).collect::<Vec<_>>()
    );
    assert_eq!(intake.violations(), Vec::<String>::new());
}

#[test]
fn revoked_key_over_the_memory_budget_is_moved_to_the_tail_not_lost() {
    let intake = Intake::start(Box::new(|s: &common::server::Seen| {
        if s.keys.iter().any(|k| k == "KEY-dead") {
            Action::Status(403, vec![])
        } else {
            Action::Accept
        }
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-dead", 0..20);
    push_events(&source, "KEY-alive", 20..520);
    let mut cfg = config(&intake);
    cfg.max_pending_records = 60;
    cfg.auth_retry_interval = Duration::from_secs(60);
    let alive_done = || accepted_seqs(&intake, "KEY-alive").len() == 500;
    ship_until(cfg, &source, Duration::from_secs(30), alive_done);
    assert_eq!(
        accepted_seqs(&intake, "KEY-alive"),
        (20..520).collect::<Vec<_>>()
    );
    let mut dead: Vec<usize> = source
        .unacked()
        .iter()
        .map(|SourceRecord { bytes, .. }| {
            let r = agent_pipeline::RoutedRecord::decode(bytes).unwrap();
            assert_eq!(r.intake_key, "KEY-dead");
            seq_of(r.payload)
        })
        .collect();
    dead.sort_unstable();
    assert_eq!(
        dead,
        (0..20).collect::<Vec<_>>(),
        "the refused key's records are all kept"
    );
}

#[test]
fn connection_reset_mid_request_is_retried_without_loss() {
    let intake = Intake::start(Box::new(|s: &common::server::Seen| {
        if s.index % 3 == 0 {
            Action::Reset
        } else {
            Action::Accept
        }
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-reset", 0..1000);
    let mut cfg = config(&intake);
    cfg.batch_max_events = 100;
    cfg.backoff_min = Duration::from_millis(100);
    let (counters, _) = ship_until(cfg, &source, Duration::from_secs(60), || {
        source.acked() == Some(999)
    });
    assert_eq!(
        accepted_seqs(&intake, "KEY-reset"),
        (0..1000).collect::<Vec<_>>()
    );
    let resets = intake.seen().iter().filter(|s| s.status == 0).count();
    assert!(resets >= 5, "{resets}");
    let c = counters.snapshot();
    assert!(c.retries >= 1, "{c:?}");
    assert!(c.last_error.is_some());
}

#[test]
fn untrusted_certificate_is_refused() {
    let trusted = Intake::start(Box::new(|_| Action::Accept));
    let rogue = Intake::start_with(
        common::server::TestPki::new("rogue").expect("test PKI"),
        Box::new(|_| Action::Accept),
    );
    let mut cfg = config(&trusted);
    cfg.intake = rogue.url().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = agent_transport::IntakeClient::new(&cfg).unwrap();
    let err = rt
        .block_on(client.post(agent_transport::IntakePost {
            path: "/batch",
            content_type: "application/json",
            header: None,
            body: bytes::Bytes::from_static(b"x"),
        }))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, agent_transport::TransportError::Tls { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("certificate") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    assert!(rogue.seen().is_empty());

    // The shipper keeps the records and reports the error.
    let source = MemorySource::new();
    push_events(&source, "KEY-tls", 0..5);
    let (counters, _) = ship_until(cfg, &source, Duration::from_secs(2), || false);
    assert!(rogue.seen().is_empty());
    assert_eq!(source.unacked().len(), 5);
    assert!(counters
        .snapshot()
        .last_error
        .unwrap()
        .contains("certificate"));
}

#[test]
fn request_timeout_is_retried_without_loss() {
    let intake = Intake::start(Box::new(|s: &common::server::Seen| {
        if s.index == 0 {
            Action::Stall(Duration::from_secs(4))
        } else {
            Action::Accept
        }
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-slow", 0..20);
    let mut cfg = config(&intake);
    cfg.request_timeout = Duration::from_secs(1);
    let (counters, elapsed) = ship_until(cfg, &source, Duration::from_secs(20), || {
        source.acked() == Some(19)
    });
    assert_eq!(
        accepted_seqs(&intake, "KEY-slow"),
        (0..20).collect::<Vec<_>>()
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "did not wait for the stalled answer: {elapsed:?}"
    );
    let c = counters.snapshot();
    assert_eq!(c.retries, 1);
    assert!(c
        .last_error
        .unwrap()
        .contains("no answer from the intake within 1s"));
}

#[test]
fn shutdown_sends_what_is_pending_without_waiting_for_the_batch_delay() {
    let intake = Intake::start(Box::new(|_| Action::Accept));
    let source = MemorySource::new();
    push_events(&source, "KEY-shutdown", 0..3);
    let mut cfg = config(&intake);
    cfg.batch_max_delay = Duration::from_secs(60);
    cfg.shutdown_grace = Duration::from_secs(5);
    // "Done" right away: the shutdown future resolves on the first poll.
    let (_, elapsed) = ship_until(cfg, &source, Duration::from_secs(30), || true);
    assert_eq!(accepted_seqs(&intake, "KEY-shutdown"), vec![0, 1, 2]);
    assert_eq!(source.acked(), Some(2));
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn one_request_in_flight_keeps_the_buffer_order_through_retries() {
    let intake = Intake::start(Box::new(|s: &common::server::Seen| {
        if s.index % 3 == 0 {
            Action::Reset
        } else {
            Action::Accept
        }
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-order", 0..1000);
    let mut cfg = config(&intake);
    cfg.batch_max_events = 100;
    cfg.backoff_min = Duration::from_millis(50);
    cfg.max_in_flight = 1;
    ship_until(cfg, &source, Duration::from_secs(60), || {
        source.acked() == Some(999)
    });
    assert_eq!(
        arrival_order(&intake, "KEY-order"),
        (0..1000).collect::<Vec<_>>()
    );
}
