//! Load harness for the audit collector: runs the collector (default rules) in this
//! process, a load generator as a child process that spawns `/bin/true` at a fixed rate,
//! and reports whether the collector kept up (kernel-lost records, dropped events, every
//! exec seen) with its CPU and memory next to the generator's CPU.
//!
//! ```text
//! cargo run --release -p agent-linux-audit --example load -- [RATE_PER_SEC] [SECONDS]
//! ```
//! (root; defaults 1000 exec/s for 60 s; no other audit daemon may be registered.)
#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the audit load harness runs on Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::BufRead;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use agent_linux_audit::collector::{Collector, CollectorConfig};

    /// Clock ticks per second for /proc/*/stat times.
    fn ticks_per_sec() -> f64 {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    }

    /// utime + stime of this process, in seconds.
    fn own_cpu() -> f64 {
        std::fs::read("/proc/self/stat")
            .ok()
            .and_then(|b| agent_os::proc_stat::ProcStat::parse(&b).ok())
            .map_or(0.0, |s| (s.utime + s.stime) as f64 / ticks_per_sec())
    }

    fn status_kb(key: &str) -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn rusage_secs(who: libc::c_int) -> f64 {
        // SAFETY: an all-zero rusage is a valid value to be overwritten.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `r` is a valid, writable rusage.
        unsafe { libc::getrusage(who, &mut r) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(r.ru_utime) + t(r.ru_stime)
    }

    /// The generator: spawn `/bin/true` `rate` times a second for `secs` seconds, reap
    /// children as they end; print spawned count and own / children CPU seconds.
    fn generate(rate: u64, secs: u64) {
        let start = Instant::now();
        let total = rate * secs;
        let mut spawned = 0u64;
        let mut running: Vec<Child> = Vec::new();
        while spawned < total {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while spawned < due.min(total) {
                match Command::new("/bin/true").spawn() {
                    Ok(c) => running.push(c),
                    Err(e) => eprintln!("spawn: {e}"),
                }
                spawned += 1;
            }
            running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(1));
        }
        for mut c in running {
            let _ = c.wait();
        }
        println!(
            "{spawned} {:.3} {:.3} {:.3}",
            rusage_secs(libc::RUSAGE_SELF),
            rusage_secs(libc::RUSAGE_CHILDREN),
            start.elapsed().as_secs_f64()
        );
    }

    pub fn main() -> Result<(), Box<dyn std::error::Error>> {
        let args: Vec<String> = std::env::args().collect();
        if args.get(1).map(String::as_str) == Some("--generate") {
            let n = |i: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(0);
            generate(n(2), n(3));
            return Ok(());
        }
        let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
        let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(60);

        let (tx, rx) = agent_pipeline::Sink::channel("audit", 4096, agent_pipeline::Overflow::Drop);
        let mut cfg = CollectorConfig::default();
        // For memory experiments: the process table's bound on exited processes.
        if let Some(n) = std::env::var("LOAD_MAX_EXITED")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            cfg.proc_limits.max_exited = n;
        }
        let collector = Collector::start(cfg, tx)?;
        for s in collector.skipped_rules() {
            eprintln!("skipped rule line {}: {} ({})", s.line, s.text, s.reason);
        }
        // The consumer stands in for the agent's writer thread: it only counts.
        let true_execs = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let consumer = {
            let (t, r) = (Arc::clone(&true_execs), Arc::clone(&received));
            std::thread::spawn(move || {
                for e in rx {
                    r.fetch_add(1, Ordering::Relaxed);
                    // /bin is a link to /usr/bin on merged-/usr systems.
                    let is_true =
                        matches!(e.process.executable.as_str(), "/bin/true" | "/usr/bin/true");
                    if e.event.action == "process-created" && is_true {
                        t.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(500));
        let idle_rss = status_kb("VmRSS:");
        println!(
            "size_of::<Event>() = {} bytes",
            std::mem::size_of::<agent_event::Event>()
        );
        let cpu0 = own_cpu();
        let t0 = Instant::now();
        let gen: Child = Command::new(std::env::current_exe()?)
            .args(["--generate", &rate.to_string(), &secs.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut max_rss = 0;
        let out = {
            let mut gen = gen;
            let stdout = gen.stdout.take().ok_or("generator stdout")?;
            let reader = std::thread::spawn(move || {
                let mut line = String::new();
                let _ = std::io::BufReader::new(stdout).read_line(&mut line);
                line
            });
            while gen.try_wait()?.is_none() {
                std::thread::sleep(Duration::from_millis(200));
                max_rss = max_rss.max(status_kb("VmRSS:"));
            }
            reader.join().map_err(|_| "generator reader panicked")?
        };
        let load_wall = t0.elapsed().as_secs_f64();
        // Let the tail drain.
        let mut last = u64::MAX;
        while received.load(Ordering::Relaxed) != last {
            last = received.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(500));
        }
        let cpu = own_cpu() - cpu0;
        let wall = t0.elapsed().as_secs_f64();
        let stats = collector.stop()?;
        consumer.join().map_err(|_| "consumer panicked")?;
        let g: Vec<f64> = out
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let (spawned, gen_cpu, child_cpu, gen_wall) = (
            g.first().copied().unwrap_or(0.0),
            g.get(1).copied().unwrap_or(0.0),
            g.get(2).copied().unwrap_or(0.0),
            g.get(3).copied().unwrap_or(1.0),
        );
        println!(
            "load: {spawned} exec of /bin/true in {gen_wall:.1} s ({:.0}/s)",
            spawned / gen_wall
        );
        println!(
            "collector: {:.1} % of one core over {wall:.1} s (load phase {load_wall:.1} s), RSS idle {} KiB, max {} KiB, VmHWM {} KiB",
            100.0 * cpu / wall,
            idle_rss,
            max_rss,
            status_kb("VmHWM:")
        );
        println!(
            "generator: {:.1} % of one core itself, its /bin/true children {:.1} %",
            100.0 * gen_cpu / gen_wall,
            100.0 * child_cpu / gen_wall
        );
        println!(
            "events: {} received, {} process-created for true; stats {stats:?}",
            received.load(Ordering::Relaxed),
            true_execs.load(Ordering::Relaxed)
        );
        let ok = stats.kernel_lost == 0
            && stats.dropped == 0
            && stats.serial_gaps == 0
            && true_execs.load(Ordering::Relaxed) as f64 >= spawned;
        println!(
            "{}",
            if ok {
                "PASS: kept up"
            } else {
                "FAIL: did not keep up"
            }
        );
        if ok {
            Ok(())
        } else {
            Err("collector did not keep up".into())
        }
    }
}
