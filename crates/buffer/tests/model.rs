//! Model-based property test: random append / read / ack / reopen / crash sequences
//! against an in-memory model of the ring's documented behaviour.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::path::Path;
use std::time::Duration;

use agent_buffer::{
    Position, Ring, RingError, RingOptions, RingReader, RingWriter, RECORD_HEADER_LEN,
};
use proptest::prelude::*;

const HEADER: u64 = RECORD_HEADER_LEN as u64;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Batch(Vec<Vec<u8>>),
    Read {
        max_records: usize,
        max_bytes: usize,
    },
    Ack(usize),
    Flush,
    FlushIfDue,
    Reopen,
    /// Drop the reader and open a new one on the same ring (a restarted consumer).
    ReopenReader,
    /// Cut the newest segment at this fraction (per mille) of its length.
    Crash(u16),
}

#[derive(Debug, Clone)]
struct MRec {
    seq: u64,
    payload: Vec<u8>,
    end: u64,
}

impl MRec {
    fn frame(&self) -> u64 {
        HEADER + self.payload.len() as u64
    }
}

#[derive(Debug, Clone)]
struct MSeg {
    number: u64,
    len: u64,
    recs: Vec<MRec>,
}

/// What the ring should contain, computed from the documented rules only.
#[derive(Debug)]
struct Model {
    segment_size: u64,
    capacity: u64,
    write_buffer: u64,
    segs: VecDeque<MSeg>,
    /// Trailing records of the active segment still in the writer's buffer.
    buffered_recs: usize,
    buffered_bytes: u64,
    next_seq: u64,
    ack: Option<(u64, u64, u64)>,
    cursor: Option<u64>,
    delivered: Vec<Position>,
    dropped_records: u64,
    dropped_bytes: u64,
}

impl Model {
    fn new(segment_size: u64, capacity: u64, write_buffer: u64) -> Self {
        let mut model = Self {
            segment_size,
            capacity,
            write_buffer,
            segs: VecDeque::new(),
            buffered_recs: 0,
            buffered_bytes: 0,
            next_seq: 0,
            ack: None,
            cursor: None,
            delivered: Vec::new(),
            dropped_records: 0,
            dropped_bytes: 0,
        };
        model.open(None);
        model
    }

    fn fits(&self, payload: &[u8]) -> bool {
        HEADER + payload.len() as u64 <= self.segment_size
    }

    fn make_room(&mut self) {
        let mut total: u64 = self.segs.iter().map(|s| s.len).sum();
        // Records acknowledged or already read are not dropped: the reader has them.
        let floor = self.ack.map(|a| a.0).max(self.cursor);
        while total + self.segment_size > self.capacity {
            let Some(oldest) = self.segs.pop_front() else {
                break;
            };
            total -= oldest.len;
            for rec in &oldest.recs {
                if floor.is_none_or(|seq| rec.seq > seq) {
                    self.dropped_records += 1;
                    self.dropped_bytes += rec.frame();
                }
            }
        }
    }

    fn publish(&mut self) {
        self.buffered_recs = 0;
        self.buffered_bytes = 0;
    }

    fn push(&mut self, payload: &[u8]) -> (u64, u64, u64) {
        let frame = HEADER + payload.len() as u64;
        let active = self.segs.back().map_or(0, |s| s.len);
        if active + frame > self.segment_size {
            self.publish();
            let number = self.segs.back().map_or(0, |s| s.number) + 1;
            self.make_room();
            self.segs.push_back(MSeg {
                number,
                len: 0,
                recs: Vec::new(),
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let seg = self.segs.back_mut().expect("active segment");
        seg.len += frame;
        seg.recs.push(MRec {
            seq,
            payload: payload.to_vec(),
            end: seg.len,
        });
        self.buffered_recs += 1;
        self.buffered_bytes += frame;
        (seq, seg.number, seg.len)
    }

    fn append(&mut self, payload: &[u8]) -> (u64, u64, u64) {
        let pos = self.push(payload);
        if self.buffered_bytes >= self.write_buffer {
            self.publish();
        }
        pos
    }

    /// Records the reader can see, oldest first.
    fn visible(&self) -> Vec<(u64, u64, u64, Vec<u8>)> {
        let mut out: Vec<_> = self
            .segs
            .iter()
            .flat_map(|s| {
                s.recs
                    .iter()
                    .map(move |r| (r.seq, s.number, r.end, r.payload.clone()))
            })
            .collect();
        out.truncate(out.len() - self.buffered_recs);
        out
    }

    fn read(&mut self, max_records: usize, max_bytes: usize) -> Vec<(u64, u64, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for rec in self.visible() {
            if out.len() >= max_records {
                break;
            }
            if self.cursor.is_some_and(|c| rec.0 <= c) {
                continue;
            }
            if !out.is_empty() && bytes + rec.3.len() > max_bytes {
                break;
            }
            bytes += rec.3.len();
            self.cursor = Some(rec.0);
            out.push(rec);
        }
        out
    }

    fn ack(&mut self, pos: Position) {
        if self.ack.is_some_and(|(seq, _, _)| seq >= pos.seq()) {
            return;
        }
        self.ack = Some((pos.seq(), pos.segment(), pos.offset()));
        while self.segs.len() > 1 && self.segs.front().is_some_and(|s| s.number < pos.segment()) {
            self.segs.pop_front();
        }
    }

    /// Cuts the newest segment at `cut` bytes (a crash losing its tail).
    fn crash(&mut self, cut: u64) {
        if let Some(last) = self.segs.back_mut() {
            last.recs.retain(|r| r.end <= cut);
            last.len = cut;
        }
    }

    /// Reopen after the writer was dropped (which publishes its buffer).
    fn open(&mut self, _unused: Option<()>) {
        self.publish();
        let last_number = self.segs.back().map(|s| s.number);
        if let Some(last) = self.segs.back_mut() {
            last.len = last.recs.last().map_or(0, |r| r.end);
            if last.len == 0 {
                self.segs.pop_back();
            }
        }
        let last_seq = self
            .segs
            .iter()
            .filter_map(|s| s.recs.last().map(|r| r.seq))
            .max();
        self.next_seq = last_seq
            .into_iter()
            .chain(self.ack.map(|a| a.0))
            .max()
            .map_or(0, |s| s + 1);
        let number = last_number
            .into_iter()
            .chain(self.ack.map(|a| a.1))
            .max()
            .map_or(0, |n| n + 1);
        self.dropped_records = 0;
        self.dropped_bytes = 0;
        // A new reader starts right after the acknowledgement.
        self.cursor = self.ack.map(|a| a.0);
        self.make_room();
        self.segs.push_back(MSeg {
            number,
            len: 0,
            recs: Vec::new(),
        });
        self.cursor = self.ack.map(|a| a.0);
        self.delivered.clear();
    }
}

fn open_ring(dir: &Path, model: &Model) -> (RingWriter, RingReader) {
    Ring::open(
        dir,
        RingOptions {
            segment_size: model.segment_size,
            capacity: model.capacity,
            flush_interval: Duration::from_secs(3600),
            write_buffer: model.write_buffer as usize,
        },
    )
    .expect("open ring")
}

fn triple(pos: &Position) -> (u64, u64, u64) {
    (pos.seq(), pos.segment(), pos.offset())
}

fn check_stats(reader: &RingReader, model: &Model) -> Result<(), TestCaseError> {
    let stats = reader.stats();
    prop_assert_eq!(stats.records_dropped, model.dropped_records);
    prop_assert_eq!(stats.bytes_dropped, model.dropped_bytes);
    prop_assert_eq!(stats.corrupt_skipped, 0);
    // Nothing is ever missing from an undamaged ring, whatever the drops and reopens.
    prop_assert_eq!(stats.records_lost, 0);
    prop_assert_eq!(stats.segments, model.segs.len());
    let visible = model.visible();
    let ack_seq = model.ack.map(|a| a.0);
    let pending: Vec<_> = visible
        .iter()
        .filter(|r| ack_seq.is_none_or(|a| r.0 > a))
        .collect();
    prop_assert_eq!(stats.records_pending, pending.len() as u64);
    let on_disk: u64 = model.segs.iter().map(|s| s.len).sum::<u64>() - model.buffered_bytes;
    prop_assert_eq!(stats.bytes_on_disk, on_disk);
    Ok(())
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => proptest::collection::vec(any::<u8>(), 0..100),
        1 => proptest::collection::vec(any::<u8>(), 200..400),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => payload().prop_map(Op::Append),
        4 => proptest::collection::vec(payload(), 0..8).prop_map(Op::Batch),
        6 => (1usize..10, 0usize..300).prop_map(|(max_records, max_bytes)| Op::Read { max_records, max_bytes }),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Flush),
        1 => Just(Op::FlushIfDue),
        1 => Just(Op::Reopen),
        1 => Just(Op::ReopenReader),
        1 => (0u16..=1000).prop_map(Op::Crash),
    ]
}

fn run(
    segment_size: u64,
    segments_in_cap: u64,
    write_buffer: u64,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Model::new(segment_size, segment_size * segments_in_cap, write_buffer);
    let (mut writer, mut reader) = open_ring(dir.path(), &model);
    for op in ops {
        match op {
            Op::Append(payload) => {
                let result = writer.append(&payload);
                if model.fits(&payload) {
                    let pos = result.expect("append");
                    prop_assert_eq!(triple(&pos), model.append(&payload));
                } else {
                    let is_too_large = matches!(result, Err(RingError::RecordTooLarge { .. }));
                    prop_assert!(is_too_large);
                }
            }
            Op::Batch(batch) => {
                let result = writer.append_batch(&batch);
                if batch.iter().all(|p| model.fits(p)) {
                    let last = result.expect("append_batch");
                    let mut expected = None;
                    for payload in &batch {
                        expected = Some(model.push(payload));
                        if model.buffered_bytes >= model.write_buffer {
                            model.publish();
                        }
                    }
                    model.publish();
                    prop_assert_eq!(last.as_ref().map(triple), expected);
                } else {
                    let is_too_large = matches!(result, Err(RingError::RecordTooLarge { .. }));
                    prop_assert!(is_too_large);
                }
            }
            Op::Read {
                max_records,
                max_bytes,
            } => {
                let got = reader
                    .read_batch(max_records, max_bytes)
                    .expect("read_batch");
                let got: Vec<_> = got
                    .into_iter()
                    .map(|(pos, data)| {
                        model.delivered.push(pos);
                        (pos.seq(), pos.segment(), pos.offset(), data)
                    })
                    .collect();
                prop_assert_eq!(got, model.read(max_records, max_bytes));
            }
            Op::Ack(pick) => {
                if !model.delivered.is_empty() {
                    let pos = model.delivered[pick % model.delivered.len()];
                    reader.ack(pos).expect("ack");
                    model.ack(pos);
                }
            }
            Op::Flush => {
                writer.flush().expect("flush");
                model.publish();
            }
            Op::FlushIfDue => {
                writer.flush_if_due().expect("flush_if_due");
                model.publish();
            }
            Op::Reopen => {
                drop(writer);
                drop(reader);
                model.open(None);
                (writer, reader) = open_ring(dir.path(), &model);
            }
            Op::ReopenReader => {
                let reopener = reader.reopener();
                let busy = matches!(reopener.reopen(), Err(RingError::ReaderBusy(_)));
                prop_assert!(busy, "a second live reader must be refused");
                drop(reader);
                reader = reopener.reopen().expect("reopen the reader");
                // It resumes after the acknowledgement; unacknowledged reads come again.
                model.cursor = model.ack.map(|a| a.0);
                model.delivered.clear();
            }
            Op::Crash(per_mille) => {
                drop(writer);
                drop(reader);
                model.publish();
                let newest = model.segs.back().expect("segment").number;
                let path = dir.path().join(format!("{newest:020}.seg"));
                let len = std::fs::metadata(&path).expect("segment exists").len();
                let cut = len * u64::from(per_mille) / 1000;
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .expect("open segment")
                    .set_len(cut)
                    .expect("truncate");
                model.crash(cut);
                model.open(None);
                (writer, reader) = open_ring(dir.path(), &model);
            }
        }
        check_stats(&reader, &model)?;
    }
    // Drain: everything the model still holds comes out, in order.
    writer.flush().expect("flush");
    model.publish();
    let mut got = Vec::new();
    loop {
        let batch = reader.read_batch(1000, usize::MAX).expect("read_batch");
        if batch.is_empty() {
            break;
        }
        got.extend(
            batch
                .into_iter()
                .map(|(p, d)| (p.seq(), p.segment(), p.offset(), d)),
        );
    }
    prop_assert_eq!(got, model.read(usize::MAX, usize::MAX));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_model(
        segment_size in prop_oneof![Just(256u64), Just(400), Just(1024)],
        segments_in_cap in 2u64..6,
        write_buffer in prop_oneof![Just(0u64), Just(100), Just(600), Just(1 << 20)],
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(segment_size, segments_in_cap, write_buffer, ops)?;
    }
}
