//! SIGKILL a real writer process mid-stream, many times: every record it reported as
//! flushed must survive, intact and in order, and nothing damaged may be returned.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use agent_buffer::{Ring, RingOptions};
use common::{check, len_for, payload};

const DIR_ENV: &str = "AGENT_BUFFER_CRASH_DIR";
const RUN_ENV: &str = "AGENT_BUFFER_CRASH_RUN";
const KILLS: u32 = 24;

fn opts() -> RingOptions {
    RingOptions {
        segment_size: 32 * 1024,
        capacity: 256 * 1024 * 1024,
        flush_interval: Duration::from_secs(3600),
        write_buffer: 4096,
    }
}

/// The writer process: run by `sigkill_writer_process_loses_no_flushed_record` re-executing
/// this test binary. It appends self-describing records forever and prints
/// `FLUSHED <index>` after each successful flush.
#[test]
#[ignore = "helper process for sigkill_writer_process_loses_no_flushed_record"]
fn crash_writer_child() {
    let dir = std::env::var(DIR_ENV).expect("helper needs AGENT_BUFFER_CRASH_DIR");
    let run: u32 = std::env::var(RUN_ENV)
        .expect("helper needs AGENT_BUFFER_CRASH_RUN")
        .parse()
        .expect("run number");
    let (mut writer, _reader) = Ring::open(&dir, opts()).expect("open ring in child");
    // Flush more or less often depending on the run, so kills land in appends, buffer
    // writes, segment rolls (with background syncs) and flushes.
    let period = 7 + (u64::from(run) * 37) % 300;
    let mut index = 0u64;
    while index < 2_000_000 {
        if index % 3 == 0 {
            let batch: Vec<_> = (index..index + 5)
                .map(|i| payload(run, i, len_for(i, 700)))
                .collect();
            writer.append_batch(&batch).expect("append_batch");
            index += 5;
        } else {
            writer
                .append(&payload(run, index, len_for(index, 700)))
                .expect("append");
            index += 1;
        }
        if index % period < 5 {
            writer.flush().expect("flush");
            println!("FLUSHED {}", index - 1);
        }
    }
}

#[test]
fn sigkill_writer_process_loses_no_flushed_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut total_recovered = 0u64;
    for run in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, dir.path())
            .env(RUN_ENV, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer process");
        let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
        // Kill after a varying number of flushes (sometimes before the first one).
        let kill_after = (run * 7) % 40;
        let mut last_flushed: Option<u64> = None;
        let mut flushes = 0;
        while flushes < kill_after {
            let Some(line) = lines.next() else { break };
            if let Some(index) = line.expect("read child stdout").strip_prefix("FLUSHED ") {
                last_flushed = Some(index.parse().expect("flushed index"));
                flushes += 1;
            }
        }
        // Let it run on for a varying moment so kills land at different points of an
        // append, a write or a sync.
        std::thread::sleep(Duration::from_micros(u64::from(run % 5) * 700));
        child.kill().expect("SIGKILL writer");
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(index) = line.strip_prefix("FLUSHED ") {
                last_flushed = Some(index.parse().expect("flushed index"));
            }
        }
        let status = child.wait().expect("reap writer");
        assert!(
            status.code().is_none(),
            "writer must have died from the signal, got {status}"
        );

        let (_writer, mut reader) = Ring::open(dir.path(), opts()).expect("reopen after kill");
        let mut indexes = Vec::new();
        let mut last_pos = None;
        loop {
            let batch = reader.read_batch(1000, 1 << 20).expect("read");
            if batch.is_empty() {
                break;
            }
            for (pos, data) in batch {
                let (r, index) = check(&data).expect("recovered record is intact");
                assert_eq!(
                    r, run,
                    "records of earlier runs were acknowledged and must not return"
                );
                indexes.push(index);
                last_pos = Some(pos);
            }
        }
        // A prefix of what the killed writer appended, in order, covering every flush.
        assert_eq!(
            indexes,
            (0..indexes.len() as u64).collect::<Vec<_>>(),
            "run {run}"
        );
        if let Some(flushed) = last_flushed {
            assert!(
                indexes.len() as u64 > flushed,
                "run {run}: flushed up to {flushed}, recovered {}",
                indexes.len()
            );
        }
        assert_eq!(reader.stats().corrupt_skipped, 0);
        if let Some(pos) = last_pos {
            reader.ack(pos).expect("ack");
        }
        eprintln!(
            "run {run}: flushed {last_flushed:?} recovered {}",
            indexes.len()
        );
        total_recovered += indexes.len() as u64;
    }
    assert!(
        total_recovered > 0,
        "the writer never got to write anything"
    );
}
