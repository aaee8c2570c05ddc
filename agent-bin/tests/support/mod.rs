//! Shared harness of the issue-22 acceptance tests (self_healing.rs, soak.rs): a temporary
//! installation, the real agent binary as a child process, a real HTTPS intake on
//! 127.0.0.1 (agent-testkit), numbered log lines and their accounting.
#![allow(dead_code)]

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use agent_testkit::{Intake, Record};

pub const AGENT_KEY: &str = "agent-key-1";
pub const LINES_KEY: &str = "lines-key-1";

/// A temporary installation: config, state dir, log dir, and the watched log directory.
pub struct Install {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
    pub logs: PathBuf,
    pub watched: PathBuf,
    /// Audit rule file for `ENDPOINT_AGENT_AUDIT_RULES`; `None`: no audit collector.
    pub audit_rules: Option<PathBuf>,
}

impl Install {
    /// Watches `watched/*.log`; the agent does not start the audit collector (roles).
    pub fn new(intake: &Intake) -> Install {
        Self::with_intake_url(&intake.url())
    }

    /// Like [`Install::new`], with the agent sent to `intake_url` (a relay in front of
    /// the intake).
    pub fn with_intake_url(intake_url: &str) -> Install {
        Self::with_audit(intake_url, None)
    }

    /// Like [`Install::with_intake_url`]; with `audit_rule` (one rule in auditctl syntax)
    /// the audit collector runs too, with that rule instead of the default set. Only one
    /// process may own the kernel audit stream: such a test holds the kernel audit test
    /// lock and restores the kernel's audit state itself.
    pub fn with_audit(intake_url: &str, audit_rule: Option<&str>) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (config, state, logs, watched) = (
            root.join("config.yaml"),
            root.join("state"),
            root.join("log"),
            root.join("watched"),
        );
        for d in [&state, &logs, &watched] {
            std::fs::create_dir_all(d).unwrap();
        }
        // Exists before the very first start (which starts existing files at their end).
        std::fs::write(watched.join("app.log"), b"").unwrap();
        // The default roles start the audit collector; this one does not.
        let roles = if audit_rule.is_some() {
            ""
        } else {
            "roles: [compliance-collector]\n"
        };
        std::fs::write(
            &config,
            format!(
                "IntakeKey: {AGENT_KEY}\nIntakeURL: {}\nAutoUpdate: false\n{roles}logfiles:\n  - filepath: {}/*.log\n    intakekey: {LINES_KEY}\n",
                intake_url,
                watched.display()
            ),
        )
        .unwrap();
        let audit_rules = audit_rule.map(|rule| {
            let path = root.join("audit.rules");
            std::fs::write(&path, format!("{rule}\n")).unwrap();
            path
        });
        Install {
            dir,
            config,
            state,
            logs,
            watched,
            audit_rules,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.watched.join("app.log")
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.logs.join("agent.log")).unwrap_or_default()
    }

    pub fn env(&self, cmd: &mut Command) {
        cmd.env("ENDPOINT_AGENT_ROOT", self.dir.path())
            .env("ENDPOINT_AGENT_STATE_DIR", &self.state)
            .env("ENDPOINT_AGENT_LOG_DIR", &self.logs)
            .env("ENDPOINT_AGENT_CONFIG", &self.config)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy");
    }

    /// Starts `agent run`; stdout/stderr go to files in the temporary root.
    pub fn spawn(&self, intake: &Intake) -> Agent {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let out = self.dir.path().join(format!("agent-{n}.out"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--stats-interval")
            .arg("3600")
            .arg("--extra-ca")
            .arg(intake.ca_file())
            .env("ENDPOINT_AGENT_BATCH_DELAY_MS", "100")
            .env("ENDPOINT_AGENT_BACKOFF_MAX_MS", "1000")
            .env_remove("ENDPOINT_AGENT_AUDIT_RULES")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap());
        self.env(&mut cmd);
        if let Some(rules) = &self.audit_rules {
            cmd.env("ENDPOINT_AGENT_AUDIT_RULES", rules);
        }
        Agent {
            child: cmd.spawn().expect("spawn the agent binary"),
            out,
            agent_log: self.logs.join("agent.log"),
        }
    }

    /// Waits until the tailer made its first scan (it writes its checkpoint file then).
    pub fn wait_ready(&self, agent: &Agent) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .state
            .join("logfile")
            .join("logfile-checkpoints")
            .exists()
        {
            assert!(
                Instant::now() < deadline,
                "the agent never started its tailer\n{}",
                agent.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The agent child process; killed (SIGKILL) and reaped on drop.
pub struct Agent {
    pub child: Child,
    pub out: PathBuf,
    pub agent_log: PathBuf,
}

impl Agent {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold Child).
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let s = self.wait_exit(Duration::from_secs(10)).expect("reap");
        assert_eq!(s.signal(), Some(libc::SIGKILL));
    }

    /// SIGTERM and wait for the orderly exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no exit after SIGTERM\n{}", self.diagnostics()))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default()
    }

    /// What the agent printed and logged, for failure messages.
    pub fn diagnostics(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- agent stderr ---\n{}\n--- agent.log (tail) ---\n{}",
            tail(read(&self.out.with_extension("err"))),
            tail(read(&self.agent_log))
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Line number `seq`: mixed bytes (non-ASCII, quotes, a tab, invalid UTF-8).
pub fn line(seq: u64) -> Vec<u8> {
    let mut l = format!("L{seq:08} caf\u{e9} \"quoted\"\tfield=").into_bytes();
    if seq % 7 == 0 {
        l.push(0xff);
    }
    l.extend_from_slice(b" end");
    l
}

pub fn seq_of(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload.get(1..9)?).ok()?.parse().ok()
}

pub fn lines_bytes(range: std::ops::Range<u64>) -> Vec<u8> {
    let mut buf = Vec::new();
    for seq in range {
        buf.extend_from_slice(&line(seq));
        buf.push(b'\n');
    }
    buf
}

pub fn write_lines(path: &Path, range: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(&lines_bytes(range)).unwrap();
}

/// What the intake received of lines `0..total`.
#[derive(Debug)]
pub struct Delivery {
    /// Lines never received.
    pub missing: Vec<u64>,
    /// Extra copies received (count of duplicates).
    pub duplicates: usize,
    /// Sequence numbers received more than once.
    pub duplicated: Vec<u64>,
    /// Payloads that are not one of our lines byte for byte.
    pub foreign: Vec<String>,
}

pub fn delivery(records: &[Record], total: u64) -> Delivery {
    let mut count = vec![0usize; total as usize];
    let mut foreign = Vec::new();
    for r in records.iter().filter(|r| r.key == LINES_KEY) {
        match seq_of(&r.payload).filter(|&s| s < total && r.payload == line(s)) {
            Some(s) => count[s as usize] += 1,
            None => foreign.push(String::from_utf8_lossy(&r.payload).into_owned()),
        }
    }
    Delivery {
        missing: (0..total).filter(|&s| count[s as usize] == 0).collect(),
        duplicates: count.iter().map(|&c| c.saturating_sub(1)).sum(),
        duplicated: (0..total).filter(|&s| count[s as usize] > 1).collect(),
        foreign,
    }
}

/// Waits until every line `0..total` arrived at least once.
pub fn all_lines_arrived(intake: &Intake, total: u64, timeout: Duration) -> bool {
    intake.wait_until(timeout, |recs| {
        let mut seen = vec![false; total as usize];
        for r in recs.iter().filter(|r| r.key == LINES_KEY) {
            if let Some(s) = seq_of(&r.payload).filter(|&s| s < total) {
                seen[s as usize] = true;
            }
        }
        seen.iter().all(|&b| b)
    })
}

/// Runs `agent config check PATH`: exit code and stderr.
pub fn config_check(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["config", "check"])
        .arg(path)
        .env_remove("ENDPOINT_AGENT_ROOT")
        .env_remove("ENDPOINT_AGENT_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
