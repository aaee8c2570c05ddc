//! Which collectors run: every collector the config and the OS call for, from one list.
//! Adding a collector is one crate implementing [`agent_pipeline::Collector`] plus one
//! entry here (see docs/architecture.md).

use std::path::Path;

use agent_config::Config;
use agent_pipeline::Collector;

/// The collectors to start, in start order (stopped in reverse).
pub fn planned(config: &Config, state_dir: &Path) -> Vec<Box<dyn Collector>> {
    let mut list: Vec<Box<dyn Collector>> = Vec::new();
    if !config.logfiles.is_empty() {
        list.push(Box::new(agent_logfile::LogfileCollector::new(
            logfile_specs(config),
            state_dir.join("logfile"),
            agent_logfile::Options::default(),
        )));
    }
    #[cfg(target_os = "linux")]
    if config.has_role("event-collector") {
        list.push(Box::new(agent_linux_audit::AuditCollector::new(
            audit_config(config),
        )));
    }
    // `EnableDNSResolutions: true`: DNS resolution events from packet capture.
    #[cfg(target_os = "linux")]
    if config.enable_dns_resolutions {
        list.push(Box::new(agent_dns::DnsCollector::new(
            agent_dns::DnsConfig::default(),
        )));
    }
    #[cfg(windows)]
    if config.has_role("event-collector") {
        list.push(Box::new(agent_etw::EtwCollector::new(
            agent_etw::EtwConfig {
                hash_policy: agent_host::HashPolicy::new(
                    config.hashes_excluded_paths.iter().cloned(),
                    agent_host::HashPolicy::DEFAULT_MAX_SIZE,
                ),
                ..agent_etw::EtwConfig::default()
            },
        )));
    }
    // Security, Defender, Sysmon and System Event Log channels; bookmarks in the state
    // directory.
    #[cfg(windows)]
    if config.has_role("event-collector") {
        list.push(Box::new(agent_etw::eventlog::EventLogCollector::new(
            agent_etw::eventlog::EventLogConfig::new(state_dir.join("eventlog")),
        )));
    }
    #[cfg(target_os = "macos")]
    if config.has_role("event-collector") {
        list.push(Box::new(agent_macos_es::MacosEsCollector::new(
            agent_macos_es::EsSettings {
                hash_policy: agent_host::HashPolicy::new(
                    config.hashes_excluded_paths.iter().cloned(),
                    agent_host::HashPolicy::DEFAULT_MAX_SIZE,
                ),
                ..agent_macos_es::EsSettings::default()
            },
        )));
    }
    // Endpoint Security has no network events: TCP connections and DNS answers come
    // from /dev/bpf.
    #[cfg(target_os = "macos")]
    if config.has_role("event-collector") || config.enable_dns_resolutions {
        list.push(Box::new(agent_macos_es::MacosNetCollector::new(
            agent_macos_es::NetSettings {
                tcp: config.has_role("event-collector"),
                dns: config.enable_dns_resolutions,
            },
        )));
    }
    list
}

fn logfile_specs(config: &Config) -> Vec<agent_logfile::WatchSpec> {
    config
        .logfiles
        .iter()
        .map(|l| agent_logfile::WatchSpec {
            pattern: l.filepath.clone(),
            intake_key: l.intakekey.clone(),
        })
        .collect()
}

/// Hashing honours `HashesExcludedPaths`; `ENDPOINT_AGENT_AUDIT_RULES` replaces the
/// default rule set (benchmarks, operators with rules of their own).
#[cfg(target_os = "linux")]
fn audit_config(config: &Config) -> agent_linux_audit::collector::CollectorConfig {
    use agent_linux_audit::collector::{CollectorConfig, RulesSource};
    CollectorConfig {
        hash_policy: agent_host::HashPolicy::new(
            config.hashes_excluded_paths.iter().cloned(),
            agent_host::HashPolicy::DEFAULT_MAX_SIZE,
        ),
        rules: std::env::var_os("ENDPOINT_AGENT_AUDIT_RULES")
            .map_or(RulesSource::Default, |p| RulesSource::File(p.into())),
        ..CollectorConfig::default()
    }
}
