//! The DNS collector behind the agent's collector contract ([`agent_pipeline::Collector`]):
//! a capture thread that reads the packet socket, decodes, and hands events to the sink.
//! Packet-fed, so the sink drops (and counts) rather than stall the socket; what the kernel
//! drops when the socket buffer is full is the report's `source_lost`.

use std::time::Duration;

use agent_pipeline::{Collector, CollectorError, Overflow, Sink};

/// The collector's settings.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Repeats of the same answer within this window are one event with
    /// `sekoiaio.repeat.count` (zero: every response is an event).
    pub repeat_window: Duration,
    /// Name the process owning the client socket of each response, from `/proc`.
    pub attribute_processes: bool,
    /// Kernel receive buffer of the capture socket, bytes.
    pub receive_buffer: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            repeat_window: Duration::from_secs(1),
            attribute_processes: true,
            receive_buffer: 4 << 20,
        }
    }
}

/// DNS resolution events from packet capture (Linux). See the crate documentation.
#[derive(Debug)]
pub struct DnsCollector {
    config: DnsConfig,
    #[cfg(target_os = "linux")]
    running: Option<linux::Running>,
}

impl DnsCollector {
    /// A collector with `config`; nothing is opened before [`Collector::start`].
    pub fn new(config: DnsConfig) -> DnsCollector {
        DnsCollector {
            config,
            #[cfg(target_os = "linux")]
            running: None,
        }
    }
}

impl Collector for DnsCollector {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn overflow(&self) -> Overflow {
        Overflow::Drop
    }

    #[cfg(target_os = "linux")]
    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        let running = linux::start(&self.config, sink)?;
        self.running = Some(running);
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        let _ = &self.config;
        let reason = "DNS capture is implemented on Linux only";
        sink.report().fail(reason);
        Err(CollectorError::msg(reason))
    }

    fn stop(&mut self) -> Result<(), CollectorError> {
        #[cfg(target_os = "linux")]
        if let Some(running) = self.running.take() {
            running.stop()?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use agent_event::Timestamp;
    use agent_pipeline::{CollectorError, CollectorState, Sink, SinkError};

    use super::DnsConfig;
    use crate::capture::Capture;
    use crate::decoder::{Attribution, Decoder, DecoderOptions, FrameMeta, NoAttribution};
    use crate::frame::LinkType;
    use crate::procnet::ProcAttribution;

    /// How long the thread waits for a frame before it looks at the clock and the stop flag.
    const POLL: Duration = Duration::from_millis(100);
    /// `agent status`'s note on the collector.
    const MODE: &str = "AF_PACKET with a kernel BPF filter, all interfaces";
    /// How often the kernel's drop counter is read.
    const DROPS_EVERY: Duration = Duration::from_secs(1);

    #[derive(Debug)]
    pub(super) struct Running {
        stop: Arc<AtomicBool>,
        thread: JoinHandle<()>,
    }

    impl Running {
        pub(super) fn stop(self) -> Result<(), CollectorError> {
            self.stop.store(true, Ordering::Relaxed);
            self.thread
                .join()
                .map_err(|_| CollectorError::msg("the DNS capture thread panicked"))
        }
    }

    pub(super) fn start(config: &DnsConfig, sink: Sink) -> Result<Running, CollectorError> {
        let report = sink.report().clone();
        // Opened here, in the caller's thread, so that a missing CAP_NET_RAW is the start's
        // error and the socket belongs to the caller's network namespace.
        let capture = match Capture::open(config.receive_buffer) {
            Ok(c) => c,
            Err(e) => {
                report.fail(&e);
                return Err(CollectorError::new(e));
            }
        };
        let options = DecoderOptions {
            repeat_window_ms: u64::try_from(config.repeat_window.as_millis()).unwrap_or(u64::MAX),
            ..DecoderOptions::default()
        };
        let attribute = config.attribute_processes;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || {
                let mut attribution: Box<dyn Attribution> = if attribute {
                    Box::new(ProcAttribution::new())
                } else {
                    Box::new(NoAttribution)
                };
                let decoder = Decoder::new(LinkType::RawIp, options);
                run(capture, decoder, attribution.as_mut(), &sink, &thread_stop);
            })
            .map_err(CollectorError::new)?;
        report.set_mode(MODE);
        report.set_state(CollectorState::Running);
        Ok(Running { stop, thread })
    }

    fn run(
        capture: Capture,
        mut decoder: Decoder,
        attribution: &mut dyn Attribution,
        sink: &Sink,
        stop: &AtomicBool,
    ) {
        let report = sink.report();
        let mut buf = vec![0u8; 1 << 18];
        let mut out: Vec<Box<agent_event::Event>> = Vec::new();
        let mut last_drops = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match capture.recv(&mut buf, POLL) {
                Ok(Some(r)) => {
                    let meta = FrameMeta {
                        ts: Timestamp::now(),
                        loopback_outgoing: r.loopback_outgoing,
                    };
                    decoder.push_frame(&buf[..r.len], meta, attribution, &mut out);
                    // Drain what is queued before looking at the clock again.
                    while let Ok(Some(r)) = capture.recv_now(&mut buf) {
                        let meta = FrameMeta {
                            ts: Timestamp::now(),
                            loopback_outgoing: r.loopback_outgoing,
                        };
                        decoder.push_frame(&buf[..r.len], meta, attribution, &mut out);
                        if out.len() >= 64 {
                            break;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the DNS capture stopped");
                    report.fail(&e);
                    break;
                }
            }
            decoder.tick(Timestamp::now(), &mut out);
            if send_all(sink, &mut out).is_err() {
                return;
            }
            if last_drops.elapsed() >= DROPS_EVERY {
                last_drops = Instant::now();
                if let Ok(n) = capture.take_drops() {
                    if n > 0 {
                        report.add_source_lost(n);
                    }
                }
                let s = decoder.stats();
                let skipped = s.malformed_frames + s.malformed_messages + s.fragments + s.tcp_lost;
                if skipped > 0 {
                    report.set_mode(format!(
                        "{MODE}; skipped: {} malformed, {} IP fragments, {} TCP streams cut",
                        s.malformed_frames + s.malformed_messages,
                        s.fragments,
                        s.tcp_lost
                    ));
                }
            }
        }
        decoder.finish(&mut out);
        let _ = send_all(sink, &mut out);
        let s = decoder.stats();
        tracing::info!(
            frames = s.frames,
            responses = s.responses,
            events = s.events,
            repeats = s.repeats,
            malformed = s.malformed_messages + s.malformed_frames,
            fragments = s.fragments,
            tcp_lost = s.tcp_lost,
            "DNS capture stopped"
        );
        if report.state() == CollectorState::Running {
            report.set_state(CollectorState::Stopped);
        }
    }

    fn send_all(sink: &Sink, out: &mut Vec<Box<agent_event::Event>>) -> Result<(), SinkError> {
        for e in out.drain(..) {
            sink.send(e)?;
        }
        Ok(())
    }
}
