//! The macOS `.app` bundle, zipped. The Mach-O binary cannot be linked on Linux: it is built
//! on a Mac (`cargo build --release --target aarch64-apple-darwin`, or a universal binary
//! made with `lipo`) and handed to `cargo xtask dist --macos-binary PATH`.
//!
//! The layout (Info.plist, PkgInfo, the executable, the entitlements in `Resources`) is the
//! one `agent-macos-es` defines ([`agent_macos_es::bundle::write_app`]); this module only
//! zips it reproducibly. Signing with the entitlements and notarizing happen on a Mac.

use std::fs;
use std::io;
use std::path::Path;

use agent_macos_es::bundle;

use super::archive::{self, Entry};

/// What a Mach-O file was built for: the update manifest's target name.
pub fn target_name(binary: &[u8]) -> Result<&'static str, String> {
    const CPU_X86_64: u32 = 0x0100_0007;
    const CPU_ARM64: u32 = 0x0100_000c;
    match binary.get(..8) {
        // FAT_MAGIC is big-endian: a universal binary of several architectures.
        Some([0xca, 0xfe, 0xba, 0xbe, ..]) => Ok("macos-universal"),
        // MH_MAGIC_64, little-endian, then the CPU type.
        Some([0xcf, 0xfa, 0xed, 0xfe, a, b, c, d]) => match u32::from_le_bytes([*a, *b, *c, *d]) {
            CPU_X86_64 => Ok("macos-x86_64"),
            CPU_ARM64 => Ok("macos-aarch64"),
            other => Err(format!("Mach-O for an unsupported CPU type {other:#x}")),
        },
        _ => Err("not a 64-bit Mach-O executable".into()),
    }
}

/// The zipped bundle of `binary`, laid out by `agent-macos-es` in `staging` (emptied
/// first, removed after).
pub fn app_zip(
    staging: &Path,
    version: &str,
    binary: &[u8],
    mtime: u64,
) -> Result<Vec<u8>, String> {
    let io = |what: &str, e: io::Error| format!("macOS bundle: {what}: {e}");
    let _ = fs::remove_dir_all(staging);
    fs::create_dir_all(staging).map_err(|e| io("create the staging directory", e))?;
    let exe = staging.join(bundle::EXECUTABLE_NAME);
    fs::write(&exe, binary).map_err(|e| io("write the binary", e))?;
    let app_dir = staging.join("app");
    let result = bundle::write_app(&app_dir, &exe, version)
        .map_err(|e| format!("macOS bundle: {e}"))
        .and_then(|_| entries(&app_dir).map_err(|e| io("read the bundle", e)))
        .and_then(|entries| archive::zip(&entries, mtime).map_err(|e| io("zip", e)));
    let _ = fs::remove_dir_all(staging);
    result
}

/// Every file and directory under `dir`, relative, with mode 0755 for directories and
/// executables and 0644 for the rest (whatever the umask made of them).
fn entries(dir: &Path) -> io::Result<Vec<Entry>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<Entry>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let rel = path
                .strip_prefix(base)
                .map_err(io::Error::other)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if path.is_dir() {
                out.push(Entry::dir(rel, 0o755));
                walk(base, &path, out)?;
            } else {
                let mode = if rel.ends_with(&format!("/MacOS/{}", bundle::EXECUTABLE_NAME)) {
                    0o755
                } else {
                    0o644
                };
                out.push(Entry::file(rel, mode, fs::read(&path)?));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mach_o_headers_name_the_target() {
        assert_eq!(
            target_name(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2]),
            Ok("macos-universal")
        );
        assert_eq!(
            target_name(&[0xcf, 0xfa, 0xed, 0xfe, 0x0c, 0, 0, 0x01]),
            Ok("macos-aarch64")
        );
        assert_eq!(
            target_name(&[0xcf, 0xfa, 0xed, 0xfe, 0x07, 0, 0, 0x01]),
            Ok("macos-x86_64")
        );
        assert!(target_name(b"\x7fELF\x02\x01\x01\x00").is_err());
    }

    #[test]
    fn the_zip_holds_the_bundle_at_the_installed_path_and_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let binary = b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01";
        let zip = app_zip(&dir.path().join("s"), "0.1.0", binary, 1_700_000_000).unwrap();
        assert_eq!(
            zip,
            app_zip(&dir.path().join("t"), "0.1.0", binary, 1_700_000_000).unwrap()
        );
        assert!(
            !dir.path().join("s").exists(),
            "the staging directory is removed"
        );
        let mut z = zip::ZipArchive::new(io::Cursor::new(zip)).unwrap();
        let mut names: Vec<String> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
        names.sort();
        assert!(
            names.contains(&"SekoiaEndpointAgent.app/Contents/Info.plist".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(
                &"SekoiaEndpointAgent.app/Contents/Resources/SekoiaEndpointAgent.entitlements"
                    .to_owned()
            ),
            "{names:?}"
        );
        // The path agent-config installs to, below /Applications.
        let installed = agent_config::paths::Paths::for_os(agent_config::paths::Os::Macos).binary;
        let exe_entry = installed
            .to_string_lossy()
            .strip_prefix("/Applications/")
            .unwrap()
            .to_owned();
        let exe = z.by_name(&exe_entry).unwrap();
        assert_eq!(exe.unix_mode().map(|m| m & 0o777), Some(0o755));
        drop(exe);
        let mut ent = String::new();
        io::Read::read_to_string(
            &mut z
                .by_name(
                    "SekoiaEndpointAgent.app/Contents/Resources/SekoiaEndpointAgent.entitlements",
                )
                .unwrap(),
            &mut ent,
        )
        .unwrap();
        assert!(ent.contains("com.apple.developer.endpoint-security.client"));
    }
}
