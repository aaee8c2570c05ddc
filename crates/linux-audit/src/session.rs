//! An audit collection session: our rules loaded, records flowing, state restored on stop.
//!
//! Starting a session records the audit status found, refuses unicast mode when another
//! daemon is registered (with what to do about it), opens the event socket (registering as
//! the audit daemon, or joining the multicast group), loads our rules (first a rule
//! excluding the agent's own pid) and enables auditing. Rules that already existed are not
//! ours and are left alone. Stopping (or dropping) removes exactly the rules we added,
//! unregisters, and restores the enabled flag and limits we changed.

use std::time::{Duration, Instant};

use crate::event::AuditEvent;
use crate::netlink::{
    detect_conflicts, AuditConsumer, AuditSocket, ConsumerKind, NetlinkError, Status, StatusUpdate,
};
use crate::reassembly::{self, Reassembler};
use crate::record::parse_netlink;
use crate::rule::{compile, Arch, RuleData};

/// How records are received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Register as the audit daemon (default; no other daemon may run).
    #[default]
    Unicast,
    /// Listen on the multicast group beside an existing daemon (rules are still ours).
    Multicast,
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Unicast or multicast.
    pub mode: Mode,
    /// Backlog limit to set while running (restored on stop).
    pub backlog_limit: Option<u32>,
    /// Rate limit to set while running (restored on stop).
    pub rate_limit: Option<u32>,
    /// Load `-a never,exit -F pid=<own pid>` before our rules.
    pub exclude_self: bool,
    /// Treat rules already loaded that are identical to ours as ours (removed on stop).
    /// Off by default: rules we did not add are not ours. Turn it on when a previous run of
    /// the agent is known to have died without unloading (e.g. its state file says so).
    pub adopt_existing: bool,
    /// Reassembly settings.
    pub reassembly: reassembly::Config,
    /// After the first record of a burst arrives, how long to let the rest queue up in the
    /// socket before reading them all in one pass: fewer wake-ups and syscalls per record,
    /// for at most this much added latency.
    pub linger: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            mode: Mode::Unicast,
            backlog_limit: Some(8192),
            rate_limit: None,
            exclude_self: true,
            adopt_existing: false,
            reassembly: reassembly::Config::default(),
            // 100 ms: at 100 exec/s a pass reads ten execs instead of one (each pass is
            // two wake-ups of this thread and one of the agent's writer, and at low rates
            // these wake-ups, not the records, are most of the agent's CPU); the socket's
            // 8 MB receive buffer holds far more than 100 ms of records at any rate we keep
            // up with (10 000 exec/s is about 2.4 MB).
            linger: Duration::from_millis(100),
        }
    }
}

/// Counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Reassembly counters (including serial gaps as `lost`).
    pub reassembly: reassembly::Stats,
    /// Records that did not parse.
    pub parse_errors: u64,
    /// Records the kernel lost since the session started (from the status `lost` counter).
    pub kernel_lost: u32,
}

/// A running session; see the module documentation.
#[derive(Debug)]
pub struct AuditSession {
    ctl: AuditSocket,
    events: AuditSocket,
    before: Status,
    restore: StatusUpdate,
    added: Vec<RuleData>,
    registered: bool,
    reassembler: Reassembler,
    parse_errors: u64,
    kernel_lost: u32,
    conflicts: Vec<AuditConsumer>,
    adopt_existing: bool,
    linger: Duration,
    stopped: bool,
}

impl AuditSession {
    /// Starts a session loading `rules` (see the module documentation).
    pub fn start(cfg: &SessionConfig, rules: &[RuleData]) -> Result<Self, NetlinkError> {
        let mut ctl = AuditSocket::open()?;
        let before = ctl.get_status()?;
        if before.enabled == 2 {
            return Err(NetlinkError::Conflict(
                "the audit configuration is locked (enabled=2, `-e 2`): rules cannot change \
                 until reboot; remove `-e 2` from /etc/audit/rules.d and reboot"
                    .into(),
            ));
        }
        let conflicts = detect_conflicts(&before);
        if cfg.mode == Mode::Unicast {
            if let Some(c) = conflicts
                .iter()
                .find(|c| c.kind == ConsumerKind::AuditDaemon)
            {
                return Err(NetlinkError::Conflict(c.message()));
            }
        }
        let events = match cfg.mode {
            Mode::Unicast => AuditSocket::open()?,
            Mode::Multicast => AuditSocket::open_multicast()?,
        };
        let mut s = AuditSession {
            ctl,
            events,
            before,
            restore: StatusUpdate::default(),
            added: Vec::new(),
            registered: false,
            reassembler: Reassembler::new(cfg.reassembly),
            adopt_existing: cfg.adopt_existing,
            linger: cfg.linger,
            parse_errors: 0,
            kernel_lost: before.lost,
            conflicts,
            stopped: false,
        };
        // From here on, Drop undoes whatever was done if a later step fails.
        if cfg.mode == Mode::Unicast {
            s.events.register()?;
            s.registered = true;
        }
        let mut limits = StatusUpdate::default();
        if let Some(b) = cfg.backlog_limit.filter(|&b| b != before.backlog_limit) {
            limits.backlog_limit = Some(b);
            s.restore.backlog_limit = Some(before.backlog_limit);
        }
        if let Some(r) = cfg.rate_limit.filter(|&r| r != before.rate_limit) {
            limits.rate_limit = Some(r);
            s.restore.rate_limit = Some(before.rate_limit);
        }
        if limits != StatusUpdate::default() {
            s.ctl.set_status(&limits)?;
        }
        if cfg.exclude_self {
            let arch = Arch::native().unwrap_or(Arch::X86_64);
            let own = compile(
                &format!("-a never,exit -F pid={}", std::process::id()),
                arch,
            )
            .map_err(|e| NetlinkError::Protocol(e.to_string()))?;
            s.add(&own)?;
        }
        for r in rules {
            s.add(r)?;
        }
        if before.enabled == 0 {
            s.ctl.set_status(&StatusUpdate {
                enabled: Some(1),
                ..StatusUpdate::default()
            })?;
            s.restore.enabled = Some(0);
        }
        Ok(s)
    }

    fn add(&mut self, r: &RuleData) -> Result<(), NetlinkError> {
        match self.ctl.add_rule(r) {
            Ok(()) => {
                self.added.push(r.clone());
                Ok(())
            }
            // Already loaded by someone else: not ours to remove later (unless adopting).
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EEXIST => {
                if self.adopt_existing {
                    self.added.push(r.clone());
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Other audit consumers found at start (journald's multicast listener, or the daemon
    /// beside which a multicast session runs), with [`AuditConsumer::message`] to log.
    pub fn conflicts(&self) -> &[AuditConsumer] {
        &self.conflicts
    }

    /// The status found before the session changed anything.
    pub fn status_before(&self) -> Status {
        self.before
    }

    /// The rules this session added (and will remove).
    pub fn added_rules(&self) -> &[RuleData] {
        &self.added
    }

    /// The control socket, for status queries and listing rules.
    pub fn control(&mut self) -> &mut AuditSocket {
        &mut self.ctl
    }

    /// Receives records for up to `timeout` and returns the events they completed, and
    /// those whose reassembly timed out.
    pub fn recv(&mut self, timeout: Duration) -> Result<Vec<AuditEvent>, NetlinkError> {
        let mut records = Vec::new();
        let mut errors = 0;
        self.events
            .recv_records_with(timeout, self.linger, |t, payload| {
                match parse_netlink(t, payload) {
                    Ok(r) => records.push(r),
                    Err(_) => errors += 1,
                }
            })?;
        self.parse_errors += errors;
        let now = Instant::now();
        let mut out = Vec::new();
        for r in records {
            self.reassembler.push_at(r, now, &mut out);
        }
        self.reassembler.tick_into(now, &mut out);
        Ok(out)
    }

    /// Events whose records are still arriving (completed by a later record or a timeout).
    pub fn in_flight(&self) -> usize {
        self.reassembler.in_flight()
    }

    /// Counters; queries the kernel's lost counter.
    pub fn stats(&mut self) -> SessionStats {
        if let Ok(st) = self.ctl.get_status() {
            self.kernel_lost = st.lost;
        }
        SessionStats {
            reassembly: self.reassembler.stats(),
            parse_errors: self.parse_errors,
            kernel_lost: self.kernel_lost.wrapping_sub(self.before.lost),
        }
    }

    /// Removes our rules, unregisters and restores the status; returns pending events.
    pub fn stop(mut self) -> Result<Vec<AuditEvent>, NetlinkError> {
        self.cleanup()?;
        Ok(self.reassembler.flush())
    }

    fn cleanup(&mut self) -> Result<(), NetlinkError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut first_err = None;
        for r in self.added.drain(..).rev().collect::<Vec<_>>() {
            match self.ctl.delete_rule(&r) {
                Ok(()) => {}
                Err(NetlinkError::Kernel { errno, .. }) if errno == libc::ENOENT => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if self.restore != StatusUpdate::default() {
            if let Err(e) = self.ctl.set_status(&self.restore) {
                first_err.get_or_insert(e);
            }
        }
        if self.registered {
            self.registered = false;
            if let Err(e) = self.events.unregister() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for AuditSession {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}
