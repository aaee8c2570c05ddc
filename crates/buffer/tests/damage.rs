//! Damaged segment and ack files: open + read never panic, never return a damaged record,
//! keep order, and the ring keeps working afterwards.

mod common;

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::time::Duration;

use agent_buffer::{Ring, RingOptions, RECORD_HEADER_LEN};
use common::{check, len_for, payload};
use proptest::prelude::*;

fn opts() -> RingOptions {
    RingOptions {
        segment_size: 512,
        capacity: 64 * 1024,
        flush_interval: Duration::from_secs(3600),
        write_buffer: 128,
    }
}

/// Writes `count` records over several segments, acknowledging the first `acked`.
fn populate(dir: &Path, count: u64, acked: u64) {
    let (mut writer, mut reader) = Ring::open(dir, opts()).expect("open");
    for i in 0..count {
        writer
            .append(&payload(0, i, len_for(i, 120)))
            .expect("append");
    }
    writer.flush().expect("flush");
    if acked > 0 {
        let batch = reader.read_batch(acked as usize, usize::MAX).expect("read");
        let (last, _) = batch.last().expect("records");
        reader.ack(*last).expect("ack");
    }
}

/// Files in `dir` that damage may target (segments and the ack file), sorted.
fn targets(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "seg") || p.file_name().is_some_and(|n| n == "ack")
        })
        .collect();
    files.sort();
    files
}

#[derive(Debug, Clone)]
enum Damage {
    Flip { file: usize, at: usize, bit: u8 },
    Truncate { file: usize, per_mille: u16 },
    Garbage { file: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(file, at, bit)| Damage::Flip { file, at, bit }),
        2 => (any::<usize>(), 0u16..=1000).prop_map(|(file, per_mille)| Damage::Truncate { file, per_mille }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(file, bytes)| Damage::Garbage { file, bytes }),
    ]
}

fn apply(dir: &Path, damage: &Damage) {
    let files = targets(dir);
    if files.is_empty() {
        return;
    }
    match damage {
        Damage::Flip { file, at, bit } => {
            let path = &files[file % files.len()];
            let mut bytes = fs::read(path).expect("read");
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= 1 << bit;
                fs::write(path, bytes).expect("write");
            }
        }
        Damage::Truncate { file, per_mille } => {
            let path = &files[file % files.len()];
            let len = fs::metadata(path).expect("metadata").len();
            let file = OpenOptions::new().write(true).open(path).expect("open");
            file.set_len(len * u64::from(*per_mille) / 1000)
                .expect("truncate");
        }
        Damage::Garbage { file, bytes } => {
            let path = &files[file % files.len()];
            let mut data = fs::read(path).expect("read");
            data.extend_from_slice(bytes);
            fs::write(path, data).expect("write");
        }
    }
}

/// Reads everything, asserting each record is intact and in order.
fn drain(reader: &mut agent_buffer::RingReader, run: u32, after: Option<u64>) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        let batch = reader.read_batch(7, 300).expect("read");
        if batch.is_empty() {
            return seen;
        }
        for (_, data) in batch {
            let (r, index) = check(&data).expect("a returned record is never damaged");
            assert_eq!(r, run);
            assert!(
                seen.last()
                    .or(after.as_ref())
                    .is_none_or(|last| index > *last),
                "order kept"
            );
            seen.push(index);
        }
    }
    panic!("reader did not reach the end");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn damaged_files_never_yield_damaged_records(
        count in 1u64..80,
        acked in 0u64..40,
        damages in proptest::collection::vec(damage(), 1..6),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let acked = acked.min(count);
        populate(dir.path(), count, acked);
        for d in &damages {
            apply(dir.path(), d);
        }
        let (mut writer, mut reader) = Ring::open(dir.path(), opts()).expect("open after damage");
        let old = drain(&mut reader, 0, None);
        prop_assert!(old.iter().all(|i| *i < count));

        // The ring still works: new records all come out, after the old ones.
        for i in 0..5 {
            writer.append(&payload(1, i, 40)).expect("append");
        }
        writer.flush().expect("flush");
        prop_assert_eq!(drain(&mut reader, 1, None), vec![0, 1, 2, 3, 4]);
    }
}

#[test]
fn corrupt_record_in_the_middle_is_skipped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path(), 6, 0);
    let first_segment = targets(dir.path())[0].clone();
    let mut bytes = fs::read(&first_segment).expect("read");
    // Flip a payload byte of the second record (records 0 and 1 have known lengths).
    let second = RECORD_HEADER_LEN + len_for(0, 120);
    bytes[second + RECORD_HEADER_LEN + 3] ^= 0xff;
    fs::write(&first_segment, bytes).expect("write");

    let (_writer, mut reader) = Ring::open(dir.path(), opts()).expect("open");
    let seen = drain(&mut reader, 0, None);
    assert_eq!(seen, vec![0, 2, 3, 4, 5]);
    assert_eq!(reader.stats().corrupt_skipped, 1);
    assert_eq!(reader.stats().records_lost, 1);
}

#[test]
fn damaged_header_resynchronises_on_the_next_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path(), 6, 0);
    let first_segment = targets(dir.path())[0].clone();
    let mut bytes = fs::read(&first_segment).expect("read");
    let second = RECORD_HEADER_LEN + len_for(0, 120);
    bytes[second] ^= 0x40; // the length field of record 1
    fs::write(&first_segment, bytes).expect("write");

    let (_writer, mut reader) = Ring::open(dir.path(), opts()).expect("open");
    assert_eq!(drain(&mut reader, 0, None), vec![0, 2, 3, 4, 5]);
    assert_eq!(reader.stats().corrupt_skipped, 1);
    assert_eq!(reader.stats().records_lost, 1);
}
