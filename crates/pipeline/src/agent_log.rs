//! The agent log: a size-rotated file (reopened on SIGHUP for external rotation), and
//! warnings and errors also sent as agent-log events in the dialect.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::writer::Control;
use agent_event::{Event, LogLevel, Timestamp};
use crossbeam_channel::Sender;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Size at which the log file is rotated.
pub const MAX_LOG_SIZE: u64 = 10 * 1024 * 1024;
/// Rotated files kept (`agent.log.1` .. `agent.log.N`).
pub const KEEP_ROTATED: u32 = 3;

/// Set by the SIGHUP handler: the next write reopens the file.
pub static REOPEN: AtomicBool = AtomicBool::new(false);

#[derive(Debug)]
struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    fn open(path: &Path) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            file: Some(file),
            size,
        })
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.file = None;
        *self = RotatingFile::open(&self.path)?;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        for i in (1..KEEP_ROTATED).rev() {
            let from = rotated(&self.path, i);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, i + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.reopen()
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if REOPEN.swap(false, Ordering::Relaxed) {
            self.reopen()?;
        }
        if self.size >= MAX_LOG_SIZE {
            self.rotate()?;
        }
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => return Err(io::Error::other("log file is closed")),
        };
        let n = file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// A cloneable handle on the log file, usable as a `tracing_subscriber` writer.
#[derive(Debug, Clone)]
pub struct LogFile(Arc<Mutex<RotatingFile>>);

impl LogFile {
    /// Opens (creating the directory if needed) the log file for appending.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile(Arc::new(Mutex::new(RotatingFile::open(path)?))))
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// Forwards warnings and errors to the writer thread as agent-log events. Never blocks:
/// when the control channel is full the event stays in the log file only.
#[derive(Debug)]
pub struct EventLayer {
    control: Sender<Control>,
}

impl EventLayer {
    /// Sends to the writer thread's control channel.
    pub fn new(control: Sender<Control>) -> Self {
        EventLayer { control }
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    error: Option<String>,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "error" => self.error = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "error" => self.error = Some(value.to_owned()),
            _ => self.record_debug(field, &value),
        }
    }
}

impl<S: Subscriber> Layer<S> for EventLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let level = match *event.metadata().level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warning,
            _ => return,
        };
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        let reason = format!("{}{}", v.message, v.fields);
        let e = Event::agent_log(Timestamp::now(), level, &reason, v.error.as_deref());
        let _ = self.control.try_send(Control::Event(Box::new(e)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_become_agent_log_events_and_info_does_not() {
        let (tx, rx) = bounded(8);
        let subscriber = tracing_subscriber::registry().with(EventLayer::new(tx));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not forwarded");
            tracing::warn!(collector = "audit", "rule skipped");
            tracing::error!(error = "EPERM", "the shipper stopped");
        });
        let events: Vec<Event> = rx
            .try_iter()
            .map(|c| match c {
                Control::Event(e) => *e,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].log.level, "warning");
        assert_eq!(events[0].event.reason, "rule skipped collector=\"audit\"");
        assert_eq!(events[1].log.level, "error");
        assert_eq!(events[1].error.message, "EPERM");
    }

    #[test]
    fn a_full_control_queue_never_blocks_logging() {
        let (tx, _rx) = bounded(1);
        let subscriber = tracing_subscriber::registry().with(EventLayer::new(tx));
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..100 {
                tracing::warn!(i, "many warnings");
            }
        });
    }

    #[test]
    fn the_log_file_rotates_by_size_and_keeps_three() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let mut log = LogFile::open(&path).unwrap();
        let line = vec![b'x'; 1024 * 1024];
        for _ in 0..(MAX_LOG_SIZE / line.len() as u64 + 1) * 5 {
            log.write_all(&line).unwrap();
        }
        log.flush().unwrap();
        for n in 1..=KEEP_ROTATED {
            let size = std::fs::metadata(rotated(&path, n)).unwrap().len();
            assert!(size >= MAX_LOG_SIZE, "agent.log.{n}: {size}");
        }
        assert!(!rotated(&path, KEEP_ROTATED + 1).exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= MAX_LOG_SIZE);
    }
}
