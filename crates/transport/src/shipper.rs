//! The shipper: reads routed records from a [`RecordSource`], batches them, sends them to
//! the intake and acknowledges what is done.
//!
//! Outcomes of a request:
//! - 2xx: its records are done;
//! - 429, 5xx, other statuses, timeouts, connection errors: the same request is retried
//!   after an exponential backoff with jitter, never sooner than `Retry-After`;
//! - 413: the request is split in two; a single record that is still too large is dropped;
//! - 400: the request is bisected down to the offending record(s), which alone are
//!   dropped, counted and logged;
//! - 401/403: the key is held: its records stay in memory and are tried again every
//!   `auth_retry_interval`, while other keys' records keep flowing. A mixed-key `/array`
//!   request is first split per key to find which key is refused.
//!
//! Acknowledgement is positional, so a held key's records pin the acknowledged position:
//! later records are delivered but acknowledged only once everything before them is.
//! Memory is bounded by `max_pending_records` / `max_pending_bytes`; when the budget is
//! used up by a held key, its records are moved to the tail of the source
//! ([`RecordSource::requeue`]) if the source supports it, otherwise reading pauses.
//! Records moved that way may reach the intake after later records of the same key (the
//! intake orders by event time); every other stream keeps its order. Events and log lines
//! go to different endpoints, so their relative order is not kept either.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_pipeline::{RecordKind, RoutedRecord};
use bytes::Bytes;

use crate::backoff::Backoff;
use crate::client::{IntakeClient, IntakePost};
use crate::config::TransportConfig;
use crate::counters::Counters;
use crate::error::TransportError;
use crate::framing::{
    array_body, batch_body, gzip, plain_body, HEADER_INTAKE_KEY, PATH_ARRAY, PATH_BATCH, PATH_PLAIN,
};
use crate::source::RecordSource;

/// How long to sleep when there is nothing at all to do (the source wakes us earlier).
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// Most records asked from the source at once.
const READ_CHUNK: usize = 1024;

/// Shows an intake key by its last 4 characters only.
pub fn key_hint(key: &str) -> String {
    let tail: String = {
        let mut rev: Vec<char> = key.chars().rev().take(4).collect();
        rev.reverse();
        rev.into_iter().collect()
    };
    format!("...{tail}")
}

#[derive(Debug)]
struct Entry {
    pos: u64,
    kind: RecordKind,
    key: Arc<str>,
    payload: Vec<u8>,
    seen: Instant,
    done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    Batch(Arc<str>),
    Array,
    Plain(Arc<str>),
}

#[derive(Debug)]
struct Job {
    framing: Framing,
    positions: Vec<u64>,
}

/// What to do after one answer.
enum Next {
    Done,
    Retry(Option<Duration>),
}

/// Ships records to the intake. Create one per agent; drive it with [`Shipper::run`]
/// on a current-thread tokio runtime.
#[derive(Debug)]
pub struct Shipper {
    cfg: TransportConfig,
    client: IntakeClient,
    counters: Arc<Counters>,
    pending: VecDeque<Entry>,
    pending_bytes: usize,
    held: HashMap<Arc<str>, Instant>,
    keys: HashSet<Arc<str>>,
    backoff: Backoff,
    last_requeue: Option<Instant>,
    read_unheld_since_requeue: bool,
}

impl Shipper {
    /// Validates the settings and prepares the client (no connection is made yet).
    pub fn new(cfg: TransportConfig, counters: Arc<Counters>) -> Result<Self, TransportError> {
        let client = IntakeClient::new(&cfg)?;
        let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        Ok(Shipper {
            cfg,
            client,
            counters,
            pending: VecDeque::new(),
            pending_bytes: 0,
            held: HashMap::new(),
            keys: HashSet::new(),
            backoff,
            last_requeue: None,
            read_unheld_since_requeue: false,
        })
    }

    /// The counters this shipper updates.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Ships until `shutdown` resolves, then makes one last delivery attempt bounded by
    /// `shutdown_grace`. Returns early only if the source fails.
    pub async fn run<S: RecordSource>(
        &mut self,
        source: &mut S,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), TransportError> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            self.fill(source)?;
            self.ack(source)?;
            let now = Instant::now();
            if let Some(batch) = self.next_batch(now, false) {
                let grace = self.cfg.shutdown_grace;
                let ship = self.ship(source, batch, None);
                let mut ship = std::pin::pin!(ship);
                let stop = tokio::select! {
                    r = &mut ship => { r?; false }
                    () = &mut shutdown => true,
                };
                if stop {
                    // Let the request in flight finish (within the grace period): the
                    // intake may already have taken the batch, and abandoning it would
                    // send it a second time.
                    if let Ok(r) = tokio::time::timeout(grace, ship).await {
                        r?;
                    }
                    break;
                }
                continue;
            }
            let timeout = self
                .next_wake(now)
                .map_or(IDLE_WAIT, |w| w.saturating_duration_since(now));
            tokio::select! {
                () = source.wait(timeout) => {}
                () = &mut shutdown => break,
            }
        }
        let grace = self.cfg.shutdown_grace;
        match tokio::time::timeout(grace, self.final_flush(source)).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(
                    pending = self.pending.iter().filter(|e| !e.done).count(),
                    "shutdown: records not delivered in time stay in the buffer"
                );
                self.ack(source)
            }
        }
    }

    async fn final_flush<S: RecordSource>(&mut self, source: &mut S) -> Result<(), TransportError> {
        loop {
            self.fill(source)?;
            let Some(batch) = self.next_batch(Instant::now(), true) else {
                break;
            };
            if !self.ship(source, batch, Some(1)).await? {
                break;
            }
        }
        self.ack(source)
    }

    fn intern(&mut self, key: &str) -> Arc<str> {
        if let Some(k) = self.keys.get(key) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(key);
        self.keys.insert(k.clone());
        k
    }

    fn is_held(&self, key: &str, now: Instant) -> bool {
        self.held.get(key).is_some_and(|until| *until > now)
    }

    fn budget_full(&self) -> bool {
        self.pending.len() >= self.cfg.max_pending_records.max(1)
            || self.pending_bytes >= self.cfg.max_pending_bytes
    }

    /// Reads from the source while the memory budget allows.
    fn fill<S: RecordSource>(&mut self, source: &mut S) -> Result<(), TransportError> {
        loop {
            if self.budget_full() && !self.requeue_held(source)? {
                return Ok(());
            }
            let room = self
                .cfg
                .max_pending_records
                .max(1)
                .saturating_sub(self.pending.len())
                .min(READ_CHUNK);
            let records = source.read(room).map_err(source_err)?;
            if records.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            for rec in records {
                let entry = match RoutedRecord::decode(&rec.bytes) {
                    Ok(r) => {
                        let key = self.intern(r.intake_key);
                        Entry {
                            pos: rec.position,
                            kind: r.kind,
                            key,
                            payload: r.payload.to_vec(),
                            seen: now,
                            done: false,
                        }
                    }
                    Err(e) => {
                        tracing::error!(position = rec.position, error = %e, "dropping an unreadable record from the buffer");
                        self.counters.rejected(1);
                        Entry {
                            pos: rec.position,
                            kind: RecordKind::Event,
                            key: self.intern(""),
                            payload: Vec::new(),
                            seen: now,
                            done: true,
                        }
                    }
                };
                if !entry.done && !self.is_held(&entry.key, now) {
                    self.read_unheld_since_requeue = true;
                }
                self.pending_bytes += entry.payload.len();
                self.pending.push_back(entry);
            }
        }
    }

    /// When the budget is full and the oldest record belongs to a held key, moves all
    /// held records to the tail of the source. Done at most once per
    /// `auth_retry_interval` unless other keys' records were read meanwhile, so a source
    /// holding nothing else is not rewritten in a loop.
    fn requeue_held<S: RecordSource>(&mut self, source: &mut S) -> Result<bool, TransportError> {
        let now = Instant::now();
        let front_held = self
            .pending
            .iter()
            .find(|e| !e.done)
            .is_some_and(|e| self.is_held(&e.key, now));
        let recently = self
            .last_requeue
            .is_some_and(|t| now.duration_since(t) < self.cfg.auth_retry_interval);
        if !front_held || (recently && !self.read_unheld_since_requeue) {
            return Ok(false);
        }
        let mut idx = Vec::new();
        let mut encoded = Vec::new();
        for (i, e) in self.pending.iter().enumerate() {
            if e.done || !self.is_held(&e.key, now) {
                continue;
            }
            let rec = RoutedRecord {
                kind: e.kind,
                intake_key: &e.key,
                payload: &e.payload,
            };
            // A key that was decodable re-encodes; skip (keep holding) if not.
            if let Ok(bytes) = rec.encode() {
                idx.push(i);
                encoded.push(bytes);
            }
        }
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        if refs.is_empty() || !source.requeue(&refs).map_err(source_err)? {
            return Ok(false);
        }
        tracing::warn!(
            records = idx.len(),
            "records of refused intake keys moved to the end of the buffer so other keys keep flowing"
        );
        for i in idx {
            if let Some(e) = self.pending.get_mut(i) {
                e.done = true;
                self.pending_bytes -= e.payload.len();
                e.payload = Vec::new();
            }
        }
        self.last_requeue = Some(now);
        self.read_unheld_since_requeue = false;
        self.ack(source)?;
        Ok(!self.budget_full())
    }

    /// Acknowledges the longest done prefix.
    fn ack<S: RecordSource>(&mut self, source: &mut S) -> Result<(), TransportError> {
        let mut last = None;
        while self.pending.front().is_some_and(|e| e.done) {
            if let Some(e) = self.pending.pop_front() {
                self.pending_bytes -= e.payload.len();
                last = Some(e.pos);
            }
        }
        if let Some(pos) = last {
            source.ack(pos).map_err(source_err)?;
        }
        if self.pending.is_empty() {
            self.pending = VecDeque::new();
        }
        Ok(())
    }

    /// The next batch to send: up to `batch_max_events` eligible records, once there are
    /// that many or the oldest has waited `batch_max_delay` (or at once when `force`).
    fn next_batch(&self, now: Instant, force: bool) -> Option<Vec<u64>> {
        let max = self.cfg.batch_max_events.max(1);
        let mut picked = Vec::new();
        let mut oldest = None;
        for e in &self.pending {
            if e.done || self.is_held(&e.key, now) {
                continue;
            }
            oldest = Some(oldest.map_or(e.seen, |o: Instant| o.min(e.seen)));
            picked.push(e.pos);
            if picked.len() == max {
                return Some(picked);
            }
        }
        let oldest = oldest?;
        (force || now.duration_since(oldest) >= self.cfg.batch_max_delay).then_some(picked)
    }

    /// When the next batch becomes due: the oldest eligible record's deadline or the end
    /// of a hold, whichever is first.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut earliest = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for e in &self.pending {
            if e.done {
                continue;
            }
            match self.held.get(&e.key) {
                Some(until) if *until > now => earliest(*until),
                _ => earliest(e.seen + self.cfg.batch_max_delay),
            }
        }
        wake
    }

    fn entry(&self, pos: u64) -> Option<&Entry> {
        let i = self.pending.binary_search_by_key(&pos, |e| e.pos).ok()?;
        self.pending.get(i)
    }

    fn mark_done(&mut self, positions: &[u64]) {
        for pos in positions {
            if let Ok(i) = self.pending.binary_search_by_key(pos, |e| e.pos) {
                if let Some(e) = self.pending.get_mut(i) {
                    e.done = true;
                    self.pending_bytes -= e.payload.len();
                    e.payload = Vec::new();
                }
            }
        }
    }

    /// Groups positions into requests: events of one key → `/batch`, of several keys →
    /// `/array`; log lines → one `/plain/batch` per key.
    fn plan(&self, positions: &[u64]) -> Vec<Job> {
        let mut events = Vec::new();
        let mut event_keys: Vec<Arc<str>> = Vec::new();
        let mut plain: Vec<(Arc<str>, Vec<u64>)> = Vec::new();
        for &pos in positions {
            let Some(e) = self.entry(pos) else { continue };
            match e.kind {
                RecordKind::Event => {
                    if !event_keys.contains(&e.key) {
                        event_keys.push(e.key.clone());
                    }
                    events.push(pos);
                }
                RecordKind::LogLine => match plain.iter_mut().find(|(k, _)| *k == e.key) {
                    Some((_, v)) => v.push(pos),
                    None => plain.push((e.key.clone(), vec![pos])),
                },
            }
        }
        let mut jobs = Vec::new();
        if !events.is_empty() {
            let framing = match event_keys.as_slice() {
                [one] => Framing::Batch(one.clone()),
                _ => Framing::Array,
            };
            jobs.push(Job {
                framing,
                positions: events,
            });
        }
        jobs.extend(plain.into_iter().map(|(key, positions)| Job {
            framing: Framing::Plain(key),
            positions,
        }));
        jobs
    }

    /// The request of a job: path, content type, key header and plain body.
    fn frame(&self, job: &Job) -> (&'static str, &'static str, Vec<u8>) {
        let entries = job.positions.iter().filter_map(|p| self.entry(*p));
        match &job.framing {
            Framing::Batch(key) => (
                PATH_BATCH,
                "application/json",
                batch_body(key, entries.map(|e| e.payload.as_slice())),
            ),
            Framing::Array => (
                PATH_ARRAY,
                "application/json",
                array_body(entries.map(|e| (&*e.key, e.payload.as_slice()))),
            ),
            Framing::Plain(_) => (
                PATH_PLAIN,
                "text/plain",
                plain_body(entries.map(|e| e.payload.as_slice())),
            ),
        }
    }

    /// Sends one batch. With `attempts` set, gives up on a job after that many transient
    /// failures and returns `false`; otherwise retries until it is resolved.
    async fn ship<S: RecordSource>(
        &mut self,
        source: &mut S,
        positions: Vec<u64>,
        attempts: Option<u32>,
    ) -> Result<bool, TransportError> {
        let mut jobs: VecDeque<Job> = self.plan(&positions).into();
        while let Some(mut job) = jobs.pop_front() {
            // A hold decided on an earlier job of this batch applies to the rest.
            let now = Instant::now();
            job.positions.retain(|p| {
                self.entry(*p)
                    .is_some_and(|e| !e.done && !self.is_held(&e.key, now))
            });
            if job.positions.is_empty() {
                continue;
            }
            let mut failures = 0u32;
            loop {
                match self.send_job(&job, &mut jobs).await? {
                    Next::Done => break,
                    Next::Retry(retry_after) => {
                        self.counters.retried();
                        failures += 1;
                        if attempts.is_some_and(|a| failures >= a) {
                            return Ok(false);
                        }
                        let mut delay = self.backoff.next_delay();
                        if let Some(ra) = retry_after {
                            delay = delay.max(ra.min(self.cfg.backoff_max));
                        }
                        tracing::info!(?delay, "retrying the intake request later");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
            self.ack(source)?;
        }
        Ok(true)
    }

    /// One attempt of one job; pushes follow-up jobs (splits) to the front of `jobs`.
    async fn send_job(
        &mut self,
        job: &Job,
        jobs: &mut VecDeque<Job>,
    ) -> Result<Next, TransportError> {
        let (path, content_type, plain) = self.frame(job);
        let body = gzip(&plain, self.cfg.gzip_level).map_err(TransportError::Gzip)?;
        let gz_len = body.len();
        let header = match &job.framing {
            Framing::Plain(key) => Some((HEADER_INTAKE_KEY, &**key)),
            _ => None,
        };
        let post = IntakePost {
            path,
            content_type,
            header,
            body: Bytes::from(body),
        };
        let answer = match self.client.post(post).await {
            Ok(a) => a,
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(error = %msg, "sending to the intake failed");
                self.counters.error(msg);
                return Ok(Next::Retry(None));
            }
        };
        let status = answer.status.as_u16();
        let n = job.positions.len();
        match status {
            200..=299 => {
                self.backoff.reset();
                self.counters.delivered(n, plain.len(), gz_len);
                for key in self.job_keys(job) {
                    if self.held.remove(&key).is_some() {
                        tracing::info!(key = %key_hint(&key), "the intake accepts the intake key again");
                    }
                }
                self.mark_done(&job.positions);
                Ok(Next::Done)
            }
            400 | 413 => {
                if n > 1 {
                    let (a, b) = job.positions.split_at(n / 2);
                    for half in [b, a] {
                        for sub in self.plan(half).into_iter().rev() {
                            jobs.push_front(sub);
                        }
                    }
                    tracing::debug!(
                        status,
                        records = n,
                        "intake refused a request, splitting it"
                    );
                    return Ok(Next::Done);
                }
                let detail = String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
                    .into_owned();
                let key = self
                    .job_keys(job)
                    .first()
                    .map(|k| key_hint(k))
                    .unwrap_or_default();
                tracing::error!(status, key = %key, position = job.positions[0], answer = %detail,
                    "the intake refused a record for good, dropping it");
                self.counters.rejected(1);
                self.counters.error(format!(
                    "the intake refused a record under key {key}: {status} {detail}"
                ));
                self.mark_done(&job.positions);
                Ok(Next::Done)
            }
            401 | 403 => {
                let keys = self.job_keys(job);
                if keys.len() > 1 {
                    // Which key is refused? Ask per key.
                    let mut per_key: Vec<Job> = keys
                        .iter()
                        .map(|k| Job {
                            framing: Framing::Batch(k.clone()),
                            positions: job
                                .positions
                                .iter()
                                .copied()
                                .filter(|p| self.entry(*p).is_some_and(|e| e.key == *k))
                                .collect(),
                        })
                        .collect();
                    while let Some(j) = per_key.pop() {
                        jobs.push_front(j);
                    }
                    return Ok(Next::Done);
                }
                let until = Instant::now() + self.cfg.auth_retry_interval;
                for key in keys {
                    let hint = key_hint(&key);
                    let msg = format!(
                        "the intake refused intake key {hint} ({status}): its records are kept and retried every {:?}; check the key",
                        self.cfg.auth_retry_interval
                    );
                    tracing::error!(key = %hint, status, "{msg}");
                    self.counters.error(msg);
                    self.held.insert(key, until);
                }
                Ok(Next::Done)
            }
            _ => {
                let msg = format!("the intake answered {}", answer.status);
                tracing::warn!(status, retry_after = ?answer.retry_after, "{msg}");
                self.counters.error(msg);
                Ok(Next::Retry(answer.retry_after))
            }
        }
    }

    fn job_keys(&self, job: &Job) -> Vec<Arc<str>> {
        match &job.framing {
            Framing::Batch(k) | Framing::Plain(k) => vec![k.clone()],
            Framing::Array => {
                let mut keys: Vec<Arc<str>> = Vec::new();
                for p in &job.positions {
                    if let Some(e) = self.entry(*p) {
                        if !keys.contains(&e.key) {
                            keys.push(e.key.clone());
                        }
                    }
                }
                keys
            }
        }
    }
}

fn source_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> TransportError {
    TransportError::Source(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hint_shows_only_the_tail() {
        assert_eq!(key_hint("abcdefgh"), "...efgh");
        assert_eq!(key_hint("ab"), "...ab");
    }
}
