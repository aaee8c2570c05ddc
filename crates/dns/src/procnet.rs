//! Linux process attribution: the process that owns the client socket of a response. The
//! socket's inode comes from the kernel (`sock_diag`, see [`crate::sockdiag`]; else
//! `/proc/net/udp{,6}`), its owner from the `socket:[inode]` links in `/proc/PID/fd`. Read
//! at capture time; when no socket matches, several do, or several processes share the
//! socket, the event names no process.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Instant;

use agent_event::Process;
use uuid::Uuid;

use crate::decoder::{Attributed, Attribution};
use crate::frame::{is_unspecified, Transport};
use crate::message::Flow;
use crate::sockdiag::{Lookup, SockDiag};

/// Namespace of process GUIDs, the same as the audit collector's
/// (`agent_linux_audit::proctable::PROCESS_GUID_NAMESPACE`), so both name a process alike.
const PROCESS_GUID_NAMESPACE: Uuid = Uuid::from_u128(0x8207_d261_248f_50ea_991a_4db7_9fa6_a1f7);

/// `UUIDv5(namespace, "<boot id>:<pid>:<start ticks>")`, as the audit collector derives it.
fn process_guid(boot_id: &str, pid: u32, start_ticks: u64) -> Uuid {
    let name = format!("{boot_id}:{pid}:{start_ticks}");
    Uuid::new_v5(&PROCESS_GUID_NAMESPACE, name.as_bytes())
}

/// One socket line of `/proc/net/{udp,tcp}{,6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketEntry {
    /// Local address and port.
    pub local: (IpAddr, u16),
    /// Remote address and port (unspecified for an unconnected UDP socket).
    pub remote: (IpAddr, u16),
    /// Socket inode.
    pub inode: u64,
}

fn parse_addr(text: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints each 32-bit word of the address in host order.
    let ip = match addr.len() {
        8 => {
            let w = u32::from_str_radix(addr, 16).ok()?;
            IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes()))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Parses the text of `/proc/net/{udp,tcp}{,6}`; lines that do not read are skipped.
pub fn parse_proc_net(text: &str) -> Vec<SocketEntry> {
    text.lines().skip(1).filter_map(parse_line).collect()
}

/// Like [`parse_proc_net`], keeping only the sockets with local port `port` (the others are
/// not parsed further: a busy host has thousands).
pub fn parse_proc_net_port(text: &str, port: u16) -> Vec<SocketEntry> {
    text.lines()
        .skip(1)
        .filter(|line| {
            let local = line.split_whitespace().nth(1).unwrap_or_default();
            local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port)
        })
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<SocketEntry> {
    let f: Vec<&str> = line.split_whitespace().collect();
    Some(SocketEntry {
        local: parse_addr(f.get(1)?)?,
        remote: parse_addr(f.get(2)?)?,
        inode: f.get(9)?.parse().ok()?,
    })
}

fn same_ip(a: &IpAddr, b: &IpAddr) -> bool {
    let canon = |ip: &IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(*v6), IpAddr::V4),
        v4 => *v4,
    };
    canon(a) == canon(b)
}

/// The inode of the one socket that receives `flow` (a response: its destination is the
/// client's end), if exactly one matches.
pub fn client_socket(entries: &[SocketEntry], flow: &Flow) -> Option<u64> {
    let mut found = None;
    for e in entries {
        if e.inode == 0 || e.local.1 != flow.dport {
            continue;
        }
        let local_ok = is_unspecified(&e.local.0) || same_ip(&e.local.0, &flow.dst);
        let remote_ok = match flow.transport {
            Transport::Tcp => same_ip(&e.remote.0, &flow.src) && e.remote.1 == flow.sport,
            Transport::Udp => {
                e.remote.1 == 0 || (same_ip(&e.remote.0, &flow.src) && e.remote.1 == flow.sport)
            }
        };
        if local_ok && remote_ok {
            match found {
                None => found = Some(e.inode),
                Some(i) if i == e.inode => {}
                Some(_) => return None,
            }
        }
    }
    found
}

/// [`Attribution`] from `/proc`. See the module documentation.
#[derive(Debug)]
pub struct ProcAttribution {
    proc_root: PathBuf,
    boot_id: String,
    owners: HashMap<u64, Vec<u32>>,
    /// Full scans of `/proc/*/fd` cost milliseconds on a busy host: a token bucket bounds
    /// them (`SCANS_PER_SECOND`, bursts of as many); past it, a response names no process.
    scan_tokens: f64,
    last_refill: Instant,
    /// Processes that owned a DNS client socket lately: looked at first, cheaply.
    recent: VecDeque<u32>,
    /// Exact socket lookups by the kernel (None if the netlink socket could not open).
    diag: Option<SockDiag>,
    /// Processes described lately, by pid, with their start time.
    processes: HashMap<u32, (u64, Attributed)>,
}

/// Processes whose description is kept.
const PROCESS_CACHE: usize = 256;

/// Full `/proc` scans allowed per second (and burst).
const SCANS_PER_SECOND: f64 = 10.0;
/// Recent socket owners remembered.
const RECENT: usize = 32;

impl Default for ProcAttribution {
    fn default() -> Self {
        ProcAttribution::new()
    }
}

impl ProcAttribution {
    /// Attribution from the host's `/proc`.
    pub fn new() -> ProcAttribution {
        ProcAttribution {
            proc_root: PathBuf::from("/proc"),
            boot_id: agent_host::boot_id().unwrap_or_default(),
            owners: HashMap::new(),
            scan_tokens: SCANS_PER_SECOND,
            last_refill: Instant::now(),
            recent: VecDeque::new(),
            diag: SockDiag::open().ok(),
            processes: HashMap::new(),
        }
    }

    fn net_table(&self, name: &str) -> String {
        // The capture thread's own network namespace: /proc/self/net is the main thread's.
        let own = self.proc_root.join("thread-self/net").join(name);
        std::fs::read_to_string(own)
            .or_else(|_| std::fs::read_to_string(self.proc_root.join("self/net").join(name)))
            .unwrap_or_default()
    }

    fn scan_owners(&mut self) {
        self.owners.clear();
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
                else {
                    continue;
                };
                let pids = self.owners.entry(inode).or_default();
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
    }

    fn owner(&mut self, inode: u64) -> Option<u32> {
        let want = format!("socket:[{inode}]");
        if !self.owners.contains_key(&inode) {
            // Programs that resolve often (browsers, resolvers) are found without a scan.
            if let Some(&pid) = self.recent.iter().find(|&&p| self.holds(p, &want)) {
                self.owners.insert(inode, vec![pid]);
            } else if self.take_scan_token() {
                self.scan_owners();
            } else {
                return None;
            }
        }
        // A socket shared by several processes (inherited across fork) has no one owner.
        let pid = match self.owners.get(&inode)?.as_slice() {
            [pid] => *pid,
            _ => return None,
        };
        self.recent.retain(|&p| p != pid);
        self.recent.push_front(pid);
        self.recent.truncate(RECENT);
        Some(pid)
    }

    fn take_scan_token(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last_refill).as_secs_f64() * SCANS_PER_SECOND;
        self.last_refill = now;
        self.scan_tokens = (self.scan_tokens + refill).min(SCANS_PER_SECOND);
        if self.scan_tokens >= 1.0 {
            self.scan_tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether `pid` has the socket `want` (`socket:[inode]`) open now.
    fn holds(&self, pid: u32, want: &str) -> bool {
        let fd_dir = self.proc_root.join(pid.to_string()).join("fd");
        std::fs::read_dir(fd_dir).is_ok_and(|d| {
            d.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == want))
        })
    }

    fn process(&mut self, pid: u32) -> Option<Attributed> {
        let dir = self.proc_root.join(pid.to_string());
        let stat =
            agent_os::proc_stat::ProcStat::parse(&std::fs::read(dir.join("stat")).ok()?).ok()?;
        // Same pid and start time: the same process instance, already described, unless
        // it has exec'd another program since (exec keeps both).
        if let Some((start, known)) = self.processes.get(&pid) {
            let exe = std::fs::read_link(dir.join("exe")).ok();
            if *start == stat.starttime
                && exe.is_some_and(|e| e.as_os_str() == known.process.executable.as_str())
            {
                return Some(known.clone());
            }
        }
        let attributed = self.describe(&dir, pid, &stat)?;
        if self.processes.len() >= PROCESS_CACHE {
            self.processes.clear();
        }
        self.processes
            .insert(pid, (stat.starttime, attributed.clone()));
        Some(attributed)
    }

    fn describe(
        &self,
        dir: &std::path::Path,
        pid: u32,
        stat: &agent_os::proc_stat::ProcStat,
    ) -> Option<Attributed> {
        let executable = std::fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let args: Vec<String> = std::fs::read(dir.join("cmdline"))
            .ok()
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let name = executable
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .map_or_else(|| stat.comm.clone(), str::to_owned);
        let guid = if self.boot_id.is_empty() {
            String::new()
        } else {
            process_guid(&self.boot_id, pid, stat.starttime).to_string()
        };
        Some(Attributed {
            process: Process {
                pid: Some(pid),
                executable,
                name,
                command_line: args.join(" "),
                args,
                ..Process::default()
            },
            guid,
        })
    }
}

impl Attribution for ProcAttribution {
    fn process_of(&mut self, flow: &Flow) -> Option<Attributed> {
        let inode = self.client_inode(flow)?;
        let pid = self.owner(inode)?;
        let attributed = self.process(pid)?;
        // The socket must still be that process's: a pid reused between the scan and now
        // would otherwise be named.
        self.holds(pid, &format!("socket:[{inode}]"))
            .then_some(attributed)
    }
}

impl ProcAttribution {
    /// The client socket's inode: asked of the kernel (sock_diag), else, for UDP on a kernel
    /// without it, read from `/proc/net/udp{,6}` (TCP tables cost milliseconds to read).
    fn client_inode(&mut self, flow: &Flow) -> Option<u64> {
        if let Some(diag) = self.diag.as_mut() {
            match diag.client_socket(flow) {
                Lookup::Found(inode) => return Some(inode),
                Lookup::NotFound => return None,
                Lookup::Unavailable => {}
            }
        }
        if flow.transport == Transport::Tcp {
            return None;
        }
        let mut entries = Vec::new();
        for t in ["udp", "udp6"] {
            entries.extend(parse_proc_net_port(&self.net_table(t), flow.dport));
        }
        client_socket(&entries, flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1111 2 0000000000000000 0
  2: 00000000:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2222 2 0000000000000000 0
  3: 0100007F:9C41 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 3333 2 0000000000000000 0
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  4: 00000000000000000000000001000000:9C42 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4444 2 0000000000000000 0
";

    fn flow(dport: u16, dst: &str) -> Flow {
        Flow {
            src: "127.0.0.1".parse().unwrap(),
            sport: 53,
            dst: dst.parse().unwrap(),
            dport,
            transport: Transport::Udp,
        }
    }

    #[test]
    fn guids_are_the_audit_collectors() {
        // The vector of agent_linux_audit::proctable's own test.
        assert_eq!(
            process_guid("b", 1, 2).to_string(),
            "9ef4108f-e33e-5ead-8230-840113c9600f"
        );
    }

    #[test]
    fn proc_net_lines_parse_in_host_order() {
        let e = parse_proc_net(UDP);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].local, ("127.0.0.1".parse().unwrap(), 53));
        assert_eq!(e[2].remote, ("127.0.0.1".parse().unwrap(), 53));
        assert_eq!(parse_proc_net_port(UDP, 0x9c41), vec![e[2].clone()]);
        let e6 = parse_proc_net(UDP6);
        assert_eq!(e6[0].local, ("::1".parse().unwrap(), 0x9c42));
        assert_eq!(e6[0].inode, 4444);
    }

    #[test]
    fn the_client_socket_is_found_by_port_and_address() {
        let mut all = parse_proc_net(UDP);
        all.extend(parse_proc_net(UDP6));
        assert_eq!(client_socket(&all, &flow(0x9c40, "127.0.0.1")), Some(2222));
        assert_eq!(client_socket(&all, &flow(0x9c41, "127.0.0.1")), Some(3333));
        assert_eq!(client_socket(&all, &flow(0x9c42, "::1")), Some(4444));
        assert_eq!(client_socket(&all, &flow(0x9c42, "::2")), None);
        assert_eq!(client_socket(&all, &flow(1, "127.0.0.1")), None);
        // Two sockets on one port (SO_REUSEPORT): no guess.
        let mut dup = all.clone();
        dup.push(SocketEntry {
            inode: 9999,
            ..all[1].clone()
        });
        assert_eq!(client_socket(&dup, &flow(0x9c40, "127.0.0.1")), None);
    }

    #[test]
    fn this_process_owns_its_socket() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let mut a = ProcAttribution::new();
        let got = a.process_of(&flow(port, "127.0.0.1")).unwrap();
        assert_eq!(got.process.pid, Some(std::process::id()));
        assert_eq!(
            got.process.executable,
            std::env::current_exe().unwrap().to_string_lossy()
        );
        let stat = agent_os::proc_stat::ProcStat::parse(&std::fs::read("/proc/self/stat").unwrap())
            .unwrap();
        let expected = process_guid(
            &agent_host::boot_id().unwrap(),
            std::process::id(),
            stat.starttime,
        );
        assert_eq!(got.guid, expected.to_string());
        drop(sock);
        assert!(a.process_of(&flow(port, "127.0.0.1")).is_none());
    }
}
