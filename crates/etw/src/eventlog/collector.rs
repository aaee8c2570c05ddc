//! [`EventLogCollector`]: the collector contract over Event Log subscriptions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_os::ReplaceError;
use agent_pipeline::{Collector, CollectorError, Overflow, Sink};

use super::Channel;

/// Why the Event Log collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// Not on Windows: there is no Event Log.
    #[error("the Windows Event Log is only available on Windows")]
    Unsupported,
    /// `start` was called twice.
    #[error("the Event Log collector is already running")]
    AlreadyRunning,
    /// The bookmark directory could not be made.
    #[error("bookmark directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The reader thread could not be started.
    #[error("cannot start the Event Log thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Settings of the Event Log collector.
#[derive(Debug, Clone)]
pub struct EventLogConfig {
    /// Where the bookmark of each channel is kept (`<dir>/<channel>.xml`), so that a restart
    /// neither loses nor repeats records.
    pub bookmark_dir: PathBuf,
    /// The channels to read.
    pub channels: Vec<Channel>,
    /// How often a channel that does not exist (yet) is subscribed to again: Sysmon
    /// installed, Defender enabled while the agent runs.
    pub retry_interval: Duration,
    /// How long the reader waits for new records before it looks at the stop request and the
    /// missing channels again.
    pub poll_interval: Duration,
    /// Records read from a subscription at a time.
    pub batch: u32,
}

impl EventLogConfig {
    /// Every channel, bookmarks in `bookmark_dir`.
    pub fn new(bookmark_dir: impl Into<PathBuf>) -> EventLogConfig {
        EventLogConfig {
            bookmark_dir: bookmark_dir.into(),
            channels: Channel::ALL.to_vec(),
            retry_interval: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            batch: 64,
        }
    }
}

/// The Windows Event Log collector (`eventlog` in `agent status`): Security, Defender,
/// Sysmon and System channels, mapped by [`super::map_record`].
#[derive(Debug)]
pub struct EventLogCollector {
    config: EventLogConfig,
    #[cfg(windows)]
    running: Option<super::subscribe::Running>,
}

impl EventLogCollector {
    /// A collector with `config`; nothing runs before [`Collector::start`].
    pub fn new(config: EventLogConfig) -> EventLogCollector {
        EventLogCollector {
            config,
            #[cfg(windows)]
            running: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &EventLogConfig {
        &self.config
    }
}

impl Collector for EventLogCollector {
    fn name(&self) -> &'static str {
        "eventlog"
    }

    /// The Event Log keeps the records and the bookmark says where the agent is: waiting
    /// loses nothing (the bookmark only moves past records the sink took).
    fn overflow(&self) -> Overflow {
        Overflow::Wait
    }

    #[cfg(windows)]
    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        if self.running.is_some() {
            return Err(CollectorError::new(EventLogError::AlreadyRunning));
        }
        let report = sink.report().clone();
        match super::subscribe::Running::start(self.config.clone(), sink) {
            Ok(r) => {
                self.running = Some(r);
                report.set_state(agent_pipeline::CollectorState::Running);
                Ok(())
            }
            Err(e) => {
                report.fail(&e);
                Err(CollectorError::new(e))
            }
        }
    }

    #[cfg(not(windows))]
    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        sink.report().fail(EventLogError::Unsupported);
        Err(CollectorError::new(EventLogError::Unsupported))
    }

    fn stop(&mut self) -> Result<(), CollectorError> {
        #[cfg(windows)]
        if let Some(r) = self.running.take() {
            r.stop();
        }
        Ok(())
    }
}

/// The file name of a channel's bookmark in [`EventLogConfig::bookmark_dir`]: the channel
/// path with `/`, spaces and other characters Windows may refuse in names replaced by `_`.
pub fn bookmark_file_name(channel: Channel) -> String {
    let safe: String = channel
        .path()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.xml")
}

/// The saved bookmark of `channel` in `dir` (the XML `EvtRender(EvtRenderBookmark)` gave),
/// if there is a non-empty one.
pub fn load_bookmark(dir: &Path, channel: Channel) -> Option<String> {
    std::fs::read_to_string(dir.join(bookmark_file_name(channel)))
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Saves the bookmark of `channel` in `dir`, atomically: a crash leaves the old bookmark or
/// the new one, never a torn file.
pub fn store_bookmark(dir: &Path, channel: Channel, xml: &str) -> Result<(), ReplaceError> {
    agent_os::replace_file(
        &dir.join(bookmark_file_name(channel)),
        xml.as_bytes(),
        0o600,
    )
}

/// The collector's mode in `agent status`: the channels read, and those retried with why.
pub fn status_mode(reading: &[Channel], missing: &[(Channel, String)]) -> String {
    let reading: Vec<&str> = reading.iter().map(|c| c.path()).collect();
    let mut mode = if reading.is_empty() {
        "reading no channel".to_owned()
    } else {
        format!("reading {}", reading.join(", "))
    };
    if !missing.is_empty() {
        let waiting: Vec<String> = missing
            .iter()
            .map(|(c, why)| format!("{c} ({why})"))
            .collect();
        mode.push_str(&format!("; retrying {}", waiting.join(", ")));
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmark_names_are_plain_file_names() {
        assert_eq!(bookmark_file_name(Channel::Security), "Security.xml");
        assert_eq!(
            bookmark_file_name(Channel::Defender),
            "Microsoft-Windows-Windows_Defender_Operational.xml"
        );
    }

    #[test]
    fn bookmarks_survive_a_restart_and_empty_ones_do_not_count() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(load_bookmark(dir, Channel::Sysmon), None);
        let xml = "<BookmarkList>\r\n  <Bookmark Channel='Security' RecordId='2261' IsCurrent='true'/>\r\n</BookmarkList>";
        store_bookmark(dir, Channel::Security, xml).unwrap();
        assert_eq!(load_bookmark(dir, Channel::Security).as_deref(), Some(xml));
        // Replaced in place, no temporary file left beside it.
        store_bookmark(dir, Channel::Security, "<BookmarkList/>").unwrap();
        assert_eq!(
            load_bookmark(dir, Channel::Security).as_deref(),
            Some("<BookmarkList/>")
        );
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("Security.xml")]);
        std::fs::write(dir.join(bookmark_file_name(Channel::System)), " \n").unwrap();
        assert_eq!(load_bookmark(dir, Channel::System), None);
    }

    #[test]
    fn status_mode_names_missing_channels_and_why() {
        assert_eq!(
            status_mode(
                &[Channel::Security, Channel::System],
                &[
                    (Channel::Sysmon, "channel not found".into()),
                    (Channel::Defender, "Access is denied.".into())
                ]
            ),
            "reading Security, System; retrying Microsoft-Windows-Sysmon/Operational (channel not found), Microsoft-Windows-Windows Defender/Operational (Access is denied.)"
        );
        assert_eq!(
            status_mode(&[], &[(Channel::Security, "x".into())]),
            "reading no channel; retrying Security (x)"
        );
        assert_eq!(status_mode(&[Channel::Security], &[]), "reading Security");
    }

    #[cfg(not(windows))]
    #[test]
    fn outside_windows_start_fails_clearly_and_stop_is_harmless() {
        use agent_pipeline::CollectorState;
        let mut c = EventLogCollector::new(EventLogConfig::new("/nonexistent"));
        assert_eq!(c.name(), "eventlog");
        assert_eq!(c.overflow(), Overflow::Wait);
        assert_eq!(c.config().channels.len(), 4);
        let (sink, _rx) = Sink::channel("eventlog", 4, Overflow::Wait);
        let report = sink.report().clone();
        let err = c.start(sink).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Windows Event Log is only available on Windows"
        );
        assert!(matches!(report.state(), CollectorState::Failed(_)));
        c.stop().unwrap();
    }
}
