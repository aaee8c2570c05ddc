//! The parser of Linux `/proc/PID/stat` (see proc(5)).
//!
//! Field 2, the command name, is the one hard part: it is whatever the process set with
//! `prctl(PR_SET_NAME)` or its executable's name, up to 15 bytes, and may hold spaces,
//! parentheses (`") ("` included), newlines and bytes that are not UTF-8. It is the only
//! field in parentheses and every later field is a number or a state letter, so it ends at
//! the *last* `)`; fields are counted from there. The parser is pure, so it is tested on
//! every OS; reading the file is the caller's business.

/// The fields of one `/proc/PID/stat` line that the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 1: process id.
    pub pid: u32,
    /// Field 2: command name, without the parentheses (non-UTF-8 bytes replaced by U+FFFD).
    pub comm: String,
    /// Field 3: state (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
    /// Field 4: parent process id.
    pub ppid: u32,
    /// Field 14: user-mode CPU time, in clock ticks.
    pub utime: u64,
    /// Field 15: kernel-mode CPU time, in clock ticks.
    pub stime: u64,
    /// Field 22: start time, in clock ticks since boot. With the boot id and the pid it
    /// identifies one process across pid reuse.
    pub starttime: u64,
    /// Field 24: resident set size, in pages.
    pub rss_pages: u64,
}

/// Why a `/proc/PID/stat` line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcStatError {
    /// No `(` ... `)` around the command name.
    #[error("/proc/PID/stat: no command name in parentheses")]
    NoComm,
    /// A field is missing or not a number.
    #[error("/proc/PID/stat: field {field} ({name}) is missing or malformed")]
    Field {
        /// The field number (1-based, as in proc(5)).
        field: usize,
        /// Its name in proc(5).
        name: &'static str,
    },
}

impl ProcStat {
    /// Parses the content of a `/proc/PID/stat` file (bytes, since the command name need not
    /// be UTF-8).
    pub fn parse(bytes: &[u8]) -> Result<ProcStat, ProcStatError> {
        let open = bytes
            .iter()
            .position(|&b| b == b'(')
            .ok_or(ProcStatError::NoComm)?;
        let close = bytes
            .iter()
            .rposition(|&b| b == b')')
            .filter(|&c| c > open)
            .ok_or(ProcStatError::NoComm)?;
        let pid = std::str::from_utf8(&bytes[..open])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(ProcStatError::Field {
                field: 1,
                name: "pid",
            })?;
        let comm = String::from_utf8_lossy(&bytes[open + 1..close]).into_owned();
        // After the command name everything is ASCII; anything else is a malformed field.
        let rest = std::str::from_utf8(&bytes[close + 1..]).unwrap_or("");
        // `rest` starts at field 3: field N is fields[N - 3].
        let fields: Vec<&str> = rest.split_ascii_whitespace().take(22).collect();
        let field = |n: usize, name: &'static str| {
            fields
                .get(n - 3)
                .copied()
                .ok_or(ProcStatError::Field { field: n, name })
        };
        let number = |n: usize, name: &'static str| {
            field(n, name)?
                .parse::<u64>()
                .map_err(|_| ProcStatError::Field { field: n, name })
        };
        let state = {
            let s = field(3, "state")?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => c,
                _ => {
                    return Err(ProcStatError::Field {
                        field: 3,
                        name: "state",
                    })
                }
            }
        };
        let ppid = u32::try_from(number(4, "ppid")?).map_err(|_| ProcStatError::Field {
            field: 4,
            name: "ppid",
        })?;
        Ok(ProcStat {
            pid,
            comm,
            state,
            ppid,
            utime: number(14, "utime")?,
            stime: number(15, "stime")?,
            starttime: number(22, "starttime")?,
            rss_pages: number(24, "rss")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A line as the kernel formats it (fs/proc/array.c), with the given values in the fields
    /// we read and plausible values elsewhere.
    fn line(pid: u32, comm: &[u8], state: char, ppid: u32, times: [u64; 3], rss: u64) -> Vec<u8> {
        let [utime, stime, start] = times;
        let mut v = format!("{pid} (").into_bytes();
        v.extend_from_slice(comm);
        v.extend_from_slice(
            format!(
                ") {state} {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} {stime} 0 0 20 0 1 0 \
                 {start} 8192000 {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n"
            )
            .as_bytes(),
        );
        v
    }

    #[test]
    fn reads_the_fields_of_a_real_line() {
        let text = b"1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 25 17 0 0 20 0 1 0 999 \
                     8192000 321 18446744073709551615\n";
        assert_eq!(
            ProcStat::parse(text),
            Ok(ProcStat {
                pid: 1234,
                comm: "a b) c".into(),
                state: 'S',
                ppid: 1,
                utime: 25,
                stime: 17,
                starttime: 999,
                rss_pages: 321,
            })
        );
    }

    #[test]
    fn hostile_command_names_do_not_shift_fields() {
        for comm in [
            &b") ("[..],
            b"x) S 1 2 (",
            b"(",
            b")",
            b"))",
            b"",
            b"a\nb",
            b"\xff\xfe",
            b"1 2 3 4 5 6 7 8",
        ] {
            let parsed = ProcStat::parse(&line(42, comm, 'R', 7, [1, 2, 3], 4)).unwrap();
            assert_eq!(parsed.comm, String::from_utf8_lossy(comm), "{comm:?}");
            assert_eq!(
                (parsed.pid, parsed.state, parsed.ppid),
                (42, 'R', 7),
                "{comm:?}"
            );
            assert_eq!(
                (
                    parsed.utime,
                    parsed.stime,
                    parsed.starttime,
                    parsed.rss_pages
                ),
                (1, 2, 3, 4)
            );
        }
    }

    #[test]
    fn malformed_lines_name_the_field() {
        assert_eq!(ProcStat::parse(b"garbage"), Err(ProcStatError::NoComm));
        assert_eq!(ProcStat::parse(b"1 ) x ("), Err(ProcStatError::NoComm));
        assert_eq!(
            ProcStat::parse(b"x (a) S 1"),
            Err(ProcStatError::Field {
                field: 1,
                name: "pid"
            })
        );
        assert_eq!(
            ProcStat::parse(b"1 (a) S 1 2 3"),
            Err(ProcStatError::Field {
                field: 14,
                name: "utime"
            })
        );
        // Cut just before rss (field 24).
        let full = line(1, b"a", 'S', 1, [1, 2, 3], 4);
        let bad = &full[..full.windows(9).position(|w| w == b" 8192000 ").unwrap() + 8];
        assert!(matches!(
            ProcStat::parse(bad),
            Err(ProcStatError::Field { field: 24, .. })
        ));
        assert!(matches!(
            ProcStat::parse(b"1 (a) SS 1 2 3"),
            Err(ProcStatError::Field { field: 3, .. })
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn parses_our_own_process() {
        let own = ProcStat::parse(&std::fs::read("/proc/self/stat").unwrap()).unwrap();
        assert_eq!(own.pid, std::process::id());
        // The main thread waits for the test threads.
        assert!("RS".contains(own.state), "{own:?}");
        assert!(own.starttime > 0 && own.rss_pages > 0, "{own:?}");
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(own.comm, comm.trim_end_matches('\n'));
    }

    proptest! {
        /// Any command name the kernel can produce (up to 15 bytes, anything but NUL) comes
        /// back intact with every numeric field.
        #[test]
        fn any_command_name_round_trips(
            pid in 1u32..=4_194_304,
            comm in proptest::collection::vec(1u8..=255, 0..=15),
            state in proptest::sample::select(vec!['R', 'S', 'D', 'Z', 'T', 't', 'X', 'I']),
            ppid in 0u32..=4_194_304,
            utime: u64,
            stime: u64,
            start: u64,
            rss in 0u64..=1 << 40,
        ) {
            let parsed = ProcStat::parse(&line(pid, &comm, state, ppid, [utime, stime, start], rss));
            prop_assert_eq!(parsed, Ok(ProcStat {
                pid,
                comm: String::from_utf8_lossy(&comm).into_owned(),
                state,
                ppid,
                utime,
                stime,
                starttime: start,
                rss_pages: rss,
            }));
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ProcStat::parse(&bytes);
        }
    }
}
