//! One update check, from the manifest download to the swap, with every decision logged.

use std::path::{Path, PathBuf};

use agent_config::{IntakeUrl, Region};
use semver::Version;

use crate::fetch::{FetchError, HttpSettings, HttpsClient};
use crate::manifest::{hex, Manifest, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES};
use crate::policy::{decide, Refusal, Request, Verdict};
use crate::state::{StateError, Step};
use crate::swap::{swap, Layout, Release, Stager, SwapError};
use crate::trust::{TrustError, TrustedKeys};

/// The release channel agents follow unless told otherwise.
pub const DEFAULT_CHANNEL: &str = "stable";

/// The file a .deb or .rpm package installs beside the binary: such installs are updated by
/// the package manager, never by the agent itself.
pub const PACKAGED_MARKER: &str = ".packaged";

/// The update endpoint of a region (the product's firewall prerequisites); `None` for
/// regions without one (`UpdateURL` must then be set).
pub fn region_endpoint(region: Region) -> Option<&'static str> {
    match region {
        Region::Fra1 => Some("https://api.sekoia.io"),
        Region::Fra2 => Some("https://fra2.app.sekoia.io"),
        Region::Mco1 => Some("https://mco1.app.sekoia.io"),
        Region::Uae1 => Some("https://app.uae1.sekoia.io"),
        _ => None,
    }
}

/// The marker file that says the installation of `binary` belongs to a package manager.
pub fn packaged_marker(binary: &Path) -> PathBuf {
    binary.with_file_name(PACKAGED_MARKER)
}

/// Where manifests are, under an update endpoint: `<endpoint>/endpoint-agent/<channel>/`
/// holds `manifest.json`, `manifest.json.minisig` and the artifacts (relative URLs).
pub fn channel_path(endpoint: &IntakeUrl, channel: &str) -> String {
    endpoint.path(&format!("/endpoint-agent/{channel}/"))
}

/// Everything one check needs.
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// Update endpoint (the region's, or `UpdateURL`).
    pub endpoint: IntakeUrl,
    /// Release channel.
    pub channel: String,
    /// The installation.
    pub layout: Layout,
    /// This agent's version.
    pub running: Version,
    /// The keys manifests must be signed with.
    pub keys: TrustedKeys,
    /// Proxy and TLS settings.
    pub http: HttpSettings,
    /// Target names to look for in the manifest, best first.
    pub targets: Vec<String>,
}

/// What a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The manifest offers the running version.
    UpToDate {
        /// The running version.
        version: Version,
        /// The manifest's serial.
        serial: u64,
    },
    /// A new binary was swapped in; it runs at the next start of the agent, and must then
    /// confirm itself healthy or it is rolled back.
    Installed {
        /// The version that was running.
        from: Version,
        /// The version installed.
        to: Version,
        /// The manifest's serial.
        serial: u64,
        /// Whether it went back to an older version.
        downgrade: bool,
    },
}

/// Why a check installed nothing. The installed binary is untouched after every one.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Installed from a package: the package manager updates it.
    #[error("this agent was installed from a package ({marker} exists): update it with the package manager (apt, dnf, ...), not with `agent update`")]
    PackageManaged {
        /// The marker file found.
        marker: PathBuf,
    },
    /// A previous update waits for its health confirmation.
    #[error("version {to} was installed and has not confirmed itself healthy yet; try again once it has (or was rolled back)")]
    Unconfirmed {
        /// The version on probation.
        to: Version,
    },
    /// A download failed.
    #[error("cannot download the {what} {url}: {source}")]
    Fetch {
        /// `manifest`, `signature` or `artifact`.
        what: &'static str,
        /// What was asked for.
        url: String,
        /// Why.
        source: Box<FetchError>,
    },
    /// The manifest is not trusted.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The manifest is trusted but refused.
    #[error("update refused: {0}")]
    Refused(#[from] Refusal),
    /// The download or the swap failed its checks.
    #[error("update refused: {0}")]
    Swap(#[from] SwapError),
    /// The update state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// The artifact URL in the manifest is unusable.
    #[error("the manifest's artifact URL `{0}` is not usable")]
    ArtifactUrl(String),
    /// The configuration does not say where updates come from, or says it wrongly.
    #[error("update settings: {0}")]
    Setting(String),
    /// The compiled-in keys are unusable (a build error, caught by the crate's tests).
    #[error("trusted keys: {0}")]
    Keys(String),
    /// The async runtime could not start.
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
}

impl UpdaterConfig {
    /// The agent's update settings from its `config.yaml`: the endpoint (`UpdateURL`, else
    /// the region's), the proxy (`HTTPProxyURL`, else the environment's, as the intake) and
    /// the extra CA file, the release keys compiled into this build, the `stable` channel.
    pub fn from_agent_config(
        config: &agent_config::Config,
        binary: PathBuf,
        state_dir: &Path,
        running: Version,
        extra_ca_file: Option<PathBuf>,
    ) -> Result<UpdaterConfig, UpdateError> {
        let configured = config
            .update_endpoint()
            .map_err(|e| UpdateError::Setting(e.to_string()))?;
        let endpoint = match configured {
            Some(url) => url,
            None => {
                let region = config.region.unwrap_or_default();
                region_endpoint(region)
                    .ok_or_else(|| {
                        UpdateError::Setting(format!(
                            "no update endpoint is known for region {region}; set UpdateURL"
                        ))
                    })?
                    .parse::<IntakeUrl>()
                    .map_err(|e| UpdateError::Setting(e.to_string()))?
            }
        };
        let proxy = config
            .proxy()
            .map_err(|e| UpdateError::Setting(e.to_string()))?;
        let keys = TrustedKeys::release().map_err(|e| UpdateError::Keys(e.to_string()))?;
        Ok(UpdaterConfig {
            endpoint,
            channel: DEFAULT_CHANNEL.to_owned(),
            layout: Layout::new(binary, state_dir),
            running,
            keys,
            http: HttpSettings {
                proxy,
                extra_ca_file,
                ..HttpSettings::default()
            },
            targets: crate::manifest::target_names(),
        })
    }

    /// Runs one check on a current-thread runtime of its own (for `agent update`).
    pub fn check_blocking(&self, request: &Request) -> Result<Outcome, UpdateError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(UpdateError::Runtime)?;
        rt.block_on(self.check(request))
    }

    /// Checks for a release and installs it when every check passes. Logs each decision;
    /// refusals as warnings (which the agent log also sends as agent-log events).
    pub async fn check(&self, request: &Request) -> Result<Outcome, UpdateError> {
        let result = self.check_inner(request).await;
        match &result {
            Ok(Outcome::UpToDate { version, serial }) => {
                tracing::info!(version = %version, serial, channel = %self.channel, "update check: up to date")
            }
            Ok(Outcome::Installed {
                from,
                to,
                serial,
                downgrade,
            }) => {
                tracing::info!(from = %from, to = %to, serial, downgrade, "update check: new version installed; it runs from the next start")
            }
            Err(UpdateError::PackageManaged { marker }) => {
                tracing::info!(marker = %marker.display(), "update check skipped: installed from a package")
            }
            Err(e) => {
                tracing::warn!(error = %e, running = %self.running, "update check: nothing installed")
            }
        }
        result
    }

    async fn check_inner(&self, request: &Request) -> Result<Outcome, UpdateError> {
        let marker = packaged_marker(&self.layout.binary);
        if marker.exists() {
            return Err(UpdateError::PackageManaged { marker });
        }
        let state = self.layout.load()?;
        if let Some(j) = &state.journal {
            if j.step == Step::Swapped {
                return Err(UpdateError::Unconfirmed { to: j.to.clone() });
            }
        }
        let client = HttpsClient::new(self.http.clone()).map_err(|source| UpdateError::Fetch {
            what: "manifest",
            url: self.endpoint.to_string(),
            source: Box::new(source),
        })?;
        let dir = channel_path(&self.endpoint, &self.channel);
        let manifest_path = format!("{dir}manifest.json");
        let fetch_err = |what, path: &str| {
            let url = format!("https://{}{path}", self.endpoint.authority());
            move |source| UpdateError::Fetch {
                what,
                url,
                source: Box::new(source),
            }
        };
        tracing::info!(url = %format!("https://{}{manifest_path}", self.endpoint.authority()), "checking for an agent update");
        let manifest_bytes = client
            .get_small(&self.endpoint, &manifest_path, MAX_MANIFEST_BYTES as u64)
            .await
            .map_err(fetch_err("manifest", &manifest_path))?;
        let sig_path = format!("{manifest_path}.minisig");
        let signature = client
            .get_small(&self.endpoint, &sig_path, MAX_SIGNATURE_BYTES as u64)
            .await
            .map_err(fetch_err("signature", &sig_path))?;
        let manifest = self.keys.verify(&manifest_bytes, &signature)?;
        tracing::info!(serial = manifest.serial, version = %manifest.version, channel = %manifest.channel, "update manifest signature verified");

        let now = time::OffsetDateTime::now_utc();
        let target = match decide(
            &manifest,
            &self.targets,
            &self.running,
            state.accepted.as_ref(),
            now,
            request,
        )? {
            Verdict::UpToDate => {
                return Ok(Outcome::UpToDate {
                    version: self.running.clone(),
                    serial: manifest.serial,
                })
            }
            Verdict::Install { target, downgrade } => (target, downgrade),
        };
        let (target, downgrade) = target;
        self.download(&client, &manifest, &target, &dir).await?;
        let release = Release {
            from: self.running.clone(),
            to: target.version.clone(),
            serial: manifest.serial,
        };
        swap(&self.layout, &release)?;
        Ok(Outcome::Installed {
            from: release.from,
            to: release.to,
            serial: release.serial,
            downgrade,
        })
    }

    async fn download(
        &self,
        client: &HttpsClient,
        manifest: &Manifest,
        target: &crate::Target,
        dir: &str,
    ) -> Result<(), UpdateError> {
        let (server, path) = if target.url.starts_with("https://") {
            let url: IntakeUrl = target
                .url
                .parse()
                .map_err(|_| UpdateError::ArtifactUrl(target.url.clone()))?;
            let path = url.path("");
            (url, path)
        } else {
            (self.endpoint.clone(), format!("{dir}{}", target.url))
        };
        tracing::info!(version = %target.version, size = target.size, sha256 = %hex(&target.sha256), serial = manifest.serial, "downloading the update");
        let mut stager = Stager::create(&self.layout, target)?;
        let mut refused: Option<SwapError> = None;
        let fetched = client
            .get(&server, &path, target.size, &mut |chunk| {
                stager.write(chunk).map_err(|e| {
                    let text = e.to_string();
                    refused = Some(e);
                    text
                })
            })
            .await;
        if let Err(e) = fetched {
            stager.discard();
            return Err(match (refused, e) {
                (Some(swap), _) => UpdateError::Swap(swap),
                (None, FetchError::TooLarge(limit)) => {
                    UpdateError::Swap(SwapError::Oversize { expected: limit })
                }
                (None, source) => UpdateError::Fetch {
                    what: "artifact",
                    url: format!("https://{}{path}", server.authority()),
                    source: Box::new(source),
                },
            });
        }
        stager.finish()?;
        tracing::info!(version = %target.version, "update downloaded: size, SHA-256 and --version check passed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> agent_config::Config {
        agent_config::Config::from_str_named(yaml, "config.yaml")
            .unwrap()
            .0
    }

    fn endpoint(yaml: &str) -> Result<String, UpdateError> {
        UpdaterConfig::from_agent_config(
            &config(yaml),
            "/opt/endpoint-agent/agent".into(),
            Path::new("/var/lib/endpoint-agent"),
            Version::new(0, 1, 0),
            None,
        )
        .map(|u| u.endpoint.to_string())
    }

    #[test]
    fn the_endpoint_is_the_regions_unless_update_url_says_otherwise() {
        assert_eq!(endpoint("{}").unwrap(), "https://api.sekoia.io");
        assert_eq!(
            endpoint("Region: fra2").unwrap(),
            "https://fra2.app.sekoia.io"
        );
        assert_eq!(
            endpoint("Region: mco1").unwrap(),
            "https://mco1.app.sekoia.io"
        );
        assert_eq!(
            endpoint("Region: uae1").unwrap(),
            "https://app.uae1.sekoia.io"
        );
        assert_eq!(
            endpoint("Region: usa1\nUpdateURL: https://mirror.example:8443/agent/").unwrap(),
            "https://mirror.example:8443/agent"
        );
        let err = endpoint("Region: usa1").unwrap_err().to_string();
        assert!(err.contains("set UpdateURL"), "{err}");
        let u: IntakeUrl = "https://mirror.example/agent".parse().unwrap();
        assert_eq!(channel_path(&u, "stable"), "/agent/endpoint-agent/stable/");
    }

    #[test]
    fn the_packaged_marker_is_beside_the_binary() {
        assert_eq!(
            packaged_marker(Path::new("/opt/endpoint-agent/agent")),
            Path::new("/opt/endpoint-agent/.packaged")
        );
    }
}
