//! A reassembled audit event: every record the kernel emitted under one serial.

use crate::msgtype;
use crate::record::{AuditRecord, AuditTime, Value};
use crate::sockaddr::SockAddr;

/// All records of one event, in arrival order (without the closing `EOE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The serial shared by the records.
    pub serial: u32,
    /// The time of the first record.
    pub timestamp: AuditTime,
    /// The records.
    pub records: Vec<AuditRecord>,
    /// True when the event was closed by an `EOE` or is a single-record user-space message;
    /// false when it was closed by timeout, eviction or flush.
    pub complete: bool,
}

impl AuditEvent {
    /// The first record of type `t`.
    pub fn record(&self, t: u16) -> Option<&AuditRecord> {
        self.records.iter().find(|r| r.record_type == t)
    }

    /// All records of type `t`.
    pub fn records_of(&self, t: u16) -> impl Iterator<Item = &AuditRecord> {
        self.records.iter().filter(move |r| r.record_type == t)
    }

    /// The `SYSCALL` record.
    pub fn syscall(&self) -> Option<&AuditRecord> {
        self.record(msgtype::AUDIT_SYSCALL)
    }

    /// The syscall's name, from the `SYSCALL` record's `arch` and number (`execve`).
    pub fn syscall_name(&self) -> Option<&'static str> {
        let sc = self.syscall()?;
        let arch = u32::from_str_radix(&sc.get("arch")?, 16).ok()?;
        let nr = u32::try_from(sc.get_u64("syscall")?).ok()?;
        crate::rule::syscall_name(arch, nr)
    }

    /// The `PATH` records, ordered by `item`.
    pub fn paths(&self) -> Vec<&AuditRecord> {
        let mut p: Vec<_> = self.records_of(msgtype::AUDIT_PATH).collect();
        p.sort_by_key(|r| r.get_u64("item").unwrap_or(u64::MAX));
        p
    }

    /// The working directory from the `CWD` record.
    pub fn cwd(&self) -> Option<String> {
        Some(self.record(msgtype::AUDIT_CWD)?.get("cwd")?.into_owned())
    }

    /// The arguments of an `execve` from its `EXECVE` record(s). Long arguments the kernel
    /// split into `aN[i]` chunks (possibly over several records) are joined.
    pub fn execve_args(&self) -> Option<Vec<String>> {
        let mut recs = self.records_of(msgtype::AUDIT_EXECVE).peekable();
        recs.peek()?;
        let mut args: Vec<Vec<u8>> = Vec::new();
        for r in recs {
            for f in r.fields() {
                let Some(rest) = f.key.strip_prefix('a') else {
                    continue;
                };
                let n = rest.split_once('[').map_or(rest, |(n, _)| n);
                let Ok(n) = n.parse::<usize>() else {
                    continue;
                };
                if n >= args.len() {
                    if n > 1 << 20 {
                        continue;
                    }
                    args.resize(n + 1, Vec::new());
                }
                match f.value {
                    Value::Hex(b) => args[n].extend_from_slice(b),
                    _ => args[n].extend_from_slice(f.raw.as_bytes()),
                }
            }
        }
        Some(
            args.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect(),
        )
    }

    /// The process title split into its NUL-separated arguments.
    pub fn proctitle(&self) -> Option<Vec<String>> {
        let f = self.record(msgtype::AUDIT_PROCTITLE)?.field("proctitle")?;
        Some(match f.value {
            Value::Hex(b) => b
                .split(|&c| c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
            _ => vec![f.raw.to_owned()],
        })
    }

    /// The decoded address of the `SOCKADDR` record.
    pub fn sockaddr(&self) -> Option<&SockAddr> {
        self.record(msgtype::AUDIT_SOCKADDR)?.sockaddr()
    }

    /// The rule key(s) of the `SYSCALL` record (several keys are `\x01`-separated).
    pub fn keys(&self) -> Vec<String> {
        self.syscall()
            .and_then(|r| r.field("key"))
            .filter(|f| *f.value != Value::Null)
            .map(|f| f.text().split('\u{1}').map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use crate::reassembly::Reassembler;
    use crate::record::parse_line;

    fn event(lines: &[&str]) -> super::AuditEvent {
        let mut r = Reassembler::default();
        for l in lines {
            assert!(r.push(parse_line(l).unwrap()).is_empty());
        }
        let mut ev = r.flush();
        assert_eq!(ev.len(), 1);
        ev.remove(0)
    }

    #[test]
    fn long_arguments_split_over_execve_records_are_joined() {
        let e = event(&[
            r#"type=SYSCALL msg=audit(1.000:5): arch=c000003e syscall=59 success=yes exit=0 pid=10 key=(null)"#,
            r#"type=EXECVE msg=audit(1.000:5): argc=3 a0="ls" a1_len=8 a1[0]=41424344"#,
            r#"type=EXECVE msg=audit(1.000:5): a1[1]="EFGH" a2="-l""#,
            r#"type=PROCTITLE msg=audit(1.000:5): proctitle=6C7300414243444546474800"#,
            r#"type=PATH msg=audit(1.000:5): item=1 name="/lib/ld.so" nametype=NORMAL"#,
            r#"type=PATH msg=audit(1.000:5): item=0 name="/bin/ls" nametype=NORMAL"#,
        ]);
        assert_eq!(e.execve_args().unwrap(), ["ls", "ABCDEFGH", "-l"]);
        assert_eq!(e.proctitle().unwrap(), ["ls", "ABCDEFGH", ""]);
        let names: Vec<_> = e
            .paths()
            .iter()
            .map(|p| p.get("name").unwrap().into_owned())
            .collect();
        assert_eq!(names, ["/bin/ls", "/lib/ld.so"]);
        assert!(e.keys().is_empty());
        assert_eq!(e.syscall_name(), Some("execve"));
        assert_eq!(e.cwd(), None);
        assert!(e.sockaddr().is_none());
    }
}
