//! The kernel audit netlink protocol (`NETLINK_AUDIT`), over raw sockets.
//!
//! Requests go out with `NLM_F_ACK`; the kernel answers with data (sometimes from a worker
//! thread, so possibly after the ACK) and an `NLMSG_ERROR` carrying 0 or an errno. Audit
//! records that arrive while a request waits for its answer are queued, not lost.
//!
//! Two ways to receive records: **unicast**, where the socket registers its process as the
//! audit daemon (`AUDIT_SET` pid; exactly one process may do so), and **multicast**, a
//! read-only listener on the `AUDIT_NLGRP_READLOG` group that can run beside auditd.
//!
//! The netlink-packet-audit crate models the protocol but not every status field we need
//! (backlog wait time, feature bitmap) nor our queueing, so we encode the few messages by hand.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::msgtype::{AUDIT_ADD_RULE, AUDIT_DEL_RULE, AUDIT_GET, AUDIT_LIST_RULES, AUDIT_SET};
use crate::rule::{RuleData, RULE_HEADER_LEN};

const NETLINK_AUDIT: libc::c_int = 9;
/// `AUDIT_NLGRP_READLOG`: the multicast group of audit records.
const AUDIT_NLGRP_READLOG: u32 = 1;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// How long a request waits for the kernel's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer: larger than `MAX_AUDIT_MESSAGE_LENGTH` (8970) with room for batching.
const RECV_BUF: usize = 64 * 1024;
/// Datagrams one `recvmmsg` reads at most when draining records (the kernel sends each
/// record in its own datagram: an exec is about ten of them).
const BATCH: usize = 32;
/// Room for one record datagram in a batched read: `MAX_AUDIT_MESSAGE_LENGTH` (8970) plus
/// the netlink header, rounded up. The slots are allocated zeroed and only the pages the
/// kernel writes into become resident (a record is usually a few hundred bytes).
const SLOT: usize = 9 * 1024;

/// `AUDIT_STATUS_*` mask bits of [`Status`] fields.
mod status_mask {
    pub const ENABLED: u32 = 0x1;
    pub const FAILURE: u32 = 0x2;
    pub const PID: u32 = 0x4;
    pub const RATE_LIMIT: u32 = 0x8;
    pub const BACKLOG_LIMIT: u32 = 0x10;
    pub const BACKLOG_WAIT_TIME: u32 = 0x20;
}

/// Errors of the netlink client.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// A socket call failed.
    #[error("{op}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel rejected a request.
    #[error("{op}: kernel answered {}", io::Error::from_raw_os_error(*errno))]
    Kernel {
        /// The request.
        op: &'static str,
        /// The errno (positive).
        errno: i32,
    },
    /// No answer in time.
    #[error("{0}: no answer from the kernel within 5 s")]
    Timeout(&'static str),
    /// A malformed answer.
    #[error("{0}")]
    Protocol(String),
    /// Another audit consumer prevents the requested mode.
    #[error("{0}")]
    Conflict(String),
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> NetlinkError {
    move |source| NetlinkError::Io { op, source }
}

/// The kernel's `struct audit_status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// 0 disabled, 1 enabled, 2 enabled and locked.
    pub enabled: u32,
    /// Failure mode: 0 silent, 1 printk, 2 panic.
    pub failure: u32,
    /// The registered audit daemon's pid, 0 if none.
    pub pid: u32,
    /// Records per second limit, 0 for none.
    pub rate_limit: u32,
    /// Maximum queued records.
    pub backlog_limit: u32,
    /// Records lost since boot.
    pub lost: u32,
    /// Records currently queued.
    pub backlog: u32,
    /// Feature bitmap (the old `version` field).
    pub feature_bitmap: u32,
    /// How long (jiffies) a process waits when the backlog is full.
    pub backlog_wait_time: u32,
}

impl Status {
    fn decode(b: &[u8]) -> Result<Status, NetlinkError> {
        if b.len() < 32 {
            return Err(NetlinkError::Protocol(format!(
                "audit_status of {} bytes",
                b.len()
            )));
        }
        let w = |i: usize| {
            b.get(4 * i..4 * i + 4)
                .map_or(0, |x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
        };
        Ok(Status {
            enabled: w(1),
            failure: w(2),
            pid: w(3),
            rate_limit: w(4),
            backlog_limit: w(5),
            lost: w(6),
            backlog: w(7),
            feature_bitmap: w(8),
            backlog_wait_time: w(9),
        })
    }
}

/// Fields of [`Status`] to change; `None` leaves a field as is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusUpdate {
    /// 0 disable, 1 enable (2 locks until reboot: refused here).
    pub enabled: Option<u32>,
    /// Failure mode.
    pub failure: Option<u32>,
    /// The audit daemon pid (0 unregisters).
    pub pid: Option<u32>,
    /// Rate limit.
    pub rate_limit: Option<u32>,
    /// Backlog limit.
    pub backlog_limit: Option<u32>,
    /// Backlog wait time (jiffies).
    pub backlog_wait_time: Option<u32>,
}

impl StatusUpdate {
    fn encode(&self) -> Vec<u8> {
        let mut mask = 0;
        let mut v = [0u32; 11];
        let mut set = |bit: u32, idx: usize, x: Option<u32>| {
            if let Some(x) = x {
                mask |= bit;
                v[idx] = x;
            }
        };
        set(status_mask::ENABLED, 1, self.enabled);
        set(status_mask::FAILURE, 2, self.failure);
        set(status_mask::PID, 3, self.pid);
        set(status_mask::RATE_LIMIT, 4, self.rate_limit);
        set(status_mask::BACKLOG_LIMIT, 5, self.backlog_limit);
        set(status_mask::BACKLOG_WAIT_TIME, 9, self.backlog_wait_time);
        v[0] = mask;
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }
}

/// One netlink message from the kernel: an audit record or a control answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The netlink message type: the audit record type for records.
    pub msg_type: u16,
    /// The payload (for records, `audit(...): key=value ...`).
    pub payload: Vec<u8>,
}

/// Whether a netlink message type carries an audit record (rather than a control answer):
/// 1100-2999, and `AUDIT_LOGIN` (1006), the one record among the control types (a process
/// setting its login uid: what every login, ssh and cron session does).
pub fn is_record_type(t: u16) -> bool {
    (1100..=2999).contains(&t) || t == crate::msgtype::AUDIT_LOGIN
}

/// A `NETLINK_AUDIT` socket.
#[derive(Debug)]
pub struct AuditSocket {
    fd: OwnedFd,
    seq: u32,
    queued: VecDeque<RawMessage>,
    buf: Vec<u8>,
    /// `BATCH` slots of `SLOT` bytes for `recvmmsg`; allocated at the first record read.
    batch: Vec<u8>,
    multicast: bool,
    /// The last receive stopped at [`MAX_RECORDS_PER_CALL`]: records are still waiting, so
    /// the next one reads them at once instead of lingering.
    backlogged: bool,
}

impl AuditSocket {
    /// A socket for requests and, after [`AuditSocket::register`], unicast records.
    pub fn open() -> Result<Self, NetlinkError> {
        Self::open_with_groups(0)
    }

    /// A read-only socket subscribed to the audit multicast group (needs `CAP_AUDIT_READ`;
    /// works beside auditd).
    pub fn open_multicast() -> Result<Self, NetlinkError> {
        Self::open_with_groups(AUDIT_NLGRP_READLOG)
    }

    fn open_with_groups(groups: u32) -> Result<Self, NetlinkError> {
        // SAFETY: socket(2) has no memory preconditions; the result is checked below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_AUDIT,
            )
        };
        if raw < 0 {
            return Err(io_err("socket(NETLINK_AUDIT)")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh, valid descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = groups;
        // SAFETY: `addr` is a valid sockaddr_nl and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io_err("bind(NETLINK_AUDIT)")(io::Error::last_os_error()));
        }
        // A large receive buffer absorbs bursts; FORCE (root) goes beyond rmem_max.
        let size: libc::c_int = 8 * 1024 * 1024;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: `size` outlives the call and the length is its size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
        Ok(AuditSocket {
            fd,
            seq: 0,
            queued: VecDeque::new(),
            backlogged: false,
            buf: vec![0; RECV_BUF],
            batch: Vec::new(),
            multicast: groups != 0,
        })
    }

    /// Whether this is a multicast listener.
    pub fn is_multicast(&self) -> bool {
        self.multicast
    }

    fn send(&mut self, msg_type: u16, flags: u16, payload: &[u8]) -> Result<u32, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDRLEN + payload.len();
        let mut msg = Vec::with_capacity(len.div_ceil(4) * 4);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&msg_type.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(payload);
        msg.resize(len.div_ceil(4) * 4, 0);
        // SAFETY: sockaddr_nl is plain old data; all-zero (pid 0) addresses the kernel.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` and `to` are valid for the lengths passed for the whole call.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io_err("sendto(NETLINK_AUDIT)")(io::Error::last_os_error()));
        }
        Ok(self.seq)
    }

    /// Waits up to `timeout` for one datagram from the kernel (port id 0) and returns its
    /// length in `self.buf`; 0 when nothing (acceptable) arrived. A zero timeout reads
    /// without polling first: one syscall per datagram while draining.
    fn recv_datagram(&mut self, timeout: Duration) -> Result<usize, NetlinkError> {
        if !timeout.is_zero() && !self.wait_readable(timeout)? {
            return Ok(0);
        }
        // SAFETY: sockaddr_nl is plain old data; all-zero is valid.
        let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: `buf` is valid for writes of its length; `from`/`from_len` describe a
        // valid sockaddr_nl buffer.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_nl).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // ENOBUFS: the socket overflowed and records were dropped; keep reading.
                _ if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(0),
                _ => Err(io_err("recvfrom(NETLINK_AUDIT)")(e)),
            };
        }
        if from.nl_pid != 0 {
            return Ok(0);
        }
        Ok(n as usize)
    }

    /// Polls the socket for up to `timeout`; true when a datagram is waiting.
    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, NetlinkError> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(io_err("poll(NETLINK_AUDIT)")(e));
        }
        Ok(rc > 0)
    }

    /// Sends a request and collects the answers of type `reply` (`multi`: until
    /// `NLMSG_DONE`), requiring the ACK.
    fn request(
        &mut self,
        op: &'static str,
        msg_type: u16,
        payload: &[u8],
        reply: Option<u16>,
        multi: bool,
    ) -> Result<Vec<Vec<u8>>, NetlinkError> {
        let seq = self.send(msg_type, NLM_F_REQUEST | NLM_F_ACK, payload)?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let (mut acked, mut done) = (false, false);
        let mut answers = Vec::new();
        loop {
            let finished = acked
                && match reply {
                    None => true,
                    Some(_) if multi => done,
                    Some(_) => !answers.is_empty(),
                };
            if finished {
                return Ok(answers);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NetlinkError::Timeout(op));
            }
            let n = self.recv_datagram(left)?;
            for (t, s, p) in split_messages(&self.buf[..n]) {
                if is_record_type(t) {
                    self.queued.push_back(RawMessage {
                        msg_type: t,
                        payload: p,
                    });
                    continue;
                }
                if s != seq {
                    continue;
                }
                match t {
                    NLMSG_ERROR => {
                        let errno = p
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if errno != 0 {
                            return Err(NetlinkError::Kernel { op, errno: -errno });
                        }
                        acked = true;
                    }
                    NLMSG_DONE => done = true,
                    NLMSG_NOOP => {}
                    t if Some(t) == reply => answers.push(p),
                    _ => {}
                }
            }
        }
    }

    /// The audit status (`auditctl -s`).
    pub fn get_status(&mut self) -> Result<Status, NetlinkError> {
        let a = self.request("AUDIT_GET", AUDIT_GET, &[], Some(AUDIT_GET), false)?;
        Status::decode(a.first().map_or(&[][..], Vec::as_slice))
    }

    /// Changes status fields.
    pub fn set_status(&mut self, u: &StatusUpdate) -> Result<(), NetlinkError> {
        if u.enabled == Some(2) {
            return Err(NetlinkError::Protocol(
                "refusing to lock the audit configuration (enabled=2) until reboot".into(),
            ));
        }
        self.request("AUDIT_SET", AUDIT_SET, &u.encode(), None, false)
            .map(drop)
    }

    /// Registers this process as the audit daemon, receiving records on this socket.
    /// Fails with an actionable [`NetlinkError::Conflict`] when another daemon is registered.
    pub fn register(&mut self) -> Result<(), NetlinkError> {
        let me = std::process::id();
        let update = StatusUpdate {
            pid: Some(me),
            ..StatusUpdate::default()
        };
        match self.set_status(&update) {
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EEXIST => {
                let st = self.get_status()?;
                Err(NetlinkError::Conflict(
                    AuditConsumer::audit_daemon(&comm_of(st.pid), Some(st.pid)).message(),
                ))
            }
            r => r,
        }
    }

    /// Unregisters the audit daemon (only the registered process may).
    pub fn unregister(&mut self) -> Result<(), NetlinkError> {
        self.set_status(&StatusUpdate {
            pid: Some(0),
            ..StatusUpdate::default()
        })
    }

    /// Adds a rule at the end of its list (at the start with `-A`).
    pub fn add_rule(&mut self, rule: &RuleData) -> Result<(), NetlinkError> {
        self.request("AUDIT_ADD_RULE", AUDIT_ADD_RULE, &rule.0, None, false)
            .map(drop)
    }

    /// Deletes the rule equal to `rule`.
    pub fn delete_rule(&mut self, rule: &RuleData) -> Result<(), NetlinkError> {
        self.request("AUDIT_DEL_RULE", AUDIT_DEL_RULE, &rule.0, None, false)
            .map(drop)
    }

    /// The rules loaded in the kernel, in the byte form [`crate::rule::compile`] produces.
    pub fn list_rules(&mut self) -> Result<Vec<RuleData>, NetlinkError> {
        let answers = self.request(
            "AUDIT_LIST_RULES",
            AUDIT_LIST_RULES,
            &[],
            Some(AUDIT_LIST_RULES),
            true,
        )?;
        answers
            .into_iter()
            .map(|mut b| {
                if b.len() < RULE_HEADER_LEN {
                    return Err(NetlinkError::Protocol(format!("rule of {} bytes", b.len())));
                }
                let buflen = u32::from_ne_bytes([b[1036], b[1037], b[1038], b[1039]]) as usize;
                b.truncate(RULE_HEADER_LEN + buflen);
                Ok(RuleData(b))
            })
            .collect()
    }

    /// Audit records: those queued during requests, then whatever arrives within `timeout`
    /// (returns early once something arrived).
    pub fn recv_records(&mut self, timeout: Duration) -> Result<Vec<RawMessage>, NetlinkError> {
        let mut out = Vec::new();
        self.recv_records_with(timeout, Duration::ZERO, |msg_type, payload| {
            out.push(RawMessage {
                msg_type,
                payload: payload.to_vec(),
            });
        })?;
        Ok(out)
    }

    /// Like [`AuditSocket::recv_records`], but hands each record's payload to `f` straight
    /// from the receive buffer (no copy) and returns how many it handed over. Once the
    /// first datagram arrived, waits `linger` before draining the socket, so that a burst
    /// (an exec is about ten records) is read in one pass rather than one wake-up per
    /// record; the socket's receive buffer holds what arrives meanwhile. A call hands over
    /// at most 1 024 records; after one that stopped there, the next neither waits nor
    /// lingers.
    pub fn recv_records_with(
        &mut self,
        timeout: Duration,
        linger: Duration,
        mut f: impl FnMut(u16, &[u8]),
    ) -> Result<usize, NetlinkError> {
        let mut count = 0;
        for m in self.queued.drain(..) {
            f(m.msg_type, &m.payload);
            count += 1;
        }
        if count == 0 && !timeout.is_zero() && !self.backlogged {
            if !self.wait_readable(timeout)? {
                return Ok(0);
            }
            if !linger.is_zero() {
                std::thread::sleep(linger);
            }
        }
        if self.batch.len() != BATCH * SLOT {
            self.batch = vec![0; BATCH * SLOT];
        }
        let mut lens = [0usize; BATCH];
        loop {
            let got = self.recv_batch(&mut lens)?;
            for (i, &len) in lens[..got].iter().enumerate() {
                for_each_message(&self.batch[i * SLOT..i * SLOT + len], |t, _, p| {
                    if is_record_type(t) {
                        f(t, p);
                        count += 1;
                    }
                });
            }
            if got < BATCH || count >= MAX_RECORDS_PER_CALL {
                self.backlogged = count >= MAX_RECORDS_PER_CALL;
                return Ok(count);
            }
        }
    }

    /// Reads up to [`BATCH`] waiting datagrams with one `recvmmsg` (without waiting):
    /// `lens[i]` is the length of the datagram in slot `i` (0 for one that did not come
    /// from the kernel); returns how many slots were filled, 0 when nothing was waiting.
    fn recv_batch(&mut self, lens: &mut [usize; BATCH]) -> Result<usize, NetlinkError> {
        // SAFETY: sockaddr_nl, iovec and mmsghdr are plain old data; all-zero is valid.
        let mut names: [libc::sockaddr_nl; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let base = self.batch.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: `batch` holds BATCH * SLOT bytes (checked by the caller), so slot `i`
            // starts inside it.
            iovs[i].iov_base = unsafe { base.add(i * SLOT) }.cast();
            iovs[i].iov_len = SLOT;
            msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_nl).cast();
            msgs[i].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds BATCH headers, each pointing at its own name buffer and at
        // one iovec describing a distinct SLOT-byte slot of `batch`; all outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                // glibc declares the flags `int`, musl `unsigned int`: the static release
                // build is musl.
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // ENOBUFS: the socket overflowed and records were dropped; keep reading.
                _ if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(0),
                _ => Err(io_err("recvmmsg(NETLINK_AUDIT)")(e)),
            };
        }
        let n = (n as usize).min(BATCH);
        for i in 0..n {
            lens[i] = if names[i].nl_pid == 0 {
                (msgs[i].msg_len as usize).min(SLOT)
            } else {
                0
            };
        }
        Ok(n)
    }
}

/// How many records one receive call hands over at most, so that the caller gets to
/// complete events and check its stop flag under a sustained flood, and so that the
/// records parsed in one pass (about 1 KB each until normalized) stay near 1 MB however
/// far the reader is behind. A 100 ms linger at 1 000 execs a second gathers ~700.
const MAX_RECORDS_PER_CALL: usize = 1024;

/// Splits a datagram into its netlink messages, copied.
fn split_messages(b: &[u8]) -> Vec<(u16, u32, Vec<u8>)> {
    let mut out = Vec::new();
    for_each_message(b, |t, seq, p| out.push((t, seq, p.to_vec())));
    out
}

/// Calls `f(type, seq, payload)` for each netlink message of a datagram.
fn for_each_message(mut b: &[u8], mut f: impl FnMut(u16, u32, &[u8])) {
    while b.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let t = u16::from_ne_bytes([b[4], b[5]]);
        let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        if is_record_type(t) {
            // The kernel sends each record in its own datagram and sets nlmsg_len of
            // records to the payload size alone (historical ABI): the payload is the rest
            // of the datagram, without trailing NULs.
            let p = &b[NLMSG_HDRLEN..];
            let end = p.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
            f(t, seq, &p[..end]);
            break;
        }
        let end = if len >= NLMSG_HDRLEN && len <= b.len() {
            len
        } else {
            b.len()
        };
        f(t, seq, &b[NLMSG_HDRLEN..end]);
        let next = end.div_ceil(4) * 4;
        if next >= b.len() {
            break;
        }
        b = &b[next..];
    }
}

/// The kernel's audit configuration as found: the loaded rules and the status fields a
/// caller can change (enabled flag, failure mode, rate limit, backlog limit, backlog wait
/// time), captured before changing anything and put back with [`SavedState::restore`].
///
/// Whatever drives the kernel audit subsystem on a host it does not own (the kernel
/// tests, the agent's acceptance and soak tests, the load bench) must leave it as found,
/// also after a failure or a killed agent; this is the one definition of "as found".
/// Callers serialize among themselves (only one process may own the audit stream) and
/// call `restore` on their failure and panic paths too (a `Drop` guard in tests).
///
/// Restoring is best effort: every step is tried, the first error is returned.
/// - Rules: the rules loaded since are deleted, the saved rules missing are added again
///   (each at the end of its list, or at its start for an `-A` rule: the original order
///   is kept exactly when none of the saved rules was deleted, the usual case).
/// - Status: the five fields above, only those that differ (each change is an
///   `AUDIT_CONFIG_CHANGE` record in the kernel's log).
/// - Daemon: one registered since is let go when it is this process or gone (see
///   [`AuditSocket::clear_stale_daemon`]); one still alive is reported as
///   [`NetlinkError::Conflict`], not killed. A pid found is not put back: a process can
///   only register itself.
///
/// A locked configuration (`enabled` 2) can change neither rules nor status until
/// reboot: then only the daemon is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    rules: Vec<RuleData>,
    status: Status,
}

impl SavedState {
    /// Reads the status and the rules now loaded.
    pub fn capture(sock: &mut AuditSocket) -> Result<Self, NetlinkError> {
        let status = sock.get_status()?;
        let rules = sock.list_rules()?;
        Ok(SavedState { rules, status })
    }

    /// The rules found, in the kernel's order.
    pub fn rules(&self) -> &[RuleData] {
        &self.rules
    }

    /// The status found (its counters, `lost` and `backlog`, are not restored).
    pub fn status(&self) -> Status {
        self.status
    }

    /// Puts the rules, the status fields and the daemon registration back as found (see
    /// the type's documentation for what exactly, and why best effort).
    pub fn restore(&self, sock: &mut AuditSocket) -> Result<(), NetlinkError> {
        let mut first: Option<NetlinkError> = None;
        let mut note = |r: Result<(), NetlinkError>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        if self.status.enabled != 2 {
            note(self.restore_rules(sock));
            note(self.restore_status(sock));
        }
        note(self.release_daemon(sock));
        first.map_or(Ok(()), Err)
    }

    fn restore_rules(&self, sock: &mut AuditSocket) -> Result<(), NetlinkError> {
        let now = sock.list_rules()?;
        let mut first = None;
        let extra = now.iter().filter(|r| !self.rules.contains(r));
        for r in extra {
            if let Err(e) = sock.delete_rule(r) {
                first.get_or_insert(e);
            }
        }
        for r in self.rules.iter().filter(|r| !now.contains(r)) {
            if let Err(e) = sock.add_rule(r) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn restore_status(&self, sock: &mut AuditSocket) -> Result<(), NetlinkError> {
        let (now, was) = (sock.get_status()?, &self.status);
        let differs = |a: u32, b: u32| (a != b).then_some(b);
        let update = StatusUpdate {
            enabled: differs(now.enabled, was.enabled),
            failure: differs(now.failure, was.failure),
            pid: None,
            rate_limit: differs(now.rate_limit, was.rate_limit),
            backlog_limit: differs(now.backlog_limit, was.backlog_limit),
            backlog_wait_time: differs(now.backlog_wait_time, was.backlog_wait_time),
        };
        if update == StatusUpdate::default() {
            return Ok(());
        }
        sock.set_status(&update)
    }

    fn release_daemon(&self, sock: &mut AuditSocket) -> Result<(), NetlinkError> {
        let pid = sock.get_status()?.pid;
        if pid == 0 || pid == self.status.pid {
            return Ok(());
        }
        if pid == std::process::id() {
            return sock.unregister();
        }
        let pid = sock.clear_stale_daemon()?.pid;
        if pid == 0 || pid == self.status.pid {
            return Ok(());
        }
        Err(NetlinkError::Conflict(format!(
            "audit state restored, but an audit daemon registered meanwhile is still \
             running: {}",
            AuditConsumer::audit_daemon(&comm_of(pid), Some(pid)).message()
        )))
    }
}

impl AuditSocket {
    /// Lets go of a registered audit daemon whose process is gone (a killed agent or
    /// test), so that the next one can register; returns the status afterwards. A live
    /// daemon, this process, or none, is left alone.
    ///
    /// The kernel notices a dead daemon only when it next tries to reach it. Registering
    /// makes it try: it replaces a dead daemon (then this process unregisters) and refuses
    /// while the daemon answers. That is the kernel's own liveness test, which `/proc`
    /// cannot give (a zombie, or a live process that closed its audit socket).
    pub fn clear_stale_daemon(&mut self) -> Result<Status, NetlinkError> {
        let status = self.get_status()?;
        if status.pid == 0 || status.pid == std::process::id() {
            return Ok(status);
        }
        match self.register() {
            Ok(()) => self.unregister()?,
            Err(NetlinkError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        self.get_status()
    }
}

/// Who else consumes audit records, and the operator message about it (shared with the
/// installer through agent-os, so both say the same thing).
pub use agent_os::audit_consumers::{AuditConsumer, ConsumerKind};

const PROC: &str = "/proc";

fn comm_of(pid: u32) -> String {
    agent_os::audit_consumers::comm_of(std::path::Path::new(PROC), pid)
        .unwrap_or_else(|| "unknown".into())
}

/// Finds other audit consumers: the registered daemon (from `status`) and multicast
/// listeners owned by systemd-journald (from `/proc/net/netlink`).
pub fn detect_conflicts(status: &Status) -> Vec<AuditConsumer> {
    let me = std::process::id();
    let mut out = Vec::new();
    // A daemon that died without unregistering leaves its pid behind until the kernel
    // next tries to reach it; registering replaces it, so it is no conflict.
    let alive = std::path::Path::new(PROC)
        .join(status.pid.to_string())
        .exists();
    if status.pid != 0 && status.pid != me && alive {
        out.push(AuditConsumer::audit_daemon(
            &comm_of(status.pid),
            Some(status.pid),
        ));
    }
    for (pid, comm) in multicast_listeners() {
        if pid != me && comm.starts_with("systemd-journal") {
            out.push(AuditConsumer::journald_audit(Some(pid)));
        }
    }
    out
}

/// Processes with a `NETLINK_AUDIT` socket subscribed to a multicast group.
fn multicast_listeners() -> Vec<(u32, String)> {
    agent_os::audit_consumers::audit_multicast_listeners(std::path::Path::new(PROC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_update_encodes_only_the_given_fields() {
        let b = StatusUpdate {
            enabled: Some(1),
            backlog_limit: Some(8192),
            ..StatusUpdate::default()
        }
        .encode();
        assert_eq!(b.len(), 44);
        let w = |i: usize| u32::from_ne_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!(w(0), status_mask::ENABLED | status_mask::BACKLOG_LIMIT);
        assert_eq!((w(1), w(5), w(3)), (1, 8192, 0));
    }

    #[test]
    fn datagrams_split_into_messages() {
        let mut d = Vec::new();
        for (t, p) in [(1000u16, &b"audit(1.1:1): a=b"[..]), (1013, b"x")] {
            let len = (16 + p.len()) as u32;
            d.extend_from_slice(&len.to_ne_bytes());
            d.extend_from_slice(&t.to_ne_bytes());
            d.extend_from_slice(&[0; 10]);
            d.extend_from_slice(p);
            d.resize(d.len().div_ceil(4) * 4, 0);
        }
        let m = split_messages(&d);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, 1000);
        assert_eq!(m[0].2, b"audit(1.1:1): a=b");
        assert_eq!(m[1].2, b"x");
        // A record whose nlmsg_len counts only the payload (as the kernel sends them).
        let mut r = Vec::new();
        r.extend_from_slice(&14u32.to_ne_bytes());
        r.extend_from_slice(&1319u16.to_ne_bytes());
        r.extend_from_slice(&[0; 10]);
        r.extend_from_slice(b"audit(1.1:1): \0\0");
        assert_eq!(
            split_messages(&r),
            vec![(1319, 0, b"audit(1.1:1): ".to_vec())]
        );
        assert!(split_messages(&[1, 2, 3]).is_empty());
    }

    /// A process named `auditd` (a copy of `sleep`) registered in the status is reported
    /// with the commands to stop it.
    #[test]
    fn running_auditd_is_reported_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("auditd");
        std::fs::copy("/bin/sleep", &fake).unwrap();
        let mut child = std::process::Command::new(&fake).arg("30").spawn().unwrap();
        let pid = child.id();
        // exec is asynchronous: wait until the child's comm changed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while comm_of(pid) != "auditd" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = Status {
            pid,
            ..Status::default()
        };
        let found = detect_conflicts(&status);
        let _ = child.kill();
        let _ = child.wait();
        let daemon = found
            .iter()
            .find(|c| c.kind == ConsumerKind::AuditDaemon)
            .expect("daemon reported");
        assert_eq!(daemon, &AuditConsumer::audit_daemon("auditd", Some(pid)));
        let msg = daemon.message();
        assert!(msg.contains(&format!("auditd (pid {pid})")), "{msg}");
        assert!(msg.contains("`service auditd stop`"), "{msg}");
        // A dead daemon's pid is no conflict: registering replaces it.
        assert!(!detect_conflicts(&status)
            .iter()
            .any(|c| c.kind == ConsumerKind::AuditDaemon));
    }

    /// Multicast listeners are found through /proc/net/netlink and /proc/*/fd (here our
    /// own socket; journald's is found the same way and named in the message).
    #[test]
    fn multicast_listeners_are_found() {
        let _s = AuditSocket::open_multicast().expect("multicast audit socket (needs root)");
        let me = std::process::id();
        assert!(
            multicast_listeners().iter().any(|(pid, _)| *pid == me),
            "own multicast socket not found"
        );
        let msg = AuditConsumer::journald_audit(Some(1)).message();
        assert!(
            msg.contains("systemctl mask systemd-journald-audit.socket"),
            "{msg}"
        );
    }
}
