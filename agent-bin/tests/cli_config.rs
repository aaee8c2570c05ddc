//! `agent config check` on real files, through the real binary: one test per acceptance
//! point of the configuration checker, plus the cases around it.

use std::path::Path;
use std::process::{Command, Output};

const AGENT: &str = env!("CARGO_BIN_EXE_agent");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().expect("agent was killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `yaml` to a temp config.yaml and runs `agent config check <it>`.
fn check(yaml: &str) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    (check_path(&path), dir)
}

fn check_path(path: &Path) -> Run {
    finish(
        Command::new(AGENT)
            .args(["config", "check"])
            .arg(path)
            .env_remove("ENDPOINT_AGENT_ROOT")
            .env_remove("ENDPOINT_AGENT_CONFIG")
            .output()
            .unwrap(),
    )
}

#[test]
fn valid_file_exits_0() {
    let (r, _dir) = check(
        r#"# as users write it
logfiles:
  - filepath: /var/log/nginx/*.log
    intakekey: aB3dE5fG7hJ9kL1mN3pQ
  - filepath: /var/log/app/[a-z]?.log
    intakekey: Zz9yX8wV7uT6sR5qP4oN
HTTPProxyURL: "http://user:pass@proxy.local:3128"
EnableDNSResolutions: true
HashesExcludedPaths:
  - /data/big
roles: [event-collector]
IntakeKey: aB3dE5fG7hJ9kL1mN3pQ
Region: fra2
AutoUpdate: true
"#,
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("config.yaml: OK"), "{}", r.all());
    // Nothing to warn about (EnableDNSResolutions is implemented).
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(!r.all().contains("pass@"), "{}", r.all());
}

#[test]
fn settings_without_effect_are_a_warning_not_silence() {
    let (r, _dir) =
        check("EnableDNSResolutions: true\nroles: [event-collector, compliance-collector]\n");
    assert_eq!(r.code, 0, "{}", r.all());
    // EnableDNSResolutions is implemented: no warning for it.
    assert!(!r.stderr.contains("EnableDNSResolutions"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("line 2, column 26: warning: roles: the compliance-collector role"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.matches("has no effect in this version").count(),
        1,
        "{}",
        r.stderr
    );
}

/// `agent run --config <path>`, stopped by its own failure (or killed after 10 s).
fn run_agent(path: &Path) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(AGENT)
        .args(["run", "--config"])
        .arg(path)
        .env("ENDPOINT_AGENT_ROOT", dir.path())
        .env_remove("ENDPOINT_AGENT_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    finish(child.wait_with_output().unwrap())
}

/// The reported disagreements: values `config check` used to accept and `agent run` then
/// refused (a restart loop under systemd). Now check refuses them, and run refuses them
/// with the same message.
#[test]
fn check_and_run_refuse_the_same_urls_with_the_same_message() {
    for (yaml, why) in [
        (
            "HTTPProxyURL: \"https://proxy:3128\"\n",
            "an https:// proxy (TLS to the proxy itself) is not supported",
        ),
        (
            "IntakeURL: \"http://relay:8080\"\n",
            "plain http:// is not supported",
        ),
        (
            "IntakeURL: \"https://relay..corp\"\n",
            "not a valid DNS name",
        ),
    ] {
        let full = format!("IntakeKey: aB3dE5fG7hJ9kL1mN3pQ\n{yaml}");
        let (r, dir) = check(&full);
        assert_eq!(r.code, 1, "{yaml}: {}", r.all());
        let problem = r
            .stderr
            .lines()
            .find(|l| l.contains(why))
            .unwrap_or_else(|| panic!("{yaml}: no `{why}` in\n{}", r.stderr));
        let at_start = run_agent(&dir.path().join("config.yaml"));
        assert_eq!(at_start.code, 1, "{yaml}: {}", at_start.all());
        assert!(
            at_start.stderr.contains(problem),
            "{yaml}: check said\n{problem}\nrun said\n{}",
            at_start.stderr
        );
    }
}

#[test]
fn a_literal_percent_in_the_proxy_password_is_accepted_as_documented() {
    let (r, _dir) = check("HTTPProxyURL: \"http://bob:S3cret%zzPW@proxy:3128\"\n");
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.all().contains("S3cret"), "{}", r.all());
}

#[test]
fn empty_file_is_valid() {
    let (r, _dir) = check("");
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn broken_yaml_exits_1_with_line_and_column() {
    let (r, _dir) = check("roles: [event-collector]\nlogfiles: [\n");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("config.yaml: line 3, column 1: invalid YAML"),
        "{}",
        r.stderr
    );
}

#[test]
fn wrong_type_exits_1_naming_key_and_expected_type() {
    let (r, _dir) = check("EnableDNSResolutions: true\nHTTPProxyURL: 12\n");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("line 2, column 15"), "{}", r.stderr);
    assert!(r.stderr.contains("HTTPProxyURL"), "{}", r.stderr);
    assert!(r.stderr.contains("expected a string"), "{}", r.stderr);

    let (r, _dir) = check("EnableDNSResolutions: \"yes\"\n");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("EnableDNSResolutions"), "{}", r.stderr);
    assert!(r.stderr.contains("expected a boolean"), "{}", r.stderr);
}

#[test]
fn recursive_glob_exits_1_saying_it_is_not_supported() {
    let (r, _dir) = check("logfiles:\n  - filepath: /var/log/**/x.log\n    intakekey: abc\n");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("`**` is not supported"), "{}", r.stderr);
    assert!(r.stderr.contains("line 2, column 15"), "{}", r.stderr);
}

#[test]
fn proxy_without_port_exits_1_without_echoing_the_password() {
    let (r, _dir) = check("HTTPProxyURL: \"http://u:secret@proxy\"\n");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("HTTPProxyURL"), "{}", r.stderr);
    assert!(r.stderr.contains("missing port"), "{}", r.stderr);
    assert!(!r.all().contains("secret"), "{}", r.all());
}

#[test]
fn other_bad_proxies_never_echo_the_password() {
    for url in [
        "socks5://u:secret@proxy:1080",
        "http://u:secret@proxy:notaport",
        "u:secret@proxy:3128",
        "http://u:secret@:3128",
    ] {
        let (r, _dir) = check(&format!("HTTPProxyURL: \"{url}\"\n"));
        assert_eq!(r.code, 1, "{url}: {}", r.all());
        assert!(!r.all().contains("secret"), "{url}: {}", r.all());
    }
}

#[test]
fn a_proxy_url_under_a_boolean_key_does_not_leak_the_password() {
    let (r, _dir) = check("EnableDNSResolutions: \"http://u:secret@proxy:3128\"\n");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("expected a boolean"), "{}", r.stderr);
    assert!(!r.all().contains("secret"), "{}", r.all());
}

#[test]
fn unknown_keys_are_a_warning_listing_them() {
    let (r, _dir) = check(
        "EnableDNSResolutions: true\nhttpproxyurl: x\nFooBar: 1\nlogfiles:\n  - filepath: /a/*.log\n    intakekey: k\n    format: json\n",
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("warning: unknown keys ignored"),
        "{}",
        r.stderr
    );
    for key in [
        "httpproxyurl (did you mean HTTPProxyURL?)",
        "FooBar",
        "logfiles[0].format",
    ] {
        assert!(r.stderr.contains(key), "{key}: {}", r.stderr);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let (r, _dir) = check(
        "logfiles:\n  - filepath: /var/log/**/a.log\n    intakekey: k1\n  - filepath: relative/*.log\n    intakekey: 'bad key'\nIntakeURL: ftp://relay\n",
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("logfiles[0].filepath"), "{}", r.stderr);
    assert!(r.stderr.contains("logfiles[1].filepath"), "{}", r.stderr);
    assert!(r.stderr.contains("logfiles[1].intakekey"), "{}", r.stderr);
    assert!(r.stderr.contains("IntakeURL"), "{}", r.stderr);
}

#[test]
fn unknown_region_lists_the_valid_ones() {
    let (r, _dir) = check("Region: eu1\n");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("fra1, fra2, mco1, uae1, usa1, sgp1"),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let r = check_path(&dir.path().join("absent.yaml"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("absent.yaml: cannot read"),
        "{}",
        r.stderr
    );
}

#[test]
fn default_path_follows_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    // ENDPOINT_AGENT_ROOT: the installed config.yaml under a temporary root.
    let installed = dir.path().join("etc/endpoint-agent/config.yaml");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::write(&installed, "HTTPProxyURL: 12\n").unwrap();
    let r = finish(
        Command::new(AGENT)
            .args(["config", "check"])
            .env("ENDPOINT_AGENT_ROOT", dir.path())
            .env_remove("ENDPOINT_AGENT_CONFIG")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains(&installed.display().to_string()),
        "{}",
        r.stderr
    );

    // ENDPOINT_AGENT_CONFIG wins over the root.
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "roles: [event-collector]\n").unwrap();
    let r = finish(
        Command::new(AGENT)
            .args(["config", "check"])
            .env("ENDPOINT_AGENT_ROOT", dir.path())
            .env("ENDPOINT_AGENT_CONFIG", &other)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("other.yaml: OK"), "{}", r.all());
}
