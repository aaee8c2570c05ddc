//! The `.app` bundle the product ships on macOS:
//!
//! ```text
//! SekoiaEndpointAgent.app/Contents/Info.plist
//! SekoiaEndpointAgent.app/Contents/PkgInfo
//! SekoiaEndpointAgent.app/Contents/MacOS/SekoiaEndpointAgent        the agent binary
//! SekoiaEndpointAgent.app/Contents/Resources/SekoiaEndpointAgent.entitlements
//! ```
//!
//! Endpoint Security only serves a process whose code signature carries the
//! `com.apple.developer.endpoint-security.client` entitlement, and macOS grants Full Disk
//! Access to an app bundle, so the binary runs from inside the bundle. The entitlements
//! file is what `codesign --entitlements` signs into the executable; it ships in
//! `Resources` so that the signed layout can be rebuilt and checked. Signing and
//! notarization are the release's job, not this module's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The bundle's directory name, as installed in `/Applications`.
pub const BUNDLE_NAME: &str = "SekoiaEndpointAgent.app";
/// The executable's name (`CFBundleExecutable`).
pub const EXECUTABLE_NAME: &str = "SekoiaEndpointAgent";
/// `CFBundleIdentifier`.
pub const BUNDLE_IDENTIFIER: &str = "io.sekoia.endpoint-agent";
/// The entitlement Endpoint Security requires of its clients.
pub const ES_ENTITLEMENT: &str = "com.apple.developer.endpoint-security.client";
/// The oldest macOS the agent supports (`LSMinimumSystemVersion`): `eslogger` and the
/// authentication events arrived in macOS 13.
pub const MINIMUM_SYSTEM_VERSION: &str = "13.0";

/// The paths of a bundle written by [`write_app`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppBundle {
    /// `<dir>/SekoiaEndpointAgent.app`.
    pub root: PathBuf,
    /// `Contents/Info.plist`.
    pub info_plist: PathBuf,
    /// `Contents/MacOS/SekoiaEndpointAgent`.
    pub executable: PathBuf,
    /// `Contents/Resources/SekoiaEndpointAgent.entitlements`.
    pub entitlements: PathBuf,
}

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The version is not `MAJOR.MINOR.PATCH` (a leading `v` and a `-pre`/`+build` suffix
    /// are allowed and dropped): macOS compares bundle versions as dot-separated numbers.
    #[error("bundle version {0:?} is not MAJOR.MINOR.PATCH")]
    Version(String),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BundleError {
    let path = path.to_path_buf();
    move |source| BundleError::Io {
        action,
        path,
        source,
    }
}

/// Writes `<dir>/SekoiaEndpointAgent.app` with `executable` as its binary and `version`
/// (the agent's, e.g. `1.4.0` or `v1.4.0+3ed1a79`) in Info.plist. A bundle already there
/// is replaced whole, so no file of an older layout survives.
pub fn write_app(dir: &Path, executable: &Path, version: &str) -> Result<AppBundle, BundleError> {
    let short = bundle_version(version)?;
    let root = dir.join(BUNDLE_NAME);
    let contents = root.join("Contents");
    let bundle = AppBundle {
        info_plist: contents.join("Info.plist"),
        executable: contents.join("MacOS").join(EXECUTABLE_NAME),
        entitlements: contents
            .join("Resources")
            .join(format!("{EXECUTABLE_NAME}.entitlements")),
        root: root.clone(),
    };
    match fs::remove_dir_all(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove", &root)(e)),
    }
    for d in [contents.join("MacOS"), contents.join("Resources")] {
        fs::create_dir_all(&d).map_err(io_err("create", &d))?;
    }
    fs::write(&bundle.info_plist, info_plist(&short))
        .map_err(io_err("write", &bundle.info_plist))?;
    let pkginfo = contents.join("PkgInfo");
    fs::write(&pkginfo, b"APPL????").map_err(io_err("write", &pkginfo))?;
    fs::write(&bundle.entitlements, entitlements())
        .map_err(io_err("write", &bundle.entitlements))?;
    fs::copy(executable, &bundle.executable).map_err(io_err("copy", executable))?;
    set_executable(&bundle.executable)?;
    Ok(bundle)
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), BundleError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", path))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<(), BundleError> {
    Ok(())
}

/// `v1.4.0+3ed1a79` → `1.4.0`.
fn bundle_version(version: &str) -> Result<String, BundleError> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let v = v.split(['+', '-']).next().unwrap_or_default();
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return Err(BundleError::Version(version.to_owned()));
    }
    Ok(v.to_owned())
}

/// The bundle's Info.plist. `version` is already checked to be digits and dots, so
/// nothing here needs XML escaping.
pub fn info_plist(version: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleDevelopmentRegion</key>
	<string>en</string>
	<key>CFBundleDisplayName</key>
	<string>Sekoia Endpoint Agent</string>
	<key>CFBundleExecutable</key>
	<string>{EXECUTABLE_NAME}</string>
	<key>CFBundleIdentifier</key>
	<string>{BUNDLE_IDENTIFIER}</string>
	<key>CFBundleInfoDictionaryVersion</key>
	<string>6.0</string>
	<key>CFBundleName</key>
	<string>{EXECUTABLE_NAME}</string>
	<key>CFBundlePackageType</key>
	<string>APPL</string>
	<key>CFBundleShortVersionString</key>
	<string>{version}</string>
	<key>CFBundleVersion</key>
	<string>{version}</string>
	<key>LSMinimumSystemVersion</key>
	<string>{MINIMUM_SYSTEM_VERSION}</string>
	<key>LSUIElement</key>
	<true/>
</dict>
</plist>
"#
    )
}

/// The entitlements signed into the executable.
pub fn entitlements() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>{ES_ENTITLEMENT}</key>
	<true/>
</dict>
</plist>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The top-level dictionary of a flat XML property list: key → `string` text, or
    /// `true`/`false` for booleans. Fails on anything else, so a malformed plist fails.
    fn plist_dict(text: &str) -> BTreeMap<String, String> {
        let body = text
            .split_once("<plist version=\"1.0\">\n<dict>\n")
            .and_then(|(head, rest)| {
                assert!(
                    head.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist")
                );
                rest.strip_suffix("</dict>\n</plist>\n")
            })
            .expect("plist envelope");
        let lines: Vec<&str> = body.lines().map(str::trim).collect();
        assert_eq!(lines.len() % 2, 0, "key without value");
        let mut out = BTreeMap::new();
        for pair in lines.chunks(2) {
            let key = pair[0]
                .strip_prefix("<key>")
                .and_then(|k| k.strip_suffix("</key>"))
                .expect("key");
            let value = match pair[1] {
                "<true/>" => "true".to_owned(),
                "<false/>" => "false".to_owned(),
                v => v
                    .strip_prefix("<string>")
                    .and_then(|s| s.strip_suffix("</string>"))
                    .expect("string value")
                    .to_owned(),
            };
            assert!(
                out.insert(key.to_owned(), value).is_none(),
                "duplicate {key}"
            );
        }
        out
    }

    #[test]
    fn the_bundle_has_its_plist_keys_executable_and_entitlements() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("agent");
        fs::write(&exe, b"\xcf\xfa\xed\xfe mach-o agent").unwrap();
        let out = tmp.path().join("dist");
        let b = write_app(&out, &exe, "v1.4.0+3ed1a79").unwrap();

        assert_eq!(b.root, out.join("SekoiaEndpointAgent.app"));
        assert_eq!(
            b.executable,
            out.join("SekoiaEndpointAgent.app/Contents/MacOS/SekoiaEndpointAgent")
        );
        assert_eq!(fs::read(&b.executable).unwrap(), fs::read(&exe).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&b.executable).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
        }

        let info = plist_dict(&fs::read_to_string(&b.info_plist).unwrap());
        let expect = [
            ("CFBundleDevelopmentRegion", "en"),
            ("CFBundleDisplayName", "Sekoia Endpoint Agent"),
            ("CFBundleExecutable", "SekoiaEndpointAgent"),
            ("CFBundleIdentifier", "io.sekoia.endpoint-agent"),
            ("CFBundleInfoDictionaryVersion", "6.0"),
            ("CFBundleName", "SekoiaEndpointAgent"),
            ("CFBundlePackageType", "APPL"),
            ("CFBundleShortVersionString", "1.4.0"),
            ("CFBundleVersion", "1.4.0"),
            ("LSMinimumSystemVersion", "13.0"),
            ("LSUIElement", "true"),
        ];
        let expect: BTreeMap<String, String> = expect
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(info, expect);
        // CFBundleExecutable names the file that is really there.
        assert!(b
            .root
            .join("Contents/MacOS")
            .join(&info["CFBundleExecutable"])
            .is_file());

        let ent = plist_dict(&fs::read_to_string(&b.entitlements).unwrap());
        assert_eq!(
            ent.into_iter().collect::<Vec<_>>(),
            [(
                "com.apple.developer.endpoint-security.client".to_owned(),
                "true".to_owned()
            )]
        );
        assert_eq!(
            fs::read(b.root.join("Contents/PkgInfo")).unwrap(),
            b"APPL????"
        );
    }

    #[test]
    fn rewriting_replaces_the_whole_bundle() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("agent");
        fs::write(&exe, b"new").unwrap();
        let stale = tmp
            .path()
            .join("SekoiaEndpointAgent.app/Contents/MacOS/old-helper");
        fs::create_dir_all(stale.parent().unwrap()).unwrap();
        fs::write(&stale, b"old").unwrap();
        let b = write_app(tmp.path(), &exe, "2.0.1").unwrap();
        assert!(!stale.exists());
        assert_eq!(fs::read(&b.executable).unwrap(), b"new");
    }

    #[test]
    fn versions_must_be_three_numbers() {
        assert_eq!(bundle_version("1.2.3").unwrap(), "1.2.3");
        assert_eq!(bundle_version("v0.1.0-rc.1").unwrap(), "0.1.0");
        for bad in ["1.2", "1.2.3.4", "x.1.2", "1..2", "", "1.2.3<"] {
            assert!(
                matches!(bundle_version(bad), Err(BundleError::Version(_))),
                "{bad}"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let err = write_app(tmp.path(), &tmp.path().join("missing"), "1.0.0").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
