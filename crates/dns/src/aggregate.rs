//! Repeats of the same answer within a short window become one event with
//! `sekoiaio.repeat.count`: a local stub resolver (systemd-resolved, dnsmasq) relays the
//! upstream answer, so the host sees each answer twice; a program that resolves the same
//! name in a loop is also one event per window, with its count.
//!
//! Two answers are "the same" when their question (name, type, class), response code and
//! answer records (name, type, data; TTLs aside, order aside) are. An event is held until
//! its window ends, then emitted once.

use std::collections::{HashMap, VecDeque};

use agent_event::Event;

use crate::message::set_repeat_count;

/// Where decoded events go: a `Vec<Event>`, or a `Vec<Box<Event>>` (what the pipeline's
/// sink takes), which spares a copy of the large [`Event`].
pub trait EventOut {
    /// Takes one event.
    fn put(&mut self, event: Box<Event>);
    /// Events taken so far (the length of the vector).
    fn count(&self) -> usize;
}

impl EventOut for Vec<Event> {
    fn put(&mut self, event: Box<Event>) {
        self.push(*event);
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl EventOut for Vec<Box<Event>> {
    fn put(&mut self, event: Box<Event>) {
        self.push(event);
    }
    fn count(&self) -> usize {
        self.len()
    }
}

#[derive(Debug)]
struct Pending {
    event: Box<Event>,
    count: u64,
    deadline_ms: u64,
}

/// Events held for their window.
#[derive(Debug)]
pub struct Aggregator {
    window_ms: u64,
    max_pending: usize,
    pending: HashMap<String, Pending>,
    /// Keys in the order their windows end (windows all have the same length, and time
    /// only moves forward), so the due ones are at the front.
    order: VecDeque<(u64, String)>,
}

impl Aggregator {
    /// Repeats within `window_ms` of the first are counted in it; at most `max_pending`
    /// distinct answers are held (the oldest is emitted early beyond that).
    pub fn new(window_ms: u64, max_pending: usize) -> Aggregator {
        Aggregator {
            window_ms,
            max_pending: max_pending.max(1),
            pending: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Events held now.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes one event seen at `now_ms`; returns whether it was a repeat. Events whose
    /// window ended are appended to `out`.
    pub fn push(&mut self, event: Box<Event>, now_ms: u64, out: &mut impl EventOut) -> bool {
        self.flush_due(now_ms, out);
        let key = answer_key(&event);
        if let Some(p) = self.pending.get_mut(&key) {
            p.count += 1;
            // Keep the copy that names the process (the stub's answer to the program,
            // rather than the upstream's answer to the stub).
            if p.event.process.pid.is_none() && event.process.pid.is_some() {
                let count = p.count;
                let deadline_ms = p.deadline_ms;
                *p = Pending {
                    event,
                    count,
                    deadline_ms,
                };
            }
            return true;
        }
        if self.window_ms == 0 {
            let mut event = event;
            set_repeat_count(&mut event, 1);
            out.put(event);
            return false;
        }
        while self.pending.len() >= self.max_pending {
            // Full: the oldest goes out before its window ends.
            let Some((deadline, key)) = self.order.pop_front() else {
                break;
            };
            self.take(deadline, &key, out);
        }
        let deadline_ms = now_ms.saturating_add(self.window_ms);
        self.order.push_back((deadline_ms, key.clone()));
        self.pending.insert(
            key,
            Pending {
                event,
                count: 1,
                deadline_ms,
            },
        );
        false
    }

    /// Emits the pending event of `key` if it is the one whose window ends at `deadline`.
    fn take(&mut self, deadline: u64, key: &str, out: &mut impl EventOut) {
        if self
            .pending
            .get(key)
            .is_some_and(|p| p.deadline_ms == deadline)
        {
            if let Some(p) = self.pending.remove(key) {
                out.put(finish(p));
            }
        }
    }

    /// Appends the events whose window ended by `now_ms`, oldest first.
    pub fn flush_due(&mut self, now_ms: u64, out: &mut impl EventOut) {
        while let Some((deadline, _)) = self.order.front() {
            if *deadline > now_ms {
                break;
            }
            if let Some((deadline, key)) = self.order.pop_front() {
                self.take(deadline, &key, out);
            }
        }
    }

    /// Appends every held event (shutdown, end of a replay), oldest first.
    pub fn flush_all(&mut self, out: &mut impl EventOut) {
        while let Some((deadline, key)) = self.order.pop_front() {
            self.take(deadline, &key, out);
        }
        // Nothing is left unless the clock went backwards; emit that too.
        let mut rest: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        rest.sort_by_key(|p| p.deadline_ms);
        for p in rest {
            out.put(finish(p));
        }
    }
}

fn finish(p: Pending) -> Box<Event> {
    let mut e = p.event;
    set_repeat_count(&mut e, p.count);
    e
}

fn answer_key(e: &Event) -> String {
    let d = &e.dns;
    let mut answers: Vec<String> = d
        .answers
        .iter()
        .map(|a| format!("{}\u{1}{}\u{1}{}", a.name, a.record_type, a.data))
        .collect();
    answers.sort_unstable();
    format!(
        "{}\u{2}{}\u{2}{}\u{2}{}\u{2}{}",
        d.question.name,
        d.question.record_type,
        d.question.class,
        d.response_code,
        answers.join("\u{3}")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::repeat_count;
    use agent_event::{DnsAnswer, Timestamp};

    fn ev(name: &str, ip: &str, ttl: u64) -> Box<Event> {
        Box::new(Event::dns_query(
            Timestamp::from_unix(0, 0),
            name,
            vec![DnsAnswer {
                name: name.into(),
                record_type: "A".into(),
                data: ip.into(),
                ttl: Some(ttl),
                ..DnsAnswer::default()
            }],
        ))
    }

    #[test]
    fn repeats_in_the_window_are_one_event_with_their_count() {
        let mut a = Aggregator::new(1000, 100);
        let mut out: Vec<Event> = Vec::new();
        assert!(!a.push(ev("a.test", "10.0.0.1", 60), 0, &mut out));
        assert!(a.push(ev("a.test", "10.0.0.1", 59), 10, &mut out));
        assert!(!a.push(ev("b.test", "10.0.0.2", 60), 20, &mut out));
        assert!(!a.push(ev("a.test", "10.0.0.9", 60), 30, &mut out));
        assert!(out.is_empty());
        a.flush_due(1000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dns.question.name, "a.test");
        assert_eq!(repeat_count(&out[0]), 2);
        // After the window, the same answer starts a new event.
        a.push(ev("a.test", "10.0.0.1", 60), 1500, &mut out);
        a.flush_all(&mut out);
        let names: Vec<(&str, u64)> = out
            .iter()
            .map(|e| (e.dns.answers[0].data.as_str(), repeat_count(e)))
            .collect();
        assert_eq!(
            names,
            vec![
                ("10.0.0.1", 2),
                ("10.0.0.2", 1),
                ("10.0.0.9", 1),
                ("10.0.0.1", 1)
            ]
        );
        assert!(a.is_empty());
    }

    #[test]
    fn the_copy_with_a_process_is_kept() {
        let mut a = Aggregator::new(1000, 100);
        let mut out: Vec<Event> = Vec::new();
        a.push(ev("a.test", "10.0.0.1", 60), 0, &mut out);
        let mut with = ev("a.test", "10.0.0.1", 60);
        with.process.pid = Some(42);
        a.push(with, 1, &mut out);
        a.flush_all(&mut out);
        assert_eq!(out[0].process.pid, Some(42));
        assert_eq!(repeat_count(&out[0]), 2);
    }

    #[test]
    fn held_events_are_bounded() {
        let mut a = Aggregator::new(1000, 2);
        let mut out: Vec<Event> = Vec::new();
        for i in 0..5 {
            a.push(ev(&format!("n{i}.test"), "10.0.0.1", 1), i, &mut out);
        }
        assert_eq!(a.len(), 2);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].dns.question.name, "n0.test");
    }
}
