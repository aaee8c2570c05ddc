//! Captured frames in, `dns-query-result` events out: frame parsing, loopback duplicates,
//! TCP reassembly, message parsing, process attribution and aggregation of repeats, with
//! counters for everything skipped. Plain Rust: the Linux capture and a macOS BPF reader
//! drive the same decoder, and tests replay recorded frames through it.

use std::collections::HashMap;
use std::net::IpAddr;

use agent_event::{Process, Timestamp};

use crate::aggregate::{Aggregator, EventOut};
use crate::frame::{parse_frame, FrameError, LinkType, Transport};
use crate::message::{is_response, response_event, Flow};
use crate::tcp::TcpStreams;

/// Where a frame was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Capture time.
    pub ts: Timestamp,
    /// A loopback interface's copy of a packet being sent. Loopback hands every packet to
    /// a capture twice (sent, then received); the sent copy is skipped so that each
    /// message counts once.
    pub loopback_outgoing: bool,
}

impl FrameMeta {
    /// A frame seen at `ts`, not a loopback duplicate.
    pub fn at(ts: Timestamp) -> FrameMeta {
        FrameMeta {
            ts,
            loopback_outgoing: false,
        }
    }
}

/// The process that owned the client socket of a response, when known for certain.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributed {
    /// `process.*`.
    pub process: Process,
    /// `sekoiaio.process.guid`.
    pub guid: String,
}

/// Finds the process a response was for. Implementations answer only when certain.
pub trait Attribution {
    /// The process owning the client end of `flow` (the response's destination).
    fn process_of(&mut self, flow: &Flow) -> Option<Attributed>;
}

/// Attribution that never knows (replays, other OSes).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAttribution;

impl Attribution for NoAttribution {
    fn process_of(&mut self, _flow: &Flow) -> Option<Attributed> {
        None
    }
}

/// What the decoder saw and skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames given.
    pub frames: u64,
    /// Loopback's second copies, skipped.
    pub loopback_duplicates: u64,
    /// Frames that were not DNS over UDP/TCP port 53.
    pub not_dns: u64,
    /// IP fragments (not reassembled).
    pub fragments: u64,
    /// Frames whose headers could not be read.
    pub malformed_frames: u64,
    /// DNS queries (they make no event).
    pub queries: u64,
    /// DNS responses read.
    pub responses: u64,
    /// Messages that could not be read (counted, skipped).
    pub malformed_messages: u64,
    /// TCP streams ended by a gap or skipped for lack of room.
    pub tcp_lost: u64,
    /// Responses counted into an earlier event's `sekoiaio.repeat.count`.
    pub repeats: u64,
    /// Events emitted.
    pub events: u64,
}

/// The decoder settings.
#[derive(Debug, Clone, Copy)]
pub struct DecoderOptions {
    /// Window of the repeat aggregation, in milliseconds (0: every response is an event).
    pub repeat_window_ms: u64,
    /// Distinct answers held at most while their window runs.
    pub max_pending: usize,
    /// TCP streams reassembled at most at once.
    pub max_tcp_streams: usize,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions {
            repeat_window_ms: 1000,
            max_pending: 4096,
            max_tcp_streams: 1024,
        }
    }
}

/// Frames to events. See the module documentation.
#[derive(Debug)]
pub struct Decoder {
    link: LinkType,
    tcp: TcpStreams,
    aggregator: Aggregator,
    stats: DecodeStats,
    messages: Vec<Vec<u8>>,
    last_ms: u64,
    /// When each outstanding query was seen, by client address, port and message id:
    /// the response's `event.start`.
    queries: HashMap<(IpAddr, u16, u16), Timestamp>,
    /// When unanswered queries were last forgotten.
    queries_swept_ms: u64,
}

/// Outstanding queries remembered at most (their answers then have no `event.start`).
const MAX_QUERIES: usize = 8192;
/// A query unanswered for this long is forgotten.
const QUERY_TTL_MS: u64 = 30_000;

fn millis(ts: &Timestamp) -> u64 {
    let secs = u64::try_from(ts.unix_seconds()).unwrap_or(0);
    secs.saturating_mul(1000) + u64::from(ts.subsec_nanos() / 1_000_000)
}

impl Decoder {
    /// A decoder of frames of `link` type.
    pub fn new(link: LinkType, options: DecoderOptions) -> Decoder {
        Decoder {
            link,
            tcp: TcpStreams::new(options.max_tcp_streams, 30_000),
            aggregator: Aggregator::new(options.repeat_window_ms, options.max_pending),
            stats: DecodeStats::default(),
            messages: Vec::new(),
            last_ms: 0,
            queries: HashMap::new(),
            queries_swept_ms: 0,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Decodes one frame; events whose aggregation window ended are appended to `out`.
    pub fn push_frame(
        &mut self,
        frame: &[u8],
        meta: FrameMeta,
        attribution: &mut dyn Attribution,
        out: &mut impl EventOut,
    ) {
        self.stats.frames += 1;
        let now_ms = millis(&meta.ts);
        self.last_ms = self.last_ms.max(now_ms);
        let before = out.count();
        self.push_inner(frame, meta, now_ms, attribution, out);
        self.aggregator.flush_due(self.last_ms, out);
        self.stats.events += (out.count() - before) as u64;
    }

    fn push_inner(
        &mut self,
        frame: &[u8],
        meta: FrameMeta,
        now_ms: u64,
        attribution: &mut dyn Attribution,
        out: &mut impl EventOut,
    ) {
        if meta.loopback_outgoing {
            self.stats.loopback_duplicates += 1;
            return;
        }
        let seg = match parse_frame(self.link, frame) {
            Ok(s) => s,
            Err(FrameError::NotDns) => {
                self.stats.not_dns += 1;
                return;
            }
            Err(FrameError::Fragmented) => {
                self.stats.fragments += 1;
                return;
            }
            Err(FrameError::Malformed(_)) => {
                self.stats.malformed_frames += 1;
                return;
            }
        };
        let flow = Flow {
            src: seg.src,
            sport: seg.sport,
            dst: seg.dst,
            dport: seg.dport,
            transport: seg.transport,
        };
        match (seg.transport, seg.tcp) {
            (Transport::Tcp, Some(tcp)) => {
                if !seg.from_server() {
                    // Queries over TCP make no event; no need to reassemble them.
                    // The first segment of a query carries its id after the length.
                    if seg.payload.len() >= 14 && !is_response(&seg.payload[2..]) {
                        self.stats.queries += 1;
                        let id = u16::from_be_bytes([seg.payload[2], seg.payload[3]]);
                        self.remember_query(&flow, id, meta.ts);
                    }
                    return;
                }
                let mut messages = std::mem::take(&mut self.messages);
                let r = self.tcp.push(flow, tcp, seg.payload, now_ms, &mut messages);
                if r.gap || r.no_room {
                    self.stats.tcp_lost += 1;
                }
                for m in messages.drain(..) {
                    self.message(&m, &flow, meta.ts, attribution, out);
                }
                self.messages = messages;
            }
            _ => {
                let payload = seg.payload;
                self.message(payload, &flow, meta.ts, attribution, out);
            }
        }
    }

    fn message(
        &mut self,
        msg: &[u8],
        flow: &Flow,
        ts: Timestamp,
        attribution: &mut dyn Attribution,
        out: &mut impl EventOut,
    ) {
        if msg.len() >= 12 && !is_response(msg) {
            self.stats.queries += 1;
            if flow.dport == crate::frame::DNS_PORT {
                self.remember_query(flow, u16::from_be_bytes([msg[0], msg[1]]), ts);
            }
            return;
        }
        match response_event(msg, flow, ts) {
            Ok(Some(e)) => {
                let mut e = Box::new(e);
                self.stats.responses += 1;
                let id = u16::from_be_bytes([msg[0], msg[1]]);
                e.event.start = Some(
                    self.queries
                        .remove(&(flow.dst, flow.dport, id))
                        .unwrap_or(ts),
                );
                e.event.end = Some(ts);
                if let Some(a) = attribution.process_of(flow) {
                    e.process = a.process;
                    e.sekoiaio.process.guid = a.guid;
                }
                if self.aggregator.push(e, self.last_ms, out) {
                    self.stats.repeats += 1;
                }
            }
            Ok(None) => self.stats.queries += 1,
            Err(_) => self.stats.malformed_messages += 1,
        }
    }

    fn remember_query(&mut self, flow: &Flow, id: u16, ts: Timestamp) {
        if self.queries.len() >= MAX_QUERIES {
            let now = self.last_ms;
            self.queries
                .retain(|_, t| now.saturating_sub(millis(t)) < QUERY_TTL_MS);
            if self.queries.len() >= MAX_QUERIES {
                return;
            }
        }
        self.queries.insert((flow.src, flow.sport, id), ts);
    }

    /// Emits the events whose window ended by `now` (call it when no frame came for a while).
    pub fn tick(&mut self, now: Timestamp, out: &mut impl EventOut) {
        let now_ms = millis(&now);
        self.last_ms = self.last_ms.max(now_ms);
        let before = out.count();
        self.aggregator.flush_due(self.last_ms, out);
        // Idle TCP streams and unanswered queries are forgotten once a second, not on
        // every call (the collector ticks after every burst of frames).
        let now = self.last_ms;
        if now.saturating_sub(self.queries_swept_ms) >= 1000 {
            self.queries_swept_ms = now;
            self.tcp.expire(now);
            self.queries
                .retain(|_, t| now.saturating_sub(millis(t)) < QUERY_TTL_MS);
        }
        self.stats.events += (out.count() - before) as u64;
    }

    /// Emits every held event (shutdown, end of a replay).
    pub fn finish(&mut self, out: &mut impl EventOut) {
        let before = out.count();
        self.aggregator.flush_all(out);
        self.stats.events += (out.count() - before) as u64;
    }
}
