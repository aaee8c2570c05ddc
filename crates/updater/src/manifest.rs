//! The release manifest: which version each target should run, where to download it, and
//! the size and SHA-256 it must have.
//!
//! The manifest is a small JSON document, signed with minisign; its trusted comment repeats
//! the product, channel, serial and version (see [`TrustedComment`]) so that the values the
//! decision rests on are covered twice: by the signed JSON and by the signed comment.
//!
//! ```json
//! {
//!   "format": 1,
//!   "product": "endpoint-agent",
//!   "channel": "stable",
//!   "serial": 7,
//!   "version": "0.2.0",
//!   "expires": "2027-01-15T00:00:00Z",
//!   "min_from_version": "0.1.0",
//!   "targets": {
//!     "linux-x86_64": {
//!       "version": "0.2.0",
//!       "url": "linux-x86_64/agent-0.2.0",
//!       "size": 9437184,
//!       "sha256": "<64 hex digits>"
//!     }
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use serde::Deserialize;
use time::OffsetDateTime;

/// The only manifest format this agent reads.
pub const FORMAT: u32 = 1;
/// The product name manifests must carry.
pub const PRODUCT: &str = "endpoint-agent";
/// Largest manifest accepted, in bytes (a real one is about 1 KiB).
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Largest signature file accepted, in bytes (a real one is about 300 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 4 * 1024;
/// Largest artifact a manifest may announce (512 MiB; the agent is about 10 MiB).
pub const MAX_ARTIFACT_SIZE: u64 = 512 << 20;
/// Most targets in one manifest.
pub const MAX_TARGETS: usize = 32;
/// Longest artifact URL.
pub const MAX_URL_LEN: usize = 2048;

/// A parsed and validated release manifest. Only ever built from bytes whose signature
/// was checked first (see [`crate::TrustedKeys::verify`]), except by [`Manifest::parse`]
/// itself, which the fuzz target and tests call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The release channel (`stable`, ...).
    pub channel: String,
    /// Monotonic release counter of the channel: every new manifest has a larger one.
    pub serial: u64,
    /// The release version.
    pub version: Version,
    /// After this instant the manifest is refused (freeze attacks: an old, validly signed
    /// manifest replayed to keep hosts on a vulnerable version).
    pub expires: OffsetDateTime,
    /// Agents older than this must not update straight to this release.
    pub min_from_version: Version,
    /// Per target name (`linux-x86_64`, ...).
    pub targets: BTreeMap<String, Target>,
}

/// One downloadable build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The version this build answers to `--version`.
    pub version: Version,
    /// `https://` URL, or a path relative to the manifest's URL (mirrors copy the tree).
    pub url: String,
    /// Exact size in bytes: the download stops there.
    pub size: u64,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
}

/// Why a manifest was refused by the parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {0} bytes, more than the {MAX_MANIFEST_BYTES} accepted")]
    TooLarge(usize),
    /// Not JSON of the expected shape.
    #[error("manifest is not valid: {0}")]
    Syntax(String),
    /// A field has a value the agent refuses.
    #[error("manifest field `{field}`: {reason}")]
    Field {
        /// The field, e.g. `targets.linux-x86_64.sha256`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Deserialize)]
struct RawManifest {
    format: u32,
    product: String,
    channel: String,
    serial: u64,
    version: String,
    expires: String,
    min_from_version: String,
    targets: BTreeMap<String, RawTarget>,
}

#[derive(Deserialize)]
struct RawTarget {
    version: String,
    url: String,
    size: u64,
    sha256: String,
}

fn field(field: impl Into<String>, reason: impl fmt::Display) -> ManifestError {
    ManifestError::Field {
        field: field.into(),
        reason: reason.to_string(),
    }
}

fn version(name: &str, text: &str) -> Result<Version, ManifestError> {
    Version::parse(text).map_err(|e| field(name, format!("`{}`: {e}", clip(text))))
}

/// At most 64 characters of attacker-chosen text in a message.
fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

impl Manifest {
    /// Parses and validates a manifest. Never panics, whatever the bytes.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let raw: RawManifest = serde_json::from_slice(bytes)
            .map_err(|e| ManifestError::Syntax(clip(&e.to_string())))?;
        if raw.format != FORMAT {
            return Err(field(
                "format",
                format!("{} is not a format this agent reads ({FORMAT})", raw.format),
            ));
        }
        if raw.product != PRODUCT {
            return Err(field(
                "product",
                format!("`{}` is not {PRODUCT}", clip(&raw.product)),
            ));
        }
        if !is_name(&raw.channel) {
            return Err(field("channel", "expected 1 to 64 of [a-z0-9._-]"));
        }
        if raw.serial == 0 {
            return Err(field("serial", "must be at least 1"));
        }
        let expires =
            OffsetDateTime::parse(&raw.expires, &time::format_description::well_known::Rfc3339)
                .map_err(|e| field("expires", format!("not an RFC 3339 time: {e}")))?;
        if raw.targets.is_empty() || raw.targets.len() > MAX_TARGETS {
            return Err(field(
                "targets",
                format!(
                    "expected 1 to {MAX_TARGETS} targets, got {}",
                    raw.targets.len()
                ),
            ));
        }
        let mut targets = BTreeMap::new();
        for (name, t) in raw.targets {
            if !is_name(&name) {
                return Err(field(
                    "targets",
                    format!("`{}` is not a target name", clip(&name)),
                ));
            }
            let at = |f: &str| format!("targets.{name}.{f}");
            let target = Target {
                version: version(&at("version"), &t.version)?,
                url: check_url(&t.url).map_err(|r| field(at("url"), r))?,
                size: match t.size {
                    0 => return Err(field(at("size"), "must not be 0")),
                    s if s > MAX_ARTIFACT_SIZE => {
                        return Err(field(
                            at("size"),
                            format!("{s} is more than {MAX_ARTIFACT_SIZE}"),
                        ))
                    }
                    s => s,
                },
                sha256: parse_sha256(&t.sha256)
                    .ok_or_else(|| field(at("sha256"), "expected 64 hex digits"))?,
            };
            targets.insert(name, target);
        }
        Ok(Manifest {
            channel: raw.channel,
            serial: raw.serial,
            version: version("version", &raw.version)?,
            expires,
            min_from_version: version("min_from_version", &raw.min_from_version)?,
            targets,
        })
    }

    /// The build for `target`, if the release has one.
    pub fn target(&self, target: &str) -> Option<&Target> {
        self.targets.get(target)
    }
}

/// Channel and target names: short, lowercase, no separators that could mean a path.
fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && !s.starts_with('.')
}

/// An absolute `https://` URL, or a relative path without `..`, query or fragment.
fn check_url(url: &str) -> Result<String, &'static str> {
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err("empty or too long");
    }
    if url.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err("only printable ASCII without spaces is allowed");
    }
    if let Some(rest) = url.strip_prefix("https://") {
        if rest.is_empty() || rest.starts_with('/') {
            return Err("no host");
        }
        return Ok(url.to_owned());
    }
    if url.contains("://") || url.starts_with('/') || url.contains(['?', '#', '\\']) {
        return Err("expected https://... or a relative path");
    }
    if url
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("a relative path must not have empty, `.` or `..` segments");
    }
    Ok(url.to_owned())
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// Lowercase hex of a digest, for logs and messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signed trusted comment of a manifest signature:
/// `endpoint-agent manifest channel=stable serial=7 version=0.2.0`. minisign signs it
/// together with the signature, so these values cannot be swapped between manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedComment {
    /// `channel=`.
    pub channel: String,
    /// `serial=`.
    pub serial: u64,
    /// `version=`.
    pub version: Version,
}

impl TrustedComment {
    /// The comment for `manifest`, as the signing command line writes it (`minisign -t`).
    pub fn for_manifest(manifest: &Manifest) -> String {
        format!(
            "{PRODUCT} manifest channel={} serial={} version={}",
            manifest.channel, manifest.serial, manifest.version
        )
    }

    /// Reads a trusted comment; `None` unless it has exactly the expected shape.
    pub fn parse(text: &str) -> Option<TrustedComment> {
        let mut words = text.split(' ');
        if words.next()? != PRODUCT || words.next()? != "manifest" {
            return None;
        }
        let mut value = |key: &str| {
            words
                .next()?
                .strip_prefix(key)?
                .strip_prefix('=')
                .map(str::to_owned)
        };
        let channel = value("channel")?;
        let serial = value("serial")?.parse().ok()?;
        let version = Version::parse(&value("version")?).ok()?;
        if words.next().is_some() {
            return None;
        }
        Some(TrustedComment {
            channel,
            serial,
            version,
        })
    }

    /// Whether the comment says what the manifest says.
    pub fn matches(&self, manifest: &Manifest) -> bool {
        self.channel == manifest.channel
            && self.serial == manifest.serial
            && self.version == manifest.version
    }
}

/// The target name of the platform this agent was built for: `linux-x86_64`,
/// `linux-aarch64`, `windows-x86_64`, `macos-aarch64`, `macos-x86_64`. On macOS a manifest
/// may instead carry one `macos-universal` build (see [`target_names`]).
pub fn current_target() -> String {
    // std names the OSes as the manifest does: linux, windows, macos.
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The target names to look for, best first: the exact one, then on macOS the universal
/// build.
pub fn target_names() -> Vec<String> {
    let mut names = vec![current_target()];
    if cfg!(target_os = "macos") {
        names.push("macos-universal".to_owned());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> String {
        r#"{"format":1,"product":"endpoint-agent","channel":"stable","serial":7,
            "version":"0.2.0","expires":"2030-01-01T00:00:00Z","min_from_version":"0.1.0",
            "targets":{"linux-x86_64":{"version":"0.2.0","url":"linux-x86_64/agent",
            "size":10,"sha256":"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"}}}"#
            .to_owned()
    }

    #[test]
    fn parses_the_documented_shape() {
        let m = Manifest::parse(sample().as_bytes()).unwrap();
        assert_eq!(m.serial, 7);
        assert_eq!(m.version, Version::new(0, 2, 0));
        let t = m.target("linux-x86_64").unwrap();
        assert_eq!(t.size, 10);
        assert_eq!(t.sha256[31], 0xff);
        assert_eq!(hex(&t.sha256[..2]), "0011");
        assert_eq!(m.expires.year(), 2030);
    }

    #[test]
    fn refuses_bad_fields() {
        let cases = [
            ("\"format\":1", "\"format\":2", "format"),
            ("\"endpoint-agent\"", "\"other\"", "product"),
            ("\"serial\":7", "\"serial\":0", "serial"),
            ("\"size\":10", "\"size\":0", "size"),
            ("linux-x86_64/agent", "../agent", "url"),
            ("linux-x86_64/agent", "http://x/agent", "url"),
            ("linux-x86_64/agent", "/abs/agent", "url"),
            ("2030-01-01T00:00:00Z", "tomorrow", "expires"),
            ("\"0.1.0\"", "\"one\"", "min_from_version"),
            ("AABBCCDDEEFF\"", "AABBCCDDEEF\"", "sha256"),
            ("\"stable\"", "\"Stable/x\"", "channel"),
        ];
        for (from, to, what) in cases {
            let text = sample().replacen(from, to, 1);
            let err = Manifest::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(what), "{to}: {err}");
        }
        assert!(matches!(
            Manifest::parse(&vec![b' '; MAX_MANIFEST_BYTES + 1]),
            Err(ManifestError::TooLarge(_))
        ));
    }

    #[test]
    fn absolute_https_urls_are_kept() {
        let text = sample().replacen("linux-x86_64/agent", "https://mirror.example/a/agent", 1);
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(
            m.targets["linux-x86_64"].url,
            "https://mirror.example/a/agent"
        );
    }

    #[test]
    fn trusted_comment_round_trips_and_is_strict() {
        let m = Manifest::parse(sample().as_bytes()).unwrap();
        let text = TrustedComment::for_manifest(&m);
        assert_eq!(
            text,
            "endpoint-agent manifest channel=stable serial=7 version=0.2.0"
        );
        let c = TrustedComment::parse(&text).unwrap();
        assert!(c.matches(&m));
        for bad in [
            "endpoint-agent manifest channel=stable serial=8 version=0.2.0",
            "endpoint-agent manifest channel=beta serial=7 version=0.2.0",
            "endpoint-agent manifest channel=stable serial=7 version=0.2.1",
        ] {
            assert!(!TrustedComment::parse(bad).unwrap().matches(&m), "{bad}");
        }
        for garbage in [
            "",
            "timestamp:1\tfile:manifest.json",
            "endpoint-agent manifest channel=stable serial=7 version=0.2.0 extra",
            "endpoint-agent manifest serial=7 channel=stable version=0.2.0",
        ] {
            assert!(TrustedComment::parse(garbage).is_none(), "{garbage}");
        }
    }

    #[test]
    fn current_target_names() {
        let t = current_target();
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        assert_eq!(t, "linux-x86_64");
        assert!(is_name(&t));
    }
}
