//! The generated unit passes `systemd-analyze verify` with nothing on stderr.
#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use agent_service::systemd::unit_file;
use agent_service::ServiceSpec;

#[test]
fn generated_unit_passes_systemd_analyze_verify() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        analyze.is_ok_and(|o| o.status.success()),
        "systemd-analyze is required (apt-get install systemd)"
    );
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart= names an executable file, so point it at a real one.
    let program = dir.path().join("agent");
    std::fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let unit_path = dir.path().join("SEKOIAEndpointAgent.service");
    std::fs::write(&unit_path, unit_file(&ServiceSpec::agent(&program))).unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify complained:\n{stderr}"
    );
}

#[test]
fn verify_catches_a_broken_unit() {
    // Guards the test above against a verify that passes everything (e.g. wrong argument).
    let dir = tempfile::tempdir().unwrap();
    let unit_path = dir.path().join("broken.service");
    std::fs::write(
        &unit_path,
        "[Service]\nExecStart=relative/path\nNoSuchDirective=1\n",
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
        .unwrap();
    assert!(
        !out.stderr.is_empty(),
        "systemd-analyze verify accepted a broken unit"
    );
}
