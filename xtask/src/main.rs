//! `cargo xtask`: project automation that would otherwise live in shell scripts.
//!
//! - `cargo xtask test`: installs the Debian packages the tests need (when run as root on a
//!   Debian-like host and they are missing), refuses to run without them, then runs
//!   `cargo test --workspace`.
//! - `cargo xtask ci`: what `.ci/run` runs.
//! - `cargo xtask bench peers`: the audit collectors against auditd and laurel on an exec
//!   storm (see [`bench`]; docs/bench/).
//! - `cargo xtask dist`: the release packages of every supported host into `dist/`
//!   (see [`dist`] and docs/packaging.md).

mod bench;
mod dist;
mod host;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use host::{have, is_root, run};

/// Tools the test suite drives for real, and the Debian package that provides each.
const PREREQUISITES: &[(&str, &str)] = &[
    ("auditctl", "auditd"),
    ("tinyproxy", "tinyproxy"),
    ("systemd-analyze", "systemd"),
    ("systemd-nspawn", "systemd-container"),
    ("debootstrap", "debootstrap"),
    ("rpm", "rpm"),
    ("minisign", "minisign"),
    // The DNS capture tests run a real resolver and client in network namespaces.
    ("dnsmasq", "dnsmasq-base"),
    ("dig", "bind9-dnsutils"),
    ("ip", "iproute2"),
    // The audit tests change firewall rules (NETFILTER_CFG) and drop privileges.
    ("nft", "nftables"),
    ("setpriv", "util-linux"),
    ("unshare", "util-linux"),
    // The ring's I/O-fault tests make files immutable; the kernel tests serialize with flock.
    ("chattr", "e2fsprogs"),
    ("flock", "util-linux"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("ci") => run(Command::new("bash").arg(root().join(".ci/run"))),
        Some("dist") => dist::main(&root(), &args[1..]),
        Some("bench") => bench::main(&root(), &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|ci|dist|bench> [args]\n\n{}\n{}",
                dist::USAGE,
                bench::USAGE
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn test(extra: &[String]) -> Result<(), String> {
    if !is_root() {
        return Err(
            "the tests drive the kernel audit subsystem, services and a proxy: run them as root"
                .into(),
        );
    }
    let missing: Vec<&str> = PREREQUISITES
        .iter()
        .filter(|(tool, _)| !have(tool))
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        if !have("apt-get") {
            return Err(format!(
                "missing test prerequisites (Debian packages): {}",
                missing.join(" ")
            ));
        }
        eprintln!("xtask: installing {}", missing.join(" "));
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        // Package scripts may start daemons that the tests must own themselves.
        let _ = Command::new("pkill").args(["-x", "auditd"]).status();
        let _ = Command::new("pkill").args(["-x", "tinyproxy"]).status();
        let _ = Command::new("pkill").args(["-x", "dnsmasq"]).status();
    }
    for (tool, pkg) in PREREQUISITES {
        if !have(tool) {
            return Err(format!(
                "prerequisite `{tool}` (package {pkg}) is still missing"
            ));
        }
    }
    run(Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["test", "--workspace", "--locked"])
        .args(extra))
}
