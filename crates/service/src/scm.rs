//! Windows service control manager (SCM): the service's registration parameters.
//!
//! Kept free of Windows APIs so that what we register is unit-tested on every OS; the
//! `windows` module turns these into `windows-service` calls.

use std::path::PathBuf;
use std::time::Duration;

use crate::ServiceSpec;

/// How the SCM starts the service at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartType {
    /// Started at boot, after the auto-start services (`delayed-auto`): the agent needs the
    /// network stack, not a head start on the boot.
    DelayedAuto,
}

/// What the SCM does when the service process dies without reporting `Stopped`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Delay before each successive restart; the last one repeats.
    pub restart_delays: Vec<Duration>,
    /// A run without failure this long resets the failure count.
    pub reset_after: Duration,
    /// Also restart when the service stops itself with a non-zero exit code.
    pub on_non_crash_failures: bool,
}

/// Everything the SCM is told about the agent's service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmParameters {
    /// Service (key) name.
    pub name: String,
    /// Display name in `services.msc` and `Get-Service`.
    pub display_name: String,
    /// Description in `services.msc`.
    pub description: String,
    /// Installed `agent.exe`.
    pub executable: PathBuf,
    /// Arguments after the executable (`run`).
    pub args: Vec<String>,
    /// Start type.
    pub start: StartType,
    /// `None`: LocalSystem, which the Security event log and ETW kernel providers require.
    pub account: Option<String>,
    /// Restart policy.
    pub failure: FailurePolicy,
    /// Time the service gets to flush before a system shutdown continues.
    pub preshutdown_timeout: Duration,
}

impl ScmParameters {
    /// The agent's registration.
    pub fn for_spec(spec: &ServiceSpec) -> Self {
        Self {
            name: spec.name.clone(),
            display_name: spec.display_name.clone(),
            description: spec.description.clone(),
            executable: spec.program.clone(),
            args: spec.args.clone(),
            start: StartType::DelayedAuto,
            account: None,
            failure: FailurePolicy {
                restart_delays: vec![
                    Duration::from_secs(5),
                    Duration::from_secs(5),
                    Duration::from_secs(30),
                ],
                reset_after: Duration::from_secs(24 * 3600),
                on_non_crash_failures: true,
            },
            preshutdown_timeout: Duration::from_secs(30),
        }
    }

    /// The command line the SCM stores (`ImagePath`) and runs. The executable is quoted when
    /// it contains blanks: an unquoted `C:\Program Files\...` path is the classic
    /// privilege-escalation hole (Windows would try `C:\Program.exe` first).
    pub fn image_path(&self) -> String {
        std::iter::once(self.executable.to_string_lossy().into_owned())
            .chain(self.args.iter().cloned())
            .map(|a| quote_windows_arg(&a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes one argument the way `CommandLineToArgvW` parses it back: double quotes around
/// arguments with blanks or quotes, backslashes doubled only before a quote.
pub fn quote_windows_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.chars().any(|c| matches!(c, ' ' | '\t' | '\n' | '"')) {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            c => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ScmParameters {
        ScmParameters::for_spec(&ServiceSpec::agent(
            r"C:\Program Files\EndpointAgent\agent.exe",
        ))
    }

    #[test]
    fn image_path_quotes_the_program_files_path() {
        assert_eq!(
            params().image_path(),
            r#""C:\Program Files\EndpointAgent\agent.exe" run"#
        );
    }

    #[test]
    fn registration_is_the_documented_one() {
        let p = params();
        assert_eq!(p.name, "SEKOIAEndpointAgent");
        assert_eq!(p.display_name, "SEKOIA.IO Endpoint Agent");
        assert_eq!(p.args, vec!["run".to_owned()]);
        assert_eq!(p.start, StartType::DelayedAuto);
        assert_eq!(p.account, None, "must run as LocalSystem");
        assert_eq!(
            p.failure.restart_delays,
            vec![
                Duration::from_secs(5),
                Duration::from_secs(5),
                Duration::from_secs(30)
            ]
        );
        assert!(p.failure.on_non_crash_failures);
    }

    #[test]
    fn windows_quoting_round_trips_the_tricky_cases() {
        assert_eq!(quote_windows_arg("run"), "run");
        assert_eq!(quote_windows_arg(""), "\"\"");
        assert_eq!(quote_windows_arg(r"C:\a b\"), r#""C:\a b\\""#);
        assert_eq!(quote_windows_arg(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quote_windows_arg(r#"a\"b"#), r#""a\\\"b""#);
        assert_eq!(quote_windows_arg(r"C:\no\spaces"), r"C:\no\spaces");
    }
}
