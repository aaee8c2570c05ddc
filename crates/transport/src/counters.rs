//! Delivery counters for `agent status` and the periodic stats event.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::SystemTime;

/// Live counters, shared (`Arc`) between the shipper and whoever reports them.
#[derive(Debug, Default)]
pub struct Counters {
    events_sent: AtomicU64,
    bytes_plain: AtomicU64,
    bytes_gzip: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    rejected: AtomicU64,
    recoveries: AtomicU64,
    last: Mutex<LastOutcomes>,
}

#[derive(Debug, Default, Clone)]
struct LastOutcomes {
    success: Option<SystemTime>,
    error: Option<String>,
    error_at: Option<SystemTime>,
    failing_since: Option<SystemTime>,
}

/// A copy of the counters at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Records the intake accepted.
    pub events_sent: u64,
    /// Body bytes of accepted requests before compression.
    pub bytes_plain: u64,
    /// Body bytes of accepted requests as sent (gzip).
    pub bytes_gzip: u64,
    /// Accepted requests.
    pub requests: u64,
    /// Attempts that failed transiently and were retried.
    pub retries: u64,
    /// Records dropped because the intake refused them for good (400/413 on one record)
    /// or because they were not readable routed records.
    pub rejected: u64,
    /// When the intake last accepted a request.
    pub last_success: Option<SystemTime>,
    /// The last failure, as shown to users (never holds a password).
    pub last_error: Option<String>,
    /// When that failure happened.
    pub last_error_at: Option<SystemTime>,
    /// Set while delivery is failing: when the first failed attempt since the last
    /// accepted request happened. `None` once the intake accepts a request again, so
    /// `last_error` is then history, not the current state.
    pub failing_since: Option<SystemTime>,
    /// How many times delivery recovered after failing (an accepted request after failed
    /// attempts).
    pub recoveries: u64,
}

impl CountersSnapshot {
    /// Whether `last_error` describes the current state: delivery is failing, or the
    /// error came after the last accepted request (a record refused for good).
    pub fn error_is_current(&self) -> bool {
        self.failing_since.is_some()
            || match (self.last_error_at, self.last_success) {
                (Some(e), Some(s)) => e > s,
                (Some(_), None) => true,
                (None, _) => false,
            }
    }
}

impl Counters {
    /// Copies the current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let last = self.last.lock().map(|l| l.clone()).unwrap_or_default();
        CountersSnapshot {
            events_sent: self.events_sent.load(Relaxed),
            bytes_plain: self.bytes_plain.load(Relaxed),
            bytes_gzip: self.bytes_gzip.load(Relaxed),
            requests: self.requests.load(Relaxed),
            retries: self.retries.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            last_success: last.success,
            last_error: last.error,
            last_error_at: last.error_at,
            failing_since: last.failing_since,
            recoveries: self.recoveries.load(Relaxed),
        }
    }

    pub(crate) fn delivered(&self, events: usize, plain: usize, gzip: usize) {
        self.events_sent.fetch_add(events as u64, Relaxed);
        self.bytes_plain.fetch_add(plain as u64, Relaxed);
        self.bytes_gzip.fetch_add(gzip as u64, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        if let Ok(mut l) = self.last.lock() {
            l.success = Some(SystemTime::now());
            if l.failing_since.take().is_some() {
                self.recoveries.fetch_add(1, Relaxed);
            }
        }
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub(crate) fn rejected(&self, n: usize) {
        self.rejected.fetch_add(n as u64, Relaxed);
    }

    /// A failed attempt: records the error and that delivery is failing.
    pub(crate) fn failed(&self, message: String) {
        if let Ok(mut l) = self.last.lock() {
            let now = SystemTime::now();
            l.error = Some(message);
            l.error_at = Some(now);
            l.failing_since.get_or_insert(now);
        }
    }

    /// An error that does not stop delivery (a record refused for good).
    pub(crate) fn error(&self, message: String) {
        if let Ok(mut l) = self.last.lock() {
            l.error = Some(message);
            l.error_at = Some(SystemTime::now());
        }
    }
}
