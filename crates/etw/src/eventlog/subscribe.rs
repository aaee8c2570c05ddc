//! The Windows binding of the Event Log collector: one pull subscription (`EvtSubscribe`
//! with a signal event) per channel, read by one thread with `EvtNext`, each record rendered
//! to XML (`EvtRender(EvtRenderEventXml)`) and handed to the pure mapper.
//!
//! - Bookmarks: each channel's bookmark (`EvtUpdateBookmark` after every record the sink
//!   took) is written to `<bookmark_dir>/<channel>.xml` with `agent_os::replace_file`
//!   after every batch and at stop; at start the subscription resumes after it
//!   (`EvtSubscribeStartAfterBookmark`), so a restart neither loses nor repeats records.
//!   Without a bookmark (first start) the subscription starts with the records to come.
//! - A channel that cannot be subscribed to (Sysmon not installed, Defender disabled) is
//!   shown in the collector's mode in `agent status` and tried again every
//!   `retry_interval`: a channel installed while the agent runs is picked up without a
//!   restart.
//!
//! Only compiled on Windows; `EvtSubscribe` does not work under Wine, so CI only compiles it.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Instant;

use agent_pipeline::Sink;
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use windows::core::{HSTRING, PCWSTR};
use windows::Win32::Foundation::{
    CloseHandle, ERROR_EVT_CHANNEL_NOT_FOUND, ERROR_EVT_INVALID_QUERY,
    ERROR_EVT_QUERY_RESULT_STALE, ERROR_INSUFFICIENT_BUFFER, ERROR_NO_MORE_ITEMS, HANDLE,
};
use windows::Win32::System::EventLog::{
    EvtClose, EvtCreateBookmark, EvtNext, EvtRender, EvtRenderBookmark, EvtRenderEventXml,
    EvtSubscribe, EvtSubscribeStartAfterBookmark, EvtSubscribeToFutureEvents, EvtUpdateBookmark,
    EVT_HANDLE,
};
use windows::Win32::System::Threading::{CreateEventW, ResetEvent, WaitForMultipleObjects};

use super::collector::{load_bookmark, status_mode, store_bookmark, EventLogConfig, EventLogError};
use super::{map_xml, Channel, Mapped};

/// The running reader thread.
#[derive(Debug)]
pub(crate) struct Running {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Makes the bookmark directory and starts the reader thread.
    pub(crate) fn start(config: EventLogConfig, sink: Sink) -> Result<Running, EventLogError> {
        std::fs::create_dir_all(&config.bookmark_dir).map_err(|source| {
            EventLogError::StateDir {
                path: config.bookmark_dir.clone(),
                source,
            }
        })?;
        let (stop, stopped) = bounded(1);
        let thread = std::thread::Builder::new()
            .name("eventlog".to_owned())
            .spawn(move || Reader::new(config, sink, stopped).run())
            .map_err(EventLogError::Thread)?;
        Ok(Running {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the thread to stop (it saves the bookmarks) and waits for it: at most one
    /// `poll_interval` plus the batch in hand.
    pub(crate) fn stop(mut self) {
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An owned `EVT_HANDLE`, closed on drop.
struct Evt(EVT_HANDLE);

impl Drop for Evt {
    fn drop(&mut self) {
        if !self.0.is_invalid() {
            // SAFETY: the handle came from an Evt* function, is owned by this value and
            // closed once, here.
            let _ = unsafe { EvtClose(self.0) };
        }
    }
}

/// An owned event object handle, closed on drop.
struct Signal(HANDLE);

impl Drop for Signal {
    fn drop(&mut self) {
        // SAFETY: the handle came from CreateEventW, is owned by this value and closed
        // once, here.
        let _ = unsafe { CloseHandle(self.0) };
    }
}

/// One channel's subscription.
struct Subscription {
    channel: Channel,
    // Field order is drop order: the subscription is closed before its signal.
    handle: Evt,
    bookmark: Evt,
    signal: Signal,
    /// The bookmark directory.
    dir: PathBuf,
    /// The bookmark moved since it was last written.
    dirty: bool,
}

/// Why a read pass ended early.
enum Pass {
    /// The sink is closed: the agent stops.
    Closed,
    /// The subscription is no longer valid (the log was cleared or wrapped past it):
    /// subscribe again from the bookmark.
    Stale,
}

struct Reader {
    config: EventLogConfig,
    sink: Sink,
    stop: Receiver<()>,
    subs: Vec<Subscription>,
    /// Channels not subscribed, with the reason.
    missing: Vec<(Channel, String)>,
}

impl Reader {
    fn new(config: EventLogConfig, sink: Sink, stop: Receiver<()>) -> Reader {
        let missing = config
            .channels
            .iter()
            .map(|c| (*c, "not subscribed yet".to_owned()))
            .collect();
        Reader {
            config,
            sink,
            stop,
            subs: Vec::new(),
            missing,
        }
    }

    fn run(mut self) {
        let mut next_retry = Instant::now();
        loop {
            if Instant::now() >= next_retry && !self.missing.is_empty() {
                self.subscribe_missing();
                next_retry = Instant::now() + self.config.retry_interval;
            }
            let mut i = 0;
            while i < self.subs.len() {
                match self.read(i) {
                    Ok(()) => i += 1,
                    Err(Pass::Closed) => {
                        self.save_bookmarks();
                        return;
                    }
                    Err(Pass::Stale) => {
                        let sub = self.subs.remove(i);
                        save_bookmark(&sub);
                        self.sink.report().add_source_lost(1);
                        self.missing
                            .push((sub.channel, "resubscribing after a stale query".into()));
                        next_retry = Instant::now();
                    }
                }
            }
            self.save_bookmarks();
            match self.stop.try_recv() {
                Ok(()) | Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            self.wait();
            match self.stop.try_recv() {
                Ok(()) | Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
        }
        self.save_bookmarks();
    }

    /// Waits until a subscription has records or `poll_interval` passed.
    fn wait(&self) {
        let ms = u32::try_from(self.config.poll_interval.as_millis()).unwrap_or(u32::MAX);
        // WaitForMultipleObjects takes at most 64 handles; there are at most 4 channels.
        let handles: Vec<HANDLE> = self.subs.iter().map(|s| s.signal.0).take(64).collect();
        if handles.is_empty() {
            std::thread::sleep(self.config.poll_interval);
            return;
        }
        // SAFETY: every handle is a live event object owned by `self.subs`, which outlives
        // the call.
        let _ = unsafe { WaitForMultipleObjects(&handles, false, ms) };
    }

    fn subscribe_missing(&mut self) {
        let missing = std::mem::take(&mut self.missing);
        for (channel, _) in missing {
            match subscribe(channel, &self.config.bookmark_dir) {
                Ok(sub) => self.subs.push(sub),
                Err(e) => {
                    let why = if e.code() == ERROR_EVT_CHANNEL_NOT_FOUND.to_hresult() {
                        "channel not found".to_owned()
                    } else {
                        e.message().to_string()
                    };
                    self.missing.push((channel, why));
                }
            }
        }
        let reading: Vec<Channel> = self.subs.iter().map(|s| s.channel).collect();
        self.sink
            .report()
            .set_mode(status_mode(&reading, &self.missing));
    }

    /// Reads every record available on subscription `i`.
    fn read(&mut self, i: usize) -> Result<(), Pass> {
        let batch = self.config.batch.clamp(1, 1024) as usize;
        let sub = &mut self.subs[i];
        loop {
            let mut raw = vec![0isize; batch];
            let mut returned = 0u32;
            // SAFETY: `raw` has room for `raw.len()` handles and `returned` is a valid out
            // pointer; the subscription handle is live.
            let next = unsafe { EvtNext(sub.handle.0, &mut raw, 0, 0, &mut returned) };
            if let Err(e) = next {
                if e.code() == ERROR_NO_MORE_ITEMS.to_hresult() {
                    // SAFETY: the signal is a live event object owned by `sub`.
                    let _ = unsafe { ResetEvent(sub.signal.0) };
                    return Ok(());
                }
                if e.code() == ERROR_EVT_QUERY_RESULT_STALE.to_hresult() {
                    return Err(Pass::Stale);
                }
                self.sink
                    .report()
                    .set_mode(format!("{}: EvtNext: {}", sub.channel, e.message()));
                return Ok(());
            }
            let got = (returned as usize).min(raw.len());
            // Own every handle first, so that all are closed whatever happens below.
            let events: Vec<Evt> = raw[..got].iter().map(|h| Evt(EVT_HANDLE(*h))).collect();
            for event in &events {
                match render(event.0, EvtRenderEventXml.0) {
                    Ok(xml) => {
                        if let Ok(Mapped::Event(e)) = map_xml(&xml) {
                            if self.sink.send(e).is_err() {
                                return Err(Pass::Closed);
                            }
                        }
                    }
                    // A record that cannot be rendered is lost to the agent: count it.
                    Err(_) => self.sink.report().add_source_lost(1),
                }
                // SAFETY: both handles are live; the bookmark is owned by `sub`.
                if unsafe { EvtUpdateBookmark(sub.bookmark.0, event.0) }.is_ok() {
                    sub.dirty = true;
                }
            }
            if got < batch {
                return Ok(());
            }
        }
    }

    fn save_bookmarks(&mut self) {
        for sub in &mut self.subs {
            if sub.dirty && save_bookmark(sub) {
                sub.dirty = false;
            }
        }
    }
}

/// Subscribes to `channel`, after its saved bookmark if there is one.
fn subscribe(channel: Channel, dir: &Path) -> windows::core::Result<Subscription> {
    let saved = load_bookmark(dir, channel);
    // SAFETY: a null PCWSTR asks for a new, empty bookmark; a saved one is a live HSTRING.
    let (bookmark, resume) = match saved {
        Some(xml) => match unsafe { EvtCreateBookmark(&HSTRING::from(xml)) } {
            Ok(b) => (Evt(b), true),
            // A damaged bookmark file: start with the records to come.
            Err(_) => (Evt(unsafe { EvtCreateBookmark(PCWSTR::null()) }?), false),
        },
        None => (Evt(unsafe { EvtCreateBookmark(PCWSTR::null()) }?), false),
    };
    // SAFETY: default security, manual reset, initially signalled, unnamed.
    let signal = Signal(unsafe { CreateEventW(None, true, true, PCWSTR::null()) }?);
    let path = HSTRING::from(channel.path());
    let query = HSTRING::from(channel.query());
    let (after, flags) = if resume {
        (bookmark.0, EvtSubscribeStartAfterBookmark.0)
    } else {
        (EVT_HANDLE(0), EvtSubscribeToFutureEvents.0)
    };
    let open = |query: &HSTRING| {
        // SAFETY: local session (null), a live signal and bookmark, strings that outlive
        // the call; no callback (pull subscription), so no context pointer.
        unsafe {
            EvtSubscribe(
                EVT_HANDLE(0),
                signal.0,
                &path,
                query,
                after,
                None,
                None,
                flags,
            )
        }
    };
    let handle = match open(&query) {
        // A service that refuses the ID filter (a query too long for it): every record of
        // the channel, filtered by the mapper instead.
        Err(e) if e.code() == ERROR_EVT_INVALID_QUERY.to_hresult() => open(&HSTRING::from("*")),
        other => other,
    }?;
    Ok(Subscription {
        channel,
        handle: Evt(handle),
        bookmark,
        signal,
        dir: dir.to_path_buf(),
        dirty: false,
    })
}

/// Writes the subscription's bookmark; false if it could not be.
fn save_bookmark(sub: &Subscription) -> bool {
    match render(sub.bookmark.0, EvtRenderBookmark.0) {
        Ok(xml) => store_bookmark(&sub.dir, sub.channel, &xml).is_ok(),
        Err(_) => false,
    }
}

/// Renders an event or a bookmark to its XML text.
fn render(handle: EVT_HANDLE, flags: u32) -> windows::core::Result<String> {
    let mut buf: Vec<u16> = vec![0; 4096];
    loop {
        let mut used = 0u32;
        let mut count = 0u32;
        let size = u32::try_from(buf.len() * 2).unwrap_or(u32::MAX);
        // SAFETY: `buf` has `size` bytes of room; `used` and `count` are valid out pointers;
        // the handle is live.
        let r = unsafe {
            EvtRender(
                EVT_HANDLE(0),
                handle,
                flags,
                size,
                Some(buf.as_mut_ptr().cast()),
                &mut used,
                &mut count,
            )
        };
        match r {
            Ok(()) => {
                let chars = (used as usize / 2).min(buf.len());
                let text = &buf[..chars];
                let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
                return Ok(String::from_utf16_lossy(&text[..end]));
            }
            Err(e) if e.code() == ERROR_INSUFFICIENT_BUFFER.to_hresult() => {
                let need = (used as usize).div_ceil(2);
                if need <= buf.len() {
                    return Err(e);
                }
                buf = vec![0; need];
            }
            Err(e) => return Err(e),
        }
    }
}
