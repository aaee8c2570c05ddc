//! The Linux capture: one `AF_PACKET` socket on every interface (`SOCK_DGRAM`, so frames
//! start at the IP header whatever the link), with a classic BPF program attached in the
//! kernel (`SO_ATTACH_FILTER`) that passes only UDP and TCP with port 53 on either side, so
//! the agent never copies other traffic. No libpcap, no eBPF: works on 3.10 kernels.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Why the capture socket could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Opening a packet socket needs `CAP_NET_RAW`.
    #[error(
        "DNS capture needs CAP_NET_RAW to open an AF_PACKET socket (run the agent as root): {0}"
    )]
    Permission(io::Error),
    /// Another system call failed.
    #[error("DNS capture: {what}: {source}")]
    Os {
        /// The call.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn os(what: &'static str) -> impl FnOnce(io::Error) -> CaptureError {
    move |source| CaptureError::Os { what, source }
}

/// One frame received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The frame was longer than the buffer (cut).
    pub truncated: bool,
    /// A loopback interface's copy of a packet being sent (see
    /// [`crate::FrameMeta::loopback_outgoing`]).
    pub loopback_outgoing: bool,
    /// `sll_pkttype` (`PACKET_HOST` 0, `PACKET_OUTGOING` 4, ...).
    pub pkttype: u8,
    /// `sll_hatype` (`ARPHRD_*`).
    pub hatype: u16,
    /// `sll_protocol`, the EtherType (host order).
    pub protocol: u16,
}

/// Snap length the filter accepts: more than any IP packet, GSO super-packets included.
const SNAP_LEN: u32 = 0x4_0000;

/// Builds `struct sock_filter`.
const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

// Classic BPF opcodes (linux/filter.h).
const LDB_ABS: u16 = 0x30; // A = pkt[k]
const LDH_ABS: u16 = 0x28; // A = pkt[k..k+2]
const LDH_IND: u16 = 0x48; // A = pkt[X+k..X+k+2]
const LDXB_MSH: u16 = 0xb1; // X = 4 * (pkt[k] & 0xf)
const AND_K: u16 = 0x54; // A &= k
const JEQ_K: u16 = 0x15; // if A == k
const JSET_K: u16 = 0x45; // if A & k
const RET_K: u16 = 0x06; // return k

const LDW_ABS: u16 = 0x20; // A = pkt[k..k+4], or an ancillary value
/// Ancillary loads (linux/filter.h `SKF_AD_OFF + ...`).
const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4;
const SKF_AD_HATYPE: u32 = 0xffff_f000 + 28;

/// The port-53 part of the kernel filter: IPv4 (not a non-first fragment) or IPv6 without
/// extension headers, UDP or TCP, source or destination port 53. Jumps are relative to the
/// next instruction.
const PORT_53: [libc::sock_filter; 23] = [
    op(LDB_ABS, 0, 0, 0),      // 0: version nibble
    op(AND_K, 0, 0, 0xf0),     // 1
    op(JEQ_K, 0, 10, 0x40),    // 2: IPv4? else 13
    op(LDB_ABS, 0, 0, 9),      // 3: IPv4 protocol
    op(JEQ_K, 1, 0, 17),       // 4: UDP -> 6
    op(JEQ_K, 0, 16, 6),       // 5: TCP -> 6, else drop
    op(LDH_ABS, 0, 0, 6),      // 6: flags and fragment offset
    op(JSET_K, 14, 0, 0x1fff), // 7: a later fragment has no ports: drop
    op(LDXB_MSH, 0, 0, 0),     // 8: X = IPv4 header length
    op(LDH_IND, 0, 0, 0),      // 9: source port
    op(JEQ_K, 10, 0, 53),      // 10: -> accept
    op(LDH_IND, 0, 0, 2),      // 11: destination port
    op(JEQ_K, 8, 9, 53),       // 12: accept or drop
    op(JEQ_K, 0, 8, 0x60),     // 13: IPv6? else drop
    op(LDB_ABS, 0, 0, 6),      // 14: next header
    op(JEQ_K, 1, 0, 17),       // 15: UDP -> 17
    op(JEQ_K, 0, 5, 6),        // 16: TCP -> 17, else drop
    op(LDH_ABS, 0, 0, 40),     // 17: source port
    op(JEQ_K, 2, 0, 53),       // 18: -> accept
    op(LDH_ABS, 0, 0, 42),     // 19: destination port
    op(JEQ_K, 0, 1, 53),       // 20: accept or drop
    op(RET_K, 0, 0, SNAP_LEN), // 21: accept
    op(RET_K, 0, 0, 0),        // 22: drop
];

/// The kernel filter: loopback's copy of each packet being sent is dropped in the kernel
/// (the received copy follows), then the port-53 check.
pub fn filter() -> Vec<libc::sock_filter> {
    let mut f = vec![
        op(LDW_ABS, 0, 0, SKF_AD_PKTTYPE), // 0
        op(JEQ_K, 0, 2, 4),                // 1: PACKET_OUTGOING? else the port check
        op(LDW_ABS, 0, 0, SKF_AD_HATYPE),  // 2
        // 3: on loopback: drop (the last instruction of PORT_53, 22 after the next one)
        op(JEQ_K, 22, 0, u32::from(ARPHRD_LOOPBACK)),
    ];
    f.extend_from_slice(&PORT_53);
    f
}

const PACKET_OUTGOING: u8 = 4;
const ARPHRD_LOOPBACK: u16 = 772;

/// The capture socket. See the module documentation.
#[derive(Debug)]
pub struct Capture {
    fd: OwnedFd,
}

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised `T` for the duration of the call and
    // the length passed is exactly its size; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn attach(fd: &OwnedFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: program.as_ptr().cast_mut(),
    };
    // The kernel copies the program during the call and never writes through the pointer.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

impl Capture {
    /// Opens the socket, attaches the filter, then starts receiving on every interface of
    /// the calling thread's network namespace. `rcvbuf` is the kernel buffer size asked.
    pub fn open(rcvbuf: usize) -> Result<Capture, CaptureError> {
        // Protocol 0: the socket receives nothing until bound, so no frame slips in before
        // the filter is attached.
        // SAFETY: plain system call with constant arguments; no pointers.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => CaptureError::Permission(e),
                _ => CaptureError::Os {
                    what: "socket(AF_PACKET)",
                    source: e,
                },
            });
        }
        // SAFETY: `raw` is a descriptor we just opened and own alone.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let full = filter();
        attach(&fd, &full)
            .or_else(|e| {
                // A kernel without the ancillary loads refuses the program: keep the port
                // filter alone (the decoder skips loopback's sent copies itself).
                if e.raw_os_error() == Some(libc::EINVAL) {
                    attach(&fd, &PORT_53)
                } else {
                    Err(e)
                }
            })
            .map_err(os("SO_ATTACH_FILTER"))?;
        let size = i32::try_from(rcvbuf).unwrap_or(i32::MAX);
        // As root the limit of net.core.rmem_max can be passed; fall back to what it allows.
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size).is_err() {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &size).map_err(os("SO_RCVBUF"))?;
        }

        // SAFETY: sockaddr_ll is plain data for which all-zero bytes are a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = 0;
        // SAFETY: `sll` is a valid sockaddr_ll and the length is its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(os("bind(AF_PACKET)")(io::Error::last_os_error()));
        }
        let capture = Capture { fd };
        // Counters start at the bind, not at socket creation.
        let _ = capture.take_drops();
        Ok(capture)
    }

    /// Waits up to `timeout` for a frame and reads it into `buf`; `Ok(None)` when none came.
    pub fn recv(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<Option<Received>, CaptureError> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(os("poll")(e));
        }
        if n == 0 {
            return Ok(None);
        }
        self.recv_now(buf)
    }

    /// Reads one frame if one is queued (never blocks).
    pub fn recv_now(&self, buf: &mut [u8]) -> Result<Option<Received>, CaptureError> {
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is writable for `buf.len()` bytes; `sll`/`len` describe a writable
        // sockaddr_ll of the right size. MSG_TRUNC makes the return the real frame length,
        // but the kernel still writes at most `buf.len()` bytes.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(os("recvfrom")(e)),
            };
        }
        let n = n as usize;
        Ok(Some(Received {
            len: n.min(buf.len()),
            truncated: n > buf.len(),
            loopback_outgoing: sll.sll_pkttype == PACKET_OUTGOING
                && sll.sll_hatype == ARPHRD_LOOPBACK,
            pkttype: sll.sll_pkttype,
            hatype: sll.sll_hatype,
            protocol: u16::from_be(sll.sll_protocol),
        }))
    }

    /// Frames the kernel dropped since the last call (its buffer was full).
    pub fn take_drops(&self) -> Result<u64, CaptureError> {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `stats`/`len` describe a writable tpacket_stats of the right size.
        // Reading PACKET_STATISTICS resets the kernel's counters, hence "since the last call".
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(os("PACKET_STATISTICS")(io::Error::last_os_error()));
        }
        Ok(u64::from(stats.tp_drops))
    }
}

impl AsRawFd for Capture {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}
