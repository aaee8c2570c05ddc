//! `cargo xtask bench peers`: the audit collectors side by side on the same exec storm.
//!
//! A generator spawns `/bin/true` at a fixed rate for a fixed time while one collector
//! receives the kernel's audit records for the rule
//! `-a always,exit -F arch=b64 -S execve,execveat`:
//!
//! - `auditd`: Debian's auditd writing raw logs (`log_format = RAW`, no plugin);
//! - `laurel`: the same auditd with Debian's laurel as its plugin (JSON lines);
//! - `agent`: the release agent (`ENDPOINT_AGENT_AUDIT_RULES` = that rule), enriching
//!   and shipping gzip'd HTTPS batches to a loopback intake.
//!
//! Every (repeat, rate, collector) run is measured the same way: the CPU time
//! (utime + stime) of all the collector's processes over the storm and one second after it,
//! the exec rate the generator achieved, the execs the collector delivered (log lines, JSON
//! lines, events at the intake), the records the kernel lost, and the sum of the
//! processes' peak RSS (VmHWM). Runs are interleaved (each repeat goes through the rates,
//! and at each rate through the collectors, in a rotating order) so that the noise of a
//! shared machine hits every collector alike.
//!
//! The run holds the kernel audit test lock, refuses to start when another audit daemon is
//! registered, and restores the audit state it found (rules, enabled flag, failure mode,
//! rate and backlog limits, backlog wait time) after every run and at the end.
//! Output: a table on stdout, `docs/bench/peers.csv` and `docs/bench/peers.svg` (CPU %
//! against the achieved rate, one line per collector).
// The table and the plot are pure and tested everywhere; only Linux runs the storm.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::path::Path;

/// Usage of `cargo xtask bench`.
pub const USAGE: &str = "cargo xtask bench peers [--ci] [--repeats N] [--secs S] [--rates R,R,..] \
[--collectors auditd,laurel,agent] [--out DIR] [--agent-bin PATH] [--baseline-agent PATH]\n  \
exec storm against auditd (raw logs), auditd + laurel and the agent; as root, holds the \
kernel audit lock; writes DIR/peers.csv and DIR/peers.svg (default docs/bench)";

/// Entry point of `cargo xtask bench ...`.
pub fn main(root: &Path, args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        #[cfg(target_os = "linux")]
        Some("peers") => linux::peers(root, &args[1..]),
        #[cfg(target_os = "linux")]
        Some("generate") => linux::generate(&args[1..]),
        #[cfg(not(target_os = "linux"))]
        Some("peers") => {
            let _ = root;
            Err("the peers bench drives the Linux kernel audit subsystem: Linux only".into())
        }
        _ => Err(format!("usage: {USAGE}")),
    }
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Which collector.
    pub collector: &'static str,
    /// The rate asked of the generator, exec/s.
    pub rate: u64,
    /// Repeat index, from 0.
    pub repeat: u32,
    /// Execs the generator made.
    pub execs: u64,
    /// Execs per second it achieved.
    pub achieved: f64,
    /// CPU of the collector's processes, percent of one core over the window.
    pub cpu_pct: f64,
    /// CPU seconds per exec, in µs (all the collector's CPU over the window / execs).
    pub us_per_exec: f64,
    /// Execs of `/bin/true` the collector delivered.
    pub delivered: u64,
    /// Records the kernel lost during the run.
    pub lost: u64,
    /// Sum of the collector processes' peak RSS, KiB.
    pub peak_rss_kib: u64,
}

impl Sample {
    const CSV_HEADER: &'static str =
        "collector,rate,repeat,execs,achieved_per_s,cpu_pct,us_per_exec,delivered,kernel_lost,peak_rss_kib";

    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{:.1},{:.2},{:.1},{},{},{}",
            self.collector,
            self.rate,
            self.repeat,
            self.execs,
            self.achieved,
            self.cpu_pct,
            self.us_per_exec,
            self.delivered,
            self.lost,
            self.peak_rss_kib
        )
    }
}

/// The table: one line per rate, per collector the repeats' CPU % (and µs/exec), achieved
/// rate, delivered, lost, peak RSS; and the agent ÷ auditd CPU ratio of the means.
pub fn table(samples: &[Sample], collectors: &[&'static str], rates: &[u64]) -> String {
    let mut out = String::from(
        "| exec/s | collector | CPU % (each repeat) | µs/exec | achieved/s | delivered / execs | kernel lost | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let join = |v: Vec<String>| v.join(" / ");
    for &rate in rates {
        for &c in collectors {
            let s: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.rate == rate && s.collector == c)
                .collect();
            if s.is_empty() {
                continue;
            }
            out += &format!(
                "| {rate} | {c} | {} | {} | {} | {} | {} | {} |\n",
                join(s.iter().map(|s| format!("{:.2}", s.cpu_pct)).collect()),
                join(
                    s.iter()
                        .map(|s| if s.execs > 0 {
                            format!("{:.0}", s.us_per_exec)
                        } else {
                            "-".into()
                        })
                        .collect()
                ),
                join(s.iter().map(|s| format!("{:.0}", s.achieved)).collect()),
                join(
                    s.iter()
                        .map(|s| format!("{}/{}", s.delivered, s.execs))
                        .collect()
                ),
                join(s.iter().map(|s| s.lost.to_string()).collect()),
                join(
                    s.iter()
                        .map(|s| format!("{:.1}", s.peak_rss_kib as f64 / 1024.0))
                        .collect()
                ),
            );
        }
    }
    let cpu = |c: &str, rate: u64| {
        let v: Vec<f64> = samples
            .iter()
            .filter(|s| s.rate == rate && s.collector == c)
            .map(|s| s.cpu_pct)
            .collect();
        (!v.is_empty()).then(|| mean(&v))
    };
    for (num, den) in [
        ("agent", "auditd"),
        ("agent-before", "auditd"),
        ("agent", "agent-before"),
    ] {
        let ratios: Vec<String> = rates
            .iter()
            .filter_map(|&r| {
                let (a, d) = (cpu(num, r)?, cpu(den, r)?);
                Some(format!("{r}/s: {:.2}×", a / d.max(1e-9)))
            })
            .collect();
        if !ratios.is_empty() {
            out += &format!(
                "\n{num} CPU ÷ {den} CPU (means of the repeats): {}\n",
                ratios.join(", ")
            );
        }
    }
    out
}

/// The plot: CPU % of one core against the achieved exec rate, one line per collector
/// through the means at each asked rate, every repeat as a point.
pub fn plot(
    path: &Path,
    samples: &[Sample],
    collectors: &[&'static str],
    title: &str,
) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let max_x = samples.iter().map(|s| s.achieved).fold(100.0, f64::max) * 1.05;
    let max_y = samples.iter().map(|s| s.cpu_pct).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("exec/s achieved (/bin/true)")
        .y_desc("collector CPU, % of one core")
        .draw()
        .map_err(|e| err(&e))?;
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN];
    for (i, &c) in collectors.iter().enumerate() {
        let color = palette[i % palette.len()];
        let mut rates: Vec<u64> = samples
            .iter()
            .filter(|s| s.collector == c)
            .map(|s| s.rate)
            .collect();
        rates.sort_unstable();
        rates.dedup();
        let line: Vec<(f64, f64)> = rates
            .iter()
            .map(|&r| {
                let s: Vec<&Sample> = samples
                    .iter()
                    .filter(|s| s.collector == c && s.rate == r)
                    .collect();
                let n = s.len().max(1) as f64;
                (
                    s.iter().map(|s| s.achieved).sum::<f64>() / n,
                    s.iter().map(|s| s.cpu_pct).sum::<f64>() / n,
                )
            })
            .collect();
        let label = match c {
            "auditd" => "auditd (raw log)",
            "laurel" => "auditd + laurel",
            other => other,
        };
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(
                samples
                    .iter()
                    .filter(|s| s.collector == c)
                    .map(|s| Circle::new((s.achieved, s.cpu_pct), 3, color.filled())),
            )
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{BufRead as _, Read as _};
    use std::os::fd::AsRawFd as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use agent_linux_audit::netlink::{self, AuditSocket, ConsumerKind, SavedState, StatusUpdate};
    use agent_linux_audit::rule::{compile, Arch, RuleData};

    use super::Sample;
    use crate::host::{ensure_tools, is_root};

    /// The exec-only rule of the storm.
    const RULE: &str = "-a always,exit -F arch=b64 -S execve,execveat";
    /// The lock the kernel audit tests and the load harness hold.
    const LOCK: &str = "/tmp/agent-linux-audit-kernel-tests.lock";
    /// The intake key the agent ships under.
    const KEY: &str = "bench-peers-key";
    /// Backlog limit of every run (the agent's own default, set for auditd too).
    const BACKLOG: u32 = 8192;

    struct Options {
        repeats: u32,
        secs: u64,
        rates: Vec<u64>,
        collectors: Vec<&'static str>,
        out: PathBuf,
        ci: bool,
        agent_bin: Option<PathBuf>,
        baseline: Option<PathBuf>,
    }

    fn options(root: &Path, args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            repeats: 2,
            secs: 20,
            rates: vec![0, 100, 500, 1000, 2000],
            collectors: vec!["auditd", "laurel", "agent"],
            out: root.join("docs/bench"),
            ci: false,
            agent_bin: None,
            baseline: None,
        };
        let mut it = args.iter();
        let num = |v: Option<&String>, what: &str| -> Result<u64, String> {
            v.and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number\nusage: {}", super::USAGE))
        };
        while let Some(a) = it.next() {
            match a.as_str() {
                "--ci" => {
                    o.ci = true;
                    o.repeats = 1;
                    o.secs = 4;
                    o.rates = vec![200];
                }
                "--repeats" => o.repeats = num(it.next(), "--repeats")? as u32,
                "--secs" => o.secs = num(it.next(), "--secs")?,
                "--rates" => {
                    o.rates = it
                        .next()
                        .ok_or("--rates needs a list")?
                        .split(',')
                        .map(|r| r.trim().parse().map_err(|_| format!("bad rate `{r}`")))
                        .collect::<Result<_, _>>()?;
                }
                "--collectors" => {
                    o.collectors = it
                        .next()
                        .ok_or("--collectors needs a list")?
                        .split(',')
                        .map(|c| match c.trim() {
                            "auditd" => Ok("auditd"),
                            "laurel" => Ok("laurel"),
                            "agent" => Ok("agent"),
                            other => Err(format!("unknown collector `{other}`")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--out" => o.out = PathBuf::from(it.next().ok_or("--out needs a directory")?),
                "--agent-bin" => {
                    o.agent_bin = Some(PathBuf::from(it.next().ok_or("--agent-bin needs a path")?));
                }
                "--baseline-agent" => {
                    o.baseline = Some(PathBuf::from(
                        it.next().ok_or("--baseline-agent needs a path")?,
                    ));
                }
                other => {
                    return Err(format!(
                        "unknown argument `{other}`\nusage: {}",
                        super::USAGE
                    ))
                }
            }
        }
        if o.baseline.is_some() {
            o.collectors.push("agent-before");
        }
        if o.repeats == 0 || o.secs == 0 || o.rates.is_empty() || o.collectors.is_empty() {
            return Err("nothing to run".into());
        }
        Ok(o)
    }

    pub fn peers(root: &Path, args: &[String]) -> Result<(), String> {
        let o = options(root, args)?;
        if !is_root() {
            return Err("the peers bench drives the kernel audit subsystem: run it as root".into());
        }
        let mut tools = vec![
            ("auditd", "auditd"),
            ("auditctl", "auditd"),
            ("flock", "util-linux"),
        ];
        if o.collectors.contains(&"laurel") {
            tools.push(("/usr/sbin/laurel", "laurel"));
        }
        ensure_tools("bench peers", &tools)?;
        if !Path::new("/bin/true").exists() {
            return Err("/bin/true is missing".into());
        }
        let agent = match (&o.agent_bin, o.collectors.contains(&"agent")) {
            (Some(p), _) => Some(p.clone()),
            (None, true) => Some(build_agent(root, o.ci)?),
            (None, false) => None,
        };
        std::fs::create_dir_all(&o.out)
            .map_err(|e| format!("creating {}: {e}", o.out.display()))?;

        eprintln!("bench: waiting for the kernel audit lock {LOCK}");
        let lock = std::fs::File::create(LOCK).map_err(|e| format!("{LOCK}: {e}"))?;
        // SAFETY: flock on a descriptor we own and keep open for the whole run.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!("flock {LOCK}: {}", std::io::Error::last_os_error()));
        }

        let mut sock = AuditSocket::open().map_err(|e| format!("audit socket: {e}"))?;
        let found = sock
            .get_status()
            .map_err(|e| format!("audit status: {e}"))?;
        for c in netlink::detect_conflicts(&found) {
            match c.kind {
                ConsumerKind::AuditDaemon => {
                    return Err(format!(
                        "another audit daemon owns the audit socket, the bench would measure \
                         nothing: {}",
                        c.message()
                    ))
                }
                ConsumerKind::JournaldAudit => eprintln!(
                    "bench: warning: {} (it costs every collector the same)",
                    c.message()
                ),
            }
        }
        if found.enabled == 2 {
            return Err("the audit configuration is locked (enabled=2) until reboot".into());
        }
        let saved = SavedState::capture(&mut sock).map_err(|e| format!("audit state: {e}"))?;
        eprintln!(
            "bench: audit state found: enabled {}, backlog limit {}, wait {}, {} rules (restored after each run)",
            saved.status().enabled,
            saved.status().backlog_limit,
            saved.status().backlog_wait_time,
            saved.rules().len()
        );
        let result = run_all(
            &o,
            agent.as_deref(),
            o.baseline.as_deref(),
            &mut sock,
            &saved,
        );
        let restored = restore(&saved, &mut sock);
        let samples = result?;
        restored?;

        let table = super::table(&samples, &o.collectors, &o.rates);
        println!("\n{table}");
        println!(
            "(CPU: utime+stime of every process of the collector over the storm + 1 s, % of one core; \
             µs/exec: that CPU / execs; peak RSS: sum of VmHWM; {} s per run, {} repeat(s), interleaved)",
            o.secs, o.repeats
        );
        let csv: String = std::iter::once(Sample::CSV_HEADER.to_string())
            .chain(samples.iter().map(Sample::csv))
            .map(|l| l + "\n")
            .collect();
        let (csv_path, svg_path) = (o.out.join("peers.csv"), o.out.join("peers.svg"));
        std::fs::write(&csv_path, csv).map_err(|e| format!("{}: {e}", csv_path.display()))?;
        let title = format!(
            "exec storm, rule `{RULE}`: collector CPU ({} s per run, {} repeat(s))",
            o.secs, o.repeats
        );
        super::plot(&svg_path, &samples, &o.collectors, &title)?;
        println!("wrote {} and {}", csv_path.display(), svg_path.display());

        let mut problems = Vec::new();
        for s in &samples {
            if s.lost > 0 {
                problems.push(format!(
                    "{} at {}/s: the kernel lost {}",
                    s.collector, s.rate, s.lost
                ));
            }
            if s.delivered < s.execs {
                problems.push(format!(
                    "{} at {}/s: delivered {} of {} execs",
                    s.collector, s.rate, s.delivered, s.execs
                ));
            }
            if o.ci && s.rate > 0 && s.execs == 0 {
                problems.push(format!(
                    "{} at {}/s: the generator made no exec",
                    s.collector, s.rate
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "collectors did not keep up:\n  {}",
                problems.join("\n  ")
            ))
        }
    }

    /// The agent to measure: the release build. In CI mode, where only "it runs" is checked,
    /// the debug build, which the test suite has built already: an optimised build of the
    /// whole agent cost CI about ten minutes for a four-second storm.
    fn build_agent(root: &Path, ci: bool) -> Result<PathBuf, String> {
        let (profile, dir) = if ci {
            ("dev", "debug")
        } else {
            ("release", "release")
        };
        eprintln!("bench: building the agent ({profile} profile)");
        crate::host::run(Command::new(env!("CARGO")).current_dir(root).args([
            "build",
            "--profile",
            profile,
            "--locked",
            "-p",
            "endpoint-agent",
            "--bin",
            "agent",
        ]))?;
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        let bin = target.join(dir).join("agent");
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("no agent at {} after the build", bin.display()))
        }
    }

    /// Back to the state found at the start: only its rules, its status fields, no daemon.
    fn restore(saved: &SavedState, sock: &mut AuditSocket) -> Result<(), String> {
        saved
            .restore(sock)
            .map_err(|e| format!("restoring the audit state: {e}"))
    }

    /// Clean slate for one run: no rules, enabled, the common backlog limit.
    fn prepare(sock: &mut AuditSocket) -> Result<(), String> {
        for r in sock
            .list_rules()
            .map_err(|e| format!("listing rules: {e}"))?
        {
            sock.delete_rule(&r)
                .map_err(|e| format!("deleting a rule: {e}"))?;
        }
        sock.set_status(&StatusUpdate {
            enabled: Some(1),
            backlog_limit: Some(BACKLOG),
            ..StatusUpdate::default()
        })
        .map_err(|e| format!("audit status: {e}"))
    }

    fn run_all(
        o: &Options,
        agent: Option<&Path>,
        baseline: Option<&Path>,
        sock: &mut AuditSocket,
        saved: &SavedState,
    ) -> Result<Vec<Sample>, String> {
        let rule = compile(RULE, Arch::X86_64).map_err(|e| format!("{RULE}: {e}"))?;
        let mut samples = Vec::new();
        let total = o.repeats as usize * o.rates.len() * o.collectors.len();
        let mut turn = 0usize;
        for repeat in 0..o.repeats {
            for &rate in &o.rates {
                // Rotate the order so that no collector always runs first or last.
                let n = o.collectors.len();
                for k in 0..n {
                    let c = o.collectors[(k + turn) % n];
                    prepare(sock)?;
                    let run = Run {
                        secs: o.secs,
                        rate,
                        rule: &rule,
                    };
                    let r = match c {
                        "agent" => run.agent("agent", agent.ok_or("no agent binary")?, sock),
                        "agent-before" => {
                            run.agent("agent-before", baseline.ok_or("no baseline agent")?, sock)
                        }
                        "laurel" => run.auditd(sock, true),
                        _ => run.auditd(sock, false),
                    };
                    let restored = restore(saved, sock);
                    let mut s = r?;
                    restored?;
                    s.repeat = repeat;
                    eprintln!(
                        "bench: [{}/{total}] {c} at {rate}/s: {:.2} % CPU, {:.0} exec/s, {}/{} delivered, {} lost, peak RSS {:.1} MiB",
                        samples.len() + 1,
                        s.cpu_pct,
                        s.achieved,
                        s.delivered,
                        s.execs,
                        s.lost,
                        s.peak_rss_kib as f64 / 1024.0
                    );
                    samples.push(s);
                }
                turn += 1;
            }
        }
        Ok(samples)
    }

    struct Run<'a> {
        secs: u64,
        rate: u64,
        rule: &'a RuleData,
    }

    /// A child process stopped (SIGTERM, then SIGKILL after 15 s) when dropped.
    struct Daemon(Child);

    impl Daemon {
        fn pid(&self) -> u32 {
            self.0.id()
        }

        fn stop(&mut self) {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
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

    impl Drop for Daemon {
        fn drop(&mut self) {
            self.stop();
        }
    }

    fn wait_for(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ok()
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

    /// `pid` and all its descendants.
    fn tree(pid: u32) -> Vec<u32> {
        let mut all: Vec<(u32, u32)> = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some(s) = stat(p) {
                    all.push((p, s.ppid));
                }
            }
        }
        let mut out = vec![pid];
        let mut i = 0;
        while i < out.len() {
            let parent = out[i];
            out.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
            i += 1;
        }
        out
    }

    fn stat(pid: u32) -> Option<agent_os::proc_stat::ProcStat> {
        let b = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
        agent_os::proc_stat::ProcStat::parse(&b).ok()
    }

    /// utime + stime of the processes, seconds.
    fn cpu_secs(pids: &[u32]) -> f64 {
        pids.iter()
            .filter_map(|&p| stat(p))
            .map(|s| (s.utime + s.stime) as f64)
            .sum::<f64>()
            / ticks_per_sec()
    }

    /// Sum of VmHWM, KiB.
    fn hwm_kib(pids: &[u32]) -> u64 {
        pids.iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .filter_map(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .sum()
    }

    /// What one storm measured.
    struct Storm {
        execs: u64,
        achieved: f64,
        cpu: f64,
        window: f64,
        peak_rss_kib: u64,
        lost: u64,
    }

    impl Run<'_> {
        /// Runs the generator while the processes of `root_pid` collect; CPU over the
        /// storm plus one second.
        fn storm(&self, root_pid: u32, sock: &mut AuditSocket) -> Result<Storm, String> {
            let pids = tree(root_pid);
            let lost0 = sock.get_status().map_err(|e| format!("status: {e}"))?.lost;
            let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
            let cpu0 = cpu_secs(&pids);
            let t0 = Instant::now();
            let mut gen = Command::new(exe)
                .args([
                    "bench",
                    "generate",
                    &self.rate.to_string(),
                    &self.secs.to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("starting the generator: {e}"))?;
            let mut out = String::new();
            if let Some(mut so) = gen.stdout.take() {
                let _ = so.read_to_string(&mut out);
            }
            let st = gen.wait().map_err(|e| format!("generator: {e}"))?;
            if !st.success() {
                return Err(format!("the generator failed: {st}"));
            }
            std::thread::sleep(Duration::from_secs(1));
            // Processes started during the run (laurel restarts, helpers) count too.
            let pids_now = tree(root_pid);
            let late: Vec<u32> = pids_now
                .iter()
                .copied()
                .filter(|p| !pids.contains(p))
                .collect();
            let cpu = cpu_secs(&pids) + cpu_secs(&late) - cpu0;
            let window = t0.elapsed().as_secs_f64();
            let peak_rss_kib = hwm_kib(&pids_now);
            let lost1 = sock.get_status().map_err(|e| format!("status: {e}"))?.lost;
            let mut g = out.split_whitespace().filter_map(|x| x.parse::<f64>().ok());
            let (execs, gen_wall) = (g.next().unwrap_or(0.0), g.next().unwrap_or(1.0));
            Ok(Storm {
                execs: execs as u64,
                achieved: execs / gen_wall.max(1e-9),
                cpu,
                window,
                peak_rss_kib,
                lost: u64::from(lost1.wrapping_sub(lost0)),
            })
        }

        fn sample(&self, collector: &'static str, s: &Storm, delivered: u64) -> Sample {
            Sample {
                collector,
                rate: self.rate,
                repeat: 0,
                execs: s.execs,
                achieved: s.achieved,
                cpu_pct: 100.0 * s.cpu / s.window,
                us_per_exec: if s.execs > 0 {
                    s.cpu / s.execs as f64 * 1e6
                } else {
                    0.0
                },
                delivered,
                lost: s.lost,
                peak_rss_kib: s.peak_rss_kib,
            }
        }

        /// auditd writing raw logs, with laurel as its plugin when `laurel`.
        fn auditd(&self, sock: &mut AuditSocket, laurel: bool) -> Result<Sample, String> {
            let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
            let d = dir.path();
            // laurel drops to its own user, which must reach its log directory.
            set_mode(d, 0o755)?;
            let plugins = d.join("plugins.d");
            std::fs::create_dir(&plugins).map_err(|e| format!("{}: {e}", plugins.display()))?;
            let log = d.join("audit.log");
            write(
                &d.join("auditd.conf"),
                &format!(
                    "local_events = yes\nwrite_logs = yes\nlog_file = {}\nlog_group = root\n\
                     log_format = RAW\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 4000\n\
                     num_logs = 2\npriority_boost = 4\nname_format = NONE\n\
                     max_log_file_action = IGNORE\nspace_left = 75\nspace_left_action = IGNORE\n\
                     admin_space_left = 50\nadmin_space_left_action = IGNORE\n\
                     disk_full_action = IGNORE\ndisk_error_action = IGNORE\nuse_libwrap = no\n\
                     tcp_listen_queue = 5\ntcp_max_per_addr = 1\ntcp_client_max_idle = 0\n\
                     transport = TCP\ndistribute_network = no\nq_depth = 20000\n\
                     overflow_action = SYSLOG\nmax_restarts = 10\nplugin_dir = {}\n\
                     end_of_event_timeout = 2\n",
                    log.display(),
                    plugins.display()
                ),
            )?;
            let laurel_dir = d.join("laurel");
            if laurel {
                // Debian's laurel configuration, with its log here and without rotation.
                let conf = std::fs::read_to_string("/etc/laurel/config.toml")
                    .map_err(|e| format!("/etc/laurel/config.toml: {e}"))?;
                let conf: String = conf
                    .lines()
                    .map(|l| {
                        if l.starts_with("directory") {
                            format!("directory = \"{}\"", laurel_dir.display())
                        } else if l.starts_with("size") {
                            "size = 4000000000".to_string()
                        } else {
                            l.to_string()
                        }
                    })
                    .map(|l| l + "\n")
                    .collect();
                write(&d.join("laurel.toml"), &conf)?;
                write(
                    &plugins.join("laurel.conf"),
                    &format!(
                        "active = yes\ndirection = out\ntype = always\nformat = string\n\
                         path = /usr/sbin/laurel\nargs = --config {}\n",
                        d.join("laurel.toml").display()
                    ),
                )?;
            }
            let child = Command::new("auditd")
                .args(["-n", "-c"])
                .arg(d)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting auditd: {e}"))?;
            let mut daemon = Daemon(child);
            let pid = daemon.pid();
            let registered = wait_for(Duration::from_secs(10), || {
                sock.get_status().is_ok_and(|s| s.pid == pid)
            });
            if !registered {
                return Err("auditd did not register within 10 s".into());
            }
            if laurel
                && !wait_for(Duration::from_secs(10), || {
                    tree(pid)
                        .iter()
                        .any(|&p| stat(p).is_some_and(|s| s.comm == "laurel"))
                })
            {
                return Err("auditd started no laurel within 10 s".into());
            }
            sock.add_rule(self.rule)
                .map_err(|e| format!("adding the rule: {e}"))?;
            std::thread::sleep(Duration::from_millis(500));
            let storm = self.storm(pid, sock)?;
            for r in sock.list_rules().map_err(|e| format!("rules: {e}"))? {
                let _ = sock.delete_rule(&r);
            }
            daemon.stop();
            let delivered = if laurel {
                count_lines(&laurel_dir.join("audit.log"), |l| {
                    l.contains("\"SYSCALL\":") && l.contains("\"exe\":\"/usr/bin/true\"")
                })
            } else {
                count_lines(&log, |l| {
                    l.starts_with("type=SYSCALL") && l.contains("exe=\"/usr/bin/true\"")
                })
            };
            Ok(self.sample(if laurel { "laurel" } else { "auditd" }, &storm, delivered))
        }

        /// The release agent with the exec rule, shipping to a loopback intake.
        fn agent(
            &self,
            name: &'static str,
            bin: &Path,
            sock: &mut AuditSocket,
        ) -> Result<Sample, String> {
            let intake = agent_testkit::Intake::start().map_err(|e| format!("intake: {e}"))?;
            let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
            let d = dir.path();
            let (state, logs) = (d.join("state"), d.join("log"));
            for p in [&state, &logs] {
                std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            let rules = d.join("exec.rules");
            write(&rules, &format!("{RULE}\n"))?;
            let config = d.join("config.yaml");
            write(
                &config,
                &format!(
                    "IntakeKey: {KEY}\nIntakeURL: {}\nAutoUpdate: false\n",
                    intake.url()
                ),
            )?;
            let child = Command::new(bin)
                .arg("run")
                .arg("--config")
                .arg(&config)
                .arg("--extra-ca")
                .arg(intake.ca_file())
                .env("ENDPOINT_AGENT_STATE_DIR", &state)
                .env("ENDPOINT_AGENT_LOG_DIR", &logs)
                .env("ENDPOINT_AGENT_AUDIT_RULES", &rules)
                .env_remove("HTTPS_PROXY")
                .env_remove("https_proxy")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting the agent: {e}"))?;
            let mut daemon = Daemon(child);
            let pid = daemon.pid();
            let registered = wait_for(Duration::from_secs(30), || {
                state.join("status.json").exists() && sock.get_status().is_ok_and(|s| s.pid == pid)
            });
            if !registered {
                return Err("the agent did not register as the audit daemon within 30 s".into());
            }
            std::thread::sleep(Duration::from_secs(1));
            let storm = self.storm(pid, sock)?;
            // Everything made reaches the intake within a batch delay (5 s) and a retry.
            let is_true = |r: &agent_testkit::Record| {
                r.json().is_some_and(|j| {
                    j["event"]["action"] == "process-created"
                        && matches!(
                            j["process"]["executable"].as_str(),
                            Some("/bin/true" | "/usr/bin/true")
                        )
                })
            };
            let mut delivered = 0;
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                delivered = intake
                    .records_for(KEY)
                    .iter()
                    .filter(|r| is_true(r))
                    .count() as u64;
                if delivered >= storm.execs {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            daemon.stop();
            Ok(self.sample(name, &storm, delivered))
        }
    }

    fn write(path: &Path, text: &str) -> Result<(), String> {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn count_lines(path: &Path, f: impl Fn(&str) -> bool) -> u64 {
        let Ok(file) = std::fs::File::open(path) else {
            return 0;
        };
        std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|l| f(l))
            .count() as u64
    }

    /// `cargo xtask bench generate RATE SECS`: spawns `/bin/true` RATE times a second for
    /// SECS seconds, reaping children as they end; prints the count and its wall time.
    pub fn generate(args: &[String]) -> Result<(), String> {
        let n = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
        let (rate, secs) = (n(0), n(1));
        let start = Instant::now();
        let end = Duration::from_secs(secs);
        let mut spawned = 0u64;
        let mut running: Vec<Child> = Vec::new();
        if rate == 0 {
            std::thread::sleep(end);
        }
        // Stops at the end of the time, whatever it achieved (saturation shows as a
        // lower achieved rate).
        while rate > 0 && start.elapsed() < end {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while spawned < due && start.elapsed() < end {
                match Command::new("/bin/true").spawn() {
                    Ok(c) => running.push(c),
                    Err(e) => eprintln!("generator: spawn: {e}"),
                }
                spawned += 1;
            }
            running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(1));
        }
        let wall = start.elapsed().as_secs_f64();
        for mut c in running {
            let _ = c.wait();
        }
        println!("{spawned} {wall:.3}");
        Ok(())
    }
}
