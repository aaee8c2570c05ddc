//! `agent install` and `agent uninstall`: the file layout, the install manifest and the
//! service registration, in the order that keeps a failed or repeated run harmless.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use agent_config::paths::{Paths, ENV_ROOT};

use crate::audit_conflicts::{audit_conflicts, AuditConsumer};
use crate::config_file::{self, ConfigRequest};
use crate::fsutil;
use crate::privileges::require_privileges;
use crate::{NoServiceManager, ServiceError, ServiceManager, ServiceState};

/// File in the state directory listing the directories the install created (one absolute
/// path per line, outermost first), so that uninstall removes those and nothing else.
pub const MANIFEST_FILE: &str = "install-manifest";

/// Modes of what the install lays out. The config holds intake keys and proxy credentials.
pub const BINARY_MODE: u32 = 0o755;
/// See [`BINARY_MODE`].
pub const CONFIG_MODE: u32 = 0o600;
/// See [`BINARY_MODE`].
pub const STATE_DIR_MODE: u32 = 0o700;
/// See [`BINARY_MODE`].
pub const LOG_DIR_MODE: u32 = 0o750;

/// Why install or uninstall stopped.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The intake key, region, intake URL or seed config.yaml is invalid.
    #[error(transparent)]
    Config(#[from] config_file::ConfigFileError),
    /// Another installation is there and `--force` was not given.
    #[error(
        "a different installation exists ({what} differs: {path}); \
         uninstall it first or run `agent install --force` to replace it"
    )]
    DifferentInstall {
        /// What differs: "intake key" or "binary".
        what: &'static str,
        /// The file that differs.
        path: PathBuf,
    },
    /// A file operation or the service manager failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// What `agent install` was asked to do.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Install-time settings written to config.yaml.
    pub config: ConfigRequest,
    /// Replace a different existing installation.
    pub force: bool,
    /// The binary to install (normally the running executable).
    pub source_binary: PathBuf,
    /// A config.yaml to merge (the one in the current directory, if any).
    pub seed_config: Option<PathBuf>,
}

/// The outcome of a successful install, for the summary printed to the user.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Where everything went.
    pub paths: Paths,
    /// Service manager used (`systemd`, `scm`, `launchd`, `none`).
    pub manager: &'static str,
    /// Service state right after the install.
    pub state: ServiceState,
    /// Files the service registration wrote (the systemd unit, the launchd plist).
    pub registration: Vec<PathBuf>,
    /// Other audit consumers the administrator should stop (Linux).
    pub audit_conflicts: Vec<AuditConsumer>,
    /// Warnings about the merged configuration (unknown keys).
    pub warnings: Vec<String>,
}

/// The service manager for `paths`: the host's, or [`NoServiceManager`] when
/// `ENDPOINT_AGENT_ROOT` is set, so that installs under a root prefix (tests) never touch the
/// host's service manager.
pub fn manager_for(paths: &Paths) -> Result<Box<dyn ServiceManager>, ServiceError> {
    if std::env::var_os(ENV_ROOT).is_some_and(|r| !r.is_empty()) {
        Ok(Box::new(NoServiceManager))
    } else {
        crate::platform_manager(paths.binary.clone())
    }
}

/// Installs the agent: validates everything first, then lays out the binary, config.yaml,
/// state and log directories, registers and starts the service.
pub fn install(
    opts: &InstallOptions,
    paths: &Paths,
    manager: &dyn ServiceManager,
) -> Result<Installed, InstallError> {
    require_privileges()?;
    // Everything that can be wrong with the request is found before anything is written.
    config_file::render(&opts.config, opts.seed_config.as_deref(), None)?;
    manager.check_available()?;
    let fresh = !paths.config_file.exists() && !paths.binary.exists();
    if !opts.force {
        refuse_different_install(opts, paths)?;
    }
    // Reinstalling over the same installation keeps settings added since (a proxy, log
    // files); a forced install replaces them.
    let inherit =
        (!opts.force && paths.config_file.exists()).then_some(paths.config_file.as_path());
    let (config_yaml, warnings) =
        config_file::render(&opts.config, opts.seed_config.as_deref(), inherit)?;

    let result = lay_out(opts, paths, &config_yaml).and_then(|()| manager.install());
    if let Err(e) = result {
        if fresh {
            // Leave the host as it was rather than half installed.
            let _ = remove_layout(paths);
        }
        return Err(e.into());
    }
    let state = manager.status()?;
    let audit_conflicts = if cfg!(target_os = "linux") {
        audit_conflicts(manager, Path::new("/proc"))
    } else {
        Vec::new()
    };
    Ok(Installed {
        paths: paths.clone(),
        manager: manager.kind(),
        state,
        registration: manager.registration_files(),
        audit_conflicts,
        warnings,
    })
}

fn refuse_different_install(opts: &InstallOptions, paths: &Paths) -> Result<(), InstallError> {
    if paths.config_file.exists()
        && config_file::installed_intake_key(&paths.config_file).as_deref()
            != Some(opts.config.intake_key.as_str())
    {
        return Err(InstallError::DifferentInstall {
            what: "intake key",
            path: paths.config_file.clone(),
        });
    }
    if paths.binary.exists() && !same_content(&opts.source_binary, &paths.binary) {
        return Err(InstallError::DifferentInstall {
            what: "binary",
            path: paths.binary.clone(),
        });
    }
    Ok(())
}

fn same_content(a: &Path, b: &Path) -> bool {
    match (fs::read(a), fs::read(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn is_same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

fn lay_out(opts: &InstallOptions, paths: &Paths, config_yaml: &str) -> Result<(), ServiceError> {
    let mut created = Vec::new();
    // State first: the manifest must exist before anything it describes.
    created.extend(fsutil::create_dirs(&paths.state_dir, STATE_DIR_MODE)?);
    let manifest = paths.state_dir.join(MANIFEST_FILE);
    let mut record = |dirs: Vec<PathBuf>| -> Result<(), ServiceError> {
        created.extend(dirs);
        write_manifest(&manifest, &created)
    };
    record(Vec::new())?;
    record(fsutil::create_dirs(&paths.log_dir, LOG_DIR_MODE)?)?;
    let config_dir = parent(&paths.config_file);
    let new = if config_dir.exists() {
        Vec::new()
    } else {
        fsutil::create_dirs(config_dir, 0o755)?
    };
    record(new)?;
    let binary_dir = parent(&paths.binary);
    let new = if binary_dir.exists() {
        Vec::new()
    } else {
        fsutil::create_dirs(binary_dir, 0o755)?
    };
    record(new)?;

    if !is_same_file(&opts.source_binary, &paths.binary) {
        let mut source = fs::File::open(&opts.source_binary)
            .map_err(|e| ServiceError::io("read", &opts.source_binary, e))?;
        agent_os::atomic::replace_file_with(&paths.binary, BINARY_MODE, |file| {
            io::copy(&mut source, file).map(drop)
        })?;
    }
    Ok(agent_os::replace_file(
        &paths.config_file,
        config_yaml.as_bytes(),
        CONFIG_MODE,
    )?)
}

/// Writes the manifest, keeping the entries of an earlier install (a reinstall creates
/// nothing new but must not forget what the first install created).
fn write_manifest(manifest: &Path, created: &[PathBuf]) -> Result<(), ServiceError> {
    let mut all = read_manifest(manifest)?;
    for dir in created {
        if !all.contains(dir) {
            all.push(dir.clone());
        }
    }
    let text: String = all
        .iter()
        .map(|d| format!("{}\n", d.to_string_lossy()))
        .collect();
    Ok(agent_os::replace_file(manifest, text.as_bytes(), 0o600)?)
}

fn read_manifest(manifest: &Path) -> Result<Vec<PathBuf>, ServiceError> {
    match fs::read_to_string(manifest) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| !l.is_empty())
            .map(PathBuf::from)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ServiceError::io("read", manifest, e)),
    }
}

/// What uninstall removed.
#[derive(Debug, Clone)]
pub struct Uninstalled {
    /// Whether anything of an installation was found.
    pub was_installed: bool,
}

/// Uninstalls the agent: stops and unregisters the service, then removes the binary,
/// config.yaml, the state and log directories and the directories the install created.
/// Succeeds, doing nothing, when the agent is not installed.
pub fn uninstall(paths: &Paths, manager: &dyn ServiceManager) -> Result<Uninstalled, InstallError> {
    require_privileges()?;
    let was_installed = paths.binary.exists()
        || paths.config_file.exists()
        || paths.state_dir.exists()
        || manager.status()? != ServiceState::NotInstalled;
    // Stop first, so the agent no longer writes logs or state while they are removed.
    manager.uninstall()?;
    remove_layout(paths)?;
    Ok(Uninstalled { was_installed })
}

fn remove_layout(paths: &Paths) -> Result<(), ServiceError> {
    let created = read_manifest(&paths.state_dir.join(MANIFEST_FILE))?;
    remove_binary(&paths.binary)?;
    // macOS: the binary lives in the product's .app bundle, laid out by the package, not
    // by the install; the bundle goes with it (else an .app without executable is left).
    if let Some(bundle) = crate::launchd::app_bundle_of(&paths.binary) {
        fsutil::remove_dir_all_if_exists(bundle)?;
    }
    fsutil::remove_file_if_exists(&paths.config_file)?;
    if created.is_empty() || created.contains(&paths.log_dir) {
        fsutil::remove_dir_all_if_exists(&paths.log_dir)?;
    } else {
        // A log directory that existed before the install (pointed at a shared one such
        // as /var/log): only the agent's own log files go.
        remove_agent_logs(paths)?;
    }
    fsutil::remove_dir_all_if_exists(&paths.state_dir)?;
    if created.is_empty() {
        // No manifest (it was lost, or an older install): the agent's own directories go if
        // empty, their parents stay.
        fsutil::remove_dir_if_empty(parent(&paths.binary))?;
        fsutil::remove_dir_if_empty(parent(&paths.config_file))?;
    }
    for dir in created.iter().rev() {
        fsutil::remove_dir_if_empty(dir)?;
    }
    Ok(())
}

/// Removes `agent.log` and its rotations (`agent.log.1`, ...) from the log directory.
fn remove_agent_logs(paths: &Paths) -> Result<(), ServiceError> {
    let Some(name) = paths
        .log_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
    else {
        return Ok(());
    };
    let entries = match fs::read_dir(&paths.log_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ServiceError::io("read", &paths.log_dir, e)),
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file == name || file.starts_with(&format!("{name}.")) {
            fsutil::remove_file_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes the installed binary. On Windows the file of a process that is just exiting (the
/// service, or the `agent.exe` that relaunched this uninstall from a copy) stays locked
/// for a moment, so removal is retried for a few seconds.
fn remove_binary(binary: &Path) -> Result<(), ServiceError> {
    let attempts = if cfg!(windows) { 50 } else { 1 };
    let mut last = Ok(());
    for _ in 0..attempts {
        last = fsutil::remove_file_if_exists(binary);
        if last.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const KEY: &str = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY";

    /// Records calls and whether the installed binary existed at each; fails `install` on
    /// demand.
    #[derive(Debug)]
    struct Recorder {
        binary: PathBuf,
        fail_install: bool,
        calls: RefCell<Vec<(&'static str, bool)>>,
    }

    impl Recorder {
        fn new(paths: &Paths, fail_install: bool) -> Self {
            Self {
                binary: paths.binary.clone(),
                fail_install,
                calls: RefCell::new(Vec::new()),
            }
        }
        fn record(&self, call: &'static str) {
            self.calls.borrow_mut().push((call, self.binary.exists()));
        }
    }

    impl ServiceManager for Recorder {
        fn kind(&self) -> &'static str {
            "recorder"
        }
        fn install(&self) -> Result<(), ServiceError> {
            self.record("install");
            if self.fail_install {
                Err(ServiceError::ManagerNotRunning("recorder"))
            } else {
                Ok(())
            }
        }
        fn uninstall(&self) -> Result<(), ServiceError> {
            self.record("uninstall");
            Ok(())
        }
        fn start(&self) -> Result<(), ServiceError> {
            Ok(())
        }
        fn stop(&self) -> Result<(), ServiceError> {
            Ok(())
        }
        fn restart(&self) -> Result<(), ServiceError> {
            Ok(())
        }
        fn status(&self) -> Result<ServiceState, ServiceError> {
            Ok(ServiceState::Running)
        }
        fn registration_files(&self) -> Vec<PathBuf> {
            Vec::new()
        }
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[cfg(not(unix))]
    fn mode(_p: &Path) -> u32 {
        0o755
    }

    fn setup() -> (tempfile::TempDir, Paths, InstallOptions) {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::for_os(agent_config::Os::Linux).with_root(root.path().join("root"));
        let source = root.path().join("agent-source");
        fs::write(&source, b"\x7fELF binary").unwrap();
        let opts = InstallOptions {
            config: ConfigRequest {
                intake_key: KEY.into(),
                region: None,
                intake_url: None,
                auto_update: None,
            },
            force: false,
            source_binary: source,
            seed_config: None,
        };
        (root, paths, opts)
    }

    #[test]
    fn the_service_is_registered_after_the_files_are_in_place() {
        let (_root, paths, opts) = setup();
        let manager = Recorder::new(&paths, false);
        let installed = install(&opts, &paths, &manager).unwrap();
        assert_eq!(*manager.calls.borrow(), vec![("install", true)]);
        assert_eq!(installed.state, ServiceState::Running);
    }

    #[test]
    fn a_failed_registration_leaves_nothing_behind() {
        let (root, paths, opts) = setup();
        let manager = Recorder::new(&paths, true);
        let err = install(&opts, &paths, &manager).unwrap_err();
        assert!(matches!(err, InstallError::Service(_)), "{err}");
        assert!(
            !root.path().join("root").exists(),
            "a failed install left files"
        );
    }

    #[test]
    fn uninstall_stops_the_service_before_removing_files() {
        let (_root, paths, opts) = setup();
        install(&opts, &paths, &NoServiceManager).unwrap();
        let manager = Recorder::new(&paths, false);
        let done = uninstall(&paths, &manager).unwrap();
        assert!(done.was_installed);
        assert_eq!(*manager.calls.borrow(), vec![("uninstall", true)]);
        assert!(!paths.binary.exists());
    }

    #[test]
    fn manifest_lists_created_directories_outermost_first_and_survives_reinstall() {
        let (_root, paths, opts) = setup();
        install(&opts, &paths, &NoServiceManager).unwrap();
        let manifest = read_manifest(&paths.state_dir.join(MANIFEST_FILE)).unwrap();
        let pos = |p: &Path| manifest.iter().position(|m| m == p).unwrap();
        assert!(pos(&paths.state_dir) > pos(parent(&paths.state_dir)));
        assert!(pos(parent(&paths.binary)) > pos(parent(parent(&paths.binary))));
        install(&opts, &paths, &NoServiceManager).unwrap();
        assert_eq!(
            read_manifest(&paths.state_dir.join(MANIFEST_FILE)).unwrap(),
            manifest
        );
    }

    #[test]
    fn uninstall_on_macos_removes_the_whole_app_bundle() {
        let (root, _, opts) = setup();
        let paths = Paths::for_os(agent_config::Os::Macos).with_root(root.path().join("root"));
        // The package put the bundle in /Applications before `agent install` runs.
        let bundle = parent(parent(parent(&paths.binary))).to_path_buf();
        let applications = parent(&bundle).to_path_buf();
        fs::create_dir_all(bundle.join("Contents/MacOS")).unwrap();
        fs::create_dir_all(bundle.join("Contents/_CodeSignature")).unwrap();
        fs::write(bundle.join("Contents/Info.plist"), b"<plist/>").unwrap();
        fs::write(bundle.join("Contents/_CodeSignature/CodeResources"), b"sig").unwrap();
        fs::write(applications.join("Other.app"), b"another app").unwrap();
        install(&opts, &paths, &NoServiceManager).unwrap();
        assert!(paths.binary.is_file());

        uninstall(&paths, &NoServiceManager).unwrap();
        assert!(!bundle.exists(), "uninstall left the .app bundle");
        assert!(
            applications.join("Other.app").exists(),
            "uninstall removed another app"
        );
        assert!(!paths.config_file.exists() && !paths.state_dir.exists());
    }

    #[test]
    fn a_shared_log_directory_keeps_everything_but_the_agent_logs() {
        let (root, mut paths, opts) = setup();
        let shared = root.path().join("shared-logs");
        fs::create_dir(&shared).unwrap();
        fs::write(shared.join("syslog"), b"x").unwrap();
        paths.log_file = shared.join("agent.log");
        paths.log_dir = shared.clone();
        install(&opts, &paths, &NoServiceManager).unwrap();
        fs::write(&paths.log_file, b"started").unwrap();
        fs::write(shared.join("agent.log.1"), b"older").unwrap();
        assert_eq!(
            mode(&shared),
            0o755,
            "install changed a directory it did not create"
        );
        uninstall(&paths, &NoServiceManager).unwrap();
        let left: Vec<_> = fs::read_dir(&shared)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("syslog")]);
    }
}
