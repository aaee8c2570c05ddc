//! Recovery speed and throughput against real HTTPS intakes on 127.0.0.1: how soon
//! shipping resumes after the intake comes back, what a size limit costs, an intake that
//! refuses everything for a while, and several requests in flight.

mod common;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use agent_transport::{MemorySource, TransportConfig};
use common::{config, event, seq_of, ship_until, Action, Intake};

fn push_events(source: &MemorySource, key: &str, range: std::ops::Range<usize>) {
    for i in range {
        source.push(event(key, i));
    }
}

fn sorted_seqs(records: impl IntoIterator<Item = Vec<u8>>) -> Vec<usize> {
    let mut v: Vec<usize> = records.into_iter().map(|p| seq_of(&p)).collect();
    v.sort_unstable();
    v
}

/// The intake goes away (connections refused) for 35 s and comes back. With the
/// default settings, shipping resumes within 15 s of its return (it took up to the
/// 300 s backoff cap before: after 35 s, the next attempt came at about 63 s).
#[test]
fn shipping_resumes_within_15_s_after_the_intake_comes_back() {
    let intake = RefCell::new(agent_testkit::Intake::start().unwrap());
    let mut cfg = TransportConfig::new(intake.borrow().url().parse().unwrap());
    cfg.extra_ca_file = Some(intake.borrow().ca_file().to_path_buf());
    cfg.proxy_from_env = false;
    cfg.batch_max_delay = Duration::from_millis(100);
    cfg.shutdown_grace = Duration::from_millis(500);
    let source = MemorySource::new();
    push_events(&source, "KEY-outage", 0..100);

    let outage = Duration::from_secs(35);
    let back_at = Cell::new(None);
    let phase = Cell::new(0);
    let down_at = Cell::new(Instant::now());
    let (counters, _) = ship_until(cfg, &source, Duration::from_secs(90), || {
        let mut intake = intake.borrow_mut();
        match phase.get() {
            // Delivered; then the intake goes away and more events come.
            0 if intake.record_count() == 100 => {
                intake.stop();
                down_at.set(Instant::now());
                push_events(&source, "KEY-outage", 100..200);
                phase.set(1);
            }
            1 if down_at.get().elapsed() >= outage => {
                intake.restart().unwrap();
                back_at.set(Some(Instant::now()));
                phase.set(2);
            }
            _ => {}
        }
        phase.get() == 2 && intake.record_count() == 200
    });
    let intake = intake.into_inner();
    let back_at = back_at.get().expect("the intake came back");
    let first_after = intake
        .requests()
        .iter()
        .filter(|r| r.at >= back_at && r.status == 200)
        .map(|r| r.at)
        .min()
        .expect("a request after the intake came back");
    let recovery = first_after - back_at;
    println!("recovery after a {outage:?} outage: {recovery:?}");
    assert!(
        recovery < Duration::from_secs(15),
        "shipping resumed {recovery:?} after the intake came back"
    );
    let mut seqs: Vec<usize> = intake
        .records()
        .iter()
        .map(|r| seq_of(&r.payload))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    let c = counters.snapshot();
    assert_eq!(c.failing_since, None, "recovered: {c:?}");
    assert_eq!(c.recoveries, 1);
    assert!(!c.error_is_current(), "{c:?}");
    assert!(c.last_error.is_some());
}

/// An intake that refuses bodies over a size: the first batch costs a refusal and a
/// split; later batches are cut to the accepted size instead of being refused each time
/// (2–3 wasted requests per batch before).
#[test]
fn a_size_limit_is_learned_instead_of_refusing_every_batch() {
    const LIMIT: usize = 9_000; // bytes of event JSON in one request (~95 events)
    let intake = Intake::start(Box::new(|s: &common::server::Seen| {
        if s.records.iter().map(Vec::len).sum::<usize>() > LIMIT {
            Action::Status(413, vec![])
        } else {
            Action::Accept
        }
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-limit", 0..5_000);
    let (counters, _) = ship_until(config(&intake), &source, Duration::from_secs(60), || {
        source.acked() == Some(4_999)
    });
    assert_eq!(
        sorted_seqs(intake.accepted().into_iter().map(|(_, p)| p)),
        (0..5_000).collect::<Vec<_>>()
    );
    let seen = intake.seen();
    let refused = seen.iter().filter(|s| s.status == 413).count();
    let accepted = seen.iter().filter(|s| s.status == 200).count();
    println!("size limit: {accepted} accepted requests, {refused} refused");
    // The first batches (up to 4 in flight) learn the size; then one larger trial now
    // and then. Refusing every batch would be ≥ 2 per 250 events, 40 here.
    assert!(refused <= 8, "{refused} requests refused");
    assert!(
        accepted <= 5_000 / 40,
        "{accepted} requests for 5 000 events"
    );
    assert_eq!(counters.snapshot().rejected, 0);
}

/// An intake that answers 400 or 413 to every request for 20 s is at fault, not the
/// records: nothing is dropped (all of them were before, one by one).
#[test]
fn an_intake_refusing_everything_for_20_s_loses_nothing() {
    let mut first: Option<Instant> = None;
    let intake = Intake::start(Box::new(move |s: &common::server::Seen| {
        let t0 = *first.get_or_insert(s.at);
        let t = s.at.duration_since(t0);
        if t < Duration::from_secs(10) {
            Action::Status(400, vec![])
        } else if t < Duration::from_secs(20) {
            Action::Status(413, vec![])
        } else {
            Action::Accept
        }
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-refusing", 0..600);
    let mut cfg = config(&intake);
    cfg.backoff_max = Duration::from_secs(4);
    let (counters, took) = ship_until(cfg, &source, Duration::from_secs(60), || {
        source.acked() == Some(599)
    });
    assert_eq!(
        sorted_seqs(intake.accepted().into_iter().map(|(_, p)| p)),
        (0..600).collect::<Vec<_>>(),
        "after {took:?}"
    );
    let c = counters.snapshot();
    assert_eq!(c.rejected, 0, "{c:?}");
    assert!(!c.error_is_current(), "{c:?}");
    // Refusals are retried with backoff, not in a tight loop.
    let refused = intake.seen().iter().filter(|s| s.status != 200).count();
    assert!(refused < 120, "{refused} refused requests in 20 s");
}

/// The intake refuses everything for longer than the refusal window: a record refused
/// alone is dropped once the window is over (the bound), one at a time, not all.
#[test]
fn refusals_beyond_the_window_drop_one_record_per_window() {
    let intake = Intake::start(Box::new(|_: &common::server::Seen| {
        Action::Status(400, vec![])
    }));
    let source = MemorySource::new();
    push_events(&source, "KEY-broken", 0..50);
    let mut cfg = config(&intake);
    cfg.backoff_min = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(200);
    cfg.refusal_window = Duration::from_secs(2);
    let (counters, _) = ship_until(cfg, &source, Duration::from_secs(5), || false);
    let rejected = counters.snapshot().rejected;
    assert!((1..=3).contains(&rejected), "{rejected} dropped in 5 s");
    assert!(source.unacked().len() >= 47);
}

/// Several requests in flight: against an intake that takes 100 ms per answer, 4 in
/// flight ship about 4 times faster than 1, and the source is acknowledged in order.
#[test]
fn requests_in_flight_overlap_and_acknowledge_in_order() {
    let run = |in_flight: usize| {
        let intake = Intake::start(Box::new(|_: &common::server::Seen| {
            Action::AcceptAfter(Duration::from_millis(100))
        }));
        let source = MemorySource::new();
        push_events(&source, "KEY-flight", 0..4_000);
        let mut cfg = config(&intake);
        cfg.max_in_flight = in_flight;
        cfg.batch_max_events = 100;
        let (_, took) = ship_until(cfg, &source, Duration::from_secs(60), || {
            source.acked() == Some(3_999)
        });
        assert_eq!(
            sorted_seqs(intake.accepted().into_iter().map(|(_, p)| p)),
            (0..4_000).collect::<Vec<_>>()
        );
        (took, intake.max_concurrent())
    };
    let (one, one_conc) = run(1);
    let (four, four_conc) = run(4);
    println!("40 requests of 100 ms: 1 in flight {one:?}, 4 in flight {four:?}");
    assert_eq!(one_conc, 1);
    assert_eq!(four_conc, 4);
    assert!(four * 2 < one, "1 in flight {one:?}, 4 in flight {four:?}");
}
