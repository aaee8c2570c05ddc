//! Static host facts: hostname, OS type and version, boot id, uptime.

use crate::error::HostError;

/// `host.os.type` values of the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsType {
    /// Linux.
    Linux,
    /// Windows.
    Windows,
    /// macOS.
    Macos,
}

impl OsType {
    /// The dialect spelling: `linux`, `windows` or `macos`.
    pub fn as_str(self) -> &'static str {
        match self {
            OsType::Linux => "linux",
            OsType::Windows => "windows",
            OsType::Macos => "macos",
        }
    }
}

/// The OS this agent was built for. Other unixes report `linux`, the closest dialect value.
pub fn os_type() -> OsType {
    if cfg!(target_os = "windows") {
        OsType::Windows
    } else if cfg!(target_os = "macos") {
        OsType::Macos
    } else {
        OsType::Linux
    }
}

/// OS name and version (`host.os.name`, `host.os.version`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsInfo {
    /// Machine-readable distribution id (`debian`, `ubuntu`, `rhel`...), when known.
    pub id: Option<String>,
    /// Human name (`Debian GNU/Linux`).
    pub name: Option<String>,
    /// Version (`12`, `22.04`).
    pub version: Option<String>,
    /// Full pretty name (`Debian GNU/Linux 12 (bookworm)`).
    pub pretty_name: Option<String>,
}

/// Reads the OS name and version: `/etc/os-release` (or `/usr/lib/os-release`) on Linux.
/// Other OSes return an empty [`OsInfo`] for now.
pub fn os_info() -> OsInfo {
    #[cfg(target_os = "linux")]
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Ok(text) = std::fs::read_to_string(p) {
            return parse_os_release(&text);
        }
    }
    OsInfo::default()
}

/// Parses os-release(5) content: `KEY=value` lines, values optionally quoted.
pub fn parse_os_release(text: &str) -> OsInfo {
    let mut info = OsInfo::default();
    for line in text.lines() {
        let line = line.trim();
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(raw.trim());
        if value.is_empty() {
            continue;
        }
        match key {
            "ID" => info.id = Some(value),
            "NAME" => info.name = Some(value),
            "VERSION_ID" => info.version = Some(value),
            "PRETTY_NAME" => info.pretty_name = Some(value),
            _ => {}
        }
    }
    info
}

fn unquote(v: &str) -> String {
    let inner = if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        &v[1..v.len() - 1]
    } else {
        v
    };
    // os-release allows shell escapes of `"`, `\`, `$` and backtick inside double quotes.
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The kernel's boot id (Linux: `/proc/sys/kernel/random/boot_id`), a UUID that changes at
/// every boot. `None` elsewhere or when unreadable.
pub fn boot_id() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let s = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Seconds since boot (Linux: `/proc/uptime`). `None` elsewhere.
pub fn uptime_secs() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let s = std::fs::read_to_string("/proc/uptime").ok()?;
        let first = s.split_whitespace().next()?;
        let secs: f64 = first.parse().ok()?;
        Some(secs as u64)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// The host name (`host.hostname`).
pub fn hostname() -> Result<String, HostError> {
    #[cfg(unix)]
    {
        let mut buf = vec![0u8; 256];
        // SAFETY: the pointer and length describe `buf`, a live, writable allocation of
        // exactly `buf.len()` bytes; gethostname writes at most that many bytes.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return Err(HostError::Sys {
                call: "gethostname",
                source: std::io::Error::last_os_error(),
            });
        }
        // POSIX does not promise NUL termination on truncation: take up to the first NUL.
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        buf.truncate(end);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").map_err(|e| HostError::Sys {
            call: "COMPUTERNAME",
            source: std::io::Error::new(std::io::ErrorKind::NotFound, e),
        })
    }
}

/// The host facts every event carries, collected once at start (`host.*`). IPs and hostname
/// can change at runtime; callers that care refresh by collecting again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// `host.hostname`.
    pub hostname: String,
    /// `host.os.type`.
    pub os_type: OsType,
    /// `host.os.*`.
    pub os: OsInfo,
    /// `host.ip[]`.
    pub ips: Vec<std::net::IpAddr>,
    /// The boot id (Linux), input of process GUIDs.
    pub boot_id: Option<String>,
}

impl HostFacts {
    /// Collects every fact; fails only if the hostname cannot be read.
    pub fn collect() -> Result<HostFacts, HostError> {
        Ok(HostFacts {
            hostname: hostname()?,
            os_type: os_type(),
            os: os_info(),
            ips: crate::ips::host_ips(),
            boot_id: boot_id(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_parsing_handles_quotes_and_escapes() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                    VERSION_ID=\"12\"\nID=debian\n# comment\nHOME_URL='https://x'\nBAD\n\
                    VARIANT=\"a \\\"b\\\"\"\n";
        let info = parse_os_release(text);
        assert_eq!(info.id.as_deref(), Some("debian"));
        assert_eq!(info.name.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(info.version.as_deref(), Some("12"));
        assert_eq!(
            info.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(unquote("\"a \\\"b\\\"\""), "a \"b\"");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_linux_facts() {
        assert_eq!(os_type().as_str(), "linux");
        let h = hostname().unwrap();
        let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(h, expected.trim());
        let b = boot_id().expect("boot id readable on Linux");
        assert_eq!(b.len(), 36, "{b}");
        assert_eq!(b.matches('-').count(), 4);
        assert_eq!(boot_id(), Some(b));
        assert!(uptime_secs().is_some());
        let info = os_info();
        assert!(
            info.id.is_some(),
            "/etc/os-release should name the distribution: {info:?}"
        );
    }
}
