//! Host and agent resource usage for the periodic `stats` event.
//!
//! CPU percentages are rates, so they are measured between two samples: [`StatsSampler`]
//! remembers the previous counters and each [`StatsSampler::sample`] reports usage since the
//! previous call (or since the sampler was created).

use std::time::Instant;

/// One measurement (`sekoiaio.host.*`, `sekoiaio.agent.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct HostStats {
    /// Busy share of all CPUs since the previous sample, 0–100.
    pub host_cpu_percent: f64,
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Memory available for new work in bytes (`MemAvailable`).
    pub memory_available: u64,
    /// `memory_total - memory_available`.
    pub memory_used: u64,
    /// `memory_used` as a percentage of `memory_total`.
    pub memory_used_percent: f64,
    /// The agent's CPU since the previous sample, in percent of one core.
    pub agent_cpu_percent: f64,
    /// The agent's resident set size in bytes.
    pub agent_rss: u64,
    /// The agent's RSS as a percentage of `memory_total`.
    pub agent_memory_percent: f64,
    /// Seconds since boot.
    pub uptime_secs: Option<u64>,
}

/// Aggregate CPU counters from the first line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CpuTimes {
    pub(crate) total: u64,
    pub(crate) idle: u64,
}

/// Parses the `cpu ` line of `/proc/stat`. Idle time is `idle + iowait`; `guest` and
/// `guest_nice` are already part of `user`/`nice` and are not added twice.
// Pure parsers: used by the Linux readers, unit-tested everywhere.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some(CpuTimes { total, idle })
}

/// `(MemTotal, MemAvailable)` in bytes from `/proc/meminfo`.
// Pure parsers: used by the Linux readers, unit-tested everywhere.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let mut total = None;
    let mut avail = None;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let key = it.next();
        let kb: Option<u64> = it.next().and_then(|v| v.parse().ok());
        match key {
            Some("MemTotal:") => total = kb,
            Some("MemAvailable:") => avail = kb,
            _ => {}
        }
    }
    Some((total? * 1024, avail? * 1024))
}

/// `utime + stime` (fields 14 and 15) from a `/proc/PID/stat` line, in clock ticks.
// Pure parsers: used by the Linux readers, unit-tested everywhere.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_self_cpu_ticks(bytes: &[u8]) -> Option<u64> {
    let stat = agent_os::proc_stat::ProcStat::parse(bytes).ok()?;
    Some(stat.utime + stat.stime)
}

/// `VmRSS` in bytes from `/proc/self/status`.
// Pure parsers: used by the Linux readers, unit-tested everywhere.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_vmrss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples host and agent usage; see the module documentation.
#[derive(Debug)]
pub struct StatsSampler {
    prev_host: Option<CpuTimes>,
    prev_self_ticks: Option<u64>,
    prev_at: Instant,
}

impl StatsSampler {
    /// Takes the baseline counters.
    pub fn new() -> Self {
        StatsSampler {
            prev_host: read_host_cpu(),
            prev_self_ticks: read_self_ticks(),
            prev_at: Instant::now(),
        }
    }

    /// Usage since the previous sample. `None` on OSes not supported yet (Windows, macOS) or
    /// when `/proc` is unreadable.
    pub fn sample(&mut self) -> Option<HostStats> {
        let host = read_host_cpu()?;
        let ticks = read_self_ticks()?;
        let now = Instant::now();
        let (memory_total, memory_available) = read_meminfo()?;
        let agent_rss = read_rss()?;

        let host_cpu_percent = match self.prev_host {
            Some(prev) => {
                let dt = host.total.saturating_sub(prev.total);
                let di = host.idle.saturating_sub(prev.idle);
                if dt == 0 {
                    0.0
                } else {
                    100.0 * (dt.saturating_sub(di)) as f64 / dt as f64
                }
            }
            None => 0.0,
        };
        let wall = now.duration_since(self.prev_at).as_secs_f64();
        let hz = clock_ticks_per_sec();
        let agent_cpu_percent = match self.prev_self_ticks {
            Some(prev) if wall > 0.0 && hz > 0.0 => {
                100.0 * ticks.saturating_sub(prev) as f64 / hz / wall
            }
            _ => 0.0,
        };
        self.prev_host = Some(host);
        self.prev_self_ticks = Some(ticks);
        self.prev_at = now;

        let memory_used = memory_total.saturating_sub(memory_available);
        let pct = |x: u64| {
            if memory_total == 0 {
                0.0
            } else {
                100.0 * x as f64 / memory_total as f64
            }
        };
        Some(HostStats {
            host_cpu_percent,
            memory_total,
            memory_available,
            memory_used,
            memory_used_percent: pct(memory_used),
            agent_cpu_percent,
            agent_rss,
            agent_memory_percent: pct(agent_rss),
            uptime_secs: crate::info::uptime_secs(),
        })
    }
}

impl Default for StatsSampler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_os = "linux")]
fn read_host_cpu() -> Option<CpuTimes> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}
#[cfg(target_os = "linux")]
fn read_self_ticks() -> Option<u64> {
    parse_self_cpu_ticks(&std::fs::read("/proc/self/stat").ok()?)
}
#[cfg(target_os = "linux")]
fn read_meminfo() -> Option<(u64, u64)> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}
#[cfg(target_os = "linux")]
fn read_rss() -> Option<u64> {
    parse_vmrss(&std::fs::read_to_string("/proc/self/status").ok()?)
}
#[cfg(target_os = "linux")]
fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions; it only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

#[cfg(not(target_os = "linux"))]
fn read_host_cpu() -> Option<CpuTimes> {
    None
}
#[cfg(not(target_os = "linux"))]
fn read_self_ticks() -> Option<u64> {
    None
}
#[cfg(not(target_os = "linux"))]
fn read_meminfo() -> Option<(u64, u64)> {
    None
}
#[cfg(not(target_os = "linux"))]
fn read_rss() -> Option<u64> {
    None
}
#[cfg(not(target_os = "linux"))]
fn clock_ticks_per_sec() -> f64 {
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "cpu  100 5 50 800 40 1 2 3 7 0\ncpu0 1 2 3 4\nintr 1\n";
        assert_eq!(
            parse_proc_stat(stat),
            Some(CpuTimes {
                total: 1001,
                idle: 840
            })
        );
        let mem = "MemTotal:       16384 kB\nMemFree:  1 kB\nMemAvailable:    4096 kB\n";
        assert_eq!(parse_meminfo(mem), Some((16384 * 1024, 4096 * 1024)));
        let selfstat =
            b"1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 25 17 0 0 20 0 1 0 999 0 77";
        assert_eq!(parse_self_cpu_ticks(selfstat), Some(42));
        assert_eq!(
            parse_vmrss("Name:\tx\nVmRSS:\t   2048 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_sample_is_plausible_and_sees_our_cpu_burn() {
        let mut s = StatsSampler::new();
        // Burn at least 10 ticks (100 ms at HZ=100) of our own CPU time, however loaded the
        // machine is, so the agent share is clearly non-zero.
        let t0 = read_self_ticks().unwrap();
        let start = Instant::now();
        let mut x = 0u64;
        while read_self_ticks().unwrap() < t0 + 10 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            assert!(start.elapsed().as_secs() < 30, "could not burn CPU");
        }
        let st = s.sample().expect("linux stats");
        assert!(
            st.memory_total > 0 && st.memory_used <= st.memory_total,
            "{st:?}"
        );
        assert!((0.0..=100.0).contains(&st.host_cpu_percent), "{st:?}");
        assert!((0.0..=100.0).contains(&st.memory_used_percent), "{st:?}");
        assert!(st.agent_cpu_percent > 0.0, "busy loop not seen: {st:?}");
        // Other test threads run in parallel and tick-based accounting is coarse over a short
        // window: only rule out nonsense (e.g. ticks taken for milliseconds).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(st.agent_cpu_percent <= 200.0 * cores + 50.0, "{st:?}");
        assert!(st.agent_rss > 1024 * 1024, "{st:?}");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss_now = parse_vmrss(&status).unwrap();
        assert!(st.agent_rss <= rss_now * 2 && rss_now <= st.agent_rss * 2);
    }
}
