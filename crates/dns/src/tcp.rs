//! DNS over TCP: the server-to-client byte stream of each connection, cut into messages at
//! their 2-byte length prefixes (RFC 1035 §4.2.2). A message may span segments and a segment
//! may carry several messages. A gap (a segment the capture lost) ends the stream rather than
//! guessing where the next message starts.

use std::collections::HashMap;

use crate::frame::TcpInfo;
use crate::message::Flow;

/// Largest buffer kept per stream: one maximal message with its prefix, plus a segment.
const MAX_BUFFER: usize = 2 + 65_535 + 65_535;

#[derive(Debug)]
struct Stream {
    next_seq: u32,
    buf: Vec<u8>,
    last_ms: u64,
}

/// What one segment did to its stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TcpOutcome {
    /// A gap or an oversized buffer ended the stream (bytes lost to the capture).
    pub gap: bool,
    /// No room for a new stream: the segment was skipped.
    pub no_room: bool,
}

/// The TCP streams from DNS servers being reassembled.
#[derive(Debug)]
pub struct TcpStreams {
    streams: HashMap<Flow, Stream>,
    max_streams: usize,
    idle_ms: u64,
}

impl Default for TcpStreams {
    fn default() -> Self {
        TcpStreams::new(1024, 30_000)
    }
}

/// `a` is after `b` in sequence space (RFC 1982 arithmetic on 32 bits).
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl TcpStreams {
    /// At most `max_streams` open streams; a stream idle for `idle_ms` is forgotten.
    pub fn new(max_streams: usize, idle_ms: u64) -> TcpStreams {
        TcpStreams {
            streams: HashMap::new(),
            max_streams,
            idle_ms,
        }
    }

    /// Streams open now.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// No stream open.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Feeds one segment sent by the server on `flow`; complete messages are appended to
    /// `out`.
    pub fn push(
        &mut self,
        flow: Flow,
        tcp: TcpInfo,
        payload: &[u8],
        now_ms: u64,
        out: &mut Vec<Vec<u8>>,
    ) -> TcpOutcome {
        let mut outcome = TcpOutcome::default();
        if !self.streams.contains_key(&flow) {
            if payload.is_empty() && !tcp.syn {
                return outcome;
            }
            if self.streams.len() >= self.max_streams {
                self.expire(now_ms);
                if self.streams.len() >= self.max_streams {
                    outcome.no_room = true;
                    return outcome;
                }
            }
            // Without the SYN (a connection older than the capture), assume the segment
            // starts a message; a wrong guess fails to parse and is counted as malformed.
            let start = if tcp.syn {
                tcp.seq.wrapping_add(1)
            } else {
                tcp.seq
            };
            self.streams.insert(
                flow,
                Stream {
                    next_seq: start,
                    buf: Vec::new(),
                    last_ms: now_ms,
                },
            );
        }
        let Some(stream) = self.streams.get_mut(&flow) else {
            return outcome;
        };
        stream.last_ms = now_ms;
        let seq = if tcp.syn {
            tcp.seq.wrapping_add(1)
        } else {
            tcp.seq
        };
        if tcp.syn && stream.buf.is_empty() {
            stream.next_seq = seq;
        }
        if !payload.is_empty() {
            if seq_after(seq, stream.next_seq) {
                outcome.gap = true;
                self.streams.remove(&flow);
                return outcome;
            }
            // Skip what was already taken (retransmissions, overlaps).
            let already = stream.next_seq.wrapping_sub(seq) as usize;
            if already < payload.len() {
                let fresh = &payload[already..];
                stream.buf.extend_from_slice(fresh);
                stream.next_seq = stream.next_seq.wrapping_add(fresh.len() as u32);
            }
            let mut at = 0;
            while stream.buf.len() - at >= 2 {
                let len = usize::from(u16::from_be_bytes([stream.buf[at], stream.buf[at + 1]]));
                if stream.buf.len() - at - 2 < len {
                    break;
                }
                out.push(stream.buf[at + 2..at + 2 + len].to_vec());
                at += 2 + len;
            }
            stream.buf.drain(..at);
            if stream.buf.len() > MAX_BUFFER {
                outcome.gap = true;
                self.streams.remove(&flow);
                return outcome;
            }
        }
        if tcp.fin_or_rst {
            self.streams.remove(&flow);
        }
        outcome
    }

    /// Forgets streams idle since before `now_ms - idle`.
    pub fn expire(&mut self, now_ms: u64) {
        let idle = self.idle_ms;
        self.streams
            .retain(|_, s| now_ms.saturating_sub(s.last_ms) < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Transport;

    fn flow() -> Flow {
        Flow {
            src: "127.0.0.1".parse().unwrap(),
            sport: 53,
            dst: "127.0.0.1".parse().unwrap(),
            dport: 40000,
            transport: Transport::Tcp,
        }
    }

    fn seg(seq: u32) -> TcpInfo {
        TcpInfo {
            seq,
            syn: false,
            fin_or_rst: false,
        }
    }

    fn framed(msgs: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            v.extend_from_slice(&(m.len() as u16).to_be_bytes());
            v.extend_from_slice(m);
        }
        v
    }

    #[test]
    fn messages_split_across_segments_and_packed_together() {
        let mut t = TcpStreams::default();
        let mut out = Vec::new();
        let syn = TcpInfo {
            seq: u32::MAX - 3,
            syn: true,
            fin_or_rst: false,
        };
        t.push(flow(), syn, b"", 0, &mut out);
        let bytes = framed(&[b"first message", b"second", b"third one"]);
        // Sequence numbers wrap inside the stream.
        let mut seq = u32::MAX - 2;
        for chunk in bytes.chunks(5) {
            t.push(flow(), seg(seq), chunk, 1, &mut out);
            seq = seq.wrapping_add(chunk.len() as u32);
        }
        assert_eq!(
            out,
            vec![
                b"first message".to_vec(),
                b"second".to_vec(),
                b"third one".to_vec()
            ]
        );
        assert_eq!(t.len(), 1);
        t.push(
            flow(),
            TcpInfo {
                seq,
                syn: false,
                fin_or_rst: true,
            },
            b"",
            2,
            &mut out,
        );
        assert!(t.is_empty());
    }

    #[test]
    fn retransmissions_are_taken_once_and_gaps_end_the_stream() {
        let mut t = TcpStreams::default();
        let mut out = Vec::new();
        let bytes = framed(&[b"abcdef"]);
        t.push(flow(), seg(100), &bytes[..4], 0, &mut out);
        t.push(flow(), seg(100), &bytes[..4], 0, &mut out);
        t.push(flow(), seg(102), &bytes[2..], 0, &mut out);
        assert_eq!(out, vec![b"abcdef".to_vec()]);

        let r = t.push(flow(), seg(500), b"\x00\x05ab", 0, &mut out);
        assert!(r.gap);
        assert!(t.is_empty());
    }

    #[test]
    fn the_stream_table_is_bounded_and_idle_streams_expire() {
        let mut t = TcpStreams::new(2, 1000);
        let mut out = Vec::new();
        for port in 0..3u16 {
            let f = Flow {
                dport: port,
                ..flow()
            };
            let r = t.push(f, seg(1), b"\x00\x09abc", 0, &mut out);
            assert_eq!(r.no_room, port == 2);
        }
        let f = Flow { dport: 9, ..flow() };
        assert!(!t.push(f, seg(1), b"\x00\x09abc", 5000, &mut out).no_room);
        assert_eq!(t.len(), 1);
    }
}
