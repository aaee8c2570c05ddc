//! Running uninstall from a temporary copy of the binary: Windows cannot delete the
//! executable of a running process, so `agent.exe uninstall` started from the installed
//! binary hands over to a copy in the temporary directory and exits.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ServiceError;

/// Environment marker set on the copy, so that it never relaunches itself again.
pub const RELAUNCHED_ENV: &str = "ENDPOINT_AGENT_RELAUNCHED_FROM";

/// Whether the running executable is `installed` (compared after resolving links).
pub fn running_from(installed: &Path) -> bool {
    match (
        std::env::current_exe().and_then(|p| p.canonicalize()),
        installed.canonicalize(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// If this process runs from `installed` (and is not already the copy), copies the
/// executable to the temporary directory, starts the copy with the same arguments and returns
/// `Some(0)`: the caller exits at once so the copy can delete `installed`. Returns `None` when
/// the caller should carry on itself.
pub fn from_temp_copy_if_running(installed: &Path) -> Result<Option<u8>, ServiceError> {
    if std::env::var_os(RELAUNCHED_ENV).is_some() || !running_from(installed) {
        return Ok(None);
    }
    let copy = temp_copy_path();
    std::fs::copy(installed, &copy).map_err(|e| ServiceError::io("copy to", &copy, e))?;
    Command::new(&copy)
        .args(std::env::args_os().skip(1))
        .env(RELAUNCHED_ENV, installed)
        .spawn()
        .map_err(|e| ServiceError::io("start", &copy, e))?;
    Ok(Some(0))
}

fn temp_copy_path() -> PathBuf {
    let name = if cfg!(windows) {
        format!("endpoint-agent-uninstall-{}.exe", std::process::id())
    } else {
        format!("endpoint-agent-uninstall-{}", std::process::id())
    };
    std::env::temp_dir().join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_runs_from_itself_and_not_from_elsewhere() {
        let me = std::env::current_exe().unwrap();
        assert!(running_from(&me));
        assert!(!running_from(Path::new("/nonexistent/agent")));
    }
}
