//! DNS-Client 3008 details: record type names, status codes, the `QueryResults` text, and
//! the aggregation of repeated identical answers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use agent_event::{DnsAnswer, Event, Timestamp};
use serde_json::{json, Value};

/// The record type name of a `QueryType` number (`28` → `AAAA`); other numbers as text.
pub fn type_name(qtype: u64) -> String {
    match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        n => return n.to_string(),
    }
    .to_owned()
}

/// The DNS response code of a `QueryStatus` (a Win32 / `DNS_ERROR_RCODE_*` value); `None`
/// for errors that are not a server's answer (timeouts, no network).
pub fn response_code(status: u64) -> Option<&'static str> {
    Some(match status {
        0 => "NOERROR",
        // DNS_INFO_NO_RECORDS: the name exists, without records of the type asked.
        9501 => "NOERROR",
        9001 => "FORMERR",
        9002 => "SERVFAIL",
        9003 => "NXDOMAIN",
        9004 => "NOTIMP",
        9005 => "REFUSED",
        _ => return None,
    })
}

/// The answers in a `QueryResults` text: `;`-separated entries, each an address
/// (IPv4-mapped IPv6 for A records: `::ffff:192.0.2.1`) or `type:  N data` for other
/// records (`type:  5 edge.example.net`). Unparsable entries are skipped.
pub fn parse_results(name: &str, results: &str) -> Vec<DnsAnswer> {
    let mut answers = Vec::new();
    for entry in results.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        if let Some(rest) = entry.strip_prefix("type:") {
            let rest = rest.trim_start();
            let (num, data) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let (Ok(num), data) = (num.parse::<u64>(), data.trim()) else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            answers.push(DnsAnswer {
                name: name.to_owned(),
                record_type: type_name(num),
                class: "IN".to_owned(),
                data: data.to_owned(),
                ..DnsAnswer::default()
            });
            continue;
        }
        let Ok(ip) = entry.parse::<IpAddr>() else {
            continue;
        };
        let (ip, rtype) = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), "A"),
                None => (ip, "AAAA"),
            },
            IpAddr::V4(_) => (ip, "A"),
        };
        answers.push(DnsAnswer {
            name: name.to_owned(),
            record_type: rtype.to_owned(),
            class: "IN".to_owned(),
            data: ip.to_string(),
            ..DnsAnswer::default()
        });
    }
    answers
}

/// What makes two completed queries "the same": the process, the question, the status
/// and the answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepeatKey {
    /// Querying process.
    pub pid: u32,
    /// Queried name, lowercase.
    pub name: String,
    /// Record type number.
    pub qtype: u64,
    /// Status.
    pub status: u64,
    /// The results text.
    pub results: String,
}

#[derive(Debug)]
struct Window {
    opened: Timestamp,
    first_repeat: Option<Timestamp>,
    last_repeat: Option<Timestamp>,
    repeats: u64,
    event: Event,
}

/// Entries kept at most; beyond, the windows are closed early.
const MAX_WINDOWS: usize = 4_096;

/// Aggregates repeats of the same query: the first one is emitted at once; the identical
/// ones that follow within the window are counted, and one summary event (a copy of the
/// first, at the last repeat's time, with `sekoiaio.repeat.count`) closes the window.
#[derive(Debug)]
pub struct Repeats {
    window: Duration,
    open: HashMap<RepeatKey, Window>,
}

impl Repeats {
    /// Aggregation over `window` (zero: no aggregation).
    pub fn new(window: Duration) -> Repeats {
        Repeats {
            window,
            open: HashMap::new(),
        }
    }

    /// A completed query: `Some(event)` to emit now, `None` when it only counts as a repeat.
    /// Windows that `event`'s time closes are flushed into `out` first.
    pub fn offer(&mut self, key: RepeatKey, event: Event, out: &mut Vec<Event>) -> Option<Event> {
        if self.window.is_zero() {
            return Some(event);
        }
        let now = event.timestamp.unwrap_or_else(Timestamp::now);
        if let Some(w) = self.open.get_mut(&key) {
            if !expired(w.opened, now, self.window) {
                w.repeats += 1;
                w.first_repeat.get_or_insert(now);
                w.last_repeat = Some(now);
                return None;
            }
        }
        if let Some(w) = self.open.remove(&key) {
            out.extend(summary(w));
        }
        if self.open.len() >= MAX_WINDOWS {
            self.flush_all(out);
        }
        self.open.insert(
            key,
            Window {
                opened: now,
                first_repeat: None,
                last_repeat: None,
                repeats: 0,
                event: event.clone(),
            },
        );
        Some(event)
    }

    /// Closes the windows older than the window length at `now`, summaries into `out`.
    pub fn flush(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let window = self.window;
        let done: Vec<RepeatKey> = self
            .open
            .iter()
            .filter(|(_, w)| expired(w.opened, now, window))
            .map(|(k, _)| k.clone())
            .collect();
        for k in done {
            if let Some(w) = self.open.remove(&k) {
                out.extend(summary(w));
            }
        }
    }

    /// Closes every window (shutdown).
    pub fn flush_all(&mut self, out: &mut Vec<Event>) {
        out.extend(self.open.drain().filter_map(|(_, w)| summary(w)));
    }
}

fn expired(opened: Timestamp, now: Timestamp, window: Duration) -> bool {
    let end = opened.to_system_time() + window;
    now.to_system_time() >= end
}

fn summary(w: Window) -> Option<Event> {
    if w.repeats == 0 {
        return None;
    }
    let mut e = w.event;
    e.timestamp = w.last_repeat.or(e.timestamp);
    e.event.start = w.first_repeat;
    e.event.end = w.last_repeat;
    let sekoiaio = &mut e.sekoiaio.other;
    match sekoiaio.get_mut("repeat") {
        Some(Value::Object(m)) => {
            m.insert("count".to_owned(), json!(w.repeats));
        }
        _ => {
            sekoiaio.insert("repeat".to_owned(), json!({ "count": w.repeats }));
        }
    }
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_text_becomes_answers() {
        let a = parse_results(
            "www.example.com",
            "type:  5 www.example.com.edgekey.net;::ffff:192.0.2.10;2001:db8::7;bogus;",
        );
        let got: Vec<(&str, &str)> = a
            .iter()
            .map(|x| (x.record_type.as_str(), x.data.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("CNAME", "www.example.com.edgekey.net"),
                ("A", "192.0.2.10"),
                ("AAAA", "2001:db8::7")
            ]
        );
        assert!(parse_results("x", "").is_empty());
        assert!(parse_results("x", ";;type:;type: x y;").is_empty());
    }

    #[test]
    fn codes_and_types() {
        assert_eq!(type_name(28), "AAAA");
        assert_eq!(type_name(99), "99");
        assert_eq!(response_code(9003), Some("NXDOMAIN"));
        assert_eq!(response_code(1460), None);
    }
}
