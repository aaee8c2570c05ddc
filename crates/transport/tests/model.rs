//! Property test of the shipper as a whole: random record mixes (keys, events and log
//! lines) against an intake answering random faults. Whatever happens, every record is
//! delivered exactly once, in order per key and kind (events and log lines of one key
//! travel in different requests, so only each stream keeps its order; a refused key's
//! records moved to the tail of the source may come after that key's later records), except the ones the intake rejects for good
//! (400), which alone are dropped and counted; and the source ends fully acknowledged.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_transport::MemorySource;
use common::{config, event, line, ship_until, Action, Intake};
use proptest::prelude::*;

const KEYS: [&str; 3] = ["KEY-A", "KEY-B", "KEY-REVOKED"];

fn seq_of_any(payload: &[u8]) -> usize {
    if let Some(rest) = payload.strip_prefix(b"line ") {
        return std::str::from_utf8(rest).unwrap().parse().unwrap();
    }
    common::seq_of(payload)
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Ok,
    Unavailable,
    TooMany,
    Reset,
    TooLarge,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => Just(Fault::Ok),
        1 => Just(Fault::Unavailable),
        1 => Just(Fault::TooMany),
        1 => Just(Fault::Reset),
        1 => Just(Fault::TooLarge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_record_is_delivered_once_in_order_or_rejected(
        records in prop::collection::vec((0..3usize, any::<bool>()), 1..300),
        bad in prop::collection::btree_set(0..300usize, 0..4),
        faults in prop::collection::vec(fault(), 0..25),
        revoked_for in 0..12usize,
        batch in 1..120usize,
    ) {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let bad_in_script = bad.clone();
        let intake = Intake::start(Box::new(move |s: &common::server::Seen| {
            let i = counter.fetch_add(1, Ordering::SeqCst);
            if i < revoked_for && s.keys.iter().any(|k| k == "KEY-REVOKED") {
                return Action::Status(401, vec![]);
            }
            if s.records.iter().any(|r| bad_in_script.contains(&seq_of_any(r))) {
                return Action::Status(400, vec![]);
            }
            match faults.get(i).copied().unwrap_or(Fault::Ok) {
                Fault::Ok => Action::Accept,
                Fault::Unavailable => Action::Status(503, vec![]),
                Fault::TooMany => Action::Status(429, vec![("retry-after", "0".to_owned())]),
                Fault::Reset => Action::Reset,
                Fault::TooLarge if s.records.len() > 1 => Action::Status(413, vec![]),
                Fault::TooLarge => Action::Accept,
            }
        }));
        let source = MemorySource::new();
        let mut expected: HashMap<(&str, bool), Vec<usize>> = HashMap::new();
        let mut rejected = BTreeSet::new();
        for (seq, (k, is_line)) in records.iter().enumerate() {
            let key = KEYS[*k];
            if *is_line {
                source.push(line(key, format!("line {seq}").as_bytes()));
            } else {
                source.push(event(key, seq));
            }
            if bad.contains(&seq) {
                rejected.insert(seq);
            } else {
                expected.entry((key, *is_line)).or_default().push(seq);
            }
        }
        let mut cfg = config(&intake);
        cfg.batch_max_events = batch;
        cfg.batch_max_delay = Duration::from_millis(20);
        cfg.backoff_min = Duration::from_millis(10);
        cfg.backoff_max = Duration::from_millis(40);
        cfg.auth_retry_interval = Duration::from_millis(50);
        cfg.max_pending_records = 64;
        let all_acked = || source.unacked().is_empty();
        let (counters, took) = ship_until(cfg, &source, Duration::from_secs(30), all_acked);

        prop_assert!(all_acked(), "everything acknowledged within {:?}", took);
        prop_assert_eq!(intake.violations(), Vec::<String>::new());
        let mut got: HashMap<(&str, bool), Vec<usize>> = HashMap::new();
        for (k, p) in intake.accepted() {
            let key = KEYS.iter().find(|x| **x == k).copied().unwrap();
            got.entry((key, p.starts_with(b"line "))).or_default().push(seq_of_any(&p));
        }
        for ((key, _), seqs) in got.iter_mut() {
            if *key == "KEY-REVOKED" {
                seqs.sort_unstable();
            }
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(counters.snapshot().rejected as usize, rejected.len());
    }
}
