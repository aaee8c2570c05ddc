//! The shipper: reads routed records from a [`RecordSource`], batches them, sends them to
//! the intake and acknowledges what is done.
//!
//! Up to [`TransportConfig::max_in_flight`] requests are in flight at once, each on its own
//! kept-alive connection. Answers may come back in any order; the source is acknowledged
//! only up to the longest prefix of records that are all delivered (or dropped for
//! good), so nothing is acknowledged before everything in front of it is done. Batches
//! may therefore reach the intake out of order (the intake orders events by their time).
//!
//! Outcomes of a request:
//! - 2xx: its records are done;
//! - 429, 5xx, other statuses, timeouts, connection errors: the request is retried after
//!   an exponential backoff with jitter capped at `backoff_max`, never sooner than
//!   `Retry-After`; meanwhile nothing new is sent and, until a request succeeds again,
//!   only one request is in flight. When the intake cannot be reached at all (no
//!   connection), the wait is at most `probe_interval`: such a probe costs the intake
//!   nothing, and it bounds the recovery time after an outage;
//! - 413: the request is split in two, and the size the intake accepts is remembered:
//!   later batches are cut to it (records and bytes), and a larger size is tried again
//!   now and then, so a limit that goes away is noticed;
//! - 400 (or 413 on a single record): the request is bisected down to the refused
//!   record(s). A record refused alone is dropped, counted and logged only if the intake
//!   accepted another request sent after the refusals began; when the intake refuses
//!   everything, that is an intake fault, not a malformed record: the record is kept
//!   and retried with backoff, for at most `refusal_window`;
//! - 401/403: the key is held: its records stay in memory while other keys' records keep
//!   flowing; after a delay growing to `auth_retry_interval` (with jitter), one record
//!   probes the key, and the key's records flow again as soon as it is accepted. A
//!   mixed-key `/array` request is first split per key to find which key is refused.
//!
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
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::client::{IntakeAnswer, IntakeClient, IntakePost};
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
/// Requests accepted at a learned size limit before a larger size is tried.
const SHAPE_GROW_AFTER: u32 = 64;

/// Shows an intake key by its last 4 characters only.
pub fn key_hint(key: &str) -> String {
    let tail: String = {
        let mut rev: Vec<char> = key.chars().rev().take(4).collect();
        rev.reverse();
        rev.into_iter().collect()
    };
    format!("...{tail}")
}

/// Where a record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting to be put in a request.
    Ready,
    /// In a request that is queued or in flight.
    Taken,
    /// Delivered or dropped for good.
    Done,
}

#[derive(Debug)]
struct Entry {
    pos: u64,
    kind: RecordKind,
    key: Arc<str>,
    /// The routed record as read from the source; the payload is its tail, from
    /// `payload_at` (kept whole to avoid a copy per record).
    record: Vec<u8>,
    payload_at: usize,
    seen: Instant,
    stage: Stage,
}

impl Entry {
    fn payload(&self) -> &[u8] {
        self.record.get(self.payload_at..).unwrap_or_default()
    }

    fn finish(&mut self) -> usize {
        self.stage = Stage::Done;
        std::mem::take(&mut self.record).len()
    }
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
    /// A hold probe: one record of a key refused with 401/403.
    probe: bool,
    /// When the first request of the chain of splits this job comes from was sent and
    /// refused with 400/413 (`None` while none was).
    refused_since: Option<Instant>,
}

/// A request's size, for learning what the intake accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    records: usize,
    bytes: usize,
}

impl Size {
    fn max(self, o: Size) -> Size {
        Size {
            records: self.records.max(o.records),
            bytes: self.bytes.max(o.bytes),
        }
    }

    fn min(self, o: Size) -> Size {
        Size {
            records: self.records.min(o.records),
            bytes: self.bytes.min(o.bytes),
        }
    }

    fn fits_in(self, o: Size) -> bool {
        self.records <= o.records && self.bytes <= o.bytes
    }
}

/// What 413 answers taught: the largest sizes accepted since, the smallest refused.
#[derive(Debug, Default)]
struct Shape {
    ok: Option<Size>,
    refused: Option<Size>,
    /// Requests accepted since the limit last changed.
    accepted: u32,
}

impl Shape {
    /// The largest batch to build now, if the intake refused a size.
    fn limit(&self) -> Option<Size> {
        let refused = self.refused?;
        let Some(ok) = self.ok else {
            return Some(Size {
                records: (refused.records / 2).max(1),
                bytes: (refused.bytes / 2).max(1),
            });
        };
        if self.accepted >= SHAPE_GROW_AFTER {
            // Try halfway to the refused size: limits move (proxies, intake settings).
            let mid = Size {
                records: ok.records + refused.records.saturating_sub(ok.records) / 2,
                bytes: ok.bytes + refused.bytes.saturating_sub(ok.bytes) / 2,
            };
            return Some(mid.max(ok));
        }
        Some(ok)
    }

    fn accepted(&mut self, size: Size) {
        let Some(refused) = self.refused else { return };
        if !size.records.lt(&refused.records) && !size.bytes.lt(&refused.bytes) {
            // As large as what was refused: the limit is gone.
            *self = Shape::default();
            return;
        }
        let grown = self.ok.is_none_or(|ok| !size.fits_in(ok));
        self.ok = Some(self.ok.map_or(size, |ok| ok.max(size)));
        self.accepted = if grown { 0 } else { self.accepted + 1 };
    }

    fn refused(&mut self, size: Size) {
        self.refused = Some(self.refused.map_or(size, |r| r.min(size)));
        if let Some(ok) = self.ok {
            if !ok.records.lt(&size.records) || !ok.bytes.lt(&size.bytes) {
                // What was accepted before is refused now: learn again.
                self.ok = None;
            }
        }
        self.accepted = 0;
    }
}

/// A key refused with 401/403.
#[derive(Debug)]
struct Hold {
    until: Instant,
    backoff: Backoff,
    /// A probe of the key is queued or in flight.
    probing: bool,
}

/// A finished request, handed back by its task.
struct Flight {
    client: IntakeClient,
    job: Job,
    sent_at: Instant,
    size: Size,
    plain_len: usize,
    gz_len: usize,
    result: Result<IntakeAnswer, TransportError>,
}

/// Ships records to the intake. Create one per agent; drive it with [`Shipper::run`]
/// on a current-thread tokio runtime.
#[derive(Debug)]
pub struct Shipper {
    cfg: TransportConfig,
    /// Clients without a request in flight (each keeps its connection).
    idle: Vec<IntakeClient>,
    /// Never connected; further clients are cloned from it, so that they share its TLS
    /// settings instead of loading the system's trust roots again.
    template: IntakeClient,
    clients: usize,
    counters: Arc<Counters>,
    pending: VecDeque<Entry>,
    pending_bytes: usize,
    /// Jobs formed and waiting for a request slot, by first position.
    queue: VecDeque<Job>,
    held: HashMap<Arc<str>, Hold>,
    keys: HashSet<Arc<str>>,
    backoff: Backoff,
    /// No request starts before this (after a transient failure).
    blocked_until: Option<Instant>,
    /// After a transient failure, one request at a time until one succeeds.
    probing: bool,
    /// Send time of the latest request the intake accepted.
    last_accepted_sent: Option<Instant>,
    /// A record is kept because the intake refuses everything (since when).
    refusing_since: Option<Instant>,
    shape: Shape,
    /// When the source was last acknowledged.
    last_ack: Option<Instant>,
    last_requeue: Option<Instant>,
    read_unheld_since_requeue: bool,
    /// During the last delivery attempt at shutdown: no retries.
    last_attempt: bool,
    failed_in_last_attempt: bool,
}

impl Shipper {
    /// Validates the settings and prepares the client (no connection is made yet).
    pub fn new(cfg: TransportConfig, counters: Arc<Counters>) -> Result<Self, TransportError> {
        let template = IntakeClient::new(&cfg)?;
        let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        Ok(Shipper {
            cfg,
            idle: vec![template.sibling()],
            template,
            clients: 1,
            counters,
            pending: VecDeque::new(),
            pending_bytes: 0,
            queue: VecDeque::new(),
            held: HashMap::new(),
            keys: HashSet::new(),
            backoff,
            blocked_until: None,
            probing: false,
            last_accepted_sent: None,
            refusing_since: None,
            shape: Shape::default(),
            last_ack: None,
            last_requeue: None,
            read_unheld_since_requeue: false,
            last_attempt: false,
            failed_in_last_attempt: false,
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
        let mut tasks: JoinSet<Flight> = JoinSet::new();
        loop {
            // Acknowledge first: it frees budget for reading. At once when everything
            // read is done.
            let idle = tasks.is_empty() && self.pending.iter().all(|e| e.stage == Stage::Done);
            self.ack(source, idle)?;
            self.fill(source)?;
            self.ack(source, idle)?;
            let now = Instant::now();
            self.launch(&mut tasks, now, false)?;
            let timeout = self
                .next_wake(now, tasks.len() < self.slots())
                .map_or(IDLE_WAIT, |w| w.saturating_duration_since(now));
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    self.completed(done)?;
                }
                () = source.wait(timeout) => {}
                () = &mut shutdown => break,
            }
        }
        let grace = self.cfg.shutdown_grace;
        let last = self.final_flush(source, &mut tasks);
        match tokio::time::timeout(grace, last).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(
                    pending = self
                        .pending
                        .iter()
                        .filter(|e| e.stage != Stage::Done)
                        .count(),
                    "shutdown: records not delivered in time stay in the buffer"
                );
                tasks.abort_all();
                self.ack(source, true)
            }
        }
    }

    /// Lets the requests in flight finish (the intake may already have taken them, and
    /// abandoning them would send them a second time), then sends what is pending once,
    /// without waiting for batch delays or backoff.
    async fn final_flush<S: RecordSource>(
        &mut self,
        source: &mut S,
        tasks: &mut JoinSet<Flight>,
    ) -> Result<(), TransportError> {
        self.last_attempt = true;
        self.blocked_until = None;
        loop {
            self.ack(source, true)?;
            self.fill(source)?;
            self.ack(source, true)?;
            if !self.failed_in_last_attempt {
                self.launch(tasks, Instant::now(), true)?;
            }
            match tasks.join_next().await {
                Some(done) => self.completed(done)?,
                None => break,
            }
        }
        self.ack(source, true)
    }

    fn intern(&mut self, key: &str) -> Arc<str> {
        if let Some(k) = self.keys.get(key) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(key);
        self.keys.insert(k.clone());
        k
    }

    fn is_held(&self, key: &str) -> bool {
        self.held.contains_key(key)
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
                let decoded = match RoutedRecord::decode(&rec.bytes) {
                    Ok(r) => Ok((r.kind, self.intern(r.intake_key), r.payload.len())),
                    Err(e) => Err(e),
                };
                let entry = match decoded {
                    Ok((kind, key, payload_len)) => Entry {
                        pos: rec.position,
                        kind,
                        key,
                        payload_at: rec.bytes.len() - payload_len,
                        record: rec.bytes,
                        seen: now,
                        stage: Stage::Ready,
                    },
                    Err(e) => {
                        tracing::error!(position = rec.position, error = %e, "dropping an unreadable record from the buffer");
                        self.counters.rejected(1);
                        Entry {
                            pos: rec.position,
                            kind: RecordKind::Event,
                            key: self.intern(""),
                            record: Vec::new(),
                            payload_at: 0,
                            seen: now,
                            stage: Stage::Done,
                        }
                    }
                };
                if entry.stage == Stage::Ready && !self.is_held(&entry.key) {
                    self.read_unheld_since_requeue = true;
                }
                self.pending_bytes += entry.record.len();
                self.pending.push_back(entry);
            }
        }
    }

    /// When the budget is full and the oldest record belongs to a held key, moves the
    /// held records that are not in a request to the tail of the source. Done at most
    /// once per `auth_retry_interval` unless other keys' records were read meanwhile, so
    /// a source holding nothing else is not rewritten in a loop.
    fn requeue_held<S: RecordSource>(&mut self, source: &mut S) -> Result<bool, TransportError> {
        let now = Instant::now();
        let front_held = self
            .pending
            .iter()
            .find(|e| e.stage != Stage::Done)
            .is_some_and(|e| e.stage == Stage::Ready && self.is_held(&e.key));
        let recently = self
            .last_requeue
            .is_some_and(|t| now.duration_since(t) < self.cfg.auth_retry_interval);
        if !front_held || (recently && !self.read_unheld_since_requeue) {
            return Ok(false);
        }
        let mut idx = Vec::new();
        let mut encoded: Vec<&[u8]> = Vec::new();
        for (i, e) in self.pending.iter().enumerate() {
            if e.stage != Stage::Ready || !self.is_held(&e.key) {
                continue;
            }
            idx.push(i);
            encoded.push(&e.record);
        }
        if encoded.is_empty() || !source.requeue(&encoded).map_err(source_err)? {
            return Ok(false);
        }
        tracing::warn!(
            records = idx.len(),
            "records of refused intake keys moved to the end of the buffer so other keys keep flowing"
        );
        for i in idx {
            if let Some(e) = self.pending.get_mut(i) {
                self.pending_bytes -= e.finish();
            }
        }
        self.last_requeue = Some(now);
        self.read_unheld_since_requeue = false;
        self.ack(source, true)?;
        Ok(!self.budget_full())
    }

    /// Acknowledges the longest done prefix: at once when `now`, otherwise at most once
    /// per `ack_interval` (each acknowledgement of the ring costs two fsyncs).
    fn ack<S: RecordSource>(&mut self, source: &mut S, now: bool) -> Result<(), TransportError> {
        if !self.pending.front().is_some_and(|e| e.stage == Stage::Done) {
            return Ok(());
        }
        let at = Instant::now();
        if !now
            && self
                .last_ack
                .is_some_and(|t| at.duration_since(t) < self.cfg.ack_interval)
        {
            return Ok(());
        }
        self.last_ack = Some(at);
        let mut last = None;
        while self.pending.front().is_some_and(|e| e.stage == Stage::Done) {
            if let Some(e) = self.pending.pop_front() {
                self.pending_bytes -= e.record.len();
                last = Some(e.pos);
            }
        }
        if let Some(pos) = last {
            source.ack(pos).map_err(source_err)?;
        }
        if self.pending.is_empty() && self.pending.capacity() > 64 {
            self.pending = VecDeque::new();
        }
        Ok(())
    }

    /// Starts requests while slots, backoff and the batching rules allow.
    fn launch(
        &mut self,
        tasks: &mut JoinSet<Flight>,
        now: Instant,
        force: bool,
    ) -> Result<(), TransportError> {
        loop {
            if tasks.len() >= self.slots() || self.blocked_until.is_some_and(|t| t > now) {
                return Ok(());
            }
            let Some(job) = self.next_job(now, force) else {
                return Ok(());
            };
            self.start(tasks, job)?;
        }
    }

    /// How many requests may be in flight now.
    fn slots(&self) -> usize {
        if self.probing {
            1
        } else {
            self.cfg.max_in_flight.max(1)
        }
    }

    /// The next request to make: a queued one (retries and splits first), a hold probe,
    /// or a new batch.
    fn next_job(&mut self, now: Instant, force: bool) -> Option<Job> {
        while let Some(mut job) = self.queue.pop_front() {
            if !job.probe {
                // A hold decided since the job was formed applies to it.
                let mut released = Vec::new();
                job.positions.retain(|p| {
                    let keep = self.entry(*p).is_some_and(|e| !self.is_held(&e.key));
                    if !keep {
                        released.push(*p);
                    }
                    keep
                });
                for p in released {
                    if let Some(e) = self.entry_mut(p) {
                        e.stage = Stage::Ready;
                    }
                }
            }
            if job.positions.is_empty() {
                continue;
            }
            // Larger than what the intake was seen to accept since it was formed: cut it
            // now rather than have it refused.
            let mut parts = self.fit(job).into_iter();
            let first = parts.next();
            for rest in parts {
                self.enqueue(rest);
            }
            if first.is_some() {
                return first;
            }
        }
        if let Some(job) = self.hold_probe(now) {
            return Some(job);
        }
        let positions = self.next_batch(now, force)?;
        for p in &positions {
            if let Some(e) = self.entry_mut(*p) {
                e.stage = Stage::Taken;
            }
        }
        let mut jobs = self.plan(&positions, None);
        jobs.sort_by_key(|j| j.positions.first().copied());
        let first = jobs.remove(0);
        for j in jobs {
            self.enqueue(j);
        }
        Some(first)
    }

    /// Cuts a job into parts that fit the learned size limit (one part if none).
    fn fit(&self, job: Job) -> Vec<Job> {
        let Some(limit) = self.shape.limit().filter(|_| !job.probe) else {
            return vec![job];
        };
        let mut parts: Vec<Job> = Vec::new();
        let mut current: Vec<u64> = Vec::new();
        let mut bytes = 0usize;
        for pos in &job.positions {
            let len = self.entry(*pos).map_or(0, |e| e.payload().len());
            if !current.is_empty() && (current.len() >= limit.records || bytes + len > limit.bytes)
            {
                parts.push(Job {
                    framing: job.framing.clone(),
                    positions: std::mem::take(&mut current),
                    probe: false,
                    refused_since: job.refused_since,
                });
                bytes = 0;
            }
            current.push(*pos);
            bytes += len;
        }
        if !current.is_empty() {
            parts.push(Job {
                framing: job.framing.clone(),
                positions: current,
                probe: false,
                refused_since: job.refused_since,
            });
        }
        parts
    }

    /// One record of a held key whose hold is over.
    fn hold_probe(&mut self, now: Instant) -> Option<Job> {
        let due: Vec<Arc<str>> = self
            .held
            .iter()
            .filter(|(_, h)| !h.probing && h.until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let found = self
                .pending
                .iter()
                .find(|e| e.stage == Stage::Ready && e.key == key)
                .map(|e| (e.pos, e.kind));
            let Some((pos, kind)) = found else {
                // Nothing of that key is waiting: forget the hold; the next record of the
                // key finds out whether it is still refused.
                self.held.remove(&key);
                continue;
            };
            if let Some(e) = self.entry_mut(pos) {
                e.stage = Stage::Taken;
            }
            if let Some(h) = self.held.get_mut(&key) {
                h.probing = true;
            }
            let framing = match kind {
                RecordKind::Event => Framing::Batch(key),
                RecordKind::LogLine => Framing::Plain(key),
            };
            return Some(Job {
                framing,
                positions: vec![pos],
                probe: true,
                refused_since: None,
            });
        }
        None
    }

    /// The next batch to send: up to `batch_max_events` ready records of keys not held
    /// (fewer when the intake refused larger requests), once there are that many or the
    /// oldest has waited `batch_max_delay` (or at once when `force`).
    fn next_batch(&self, now: Instant, force: bool) -> Option<Vec<u64>> {
        let limit = self.shape.limit();
        let max = limit
            .map_or(usize::MAX, |l| l.records)
            .min(self.cfg.batch_max_events.max(1));
        let max_bytes = limit.map_or(usize::MAX, |l| l.bytes);
        let mut picked = Vec::new();
        let mut bytes = 0usize;
        let mut oldest = None;
        for e in &self.pending {
            if e.stage != Stage::Ready || self.is_held(&e.key) {
                continue;
            }
            let len = e.payload().len();
            if !picked.is_empty() && bytes + len > max_bytes {
                return Some(picked);
            }
            oldest = Some(oldest.map_or(e.seen, |o: Instant| o.min(e.seen)));
            picked.push(e.pos);
            bytes += len;
            if picked.len() >= max {
                return Some(picked);
            }
        }
        let oldest = oldest?;
        (force || now.duration_since(oldest) >= self.cfg.batch_max_delay).then_some(picked)
    }

    /// When something may become possible: the end of the backoff, of a hold, or the
    /// oldest ready record's batch deadline, whichever is first. With no free request
    /// slot, only a finished request (or new data) is worth waking for.
    fn next_wake(&self, now: Instant, slot_free: bool) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut earliest = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if self.pending.front().is_some_and(|e| e.stage == Stage::Done) {
            // A deferred acknowledgement.
            earliest(self.last_ack.map_or(now, |t| t + self.cfg.ack_interval));
        }
        if !slot_free {
            return wake;
        }
        if let Some(until) = self.blocked_until.filter(|t| *t > now) {
            earliest(until);
            return wake;
        }
        for h in self.held.values() {
            if !h.probing {
                earliest(h.until);
            }
        }
        if !self.queue.is_empty() {
            earliest(now);
        }
        if let Some(e) = self
            .pending
            .iter()
            .find(|e| e.stage == Stage::Ready && !self.is_held(&e.key))
        {
            earliest(e.seen + self.cfg.batch_max_delay);
        }
        wake
    }

    fn index(&self, pos: u64) -> Option<usize> {
        self.pending.binary_search_by_key(&pos, |e| e.pos).ok()
    }

    fn entry(&self, pos: u64) -> Option<&Entry> {
        self.pending.get(self.index(pos)?)
    }

    fn entry_mut(&mut self, pos: u64) -> Option<&mut Entry> {
        let i = self.index(pos)?;
        self.pending.get_mut(i)
    }

    fn mark(&mut self, positions: &[u64], stage: Stage) {
        for pos in positions {
            if let Some(i) = self.index(*pos) {
                if let Some(e) = self.pending.get_mut(i) {
                    if stage == Stage::Done {
                        let freed = e.finish();
                        self.pending_bytes -= freed;
                    } else {
                        e.stage = stage;
                    }
                }
            }
        }
    }

    /// Queues a job in position order.
    fn enqueue(&mut self, job: Job) {
        let first = job.positions.first().copied();
        let at = self
            .queue
            .partition_point(|j| j.positions.first().copied() < first);
        self.queue.insert(at, job);
    }

    /// Groups positions into requests: events of one key → `/batch`, of several keys →
    /// `/array`; log lines → one `/plain/batch` per key.
    fn plan(&self, positions: &[u64], refused_since: Option<Instant>) -> Vec<Job> {
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
                probe: false,
                refused_since,
            });
        }
        jobs.extend(plain.into_iter().map(|(key, positions)| Job {
            framing: Framing::Plain(key),
            positions,
            probe: false,
            refused_since,
        }));
        jobs
    }

    /// The request body of a job: path, content type and plain body.
    fn frame(&self, job: &Job) -> (&'static str, &'static str, Vec<u8>) {
        let entries = job.positions.iter().filter_map(|p| self.entry(*p));
        match &job.framing {
            Framing::Batch(key) => (
                PATH_BATCH,
                "application/json",
                batch_body(key, entries.map(Entry::payload)),
            ),
            Framing::Array => (
                PATH_ARRAY,
                "application/json",
                array_body(entries.map(|e| (&*e.key, e.payload()))),
            ),
            Framing::Plain(_) => (
                PATH_PLAIN,
                "text/plain",
                plain_body(entries.map(Entry::payload)),
            ),
        }
    }

    /// Frames, compresses and sends a job on an idle client, as a task of `tasks`.
    fn start(&mut self, tasks: &mut JoinSet<Flight>, job: Job) -> Result<(), TransportError> {
        let (path, content_type, plain) = self.frame(&job);
        let size = Size {
            records: job.positions.len(),
            bytes: job
                .positions
                .iter()
                .filter_map(|p| self.entry(*p))
                .map(|e| e.payload().len())
                .sum(),
        };
        let body = gzip(&plain, self.cfg.gzip_level).map_err(TransportError::Gzip)?;
        let plain_len = plain.len();
        drop(plain);
        let gz_len = body.len();
        let header_key = match &job.framing {
            Framing::Plain(key) => Some(key.clone()),
            _ => None,
        };
        let mut client = match self.idle.pop() {
            Some(c) => c,
            None => {
                self.clients += 1;
                self.template.sibling()
            }
        };
        let sent_at = Instant::now();
        tasks.spawn(async move {
            let post = IntakePost {
                path,
                content_type,
                header: header_key.as_deref().map(|k| (HEADER_INTAKE_KEY, k)),
                body: Bytes::from(body),
            };
            let result = client.post(post).await;
            Flight {
                client,
                job,
                sent_at,
                size,
                plain_len,
                gz_len,
                result,
            }
        });
        Ok(())
    }

    /// Handles a finished request.
    fn completed(
        &mut self,
        done: Result<Flight, tokio::task::JoinError>,
    ) -> Result<(), TransportError> {
        let flight = match done {
            Ok(f) => f,
            // Tasks are only aborted at the end of shutdown; a panic is a bug, and the
            // records of that request stay unacknowledged (sent again after a restart).
            Err(e) => {
                tracing::error!(error = %e, "an intake request task failed");
                return Ok(());
            }
        };
        let Flight {
            client,
            job,
            sent_at,
            size,
            plain_len,
            gz_len,
            result,
        } = flight;
        self.idle.push(client);
        let now = Instant::now();
        let answer = match result {
            Ok(a) => a,
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(error = %msg, "sending to the intake failed");
                self.counters.failed(msg);
                self.transient(job, None, e.is_unreachable(), now);
                return Ok(());
            }
        };
        let status = answer.status.as_u16();
        match status {
            200..=299 => self.accepted(job, sent_at, size, plain_len, gz_len),
            400 | 413 => self.refused(job, &answer, sent_at, size, now),
            401 | 403 => self.key_refused(job, status, now),
            _ => {
                let msg = format!("the intake answered {}", answer.status);
                tracing::warn!(status, retry_after = ?answer.retry_after, "{msg}");
                self.counters.failed(msg);
                self.transient(job, answer.retry_after, false, now);
            }
        }
        Ok(())
    }

    fn accepted(&mut self, job: Job, sent_at: Instant, size: Size, plain: usize, gz: usize) {
        if self.probing {
            tracing::info!(
                failures = self.backoff.failures(),
                "the intake accepts requests again"
            );
        }
        self.backoff.reset();
        self.probing = false;
        self.blocked_until = None;
        self.refusing_since = None;
        self.last_accepted_sent = Some(self.last_accepted_sent.map_or(sent_at, |t| t.max(sent_at)));
        self.counters.delivered(job.positions.len(), plain, gz);
        self.shape.accepted(size);
        for key in self.job_keys(&job) {
            if self.held.remove(&key).is_some() {
                tracing::info!(key = %key_hint(&key), "the intake accepts the intake key again");
            }
        }
        self.mark(&job.positions, Stage::Done);
    }

    /// A transient failure: the job is sent again after the backoff, alone until a
    /// request succeeds.
    fn transient(
        &mut self,
        job: Job,
        retry_after: Option<Duration>,
        unreachable: bool,
        now: Instant,
    ) {
        self.counters.retried();
        if self.last_attempt {
            self.failed_in_last_attempt = true;
            self.release(job);
            return;
        }
        // Requests that were in flight together fail together: one backoff step for all.
        if self.blocked_until.is_none_or(|t| t <= now) {
            let mut delay = self.backoff.next_delay();
            if unreachable {
                delay = delay.min(self.backoff.jitter(self.cfg.probe_interval));
            }
            if let Some(ra) = retry_after {
                delay = delay.max(ra.min(self.cfg.backoff_max));
            }
            tracing::info!(?delay, "retrying the intake request later");
            self.blocked_until = Some(now + delay);
        }
        self.probing = true;
        self.enqueue(job);
    }

    /// Puts a job's records back to wait for a later request.
    fn release(&mut self, job: Job) {
        if job.probe {
            for key in self.job_keys(&job) {
                if let Some(h) = self.held.get_mut(&key) {
                    h.probing = false;
                }
            }
        }
        self.mark(&job.positions, Stage::Ready);
    }

    /// 400 or 413.
    fn refused(
        &mut self,
        mut job: Job,
        answer: &IntakeAnswer,
        sent_at: Instant,
        size: Size,
        now: Instant,
    ) {
        let status = answer.status.as_u16();
        let n = job.positions.len();
        let since = *job.refused_since.get_or_insert(sent_at);
        if n > 1 {
            if status == 413 {
                self.shape.refused(size);
            }
            let (a, b) = job.positions.split_at(n / 2);
            for half in [a, b] {
                for sub in self.plan(half, Some(since)) {
                    self.enqueue(sub);
                }
            }
            tracing::debug!(
                status,
                records = n,
                "intake refused a request, splitting it"
            );
            return;
        }
        let key = self
            .job_keys(&job)
            .first()
            .map(|k| key_hint(k))
            .unwrap_or_default();
        let detail =
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]).into_owned();
        let evidence = self.last_accepted_sent.is_some_and(|t| t > since);
        let refusing_since = *self.refusing_since.get_or_insert(since);
        let waited = now.saturating_duration_since(refusing_since);
        if !evidence && !self.last_attempt && waited < self.cfg.refusal_window {
            // The intake refuses everything: its fault, not the record's.
            let msg = format!(
                "the intake refuses every request ({status} {detail}); records are kept and retried"
            );
            tracing::warn!(status, key = %key, "{msg}");
            self.shape = Shape::default();
            self.counters.failed(msg);
            self.transient(job, answer.retry_after, false, now);
            return;
        }
        if !evidence && self.last_attempt {
            self.release(job);
            return;
        }
        if !evidence {
            // Bounded: after the whole window, this one record goes; the next one waits
            // a window again.
            self.refusing_since = Some(now);
        }
        tracing::error!(status, key = %key, position = job.positions[0], answer = %detail,
            "the intake refused a record for good, dropping it");
        self.counters.rejected(1);
        self.counters.error(format!(
            "the intake refused a record under key {key}: {status} {detail}"
        ));
        if job.probe {
            // The key itself is accepted (the record is not): release the hold.
            for key in self.job_keys(&job) {
                self.held.remove(&key);
            }
        }
        self.mark(&job.positions, Stage::Done);
    }

    /// 401 or 403.
    fn key_refused(&mut self, job: Job, status: u16, now: Instant) {
        let keys = self.job_keys(&job);
        if keys.len() > 1 {
            // Which key is refused? Ask per key.
            for k in &keys {
                let positions: Vec<u64> = job
                    .positions
                    .iter()
                    .copied()
                    .filter(|p| self.entry(*p).is_some_and(|e| e.key == *k))
                    .collect();
                self.enqueue(Job {
                    framing: Framing::Batch(k.clone()),
                    positions,
                    probe: false,
                    refused_since: job.refused_since,
                });
            }
            return;
        }
        let min = self.cfg.backoff_min.min(self.cfg.auth_retry_interval);
        for key in keys {
            let hint = key_hint(&key);
            let hold = self.held.entry(key).or_insert_with(|| Hold {
                until: now,
                backoff: Backoff::new(min, self.cfg.auth_retry_interval),
                probing: false,
            });
            if job.probe || hold.until <= now {
                let delay = hold.backoff.next_delay();
                hold.until = now + delay;
                hold.probing = false;
                let msg = format!(
                    "the intake refused intake key {hint} ({status}): its records are kept and tried again in {}s; check the key",
                    delay.as_secs()
                );
                tracing::error!(key = %hint, status, "{msg}");
                self.counters.error(msg);
            }
        }
        self.mark(&job.positions, Stage::Ready);
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

    #[test]
    fn shape_learns_the_accepted_size_and_grows_back() {
        let mut s = Shape::default();
        assert_eq!(s.limit(), None);
        let big = Size {
            records: 250,
            bytes: 250_000,
        };
        s.refused(big);
        assert_eq!(
            s.limit(),
            Some(Size {
                records: 125,
                bytes: 125_000
            })
        );
        let ok = Size {
            records: 125,
            bytes: 124_000,
        };
        s.accepted(ok);
        assert_eq!(s.limit(), Some(ok));
        for _ in 0..SHAPE_GROW_AFTER {
            s.accepted(Size {
                records: 100,
                bytes: 100_000,
            });
        }
        let trial = s.limit().unwrap();
        assert!(trial.records > 125 && trial.records < 250, "{trial:?}");
        s.refused(trial);
        assert_eq!(s.limit(), Some(ok));
        // The limit is gone: a request as large as the refused one went through.
        s.accepted(big);
        assert_eq!(s.limit(), None);
    }
}
