//! Writing three times the capacity keeps the directory bounded, keeps the newest records
//! and counts exactly what was dropped.

mod common;

use std::time::Duration;

use agent_buffer::{Ring, RingOptions, RECORD_HEADER_LEN};
use common::{check, len_for, payload, segment_bytes};

#[test]
fn three_times_capacity_keeps_newest_and_counts_drops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = RingOptions {
        segment_size: 64 * 1024,
        capacity: 1024 * 1024,
        flush_interval: Duration::from_secs(3600),
        write_buffer: 16 * 1024,
    };
    let (mut writer, mut reader) = Ring::open(dir.path(), opts.clone()).expect("open");

    let mut lens = Vec::new();
    let mut written_bytes = 0u64;
    let mut index = 0u64;
    while written_bytes < 3 * opts.capacity {
        let len = len_for(index, 1500);
        if index % 5 == 0 {
            let batch: Vec<_> = (0..4)
                .map(|k| payload(0, index + k, len_for(index + k, 1500)))
                .collect();
            writer.append_batch(&batch).expect("append_batch");
            for record in &batch {
                lens.push(record.len());
                written_bytes += (RECORD_HEADER_LEN + record.len()) as u64;
            }
            index += 4;
        } else {
            writer.append(&payload(0, index, len)).expect("append");
            lens.push(len);
            written_bytes += (RECORD_HEADER_LEN + len) as u64;
            index += 1;
        }
        if index % 100 == 0 {
            let on_disk = segment_bytes(dir.path());
            assert!(
                on_disk <= opts.capacity + opts.segment_size,
                "{on_disk} bytes on disk after {index} records"
            );
        }
    }
    writer.flush().expect("flush");
    let on_disk = segment_bytes(dir.path());
    assert!(
        on_disk <= opts.capacity + opts.segment_size,
        "{on_disk} bytes on disk"
    );
    assert!(
        on_disk > opts.capacity / 2,
        "ring should be nearly full, has {on_disk}"
    );

    let mut read = Vec::new();
    loop {
        let batch = reader.read_batch(500, 1 << 20).expect("read");
        if batch.is_empty() {
            break;
        }
        read.extend(
            batch
                .into_iter()
                .map(|(_, data)| check(&data).expect("intact record").1),
        );
    }
    let written = lens.len() as u64;
    let first = *read.first().expect("some records survive");
    // The survivors are exactly the newest records, contiguous and in order.
    assert_eq!(read, (first..written).collect::<Vec<_>>());

    let stats = reader.stats();
    assert_eq!(stats.records_dropped, written - read.len() as u64);
    assert_eq!(stats.records_dropped, first);
    let dropped_bytes: u64 = lens[..first as usize]
        .iter()
        .map(|l| (RECORD_HEADER_LEN + l) as u64)
        .sum();
    assert_eq!(stats.bytes_dropped, dropped_bytes);
    assert_eq!(stats.records_pending, read.len() as u64);
    assert_eq!(stats.bytes_on_disk, on_disk);
}

#[test]
fn acknowledged_records_are_not_counted_as_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = RingOptions {
        segment_size: 4096,
        capacity: 16 * 1024,
        flush_interval: Duration::from_secs(3600),
        write_buffer: 0,
    };
    let (mut writer, mut reader) = Ring::open(dir.path(), opts).expect("open");
    for i in 0..100 {
        writer.append(&payload(1, i, 100)).expect("append");
    }
    let batch = reader.read_batch(usize::MAX, usize::MAX).expect("read");
    let (last, _) = batch.last().expect("records");
    reader.ack(*last).expect("ack");
    assert_eq!(reader.stats().records_pending, 0);
    assert_eq!(reader.stats().records_dropped, 0);
    // Fill the ring again well past its capacity: only unacked records count as dropped.
    for i in 100..400 {
        writer.append(&payload(1, i, 100)).expect("append");
    }
    let batch = reader.read_batch(usize::MAX, usize::MAX).expect("read");
    let first = check(&batch[0].1).expect("intact").1;
    assert_eq!(reader.stats().records_dropped, first - 100);
    assert_eq!(batch.len() as u64, 400 - first);
}

#[test]
fn oversized_record_is_rejected_with_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = RingOptions {
        segment_size: 1024,
        capacity: 4096,
        ..RingOptions::default()
    };
    let (mut writer, mut reader) = Ring::open(dir.path(), opts.clone()).expect("open");
    let max = opts.max_record_len();
    assert_eq!(max, 1024 - RECORD_HEADER_LEN);
    let err = writer.append(&vec![0u8; max + 1]).expect_err("too large");
    assert!(
        matches!(err, agent_buffer::RingError::RecordTooLarge { len, max: m } if len == max + 1 && m == max)
    );
    let err = writer
        .append_batch(&[vec![1u8; 10], vec![0u8; max + 1]])
        .expect_err("too large");
    assert!(matches!(
        err,
        agent_buffer::RingError::RecordTooLarge { .. }
    ));
    writer.append(&vec![7u8; max]).expect("largest record fits");
    writer.flush().expect("flush");
    let batch = reader.read_batch(10, usize::MAX).expect("read");
    assert_eq!(
        batch.len(),
        1,
        "the rejected batch must not be partially appended"
    );
    assert_eq!(batch[0].1, vec![7u8; max]);
}
