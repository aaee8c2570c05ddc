//! The macOS binding on the `endpoint-sec` crate: one ES client on a thread of its own
//! (the client is not `Send`), whose callback copies each message into the neutral
//! [`EsMessage`] and queues it without waiting; one thread maps, hashes and sends.
//!
//! Compiled for `aarch64-apple-darwin` and `x86_64-apple-darwin` in CI; it cannot run there
//! (Endpoint Security needs a Mac, root, the entitlement and Full Disk Access).

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::RefUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use agent_event::Timestamp;
use agent_host::{FileHasher, UserNames};
use agent_pipeline::{Report, Sink};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use endpoint_sec::sys::{es_event_type_t, es_mute_path_type_t, NewClientError};
use endpoint_sec::{
    AuditToken as EsToken, AuthenticationData, Client, Event, EventCreateDestinationFile,
    EventRenameDestinationFile, File, Message, Process,
};
use serde_json::Value;

use crate::collector::{EsError, EsSettings};
use crate::gaps::SeqGaps;
use crate::mapper::{default_muted_paths, Mapper, MapperConfig};
use crate::message::{self as m, EsMessage};
use crate::processor::Processor;

/// Hashed files remembered by digest (same as the Linux collector's cache).
const HASH_CACHE: usize = 4096;

/// A started collector: the client thread and the mapping thread.
#[derive(Debug)]
pub struct Running {
    stop: Arc<AtomicBool>,
    client_stop: Option<Sender<()>>,
    client: Option<JoinHandle<()>>,
    mapper: Option<JoinHandle<()>>,
    subscribed: usize,
}

impl Running {
    /// Event types subscribed.
    pub fn subscribed(&self) -> usize {
        self.subscribed
    }

    /// Deletes the ES client and waits for both threads.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.client_stop.take();
        for t in [self.client.take(), self.mapper.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
    }
}

/// The ES callback's state: where messages go, and the report counting what is dropped.
struct Forward {
    tx: Sender<EsMessage>,
    report: Arc<Report>,
    /// Every message passes here, kept or not: the only place where a sequence gap means
    /// a message ES dropped (not one we filtered out or could not queue).
    gaps: Mutex<SeqGaps>,
    /// Decides which file events are kept, before they are copied.
    filter: MapperConfig,
}

// The callback only sends on a channel, bumps atomic counters and updates the gap
// counter under a mutex (poisoning is ignored: its numbers stay valid after any panic):
// a panic in it (caught by endpoint-sec) cannot leave any of them in a broken state.
impl RefUnwindSafe for Forward {}

impl Forward {
    fn push(&self, msg: &Message) {
        let lost = self
            .gaps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(
                msg.version(),
                msg.event_type().0,
                msg.seq_num().unwrap_or(0),
                msg.global_seq_num().unwrap_or(0),
            );
        if lost > 0 {
            self.report.add_source_lost(lost);
        }
        if !self.wanted(msg) {
            return;
        }
        let Some(converted) = convert(msg) else {
            return;
        };
        match self.tx.try_send(converted) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.report.add_dropped(1)
            }
        }
    }
}

impl Forward {
    /// False for file events the mapper would drop (unmodified closes, muted or untagged
    /// paths): they are not copied nor queued, so they never crowd out kept events.
    fn wanted(&self, msg: &Message) -> bool {
        let path = |f: &File<'_>| f.path().to_string_lossy().into_owned();
        let paths: Vec<String> = match msg.event() {
            Some(Event::NotifyClose(e)) if !e.modified() => return false,
            Some(Event::NotifyClose(e)) => vec![path(&e.target())],
            Some(Event::NotifyWrite(e)) => vec![path(&e.target())],
            Some(Event::NotifyUnlink(e)) => vec![path(&e.target())],
            Some(Event::NotifySetMode(e)) => vec![path(&e.target())],
            Some(Event::NotifySetOwner(e)) => vec![path(&e.target())],
            Some(Event::NotifyCreate(e)) => match e.destination() {
                Some(EventCreateDestinationFile::ExistingFile { file: f, .. }) => vec![path(&f)],
                Some(EventCreateDestinationFile::NewPath {
                    directory,
                    filename,
                    ..
                }) => vec![format!("{}/{}", path(&directory), text(filename))],
                _ => return true,
            },
            Some(Event::NotifyRename(e)) => {
                let to = match e.destination() {
                    Some(EventRenameDestinationFile::ExistingFile { file: f, .. }) => path(&f),
                    Some(EventRenameDestinationFile::NewPath {
                        directory,
                        filename,
                        ..
                    }) => format!("{}/{}", path(&directory), text(filename)),
                    _ => return true,
                };
                vec![to, path(&e.source())]
            }
            _ => return true,
        };
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        self.filter.file_filter(&refs).is_ok()
    }
}

/// File event types, the only ones muted by path: an executable in a muted folder (a
/// payload in `$TMPDIR`) must still be reported when it runs.
fn file_events(settings: &EsSettings) -> Vec<es_event_type_t> {
    let mut v = vec![
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_CREATE,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_UNLINK,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_RENAME,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_CLOSE,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_SETMODE,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_SETOWNER,
    ];
    if settings.subscribe_write {
        v.push(es_event_type_t::ES_EVENT_TYPE_NOTIFY_WRITE);
    }
    v
}

fn all_events(settings: &EsSettings) -> Vec<es_event_type_t> {
    let mut v = vec![
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_EXEC,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_FORK,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_EXIT,
    ];
    v.extend(file_events(settings));
    v.extend([
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_AUTHENTICATION,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_OPENSSH_LOGIN,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_SU,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_SUDO,
    ]);
    v
}

/// Starts the client and the mapping thread; returns once subscribed, or why not.
pub fn start(settings: &EsSettings, sink: Sink) -> Result<Running, EsError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(EsError::NotRoot);
    }
    let (major, minor, patch) = os_version().unwrap_or((13, 0, 0));
    endpoint_sec::version::set_runtime_version(major, minor, patch);

    let homes = home_dirs();
    let mut muted = default_muted_paths(&homes);
    muted.extend(settings.extra_muted_paths.iter().cloned());
    let own_pid = std::process::id();
    let config = MapperConfig {
        boot_id: boot_session_uuid().unwrap_or_default(),
        own_pid: Some(own_pid),
        file_scope: settings.file_scope,
        muted_paths: muted.clone(),
    };
    let mut mapper = Mapper::new(config.clone(), UserNames::new());
    let seeded = seed_running_processes(&mut mapper);
    tracing::debug!(
        processes = seeded,
        "running processes seeded into the process cache"
    );
    let hasher = FileHasher::new(settings.hash_policy.clone(), HASH_CACHE);
    let report = sink.report().clone();
    let (tx, rx) = bounded::<EsMessage>(settings.queue.max(1));
    let stop = Arc::new(AtomicBool::new(false));

    let processor = Processor::new(mapper, hasher, sink).counting_gaps(false);
    let mapper_stop = stop.clone();
    let mapper_report = report.clone();
    let mapper = std::thread::Builder::new()
        .name("macos-es-map".into())
        .spawn(move || run_mapper(processor, &rx, &mapper_stop, &mapper_report))
        .map_err(EsError::Thread)?;

    let (ready_tx, ready_rx) = bounded::<Result<usize, EsError>>(1);
    let (client_stop, client_stop_rx) = bounded::<()>(0);
    let events = all_events(settings);
    let file_events = file_events(settings);
    let forward = Forward {
        tx,
        report,
        gaps: Mutex::new(SeqGaps::new()),
        filter: config,
    };
    let client = std::thread::Builder::new()
        .name("macos-es-client".into())
        .spawn(move || {
            run_client(
                forward,
                &events,
                &file_events,
                &muted,
                own_pid,
                &ready_tx,
                &client_stop_rx,
            )
        })
        .map_err(EsError::Thread)?;

    let running = Running {
        stop,
        client_stop: Some(client_stop),
        client: Some(client),
        mapper: Some(mapper),
        subscribed: 0,
    };
    match ready_rx.recv() {
        Ok(Ok(n)) => Ok(Running {
            subscribed: n,
            ..running
        }),
        Ok(Err(e)) => {
            running.stop();
            Err(e)
        }
        Err(_) => {
            running.stop();
            Err(EsError::Internal(
                "the client thread ended before starting".into(),
            ))
        }
    }
}

/// The client thread: create, mute, subscribe, report ready, wait for stop, delete.
fn run_client(
    forward: Forward,
    events: &[es_event_type_t],
    file_events: &[es_event_type_t],
    muted: &[String],
    own_pid: u32,
    ready: &Sender<Result<usize, EsError>>,
    stop: &Receiver<()>,
) {
    let mut client = match Client::new(move |_client, msg| forward.push(&msg)) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(new_client_error(e)));
            return;
        }
    };
    // The agent's own file reads (hashing) and writes (ring, logs) are not events.
    match i32::try_from(own_pid).ok().map(EsToken::from_pid) {
        Some(Ok(token)) => {
            if let Err(e) = client.mute_process(&token) {
                tracing::warn!(error = ?e, "cannot mute the agent's own process in Endpoint Security");
            }
        }
        _ => tracing::warn!(
            "cannot get the agent's own audit token; its events are dropped after delivery"
        ),
    }
    for path in muted {
        let r = client.mute_path_events(
            OsStr::new(path),
            es_mute_path_type_t::ES_MUTE_PATH_TYPE_TARGET_PREFIX,
            file_events,
        );
        if let Err(e) = r {
            tracing::debug!(path, error = ?e, "cannot mute path in Endpoint Security");
        }
    }
    // One at a time: an event type the running macOS lacks (su and sudo before macOS 14)
    // must not cost the others.
    let mut subscribed = 0;
    for ev in events {
        match client.subscribe(std::slice::from_ref(ev)) {
            Ok(()) => subscribed += 1,
            Err(e) => {
                tracing::info!(event = ?ev, error = ?e, "Endpoint Security event not available on this macOS")
            }
        }
    }
    if subscribed == 0 {
        let _ = ready.send(Err(EsError::Internal(
            "no event type could be subscribed".into(),
        )));
        return;
    }
    let _ = ready.send(Ok(subscribed));
    // Until the collector stops (the sender is dropped).
    let _ = stop.recv();
    if let Err(e) = client.unsubscribe_all() {
        tracing::debug!(error = ?e, "Endpoint Security unsubscribe failed");
    }
    drop(client);
}

fn new_client_error(e: NewClientError) -> EsError {
    match e {
        NewClientError::NotPrivileged => EsError::NotRoot,
        NewClientError::NotEntitled => EsError::NotEntitled,
        NewClientError::NotPermitted => EsError::NoFullDiskAccess,
        NewClientError::TooManyClients => EsError::TooManyClients,
        other => EsError::Internal(format!("{other:?}")),
    }
}

fn run_mapper(
    mut processor: Processor<UserNames>,
    rx: &Receiver<EsMessage>,
    stop: &AtomicBool,
    report: &Report,
) {
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(msg) => {
                if let Err(e) = processor.handle(&msg) {
                    report.fail(e);
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

// --- ES message → neutral message ------------------------------------------------------

fn text(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

fn opt_text(s: Option<&OsStr>) -> Option<String> {
    s.map(text).filter(|t| !t.is_empty())
}

fn time(t: SystemTime) -> String {
    Timestamp::from_system_time(t).to_string()
}

fn token(t: &EsToken) -> m::AuditToken {
    m::AuditToken {
        pid: t.pid() as u32,
        pidversion: t.pidversion() as u32,
        ruid: t.ruid(),
        euid: t.euid(),
        rgid: t.rgid(),
        egid: t.egid(),
        auid: t.auid(),
        asid: t.asid() as u32,
    }
}

fn file(f: &File<'_>) -> m::EsFile {
    let st = f.stat();
    let birth = Timestamp::from_unix(st.st_birthtime, st.st_birthtime_nsec as u32);
    m::EsFile {
        path: text(f.path()),
        path_truncated: f.path_truncated(),
        stat: Some(m::EsStat {
            st_dev: st.st_dev as u64,
            st_ino: st.st_ino,
            st_mode: u32::from(st.st_mode),
            st_uid: st.st_uid,
            st_gid: st.st_gid,
            st_size: st.st_size as u64,
            st_birthtimespec: Some(Value::String(birth.to_string())),
        }),
    }
}

fn process(p: &Process<'_>) -> m::EsProcess {
    m::EsProcess {
        audit_token: token(&p.audit_token()),
        ppid: p.ppid() as u32,
        original_ppid: p.original_ppid() as u32,
        group_id: p.group_id() as u32,
        session_id: p.session_id() as u32,
        codesigning_flags: p.codesigning_flags(),
        is_platform_binary: p.is_platform_binary(),
        is_es_client: p.is_es_client(),
        cdhash: p.cdhash().iter().map(|b| format!("{b:02x}")).collect(),
        signing_id: opt_text(Some(p.signing_id())),
        team_id: opt_text(Some(p.team_id())),
        executable: file(&p.executable()),
        tty: p.tty().map(|t| file(&t)),
        start_time: p.start_time().map(time),
        parent_audit_token: p.parent_audit_token().map(|t| token(&t)),
        responsible_audit_token: p.responsible_audit_token().map(|t| token(&t)),
    }
}

fn destination_new(directory: &File<'_>, filename: &OsStr, mode: Option<u32>) -> m::Destination {
    m::Destination {
        existing_file: None,
        new_path: Some(m::NewPath {
            dir: file(directory),
            filename: text(filename),
            mode,
        }),
    }
}

fn destination_existing(f: &File<'_>) -> m::Destination {
    m::Destination {
        existing_file: Some(file(f)),
        new_path: None,
    }
}

/// The neutral copy of a message, or `None` for events the mapper does not use.
fn convert(msg: &Message) -> Option<EsMessage> {
    let event = match msg.event()? {
        Event::NotifyExec(e) => m::EsEvent::Exec(Box::new(m::Exec {
            target: process(&e.target()),
            args: e.args().map(text).collect(),
            cwd: e.cwd().map(|f| file(&f)),
            script: e.script().map(|f| file(&f)),
            dyld_exec_path: opt_text(e.dyld_exec_path()),
        })),
        Event::NotifyFork(e) => m::EsEvent::Fork(Box::new(m::Fork {
            child: process(&e.child()),
        })),
        Event::NotifyExit(e) => m::EsEvent::Exit(m::Exit { stat: e.stat() }),
        Event::NotifyCreate(e) => {
            let (destination_type, destination) = match e.destination()? {
                EventCreateDestinationFile::ExistingFile { file: f, .. } => {
                    (0, destination_existing(&f))
                }
                EventCreateDestinationFile::NewPath {
                    directory,
                    filename,
                    mode,
                    ..
                } => (
                    1,
                    destination_new(&directory, filename, Some(u32::from(mode))),
                ),
                _ => return None,
            };
            m::EsEvent::Create(m::Create {
                destination_type,
                destination,
            })
        }
        Event::NotifyUnlink(e) => m::EsEvent::Unlink(m::Unlink {
            target: file(&e.target()),
            parent_dir: Some(file(&e.parent_dir())),
        }),
        Event::NotifyRename(e) => {
            let (destination_type, destination) = match e.destination()? {
                EventRenameDestinationFile::ExistingFile { file: f, .. } => {
                    (0, destination_existing(&f))
                }
                EventRenameDestinationFile::NewPath {
                    directory,
                    filename,
                    ..
                } => (1, destination_new(&directory, filename, None)),
                _ => return None,
            };
            m::EsEvent::Rename(m::Rename {
                source: file(&e.source()),
                destination_type,
                destination,
            })
        }
        Event::NotifyWrite(e) => m::EsEvent::Write(m::Target {
            target: file(&e.target()),
        }),
        Event::NotifyClose(e) => m::EsEvent::Close(m::Close {
            modified: e.modified(),
            target: file(&e.target()),
            was_mapped_writable: e.was_mapped_writable(),
        }),
        Event::NotifySetMode(e) => m::EsEvent::SetMode(m::SetMode {
            mode: u32::from(e.mode()),
            target: file(&e.target()),
        }),
        Event::NotifySetOwner(e) => m::EsEvent::SetOwner(m::SetOwner {
            uid: e.uid(),
            gid: e.gid(),
            target: file(&e.target()),
        }),
        Event::NotifySudo(e) => m::EsEvent::Sudo(m::Sudo {
            success: e.success(),
            reject_info: e.reject_info().map(|r| m::SudoRejectInfo {
                plugin_name: text(r.plugin_name()),
                plugin_type: r.plugin_type().0,
                failure_message: text(r.failure_message()),
            }),
            has_from_uid: e.has_from_uid(),
            from_uid: e.from_uid(),
            from_username: opt_text(e.from_username()),
            has_to_uid: e.has_to_uid(),
            to_uid: e.to_uid(),
            to_username: opt_text(e.to_username()),
            command: opt_text(e.command()),
        }),
        Event::NotifySu(e) => m::EsEvent::Su(m::Su {
            success: e.success(),
            failure_message: opt_text(e.failure_message()),
            from_uid: e.from_uid(),
            from_username: opt_text(Some(e.from_username())),
            has_to_uid: e.has_to_uid(),
            to_uid: e.to_uid(),
            to_username: opt_text(e.to_username()),
            shell: opt_text(e.shell()),
            argv: e.args().map(|a| a.map(text).collect()).unwrap_or_default(),
        }),
        Event::NotifyOpensshLogin(e) => m::EsEvent::OpensshLogin(m::OpensshLogin {
            success: e.success(),
            result_type: e.result_type().0,
            source_address_type: e.source_address_type().0,
            source_address: text(e.source_address()),
            username: text(e.username()),
            has_uid: e.has_uid(),
            uid: e.uid(),
        }),
        Event::NotifyAuthentication(e) => {
            let mut data = m::AuthenticationData::default();
            match e.data()? {
                AuthenticationData::Od(od) => {
                    data.od = Some(m::AuthOd {
                        instigator: od.instigator().map(|p| process(&p)),
                        record_type: text(od.record_type()),
                        record_name: text(od.record_name()),
                        node_name: text(od.node_name()),
                        db_path: opt_text(Some(od.db_path())),
                    });
                }
                AuthenticationData::TouchId(t) => {
                    data.touchid = Some(m::AuthTouchId {
                        instigator: t.instigator().map(|p| process(&p)),
                        touchid_mode: t.touchid_mode().0,
                        has_uid: t.has_uid(),
                        uid: t.uid(),
                    });
                }
                AuthenticationData::Token(t) => {
                    data.token = Some(m::AuthToken {
                        instigator: t.instigator().map(|p| process(&p)),
                        pubkey_hash: text(t.pubkey_hash()),
                        token_id: text(t.token_id()),
                        kerberos_principal: opt_text(Some(t.kerberos_principal())),
                    });
                }
                AuthenticationData::AutoUnlock(u) => {
                    data.auto_unlock = Some(m::AuthAutoUnlock {
                        username: text(u.username()),
                        unlock_type: u.type_().0,
                    });
                }
                _ => return None,
            }
            m::EsEvent::Authentication(Box::new(m::Authentication {
                success: e.success(),
                auth_type: e.type_().0,
                data,
            }))
        }
        _ => return None,
    };
    Some(EsMessage {
        version: msg.version(),
        time: time(msg.time()),
        event_type: msg.event_type().0,
        seq_num: msg.seq_num().unwrap_or(0),
        global_seq_num: msg.global_seq_num().unwrap_or(0),
        process: process(&msg.process()),
        event,
    })
}

// --- processes running before the start ----------------------------------------------------

/// Seeds the mapper with every running process (executable, arguments, directory), the
/// way the Linux collector reads /proc at start. Returns how many were seeded.
fn seed_running_processes(mapper: &mut Mapper<UserNames>) -> usize {
    // SAFETY: a null buffer of size 0 asks only for the number of pids.
    let n = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    let Ok(n) = usize::try_from(n) else {
        return 0;
    };
    // Room for processes started meanwhile.
    let mut pids = vec![0 as libc::pid_t; n + 64];
    let bytes = libc::c_int::try_from(pids.len() * std::mem::size_of::<libc::pid_t>()).unwrap_or(0);
    // SAFETY: `pids` is a live, writable buffer of `bytes` bytes.
    let got = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
    let Ok(got) = usize::try_from(got) else {
        return 0;
    };
    let mut seeded = 0;
    for &pid in pids.iter().take(got.min(pids.len())) {
        if pid <= 0 {
            continue;
        }
        let Ok(t) = EsToken::from_pid(pid) else {
            continue;
        };
        let Some(exe) = pid_path(pid) else {
            continue;
        };
        mapper.seed_process(
            &token(&t),
            &exe,
            pid_args(pid),
            &pid_cwd(pid).unwrap_or_default(),
        );
        seeded += 1;
    }
    seeded
}

fn pid_path(pid: libc::pid_t) -> Option<String> {
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: `buf` is a live, writable buffer of the size passed.
    let n = unsafe { libc::proc_pidpath(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
    let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
    buf.truncate(n);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn pid_cwd(pid: libc::pid_t) -> Option<String> {
    // SAFETY: proc_vnodepathinfo is plain data; all zeroes is a valid value.
    let mut info: libc::proc_vnodepathinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_vnodepathinfo>() as libc::c_int;
    // SAFETY: `info` is a live, writable value of `size` bytes, the flavor's structure.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDVNODEPATHINFO,
            0,
            (&mut info as *mut libc::proc_vnodepathinfo).cast(),
            size,
        )
    };
    if n != size {
        return None;
    }
    let path = info.pvi_cdir.vip_path.as_flattened();
    let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
    let bytes: Vec<u8> = path[..end].iter().map(|&c| c as u8).collect();
    Some(String::from_utf8_lossy(&bytes).into_owned()).filter(|p| !p.is_empty())
}

/// `argv` of a process, from `KERN_PROCARGS2` (argc, the exec path, then the arguments).
fn pid_args(pid: libc::pid_t) -> Vec<String> {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    let mut size: libc::size_t = 0;
    // SAFETY: `mib` names 3 levels; a null buffer asks for the size.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            std::ptr::null_mut(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || size < 4 {
        return Vec::new();
    }
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` is a live, writable buffer of `size` bytes and `size` says so.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Vec::new();
    }
    buf.truncate(size);
    crate::procargs::parse(&buf)
}

// --- host facts ------------------------------------------------------------------------

/// A string sysctl (`kern.bootsessionuuid`, `kern.osproductversion`).
fn sysctl_string(name: &str) -> Option<String> {
    let cname = CString::new(name).ok()?;
    let mut len: libc::size_t = 0;
    // SAFETY: `cname` is a valid NUL-terminated string; a null output buffer with a valid
    // length pointer asks only for the size.
    let rc = unsafe {
        libc::sysctlbyname(
            cname.as_ptr(),
            std::ptr::null_mut(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || len == 0 {
        return None;
    }
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is a live, writable allocation of `len` bytes and `len` says so; the
    // kernel writes at most `len` bytes and updates `len`.
    let rc = unsafe {
        libc::sysctlbyname(
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    buf.truncate(len);
    let s = OsStr::from_bytes(&buf).to_string_lossy();
    Some(s.trim_end_matches('\0').trim().to_owned()).filter(|s| !s.is_empty())
}

/// The boot's identity: new at every boot, stable while it lasts.
fn boot_session_uuid() -> Option<String> {
    sysctl_string("kern.bootsessionuuid")
}

/// `14.4.1` → (14, 4, 1).
fn os_version() -> Option<(u64, u64, u64)> {
    let v = sysctl_string("kern.osproductversion")?;
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Users' home directories (`/Users/*` and root's), whose caches are muted.
fn home_dirs() -> Vec<String> {
    let mut homes = vec!["/private/var/root".to_owned()];
    if let Ok(entries) = std::fs::read_dir("/Users") {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                homes.push(e.path().to_string_lossy().into_owned());
            }
        }
    }
    homes
}
