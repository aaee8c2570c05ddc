//! Kernel paths to the paths users know.
//!
//! Kernel events name files by their native path (`\Device\HarddiskVolume3\Windows\x.exe`,
//! `\Device\Mup\server\share\x`). Detection rules and analysts expect `C:\Windows\x.exe`
//! and `\\server\share\x`. The [`DeviceMap`] holds the volume device of each drive letter;
//! the binding fills it at start from `QueryDosDeviceW`.

/// Drive letters by native volume device, plus the fixed prefixes of network paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceMap {
    /// (`\Device\HarddiskVolume3`, `C:`), longest device first so that
    /// `HarddiskVolume10` is not taken for `HarddiskVolume1`.
    drives: Vec<(String, String)>,
}

/// Native prefixes of network (UNC) paths: the multiple UNC provider and the SMB
/// redirectors. What follows is `server\share\...`.
const UNC_PREFIXES: [&str; 3] = [
    r"\Device\Mup\",
    r"\Device\LanmanRedirector\",
    r"\Device\WebDavRedirector\",
];

impl DeviceMap {
    /// An empty map: only UNC and `\??\` prefixes are rewritten.
    pub fn new() -> DeviceMap {
        DeviceMap::default()
    }

    /// Maps the native `device` (as `QueryDosDeviceW` gives it for `drive`) to `drive`
    /// (`C:`; a trailing backslash is dropped).
    pub fn insert(&mut self, drive: &str, device: &str) {
        let drive = drive.trim_end_matches('\\').to_owned();
        let device = device.trim_end_matches('\\').to_owned();
        if drive.is_empty() || device.is_empty() {
            return;
        }
        self.drives
            .retain(|(d, _)| !d.eq_ignore_ascii_case(&device));
        self.drives.push((device, drive));
        self.drives.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
    }

    /// The DOS form of a kernel path; paths it does not recognise come back unchanged.
    pub fn to_dos(&self, path: &str) -> String {
        for (device, drive) in &self.drives {
            if let Some(rest) = strip_prefix_ci(path, device) {
                if rest.is_empty() || rest.starts_with('\\') {
                    return format!("{drive}{rest}");
                }
            }
        }
        for prefix in UNC_PREFIXES {
            if let Some(rest) = strip_prefix_ci(path, prefix) {
                // The redirectors put `;X:000…\` before the server on mapped drives.
                let rest = match rest.strip_prefix(';') {
                    Some(r) => r.split_once('\\').map_or("", |(_, tail)| tail),
                    None => rest,
                };
                return format!(r"\\{rest}");
            }
        }
        if let Some(rest) = path
            .strip_prefix(r"\??\UNC\")
            .or_else(|| path.strip_prefix(r"\\?\UNC\"))
        {
            return format!(r"\\{rest}");
        }
        if let Some(rest) = path
            .strip_prefix(r"\??\")
            .or_else(|| path.strip_prefix(r"\\?\"))
        {
            return rest.to_owned();
        }
        path.to_owned()
    }
}

/// `s` without `prefix`, comparing ASCII case-insensitively (device names are).
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Whether `path` is an absolute DOS or UNC path (`C:\…`, `\\server\…`).
pub fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
        || path.starts_with(r"\\")
}

/// The last component of a Windows path.
pub fn base_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> DeviceMap {
        let mut m = DeviceMap::new();
        m.insert("C:", r"\Device\HarddiskVolume1");
        m.insert("D:", r"\Device\HarddiskVolume10");
        m.insert("E:\\", r"\Device\CdRom0\");
        m
    }

    #[test]
    fn volumes_become_drive_letters() {
        let m = map();
        assert_eq!(
            m.to_dos(r"\Device\HarddiskVolume1\Windows\System32\cmd.exe"),
            r"C:\Windows\System32\cmd.exe"
        );
        // Volume10 is not Volume1 followed by "0".
        assert_eq!(m.to_dos(r"\Device\HarddiskVolume10\data\x"), r"D:\data\x");
        assert_eq!(m.to_dos(r"\device\harddiskvolume1\x"), r"C:\x");
        assert_eq!(m.to_dos(r"\Device\HarddiskVolume1"), "C:");
        assert_eq!(m.to_dos(r"\Device\CdRom0\setup.exe"), r"E:\setup.exe");
        // Unknown volumes stay native rather than guessed.
        assert_eq!(
            m.to_dos(r"\Device\HarddiskVolume7\x"),
            r"\Device\HarddiskVolume7\x"
        );
    }

    #[test]
    fn network_paths_become_unc() {
        let m = map();
        assert_eq!(
            m.to_dos(r"\Device\Mup\fileserver\share\doc.txt"),
            r"\\fileserver\share\doc.txt"
        );
        assert_eq!(
            m.to_dos(r"\Device\LanmanRedirector\;Z:0000000000012345\srv\share\a.ps1"),
            r"\\srv\share\a.ps1"
        );
        assert_eq!(m.to_dos(r"\??\UNC\srv\share\x"), r"\\srv\share\x");
        assert_eq!(m.to_dos(r"\??\C:\Windows\x.dll"), r"C:\Windows\x.dll");
        assert_eq!(m.to_dos(r"\\?\C:\x"), r"C:\x");
    }

    #[test]
    fn non_ascii_and_odd_input_never_panic() {
        let m = map();
        assert_eq!(
            m.to_dos("\\Device\\HarddiskVolume1\\Users\\Zoë\\文件.txt"),
            "C:\\Users\\Zoë\\文件.txt"
        );
        // A multi-byte character straddling the prefix length.
        assert_eq!(m.to_dos("\\Device\\Harddisk€"), "\\Device\\Harddisk€");
        assert_eq!(m.to_dos(""), "");
        assert_eq!(base_name(r"C:\a\b.exe"), "b.exe");
        assert_eq!(base_name("b.exe"), "b.exe");
        assert!(is_absolute(r"C:\x") && is_absolute(r"\\srv\s") && !is_absolute("cmd.exe"));
    }
}
