//! Footprint of the release agent: startup time, idle RSS and CPU, and RSS and CPU while
//! 1 000 log lines per second flow through it to a real HTTPS intake on 127.0.0.1.
//!
//! `cargo bench -p endpoint-agent --bench footprint` builds the release agent first
//! (`cargo build --release -p endpoint-agent --bin agent`) unless `FOOTPRINT_AGENT_BIN`
//! names a binary. Knobs: `FOOTPRINT_SECS` (load duration, default 30), `FOOTPRINT_RATE`
//! (lines per second, default 1000), `FOOTPRINT_IDLE_SECS` (default 10), `FOOTPRINT_EXECS`
//! (commands executed per second, default 0: with more, the audit collector runs too; root
//! needed, and the kernel audit test lock is held).
//!
//! The load generator's own CPU is printed next to the agent's, as the baseline of the
//! same run: the agent's CPU per line is compared with what merely writing the line costs.

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the footprint bench reads /proc: Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use agent_testkit::Intake;

    const AGENT_KEY: &str = "agent-key-bench";
    const LINES_KEY: &str = "lines-key-bench";

    fn env_u64(name: &str, default: u64) -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The release agent: built here unless `FOOTPRINT_AGENT_BIN` is given.
    fn agent_binary() -> PathBuf {
        if let Some(p) = std::env::var_os("FOOTPRINT_AGENT_BIN") {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "FOOTPRINT_AGENT_BIN={} is not a file",
                p.display()
            );
            return p;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("footprint: building the release agent (cargo build --release -p endpoint-agent --bin agent)...");
        let ok = Command::new(&cargo)
            .args([
                "build",
                "--release",
                "-p",
                "endpoint-agent",
                "--bin",
                "agent",
            ])
            .status()
            .expect("run cargo build")
            .success();
        assert!(ok, "cargo build --release -p endpoint-agent failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        );
        let bin = target.join("release/agent");
        assert!(
            bin.is_file(),
            "no release agent at {} after the build (set FOOTPRINT_AGENT_BIN)",
            bin.display()
        );
        bin
    }

    fn ticks_per_sec() -> f64 {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    }

    /// utime + stime of a process, in seconds.
    fn cpu_secs(pid: u32) -> f64 {
        let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap_or_default();
        agent_os::proc_stat::ProcStat::parse(&stat)
            .map_or(0.0, |s| (s.utime + s.stime) as f64 / ticks_per_sec())
    }

    /// VmRSS and VmHWM in KiB.
    fn rss_kib(pid: u32) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let get = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (get("VmRSS:"), get("VmHWM:"))
    }

    /// Anonymous and file-backed resident memory (Pss_Anon, Pss_File) in KiB: says
    /// whether RSS is heap (buffers, channels) or mapped files.
    fn rss_split_kib(pid: u32) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let get = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (get("Pss_Anon:"), get("Pss_File:"))
    }

    /// The kernel audit test lock (see crates/linux-audit/tests/kernel.rs): one owner of
    /// the audit socket at a time.
    fn audit_lock() -> std::fs::File {
        use std::os::fd::AsRawFd as _;
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "FOOTPRINT_EXECS needs root");
        let f = std::fs::File::create("/tmp/agent-linux-audit-kernel-tests.lock").unwrap();
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        f
    }

    fn thread_cpu_secs() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }

    fn self_cpu_secs() -> f64 {
        cpu_secs(std::process::id())
    }

    fn line(seq: u64) -> Vec<u8> {
        format!(
            "2026-11-28T12:00:00.000Z web-01 nginx[1234]: 10.0.0.{} - - \"GET /api/v1/items/{seq} HTTP/1.1\" 200 512 \"-\" \"curl/8.0\"\n",
            seq % 250
        )
        .into_bytes()
    }

    struct Agent(Child);

    impl Drop for Agent {
        fn drop(&mut self) {
            // SAFETY: kill(2) on our child's pid, not yet reaped.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if self.0.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn wait_for(timeout: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if ok() {
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    pub fn main() {
        let secs = env_u64("FOOTPRINT_SECS", 30);
        let rate = env_u64("FOOTPRINT_RATE", 1_000);
        let idle_secs = env_u64("FOOTPRINT_IDLE_SECS", 10);
        let execs = env_u64("FOOTPRINT_EXECS", 0);
        let _audit_lock = (execs > 0).then(audit_lock);
        let bin = agent_binary();

        let intake = Intake::start().expect("start the test intake");
        let dir = tempfile::tempdir().unwrap();
        let (state, logs, watched) = (
            dir.path().join("state"),
            dir.path().join("log"),
            dir.path().join("watched"),
        );
        for d in [&state, &logs, &watched] {
            std::fs::create_dir_all(d).unwrap();
        }
        let config = dir.path().join("config.yaml");
        // Without execs no audit collector: the numbers are the pipeline's (log file →
        // ring → HTTPS); with them the default roles start the audit collector.
        let roles = if execs > 0 {
            ""
        } else {
            "roles: [compliance-collector]\n"
        };
        std::fs::write(
            &config,
            format!(
                "IntakeKey: {AGENT_KEY}\nIntakeURL: {}\nAutoUpdate: false\n{roles}logfiles:\n  - filepath: {}/*.log\n    intakekey: {LINES_KEY}\n",
                intake.url(),
                watched.display()
            ),
        )
        .unwrap();
        let log_file = watched.join("app.log");
        // Exists before the start, empty: files found by the first scan start at their end.
        std::fs::write(&log_file, b"").unwrap();

        let child = Command::new(&bin)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--extra-ca")
            .arg(intake.ca_file())
            .env("ENDPOINT_AGENT_STATE_DIR", &state)
            .env("ENDPOINT_AGENT_LOG_DIR", &logs)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the agent");
        let agent = Agent(child);
        let pid = agent.0.id();
        let to_status = wait_for(Duration::from_secs(30), || {
            state.join("status.json").exists()
        })
        .expect("no status.json within 30 s");
        // One line after the tailer's first scan: how long until it is at the intake.
        std::thread::sleep(Duration::from_millis(1_500));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log_file)
            .and_then(|mut f| f.write_all(&line(0)))
            .unwrap();
        let first_line = wait_for(Duration::from_secs(30), || {
            !intake.records_for(LINES_KEY).is_empty()
        })
        .expect("the first line did not reach the intake within 30 s");
        let startup_to_status = to_status;

        // Idle.
        std::thread::sleep(Duration::from_secs(idle_secs) / 2);
        let (c0, t0) = (cpu_secs(pid), Instant::now());
        std::thread::sleep(Duration::from_secs(idle_secs) / 2);
        let idle_cpu = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
        let (idle_rss, _) = rss_kib(pid);
        let (idle_anon, idle_file) = rss_split_kib(pid);

        // Load: `rate` lines per second for `secs` seconds.
        let stop = Arc::new(AtomicBool::new(false));
        let gen_stop = stop.clone();
        let gen_path = log_file.clone();
        let exec_stop = stop.clone();
        let executor = std::thread::spawn(move || {
            let cpu0 = thread_cpu_secs();
            let t = Instant::now();
            let mut done = 0u64;
            while execs > 0 && !exec_stop.load(Ordering::Relaxed) {
                let due = (t.elapsed().as_secs_f64() * execs as f64) as u64;
                while done < due {
                    let _ = Command::new("/bin/true").status();
                    done += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (done, thread_cpu_secs() - cpu0)
        });
        let generator = std::thread::spawn(move || {
            let cpu0 = thread_cpu_secs();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(gen_path)
                .unwrap();
            let t = Instant::now();
            let mut next = 1u64;
            while !gen_stop.load(Ordering::Relaxed) {
                let due = 1 + (t.elapsed().as_secs_f64() * rate as f64) as u64;
                let mut buf = Vec::new();
                while next < due {
                    buf.extend_from_slice(&line(next));
                    next += 1;
                }
                if !buf.is_empty() {
                    f.write_all(&buf).unwrap();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (next, thread_cpu_secs() - cpu0)
        });
        let (agent_c0, self_c0, t0) = (cpu_secs(pid), self_cpu_secs(), Instant::now());
        let mut rss_max = 0;
        let mut rss_sum = 0;
        let mut samples = 0;
        while t0.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_secs(1));
            let (rss, _) = rss_kib(pid);
            rss_max = rss_max.max(rss);
            rss_sum += rss;
            samples += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let (total, gen_cpu) = generator.join().unwrap();
        let (exec_count, exec_cpu) = executor.join().unwrap();
        let wall = t0.elapsed().as_secs_f64();
        let agent_cpu = cpu_secs(pid) - agent_c0;
        let self_cpu = self_cpu_secs() - self_c0;
        let (_, hwm) = rss_kib(pid);

        let delivered = wait_for(Duration::from_secs(30), || {
            intake.records_for(LINES_KEY).len() as u64 >= total
        });
        let got = intake.records_for(LINES_KEY).len();

        let mib = |k: u64| k as f64 / 1024.0;
        println!("footprint of {} (pid {pid})", bin.display());
        println!(
            "  startup: exec -> status.json      {:>8.1} ms",
            startup_to_status.as_secs_f64() * 1e3
        );
        println!(
            "  one line: appended -> at the intake {:>6.1} ms (batch delay included)",
            first_line.as_secs_f64() * 1e3
        );
        println!(
            "  idle ({idle_secs} s): RSS {:.1} MiB, CPU {:.2} % of one core",
            mib(idle_rss),
            idle_cpu
        );
        println!(
            "    idle RSS split: anonymous {:.1} MiB, file-backed {:.1} MiB",
            mib(idle_anon),
            mib(idle_file)
        );
        println!(
            "  load ({rate} lines/s for {wall:.1} s, {total} lines, {got} delivered{}):",
            if delivered.is_some() {
                ""
            } else {
                " - NOT ALL"
            }
        );
        println!(
            "    agent:     RSS avg {:.1} MiB, max {:.1} MiB (peak HWM {:.1} MiB), CPU {:.2} % of one core",
            mib(rss_sum / samples.max(1)),
            mib(rss_max),
            mib(hwm),
            agent_cpu / wall * 100.0
        );
        println!(
            "    generator: CPU {:.2} % of one core (baseline: writing the lines)",
            gen_cpu / wall * 100.0
        );
        if execs > 0 {
            let created = intake
                .records_for(AGENT_KEY)
                .iter()
                .filter_map(|r| r.json())
                .filter(|j| j["event"]["action"] == "process-created")
                .count();
            println!(
                "    execs: {exec_count} /bin/true run ({created} process-created events at the intake), executor thread CPU {:.2} % of one core",
                exec_cpu / wall * 100.0
            );
        }
        println!(
            "    intake + generator (this process): CPU {:.2} % of one core",
            self_cpu / wall * 100.0
        );
        println!(
            "    ratio agent CPU / generator CPU: {:.1}x; agent CPU per line {:.1} us",
            agent_cpu / gen_cpu.max(1e-9),
            agent_cpu / total.max(1) as f64 * 1e6
        );
        assert!(
            delivered.is_some(),
            "only {got} of {total} lines reached the intake"
        );
    }
}
