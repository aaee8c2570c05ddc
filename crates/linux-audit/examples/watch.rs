//! Prints reassembled audit events live.
//!
//! ```text
//! sudo cargo run -p agent-linux-audit --example watch -- [--multicast] [--raw] [--seconds N] [RULE_FILE]
//! ```
//!
//! Without a rule file, watches every `execve`. Ctrl-C stops cleanly: our rules are removed
//! and the audit status restored.

#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    linux::run()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the audit watch example needs Linux");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use agent_linux_audit::rule::{compile, parse_rule_file, syscall_name, Arch, RuleLine};
    use agent_linux_audit::session::{AuditSession, Mode, SessionConfig};
    use agent_linux_audit::AuditEvent;

    static STOP: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, Ordering::SeqCst);
    }

    pub fn run() -> Result<(), Box<dyn std::error::Error>> {
        let mut mode = Mode::Unicast;
        let mut raw = false;
        let mut seconds = None;
        let mut file = None;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--multicast" => mode = Mode::Multicast,
                "--raw" => raw = true,
                "--seconds" => seconds = args.next().and_then(|s| s.parse::<u64>().ok()),
                _ => file = Some(a),
            }
        }
        let arch = Arch::native().ok_or("unsupported machine")?;
        let rules = match file {
            Some(f) => parse_rule_file(&std::fs::read_to_string(&f)?, arch)?
                .into_iter()
                .filter_map(|l| match l {
                    RuleLine::Rule { data, .. } => Some(data),
                    RuleLine::Control(c) => {
                        eprintln!("ignoring control line {c:?}");
                        None
                    }
                })
                .collect(),
            None => vec![compile(
                "-a always,exit -F arch=b64 -S execve -k exec",
                arch,
            )?],
        };
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            unsafe {
                libc::signal(
                    sig,
                    on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
                )
            };
        }
        let cfg = SessionConfig {
            mode,
            ..SessionConfig::default()
        };
        let mut session = AuditSession::start(&cfg, &rules)?;
        for c in session.conflicts() {
            eprintln!("warning: {}", c.message());
        }
        eprintln!(
            "{} rules loaded; Ctrl-C to stop",
            session.added_rules().len()
        );
        let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
        while !STOP.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
            for e in session.recv(Duration::from_millis(200))? {
                print_event(&e, raw);
            }
        }
        let stats = session.stats();
        for e in session.stop()? {
            print_event(&e, raw);
        }
        eprintln!("{stats:?}");
        Ok(())
    }

    fn print_event(e: &AuditEvent, raw: bool) {
        let types: Vec<_> = e.records.iter().map(|r| r.type_name()).collect();
        let mut line = format!(
            "{}.{:03} #{} [{}]",
            e.timestamp.secs,
            e.timestamp.millis,
            e.serial,
            types.join(",")
        );
        if let Some(sc) = e.syscall() {
            let name = sc
                .get("arch")
                .and_then(|a| u32::from_str_radix(&a, 16).ok())
                .zip(sc.get_u64("syscall"))
                .and_then(|(a, n)| syscall_name(a, n as u32));
            line += &format!(
                " {} pid={} ppid={} exe={}",
                name.unwrap_or("?"),
                sc.get("pid").unwrap_or_default(),
                sc.get("ppid").unwrap_or_default(),
                sc.get("exe").unwrap_or_default()
            );
        }
        if let Some(argv) = e.execve_args() {
            line += &format!(" argv={argv:?}");
        }
        for p in e.paths() {
            line += &format!(
                " path={}({})",
                p.get("name").unwrap_or_default(),
                p.get("nametype").unwrap_or_default()
            );
        }
        if let Some(a) = e.sockaddr() {
            line += &format!(" addr={a}");
        }
        if !e.keys().is_empty() {
            line += &format!(" key={}", e.keys().join(","));
        }
        if !e.complete {
            line += " (no EOE)";
        }
        println!("{line}");
        if raw {
            for r in &e.records {
                let fields: Vec<String> = r
                    .fields()
                    .map(|f| format!("{}={}", f.key, f.text()))
                    .collect();
                println!("    {} {}", r.type_name(), fields.join(" "));
            }
        }
    }
}
