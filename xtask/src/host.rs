//! The build host: running commands and installing missing Debian packages.

use std::process::Command;

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether `tool` is on `PATH`.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `cmd`, failing with its status when it fails.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Whether `thing` is there: an absolute path that exists, or a command on `PATH`.
fn present(thing: &str) -> bool {
    if thing.starts_with('/') {
        std::path::Path::new(thing).exists()
    } else {
        have(thing)
    }
}

/// Makes sure each `(tool, Debian package)` is there (`tool`: a command, or an absolute path
/// for a file such as a header): installs the missing packages with apt-get when running
/// as root on a Debian-like host, else fails naming them.
pub fn ensure_tools(what: &str, tools: &[(&str, &str)]) -> Result<(), String> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(tool, _)| !present(tool))
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !have("apt-get") {
        return Err(format!(
            "missing {what} prerequisites (Debian packages): {}; install them \
             (apt-get install {}) or run as root to have them installed",
            missing.join(" "),
            missing.join(" ")
        ));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    for (tool, pkg) in tools {
        if !present(tool) {
            return Err(format!(
                "prerequisite `{tool}` (package {pkg}) is still missing"
            ));
        }
    }
    Ok(())
}
