//! Issue 22 acceptance, through the real agent binary and a real HTTPS intake on
//! 127.0.0.1: a file rotated while the agent is stopped (defect 1), a damaged agent id
//! (defect 6), config errors and unfollowable paths (defect 7).

#![cfg(target_os = "linux")]

mod support;

use std::os::unix::process::ExitStatusExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_testkit::Intake;
use support::{all_lines_arrived, config_check, delivery, write_lines, Install};

/// Waits until agent.log contains `needle`.
fn wait_log(install: &Install, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if install.agent_log().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The reproduction, with SIGKILL: 1 000 lines shipped; killed; 500 lines
/// appended; `mv app.log app.log.1` (outside the `*.log` glob); 500 lines in a new
/// app.log; start. Before the fix lines 1000–1499 never arrived and nothing was logged.
#[test]
fn lines_of_a_file_rotated_while_the_agent_was_killed_are_delivered() {
    let intake = Intake::start().unwrap();
    let install = Install::new(&intake);
    let log = install.log_path();
    let mut agent = install.spawn(&intake);
    install.wait_ready(&agent);
    write_lines(&log, 0..1000);
    assert!(
        all_lines_arrived(&intake, 1000, Duration::from_secs(30)),
        "first 1000 lines\n{}",
        agent.diagnostics()
    );
    // A checkpoint covers them (written every second while anything changed).
    std::thread::sleep(Duration::from_millis(1500));
    agent.kill9();

    write_lines(&log, 1000..1500);
    std::fs::rename(&log, install.watched.join("app.log.1")).unwrap();
    write_lines(&log, 1500..2000);

    let mut agent = install.spawn(&intake);
    let arrived = all_lines_arrived(&intake, 2000, Duration::from_secs(30));
    let d = delivery(&intake.records(), 2000);
    assert!(
        arrived && d.missing.is_empty(),
        "missing {} lines (first {:?})\n{}",
        d.missing.len(),
        &d.missing[..d.missing.len().min(10)],
        agent.diagnostics()
    );
    assert!(
        d.foreign.is_empty(),
        "{:?}",
        &d.foreign[..d.foreign.len().min(3)]
    );
    // After SIGKILL, at most what the tailer accepted since its last checkpoint repeats.
    let bound = usize::try_from(agent_logfile::Options::default().duplicate_bound()).unwrap();
    assert!(d.duplicates <= bound, "{} duplicates", d.duplicates);
    assert!(
        wait_log(
            &install,
            "renamed while the agent was stopped",
            Duration::from_secs(5)
        ),
        "the agent log says what happened\n{}",
        agent.diagnostics()
    );
    assert!(install.agent_log().contains("app.log.1"));
    assert!(agent.stop().success(), "{}", agent.diagnostics());
    println!(
        "rotated while killed: 2000 lines, {} duplicates",
        d.duplicates
    );
}

/// A garbage agent_id is restored from its backup (same id); with both copies garbage
/// the new id is announced loudly on stderr and in the agent log. A FIFO matched by the
/// glob is reported once in the agent log.
#[test]
fn a_damaged_agent_id_is_restored_or_its_change_announced() {
    let intake = Intake::start().unwrap();
    let install = Install::new(&intake);
    let fifo = install.watched.join("pipe.log");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut agent = install.spawn(&intake);
    install.wait_ready(&agent);
    let id_file = install.state.join("agent_id");
    let original = std::fs::read_to_string(&id_file).unwrap();
    assert_eq!(
        std::fs::read_to_string(install.state.join("agent_id.bak")).unwrap(),
        original
    );
    // Several scans later the FIFO was reported once.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(agent.stop().success(), "{}", agent.diagnostics());
    let log = install.agent_log();
    assert_eq!(
        log.matches("is a FIFO").count(),
        1,
        "one warning for the FIFO\n{log}"
    );

    std::fs::write(&id_file, b"\x00\x00garbage").unwrap();
    let mut agent = install.spawn(&intake);
    install.wait_ready(&agent);
    assert!(agent.stop().success(), "{}", agent.diagnostics());
    assert_eq!(
        std::fs::read_to_string(&id_file).unwrap(),
        original,
        "same id"
    );
    assert!(
        agent.stderr().contains("restored from agent_id.bak"),
        "{}",
        agent.diagnostics()
    );
    assert!(install.agent_log().contains("restored from agent_id.bak"));

    std::fs::write(&id_file, b"garbage").unwrap();
    std::fs::write(install.state.join("agent_id.bak"), b"").unwrap();
    let mut agent = install.spawn(&intake);
    install.wait_ready(&agent);
    assert!(agent.stop().success(), "{}", agent.diagnostics());
    let new = std::fs::read_to_string(&id_file).unwrap();
    assert_ne!(new, original);
    let stderr = agent.stderr();
    assert!(
        stderr.contains("WARNING: the agent id CHANGED") && stderr.contains(new.trim()),
        "{}",
        agent.diagnostics()
    );
    assert!(
        install.agent_log().contains("NEW host"),
        "{}",
        agent.diagnostics()
    );
}

/// Config errors found at `agent run` are in agent.log, not only on stderr; every
/// wrong-typed value is listed, by `agent run` and `agent config check` alike.
#[test]
fn config_errors_reach_the_agent_log_and_all_of_them_are_listed() {
    let intake = Intake::start().unwrap();
    let install = Install::new(&intake);
    let text = std::fs::read_to_string(&install.config).unwrap();
    std::fs::write(
        &install.config,
        format!("{text}HTTPProxyURL: 12\nEnableDNSResolutions: maybe\nHashesExcludedPaths: 12\n"),
    )
    .unwrap();
    let mut agent = install.spawn(&intake);
    let status = agent
        .wait_exit(Duration::from_secs(20))
        .expect("the agent refuses to start");
    assert_eq!(status.code(), Some(1), "{}", agent.diagnostics());
    assert_eq!(status.signal(), None);
    let log = install.agent_log();
    for key in [
        "HTTPProxyURL",
        "EnableDNSResolutions",
        "HashesExcludedPaths",
    ] {
        assert!(
            log.contains(key),
            "{key} in agent.log\n{}",
            agent.diagnostics()
        );
        assert!(agent.stderr().contains(key), "{key} on stderr");
    }
    assert!(log.contains("ERROR"), "{log}");

    let (code, stderr) = config_check(&install.config);
    assert_eq!(code, 1, "{stderr}");
    let problems: Vec<&str> = stderr.lines().filter(|l| l.contains(": line ")).collect();
    assert_eq!(problems.len(), 3, "{stderr}");
}

/// `config check` warns about a directory, a FIFO and a symlink loop matched by a
/// `filepath` glob (exit 0: the file is usable).
#[test]
fn config_check_warns_about_paths_it_would_not_follow() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("app.log"), b"").unwrap();
    std::fs::create_dir(logs.join("old.log")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(logs.join("pipe.log"))
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink(logs.join("loop.log"), logs.join("loop.log")).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "logfiles:\n  - filepath: {}/*.log\n    intakekey: k1\n",
            logs.display()
        ),
    )
    .unwrap();
    let (code, stderr) = config_check(&config);
    assert_eq!(code, 0, "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 3, "{stderr}");
    assert!(stderr.contains("old.log is a directory"), "{stderr}");
    assert!(stderr.contains("pipe.log is a FIFO"), "{stderr}");
    assert!(stderr.contains("loop.log cannot be resolved"), "{stderr}");
    assert!(!stderr.contains("app.log"), "{stderr}");
}
