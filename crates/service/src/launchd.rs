//! launchd (macOS): the daemon's property list and `launchctl` operations.

use std::path::{Path, PathBuf};

use crate::command;
use crate::fsutil;
use crate::{ServiceError, ServiceManager, ServiceSpec, ServiceState};

/// Where system-wide daemons' property lists live.
pub const DAEMONS_DIR: &str = "/Library/LaunchDaemons";

/// `launchctl print` exit status for "service not found".
const NOT_FOUND: i32 = 113;

/// The property list that makes launchd run the agent at boot and keep it alive.
pub fn plist(spec: &ServiceSpec) -> String {
    let args: String = std::iter::once(spec.program.to_string_lossy().into_owned())
        .chain(spec.args.iter().cloned())
        .map(|a| format!("\t\t<string>{}</string>\n", xml_escape(&a)))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{label}</string>
	<key>ProgramArguments</key>
	<array>
{args}	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ThrottleInterval</key>
	<integer>5</integer>
	<key>ExitTimeOut</key>
	<integer>30</integer>
	<key>ProcessType</key>
	<string>Standard</string>
</dict>
</plist>
"#,
        label = xml_escape(&spec.name),
    )
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The `.app` bundle a binary runs from (`X.app/Contents/MacOS/exe` → `X.app`), if any.
/// The product ships its binary inside a bundle; the bundle's other files (Info.plist,
/// the signature) belong to the agent as much as the binary does.
pub fn app_bundle_of(binary: &Path) -> Option<&Path> {
    let macos = binary.parent()?;
    let contents = macos.parent()?;
    let bundle = contents.parent()?;
    let is_app = bundle
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("app"));
    (macos.file_name()? == "MacOS" && contents.file_name()? == "Contents" && is_app)
        .then_some(bundle)
}

/// The agent's daemon under launchd, driven through `launchctl`.
#[derive(Debug, Clone)]
pub struct LaunchdManager {
    spec: ServiceSpec,
    daemons_dir: PathBuf,
}

impl LaunchdManager {
    /// Manages `spec` with its property list in [`DAEMONS_DIR`].
    pub fn new(spec: ServiceSpec) -> Self {
        Self {
            spec,
            daemons_dir: PathBuf::from(DAEMONS_DIR),
        }
    }

    /// `/Library/LaunchDaemons/<name>.plist`.
    pub fn plist_path(&self) -> PathBuf {
        self.daemons_dir.join(format!("{}.plist", self.spec.name))
    }

    /// `system/<name>`, launchd's name for the loaded daemon.
    pub fn target(&self) -> String {
        format!("system/{}", self.spec.name)
    }

    fn launchctl(&self, args: &[&str]) -> Result<std::process::Output, ServiceError> {
        command::run("launchctl", args)
    }

    fn is_loaded(&self) -> Result<bool, ServiceError> {
        let out = command::output("launchctl", &["print", &self.target()])?;
        Ok(out.status.success())
    }

    fn bootstrap(&self, plist: &Path) -> Result<(), ServiceError> {
        let plist = plist.to_string_lossy();
        self.launchctl(&["bootstrap", "system", &plist]).map(drop)
    }
}

impl ServiceManager for LaunchdManager {
    fn kind(&self) -> &'static str {
        "launchd"
    }

    fn install(&self) -> Result<(), ServiceError> {
        let path = self.plist_path();
        // launchd ignores property lists that are group- or world-writable.
        agent_os::replace_file(&path, plist(&self.spec).as_bytes(), 0o644)?;
        if self.is_loaded()? {
            // Reload so that a forced reinstall runs the new definition and binary.
            self.launchctl(&["bootout", &self.target()])?;
        }
        self.bootstrap(&path)
    }

    fn uninstall(&self) -> Result<(), ServiceError> {
        if self.is_loaded()? {
            self.launchctl(&["bootout", &self.target()])?;
        }
        fsutil::remove_file_if_exists(&self.plist_path())
    }

    fn start(&self) -> Result<(), ServiceError> {
        if !self.is_loaded()? {
            self.bootstrap(&self.plist_path())?;
        }
        self.launchctl(&["kickstart", &self.target()]).map(drop)
    }

    fn stop(&self) -> Result<(), ServiceError> {
        // With KeepAlive, killing the process would only restart it: unload it instead. The
        // property list stays, so it is loaded again at boot or by `agent service start`.
        if self.is_loaded()? {
            self.launchctl(&["bootout", &self.target()])?;
        }
        Ok(())
    }

    fn restart(&self) -> Result<(), ServiceError> {
        if !self.is_loaded()? {
            return self.start();
        }
        self.launchctl(&["kickstart", "-k", &self.target()])
            .map(drop)
    }

    fn status(&self) -> Result<ServiceState, ServiceError> {
        if !self.plist_path().exists() {
            return Ok(ServiceState::NotInstalled);
        }
        let out = command::output("launchctl", &["print", &self.target()])?;
        if out.status.code() == Some(NOT_FOUND) {
            return Ok(ServiceState::Stopped);
        }
        if !out.status.success() {
            return Err(command::failed(
                "launchctl",
                &["print", &self.target()],
                &out,
            ));
        }
        Ok(parse_print_state(&String::from_utf8_lossy(&out.stdout)))
    }

    fn registration_files(&self) -> Vec<PathBuf> {
        vec![self.plist_path()]
    }
}

/// Reads the `state = ...` line of `launchctl print system/<label>`.
fn parse_print_state(print: &str) -> ServiceState {
    let state = print
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("state = "))
        .unwrap_or("unknown")
        .trim();
    match state {
        "running" => ServiceState::Running,
        "not running" => ServiceState::Stopped,
        other => ServiceState::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plist_runs_the_app_binary_at_load_and_keeps_it_alive() {
        let spec = ServiceSpec::agent(
            "/Applications/SekoiaEndpointAgent.app/Contents/MacOS/SekoiaEndpointAgent",
        );
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>SEKOIAEndpointAgent</string>
	<key>ProgramArguments</key>
	<array>
		<string>/Applications/SekoiaEndpointAgent.app/Contents/MacOS/SekoiaEndpointAgent</string>
		<string>run</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ThrottleInterval</key>
	<integer>5</integer>
	<key>ExitTimeOut</key>
	<integer>30</integer>
	<key>ProcessType</key>
	<string>Standard</string>
</dict>
</plist>
"#;
        assert_eq!(plist(&spec), expected);
    }

    #[test]
    fn plist_escapes_xml_in_paths() {
        let spec = ServiceSpec::agent("/Users/a&b/<agent>");
        let text = plist(&spec);
        assert!(text.contains("<string>/Users/a&amp;b/&lt;agent&gt;</string>"));
        assert!(!text.contains("a&b"));
    }

    #[test]
    fn plist_lives_in_launch_daemons_under_the_service_name() {
        let m = LaunchdManager::new(ServiceSpec::agent("/x"));
        assert_eq!(
            m.plist_path(),
            PathBuf::from("/Library/LaunchDaemons/SEKOIAEndpointAgent.plist")
        );
        assert_eq!(m.target(), "system/SEKOIAEndpointAgent");
    }

    #[test]
    fn the_bundle_of_an_app_binary_is_found() {
        let bin =
            Path::new("/Applications/SekoiaEndpointAgent.app/Contents/MacOS/SekoiaEndpointAgent");
        assert_eq!(
            app_bundle_of(bin),
            Some(Path::new("/Applications/SekoiaEndpointAgent.app"))
        );
        assert_eq!(app_bundle_of(Path::new("/opt/endpoint-agent/agent")), None);
        assert_eq!(app_bundle_of(Path::new("/x/Contents/MacOS/agent")), None);
        assert_eq!(app_bundle_of(Path::new("agent")), None);
    }

    #[test]
    fn print_state_is_parsed() {
        let print = "system/SEKOIAEndpointAgent = {\n\tactive count = 1\n\tstate = running\n\tprogram = /x\n}\n";
        assert_eq!(parse_print_state(print), ServiceState::Running);
        assert_eq!(
            parse_print_state("x = {\n\tstate = not running\n}"),
            ServiceState::Stopped
        );
        assert_eq!(
            parse_print_state("x = {\n\tstate = spawn scheduled\n}"),
            ServiceState::Other("spawn scheduled".into())
        );
    }
}
