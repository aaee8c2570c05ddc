//! The auditctl rule compiler: rule text → the kernel's `struct audit_rule_data`.
//!
//! Supports the syntax rule files use: `-a/-A action,list`, `-S` syscalls (names, numbers,
//! `all`), `-F` fields with every operator, `-C` field comparisons, `-k` keys and
//! `-w path -p perms` watches. The bytes equal what auditctl sends, in the form the kernel
//! stores and lists back (the syscall-class bits at the top of the mask cleared), so rules
//! we compile can be compared with the kernel's rule list byte for byte.

use std::fmt;

/// `AUDIT_BITMASK_SIZE`: 32-bit words of the syscall mask.
const BITMASK_WORDS: usize = 64;
/// `AUDIT_MAX_FIELDS`.
pub const MAX_FIELDS: usize = 64;
/// `AUDIT_MAX_KEY_LEN`.
pub const MAX_KEY_LEN: usize = 256;
/// Size of `audit_rule_data` without its string buffer.
pub const RULE_HEADER_LEN: usize = 4 * (3 + BITMASK_WORDS + 3 * MAX_FIELDS + 1);
/// The top 16 bits of the mask select syscall classes; the kernel clears them.
const CLASS_BITS: usize = 16;

/// Field numbers (`AUDIT_*` in `linux/audit.h`).
mod field {
    pub const ARCH: u32 = 11;
    pub const MSGTYPE: u32 = 12;
    pub const EXIT: u32 = 103;
    pub const WATCH: u32 = 105;
    pub const PERM: u32 = 106;
    pub const DIR: u32 = 107;
    pub const FIELD_COMPARE: u32 = 111;
    pub const FILTERKEY: u32 = 210;
}

/// Operators (`AUDIT_EQUAL`, ...), as stored in `fieldflags`.
const OPERATORS: &[(&str, u32)] = &[
    ("!=", 0x3000_0000),
    (">=", 0x6000_0000),
    ("<=", 0x5000_0000),
    ("&=", 0x4800_0000),
    ("=", 0x4000_0000),
    (">", 0x2000_0000),
    ("<", 0x1000_0000),
    ("&", 0x0800_0000),
];
const OP_EQUAL: u32 = 0x4000_0000;
const OP_NOT_EQUAL: u32 = 0x3000_0000;

/// The machine a rule is compiled for: it decides what `b64`/`b32` and syscall names mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86_64 (with i386 as its 32-bit ABI).
    X86_64,
    /// aarch64 (with arm as its 32-bit ABI).
    Aarch64,
}

impl Arch {
    /// The machine this program runs on, if supported.
    pub fn native() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// Its `AUDIT_ARCH_*` value (the 64-bit ABI).
    pub fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => AUDIT_ARCH_X86_64,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }
}

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// `AUDIT_ARCH_I386`.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `AUDIT_ARCH_AARCH64`.
pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
/// `AUDIT_ARCH_ARM`.
pub const AUDIT_ARCH_ARM: u32 = 0x4000_0028;

/// A rule that does not compile: the offending token and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{token:?}: {reason}")]
pub struct RuleError {
    /// The token of the rule text at fault (or the whole rule).
    pub token: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(token: &str, reason: impl Into<String>) -> RuleError {
    RuleError {
        token: token.to_owned(),
        reason: reason.into(),
    }
}

/// A compiled rule: the `audit_rule_data` bytes, ready for `AUDIT_ADD_RULE`/`AUDIT_DEL_RULE`.
#[derive(Clone, PartialEq, Eq)]
pub struct RuleData(pub Vec<u8>);

impl fmt::Debug for RuleData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RuleData({} bytes)", self.0.len())
    }
}

impl RuleData {
    /// `flags` (the filter list, plus `AUDIT_FILTER_PREPEND`).
    pub fn list(&self) -> u32 {
        self.word(0)
    }

    /// `action` (0 never, 2 always).
    pub fn action(&self) -> u32 {
        self.word(1)
    }

    /// Whether the rule compares field `id` (`AUDIT_SADDR_FAM` is 113, ...).
    pub fn has_field(&self, id: u32) -> bool {
        let fc = (self.word(2) as usize).min(MAX_FIELDS);
        (0..fc).any(|i| self.word(3 + BITMASK_WORDS + i) == id)
    }

    /// The filter keys of the rule.
    pub fn keys(&self) -> Vec<String> {
        let fc = (self.word(2) as usize).min(MAX_FIELDS);
        let mut off = 0usize;
        let mut keys = Vec::new();
        for i in 0..fc {
            let f = self.word(3 + BITMASK_WORDS + i);
            let v = self.word(3 + BITMASK_WORDS + MAX_FIELDS + i) as usize;
            if is_string_field(f) {
                let start = RULE_HEADER_LEN + off;
                if f == field::FILTERKEY {
                    if let Some(b) = self.0.get(start..start + v) {
                        keys.extend(String::from_utf8_lossy(b).split('\u{1}').map(str::to_owned));
                    }
                }
                off += v;
            }
        }
        keys
    }

    fn word(&self, i: usize) -> u32 {
        self.0
            .get(4 * i..4 * i + 4)
            .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Fields whose value is a string in the buffer (length in `values`).
fn is_string_field(f: u32) -> bool {
    matches!(f, 13..=17 | 19..=23 | 105 | 107 | 112 | 210)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uid,
    Num,
    Str,
    Path,
    Arch,
    Perm,
    MsgType,
    Exit,
    FileType,
}

/// `-F` field names (auditctl's spelling), numbers and value kinds.
const FIELDS: &[(&str, u32, Kind)] = &[
    ("pid", 0, Kind::Num),
    ("uid", 1, Kind::Uid),
    ("euid", 2, Kind::Uid),
    ("suid", 3, Kind::Uid),
    ("fsuid", 4, Kind::Uid),
    ("gid", 5, Kind::Uid),
    ("egid", 6, Kind::Uid),
    ("sgid", 7, Kind::Uid),
    ("fsgid", 8, Kind::Uid),
    ("auid", 9, Kind::Uid),
    ("loginuid", 9, Kind::Uid),
    ("pers", 10, Kind::Num),
    ("arch", field::ARCH, Kind::Arch),
    ("msgtype", field::MSGTYPE, Kind::MsgType),
    ("subj_user", 13, Kind::Str),
    ("subj_role", 14, Kind::Str),
    ("subj_type", 15, Kind::Str),
    ("subj_sen", 16, Kind::Str),
    ("subj_clr", 17, Kind::Str),
    ("ppid", 18, Kind::Num),
    ("obj_user", 19, Kind::Str),
    ("obj_role", 20, Kind::Str),
    ("obj_type", 21, Kind::Str),
    ("obj_lev_low", 22, Kind::Str),
    ("obj_lev_high", 23, Kind::Str),
    ("loginuid_set", 24, Kind::Num),
    ("sessionid", 25, Kind::Num),
    ("fstype", 26, Kind::Num),
    ("devmajor", 100, Kind::Num),
    ("devminor", 101, Kind::Num),
    ("inode", 102, Kind::Num),
    ("exit", field::EXIT, Kind::Exit),
    ("success", 104, Kind::Num),
    ("path", field::WATCH, Kind::Path),
    ("perm", field::PERM, Kind::Perm),
    ("dir", field::DIR, Kind::Path),
    ("filetype", 108, Kind::FileType),
    ("obj_uid", 109, Kind::Uid),
    ("obj_gid", 110, Kind::Uid),
    ("exe", 112, Kind::Path),
    ("saddr_fam", 113, Kind::Num),
    ("a0", 200, Kind::Num),
    ("a1", 201, Kind::Num),
    ("a2", 202, Kind::Num),
    ("a3", 203, Kind::Num),
];

/// `-C` comparisons (`AUDIT_COMPARE_*`), either order.
const COMPARISONS: &[(&str, &str, u32)] = &[
    ("uid", "obj_uid", 1),
    ("gid", "obj_gid", 2),
    ("euid", "obj_uid", 3),
    ("egid", "obj_gid", 4),
    ("auid", "obj_uid", 5),
    ("suid", "obj_uid", 6),
    ("sgid", "obj_gid", 7),
    ("fsuid", "obj_uid", 8),
    ("fsgid", "obj_gid", 9),
    ("uid", "auid", 10),
    ("uid", "euid", 11),
    ("uid", "fsuid", 12),
    ("uid", "suid", 13),
    ("auid", "fsuid", 14),
    ("auid", "suid", 15),
    ("auid", "euid", 16),
    ("euid", "suid", 17),
    ("euid", "fsuid", 18),
    ("suid", "fsuid", 19),
    ("gid", "egid", 20),
    ("gid", "fsgid", 21),
    ("gid", "sgid", 22),
    ("egid", "fsgid", 23),
    ("egid", "sgid", 24),
    ("sgid", "fsgid", 25),
];

/// Filter lists (`AUDIT_FILTER_*`).
const LISTS: &[(&str, u32)] = &[
    ("user", 0),
    ("task", 1),
    ("exit", 4),
    ("exclude", 5),
    ("filesystem", 6),
    ("io_uring", 7),
];
const LIST_EXIT: u32 = 4;
const FILTER_PREPEND: u32 = 0x10;

/// Compiles one auditctl rule (`-a always,exit -F arch=b64 -S execve -k exec`, or a
/// `-w path -p wa -k key` watch) for machine `arch`.
///
/// Like auditctl, a `-w` path that ends in `/` or is an existing directory on this machine
/// becomes a subtree watch (`dir=`); anything else watches one file (`path=`). User names in
/// uid fields are not resolved: use numbers or `unset`.
pub fn compile_rule(rule: &str, arch: Arch) -> Result<Vec<u8>, RuleError> {
    let tokens = split_args(rule)?;
    Builder::new(arch).build(&tokens, rule)
}

/// [`compile_rule`] returning a [`RuleData`].
pub fn compile(rule: &str, arch: Arch) -> Result<RuleData, RuleError> {
    compile_rule(rule, arch).map(RuleData)
}

struct Builder {
    machine: Arch,
    /// The ABI syscall names resolve in: the machine's 64-bit one until `-F arch=`.
    abi: u32,
    list: Option<u32>,
    action: u32,
    mask: [u32; BITMASK_WORDS],
    syscalls_given: bool,
    fields: Vec<(u32, u32, u32)>,
    buf: Vec<u8>,
    keys: Vec<String>,
    watch: bool,
    perm_given: bool,
}

impl Builder {
    fn new(machine: Arch) -> Self {
        Builder {
            machine,
            abi: machine.audit_arch(),
            list: None,
            action: 0,
            mask: [0; BITMASK_WORDS],
            syscalls_given: false,
            fields: Vec::new(),
            buf: Vec::new(),
            keys: Vec::new(),
            watch: false,
            perm_given: false,
        }
    }

    fn build(mut self, tokens: &[String], rule: &str) -> Result<Vec<u8>, RuleError> {
        let mut it = tokens.iter();
        while let Some(opt) = it.next() {
            let mut arg = || {
                it.next()
                    .map(String::as_str)
                    .ok_or_else(|| err(opt, "missing argument"))
            };
            match opt.as_str() {
                "-a" | "-A" | "-d" => {
                    let a = arg()?;
                    self.action_list(a)?;
                    if opt == "-A" {
                        self.list = self.list.map(|l| l | FILTER_PREPEND);
                    }
                }
                "-S" => {
                    let a = arg()?;
                    self.syscalls(a)?;
                }
                "-F" => {
                    let a = arg()?;
                    self.field(a)?;
                }
                "-C" => {
                    let a = arg()?;
                    self.compare(a)?;
                }
                "-k" => {
                    let a = arg()?;
                    self.key(a)?;
                }
                "-w" | "-W" => {
                    let a = arg()?;
                    if self.list.is_some() {
                        return Err(err(opt, "-w cannot be combined with -a"));
                    }
                    self.watch = true;
                    self.list = Some(LIST_EXIT);
                    self.action = 2;
                    // Like auditctl: a directory is watched as a subtree (AUDIT_DIR, without
                    // a trailing slash), anything else (including a path that does not exist
                    // yet) as one inode.
                    let is_dir = a.len() > 1 && a.ends_with('/')
                        || std::fs::metadata(a).is_ok_and(|m| m.is_dir());
                    let trimmed = if a.len() > 1 {
                        a.trim_end_matches('/')
                    } else {
                        a
                    };
                    let f = if is_dir { field::DIR } else { field::WATCH };
                    self.string_field(f, OP_EQUAL, trimmed, true)?;
                }
                "-p" => {
                    let a = arg()?;
                    if !self.watch {
                        return Err(err(opt, "-p applies to a -w watch; use -F perm= in a rule"));
                    }
                    let p = parse_perm(a)?;
                    self.push_field(field::PERM, p, OP_EQUAL, a)?;
                    self.perm_given = true;
                }
                other => return Err(err(other, "unknown or unsupported option")),
            }
        }
        let list = self
            .list
            .ok_or_else(|| err(rule, "a rule needs -a action,list or -w path"))?;
        if self.watch && !self.perm_given {
            // auditctl's default for a watch without -p: all of rwxa.
            self.push_field(field::PERM, 0xf, OP_EQUAL, rule)?;
        }
        if !self.keys.is_empty() {
            let joined = self.keys.join("\u{1}");
            if joined.len() > MAX_KEY_LEN {
                return Err(err(
                    &joined,
                    format!("keys longer than {MAX_KEY_LEN} bytes"),
                ));
            }
            self.string_field(field::FILTERKEY, OP_EQUAL, &joined, false)?;
        }
        if !self.syscalls_given {
            self.mask = [u32::MAX; BITMASK_WORDS];
        }
        // The kernel keeps class bits out of the stored mask; so do we.
        self.mask[BITMASK_WORDS - 1] &= (1u32 << (32 - CLASS_BITS)) - 1;
        debug_assert!(list == self.list.unwrap_or(LIST_EXIT));
        Ok(self.encode())
    }

    fn action_list(&mut self, a: &str) -> Result<(), RuleError> {
        let (x, y) = a
            .split_once(',')
            .ok_or_else(|| err(a, "expected action,list (e.g. always,exit)"))?;
        let action = |s: &str| match s {
            "never" => Some(0),
            "possible" => Some(1),
            "always" => Some(2),
            _ => None,
        };
        let list = |s: &str| LISTS.iter().find(|(n, _)| *n == s).map(|&(_, v)| v);
        let (act, l) = match (action(x), list(y), action(y), list(x)) {
            (Some(a), Some(l), _, _) | (_, _, Some(a), Some(l)) => (a, l),
            _ => return Err(err(a, "expected action,list with action never|always and list exit|user|exclude|task|filesystem|io_uring")),
        };
        if self.list.is_some() {
            return Err(err(a, "only one -a per rule"));
        }
        self.action = act;
        self.list = Some(l);
        Ok(())
    }

    fn syscalls(&mut self, spec: &str) -> Result<(), RuleError> {
        if self.list.is_some_and(|l| l & !FILTER_PREPEND != LIST_EXIT) {
            return Err(err(spec, "-S is only valid on the exit list"));
        }
        for name in spec.split(',') {
            if name == "all" {
                self.mask = [u32::MAX; BITMASK_WORDS];
            } else {
                let nr = syscall_number(self.abi, name).ok_or_else(|| {
                    err(name, format!("unknown syscall for arch {:#x}", self.abi))
                })?;
                let nr = nr as usize;
                if nr >= BITMASK_WORDS * 32 - CLASS_BITS {
                    return Err(err(name, "syscall number out of range"));
                }
                self.mask[nr / 32] |= 1 << (nr % 32);
            }
        }
        self.syscalls_given = true;
        Ok(())
    }

    fn key(&mut self, k: &str) -> Result<(), RuleError> {
        if k.is_empty() || k.len() > MAX_KEY_LEN {
            return Err(err(k, format!("key must be 1 to {MAX_KEY_LEN} bytes")));
        }
        self.keys.push(k.to_owned());
        Ok(())
    }

    fn field(&mut self, expr: &str) -> Result<(), RuleError> {
        let pos = expr
            .find(['=', '!', '<', '>', '&'])
            .ok_or_else(|| err(expr, "expected name OP value"))?;
        let (name, rest) = expr.split_at(pos);
        let &(op_str, op) = OPERATORS
            .iter()
            .find(|(s, _)| rest.starts_with(s))
            .ok_or_else(|| err(expr, "unknown operator"))?;
        let value = &rest[op_str.len()..];
        if value.is_empty() {
            return Err(err(expr, "missing value"));
        }
        if name == "key" {
            if op != OP_EQUAL {
                return Err(err(expr, "key only supports ="));
            }
            return self.key(value);
        }
        let &(_, num, kind) = FIELDS
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or_else(|| err(name, "unknown field"))?;
        let string_like = matches!(kind, Kind::Str | Kind::Path);
        if string_like && op != OP_EQUAL && op != OP_NOT_EQUAL {
            return Err(err(expr, "string fields only support = and !="));
        }
        let v = match kind {
            Kind::Str => return self.string_field(num, op, value, false),
            Kind::Path => return self.string_field(num, op, value, true),
            Kind::Uid => parse_id(value)?,
            Kind::Num => parse_number(value)?,
            Kind::Exit => parse_exit(value)?,
            Kind::Perm => parse_perm(value)?,
            Kind::FileType => parse_filetype(value)?,
            Kind::MsgType => match crate::msgtype::type_number(value) {
                Some(n) => u32::from(n),
                None => parse_number(value)?,
            },
            Kind::Arch => {
                if self.syscalls_given {
                    return Err(err(expr, "-F arch must come before -S"));
                }
                if op != OP_EQUAL && op != OP_NOT_EQUAL {
                    return Err(err(expr, "arch only supports = and !="));
                }
                let a = parse_arch(self.machine, value)?;
                self.abi = a;
                a
            }
        };
        if num == field::EXIT && self.list.is_some_and(|l| l & !FILTER_PREPEND != LIST_EXIT) {
            return Err(err(expr, "exit is only valid on the exit list"));
        }
        self.push_field(num, v, op, expr)
    }

    fn compare(&mut self, expr: &str) -> Result<(), RuleError> {
        let (l, op, r) = if let Some((l, r)) = expr.split_once("!=") {
            (l, OP_NOT_EQUAL, r)
        } else if let Some((l, r)) = expr.split_once('=') {
            (l, OP_EQUAL, r)
        } else {
            return Err(err(expr, "expected field=field or field!=field"));
        };
        let canon = |s: &str| if s == "loginuid" { "auid" } else { s }.to_owned();
        let (l, r) = (canon(l), canon(r));
        let &(_, _, c) = COMPARISONS
            .iter()
            .find(|(a, b, _)| (*a == l && *b == r) || (*a == r && *b == l))
            .ok_or_else(|| err(expr, "these fields cannot be compared"))?;
        self.push_field(field::FIELD_COMPARE, c, op, expr)
    }

    fn string_field(&mut self, num: u32, op: u32, s: &str, path: bool) -> Result<(), RuleError> {
        if path && !s.starts_with('/') {
            return Err(err(s, "path must be absolute"));
        }
        if s.len() > 4096 {
            return Err(err(s, "value longer than PATH_MAX"));
        }
        self.push_field(num, s.len() as u32, op, s)?;
        self.buf.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn push_field(&mut self, f: u32, v: u32, op: u32, token: &str) -> Result<(), RuleError> {
        if self.fields.len() >= MAX_FIELDS {
            return Err(err(token, format!("more than {MAX_FIELDS} fields")));
        }
        self.fields.push((f, v, op));
        Ok(())
    }

    /// The bytes auditctl sends: the fixed part then exactly `buflen` string bytes.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RULE_HEADER_LEN + self.buf.len());
        let mut w = |x: u32| out.extend_from_slice(&x.to_ne_bytes());
        w(self.list.unwrap_or(LIST_EXIT));
        w(self.action);
        w(self.fields.len() as u32);
        self.mask.iter().for_each(|&m| w(m));
        for col in 0..3 {
            for i in 0..MAX_FIELDS {
                let (f, v, o) = self.fields.get(i).copied().unwrap_or((0, 0, 0));
                w([f, v, o][col]);
            }
        }
        w(self.buf.len() as u32);
        out.extend_from_slice(&self.buf);
        out
    }
}

fn parse_arch(machine: Arch, v: &str) -> Result<u32, RuleError> {
    let a = match (machine, v) {
        (Arch::X86_64, "b64" | "x86_64") => AUDIT_ARCH_X86_64,
        (Arch::X86_64, "b32" | "i386" | "i486" | "i586" | "i686") => AUDIT_ARCH_I386,
        (Arch::Aarch64, "b64" | "aarch64") => AUDIT_ARCH_AARCH64,
        (Arch::Aarch64, "b32" | "arm" | "armv7l") => AUDIT_ARCH_ARM,
        _ => return Err(err(v, format!("arch not supported on {machine:?}"))),
    };
    Ok(a)
}

/// A syscall number by name (or number) in the ABI `audit_arch`.
pub fn syscall_number(audit_arch: u32, name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let id = match audit_arch {
        AUDIT_ARCH_X86_64 => name.parse::<syscalls::x86_64::Sysno>().ok()?.id(),
        AUDIT_ARCH_I386 => name.parse::<syscalls::x86::Sysno>().ok()?.id(),
        AUDIT_ARCH_AARCH64 => name.parse::<syscalls::aarch64::Sysno>().ok()?.id(),
        AUDIT_ARCH_ARM => name.parse::<syscalls::arm::Sysno>().ok()?.id(),
        _ => return None,
    };
    u32::try_from(id).ok()
}

/// A syscall name by number in the ABI `audit_arch` (for displaying `SYSCALL` records).
pub fn syscall_name(audit_arch: u32, nr: u32) -> Option<&'static str> {
    let nr = nr as usize;
    Some(match audit_arch {
        AUDIT_ARCH_X86_64 => syscalls::x86_64::Sysno::new(nr)?.name(),
        AUDIT_ARCH_I386 => syscalls::x86::Sysno::new(nr)?.name(),
        AUDIT_ARCH_AARCH64 => syscalls::aarch64::Sysno::new(nr)?.name(),
        AUDIT_ARCH_ARM => syscalls::arm::Sysno::new(nr)?.name(),
        _ => return None,
    })
}

/// strtol-like: decimal, `0x` hex or `0` octal, optionally negative (stored two's complement).
fn parse_number(v: &str) -> Result<u32, RuleError> {
    let (neg, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v),
    };
    let n = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(h, 16)
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8)
    } else {
        digits.parse::<u64>()
    }
    .map_err(|_| err(v, "not a number"))?;
    if neg {
        let n = i64::try_from(n).map_err(|_| err(v, "number out of range"))?;
        i32::try_from(-n)
            .map(|x| x as u32)
            .map_err(|_| err(v, "number out of range"))
    } else {
        u32::try_from(n).map_err(|_| err(v, "number out of range"))
    }
}

fn parse_id(v: &str) -> Result<u32, RuleError> {
    match v {
        "unset" | "-1" => Ok(u32::MAX),
        _ if v.bytes().all(|b| b.is_ascii_digit()) => parse_number(v),
        // Names would need the target's user database; rules ship numeric ids.
        _ => Err(err(
            v,
            "expected a numeric id or unset (user names are not resolved)",
        )),
    }
}

fn parse_exit(v: &str) -> Result<u32, RuleError> {
    let (neg, name) = match v.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, v),
    };
    if name.starts_with('E') {
        let n = errno_number(name).ok_or_else(|| err(v, "unknown errno name"))?;
        let n = if neg { -n } else { n };
        return Ok(n as u32);
    }
    parse_number(v)
}

fn errno_number(name: &str) -> Option<i32> {
    // Linux errno values stop below 200 (EHWPOISON = 133).
    (1..200).find(|&n| syscalls::Errno::new(n).name() == Some(name))
}

fn parse_perm(v: &str) -> Result<u32, RuleError> {
    let mut p = 0;
    for c in v.chars() {
        let bit = match c {
            'x' => 1,
            'w' => 2,
            'r' => 4,
            'a' => 8,
            _ => return Err(err(v, "permissions are a combination of r, w, x and a")),
        };
        if p & bit != 0 {
            return Err(err(v, "permission repeated"));
        }
        p |= bit;
    }
    if p == 0 {
        return Err(err(v, "empty permissions"));
    }
    Ok(p)
}

fn parse_filetype(v: &str) -> Result<u32, RuleError> {
    Ok(match v {
        "file" => 0o100000,
        "dir" => 0o040000,
        "socket" => 0o140000,
        "link" => 0o120000,
        "character" => 0o020000,
        "block" => 0o060000,
        "fifo" => 0o010000,
        _ => return Err(err(v, "unknown file type")),
    })
}

/// Splits a rule line like a shell: whitespace separates, single and double quotes group.
pub fn split_args(line: &str) -> Result<Vec<String>, RuleError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(x) => cur.push(x),
                        None => return Err(err(line, "unterminated quote")),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            c => {
                in_token = true;
                cur.push(c);
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    Ok(out)
}

/// One meaningful line of a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleLine {
    /// A rule (`-a`, `-A`, `-w`), compiled.
    Rule {
        /// The rule text.
        text: String,
        /// Its bytes.
        data: RuleData,
    },
    /// A control line (`-D`, `-b 8192`, `-e 1`, `-f 1`, `-r 100`, ...), split into tokens,
    /// for the caller to apply or reject.
    Control(Vec<String>),
}

/// A rule file line that failed, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct RuleFileError {
    /// 1-based line number.
    pub line: usize,
    /// The error.
    pub error: RuleError,
}

/// Parses a rule file (auditctl syntax, `#` comments, blank lines ignored).
pub fn parse_rule_file(text: &str, arch: Arch) -> Result<Vec<RuleLine>, RuleFileError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let fail = |error| RuleFileError { line: i + 1, error };
        let tokens = split_args(t).map_err(fail)?;
        match tokens.first().map(String::as_str) {
            Some("-a" | "-A" | "-w") => {
                let data = compile(t, arch).map_err(fail)?;
                out.push(RuleLine::Rule {
                    text: t.to_owned(),
                    data,
                });
            }
            _ => out.push(RuleLine::Control(tokens)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_token() {
        let e = |r: &str| compile_rule(r, Arch::X86_64).unwrap_err();
        assert_eq!(e("-a always,exit -S notasyscall").token, "notasyscall");
        assert_eq!(e("-a always,exit -F bogus=1").token, "bogus");
        assert_eq!(e("-a always,exit -F uid~1").token, "uid~1");
        assert_eq!(e("-a sometimes,exit").token, "sometimes,exit");
        assert_eq!(
            e("-a always,exit -F exit=-ENOTANERRNO").token,
            "-ENOTANERRNO"
        );
        assert_eq!(e("-w relative/path").token, "relative/path");
        assert_eq!(e("-w /etc -p rz").token, "rz");
        assert_eq!(e("-a always,exit -X").token, "-X");
        assert_eq!(e("-a always,exit -S").token, "-S");
        assert_eq!(e("-a always,exit -F uid=bob").token, "bob");
        assert_eq!(e("-a always,exit -F a0=99999999999").token, "99999999999");
        assert_eq!(e("-a always,exit -F arch=aarch64").token, "aarch64");
        assert_eq!(e("-a always,exit -S open -F arch=b32").token, "arch=b32");
        assert_eq!(e("-a always,exit -C uid=obj_gid").token, "uid=obj_gid");
        assert_eq!(e("-a always,user -S open").token, "open");
        assert_eq!(
            e("-F uid=0").reason,
            "a rule needs -a action,list or -w path"
        );
        assert!(e("-w '/tmp/unterminated").reason.contains("unterminated"));
        let long = format!("-a always,exit -k {}", "k".repeat(300));
        assert!(e(&long).reason.contains("256"));
        let many = format!("-a always,exit{}", " -F uid=0".repeat(65));
        assert!(e(&many).reason.contains("64 fields"));
    }

    #[test]
    fn layout_and_accessors() {
        let d = compile(
            "-A exit,never -F arch=b64 -S execve -F pid=42 -k a -k b",
            Arch::X86_64,
        )
        .unwrap();
        assert_eq!(d.list(), LIST_EXIT | FILTER_PREPEND);
        assert_eq!(d.action(), 0);
        assert_eq!(d.keys(), ["a", "b"]);
        assert_eq!(d.0.len(), RULE_HEADER_LEN + 3);
        assert_eq!(syscall_number(AUDIT_ARCH_AARCH64, "execve"), Some(221));
        assert_eq!(syscall_number(AUDIT_ARCH_ARM, "execve"), Some(11));
        assert_eq!(syscall_name(AUDIT_ARCH_X86_64, 59), Some("execve"));
        assert_eq!(parse_number("0x10"), Ok(16));
        assert_eq!(parse_number("010"), Ok(8));
        assert_eq!(parse_number("-1"), Ok(u32::MAX));
        assert_eq!(parse_exit("-EACCES"), Ok(-13i32 as u32));
        assert_eq!(
            split_args(r#"-w "/a b" -k 'x y'"#).unwrap(),
            ["-w", "/a b", "-k", "x y"]
        );
    }

    #[test]
    fn rule_files() {
        let text = "# comment\n\n-D\n-b 8192\n-w /etc/passwd -p wa -k pw\n-a always,exit -S nope\n";
        let e = parse_rule_file(text, Arch::X86_64).unwrap_err();
        assert_eq!(e.line, 6);
        assert_eq!(e.error.token, "nope");
        let ok = parse_rule_file(&text.replace("nope", "open"), Arch::X86_64).unwrap();
        assert_eq!(ok.len(), 4);
        assert_eq!(ok[0], RuleLine::Control(vec!["-D".into()]));
        assert!(matches!(&ok[2], RuleLine::Rule { data, .. } if data.keys() == ["pw"]));
    }
}
