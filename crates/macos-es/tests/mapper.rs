//! The mapper on `eslogger`-shaped messages (tests/fixtures, see its README): every event
//! type is checked against the full dialect event it must produce (tests/expected), and
//! every tag has a test of its own.

use std::path::PathBuf;

use agent_macos_es::message::{EsEvent, EsFile};
use agent_macos_es::{tags, EsMessage, FileScope, Mapped, Mapper, MapperConfig, NameTable, Skip};
use serde_json::Value;

const BOOT: &str = "8E0B6C2A-3C57-4F55-9B6D-2B1D7A1F0C11";

/// The names of a typical Mac: root/wheel, the first user `alice` (501) in `staff` (20).
fn names() -> NameTable {
    let mut n = NameTable::default();
    n.users.insert(0, "root".into());
    n.users.insert(501, "alice".into());
    n.groups.insert(0, "wheel".into());
    n.groups.insert(20, "staff".into());
    n.groups.insert(80, "admin".into());
    n
}

fn mapper_with(config: MapperConfig) -> Mapper<NameTable> {
    Mapper::new(
        MapperConfig {
            boot_id: BOOT.into(),
            ..config
        },
        names(),
    )
}

fn mapper() -> Mapper<NameTable> {
    mapper_with(MapperConfig::default())
}

fn fixture(name: &str) -> EsMessage {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    EsMessage::from_json(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn expected(name: &str) -> Value {
    let path = format!("{}/tests/expected/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// A mapper that has seen alice's login shell start and fork-exec `curl`, as a live
/// session would before the later events.
fn warm() -> Mapper<NameTable> {
    let mut m = mapper();
    for f in ["exec_zsh", "fork", "exec_curl"] {
        let _ = m.map(&fixture(f));
    }
    m
}

fn json(mapped: &Mapped) -> Value {
    mapped.event().to_value().unwrap()
}

/// Maps `name` with `m` and checks the whole event; returns the result for more checks.
fn check(m: &mut Mapper<NameTable>, name: &str) -> Mapped {
    let mapped = m
        .map(&fixture(name))
        .unwrap_or_else(|s| panic!("{name}: skipped {s:?}"));
    assert_eq!(
        json(&mapped),
        expected(name),
        "{name}: got {}",
        serde_json::to_string_pretty(&json(&mapped)).unwrap()
    );
    mapped
}

fn tags_of(m: &mut Mapper<NameTable>, msg: &EsMessage) -> Vec<String> {
    m.map(msg).unwrap().event().tags.clone()
}

fn needs_hash(mapped: &Mapped) -> Option<&PathBuf> {
    match mapped {
        Mapped::NeedsHash { path, .. } => Some(path),
        Mapped::Ready(_) => None,
    }
}

// --- one test per event type -------------------------------------------------------------

#[test]
fn exec_is_process_created_with_args_cwd_signature_and_user() {
    let mut m = mapper();
    let mapped = check(&mut m, "exec_zsh");
    assert!(needs_hash(&mapped).is_none());
}

#[test]
fn exec_names_the_parent_image_seen_before_and_links_the_guids() {
    let mut m = mapper();
    let zsh = m.map(&fixture("exec_zsh")).unwrap().into_event();
    assert_eq!(m.map(&fixture("fork")), Err(Skip::StateOnly));
    let curl = check(&mut m, "exec_curl").into_event();
    assert_eq!(curl.sekoiaio.process.parent_guid, zsh.sekoiaio.process.guid);
    let parent = curl.process.parent.unwrap();
    assert_eq!(
        (
            parent.pid,
            parent.executable.as_str(),
            parent.command_line.as_str()
        ),
        (Some(4120), "/bin/zsh", "-zsh")
    );
}

#[test]
fn processes_running_before_the_start_are_known_once_seeded() {
    let mut m = mapper();
    let login = agent_macos_es::message::AuditToken {
        pid: 4011,
        pidversion: 9790,
        ..Default::default()
    };
    m.seed_process(
        &login,
        "/usr/bin/login",
        vec!["login".into(), "-pf".into(), "alice".into()],
        "/",
    );
    let e = m.map(&fixture("exec_zsh")).unwrap().into_event();
    let parent = e.process.parent.unwrap();
    assert_eq!(parent.executable, "/usr/bin/login");
    assert_eq!(parent.command_line, "login -pf alice");
}

#[test]
fn fork_only_teaches_the_child_its_parents_command_line() {
    let mut m = mapper();
    m.map(&fixture("exec_zsh")).unwrap();
    let fork = fixture("fork");
    assert_eq!(m.map(&fork), Err(Skip::StateOnly));
    // The child exits before any exec: it is the shell, with the shell's command line.
    let EsEvent::Fork(f) = &fork.event else {
        panic!("not a fork")
    };
    let mut exit = fixture("exit");
    exit.process = f.child.clone();
    let e = m.map(&exit).unwrap().into_event();
    assert_eq!(e.process.pid, Some(4121));
    assert_eq!(e.process.executable, "/bin/zsh");
    assert_eq!(e.process.command_line, "-zsh");
    assert_eq!(e.process.working_directory, "/Users/alice");
}

#[test]
fn exit_is_process_terminated_with_the_exit_code() {
    let mut m = warm();
    let e = check(&mut m, "exit").into_event();
    assert_eq!(e.process.exit_code, Some(6));
    // A process killed by SIGKILL: 128 + 9, as shells report it.
    let mut killed = fixture("exit");
    killed.event = EsEvent::Exit(agent_macos_es::message::Exit { stat: 9 });
    let e = m.map(&killed).unwrap().into_event();
    assert_eq!(e.process.exit_code, Some(137));
    assert_eq!(e.action.properties["signal"], "9");
}

#[test]
fn create_of_a_file_is_code_11_and_asks_for_hashes() {
    let mapped = check(&mut mapper(), "create_sudoers_d");
    assert_eq!(
        needs_hash(&mapped),
        Some(&PathBuf::from("/private/etc/sudoers.d/admins"))
    );
}

#[test]
fn create_of_a_directory_is_created_directory_without_hashes() {
    let mapped = check(&mut mapper(), "create_dir");
    assert!(needs_hash(&mapped).is_none());
}

#[test]
fn create_of_a_new_path_joins_directory_and_name() {
    let mut msg = fixture("create_sudoers_d");
    let EsEvent::Create(c) = &mut msg.event else {
        panic!("not a create")
    };
    c.destination_type = 1;
    c.destination.existing_file = None;
    c.destination.new_path = Some(agent_macos_es::message::NewPath {
        dir: EsFile {
            path: "/private/etc/sudoers.d".into(),
            ..EsFile::default()
        },
        filename: "90-ops".into(),
        mode: Some(0o100440),
    });
    let mapped = mapper().map(&msg).unwrap();
    let e = mapped.event();
    assert_eq!(e.file.path, "/private/etc/sudoers.d/90-ops");
    assert_eq!(e.file.mode, "0440");
    assert_eq!(e.tags, [tags::SUDOERS_CHANGE]);
    assert!(needs_hash(&mapped).is_some());
}

#[test]
fn unlink_is_file_deleted_code_23() {
    let mapped = check(&mut mapper(), "unlink");
    assert!(needs_hash(&mapped).is_none());
}

#[test]
fn rename_keeps_the_old_path_and_hashes_the_new_one() {
    let mapped = check(&mut mapper(), "rename_sudoers");
    assert_eq!(
        needs_hash(&mapped),
        Some(&PathBuf::from("/private/etc/sudoers"))
    );
}

#[test]
fn write_is_file_changed() {
    let mapped = check(&mut mapper(), "write_hosts");
    assert_eq!(
        needs_hash(&mapped),
        Some(&PathBuf::from("/private/etc/hosts"))
    );
}

#[test]
fn close_after_modification_is_file_changed_and_a_plain_close_is_nothing() {
    let mut m = mapper();
    check(&mut m, "close_modified_account");
    let mut plain = fixture("close_modified_account");
    let EsEvent::Close(c) = &mut plain.event else {
        panic!("not a close")
    };
    c.modified = false;
    assert_eq!(m.map(&plain), Err(Skip::Unmodified));
}

#[test]
fn setmode_reports_the_new_permissions() {
    check(&mut mapper(), "setmode");
}

#[test]
fn setowner_reports_the_new_owner() {
    check(&mut mapper(), "setowner");
}

#[test]
fn sudo_is_ran_command_from_the_user_to_the_target_user() {
    let mut m = warm();
    check(&mut m, "sudo");
    // Refused by the policy plugin: a failure with the plugin's reason.
    let mut refused = fixture("sudo");
    let EsEvent::Sudo(s) = &mut refused.event else {
        panic!("not sudo")
    };
    s.success = false;
    s.reject_info = Some(agent_macos_es::message::SudoRejectInfo {
        plugin_name: "sudoers_policy".into(),
        plugin_type: 2,
        failure_message: "user NOT in sudoers".into(),
    });
    let e = m.map(&refused).unwrap().into_event();
    assert_eq!(e.event.outcome, "failure");
    assert_eq!(e.action.properties["plugin_type"], "policy");
    assert_eq!(
        e.action.properties["failure_message"],
        "user NOT in sudoers"
    );
}

#[test]
fn su_is_authenticated_with_its_outcome() {
    check(&mut warm(), "su");
}

#[test]
fn openssh_login_is_logged_in_from_the_client_address() {
    let mut m = mapper();
    check(&mut m, "openssh_login");
    let mut invalid = fixture("openssh_login");
    let EsEvent::OpensshLogin(o) = &mut invalid.event else {
        panic!("not an ssh login")
    };
    o.success = false;
    o.result_type = 9;
    o.username = "admin".into();
    o.has_uid = false;
    o.uid = None;
    o.source_address = "::1".into();
    let e = m.map(&invalid).unwrap().into_event();
    assert_eq!(e.event.outcome, "failure");
    assert_eq!((e.user.id.as_str(), e.user.name.as_str()), ("", "admin"));
    assert_eq!(e.action.properties["result_type"], "invalid_user");
    assert_eq!(e.network.direction, "internal");
}

#[test]
fn authentication_names_the_account_and_the_process_that_asked() {
    check(&mut mapper(), "authentication_od");
}

#[test]
fn events_of_unmapped_types_are_skipped() {
    let mut msg = fixture("write_hosts");
    msg.event = EsEvent::Other("lookup".into());
    assert_eq!(mapper().map(&msg), Err(Skip::Unmapped));
}

// --- scope, muting, own activity ----------------------------------------------------------

#[test]
fn file_events_outside_the_tagged_areas_are_kept_only_with_scope_all() {
    let mut msg = fixture("write_hosts");
    let EsEvent::Write(w) = &mut msg.event else {
        panic!("not a write")
    };
    w.target.path = "/Users/alice/notes.txt".into();
    assert_eq!(mapper().map(&msg), Err(Skip::Untagged));
    let mut all = mapper_with(MapperConfig {
        file_scope: FileScope::All,
        ..MapperConfig::default()
    });
    let e = all.map(&msg).unwrap().into_event();
    assert_eq!(e.file.path, "/Users/alice/notes.txt");
    assert!(e.tags.is_empty());
}

#[test]
fn muted_paths_and_the_agents_own_process_produce_nothing() {
    let mut msg = fixture("write_hosts");
    let EsEvent::Write(w) = &mut msg.event else {
        panic!("not a write")
    };
    w.target.path = "/private/var/folders/xy/T/tmp.1".into();
    let mut m = mapper_with(MapperConfig {
        file_scope: FileScope::All,
        muted_paths: agent_macos_es::mapper::default_muted_paths(["/Users/alice"]),
        ..MapperConfig::default()
    });
    assert_eq!(m.map(&msg), Err(Skip::Muted));
    let mut own = mapper_with(MapperConfig {
        own_pid: Some(4520),
        ..MapperConfig::default()
    });
    assert_eq!(own.map(&fixture("write_hosts")), Err(Skip::OwnActivity));
}

// --- one test per tag ------------------------------------------------------------------

/// `exec_curl` with another program.
fn exec_of(executable: &str, script: Option<&str>, euid: u32) -> EsMessage {
    let mut msg = fixture("exec_curl");
    let EsEvent::Exec(x) = &mut msg.event else {
        panic!("not an exec")
    };
    x.target.executable.path = executable.into();
    x.target.audit_token.euid = euid;
    x.script = script.map(|s| EsFile {
        path: s.into(),
        ..EsFile::default()
    });
    msg
}

#[test]
fn tag_root_command() {
    let mut m = mapper();
    assert_eq!(
        tags_of(&mut m, &exec_of("/bin/ls", None, 0)),
        [tags::ROOT_COMMAND]
    );
    let e = check(&mut m, "exec_installer_root").into_event();
    assert!(e.tags.contains(&tags::ROOT_COMMAND.to_owned()));
}

#[test]
fn tag_process_start_and_exit() {
    let mut m = mapper();
    assert_eq!(
        tags_of(&mut m, &exec_of("/bin/ls", None, 501)),
        [tags::PROCESS_START]
    );
    assert_eq!(tags_of(&mut m, &fixture("exit")), [tags::PROCESS_EXIT]);
}

#[test]
fn tag_suspicious_tool() {
    assert_eq!(
        tags_of(&mut warm(), &fixture("exec_curl")),
        [tags::SUSPICIOUS_TOOL]
    );
    assert_eq!(
        tags_of(&mut mapper(), &exec_of("/usr/sbin/tcpdump", None, 0)),
        [tags::SUSPICIOUS_TOOL, tags::ROOT_COMMAND]
    );
}

#[test]
fn tag_package_install() {
    let mut m = warm();
    assert_eq!(
        tags_of(&mut m, &fixture("exec_pip_script")),
        [tags::PACKAGE_INSTALL]
    );
    assert_eq!(
        tags_of(
            &mut m,
            &exec_of("/bin/bash", Some("/opt/homebrew/bin/brew"), 501)
        ),
        [tags::PACKAGE_INSTALL]
    );
    assert_eq!(
        tags_of(&mut m, &fixture("exec_installer_root")),
        [tags::PACKAGE_INSTALL, tags::ROOT_COMMAND]
    );
}

#[test]
fn tag_python_exec() {
    let python = "/Library/Frameworks/Python.framework/Versions/3.12/bin/python3.12";
    assert_eq!(
        tags_of(
            &mut mapper(),
            &exec_of(python, Some("/Users/alice/bin/sync.py"), 501)
        ),
        [tags::PYTHON_EXEC]
    );
    assert_eq!(
        tags_of(&mut mapper(), &exec_of("/usr/bin/python3", None, 501)),
        [tags::PYTHON_EXEC]
    );
}

#[test]
fn tag_perl_exec() {
    assert_eq!(
        tags_of(&mut mapper(), &exec_of("/usr/bin/perl5.34", None, 501)),
        [tags::PERL_EXEC]
    );
}

#[test]
fn tag_account_and_scheduling_commands() {
    let mut m = mapper();
    assert_eq!(
        tags_of(&mut m, &exec_of("/usr/sbin/sysadminctl", None, 0)),
        [tags::ACCOUNT_COMMAND, tags::ROOT_COMMAND]
    );
    assert_eq!(
        tags_of(&mut m, &exec_of("/usr/bin/crontab", None, 501)),
        [tags::SCHEDULING_COMMAND]
    );
}

#[test]
fn tag_sudoers_change() {
    let mut m = mapper();
    assert_eq!(
        tags_of(&mut m, &fixture("create_sudoers_d")),
        [tags::SUDOERS_CHANGE]
    );
    // visudo's rename: the new name decides, even though the old one is sudoers.tmp.
    assert_eq!(
        tags_of(&mut m, &fixture("rename_sudoers")),
        [tags::SUDOERS_CHANGE]
    );
}

#[test]
fn tag_accounts_change() {
    assert_eq!(
        tags_of(&mut mapper(), &fixture("close_modified_account")),
        [tags::ACCOUNTS_CHANGE]
    );
}

#[test]
fn tag_other_file_areas() {
    let mut m = mapper();
    assert_eq!(
        tags_of(&mut m, &fixture("setowner")),
        [tags::SSH_KEYS_CHANGE]
    );
    assert_eq!(tags_of(&mut m, &fixture("setmode")), [tags::BIN_CHANGE]);
    assert_eq!(tags_of(&mut m, &fixture("unlink")), [tags::LAUNCHD_CHANGE]);
    assert_eq!(tags_of(&mut m, &fixture("write_hosts")), [tags::ETC_CHANGE]);
}
