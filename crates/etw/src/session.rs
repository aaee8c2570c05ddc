//! The Windows binding: two real-time ETW sessions read with `ferrisetw`, decoded into
//! [`EtwRecord`]s and handed to the [`Mapper`]; the resulting events go to the sink.
//!
//! - Kernel session (`<prefix>-Kernel`): the kernel Process events (start, end, rundown).
//! - User session (`<prefix>-User`): Kernel-Process thread starts, Kernel-File,
//!   Kernel-Network, DNS-Client, PowerShell, WMI-Activity and NTLM, each limited to the
//!   event IDs the mapper uses where the provider is noisy.
//!
//! A session of the same name left by a crashed agent is stopped first. A monitor thread
//! reads the sessions' lost-event counters (`ControlTraceW` query) into the report's
//! `source_lost` and closes DNS repeat windows. Only compiled on Windows (and in CI only
//! compiled: ETW cannot run there).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_event::{Event, Timestamp};
use agent_host::{FileHasher, HashOutcome, HashResult, HashWorker};
use agent_pipeline::Sink;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use ferrisetw::parser::Parser;
use ferrisetw::provider::{kernel_providers, EventFilter, Provider as EtwProvider};
use ferrisetw::schema_locator::SchemaLocator;
use ferrisetw::trace::{stop_trace_by_name, KernelTrace, TraceTrait, UserTrace};
use ferrisetw::EventRecord;
use windows::core::{HSTRING, PCWSTR, PWSTR};
use windows::Win32::Foundation::{CloseHandle, FILETIME};
use windows::Win32::Storage::FileSystem::QueryDosDeviceW;
use windows::Win32::System::Diagnostics::Etw::{
    ControlTraceW, CONTROLTRACE_HANDLE, EVENT_TRACE_CONTROL_QUERY, EVENT_TRACE_PROPERTIES,
};
use windows::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD};
use windows::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, QueryFullProcessImageNameW, PROCESS_NAME_WIN32,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use crate::collector::{EtwConfig, EtwError};
use crate::hashing::{self, HashSlot};
use crate::mapper::{Mapper, MapperConfig};
use crate::paths::{is_absolute, DeviceMap};
use crate::proctable::from_filetime;
use crate::providers::{self, opcode, Provider};
use crate::record::{EtwRecord, Extra, Guid, Header, Prop};

/// Kernel-Process keywords: process and thread events.
const KP_PROCESS: u64 = 0x10;
const KP_THREAD: u64 = 0x20;
/// Kernel-File keywords: Create (12), DeletePath (26), RenamePath (27), CreateNewFile (30).
const KF_CREATE: u64 = 0x80;
const KF_DELETE_PATH: u64 = 0x400;
const KF_RENAME_PATH: u64 = 0x800;
const KF_CREATE_NEW_FILE: u64 = 0x1000;
/// Kernel-Network keywords: IPv4, IPv6.
const KN_IPV4: u64 = 0x10;
const KN_IPV6: u64 = 0x20;

/// An event waiting for the hashes of `path`.
type Pending = (Event, HashSlot, PathBuf);

/// What the callbacks share.
struct Shared {
    mapper: Mutex<Mapper>,
    sink: Sink,
    /// Events to hash, to the hashing thread.
    to_hash: Sender<Pending>,
}

impl Shared {
    fn handle(&self, record: &EventRecord, locator: &SchemaLocator) {
        let provider_id = record.provider_id();
        let guid = Guid::from_fields(
            provider_id.data1,
            provider_id.data2,
            provider_id.data3,
            provider_id.data4,
        );
        let Some(provider) = Provider::from_guid(guid) else {
            return;
        };
        let Some(names) = providers::properties(provider, record.event_id(), record.opcode())
        else {
            return;
        };
        let Ok(schema) = locator.event_schema(record) else {
            return;
        };
        let parser = Parser::create(record, &schema);
        let mut properties = Vec::with_capacity(names.len());
        for &name in names {
            // Strings first (Unicode, ANSI, SID); any other type from its raw bytes.
            let value = match parser.try_parse::<String>(name) {
                Ok(s) => Prop::Str(s),
                Err(_) => match parser.try_parse::<Vec<u8>>(name) {
                    Ok(bytes) => Prop::from_raw(name, &bytes),
                    Err(_) => continue,
                },
            };
            properties.push((name.to_owned(), value));
        }
        let header = Header {
            provider: guid,
            id: record.event_id(),
            opcode: record.opcode(),
            version: record.version(),
            level: record.level(),
            keywords: record.keyword(),
            pid: record.process_id(),
            tid: record.thread_id(),
            timestamp: from_filetime(u64::try_from(record.raw_timestamp()).unwrap_or(0)),
        };
        let mut rec = EtwRecord {
            header,
            properties,
            extra: Extra::default(),
        };
        if provider == Provider::KernelProcessClassic
            && matches!(rec.header.opcode, opcode::START | opcode::DC_START)
        {
            if let Some(pid) = rec.u32("ProcessId") {
                rec.extra = process_extra(pid, rec.str("CommandLine").unwrap_or(""));
            }
        }
        let mut out = Vec::new();
        self.mapper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(&rec, &mut out);
        self.send(out);
    }

    fn send(&self, events: Vec<Event>) {
        for e in events {
            let e = match hashing::hash_target(&e) {
                Some((slot, path)) => match self.to_hash.try_send((e, slot, path)) {
                    Ok(()) => continue,
                    // Hashing is behind (or stopping): the event goes without hashes.
                    Err(TrySendError::Full((e, ..)) | TrySendError::Disconnected((e, ..))) => e,
                },
                None => e,
            };
            // A full queue is counted by the sink; a closed one means the agent stops.
            let _ = self.sink.send(Box::new(e));
        }
    }
}

/// The hashing thread: hands files to the hash worker and sends each event when its hashes
/// arrive, or without them after `wait`. Returns when `stopping` is set, after a last short
/// wait for the results in flight.
fn hash_loop(
    worker: HashWorker,
    results: Receiver<HashResult>,
    incoming: Receiver<Pending>,
    sink: Sink,
    wait: Duration,
    stopping: Arc<AtomicBool>,
) {
    let mut pending: HashMap<u64, (Instant, Event, HashSlot)> = HashMap::new();
    let mut next_id = 0u64;
    let tick = Duration::from_millis(100);
    let send = |e: Event| {
        let _ = sink.send(Box::new(e));
    };
    loop {
        let stop = stopping.load(Ordering::Relaxed);
        crossbeam_channel::select! {
            recv(incoming) -> msg => if let Ok((event, slot, path)) = msg {
                next_id += 1;
                match worker.submit(next_id, path) {
                    Ok(()) => {
                        pending.insert(next_id, (Instant::now() + wait, event, slot));
                    }
                    Err(_) => send(event),
                }
            },
            recv(results) -> msg => if let Ok(r) = msg {
                if let Some((_, mut event, slot)) = pending.remove(&r.id) {
                    if let HashOutcome::Hashed { hashes, .. } = &r.outcome {
                        hashing::apply(&mut event, slot, hashes);
                    }
                    send(event);
                }
            },
            default(tick) => {}
        }
        let now = Instant::now();
        let late: Vec<u64> = pending
            .iter()
            .filter(|(_, (deadline, ..))| stop || *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some((_, event, _)) = pending.remove(&id) {
                send(event);
            }
        }
        if stop {
            while let Ok((event, ..)) = incoming.try_recv() {
                send(event);
            }
            return;
        }
    }
}

/// Creation time and image path of a running process (what its start event lacks).
fn process_extra(pid: u32, command_line: &str) -> Extra {
    let mut extra = Extra::default();
    // SAFETY: plain Win32 calls on a handle we own and close; buffers outlive the calls
    // and their sizes are passed with them.
    unsafe {
        let Ok(h) = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) else {
            return extra;
        };
        let (mut created, mut exited, mut kernel, mut user) = (
            FILETIME::default(),
            FILETIME::default(),
            FILETIME::default(),
            FILETIME::default(),
        );
        if GetProcessTimes(h, &mut created, &mut exited, &mut kernel, &mut user).is_ok() {
            let ft = (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime);
            extra.create_time = Some(from_filetime(ft));
        }
        let program_absolute = crate::cmdline::split(command_line)
            .first()
            .is_some_and(|a| is_absolute(a));
        if !program_absolute {
            let mut buf = vec![0u16; 1024];
            let mut len = buf.len() as u32;
            if QueryFullProcessImageNameW(h, PROCESS_NAME_WIN32, PWSTR(buf.as_mut_ptr()), &mut len)
                .is_ok()
            {
                buf.truncate(len as usize);
                extra.image_path = Some(String::from_utf16_lossy(&buf));
            }
        }
        let _ = CloseHandle(h);
    }
    extra
}

/// The kernel's boot counter (`BootId` of the prefetcher's parameters), which names the
/// boot in process GUIDs; empty if unreadable (GUIDs then rely on pid and creation time).
fn boot_id() -> String {
    let key = HSTRING::from(
        r"SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management\PrefetchParameters",
    );
    let value = HSTRING::from("BootId");
    let mut data: u32 = 0;
    let mut size = std::mem::size_of::<u32>() as u32;
    // SAFETY: `data` and `size` are valid for the duration of the call; the flag restricts
    // the value to a DWORD, so at most 4 bytes are written.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            &key,
            &value,
            RRF_RT_REG_DWORD,
            None,
            Some((&mut data as *mut u32).cast()),
            Some(&mut size),
        )
    };
    if rc.is_ok() {
        data.to_string()
    } else {
        String::new()
    }
}

/// Drive letters of the volume devices (`C:` → `\Device\HarddiskVolume3`).
fn device_map() -> DeviceMap {
    let mut map = DeviceMap::new();
    let mut buf = vec![0u16; 1024];
    for letter in b'A'..=b'Z' {
        let drive = format!("{}:", char::from(letter));
        let name = HSTRING::from(drive.as_str());
        // SAFETY: the buffer is valid and its length is passed with the slice.
        let n = unsafe { QueryDosDeviceW(&name, Some(&mut buf)) } as usize;
        if n == 0 {
            continue;
        }
        // The answer is a list of NUL-terminated strings; the first is the current target.
        let first: Vec<u16> = buf[..n.min(buf.len())]
            .iter()
            .copied()
            .take_while(|&c| c != 0)
            .collect();
        map.insert(&drive, &String::from_utf16_lossy(&first));
    }
    map
}

/// Events the session `name` lost so far (buffer overruns), from a `ControlTraceW` query.
fn events_lost(name: &str) -> Option<u64> {
    // EVENT_TRACE_PROPERTIES followed by room for the logger and log file names.
    const NAMES: usize = 2 * 1024 * 2;
    let base = std::mem::size_of::<EVENT_TRACE_PROPERTIES>();
    let total = base + NAMES;
    let mut buf = vec![0u64; total.div_ceil(8)];
    let props = buf.as_mut_ptr().cast::<EVENT_TRACE_PROPERTIES>();
    let wide = HSTRING::from(name);
    // SAFETY: `buf` is 8-byte aligned, zeroed and `total` bytes long, larger than the
    // struct; the offsets point inside it, and ControlTraceW writes at most BufferSize bytes.
    unsafe {
        (*props).Wnode.BufferSize = total as u32;
        (*props).LoggerNameOffset = base as u32;
        (*props).LogFileNameOffset = (base + NAMES / 2) as u32;
        let rc = ControlTraceW(
            CONTROLTRACE_HANDLE::default(),
            PCWSTR(wide.as_ptr()),
            props,
            EVENT_TRACE_CONTROL_QUERY,
        );
        if rc.is_err() {
            return None;
        }
        Some(u64::from((*props).EventsLost) + u64::from((*props).RealTimeBuffersLost))
    }
}

/// The running sessions and threads of a started collector.
pub(crate) struct Running {
    kernel: Option<KernelTrace>,
    user: Option<UserTrace>,
    threads: Vec<JoinHandle<()>>,
    monitor: Option<JoinHandle<()>>,
    hasher: Option<Hasher>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Starts both sessions and the monitor; on error nothing is left running.
    pub(crate) fn start(config: &EtwConfig, sink: Sink) -> Result<Running, EtwError> {
        let kernel_name = format!("{}-Kernel", config.session_prefix);
        let user_name = format!("{}-User", config.session_prefix);
        // Sessions left by a crashed agent keep their name: stop them, or starting fails.
        let _ = stop_trace_by_name(&kernel_name);
        let _ = stop_trace_by_name(&user_name);

        let mapper = Mapper::new(MapperConfig {
            boot_id: boot_id(),
            own_pid: Some(std::process::id()),
            dns_repeat_window: config.dns_repeat_window,
            devices: device_map(),
        });
        let (worker, results) = HashWorker::spawn(
            FileHasher::new(config.hash_policy.clone(), 4096),
            config.hash_queue,
        )
        .map_err(|e| session_error("hasher", e))?;
        let (to_hash, incoming) = bounded::<Pending>(config.hash_queue.max(1));
        let stopping = Arc::new(AtomicBool::new(false));
        // Stopped and joined when dropped, also when a later step of `start` fails.
        let hasher = {
            let (sink, flag, wait) = (sink.clone(), Arc::clone(&stopping), config.hash_wait);
            let thread = std::thread::Builder::new()
                .name("etw-hash".into())
                .spawn(move || hash_loop(worker, results, incoming, sink, wait, flag))
                .map_err(|e| session_error("hasher", e))?;
            Hasher {
                stopping,
                thread: Some(thread),
            }
        };
        let shared = Arc::new(Shared {
            mapper: Mutex::new(mapper),
            sink,
            to_hash,
        });
        let callback = |shared: &Arc<Shared>| {
            let shared = Arc::clone(shared);
            move |record: &EventRecord, locator: &SchemaLocator| shared.handle(record, locator)
        };

        let process = EtwProvider::kernel(&kernel_providers::PROCESS_PROVIDER)
            .add_callback(callback(&shared))
            .build();
        let (kernel, kernel_handle) = KernelTrace::new()
            .named(kernel_name.clone())
            .enable(process)
            .start()
            .map_err(|e| session_error(&kernel_name, e))?;

        let by_guid = |p: Provider| EtwProvider::by_guid(windows_guid(p.guid()));
        let user_result = UserTrace::new()
            .named(user_name.clone())
            .enable(
                by_guid(Provider::KernelProcess)
                    .any(KP_PROCESS | KP_THREAD)
                    .add_filter(EventFilter::ByEventIds(vec![1, 3]))
                    .add_callback(callback(&shared))
                    .build(),
            )
            .enable(
                by_guid(Provider::KernelFile)
                    .any(KF_CREATE | KF_DELETE_PATH | KF_RENAME_PATH | KF_CREATE_NEW_FILE)
                    .add_filter(EventFilter::ByEventIds(vec![12, 26, 27, 30]))
                    .add_callback(callback(&shared))
                    .build(),
            )
            .enable(
                by_guid(Provider::KernelNetwork)
                    .any(KN_IPV4 | KN_IPV6)
                    .add_filter(EventFilter::ByEventIds(vec![12, 15, 28, 31]))
                    .add_callback(callback(&shared))
                    .build(),
            )
            .enable(
                by_guid(Provider::DnsClient)
                    .add_filter(EventFilter::ByEventIds(vec![3008]))
                    .add_callback(callback(&shared))
                    .build(),
            )
            .enable(
                by_guid(Provider::PowerShell)
                    .level(5)
                    .add_filter(EventFilter::ByEventIds(vec![4103, 4104]))
                    .add_callback(callback(&shared))
                    .build(),
            )
            .enable(
                by_guid(Provider::WmiActivity)
                    .add_filter(EventFilter::ByEventIds(vec![5857, 5858, 5859, 5860, 5861]))
                    .add_callback(callback(&shared))
                    .build(),
            )
            .enable(
                by_guid(Provider::Ntlm)
                    .add_filter(EventFilter::ByEventIds(vec![
                        8001, 8002, 8003, 8004, 4001, 4002, 4003,
                    ]))
                    .add_callback(callback(&shared))
                    .build(),
            )
            .start();
        let (user, user_handle) = match user_result {
            Ok(pair) => pair,
            Err(e) => {
                let _ = kernel.stop();
                return Err(session_error(&user_name, e));
            }
        };

        let threads = vec![
            std::thread::Builder::new()
                .name("etw-kernel".into())
                .spawn(move || {
                    let _ = KernelTrace::process_from_handle(kernel_handle);
                })
                .map_err(|e| session_error(&kernel_name, e))?,
            std::thread::Builder::new()
                .name("etw-user".into())
                .spawn(move || {
                    let _ = UserTrace::process_from_handle(user_handle);
                })
                .map_err(|e| session_error(&user_name, e))?,
        ];

        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let monitor = {
            let (stop, shared) = (Arc::clone(&stop), Arc::clone(&shared));
            let (kernel_name, user_name) = (kernel_name.clone(), user_name.clone());
            let interval = config.poll_interval;
            std::thread::Builder::new()
                .name("etw-monitor".into())
                .spawn(move || loop {
                    let (lock, cvar) = &*stop;
                    let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    let (guard, _) = cvar
                        .wait_timeout_while(guard, interval, |stopped| !*stopped)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *guard {
                        return;
                    }
                    drop(guard);
                    let lost = [&kernel_name, &user_name]
                        .iter()
                        .filter_map(|n| events_lost(n))
                        .sum();
                    shared.sink.report().set_source_lost(lost);
                    let mut out = Vec::new();
                    shared
                        .mapper
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .flush(Timestamp::now(), &mut out);
                    shared.send(out);
                })
                .map_err(|e| session_error("monitor", e))?
        };

        Ok(Running {
            kernel: Some(kernel),
            user: Some(user),
            threads,
            monitor: Some(monitor),
            hasher: Some(hasher),
            stop,
            shared,
        })
    }

    /// Stops the sessions (their processing threads return), the monitor, and sends the
    /// pending DNS repeat summaries.
    pub(crate) fn stop(mut self) {
        {
            let (lock, cvar) = &*self.stop;
            *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
            cvar.notify_all();
        }
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        if let Some(k) = self.kernel.take() {
            let _ = k.stop();
        }
        if let Some(u) = self.user.take() {
            let _ = u.stop();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut out = Vec::new();
        self.shared
            .mapper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush_all(&mut out);
        self.shared.send(out);
        // Sends what waits for hashes, then ends.
        drop(self.hasher.take());
    }
}

/// The hashing thread, stopped and joined on drop.
struct Hasher {
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Hasher {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn windows_guid(g: Guid) -> windows::core::GUID {
    windows::core::GUID::from_u128(g.0)
}

fn session_error(name: &str, e: impl std::fmt::Debug) -> EtwError {
    EtwError::Session {
        name: name.to_owned(),
        message: format!("{e:?}"),
    }
}
