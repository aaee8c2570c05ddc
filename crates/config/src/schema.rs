//! The config.yaml schema: the keys users already write, spelled as they write them.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::SettingError;
use crate::intake::IntakeUrl;
use crate::proxy::ProxyUrl;
use crate::region::Region;

/// Role names the agent knows (`roles:`). An empty list means `event-collector`.
pub const KNOWN_ROLES: [&str; 2] = ["event-collector", "compliance-collector"];

/// The top-level keys of config.yaml, as users spell them.
pub const KNOWN_KEYS: [&str; 10] = [
    "logfiles",
    "HTTPProxyURL",
    "EnableDNSResolutions",
    "HashesExcludedPaths",
    "roles",
    "IntakeKey",
    "Region",
    "IntakeURL",
    "AutoUpdate",
    "UpdateURL",
];

/// The keys of one `logfiles` entry.
pub const LOGFILE_KEYS: [&str; 2] = ["filepath", "intakekey"];

/// The agent configuration (config.yaml). Load it with [`Config::load`] or
/// [`Config::from_str_named`], which also validate it; write it with [`Config::to_yaml`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Log files to tail (beta): each glob's lines go to its own intake key.
    #[serde(
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub logfiles: Vec<LogFile>,
    /// Proxy for all intake and update traffic, `http://[user:pass@]host:port`.
    /// Use [`Config::proxy`] for the parsed form.
    #[serde(
        rename = "HTTPProxyURL",
        deserialize_with = "strict::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub http_proxy_url: Option<String>,
    /// Linux: emit DNS resolution events.
    #[serde(
        rename = "EnableDNSResolutions",
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub enable_dns_resolutions: bool,
    /// No file hashing under these directories.
    #[serde(
        rename = "HashesExcludedPaths",
        deserialize_with = "strict::path_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hashes_excluded_paths: Vec<PathBuf>,
    /// Enabled roles (`event-collector`, `compliance-collector`). Empty means event-collector.
    #[serde(
        deserialize_with = "strict::string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub roles: Vec<String>,
    /// Intake key of the agent's own events (set at install time).
    #[serde(
        rename = "IntakeKey",
        deserialize_with = "strict::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub intake_key: Option<String>,
    /// Intake region (set at install time); `fra1` when absent.
    #[serde(rename = "Region", skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// Custom intake base URL, `https://` (on-premises relay, tests); overrides `Region`.
    /// Use [`Config::intake_endpoint`] for the parsed form.
    #[serde(
        rename = "IntakeURL",
        deserialize_with = "strict::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub intake_url: Option<String>,
    /// Whether the agent updates itself (set at install time); on by default.
    #[serde(rename = "AutoUpdate", deserialize_with = "true_if_null")]
    pub auto_update: bool,
    /// Custom update endpoint, `https://` (on-premises mirror, tests); overrides the
    /// region's. Read by agent-updater, which parses it.
    #[serde(
        rename = "UpdateURL",
        deserialize_with = "strict::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub update_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            logfiles: Vec::new(),
            http_proxy_url: None,
            enable_dns_resolutions: false,
            hashes_excluded_paths: Vec::new(),
            roles: Vec::new(),
            intake_key: None,
            region: None,
            intake_url: None,
            auto_update: true,
            update_url: None,
        }
    }
}

/// One `logfiles` entry: a glob of files whose lines are shipped as-is under `intakekey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFile {
    /// Glob of the files to tail (`*`, `?`, `[a-z]`; `**` is not supported).
    #[serde(deserialize_with = "strict::string")]
    pub filepath: String,
    /// Intake key of the format these lines are in.
    #[serde(deserialize_with = "strict::string")]
    pub intakekey: String,
}

impl Config {
    /// Where events are shipped: `IntakeURL` if set, else the region's intake (fra1 by
    /// default). The one parser of the intake URL: `config check` and the shipper both
    /// call it, so they accept and refuse the same values with the same message.
    pub fn intake_endpoint(&self) -> Result<IntakeUrl, SettingError> {
        match self.intake_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.parse().map_err(SettingError::IntakeUrl),
            _ => self
                .region
                .unwrap_or_default()
                .base_url()
                .parse()
                .map_err(SettingError::IntakeUrl),
        }
    }

    /// The configured proxy (`HTTPProxyURL`), parsed; `None` when unset or empty. Like
    /// [`Config::intake_endpoint`], shared by `config check` and the shipper.
    pub fn proxy(&self) -> Result<Option<ProxyUrl>, SettingError> {
        match self.http_proxy_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.parse().map(Some).map_err(SettingError::Proxy),
            _ => Ok(None),
        }
    }

    /// The custom update endpoint (`UpdateURL`), parsed like `IntakeURL`; `None` when unset
    /// or empty (the region's is used). Shared by `config check` and the updater.
    pub fn update_endpoint(&self) -> Result<Option<IntakeUrl>, SettingError> {
        match self.update_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.parse().map(Some).map_err(SettingError::UpdateUrl),
            _ => Ok(None),
        }
    }

    /// Whether `role` is enabled; an empty `roles` list enables `event-collector` only.
    pub fn has_role(&self, role: &str) -> bool {
        if self.roles.is_empty() {
            role == "event-collector"
        } else {
            self.roles.iter().any(|r| r == role)
        }
    }
}

/// YAML turns plain `12` or `true` into a string when asked for one; users who wrote
/// `HTTPProxyURL: 12` made a mistake, so string keys only accept string scalars.
mod strict {
    use std::fmt;
    use std::path::PathBuf;

    use serde::de::{Deserializer, Visitor};
    use serde::Deserialize;

    struct StrictString(String);

    impl<'de> Deserialize<'de> for StrictString {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = StrictString;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StrictString, E> {
                    Ok(StrictString(v.to_owned()))
                }
            }
            d.deserialize_any(V)
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(StrictString::deserialize(d)?.0)
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<StrictString>::deserialize(d)?.map(|s| s.0))
    }

    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(Option::<Vec<StrictString>>::deserialize(d)?
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.0)
            .collect())
    }

    pub fn path_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(string_list(d)?.into_iter().map(PathBuf::from).collect())
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `key:` with no value means "the default", as users expect from YAML.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn true_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}
