//! Append and read throughput of the ring against a plain sequential write + fdatasync of
//! the same payload bytes, measured in the same run.
//!
//! `cargo bench -p agent-buffer` writes 1 GiB per record size (300 B and 2 KiB). Set
//! `AGENT_BUFFER_BENCH_BYTES` to change the volume (CI uses a smaller one) and
//! `AGENT_BUFFER_BENCH_DIR` to choose the file system (default: cargo's target tmpdir),
//! `AGENT_BUFFER_BENCH_REPS` for the number of alternating runs (default 3; medians shown).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_buffer::{Ring, RingOptions};

const GIB: f64 = (1u64 << 30) as f64;

fn gib_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / GIB / took.as_secs_f64()
}

fn payloads(size: usize) -> Vec<Vec<u8>> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..64)
        .map(|_| {
            (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

/// Baseline: the same bytes written sequentially in 256 KiB writes, then one fdatasync.
fn plain_write(dir: &Path, total: u64, records: &[Vec<u8>]) -> Duration {
    let path = dir.join("plain.bin");
    let chunk: Vec<u8> = records
        .iter()
        .flatten()
        .copied()
        .cycle()
        .take(256 * 1024)
        .collect();
    let start = Instant::now();
    let mut file = File::create(&path).expect("create plain file");
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).expect("plain write");
        left -= n as u64;
    }
    file.sync_data().expect("plain fdatasync");
    let took = start.elapsed();
    drop(file);
    std::fs::remove_file(&path).expect("remove plain file");
    took
}

/// Appends `count` records to a fresh ring and reads them back: (append+flush, read, read bytes).
fn ring_round(
    base: &Path,
    size: usize,
    count: u64,
    records: &[Vec<u8>],
) -> (Duration, Duration, u64) {
    let bytes = count * size as u64;
    let dir = base.join(format!("ring-{size}"));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = RingOptions {
        capacity: (bytes + bytes / 5).max(64 << 20),
        ..RingOptions::default()
    };
    let (mut writer, mut reader) = Ring::open(&dir, opts).expect("open ring");
    let start = Instant::now();
    for i in 0..count {
        writer
            .append(&records[i as usize % records.len()])
            .expect("append");
    }
    writer.flush().expect("flush");
    let append = start.elapsed();

    let start = Instant::now();
    let mut read_bytes = 0u64;
    let mut read_records = 0u64;
    let mut last = None;
    loop {
        let batch = reader.read_batch(250, 1 << 20).expect("read");
        let Some((pos, _)) = batch.last() else { break };
        last = Some(*pos);
        read_records += batch.len() as u64;
        read_bytes += batch.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
    }
    let read = start.elapsed();
    assert_eq!(
        read_records, count,
        "every appended record must be read back"
    );
    if let Some(pos) = last {
        reader.ack(pos).expect("ack");
    }
    drop((writer, reader));
    std::fs::remove_dir_all(&dir).expect("remove ring dir");
    (append, read, read_bytes)
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn bench_size(base: &Path, total: u64, size: usize, reps: usize) {
    let records = payloads(size);
    let count = total / size as u64;
    let bytes = count * size as u64;

    // Alternate baseline and ring so disk and page-cache drift hits both alike.
    let (mut plains, mut appends, mut reads) = (Vec::new(), Vec::new(), Vec::new());
    let mut read_bytes = 0;
    for _ in 0..reps {
        plains.push(plain_write(base, bytes, &records));
        let (append, read, got) = ring_round(base, size, count, &records);
        appends.push(append);
        reads.push(read);
        read_bytes = got;
    }
    let secs = |runs: &[Duration]| {
        runs.iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "records of {size:>4} B, {:.2} GiB payload ({count} records), {reps} runs each (median):",
        bytes as f64 / GIB
    );
    println!(
        "  runs (s): plain [{}]  append [{}]  read [{}]",
        secs(&plains),
        secs(&appends),
        secs(&reads)
    );
    let (plain, append, read) = (median(plains), median(appends), median(reads));
    let plain_rate = gib_per_s(bytes, plain);
    let append_rate = gib_per_s(bytes, append);
    println!(
        "  plain write+fdatasync  {:>7.3} s  {plain_rate:>6.2} GiB/s",
        plain.as_secs_f64()
    );
    println!(
        "  ring append+flush      {:>7.3} s  {append_rate:>6.2} GiB/s   ratio ring/plain = {:.2} (target >= 0.70)",
        append.as_secs_f64(),
        append_rate / plain_rate
    );
    println!(
        "  ring read (page cache) {:>7.3} s  {:>6.2} GiB/s = {:.2} GB/s (target >= 1 GB/s)",
        read.as_secs_f64(),
        gib_per_s(read_bytes, read),
        read_bytes as f64 / 1e9 / read.as_secs_f64()
    );
}

fn main() {
    let total: u64 = std::env::var("AGENT_BUFFER_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let base = std::env::var_os("AGENT_BUFFER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("agent-buffer-bench"));
    std::fs::create_dir_all(&base).expect("bench dir");
    let reps: usize = std::env::var("AGENT_BUFFER_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    for size in [300, 2048] {
        bench_size(&base, total, size, reps);
    }
}
