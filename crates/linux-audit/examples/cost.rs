//! The collector's user-space cost per exec, without the kernel: the records the kernel sends
//! for one `/bin/true` exec (SYSCALL, BPRM_FCAPS, EXECVE, CWD, two PATH, PROCTITLE, EOE, as
//! netlink payloads) go `N` times, each exec with its own pid and serial, through what the
//! live collector does with them — `parse_netlink`, reassembly, the live normalizer (process
//! table, `/proc` lookups of a pid that is already gone, the parent from the table) — and the
//! JSON the agent's writer makes of the event.
//!
//! ```text
//! cargo run --profile bench -p agent-linux-audit --example cost -- [EXECS]
//! valgrind --tool=callgrind target/release/examples/cost 20000   # instructions per exec
//! ```
//!
//! Meant for instruction counts (stable on a busy machine, unlike times): it prints the
//! execs, events and JSON bytes so that two builds can be checked to do the same work.
#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::time::Instant;

    use agent_linux_audit::normalize::{Normalized, Normalizer};
    use agent_linux_audit::proctable::{Limits, ProcTable};
    use agent_linux_audit::{parse_netlink, Reassembler};

    let execs: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    // Above any pid_max (at most 2^22): never a live process, like a `/bin/true` gone by
    // the time its records are read. The parent is this process (alive, in the table).
    const FIRST_PID: u32 = 5_000_000;
    let ppid = std::process::id();
    let mut procs = ProcTable::new(agent_host::boot_id().unwrap_or_default(), Limits::default());
    procs.scan();
    let mut normalizer = Normalizer::new(procs);
    let mut reassembler = Reassembler::default();
    let mut out = Vec::new();
    let mut json = Vec::new();
    let (mut events, mut bytes) = (0u64, 0u64);
    let mut payload = String::new();
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        // A second ahead: every exec is later than this process's start (the parent check
        // compares start times), whatever the millisecond field says.
        + 1;
    let start = Instant::now();
    for i in 0..execs {
        let serial = 1000 + i;
        let pid = FIRST_PID + i;
        let head = format!("audit({epoch}.{:03}:{serial}): ", i % 1000);
        let records: [(u16, String); 8] = [
            (
                1300,
                format!(
                    "arch=c000003e syscall=59 success=yes exit=0 a0=556272aaa3b0 a1=556272a910a0 \
                 a2=556272aa3b80 a3=a120050bf4222db4 items=2 ppid={ppid} pid={pid} \
                 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 \
                 tty=(none) ses=4294967295 comm=\"true\" exe=\"/usr/bin/true\" \
                 subj=unconfined key=(null)"
                ),
            ),
            (
                1321,
                "fver=0 fp=0 fi=0 fe=0 old_pp=000001fffeffffff old_pi=0 \
                    old_pe=000001fffeffffff old_pa=0 pp=000001fffeffffff pi=0 \
                    pe=000001fffeffffff pa=0 frootid=0"
                    .to_owned(),
            ),
            (1309, "argc=1 a0=\"/bin/true\"".to_owned()),
            (1307, "cwd=\"/tmp\"".to_owned()),
            (
                1302,
                "item=0 name=\"/bin/true\" inode=247857 dev=fe:00 mode=0100755 ouid=0 \
                    ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 \
                    cap_frootid=0"
                    .to_owned(),
            ),
            (
                1302,
                "item=1 name=\"/lib64/ld-linux-x86-64.so.2\" inode=325843 dev=fe:00 \
                    mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 \
                    cap_fe=0 cap_fver=0 cap_frootid=0"
                    .to_owned(),
            ),
            (1327, "proctitle=\"/bin/true\"".to_owned()),
            (1320, String::new()),
        ];
        let now = Instant::now();
        for (t, body) in &records {
            payload.clear();
            payload.push_str(&head);
            payload.push_str(body);
            if let Ok(r) = parse_netlink(*t, payload.as_bytes()) {
                reassembler.push_at(r, now, &mut out);
            }
        }
        for ev in out.drain(..) {
            if let Ok(n) = normalizer.normalize(&ev) {
                let e = match n {
                    Normalized::Ready(e) | Normalized::NeedsHash { event: e, .. } => e,
                };
                json.clear();
                e.write_json(&mut json)?;
                events += 1;
                bytes += json.len() as u64;
            }
        }
    }
    let took = start.elapsed();
    println!(
        "{execs} execs, {events} events, {bytes} JSON bytes, {:.2} µs/exec",
        took.as_secs_f64() * 1e6 / f64::from(execs.max(1))
    );
    if std::env::var_os("COST_SHOW").is_some() {
        println!("{}", String::from_utf8_lossy(&json));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the audit cost example runs on Linux only");
}
