//! The macOS packet reader: one `/dev/bpf` device per interface that is up, with the
//! kernel filter of [`crate::net::filter`], read on one thread with `poll`. Frames go to a
//! [`NetDecoder`] per interface; the kernel's drop counters become `source_lost`.
//!
//! Compiled for the macOS targets in CI; not run there (it needs a Mac and root).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_dns::LinkType;
use agent_event::{Event, Timestamp};
use agent_pipeline::Sink;

use crate::collector::{NetError, NetSettings};
use crate::net::{filter, records, Insn, NetDecoder, NetOptions};

/// `struct bpf_program` (`<net/bpf.h>`).
#[repr(C)]
struct BpfProgram {
    bf_len: libc::c_uint,
    bf_insns: *mut Insn,
}

/// `BIOCSETF` = `_IOW('B', 103, struct bpf_program)`: not in the libc crate. The size
/// field (16) is `sizeof(struct bpf_program)` on 64-bit macOS, checked below.
const BIOCSETF: libc::c_ulong = 0x8010_4267;
const _: () = assert!(std::mem::size_of::<BpfProgram>() == 16);

/// `struct bpf_stat`.
#[repr(C)]
#[derive(Default)]
struct BpfStat {
    bs_recv: libc::c_uint,
    bs_drop: libc::c_uint,
}

/// `DLT_RAW` on macOS.
const DLT_RAW: libc::c_uint = 12;
/// Kernel buffer per device.
const BUFFER: libc::c_uint = 512 * 1024;
/// How often interfaces and addresses are looked at again (VPNs come and go).
const RESCAN: Duration = Duration::from_secs(30);
/// How often the kernel's drop counters are read.
const STATS: Duration = Duration::from_secs(5);

struct Device {
    file: File,
    buf: Vec<u8>,
    decoder: NetDecoder,
}

/// A started reader.
#[derive(Debug)]
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops the thread (it emits the DNS events it still holds) and closes the devices.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens the devices and starts the reader.
pub fn start(settings: &NetSettings, sink: Sink) -> Result<Running, NetError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NetError::NotRoot);
    }
    let options = NetOptions {
        tcp: settings.tcp,
        dns: settings.dns,
    };
    let (names, local) = interfaces();
    let mut devices = HashMap::new();
    let mut last_error = None;
    for name in &names {
        match open(name, options) {
            Ok(Some(d)) => {
                devices.insert(name.clone(), d);
            }
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
    }
    if devices.is_empty() {
        return Err(match last_error {
            Some(e) => NetError::Device(e),
            None => NetError::NoInterface,
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("macos-net".into())
        .spawn(move || run(devices, local, options, &sink, &thread_stop))
        .map_err(NetError::Thread)?;
    Ok(Running {
        stop,
        thread: Some(thread),
    })
}

/// The first free `/dev/bpfN`.
fn open_device() -> io::Result<File> {
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for n in 0..256 {
        match File::open(format!("/dev/bpf{n}")) {
            Ok(f) => return Ok(f),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn ioctl<T>(file: &File, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` points to a live value of the type the request reads or writes
    // (checked by each caller against <net/bpf.h>), and the descriptor is open.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, arg as *mut T) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A device on interface `name` with the filter set, or `None` for a link type the
/// collector does not read.
fn open(name: &str, options: NetOptions) -> io::Result<Option<Device>> {
    let file = open_device()?;
    let mut blen: libc::c_uint = BUFFER;
    ioctl(&file, libc::BIOCSBLEN, &mut blen)?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value (an empty name).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() {
        return Ok(None);
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    ioctl(&file, libc::BIOCSETIF, &mut ifr)?;
    let mut dlt: libc::c_uint = 0;
    ioctl(&file, libc::BIOCGDLT, &mut dlt)?;
    let link = match dlt {
        libc::DLT_EN10MB => LinkType::Ethernet,
        libc::DLT_NULL => LinkType::Null,
        DLT_RAW => LinkType::RawIp,
        _ => return Ok(None),
    };
    let Some(mut program) = filter(link) else {
        return Ok(None);
    };
    let mut on: libc::c_uint = 1;
    ioctl(&file, libc::BIOCIMMEDIATE, &mut on)?;
    let mut prog = BpfProgram {
        bf_len: program.len() as libc::c_uint,
        bf_insns: program.as_mut_ptr(),
    };
    // The kernel copies the program during the call; `program` outlives it.
    ioctl(&file, BIOCSETF, &mut prog)?;
    let mut blen: libc::c_uint = 0;
    ioctl(&file, libc::BIOCGBLEN, &mut blen)?;
    Ok(Some(Device {
        file,
        buf: vec![0; blen as usize],
        decoder: NetDecoder::new(name, link, options),
    }))
}

/// Names of the interfaces that are up, and the host's addresses.
fn interfaces() -> (Vec<String>, Vec<IpAddr>) {
    let mut names = Vec::new();
    let mut addrs = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return (names, addrs);
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_flags & (libc::IFF_UP as libc::c_uint) == 0 || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        if !names.contains(&name) {
            names.push(name);
        }
        if let Some(ip) = sockaddr_ip(ifa.ifa_addr) {
            addrs.push(ip);
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    (names, addrs)
}

fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: a non-null ifa_addr points to a sockaddr whose family says its real type.
    match i32::from(unsafe { (*sa).sa_family }) {
        libc::AF_INET => {
            // SAFETY: AF_INET: the sockaddr is a sockaddr_in.
            let sin = unsafe { &*(sa as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: AF_INET6: the sockaddr is a sockaddr_in6.
            let sin6 = unsafe { &*(sa as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

fn run(
    mut devices: HashMap<String, Device>,
    mut local: Vec<IpAddr>,
    options: NetOptions,
    sink: &Sink,
    stop: &AtomicBool,
) {
    let mut out: Vec<Event> = Vec::new();
    let mut last_rescan = Instant::now();
    let mut last_stats = Instant::now();
    let mut lost_closed = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let names: Vec<String> = devices.keys().cloned().collect();
        let mut fds: Vec<libc::pollfd> = names
            .iter()
            .map(|n| libc::pollfd {
                fd: devices[n].file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structures.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 500) };
        if n > 0 {
            for (pfd, name) in fds.iter().zip(&names) {
                if pfd.revents == 0 {
                    continue;
                }
                let Some(d) = devices.get_mut(name) else {
                    continue;
                };
                if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                    // The interface went away: keep its last drop count.
                    lost_closed += drops(&d.file);
                    d.decoder.finish(&mut out);
                    devices.remove(name);
                    continue;
                }
                // SAFETY: `buf` is a live, writable allocation of `buf.len()` bytes.
                let r = unsafe {
                    libc::read(d.file.as_raw_fd(), d.buf.as_mut_ptr().cast(), d.buf.len())
                };
                if r <= 0 {
                    continue;
                }
                let got = &d.buf[..r as usize];
                for rec in records(got) {
                    d.decoder.push(rec.data, rec.ts, &local, &mut out);
                }
            }
        }
        let now = Timestamp::now();
        for d in devices.values_mut() {
            d.decoder.tick(now, &mut out);
        }
        for e in out.drain(..) {
            if sink.send(Box::new(e)).is_err() {
                return;
            }
        }
        if last_stats.elapsed() >= STATS {
            last_stats = Instant::now();
            let lost: u64 = devices.values().map(|d| drops(&d.file)).sum();
            sink.report().set_source_lost(lost_closed + lost);
        }
        if last_rescan.elapsed() >= RESCAN {
            last_rescan = Instant::now();
            let (names, addrs) = interfaces();
            local = addrs;
            for name in names {
                if devices.contains_key(&name) {
                    continue;
                }
                if let Ok(Some(d)) = open(&name, options) {
                    devices.insert(name, d);
                }
            }
        }
    }
    for d in devices.values_mut() {
        d.decoder.finish(&mut out);
    }
    for e in out.drain(..) {
        let _ = sink.send(Box::new(e));
    }
}

/// Packets the kernel dropped for this device so far.
fn drops(file: &File) -> u64 {
    let mut st = BpfStat::default();
    match ioctl(file, libc::BIOCGSTATS, &mut st) {
        Ok(()) => {
            let _ = st.bs_recv;
            u64::from(st.bs_drop)
        }
        Err(_) => 0,
    }
}
