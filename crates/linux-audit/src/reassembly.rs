//! Reassembly of records into events.
//!
//! The kernel writes one event as several records sharing a serial, closed by an `EOE`
//! record; records of concurrent events interleave, and some events (records emitted outside
//! a syscall, user-space messages) have no `EOE`. The reassembler groups by serial, completes
//! on `EOE`, at once for single-record user-space types, or after `timeout` without new
//! records, and bounds memory by completing the oldest events beyond `max_in_flight`.
//!
//! Serials increase by one per event, so a jump means events were lost (kernel backlog
//! overflow, rate limit) unless the missing serials show up late; serials still missing
//! after `timeout` are counted in [`Stats::lost`]. Serials wrap around at `u32::MAX`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::event::AuditEvent;
use crate::msgtype;
use crate::record::AuditRecord;

/// Reassembler settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long an event without `EOE` waits for more records.
    pub timeout: Duration,
    /// Events in flight beyond this many complete oldest first.
    pub max_in_flight: usize,
    /// Records of one event beyond this many are dropped (counted in `dropped_records`).
    pub max_records_per_event: usize,
    /// Missing serials tracked at most; larger gaps are counted lost at once.
    pub max_tracked_gaps: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Duration::from_millis(500),
            max_in_flight: 1024,
            max_records_per_event: 4096,
            max_tracked_gaps: 4096,
        }
    }
}

/// Counters of the reassembler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records pushed.
    pub records: u64,
    /// Events emitted.
    pub events: u64,
    /// Events emitted without an `EOE` (timeout, eviction, flush).
    pub incomplete_events: u64,
    /// Events completed early because more than `max_in_flight` were pending.
    pub evicted_events: u64,
    /// Serials never seen: lost events.
    pub lost: u64,
    /// Serials that arrived after later serials (reordered, not lost).
    pub out_of_order: u64,
    /// Records for an event already emitted (emitted again as their own event).
    pub late_records: u64,
    /// Records dropped because an event exceeded `max_records_per_event`.
    pub dropped_records: u64,
}

#[derive(Debug)]
struct Pending {
    event: AuditEvent,
    last_seen: Instant,
    /// Position in `order` for lazy deletion.
    generation: u64,
}

/// Groups records into events; see the module documentation.
#[derive(Debug)]
pub struct Reassembler {
    cfg: Config,
    pending: SerialMap<Pending>,
    /// Creation order of pending events (serial, generation); stale entries are skipped.
    order: VecDeque<(u32, u64)>,
    next_generation: u64,
    /// Highest serial seen (wrap-aware).
    max_serial: Option<u32>,
    /// Serials skipped over, with when the gap was noticed.
    missing: SerialMap<Instant>,
    /// Recently emitted serials, to tell late records from new events.
    recent: VecDeque<u32>,
    recent_set: SerialSet,
    stats: Stats,
}

const RECENT: usize = 4096;

/// Serials are sequential kernel counters, not attacker-chosen keys, and the maps are
/// bounded: a multiplicative hash is enough and several times cheaper than SipHash.
#[derive(Debug, Default, Clone, Copy)]
struct SerialHasher(u64);

impl std::hash::Hasher for SerialHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type SerialMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<SerialHasher>>;
type SerialSet = std::collections::HashSet<u32, std::hash::BuildHasherDefault<SerialHasher>>;

/// `a` is after `b` in wrapping serial order.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl Reassembler {
    /// A reassembler with the given settings.
    pub fn new(cfg: Config) -> Self {
        Reassembler {
            cfg: Config {
                max_in_flight: cfg.max_in_flight.max(1),
                max_records_per_event: cfg.max_records_per_event.max(1),
                ..cfg
            },
            pending: SerialMap::default(),
            order: VecDeque::new(),
            next_generation: 0,
            max_serial: None,
            missing: SerialMap::default(),
            recent: VecDeque::new(),
            recent_set: Default::default(),
            stats: Stats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Events currently waiting for more records.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Adds a record, timing it now; returns the events it completed.
    pub fn push(&mut self, record: AuditRecord) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        self.push_at(record, Instant::now(), &mut out);
        out
    }

    /// Adds a record received at `now`, appending completed events to `out`.
    pub fn push_at(&mut self, record: AuditRecord, now: Instant, out: &mut Vec<AuditEvent>) {
        self.stats.records += 1;
        let serial = record.serial;
        self.track_serial(serial, now);
        let t = record.record_type;
        if t == msgtype::AUDIT_EOE {
            if let Some(p) = self.pending.remove(&serial) {
                self.emit(p.event, true, out);
            }
            return;
        }
        if !self.pending.contains_key(&serial) && self.recent_set.contains(&serial) {
            self.stats.late_records += 1;
        }
        if msgtype::is_standalone(t) && !self.pending.contains_key(&serial) {
            let event = AuditEvent {
                serial,
                timestamp: record.timestamp,
                records: vec![record],
                complete: true,
            };
            self.emit(event, true, out);
            return;
        }
        let max_records = self.cfg.max_records_per_event;
        match self.pending.get_mut(&serial) {
            Some(p) => {
                p.last_seen = now;
                if p.event.records.len() < max_records {
                    p.event.records.push(record);
                } else {
                    self.stats.dropped_records += 1;
                }
            }
            None => {
                let generation = self.next_generation;
                self.next_generation += 1;
                self.order.push_back((serial, generation));
                self.pending.insert(
                    serial,
                    Pending {
                        event: AuditEvent {
                            serial,
                            timestamp: record.timestamp,
                            records: vec![record],
                            complete: false,
                        },
                        last_seen: now,
                        generation,
                    },
                );
                while self.pending.len() > self.cfg.max_in_flight {
                    if let Some(p) = self.pop_oldest() {
                        self.stats.evicted_events += 1;
                        self.emit(p.event, false, out);
                    }
                }
            }
        }
    }

    /// Completes events idle for `timeout` and counts serials missing for that long as lost.
    pub fn tick(&mut self, now: Instant) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        self.tick_into(now, &mut out);
        out
    }

    /// [`Reassembler::tick`], appending to `out`.
    pub fn tick_into(&mut self, now: Instant, out: &mut Vec<AuditEvent>) {
        let timeout = self.cfg.timeout;
        let mut expired: Vec<(u64, u32)> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) >= timeout)
            .map(|(&s, p)| (p.generation, s))
            .collect();
        expired.sort_unstable();
        for (_, s) in expired {
            if let Some(p) = self.pending.remove(&s) {
                self.emit(p.event, false, out);
            }
        }
        let before = self.missing.len();
        self.missing
            .retain(|_, &mut seen| now.saturating_duration_since(seen) < timeout);
        self.stats.lost += (before - self.missing.len()) as u64;
        if self.pending.is_empty() {
            self.order.clear();
        }
    }

    /// Completes everything pending (end of input) and counts all missing serials as lost.
    pub fn flush(&mut self) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        while let Some(p) = self.pop_oldest() {
            self.emit(p.event, false, &mut out);
        }
        self.stats.lost += self.missing.len() as u64;
        self.missing.clear();
        out
    }

    fn pop_oldest(&mut self) -> Option<Pending> {
        while let Some((s, g)) = self.order.pop_front() {
            if self.pending.get(&s).is_some_and(|p| p.generation == g) {
                return self.pending.remove(&s);
            }
        }
        None
    }

    fn track_serial(&mut self, serial: u32, now: Instant) {
        let Some(max) = self.max_serial else {
            self.max_serial = Some(serial);
            return;
        };
        if after(serial, max) {
            let gap = serial.wrapping_sub(max) - 1;
            if gap as usize + self.missing.len() > self.cfg.max_tracked_gaps {
                self.stats.lost += u64::from(gap);
            } else {
                let mut s = max.wrapping_add(1);
                while s != serial {
                    self.missing.insert(s, now);
                    s = s.wrapping_add(1);
                }
            }
            self.max_serial = Some(serial);
        } else if self.missing.remove(&serial).is_some() {
            self.stats.out_of_order += 1;
        }
    }

    fn emit(&mut self, mut event: AuditEvent, complete: bool, out: &mut Vec<AuditEvent>) {
        event.complete = complete;
        self.stats.events += 1;
        if !complete {
            self.stats.incomplete_events += 1;
        }
        if self.recent_set.insert(event.serial) {
            self.recent.push_back(event.serial);
            if self.recent.len() > RECENT {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
        }
        out.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AuditTime;
    use proptest::prelude::*;

    fn rec(t: u16, serial: u32, n: usize) -> AuditRecord {
        AuditRecord::with_fields(t, AuditTime::default(), serial, &[("n", &n.to_string())])
    }

    #[test]
    fn eoe_completes_and_standalone_user_records_pass_through() {
        let mut r = Reassembler::default();
        assert!(r.push(rec(msgtype::AUDIT_SYSCALL, 1, 0)).is_empty());
        assert!(r.push(rec(msgtype::AUDIT_CWD, 1, 1)).is_empty());
        let user = r.push(rec(1112, 2, 0));
        assert_eq!(user.len(), 1);
        assert!(user[0].complete);
        let done = r.push(rec(msgtype::AUDIT_EOE, 1, 2));
        assert_eq!(done.len(), 1);
        assert!(done[0].complete);
        assert_eq!(done[0].records.len(), 2, "EOE itself is not kept");
        assert_eq!(r.in_flight(), 0);
        // A record after its event's EOE is late: counted and emitted on its own.
        r.push(rec(msgtype::AUDIT_PATH, 1, 3));
        assert_eq!(r.stats().late_records, 1);
        assert_eq!(r.flush().len(), 1);
    }

    #[test]
    fn in_flight_is_bounded_oldest_first() {
        let mut r = Reassembler::new(Config {
            max_in_flight: 3,
            max_records_per_event: 2,
            ..Config::default()
        });
        let mut out = Vec::new();
        let now = Instant::now();
        for s in 0..10 {
            r.push_at(rec(msgtype::AUDIT_SYSCALL, s, 0), now, &mut out);
            assert!(r.in_flight() <= 3);
        }
        assert_eq!(
            out.iter().map(|e| e.serial).collect::<Vec<_>>(),
            (0..7).collect::<Vec<_>>()
        );
        assert_eq!(r.stats().evicted_events, 7);
        for n in 0..5 {
            r.push_at(rec(msgtype::AUDIT_PATH, 9, n), now, &mut out);
        }
        assert_eq!(r.stats().dropped_records, 4);
    }

    proptest! {
        /// Any interleaving of events, each closed by EOE, reassembles every event exactly
        /// with its records in order, and reordered serials are not counted lost.
        #[test]
        fn interleaved_events_reassemble_exactly(
            sizes in proptest::collection::vec(1usize..6, 1..40),
            picks in proptest::collection::vec(any::<u16>(), 0..400),
            base in any::<u32>(),
        ) {
            // Queue per event: its records then EOE.
            let mut queues: Vec<Vec<AuditRecord>> = sizes.iter().enumerate().map(|(i, &n)| {
                let s = base.wrapping_add(i as u32);
                let mut q: Vec<_> = (0..n).map(|k| rec(msgtype::AUDIT_PATH, s, k)).collect();
                q.push(rec(msgtype::AUDIT_EOE, s, n));
                q.reverse();
                q
            }).collect();
            let mut r = Reassembler::default();
            let now = Instant::now();
            let mut out = Vec::new();
            let mut picks = picks.into_iter();
            loop {
                let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
                if live.is_empty() { break; }
                let i = live[picks.next().map_or(0, usize::from) % live.len()];
                if let Some(x) = queues[i].pop() {
                    r.push_at(x, now, &mut out);
                }
            }
            prop_assert_eq!(out.len(), sizes.len());
            for e in &out {
                let i = e.serial.wrapping_sub(base) as usize;
                prop_assert!(e.complete);
                let ns: Vec<String> = e.records.iter().map(|x| x.raw("n").unwrap_or_default().to_owned()).collect();
                let want: Vec<String> = (0..sizes[i]).map(|k| k.to_string()).collect();
                prop_assert_eq!(ns, want);
            }
            prop_assert_eq!(r.in_flight(), 0);
            r.flush();
            prop_assert_eq!(r.stats().lost, 0);
        }
    }
}
