//! Building the agent for each release target, and checking what came out.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::host;

/// A target `cargo xtask dist` builds here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Release name (`linux-x86_64`): file names and the update manifest's target key.
    pub name: &'static str,
    /// Rust target triple.
    pub triple: &'static str,
    /// The C compiler for ring's build script and, for Linux, the linker driver; with the
    /// Debian package that provides it.
    pub cc: (&'static str, &'static str),
    /// Name of the executable.
    pub exe: &'static str,
}

/// Linux x86_64: static musl, runs on every glibc or musl distribution (kernel 3.10+).
pub const LINUX_X86_64: Target = Target {
    name: "linux-x86_64",
    triple: "x86_64-unknown-linux-musl",
    cc: ("musl-gcc", "musl-tools"),
    exe: "agent",
};
/// Linux aarch64: static musl, cross-compiled with Debian's aarch64 gcc as C compiler and
/// linker driver (the musl C runtime comes with Rust's target).
pub const LINUX_AARCH64: Target = Target {
    name: "linux-aarch64",
    triple: "aarch64-unknown-linux-musl",
    cc: ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    exe: "agent",
};
/// Windows x86_64, cross-linked with mingw-w64.
pub const WINDOWS_X86_64: Target = Target {
    name: "windows-x86_64",
    triple: "x86_64-pc-windows-gnu",
    cc: ("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64"),
    exe: "agent.exe",
};

/// Every target built here, in build order.
pub const TARGETS: [Target; 3] = [LINUX_X86_64, LINUX_AARCH64, WINDOWS_X86_64];

impl Target {
    /// `x86_64`/`aarch64`.
    pub fn arch(&self) -> &'static str {
        self.name.rsplit('-').next().unwrap_or(self.name)
    }

    /// Whether this is a Linux target.
    pub fn is_linux(&self) -> bool {
        self.name.starts_with("linux-")
    }

    fn env_triple(&self) -> String {
        self.triple.replace('-', "_")
    }
}

/// Where cargo puts its output (honours `CARGO_TARGET_DIR` and cargo config).
pub fn target_dir(root: &Path) -> Result<PathBuf, String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata output: {e}"))?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata has no target_directory".to_owned())
}

/// Builds the release agent for `target` and returns the path of the binary.
///
/// Paths of the checkout and of cargo's registry are remapped so that the binary does not
/// depend on where the sources lie; the git commit is passed in explicitly.
pub fn build(root: &Path, target: &Target, git_sha: &str) -> Result<PathBuf, String> {
    let cargo_home = std::env::var("CARGO_HOME")
        .ok()
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.cargo")))
        .unwrap_or_default();
    let mut flags = vec![format!(
        "--remap-path-prefix={}=/build/endpoint-agent",
        root.display()
    )];
    if !cargo_home.is_empty() {
        flags.push(format!("--remap-path-prefix={cargo_home}=/cargo"));
    }
    let t = target.env_triple();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root)
        .args(["build", "--locked", "--release", "-p", "endpoint-agent"])
        .args(["--bin", "agent", "--target", target.triple])
        .env("AGENT_GIT_SHA", git_sha)
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
    let cc_var = format!("CC_{t}");
    if std::env::var_os(&cc_var).is_none() {
        cmd.env(&cc_var, target.cc.0);
    }
    if target.is_linux() && target.triple.starts_with("aarch64") {
        let linker_var = format!("CARGO_TARGET_{}_LINKER", t.to_uppercase());
        if std::env::var_os(&linker_var).is_none() {
            cmd.env(linker_var, target.cc.0);
        }
    }
    eprintln!("xtask dist: building {} ({})", target.name, target.triple);
    host::run(&mut cmd)?;
    let bin = target_dir(root)?
        .join(target.triple)
        .join("release")
        .join(target.exe);
    if !bin.is_file() {
        return Err(format!("the build left no binary at {}", bin.display()));
    }
    Ok(bin)
}

/// Checks that an ELF binary needs no dynamic loader (static or static-pie), so it runs on
/// any distribution whatever its C library.
pub fn check_static_elf(bytes: &[u8]) -> Result<(), String> {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let truncated = || "truncated ELF header".to_owned();
    let phoff = u64_at(0x20).ok_or_else(truncated)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(truncated)? as usize;
    let phnum = u16_at(0x38).ok_or_else(truncated)? as usize;
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize).ok_or_else(truncated)?;
        if p_type == PT_INTERP {
            return Err(
                "the binary is dynamically linked (it has a PT_INTERP program header)".into(),
            );
        }
    }
    Ok(())
}

/// Runs `binary --version` (through `runner`, e.g. an emulator, when given) and returns the
/// first line.
pub fn version_output(runner: Option<&str>, binary: &Path) -> Result<String, String> {
    let mut cmd = match runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let out = cmd
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --version failed ({}): {}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// Whether `agent --version` output names `version` (`v0.1.0` or `v0.1.0+<sha>`).
pub fn version_matches(output: &str, version: &str) -> bool {
    output
        .strip_prefix('v')
        .map(|v| v.split('+').next() == Some(version))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_output_must_name_the_package_version() {
        assert!(version_matches("v0.1.0+51fe201d", "0.1.0"));
        assert!(version_matches("v0.1.0", "0.1.0"));
        assert!(!version_matches("v0.1.1+51fe201d", "0.1.0"));
        assert!(!version_matches("0.1.0", "0.1.0"));
        assert!(!version_matches("v0.1.0-rc.1", "0.1.0"));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_dynamically_linked_binary_is_refused() {
        // The test binary itself is linked against the host's glibc.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let err = check_static_elf(&me).unwrap_err();
        assert!(err.contains("PT_INTERP"), "{err}");
        assert!(check_static_elf(b"MZ\x90\x00").is_err());
    }

    #[test]
    fn target_names_follow_the_update_manifest() {
        let names: Vec<_> = TARGETS.iter().map(|t| (t.name, t.arch())).collect();
        assert_eq!(
            names,
            [
                ("linux-x86_64", "x86_64"),
                ("linux-aarch64", "aarch64"),
                ("windows-x86_64", "x86_64")
            ]
        );
    }
}
