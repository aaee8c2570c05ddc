//! A neutral description of one Endpoint Security message, in the JSON shape `eslogger`
//! (built into macOS 13 and later) prints.
//!
//! The mapper works on these types only, so it compiles and is tested on every OS with
//! `eslogger` JSON; on macOS the binding fills the same types from the live
//! `es_message_t`. Field names are those of the C structures (`es_process_t`,
//! `es_event_exec_t`, ...), as `eslogger` writes them. Reading is lenient: fields that are
//! missing take their default, unknown fields are ignored, and an event kind this crate
//! does not map is kept as [`EsEvent::Other`] with its name, so one unexpected message
//! never stops the stream.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `es_event_type_t` values of the events this crate maps (from `EndpointSecurity/ESTypes.h`).
pub mod event_type {
    /// `ES_EVENT_TYPE_NOTIFY_EXEC`.
    pub const NOTIFY_EXEC: u32 = 9;
    /// `ES_EVENT_TYPE_NOTIFY_FORK`.
    pub const NOTIFY_FORK: u32 = 11;
    /// `ES_EVENT_TYPE_NOTIFY_CLOSE`.
    pub const NOTIFY_CLOSE: u32 = 12;
    /// `ES_EVENT_TYPE_NOTIFY_CREATE`.
    pub const NOTIFY_CREATE: u32 = 13;
    /// `ES_EVENT_TYPE_NOTIFY_EXIT`.
    pub const NOTIFY_EXIT: u32 = 15;
    /// `ES_EVENT_TYPE_NOTIFY_RENAME`.
    pub const NOTIFY_RENAME: u32 = 25;
    /// `ES_EVENT_TYPE_NOTIFY_SETMODE`.
    pub const NOTIFY_SETMODE: u32 = 29;
    /// `ES_EVENT_TYPE_NOTIFY_SETOWNER`.
    pub const NOTIFY_SETOWNER: u32 = 30;
    /// `ES_EVENT_TYPE_NOTIFY_UNLINK`.
    pub const NOTIFY_UNLINK: u32 = 32;
    /// `ES_EVENT_TYPE_NOTIFY_WRITE`.
    pub const NOTIFY_WRITE: u32 = 33;
    /// `ES_EVENT_TYPE_NOTIFY_AUTHENTICATION` (macOS 13).
    pub const NOTIFY_AUTHENTICATION: u32 = 111;
    /// `ES_EVENT_TYPE_NOTIFY_OPENSSH_LOGIN` (macOS 13).
    pub const NOTIFY_OPENSSH_LOGIN: u32 = 120;
    /// `ES_EVENT_TYPE_NOTIFY_SU` (macOS 14).
    pub const NOTIFY_SU: u32 = 128;
    /// `ES_EVENT_TYPE_NOTIFY_SUDO` (macOS 14).
    pub const NOTIFY_SUDO: u32 = 131;
}

/// `audit_token_to_auid` of a process with no login user (`AU_DEFAULTID`).
pub const AU_DEFAULTID: u32 = u32::MAX;

/// One message (`es_message_t`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EsMessage {
    /// Message layout version (6 on macOS 13, 7 on macOS 14, 8 on macOS 15).
    pub version: u32,
    /// When the event happened, RFC 3339 with nanoseconds (`2024-03-05T09:12:44.318210250Z`).
    pub time: String,
    /// `es_event_type_t`; see [`event_type`].
    pub event_type: u32,
    /// Per event type sequence number of this client: a gap means messages were dropped.
    pub seq_num: u64,
    /// Sequence number over all event types of this client (message version 4 and later).
    pub global_seq_num: u64,
    /// The process that caused the event (for `exec`, the image before the exec).
    pub process: EsProcess,
    /// The event itself.
    pub event: EsEvent,
}

/// `audit_token_t`, as `eslogger` unpacks it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AuditToken {
    /// Process id.
    #[serde(deserialize_with = "lenient_u32")]
    pub pid: u32,
    /// Incremented by the kernel at every exec and pid reuse: with `pid`, it names one
    /// process image instance for the life of a boot.
    #[serde(deserialize_with = "lenient_u32")]
    pub pidversion: u32,
    /// Real user id.
    #[serde(deserialize_with = "lenient_u32")]
    pub ruid: u32,
    /// Effective user id.
    #[serde(deserialize_with = "lenient_u32")]
    pub euid: u32,
    /// Real group id.
    #[serde(deserialize_with = "lenient_u32")]
    pub rgid: u32,
    /// Effective group id.
    #[serde(deserialize_with = "lenient_u32")]
    pub egid: u32,
    /// Audit (login) user id; [`AU_DEFAULTID`] when none.
    #[serde(deserialize_with = "lenient_u32")]
    pub auid: u32,
    /// Audit session id.
    #[serde(deserialize_with = "lenient_u32")]
    pub asid: u32,
}

/// `es_process_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EsProcess {
    /// Identity and credentials.
    pub audit_token: AuditToken,
    /// Parent pid (the current parent; see `original_ppid`).
    #[serde(deserialize_with = "lenient_u32")]
    pub ppid: u32,
    /// Parent pid at creation.
    #[serde(deserialize_with = "lenient_u32")]
    pub original_ppid: u32,
    /// Process group id.
    #[serde(deserialize_with = "lenient_u32")]
    pub group_id: u32,
    /// Session id.
    #[serde(deserialize_with = "lenient_u32")]
    pub session_id: u32,
    /// Code-signing flags (`CS_VALID`, `CS_SIGNED`, ...; `<kern/cs_blobs.h>`).
    pub codesigning_flags: u32,
    /// Signed by Apple as part of the OS.
    pub is_platform_binary: bool,
    /// Itself an Endpoint Security client.
    pub is_es_client: bool,
    /// Code directory hash, hex.
    #[serde(deserialize_with = "null_as_default")]
    pub cdhash: String,
    /// Signing identifier (`com.apple.curl`); absent for unsigned code.
    pub signing_id: Option<String>,
    /// Team identifier of the signing certificate; absent for Apple and ad-hoc code.
    pub team_id: Option<String>,
    /// The executable.
    pub executable: EsFile,
    /// Controlling terminal.
    pub tty: Option<EsFile>,
    /// Start time, RFC 3339 (message version 3 and later).
    pub start_time: Option<String>,
    /// The parent's token (message version 4 and later).
    pub parent_audit_token: Option<AuditToken>,
    /// The token of the process responsible for this one (the app, for its helpers).
    pub responsible_audit_token: Option<AuditToken>,
}

/// `es_file_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EsFile {
    /// Absolute path.
    #[serde(deserialize_with = "null_as_default")]
    pub path: String,
    /// The path was longer than ES reports.
    pub path_truncated: bool,
    /// The file's `stat`.
    pub stat: Option<EsStat>,
}

/// `struct stat` of an [`EsFile`]; only the fields the mapper uses are typed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EsStat {
    /// Device.
    pub st_dev: u64,
    /// Inode.
    pub st_ino: u64,
    /// Type and permission bits.
    pub st_mode: u32,
    /// Owner.
    pub st_uid: u32,
    /// Group.
    pub st_gid: u32,
    /// Size in bytes.
    pub st_size: u64,
    /// Birth time, RFC 3339 as `eslogger` writes it (kept as given, like `file.created`).
    pub st_birthtimespec: Option<Value>,
}

/// `S_IFMT` and the file types the mapper tells apart.
pub mod mode {
    /// File type mask.
    pub const S_IFMT: u32 = 0o170_000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040_000;
    /// Regular file.
    pub const S_IFREG: u32 = 0o100_000;
}

/// The event of a message: one variant per event this crate maps.
#[derive(Debug, Clone, PartialEq)]
pub enum EsEvent {
    /// `exec`.
    Exec(Box<Exec>),
    /// `fork`.
    Fork(Box<Fork>),
    /// `exit`.
    Exit(Exit),
    /// `create`.
    Create(Create),
    /// `unlink`.
    Unlink(Unlink),
    /// `rename`.
    Rename(Rename),
    /// `write`.
    Write(Target),
    /// `close`.
    Close(Close),
    /// `setmode`.
    SetMode(SetMode),
    /// `setowner`.
    SetOwner(SetOwner),
    /// `sudo` (macOS 14).
    Sudo(Sudo),
    /// `su` (macOS 14).
    Su(Su),
    /// `openssh_login` (macOS 13).
    OpensshLogin(OpensshLogin),
    /// `authentication` (macOS 13).
    Authentication(Box<Authentication>),
    /// Any other event, by its `eslogger` name.
    Other(String),
}

impl Default for EsEvent {
    fn default() -> Self {
        EsEvent::Other(String::new())
    }
}

impl EsEvent {
    /// The event's name as `eslogger` writes it (`exec`, `openssh_login`, ...).
    pub fn name(&self) -> &str {
        match self {
            EsEvent::Exec(_) => "exec",
            EsEvent::Fork(_) => "fork",
            EsEvent::Exit(_) => "exit",
            EsEvent::Create(_) => "create",
            EsEvent::Unlink(_) => "unlink",
            EsEvent::Rename(_) => "rename",
            EsEvent::Write(_) => "write",
            EsEvent::Close(_) => "close",
            EsEvent::SetMode(_) => "setmode",
            EsEvent::SetOwner(_) => "setowner",
            EsEvent::Sudo(_) => "sudo",
            EsEvent::Su(_) => "su",
            EsEvent::OpensshLogin(_) => "openssh_login",
            EsEvent::Authentication(_) => "authentication",
            EsEvent::Other(name) => name,
        }
    }
}

impl<'de> Deserialize<'de> for EsEvent {
    /// `{"<name>": {...}}`: one key naming the event.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        let Some((name, body)) = map.into_iter().next() else {
            return Ok(EsEvent::default());
        };
        let parsed = match name.as_str() {
            "exec" => serde_json::from_value(body).map(|b| EsEvent::Exec(Box::new(b))),
            "fork" => serde_json::from_value(body).map(|b| EsEvent::Fork(Box::new(b))),
            "exit" => serde_json::from_value(body).map(EsEvent::Exit),
            "create" => serde_json::from_value(body).map(EsEvent::Create),
            "unlink" => serde_json::from_value(body).map(EsEvent::Unlink),
            "rename" => serde_json::from_value(body).map(EsEvent::Rename),
            "write" => serde_json::from_value(body).map(EsEvent::Write),
            "close" => serde_json::from_value(body).map(EsEvent::Close),
            "setmode" => serde_json::from_value(body).map(EsEvent::SetMode),
            "setowner" => serde_json::from_value(body).map(EsEvent::SetOwner),
            "sudo" => serde_json::from_value(body).map(EsEvent::Sudo),
            "su" => serde_json::from_value(body).map(EsEvent::Su),
            "openssh_login" => serde_json::from_value(body).map(EsEvent::OpensshLogin),
            "authentication" => {
                serde_json::from_value(body).map(|b| EsEvent::Authentication(Box::new(b)))
            }
            _ => Ok(EsEvent::Other(name.clone())),
        };
        parsed.map_err(|e| D::Error::custom(format!("event {name:?}: {e}")))
    }
}

/// `es_event_exec_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Exec {
    /// The new image.
    pub target: EsProcess,
    /// Arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// Current directory (message version 3 and later).
    pub cwd: Option<EsFile>,
    /// The script, when the exec'd file was a `#!` script (the target is the interpreter).
    pub script: Option<EsFile>,
    /// The path passed to exec, before symlinks were resolved.
    pub dyld_exec_path: Option<String>,
}

/// `es_event_fork_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Fork {
    /// The new process.
    pub child: EsProcess,
}

/// `es_event_exit_t`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Exit {
    /// Wait status, as `waitpid` reports it.
    pub stat: i32,
}

/// `es_event_create_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Create {
    /// 0: `destination.existing_file`, 1: `destination.new_path`.
    pub destination_type: u32,
    /// The created file.
    pub destination: Destination,
}

/// The destination of a create or rename: an existing file, or a directory and a name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Destination {
    /// The file at the destination.
    pub existing_file: Option<EsFile>,
    /// A file that does not exist (yet).
    pub new_path: Option<NewPath>,
}

impl Destination {
    /// The destination's absolute path.
    pub fn path(&self) -> Option<String> {
        if let Some(f) = &self.existing_file {
            return Some(f.path.clone());
        }
        let n = self.new_path.as_ref()?;
        let dir = n.dir.path.trim_end_matches('/');
        Some(format!("{dir}/{}", n.filename))
    }
}

/// `new_path` of a create or rename destination.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NewPath {
    /// The directory.
    pub dir: EsFile,
    /// The name in it.
    #[serde(deserialize_with = "null_as_default")]
    pub filename: String,
    /// Mode of the file to create (create only).
    pub mode: Option<u32>,
}

/// `es_event_unlink_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Unlink {
    /// The removed file.
    pub target: EsFile,
    /// Its directory.
    pub parent_dir: Option<EsFile>,
}

/// `es_event_rename_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Rename {
    /// The file before the rename.
    pub source: EsFile,
    /// 0: `destination.existing_file` (replaced), 1: `destination.new_path`.
    pub destination_type: u32,
    /// Where it went.
    pub destination: Destination,
}

/// An event with only a target file (`es_event_write_t`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Target {
    /// The file.
    pub target: EsFile,
}

/// `es_event_close_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Close {
    /// The file was written through this descriptor.
    pub modified: bool,
    /// The file.
    pub target: EsFile,
    /// It was mapped writable (message version 6 and later).
    pub was_mapped_writable: Option<bool>,
}

/// `es_event_setmode_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SetMode {
    /// The new permission bits.
    pub mode: u32,
    /// The file.
    pub target: EsFile,
}

/// `es_event_setowner_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SetOwner {
    /// New owner (`-1`: unchanged).
    #[serde(deserialize_with = "lenient_u32")]
    pub uid: u32,
    /// New group (`-1`: unchanged).
    #[serde(deserialize_with = "lenient_u32")]
    pub gid: u32,
    /// The file.
    pub target: EsFile,
}

/// `es_sudo_reject_info_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SudoRejectInfo {
    /// The plugin that refused.
    #[serde(deserialize_with = "null_as_default")]
    pub plugin_name: String,
    /// Its type (`es_sudo_plugin_type_t`).
    pub plugin_type: u32,
    /// Why.
    #[serde(deserialize_with = "null_as_default")]
    pub failure_message: String,
}

/// `es_event_sudo_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Sudo {
    /// sudo ran the command.
    pub success: bool,
    /// Why it refused.
    pub reject_info: Option<SudoRejectInfo>,
    /// Whether `from_uid` is set.
    pub has_from_uid: bool,
    /// The invoking user.
    #[serde(deserialize_with = "uid_union")]
    pub from_uid: Option<u32>,
    /// The invoking user's name.
    pub from_username: Option<String>,
    /// Whether `to_uid` is set.
    pub has_to_uid: bool,
    /// The user the command runs as.
    #[serde(deserialize_with = "uid_union")]
    pub to_uid: Option<u32>,
    /// Its name.
    pub to_username: Option<String>,
    /// The command line.
    pub command: Option<String>,
}

/// `es_event_su_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Su {
    /// su switched user.
    pub success: bool,
    /// Why not.
    pub failure_message: Option<String>,
    /// The invoking user.
    #[serde(deserialize_with = "lenient_u32")]
    pub from_uid: u32,
    /// Its name.
    pub from_username: Option<String>,
    /// Whether `to_uid` is set.
    pub has_to_uid: bool,
    /// The target user.
    #[serde(deserialize_with = "uid_union")]
    pub to_uid: Option<u32>,
    /// Its name.
    pub to_username: Option<String>,
    /// The shell started.
    pub shell: Option<String>,
    /// su's arguments.
    pub argv: Vec<String>,
}

/// `es_event_openssh_login_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OpensshLogin {
    /// The login succeeded.
    pub success: bool,
    /// `es_openssh_login_result_type_t`.
    pub result_type: u32,
    /// 1 IPv4, 2 IPv6, 3 named socket.
    pub source_address_type: u32,
    /// The client's address.
    #[serde(deserialize_with = "null_as_default")]
    pub source_address: String,
    /// The user name given.
    #[serde(deserialize_with = "null_as_default")]
    pub username: String,
    /// Whether `uid` is set (the user exists).
    pub has_uid: bool,
    /// The user's uid.
    #[serde(deserialize_with = "uid_union")]
    pub uid: Option<u32>,
}

/// `es_event_authentication_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Authentication {
    /// Authentication succeeded.
    pub success: bool,
    /// 0 Open Directory, 1 Touch ID, 2 token, 3 auto unlock.
    #[serde(rename = "type")]
    pub auth_type: u32,
    /// The details of the type.
    pub data: AuthenticationData,
}

/// The union of an [`Authentication`]: the member of its type.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AuthenticationData {
    /// Open Directory (password) authentication.
    pub od: Option<AuthOd>,
    /// Touch ID.
    pub touchid: Option<AuthTouchId>,
    /// Smart card / token.
    pub token: Option<AuthToken>,
    /// Apple Watch auto unlock.
    pub auto_unlock: Option<AuthAutoUnlock>,
}

/// `es_event_authentication_od_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AuthOd {
    /// The process that asked.
    pub instigator: Option<EsProcess>,
    /// `user`, ...
    #[serde(deserialize_with = "null_as_default")]
    pub record_type: String,
    /// The account.
    #[serde(deserialize_with = "null_as_default")]
    pub record_name: String,
    /// `/Local/Default`, ...
    #[serde(deserialize_with = "null_as_default")]
    pub node_name: String,
    /// The local database, for local nodes.
    pub db_path: Option<String>,
}

/// `es_event_authentication_touchid_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AuthTouchId {
    /// The process that asked.
    pub instigator: Option<EsProcess>,
    /// 0 verification, 1 identification.
    pub touchid_mode: u32,
    /// Whether `uid` is set.
    pub has_uid: bool,
    /// The user identified.
    #[serde(deserialize_with = "uid_union")]
    pub uid: Option<u32>,
}

/// `es_event_authentication_token_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AuthToken {
    /// The process that asked.
    pub instigator: Option<EsProcess>,
    /// Hash of the token's public key.
    #[serde(deserialize_with = "null_as_default")]
    pub pubkey_hash: String,
    /// Token identifier.
    #[serde(deserialize_with = "null_as_default")]
    pub token_id: String,
    /// Kerberos principal, if any.
    pub kerberos_principal: Option<String>,
}

/// `es_event_authentication_auto_unlock_t`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AuthAutoUnlock {
    /// The user unlocked.
    #[serde(deserialize_with = "null_as_default")]
    pub username: String,
    /// 1 machine unlock, 2 authentication prompt.
    #[serde(rename = "type")]
    pub unlock_type: u32,
}

/// Why a line is not an ES message.
#[derive(Debug, thiserror::Error)]
#[error("not an eslogger message: {0}")]
pub struct ParseError(#[from] serde_json::Error);

impl EsMessage {
    /// Reads one line of `eslogger` output.
    pub fn from_json(text: &str) -> Result<EsMessage, ParseError> {
        Ok(serde_json::from_str(text)?)
    }
}

/// A `uid_t`/`pid_t` as `eslogger` may print it: unsigned, or `-1` for "none".
fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = Option::<i64>::deserialize(d)?;
    // -1 (and any value beyond 32 bits) is kept as the C cast would: u32::MAX means unset.
    Ok(v.map_or(0, |n| n as u32))
}

/// A uid that ES keeps in a one-member union: a number or `{"uid": n}`; `null` when unset.
fn uid_union<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let n = match &v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::Object(m)) => m.get("uid").and_then(Value::as_i64),
        Some(_) => None,
    };
    n.map(|n| Some(n as u32))
        .ok_or_else(|| D::Error::custom("expected a uid or {\"uid\": n}"))
}

/// A string that `eslogger` writes as `null` when empty.
fn null_as_default<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_events_and_fields_are_kept_by_name_not_refused() {
        let m = EsMessage::from_json(
            r#"{"version":7,"event_type":43,"seq_num":3,"new_field":1,"event":{"lookup":{"x":1}}}"#,
        )
        .unwrap();
        assert_eq!(m.event, EsEvent::Other("lookup".into()));
        assert_eq!(m.event.name(), "lookup");
        assert_eq!(m.seq_num, 3);
    }

    #[test]
    fn ids_accept_minus_one_and_unions_either_form() {
        let t: AuditToken = serde_json::from_str(r#"{"pid":5,"auid":-1}"#).unwrap();
        assert_eq!((t.pid, t.auid), (5, AU_DEFAULTID));
        let s: Sudo =
            serde_json::from_str(r#"{"from_uid":{"uid":501},"to_uid":0,"has_to_uid":true}"#)
                .unwrap();
        assert_eq!((s.from_uid, s.to_uid), (Some(501), Some(0)));
    }

    #[test]
    fn a_malformed_known_event_is_an_error_naming_it() {
        let e = EsMessage::from_json(r#"{"event":{"exit":{"stat":"x"}}}"#).unwrap_err();
        assert!(e.to_string().contains("\"exit\""), "{e}");
    }

    #[test]
    fn destination_path_joins_dir_and_name() {
        let d: Destination = serde_json::from_str(
            r#"{"new_path":{"dir":{"path":"/private/etc/"},"filename":"sudoers.tmp"}}"#,
        )
        .unwrap();
        assert_eq!(d.path().as_deref(), Some("/private/etc/sudoers.tmp"));
    }
}
