//! Sleeping until log files may have changed: inotify on Linux, a plain timer elsewhere.

/// Why [`Waiter::wait`] returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Wake {
    /// Directory entries changed (create, rename, delete): re-expand the patterns now.
    pub(crate) rescan: bool,
}

#[cfg(target_os = "linux")]
pub(crate) use linux::Waiter;
#[cfg(not(target_os = "linux"))]
pub(crate) use polling::Waiter;

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{HashMap, HashSet};
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

    use super::Wake;

    /// inotify watches on the directories holding (or about to hold) watched files.
    /// Watching directories rather than files covers writes, creations and renames with
    /// one watch per directory. Falls back to sleeping if inotify is unavailable.
    #[derive(Debug)]
    pub(crate) struct Waiter {
        inotify: Option<Inotify>,
        dirs: HashSet<PathBuf>,
        by_wd: HashMap<WatchDescriptor, PathBuf>,
        buf: Vec<u8>,
    }

    impl Waiter {
        pub(crate) fn new() -> Self {
            let inotify = Inotify::init()
                .inspect_err(
                    |e| tracing::warn!(error = %e, "inotify unavailable; polling log files"),
                )
                .ok();
            Self {
                inotify,
                dirs: HashSet::new(),
                by_wd: HashMap::new(),
                buf: vec![0; 16 * 1024],
            }
        }

        pub(crate) fn watch_dir(&mut self, dir: &Path) {
            let Some(inotify) = &self.inotify else { return };
            if self.dirs.contains(dir) {
                return;
            }
            let mask = WatchMask::MODIFY
                | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::MOVED_FROM
                | WatchMask::MOVED_TO
                | WatchMask::ONLYDIR;
            // A missing directory is retried at the next scan.
            if let Ok(wd) = inotify.watches().add(dir, mask) {
                self.dirs.insert(dir.to_owned());
                self.by_wd.insert(wd, dir.to_owned());
            }
        }

        pub(crate) fn wait(&mut self, timeout: Duration) -> Wake {
            let Some(inotify) = &mut self.inotify else {
                std::thread::sleep(timeout);
                return Wake::default();
            };
            let mut pfd = libc::pollfd {
                fd: inotify.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: `pfd` is a valid, initialised pollfd that lives across the call and
            // nfds = 1 matches it; the fd is owned by `inotify`, which outlives the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
            let mut wake = Wake::default();
            if ready <= 0 {
                return wake;
            }
            loop {
                let events = match inotify.read_events(&mut self.buf) {
                    Ok(events) => events,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading inotify events failed");
                        wake.rescan = true;
                        break;
                    }
                };
                for event in events {
                    if event.mask.intersects(
                        EventMask::CREATE
                            | EventMask::DELETE
                            | EventMask::MOVED_FROM
                            | EventMask::MOVED_TO
                            | EventMask::Q_OVERFLOW,
                    ) {
                        wake.rescan = true;
                    }
                    if event.mask.contains(EventMask::IGNORED) {
                        // The directory is gone; watch it again once it reappears.
                        if let Some(dir) = self.by_wd.remove(&event.wd) {
                            self.dirs.remove(&dir);
                        }
                        wake.rescan = true;
                    }
                }
            }
            wake
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod polling {
    use std::path::Path;
    use std::time::Duration;

    use super::Wake;

    /// Portable fallback: sleep for the timeout; the tailer then checks every open file.
    #[derive(Debug, Default)]
    pub(crate) struct Waiter;

    impl Waiter {
        pub(crate) fn new() -> Self {
            Self
        }

        pub(crate) fn watch_dir(&mut self, _dir: &Path) {}

        pub(crate) fn wait(&mut self, timeout: Duration) -> Wake {
            std::thread::sleep(timeout);
            Wake::default()
        }
    }
}
