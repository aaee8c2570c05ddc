//! Tailing throughput and CPU cost, next to `cat` of the same bytes to /dev/null measured
//! in the same run. Run with `cargo bench -p agent-logfile`.
//!
//! Scenarios, each on a ~100 MB file of ~1 M nginx-like lines:
//! - `cat > /dev/null`: the floor, reading the bytes once;
//! - catch-up: a complete file is renamed into the watched directory and read whole;
//! - `cat >> file`: the live scenario's writer alone;
//! - live: `cat data >> app.log` (another process) grows the file at full speed while the
//!   tailer follows it; lines/s is then bounded by the writer.
//!
//! CPU is getrusage user+system: RUSAGE_CHILDREN for `cat`, RUSAGE_SELF for the tailer
//! (the benchmark's main thread sleeps in a channel receive meanwhile).

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("this benchmark needs getrusage (unix only)");
}

#[cfg(unix)]
mod unix {
    use std::convert::Infallible;
    use std::fs::{self, File, OpenOptions};
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use agent_logfile::{LineSink, LogLine, Options, Tailer, WatchSpec};

    const LINES: u64 = 1_000_000;

    fn cpu(who: libc::c_int) -> Duration {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `ru` points to writable memory of the right type and size; getrusage
        // only writes into it. A zeroed rusage is a valid value of the plain-data struct.
        let rc = unsafe { libc::getrusage(who, ru.as_mut_ptr()) };
        assert_eq!(rc, 0, "getrusage failed");
        // SAFETY: initialised by `zeroed` and filled by getrusage.
        let ru = unsafe { ru.assume_init() };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }

    struct Counter {
        lines: u64,
        bytes: u64,
        done: Option<mpsc::Sender<()>>,
    }

    impl LineSink for Counter {
        type Error = Infallible;
        fn deliver(&mut self, lines: &[LogLine<'_>]) -> Result<(), Infallible> {
            self.lines += lines.len() as u64;
            self.bytes += lines.iter().map(|l| l.bytes.len() as u64).sum::<u64>();
            if self.lines >= LINES {
                if let Some(done) = self.done.take() {
                    let _ = done.send(());
                }
            }
            Ok(())
        }
    }

    struct Sample {
        name: &'static str,
        wall: Duration,
        cpu: Duration,
    }

    fn cat_to_null(data: &Path) -> Sample {
        let before = cpu(libc::RUSAGE_CHILDREN);
        let start = Instant::now();
        let status = Command::new("cat")
            .arg(data)
            .stdout(Stdio::null())
            .status()
            .expect("running cat");
        assert!(status.success());
        Sample {
            name: "cat > /dev/null",
            wall: start.elapsed(),
            cpu: cpu(libc::RUSAGE_CHILDREN) - before,
        }
    }

    /// The writer of the live scenario alone: how fast the file can grow at all.
    fn cat_append(data: &Path) -> Sample {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = File::create(dir.path().join("app.log")).expect("create log");
        let before = cpu(libc::RUSAGE_CHILDREN);
        let start = Instant::now();
        let status = Command::new("cat")
            .arg(data)
            .stdout(out)
            .status()
            .expect("running cat");
        assert!(status.success());
        Sample {
            name: "cat >> file (writer alone)",
            wall: start.elapsed(),
            cpu: cpu(libc::RUSAGE_CHILDREN) - before,
        }
    }

    /// Tails `dir/*.log`. The clock starts once the tailer is up (its start-up writes a
    /// checkpoint with fsync, which is not what is measured); then the file appears, either
    /// whole (catch-up: renamed in) or growing (live: `cat` appends to it).
    fn tail(data: &Path, live: bool) -> Sample {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = tempfile::tempdir().expect("tempdir");
        let staging =
            tempfile::tempdir_in(dir.path().parent().expect("temp parent")).expect("tempdir");
        let log = dir.path().join("app.log");
        let staged = staging.path().join("app.log");
        if !live {
            fs::copy(data, &staged).expect("copy data");
        }
        let spec = WatchSpec {
            pattern: dir.path().join("*.log").display().to_string(),
            intake_key: "bench".into(),
        };
        let mut tailer = Tailer::new(vec![spec], state.path(), Options::default()).expect("tailer");
        let stop = tailer.stop_handle();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut sink = Counter {
                lines: 0,
                bytes: 0,
                done: Some(tx),
            };
            tailer.run(&mut sink).map(|()| sink.lines)
        });
        while !state.path().join("logfile-checkpoints").exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let before = cpu(libc::RUSAGE_SELF);
        let start = Instant::now();
        let mut writer = None;
        if live {
            let out = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("open log");
            writer = Some(
                Command::new("cat")
                    .arg(data)
                    .stdout(out)
                    .spawn()
                    .expect("running cat"),
            );
        } else {
            fs::rename(&staged, &log).expect("rename data into place");
        }
        rx.recv_timeout(Duration::from_secs(300))
            .expect("tailer delivered all lines");
        let wall = start.elapsed();
        let used = cpu(libc::RUSAGE_SELF) - before;
        stop.stop();
        let lines = thread.join().expect("tailer thread").expect("tailer run");
        assert_eq!(lines, LINES, "every line exactly once");
        if let Some(w) = writer.as_mut() {
            assert!(w.wait().expect("cat").success());
        }
        Sample {
            name: if live {
                "tailer, live (cat >> file)"
            } else {
                "tailer, catch-up"
            },
            wall,
            cpu: used,
        }
    }

    fn median(mut samples: Vec<Sample>) -> Sample {
        samples.sort_by_key(|s| s.wall);
        samples.swap_remove(samples.len() / 2)
    }

    pub(super) fn main() {
        let work = tempfile::tempdir().expect("tempdir");
        let data = work.path().join("data.log");
        let mut file = std::io::BufWriter::new(File::create(&data).expect("data file"));
        for i in 0..LINES {
            write!(
                file,
                "192.168.{}.{} - - [14/Feb/2023:10:{:02}:{:02} +0000] \"GET /api/v1/items/{i}?page={} HTTP/1.1\" 200 {} \"-\" \"curl/7.88\"",
                i % 256, (i / 256) % 256, (i / 60) % 60, i % 60, i % 97, i % 65536
            )
            .expect("write");
            if i % 1000 == 0 {
                file.write_all(b" \xff\xfe invalid utf8\r").expect("write");
            }
            file.write_all(b"\n").expect("write");
        }
        file.flush().expect("flush");
        drop(file);
        let size = fs::metadata(&data).expect("stat").len();

        const RUNS: usize = 3;
        let cat = median((0..RUNS).map(|_| cat_to_null(&data)).collect());
        let append = median((0..RUNS).map(|_| cat_append(&data)).collect());
        let catch_up = median((0..RUNS).map(|_| tail(&data, false)).collect());
        let live = median((0..RUNS).map(|_| tail(&data, true)).collect());

        println!(
            "{LINES} lines, {:.1} MB; median of {RUNS} runs",
            size as f64 / 1e6
        );
        println!(
            "{:<28} {:>10} {:>12} {:>10} {:>10} {:>14}",
            "scenario", "wall ms", "lines/s", "MB/s", "cpu ms", "cpu vs cat"
        );
        for s in [&cat, &append, &catch_up, &live] {
            let secs = s.wall.as_secs_f64();
            println!(
                "{:<28} {:>10.1} {:>12.0} {:>10.1} {:>10.1} {:>13.2}x",
                s.name,
                secs * 1e3,
                LINES as f64 / secs,
                size as f64 / 1e6 / secs,
                s.cpu.as_secs_f64() * 1e3,
                s.cpu.as_secs_f64() / cat.cpu.as_secs_f64().max(1e-6),
            );
        }
        println!(
            "throughput ratio: catch-up tailer / cat > /dev/null = {:.2}; live tailer / writer alone = {:.2}",
            cat.wall.as_secs_f64() / catch_up.wall.as_secs_f64(),
            append.wall.as_secs_f64() / live.wall.as_secs_f64()
        );
    }
}
