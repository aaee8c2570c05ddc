//! Everyday behaviour: a writer thread and a reader thread at once, restarts resuming after
//! the acknowledgement, the directory lock.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_buffer::{Ring, RingError, RingOptions};
use common::{check, len_for, payload};

fn small() -> RingOptions {
    RingOptions {
        segment_size: 16 * 1024,
        capacity: 64 * 1024 * 1024,
        flush_interval: Duration::from_millis(5),
        write_buffer: 2048,
    }
}

#[test]
fn a_batch_ending_on_the_last_record_leaves_nothing_to_wait_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, mut reader) = Ring::open(dir.path(), small()).expect("open");
    for i in 0..10 {
        writer.append(&payload(0, i, 100)).expect("append");
    }
    writer.flush().expect("flush");
    assert!(reader.wait_for_data(Duration::ZERO));
    // Exactly the published records, cut by the record limit and then by the byte limit.
    assert_eq!(reader.read_batch(10, usize::MAX).expect("read").len(), 10);
    assert!(!reader.wait_for_data(Duration::ZERO), "caught up by count");
    writer.append(&payload(0, 10, 100)).expect("append");
    writer.flush().expect("flush");
    assert!(reader.wait_for_data(Duration::ZERO));
    assert_eq!(reader.read_batch(100, 1).expect("read").len(), 1);
    assert!(!reader.wait_for_data(Duration::ZERO), "caught up by size");
}

#[test]
fn writer_and_reader_threads_deliver_everything_in_order() {
    const RECORDS: u64 = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, mut reader) = Ring::open(dir.path(), small()).expect("open");
    let wakeups = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&wakeups);
    reader.set_notify(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    });

    let producer = std::thread::spawn(move || {
        let mut i = 0;
        while i < RECORDS {
            if i % 10 == 0 {
                let end = (i + 7).min(RECORDS);
                let batch: Vec<_> = (i..end).map(|k| payload(0, k, len_for(k, 300))).collect();
                writer.append_batch(&batch).expect("append_batch");
                i = end;
            } else {
                writer
                    .append(&payload(0, i, len_for(i, 300)))
                    .expect("append");
                i += 1;
            }
        }
        writer.flush().expect("flush");
        writer
    });

    let mut next = 0u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while next < RECORDS {
        assert!(
            std::time::Instant::now() < deadline,
            "reader stalled at {next}"
        );
        if !reader.wait_for_data(Duration::from_millis(200)) {
            continue;
        }
        let batch = reader.read_batch(250, 64 * 1024).expect("read");
        for (_, data) in &batch {
            assert_eq!(check(data).expect("intact").1, next);
            next += 1;
        }
        if let Some((pos, _)) = batch.last() {
            reader.ack(*pos).expect("ack");
        }
    }
    let writer = producer.join().expect("writer thread");
    assert!(wakeups.load(Ordering::Relaxed) > 0, "notify hook never ran");
    assert!(
        !reader.wait_for_data(Duration::from_millis(20)),
        "nothing left to read"
    );
    let stats = writer.stats();
    assert_eq!(stats.records_pending, 0);
    assert_eq!(stats.records_dropped, 0);
    assert_eq!(stats.ack_position.map(|p| p.seq()), Some(RECORDS - 1));
    // Fully acknowledged segments were deleted as acks went by.
    assert!(stats.segments <= 2, "{} segments left", stats.segments);
}

#[test]
fn restart_resumes_after_ack_and_redelivers_unacked() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut writer, mut reader) = Ring::open(dir.path(), small()).expect("open");
        for i in 0..100 {
            writer.append(&payload(0, i, 200)).expect("append");
        }
        writer.flush().expect("flush");
        let batch = reader.read_batch(60, usize::MAX).expect("read");
        assert_eq!(batch.len(), 60);
        reader.ack(batch[39].0).expect("ack");
        // Acking less than already acked is a no-op.
        reader.ack(batch[10].0).expect("older ack");
        // Record 60 is read but never acknowledged.
        assert_eq!(reader.read_batch(1, usize::MAX).expect("read").len(), 1);
        reader.ack(batch[59].0).expect("ack read record");
        drop(reader);
        // The writer still holds the directory: a second instance is refused.
        let second = Ring::open(dir.path(), small());
        assert!(
            matches!(second, Err(RingError::Locked(_))),
            "second open must be refused"
        );
        drop(writer);
    }
    let (_writer, mut reader) = Ring::open(dir.path(), small()).expect("reopen");
    let batch = reader.read_batch(usize::MAX, usize::MAX).expect("read");
    let indexes: Vec<_> = batch
        .iter()
        .map(|(_, d)| check(d).expect("intact").1)
        .collect();
    // Acked up to 59; 60 was read but not acked, so it comes again.
    assert_eq!(indexes, (60..100).collect::<Vec<_>>());
    assert_eq!(reader.stats().ack_position.map(|p| p.seq()), Some(59));
}

#[test]
fn ack_beyond_what_was_read_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, mut reader) = Ring::open(dir.path(), small()).expect("open");
    let pos = writer.append(b"x").expect("append");
    writer.flush().expect("flush");
    assert!(matches!(
        reader.ack(pos),
        Err(RingError::AckBeyondRead { .. })
    ));
    assert_eq!(reader.read_batch(10, 10).expect("read").len(), 1);
    reader.ack(pos).expect("ack after read");
}

#[test]
fn invalid_options_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = RingOptions {
        segment_size: 1024,
        capacity: 1500,
        ..RingOptions::default()
    };
    assert!(matches!(
        Ring::open(dir.path(), opts),
        Err(RingError::InvalidOptions(_))
    ));
    let opts = RingOptions {
        segment_size: 10,
        ..RingOptions::default()
    };
    assert!(matches!(
        Ring::open(dir.path(), opts),
        Err(RingError::InvalidOptions(_))
    ));
}

#[test]
fn writer_and_reader_can_move_to_other_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<agent_buffer::RingWriter>();
    assert_send::<agent_buffer::RingReader>();
}
