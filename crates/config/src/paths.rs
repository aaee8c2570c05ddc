//! Well-known per-OS paths (binary, config, logs, state), each overridable so that tests
//! can run the real code against a temporary root.
//!
//! Environment variables read by [`Paths::from_env`]:
//!
//! | variable | effect |
//! |---|---|
//! | `ENDPOINT_AGENT_ROOT` | prefix for every default path (`/etc/endpoint-agent/config.yaml` becomes `$ROOT/etc/endpoint-agent/config.yaml`) |
//! | `ENDPOINT_AGENT_BINARY` | where the agent binary is installed |
//! | `ENDPOINT_AGENT_CONFIG` | the config.yaml file |
//! | `ENDPOINT_AGENT_STATE_DIR` | the state directory (ring, checkpoints, agent id) |
//! | `ENDPOINT_AGENT_LOG_DIR` | the log directory; the log file is `agent.log` inside it |
//!
//! Per-path variables win over `ENDPOINT_AGENT_ROOT` and are used as given (not prefixed).
//!
//! On Windows the binary goes under the Program Files folder of the host (the known folder,
//! else `%ProgramFiles%`, else `C:\Program Files`); see [`program_files_dir`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Env var: a root prefix applied to every default path.
pub const ENV_ROOT: &str = "ENDPOINT_AGENT_ROOT";
/// Env var: the installed binary path.
pub const ENV_BINARY: &str = "ENDPOINT_AGENT_BINARY";
/// Env var: the config.yaml path.
pub const ENV_CONFIG: &str = "ENDPOINT_AGENT_CONFIG";
/// Env var: the state directory.
pub const ENV_STATE_DIR: &str = "ENDPOINT_AGENT_STATE_DIR";
/// Env var: the log directory.
pub const ENV_LOG_DIR: &str = "ENDPOINT_AGENT_LOG_DIR";

/// Env var (Windows' own): the Program Files directory, when the known folder is unknown.
pub const ENV_PROGRAM_FILES: &str = "ProgramFiles";

/// File name of the agent's own log inside [`Paths::log_dir`].
pub const LOG_FILE_NAME: &str = "agent.log";

/// The operating systems the agent supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Os {
    /// Linux.
    Linux,
    /// Windows.
    Windows,
    /// macOS.
    Macos,
}

impl Os {
    /// The OS this binary was compiled for. Other Unix systems use the Linux layout.
    pub fn current() -> Os {
        if cfg!(target_os = "windows") {
            Os::Windows
        } else if cfg!(target_os = "macos") {
            Os::Macos
        } else {
            Os::Linux
        }
    }
}

/// Where the agent lives on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The installed agent executable.
    pub binary: PathBuf,
    /// config.yaml.
    pub config_file: PathBuf,
    /// Directory of the agent's own logs.
    pub log_dir: PathBuf,
    /// The agent's own log file (inside `log_dir`).
    pub log_file: PathBuf,
    /// State: on-disk ring, checkpoints, agent id.
    pub state_dir: PathBuf,
}

const WINDOWS_DATA_DIR: &str =
    r"C:\Windows\System32\config\systemprofile\AppData\Local\Sekoia.io\EndpointAgent";

/// Where Windows keeps programs when the host does not say otherwise.
pub const DEFAULT_PROGRAM_FILES: &str = r"C:\Program Files";

/// The Program Files directory: `known_folder` (what `SHGetKnownFolderPath` returns), else
/// `env` (the `ProgramFiles` variable), else [`DEFAULT_PROGRAM_FILES`]. Values that are not
/// absolute Windows paths (or not Unicode) are skipped. Pure, so that the choice is tested
/// on every OS.
pub fn program_files_dir(known_folder: Option<OsString>, env: Option<OsString>) -> String {
    [known_folder, env]
        .into_iter()
        .flatten()
        .filter_map(|v| v.into_string().ok())
        .map(|v| v.trim_end_matches(['\\', '/']).to_owned())
        .find(|v| is_absolute_anywhere(v))
        .unwrap_or_else(|| DEFAULT_PROGRAM_FILES.to_owned())
}

/// The Program Files known folder of this Windows host, if the shell knows it.
#[cfg(windows)]
fn known_program_files() -> Option<OsString> {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramFiles, SHGetKnownFolderPath};

    let mut raw: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: FOLDERID_ProgramFiles is a valid GUID that outlives the call; flags 0 and a
    // null token ask for the current user's default; `raw` is a valid out-pointer.
    let hr =
        unsafe { SHGetKnownFolderPath(&FOLDERID_ProgramFiles, 0, std::ptr::null_mut(), &mut raw) };
    let path = if hr >= 0 && !raw.is_null() {
        // SAFETY: on success `raw` points to a NUL-terminated UTF-16 string owned by us
        // until CoTaskMemFree; the length is found by scanning up to that NUL.
        let wide = unsafe {
            let len = (0..).take_while(|&i| *raw.add(i) != 0).count();
            std::slice::from_raw_parts(raw, len)
        };
        Some(OsString::from_wide(wide))
    } else {
        None
    };
    // SAFETY: the shell allocated `raw` with the COM allocator (also on failure, when it
    // may be null, which CoTaskMemFree accepts); it is not used after this.
    unsafe { CoTaskMemFree(raw as *const std::ffi::c_void) };
    path
}

#[cfg(not(windows))]
fn known_program_files() -> Option<OsString> {
    None
}

impl Paths {
    /// The default layout of `os` (the table in DESIGN.md), with Windows programs under
    /// [`DEFAULT_PROGRAM_FILES`]. Pure: reads no environment.
    pub fn for_os(os: Os) -> Paths {
        Paths::layout(os, DEFAULT_PROGRAM_FILES)
    }

    fn layout(os: Os, program_files: &str) -> Paths {
        match os {
            Os::Linux => Paths {
                binary: "/opt/endpoint-agent/agent".into(),
                config_file: "/etc/endpoint-agent/config.yaml".into(),
                log_dir: "/var/log/endpoint-agent".into(),
                log_file: "/var/log/endpoint-agent/agent.log".into(),
                state_dir: "/var/lib/endpoint-agent".into(),
            },
            Os::Macos => Paths {
                binary: "/Applications/SekoiaEndpointAgent.app/Contents/MacOS/SekoiaEndpointAgent"
                    .into(),
                config_file: "/etc/endpoint-agent/config.yaml".into(),
                log_dir: "/var/log/endpoint-agent".into(),
                log_file: "/var/log/endpoint-agent/agent.log".into(),
                state_dir: "/Library/Application Support/EndpointAgent".into(),
            },
            // Built as strings so the layout is the same whichever OS computes it.
            Os::Windows => Paths {
                binary: format!(r"{program_files}\EndpointAgent\agent.exe").into(),
                config_file: format!(r"{WINDOWS_DATA_DIR}\config.yaml").into(),
                log_dir: format!(r"{WINDOWS_DATA_DIR}\logs").into(),
                log_file: format!(r"{WINDOWS_DATA_DIR}\logs\agent.log").into(),
                state_dir: format!(r"{WINDOWS_DATA_DIR}\state").into(),
            },
        }
    }

    /// The default layout of the OS this binary runs on (on Windows, under the host's
    /// Program Files folder).
    pub fn current() -> Paths {
        Paths::from_lookup(Os::current(), |name| {
            (name == ENV_PROGRAM_FILES)
                .then(|| std::env::var_os(name))
                .flatten()
        })
    }

    /// Every path moved under `root`: `/etc/endpoint-agent/config.yaml` becomes
    /// `<root>/etc/endpoint-agent/config.yaml`; a Windows drive (`C:`) is dropped.
    pub fn with_root(self, root: impl AsRef<Path>) -> Paths {
        let root = root.as_ref();
        Paths {
            binary: reroot(root, &self.binary),
            config_file: reroot(root, &self.config_file),
            log_dir: reroot(root, &self.log_dir),
            log_file: reroot(root, &self.log_file),
            state_dir: reroot(root, &self.state_dir),
        }
    }

    /// [`Paths::current`] adjusted by the `ENDPOINT_AGENT_*` environment variables
    /// (see the module documentation).
    pub fn from_env() -> Paths {
        Paths::from_lookup(Os::current(), |name| std::env::var_os(name))
    }

    /// Like [`Paths::from_env`], for `os` and with a custom variable lookup (tests).
    /// Empty values count as unset. For Windows, `ProgramFiles` is looked up too (after
    /// the known folder, when running on Windows).
    pub fn from_lookup(os: Os, lookup: impl Fn(&str) -> Option<OsString>) -> Paths {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let mut paths = match os {
            Os::Windows => Paths::layout(
                os,
                &program_files_dir(known_program_files(), lookup(ENV_PROGRAM_FILES)),
            ),
            Os::Linux | Os::Macos => Paths::for_os(os),
        };
        if let Some(root) = get(ENV_ROOT) {
            paths = paths.with_root(root);
        }
        if let Some(binary) = get(ENV_BINARY) {
            paths.binary = binary;
        }
        if let Some(config) = get(ENV_CONFIG) {
            paths.config_file = config;
        }
        if let Some(state) = get(ENV_STATE_DIR) {
            paths.state_dir = state;
        }
        if let Some(log_dir) = get(ENV_LOG_DIR) {
            paths.log_file = log_dir.join(LOG_FILE_NAME);
            paths.log_dir = log_dir;
        }
        paths
    }

    /// The directory holding config.yaml.
    pub fn config_dir(&self) -> &Path {
        self.config_file.parent().unwrap_or(Path::new(""))
    }
}

/// Absolute on any of the supported OSes: `/x`, `C:\x`, `C:/x`, `\\server\share`.
pub(crate) fn is_absolute_anywhere(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with('/')
        || p.starts_with(r"\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'\\' | b'/'))
}

/// Joins the parts of `path` (split on both `/` and `\`, drive letter dropped) under `root`.
fn reroot(root: &Path, path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    let mut out = root.to_path_buf();
    for (i, part) in text.split(['/', '\\']).enumerate() {
        let is_drive = i == 0 && part.len() == 2 && part.ends_with(':');
        if part.is_empty() || is_drive || part == "." {
            continue;
        }
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn linux_defaults_match_the_design_table() {
        let p = Paths::for_os(Os::Linux);
        assert_eq!(p.binary, Path::new("/opt/endpoint-agent/agent"));
        assert_eq!(p.config_file, Path::new("/etc/endpoint-agent/config.yaml"));
        assert_eq!(p.log_file, Path::new("/var/log/endpoint-agent/agent.log"));
        assert_eq!(p.state_dir, Path::new("/var/lib/endpoint-agent"));
        assert_eq!(p.config_dir(), Path::new("/etc/endpoint-agent"));
    }

    #[test]
    fn windows_keeps_everything_next_to_the_config() {
        let p = Paths::for_os(Os::Windows);
        let s = |p: &Path| p.to_string_lossy().into_owned();
        assert_eq!(
            s(&p.config_file),
            r"C:\Windows\System32\config\systemprofile\AppData\Local\Sekoia.io\EndpointAgent\config.yaml"
        );
        assert!(s(&p.state_dir).ends_with(r"\EndpointAgent\state"));
        assert!(s(&p.log_file).ends_with(r"\EndpointAgent\logs\agent.log"));
    }

    #[test]
    fn with_root_prefixes_unix_and_windows_paths() {
        let p = Paths::for_os(Os::Linux).with_root("/tmp/t");
        assert_eq!(
            p.config_file,
            Path::new("/tmp/t/etc/endpoint-agent/config.yaml")
        );
        assert_eq!(p.state_dir, Path::new("/tmp/t/var/lib/endpoint-agent"));
        let w = Paths::for_os(Os::Windows).with_root("/tmp/t");
        assert_eq!(
            w.binary,
            Path::new("/tmp/t/Program Files/EndpointAgent/agent.exe")
        );
        let m = Paths::for_os(Os::Macos).with_root("/tmp/t");
        assert_eq!(
            m.state_dir,
            Path::new("/tmp/t/Library/Application Support/EndpointAgent")
        );
    }

    #[test]
    fn env_overrides_win_over_the_root() {
        let vars: HashMap<&str, &str> = [
            (ENV_ROOT, "/r"),
            (ENV_CONFIG, "/c/config.yaml"),
            (ENV_LOG_DIR, "/l"),
            (ENV_STATE_DIR, ""),
        ]
        .into();
        let p = Paths::from_lookup(Os::Linux, |k| vars.get(k).map(OsString::from));
        assert_eq!(p.config_file, Path::new("/c/config.yaml"));
        assert_eq!(p.log_dir, Path::new("/l"));
        assert_eq!(p.log_file, Path::new("/l/agent.log"));
        // Empty means unset: the rooted default stays.
        assert_eq!(p.state_dir, Path::new("/r/var/lib/endpoint-agent"));
        assert_eq!(p.binary, Path::new("/r/opt/endpoint-agent/agent"));
    }

    #[test]
    fn windows_programs_go_under_the_hosts_program_files() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            program_files_dir(os(r"D:\Apps"), os(r"E:\Other")),
            r"D:\Apps"
        );
        assert_eq!(
            program_files_dir(None, os(r"E:\Programme\")),
            r"E:\Programme"
        );
        // Unusable values fall through to the next source, then to the old default.
        assert_eq!(program_files_dir(os(""), os(r"E:\P")), r"E:\P");
        assert_eq!(
            program_files_dir(os("relative"), None),
            DEFAULT_PROGRAM_FILES
        );
        assert_eq!(program_files_dir(None, None), r"C:\Program Files");

        let vars: HashMap<&str, &str> = [(ENV_PROGRAM_FILES, r"D:\Programme")].into();
        let p = Paths::from_lookup(Os::Windows, |k| vars.get(k).map(OsString::from));
        // On Windows the host's known folder comes first; elsewhere there is none.
        let expected = program_files_dir(known_program_files(), os(r"D:\Programme"));
        assert_eq!(
            p.binary.to_string_lossy(),
            format!(r"{expected}\EndpointAgent\agent.exe")
        );
        #[cfg(not(windows))]
        assert_eq!(expected, r"D:\Programme");
        // Only the Windows layout reads it.
        let l = Paths::from_lookup(Os::Linux, |k| vars.get(k).map(OsString::from));
        assert_eq!(l, Paths::for_os(Os::Linux));
        assert_eq!(
            Paths::for_os(Os::Windows).binary.to_string_lossy(),
            r"C:\Program Files\EndpointAgent\agent.exe"
        );
    }

    #[test]
    fn no_env_means_the_os_defaults() {
        assert_eq!(
            Paths::from_lookup(Os::Macos, |_| None),
            Paths::for_os(Os::Macos)
        );
    }
}
