//! config.yaml as the installer writes it: the install-time settings (intake key, region,
//! intake URL, auto-update) merged over a seed `config.yaml` from the current directory and,
//! on a reinstall, over the installed file. Schema and validation belong to `agent-config`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use agent_config::{validate_intake_key, Config, ConfigError, Region, UnknownRegion};
use serde_yaml::{Mapping, Value};

/// The install-time settings given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRequest {
    /// `IntakeKey`.
    pub intake_key: String,
    /// `Region`; `None` keeps the seed's or installed one, else `fra1`.
    pub region: Option<String>,
    /// `IntakeURL`; `None` keeps the seed's or installed one, if any.
    pub intake_url: Option<String>,
    /// `AutoUpdate`; `None` keeps the seed's or installed one, else on.
    pub auto_update: Option<bool>,
}

/// Why the settings cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The intake key is malformed.
    #[error("invalid intake key: {0}")]
    IntakeKey(String),
    /// The region is unknown.
    #[error("invalid region: {0}")]
    Region(#[from] UnknownRegion),
    /// The seed or installed config.yaml is unreadable or invalid (message names the file,
    /// line and column).
    #[error("{0}")]
    File(ConfigError),
    /// The merged settings do not validate (e.g. a malformed `--intake-url`).
    #[error("invalid install settings: {0}")]
    Settings(ConfigError),
    /// A config file is valid YAML but not a mapping of keys.
    #[error("{}: the file must be a mapping of keys", .0.display())]
    NotAMapping(PathBuf),
}

/// Validates the request and returns the config.yaml text to install, with warnings to show
/// (unknown keys in the merged files, which are not carried over). Later sources win:
/// `installed`, then `seed`, then the request.
pub fn render(
    request: &ConfigRequest,
    seed: Option<&Path>,
    installed: Option<&Path>,
) -> Result<(String, Vec<String>), ConfigFileError> {
    validate_intake_key(&request.intake_key).map_err(ConfigFileError::IntakeKey)?;
    let region = request
        .region
        .as_deref()
        .map(Region::from_str)
        .transpose()?;

    let mut merged = Mapping::new();
    let mut warnings = Vec::new();
    for path in [installed, seed].into_iter().flatten() {
        let (_, file_warnings) = Config::load(path).map_err(ConfigFileError::File)?;
        warnings.extend(file_warnings.iter().map(ToString::to_string));
        for (k, v) in read_mapping(path)? {
            merged.insert(k, v);
        }
    }
    let mut set = |key: &str, value: Value| {
        merged.insert(Value::String(key.to_owned()), value);
    };
    set("IntakeKey", Value::String(request.intake_key.clone()));
    if let Some(region) = region {
        set("Region", Value::String(region.as_str().to_owned()));
    }
    if let Some(url) = &request.intake_url {
        set("IntakeURL", Value::String(url.clone()));
    }
    if let Some(on) = request.auto_update {
        set("AutoUpdate", Value::Bool(on));
    }

    let text = serde_yaml::to_string(&Value::Mapping(merged))
        .map_err(|e| ConfigFileError::Settings(ConfigError::Serialize(e)))?;
    let (mut config, _) =
        Config::from_str_named(&text, "install settings").map_err(ConfigFileError::Settings)?;
    // Written explicitly so that an administrator reading the file sees the region in use.
    config.region.get_or_insert(Region::default());
    let yaml = config.to_yaml().map_err(ConfigFileError::Settings)?;
    Ok((yaml, warnings))
}

fn read_mapping(path: &Path) -> Result<Mapping, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        ConfigFileError::File(ConfigError::Read {
            path: path.to_owned(),
            source,
        })
    })?;
    match serde_yaml::from_str::<Value>(&text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        // Config::load already accepted the file, so this is not reachable in practice.
        _ => Err(ConfigFileError::NotAMapping(path.to_owned())),
    }
}

/// The intake key of an installed config.yaml, if it can be read.
pub fn installed_intake_key(path: &Path) -> Option<String> {
    Config::load(path).ok().and_then(|(c, _)| c.intake_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY";

    fn request() -> ConfigRequest {
        ConfigRequest {
            intake_key: KEY.into(),
            region: None,
            intake_url: None,
            auto_update: None,
        }
    }

    fn parse(yaml: &str) -> Config {
        Config::from_str_named(yaml, "t").unwrap().0
    }

    #[test]
    fn defaults_are_written_explicitly() {
        let (yaml, warnings) = render(&request(), None, None).unwrap();
        let c = parse(&yaml);
        assert_eq!(c.intake_key.as_deref(), Some(KEY));
        assert_eq!(c.region, Some(Region::Fra1));
        assert!(c.auto_update);
        assert!(warnings.is_empty());
    }

    #[test]
    fn request_wins_over_seed_which_wins_over_installed() {
        let dir = tempfile::tempdir().unwrap();
        let installed = dir.path().join("installed.yaml");
        let seed = dir.path().join("seed.yaml");
        std::fs::write(
            &installed,
            "IntakeKey: old\nRegion: usa1\nAutoUpdate: false\nEnableDNSResolutions: true\n",
        )
        .unwrap();
        std::fs::write(&seed, "Region: mco1\nHTTPProxyURL: http://proxy:3128\n").unwrap();
        let req = ConfigRequest {
            region: Some("FRA2".into()),
            ..request()
        };
        let (yaml, _) = render(&req, Some(&seed), Some(&installed)).unwrap();
        let c = parse(&yaml);
        assert_eq!(c.intake_key.as_deref(), Some(KEY));
        assert_eq!(c.region, Some(Region::Fra2));
        assert_eq!(c.http_proxy_url.as_deref(), Some("http://proxy:3128"));
        assert!(c.enable_dns_resolutions);
        assert!(!c.auto_update, "kept from the installed file");
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let bad_key = ConfigRequest {
            intake_key: "a b".into(),
            ..request()
        };
        assert!(matches!(
            render(&bad_key, None, None),
            Err(ConfigFileError::IntakeKey(_))
        ));
        let bad_region = ConfigRequest {
            region: Some("mars1".into()),
            ..request()
        };
        assert!(matches!(
            render(&bad_region, None, None),
            Err(ConfigFileError::Region(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("config.yaml");
        std::fs::write(&seed, "HTTPProxyURL: [unclosed\n").unwrap();
        let err = render(&request(), Some(&seed), None).unwrap_err();
        assert!(err.to_string().contains("config.yaml"), "{err}");
    }
}
