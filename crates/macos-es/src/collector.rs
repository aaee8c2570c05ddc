//! The Endpoint Security collector behind the agent's collector contract
//! ([`agent_pipeline::Collector`]). The type exists on every OS so that the agent's wiring
//! compiles everywhere; outside macOS, `start` fails with [`EsError::Unsupported`].

use agent_host::HashPolicy;
use agent_pipeline::{Collector, CollectorError, Overflow, Sink};

use crate::mapper::FileScope;

/// The collector's settings (it does not read `config.yaml` itself).
#[derive(Debug, Clone)]
pub struct EsSettings {
    /// Which files are hashed (`HashesExcludedPaths`, size limit).
    pub hash_policy: HashPolicy,
    /// Which file events are kept.
    pub file_scope: FileScope,
    /// Messages waiting between the ES callback and the mapping thread; beyond that they
    /// are dropped and counted (ES must never wait for the agent).
    pub queue: usize,
    /// Also subscribe to `write`: one event per `write(2)` call. Off by default: `close`
    /// of a modified file reports every change once, with the final content to hash.
    pub subscribe_write: bool,
    /// Paths muted for file events besides [`crate::mapper::default_muted_paths`].
    pub extra_muted_paths: Vec<String>,
}

impl Default for EsSettings {
    fn default() -> Self {
        EsSettings {
            hash_policy: HashPolicy::new(Vec::<String>::new(), HashPolicy::DEFAULT_MAX_SIZE),
            file_scope: FileScope::default(),
            queue: 4096,
            subscribe_write: false,
            extra_muted_paths: Vec::new(),
        }
    }
}

/// Why the collector could not start; the messages say what the user must do.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// Not macOS.
    #[error("the Endpoint Security collector runs on macOS only")]
    Unsupported,
    /// Endpoint Security serves root only.
    #[error(
        "Endpoint Security requires root: run the agent as root (it is installed as the \
         launchd daemon system/SEKOIAEndpointAgent; start it with \
         `sudo launchctl kickstart system/SEKOIAEndpointAgent`)"
    )]
    NotRoot,
    /// The executable is not signed with the ES entitlement.
    #[error(
        "the agent's executable lacks the com.apple.developer.endpoint-security.client \
         entitlement: run the signed /Applications/SekoiaEndpointAgent.app/Contents/MacOS/SekoiaEndpointAgent \
         from the product's package, not a copy or an unsigned build"
    )]
    NotEntitled,
    /// Transparency, Consent and Control refused: no Full Disk Access.
    #[error(
        "Endpoint Security refused the agent because it does not have Full Disk Access: \
         open System Settings > Privacy & Security > Full Disk Access, add and enable \
         /Applications/SekoiaEndpointAgent.app (or deploy a PPPC profile granting \
         SystemPolicyAllFiles to io.sekoia.endpoint-agent through your MDM), then restart \
         the agent with `sudo launchctl kickstart -k system/SEKOIAEndpointAgent`"
    )]
    NoFullDiskAccess,
    /// The system-wide limit of ES clients is reached.
    #[error(
        "too many Endpoint Security clients are connected (a system-wide limit): stop \
         another security tool's client, then restart the agent"
    )]
    TooManyClients,
    /// Any other failure of Endpoint Security.
    #[error("Endpoint Security: {0}")]
    Internal(String),
    /// A thread could not be started.
    #[error("cannot start the collector's thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The macOS collector; see the crate documentation.
#[derive(Debug)]
pub struct MacosEsCollector {
    settings: EsSettings,
    #[cfg(target_os = "macos")]
    running: Option<crate::es::Running>,
}

impl MacosEsCollector {
    /// A collector that will start with `settings`.
    pub fn new(settings: EsSettings) -> Self {
        MacosEsCollector {
            settings,
            #[cfg(target_os = "macos")]
            running: None,
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &EsSettings {
        &self.settings
    }
}

impl Collector for MacosEsCollector {
    fn name(&self) -> &'static str {
        "macos-es"
    }

    fn overflow(&self) -> Overflow {
        Overflow::Drop
    }

    #[cfg(target_os = "macos")]
    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        let report = sink.report().clone();
        let running = crate::es::start(&self.settings, sink).map_err(CollectorError::new)?;
        report.set_state(agent_pipeline::CollectorState::Running);
        tracing::info!(
            events = running.subscribed(),
            "Endpoint Security collector started"
        );
        self.running = Some(running);
        Ok(())
    }

    #[cfg(not(target_os = "macos"))]
    fn start(&mut self, _sink: Sink) -> Result<(), CollectorError> {
        Err(CollectorError::new(EsError::Unsupported))
    }

    #[cfg(target_os = "macos")]
    fn stop(&mut self) -> Result<(), CollectorError> {
        if let Some(running) = self.running.take() {
            running.stop();
        }
        Ok(())
    }

    #[cfg(not(target_os = "macos"))]
    fn stop(&mut self) -> Result<(), CollectorError> {
        Ok(())
    }
}

/// Settings of [`MacosNetCollector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetSettings {
    /// Report TCP connections (the role `event-collector`).
    pub tcp: bool,
    /// Report DNS answers (`EnableDNSResolutions`).
    pub dns: bool,
}

/// Why the packet reader could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Not macOS.
    #[error("the macOS network collector runs on macOS only")]
    Unsupported,
    /// `/dev/bpf*` is root's.
    #[error("reading /dev/bpf requires root: run the agent as root (launchd daemon system/SEKOIAEndpointAgent)")]
    NotRoot,
    /// No device could be opened or set up.
    #[error("cannot capture packets on /dev/bpf*: {0}")]
    Device(#[source] std::io::Error),
    /// No interface is up.
    #[error("no network interface is up")]
    NoInterface,
    /// The reader thread could not be started.
    #[error("cannot start the collector's thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// TCP connections and DNS answers on macOS, from `/dev/bpf` (Endpoint Security has no
/// network events); see [`crate::net`]. `macos-net` in `agent status`.
#[derive(Debug)]
pub struct MacosNetCollector {
    settings: NetSettings,
    #[cfg(target_os = "macos")]
    running: Option<crate::capture::Running>,
}

impl MacosNetCollector {
    /// A collector that will start with `settings`.
    pub fn new(settings: NetSettings) -> Self {
        MacosNetCollector {
            settings,
            #[cfg(target_os = "macos")]
            running: None,
        }
    }
}

impl Collector for MacosNetCollector {
    fn name(&self) -> &'static str {
        "macos-net"
    }

    fn overflow(&self) -> Overflow {
        Overflow::Drop
    }

    #[cfg(target_os = "macos")]
    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        let report = sink.report().clone();
        let running = crate::capture::start(&self.settings, sink).map_err(CollectorError::new)?;
        report.set_state(agent_pipeline::CollectorState::Running);
        self.running = Some(running);
        Ok(())
    }

    #[cfg(not(target_os = "macos"))]
    fn start(&mut self, _sink: Sink) -> Result<(), CollectorError> {
        let _ = self.settings;
        Err(CollectorError::new(NetError::Unsupported))
    }

    #[cfg(target_os = "macos")]
    fn stop(&mut self) -> Result<(), CollectorError> {
        if let Some(running) = self.running.take() {
            running.stop();
        }
        Ok(())
    }

    #[cfg(not(target_os = "macos"))]
    fn stop(&mut self) -> Result<(), CollectorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_tell_the_user_what_to_grant_and_where() {
        let fda = EsError::NoFullDiskAccess.to_string();
        assert!(fda.contains("System Settings > Privacy & Security > Full Disk Access"));
        assert!(fda.contains("/Applications/SekoiaEndpointAgent.app"));
        assert!(EsError::NotEntitled
            .to_string()
            .contains("com.apple.developer.endpoint-security.client"));
        assert!(EsError::NotRoot.to_string().contains("root"));
    }

    #[cfg(not(target_os = "macos"))]
    #[test]
    fn outside_macos_start_fails_clearly_and_stop_is_harmless() {
        let mut c = MacosEsCollector::new(EsSettings::default());
        assert_eq!(c.name(), "macos-es");
        assert_eq!(c.overflow(), Overflow::Drop);
        let (sink, _rx) = Sink::channel("macos-es", 1, Overflow::Drop);
        let err = c.start(sink).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Endpoint Security collector runs on macOS only"
        );
        c.stop().unwrap();
        let mut n = MacosNetCollector::new(NetSettings {
            tcp: true,
            dns: true,
        });
        assert_eq!(n.name(), "macos-net");
        let (sink, _rx) = Sink::channel("macos-net", 1, Overflow::Drop);
        assert_eq!(
            n.start(sink).unwrap_err().to_string(),
            "the macOS network collector runs on macOS only"
        );
        n.stop().unwrap();
    }
}
