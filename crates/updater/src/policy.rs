//! Whether a verified manifest may be installed: pure rules, no I/O, so each one is tested
//! on its own.

use semver::Version;
use time::OffsetDateTime;

use crate::manifest::{Manifest, Target};
use crate::state::Accepted;

/// What the operator asked for (`agent update [--allow-downgrade] [--version X]`); the
/// automatic check uses the default (newest only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Install only this version.
    pub version: Option<Version>,
    /// Allow installing a version older than the running one. Needs `version` too, so that
    /// going back is always an explicit choice of a version.
    pub allow_downgrade: bool,
}

/// A verdict for a manifest that is not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The manifest offers the running version: nothing to do.
    UpToDate,
    /// Install this build.
    Install {
        /// The build.
        target: Target,
        /// Whether this goes back to an older version (explicitly allowed).
        downgrade: bool,
    },
}

/// Why a verified manifest is not installed. Each one is logged as a warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Past its expiry time (possible freeze attack, or a mirror that stopped syncing).
    #[error("the manifest expired at {expires}")]
    Expired {
        /// When it expired (RFC 3339).
        expires: String,
    },
    /// No build for this platform in the release.
    #[error("the release has no build for {target}")]
    NoTarget {
        /// The target names looked for.
        target: String,
    },
    /// The operator asked for a version the manifest does not offer.
    #[error("version {wanted} was asked for but the manifest offers {offered}")]
    NotOffered {
        /// What `--version` said.
        wanted: Version,
        /// What the manifest has.
        offered: Version,
    },
    /// Older than the running version, without `--allow-downgrade --version` naming it.
    #[error("the manifest offers {offered}, older than the running {running} (downgrading needs --allow-downgrade --version {offered})")]
    Older {
        /// Offered version.
        offered: Version,
        /// Running version.
        running: Version,
    },
    /// Serial not above the last accepted one: a replayed manifest, or the release that
    /// was already tried (and rolled back).
    #[error("manifest serial {offered} is not newer than the last accepted serial {accepted}")]
    StaleSerial {
        /// Offered serial.
        offered: u64,
        /// Last accepted serial.
        accepted: u64,
    },
    /// Version not above the last accepted one (a release already tried).
    #[error("version {offered} is not newer than the last accepted version {accepted}")]
    StaleVersion {
        /// Offered version.
        offered: Version,
        /// Last accepted version.
        accepted: Version,
    },
    /// The running version is below the release's `min_from_version`.
    #[error("this release updates agents from {min_from} on; {running} must first update to an intermediate release or be reinstalled")]
    TooOld {
        /// The release's floor.
        min_from: Version,
        /// Running version.
        running: Version,
    },
}

/// Decides what to do with a verified `manifest`, for an agent running `running` whose
/// last accepted release is `accepted`, at `now`. `targets` are the platform's target
/// names, best first.
pub fn decide(
    manifest: &Manifest,
    targets: &[String],
    running: &Version,
    accepted: Option<&Accepted>,
    now: OffsetDateTime,
    request: &Request,
) -> Result<Verdict, Refusal> {
    if now >= manifest.expires {
        return Err(Refusal::Expired {
            expires: manifest
                .expires
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        });
    }
    let target = targets
        .iter()
        .find_map(|t| manifest.target(t))
        .ok_or_else(|| Refusal::NoTarget {
            target: targets.join(" or "),
        })?;
    if let Some(wanted) = &request.version {
        if *wanted != target.version {
            return Err(Refusal::NotOffered {
                wanted: wanted.clone(),
                offered: target.version.clone(),
            });
        }
    }
    if target.version == *running {
        return Ok(Verdict::UpToDate);
    }
    if target.version < *running {
        // Going back: only to the version the operator named. Serial and floor checks do
        // not apply (the operator chose an older, still validly signed and unexpired,
        // release on purpose).
        if request.allow_downgrade && request.version.as_ref() == Some(&target.version) {
            return Ok(Verdict::Install {
                target: target.clone(),
                downgrade: true,
            });
        }
        return Err(Refusal::Older {
            offered: target.version.clone(),
            running: running.clone(),
        });
    }
    if let Some(acc) = accepted {
        if manifest.serial <= acc.serial {
            return Err(Refusal::StaleSerial {
                offered: manifest.serial,
                accepted: acc.serial,
            });
        }
        if target.version <= acc.version {
            return Err(Refusal::StaleVersion {
                offered: target.version.clone(),
                accepted: acc.version.clone(),
            });
        }
    }
    if *running < manifest.min_from_version {
        return Err(Refusal::TooOld {
            min_from: manifest.min_from_version.clone(),
            running: running.clone(),
        });
    }
    Ok(Verdict::Install {
        target: target.clone(),
        downgrade: false,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::macros::datetime;

    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn manifest(serial: u64, version: &str) -> Manifest {
        let mut targets = BTreeMap::new();
        targets.insert(
            "linux-x86_64".to_owned(),
            Target {
                version: v(version),
                url: "a".to_owned(),
                size: 1,
                sha256: [0; 32],
            },
        );
        Manifest {
            channel: "stable".to_owned(),
            serial,
            version: v(version),
            expires: datetime!(2030-01-01 0:00 UTC),
            min_from_version: v("0.1.0"),
            targets,
        }
    }

    const NOW: OffsetDateTime = datetime!(2029-01-01 0:00 UTC);

    fn run(
        m: &Manifest,
        running: &str,
        acc: Option<(u64, &str)>,
        req: &Request,
    ) -> Result<Verdict, Refusal> {
        let acc = acc.map(|(serial, version)| Accepted {
            serial,
            version: v(version),
        });
        decide(
            m,
            &["linux-x86_64".to_owned()],
            &v(running),
            acc.as_ref(),
            NOW,
            req,
        )
    }

    #[test]
    fn newer_is_installed_equal_is_up_to_date() {
        let m = manifest(2, "0.2.0");
        let any = Request::default();
        assert!(matches!(
            run(&m, "0.1.0", None, &any),
            Ok(Verdict::Install {
                downgrade: false,
                ..
            })
        ));
        assert!(matches!(
            run(&m, "0.1.0", Some((1, "0.1.0")), &any),
            Ok(Verdict::Install { .. })
        ));
        assert_eq!(
            run(&m, "0.2.0", Some((2, "0.2.0")), &any),
            Ok(Verdict::UpToDate)
        );
    }

    #[test]
    fn refusals() {
        let any = Request::default();
        let m = manifest(2, "0.2.0");
        let mut expired = m.clone();
        expired.expires = datetime!(2028-12-31 23:59:59 UTC);
        assert!(matches!(
            run(&expired, "0.1.0", None, &any),
            Err(Refusal::Expired { .. })
        ));
        assert!(matches!(
            run(&m, "0.3.0", None, &any),
            Err(Refusal::Older { .. })
        ));
        // Replay of an old manifest, or the release that was rolled back.
        assert!(matches!(
            run(&m, "0.1.0", Some((2, "0.1.0")), &any),
            Err(Refusal::StaleSerial { .. })
        ));
        assert!(matches!(
            run(&m, "0.1.0", Some((3, "0.1.0")), &any),
            Err(Refusal::StaleSerial { .. })
        ));
        assert!(matches!(
            run(&m, "0.1.0", Some((1, "0.2.0")), &any),
            Err(Refusal::StaleVersion { .. })
        ));
        let mut floor = m.clone();
        floor.min_from_version = v("0.1.5");
        assert!(matches!(
            run(&floor, "0.1.0", None, &any),
            Err(Refusal::TooOld { .. })
        ));
        let mut other = m.clone();
        other.targets = BTreeMap::from([(
            "windows-x86_64".to_owned(),
            m.targets["linux-x86_64"].clone(),
        )]);
        assert!(matches!(
            run(&other, "0.1.0", None, &any),
            Err(Refusal::NoTarget { .. })
        ));
        let wants = Request {
            version: Some(v("0.2.1")),
            allow_downgrade: false,
        };
        assert!(matches!(
            run(&m, "0.1.0", None, &wants),
            Err(Refusal::NotOffered { .. })
        ));
    }

    #[test]
    fn downgrade_needs_both_the_flag_and_the_version() {
        let m = manifest(1, "0.0.9");
        let flag_only = Request {
            version: None,
            allow_downgrade: true,
        };
        assert!(matches!(
            run(&m, "0.1.0", Some((5, "0.1.0")), &flag_only),
            Err(Refusal::Older { .. })
        ));
        let version_only = Request {
            version: Some(v("0.0.9")),
            allow_downgrade: false,
        };
        assert!(matches!(
            run(&m, "0.1.0", Some((5, "0.1.0")), &version_only),
            Err(Refusal::Older { .. })
        ));
        let both = Request {
            version: Some(v("0.0.9")),
            allow_downgrade: true,
        };
        assert!(matches!(
            run(&m, "0.1.0", Some((5, "0.1.0")), &both),
            Ok(Verdict::Install {
                downgrade: true,
                ..
            })
        ));
    }
}
