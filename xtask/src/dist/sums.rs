//! `SHA256SUMS`, the updater's release manifest, and their minisign signatures.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::Digest as _;

use super::linux::hex;

/// File name of the checksum list.
pub const SUMS: &str = "SHA256SUMS";
/// Directory (under the output) of the update manifest and the raw binaries it names.
pub const UPDATE_DIR: &str = "update";
/// The manifest file name.
pub const MANIFEST: &str = "manifest.json";
/// Product name the updater expects in manifests and trusted comments.
const PRODUCT: &str = "endpoint-agent";

/// SHA-256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha2::Sha256::digest(data))
}

/// Every regular file under `dir`, relative (`/`-separated) and sorted.
pub fn list_files(dir: &Path) -> Result<Vec<String>, String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), String> {
        let entries =
            fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else if let Ok(rel) = path.strip_prefix(base) {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// The `sha256sum`-format list (`<hex>  <path>`) of every file under `dir` except the list
/// itself and its signature; `sha256sum -c SHA256SUMS` checks it from `dir`.
pub fn sha256sums(dir: &Path) -> Result<String, String> {
    let mut text = String::new();
    for rel in list_files(dir)? {
        if rel == SUMS || rel == format!("{SUMS}.minisig") {
            continue;
        }
        let data = fs::read(dir.join(&rel)).map_err(|e| format!("cannot read {rel}: {e}"))?;
        text.push_str(&format!("{}  {rel}\n", sha256_hex(&data)));
    }
    Ok(text)
}

/// What goes into the update manifest beside the files.
#[derive(Debug, Clone)]
pub struct ManifestSettings {
    /// Release channel (`stable`).
    pub channel: String,
    /// Monotonic per channel; defaults to `SOURCE_DATE_EPOCH`.
    pub serial: u64,
    /// The release (workspace) version.
    pub version: String,
    /// RFC 3339 instant after which agents refuse the manifest.
    pub expires: String,
    /// Oldest version that may update straight to this one.
    pub min_from_version: String,
}

/// One raw binary the manifest offers, relative to the manifest.
#[derive(Debug, Clone)]
pub struct UpdateFile {
    /// Target name (`linux-x86_64`, `macos-universal`, ...).
    pub target: String,
    /// Path relative to the manifest (`linux-x86_64/agent`).
    pub url: String,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Where a raw binary goes, relative to the manifest: `<version>/agent-<target>[.exe]`, so
/// that a new release never overwrites a file an older manifest names (the layout of
/// docs/updates.md).
pub fn update_url(version: &str, target: &str, exe: &str) -> String {
    let ext = if exe.ends_with(".exe") { ".exe" } else { "" };
    format!("{version}/agent-{target}{ext}")
}

/// The updater's manifest (format 1, see `crates/updater`): one entry per target with the
/// version, relative URL, size and SHA-256 of the raw binary the agent swaps in.
pub fn manifest(settings: &ManifestSettings, files: &[UpdateFile]) -> String {
    let mut targets = serde_json::Map::new();
    let mut files: Vec<&UpdateFile> = files.iter().collect();
    files.sort_by(|a, b| a.target.cmp(&b.target));
    for f in files {
        targets.insert(
            f.target.clone(),
            serde_json::json!({
                "version": settings.version,
                "url": f.url,
                "size": f.data.len(),
                "sha256": sha256_hex(&f.data),
            }),
        );
    }
    let doc = serde_json::json!({
        "format": 1,
        "product": PRODUCT,
        "channel": settings.channel,
        "serial": settings.serial,
        "version": settings.version,
        "expires": settings.expires,
        "min_from_version": settings.min_from_version,
        "targets": targets,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The trusted comment the updater requires on the manifest's signature.
pub fn manifest_trusted_comment(settings: &ManifestSettings) -> String {
    format!(
        "{PRODUCT} manifest channel={} serial={} version={}",
        settings.channel, settings.serial, settings.version
    )
}

/// A minisign secret key, and the password of an encrypted one.
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// The secret key file (`minisign -G -s`).
    pub secret_key: PathBuf,
    /// Password for an encrypted key; `None` for a key made with `minisign -G -W`.
    pub password: Option<String>,
}

/// Signs `file` into `<file>.minisig` with a fixed trusted comment (minisign's default one
/// holds the signing time, which would make every run differ; Ed25519 itself is
/// deterministic).
pub fn minisign(key: &SigningKey, file: &Path, trusted_comment: &str) -> Result<(), String> {
    let mut child = Command::new("minisign")
        // -H: prehashed signatures, the only kind the updater accepts.
        .args(["-S", "-H", "-s"])
        .arg(&key.secret_key)
        .arg("-c")
        .arg("signature from the endpoint-agent release key")
        .arg("-t")
        .arg(trusted_comment)
        .arg("-m")
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run minisign ({e}): install it (Debian package `minisign`)")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(pw) = &key.password {
            let _ = writeln!(stdin, "{pw}");
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("minisign: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "minisign could not sign {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Days → RFC 3339 instant `days` after `epoch`.
pub fn rfc3339_after(epoch: u64, days: u64) -> Result<String, String> {
    let t = i64::try_from(epoch.saturating_add(days.saturating_mul(86_400)))
        .map_err(|_| "expiry out of range".to_owned())?;
    let t = time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| e.to_string())?;
    t.format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ManifestSettings {
        ManifestSettings {
            channel: "stable".into(),
            serial: 1_700_000_000,
            version: "0.1.0".into(),
            expires: rfc3339_after(1_700_000_000, 90).unwrap(),
            min_from_version: "0.0.0".into(),
        }
    }

    #[test]
    fn manifest_lists_each_target_with_size_and_digest() {
        let text = manifest(
            &settings(),
            &[UpdateFile {
                target: "linux-x86_64".into(),
                url: update_url("0.1.0", "linux-x86_64", "agent"),
                data: b"abc".to_vec(),
            }],
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["format"], 1);
        assert_eq!(v["product"], "endpoint-agent");
        assert_eq!(v["expires"], "2024-02-12T22:13:20Z");
        let t = &v["targets"]["linux-x86_64"];
        assert_eq!(t["size"], 3);
        assert_eq!(t["url"], "0.1.0/agent-linux-x86_64");
        assert_eq!(
            update_url("0.1.0", "windows-x86_64", "agent.exe"),
            "0.1.0/agent-windows-x86_64.exe"
        );
        assert_eq!(
            t["sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            manifest_trusted_comment(&settings()),
            "endpoint-agent manifest channel=stable serial=1700000000 version=0.1.0"
        );
    }

    #[test]
    fn sums_cover_every_file_but_themselves_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("update/linux-x86_64")).unwrap();
        fs::write(dir.path().join("b.tar.gz"), b"b").unwrap();
        fs::write(dir.path().join("a.deb"), b"a").unwrap();
        fs::write(dir.path().join("update/linux-x86_64/agent"), b"x").unwrap();
        fs::write(dir.path().join(SUMS), b"old").unwrap();
        fs::write(dir.path().join("SHA256SUMS.minisig"), b"sig").unwrap();
        let sums = sha256sums(dir.path()).unwrap();
        let names: Vec<&str> = sums
            .lines()
            .map(|l| l.split_once("  ").unwrap().1)
            .collect();
        assert_eq!(names, ["a.deb", "b.tar.gz", "update/linux-x86_64/agent"]);
        // `sha256sum -c` accepts it.
        fs::write(dir.path().join(SUMS), &sums).unwrap();
        let status = Command::new("sha256sum")
            .args(["-c", "--quiet", SUMS])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn minisign_signatures_are_reproducible_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        let gen = Command::new("minisign")
            .args(["-G", "-W", "-s"])
            .arg(&sk)
            .arg("-p")
            .arg(&pk)
            .output()
            .expect("minisign (Debian package `minisign`) is needed by the dist tests");
        assert!(gen.status.success(), "{gen:?}");
        let file = dir.path().join(MANIFEST);
        let binary = UpdateFile {
            target: "linux-x86_64".into(),
            url: update_url("0.1.0", "linux-x86_64", "agent"),
            data: b"\x7fELF".to_vec(),
        };
        let text = manifest(&settings(), std::slice::from_ref(&binary));
        fs::write(&file, &text).unwrap();
        let key = SigningKey {
            secret_key: sk,
            password: None,
        };
        let comment = manifest_trusted_comment(&settings());
        minisign(&key, &file, &comment).unwrap();
        let first = fs::read(dir.path().join("manifest.json.minisig")).unwrap();
        minisign(&key, &file, &comment).unwrap();
        assert_eq!(
            first,
            fs::read(dir.path().join("manifest.json.minisig")).unwrap()
        );
        let verify = Command::new("minisign")
            .args(["-V", "-p"])
            .arg(&pk)
            .arg("-m")
            .arg(&file)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
        assert!(String::from_utf8_lossy(&verify.stdout).contains(&comment));

        // The agent's updater accepts the signed manifest and reads what was written.
        let keys =
            agent_updater::TrustedKeys::from_lines(&fs::read_to_string(&pk).unwrap()).unwrap();
        let parsed = keys.verify(text.as_bytes(), &first).unwrap();
        let target = parsed.target("linux-x86_64").unwrap();
        assert_eq!(target.size, 4);
        assert_eq!(target.url, "0.1.0/agent-linux-x86_64");
        assert_eq!(hex(&target.sha256), sha256_hex(&binary.data));
        assert_eq!(parsed.serial, 1_700_000_000);
    }
}
