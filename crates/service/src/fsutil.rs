//! Small file-system helpers shared by the service managers and the installer. Files are
//! written with [`agent_os::replace_file`] (atomic, durable, exact permission bits).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::ServiceError;

/// Removes a file; a file that is already gone is success.
pub fn remove_file_if_exists(path: &Path) -> Result<(), ServiceError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ServiceError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Removes a directory tree; a directory that is already gone is success.
pub fn remove_dir_all_if_exists(path: &Path) -> Result<(), ServiceError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ServiceError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Removes a directory only if it is empty (someone else's files are never ours to delete).
pub fn remove_dir_if_empty(path: &Path) -> Result<(), ServiceError> {
    match fs::read_dir(path).map(|mut entries| entries.next().is_none()) {
        Ok(true) => fs::remove_dir(path).map_err(|e| ServiceError::io("remove", path, e)),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ServiceError::io("read", path, e)),
    }
}

/// Creates `dir` with permission bits `mode` and its missing ancestors with 0755, returning
/// the directories that did not exist before, outermost first, so that uninstall can remove
/// exactly those, innermost first. Existing directories keep their mode: they are not ours.
pub fn create_dirs(dir: &Path, mode: u32) -> Result<Vec<PathBuf>, ServiceError> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    for d in &missing {
        match fs::create_dir(d) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(ServiceError::io("create directory", d, e))
            }
            _ => {
                let mode = if d == dir { mode } else { 0o755 };
                set_mode(d, mode).map_err(|e| ServiceError::io("chmod", d, e))?
            }
        }
    }
    Ok(missing)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // The umask may have cleared bits at creation; set them exactly.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dirs_reports_only_the_new_ones_outermost_first() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("a")).unwrap();
        let created = create_dirs(&tmp.path().join("a/b/c"), 0o755).unwrap();
        assert_eq!(
            created,
            vec![tmp.path().join("a/b"), tmp.path().join("a/b/c")]
        );
        assert!(create_dirs(&tmp.path().join("a/b/c"), 0o755)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn remove_dir_if_empty_keeps_foreign_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("user-file"), b"x").unwrap();
        remove_dir_if_empty(&dir).unwrap();
        assert!(dir.join("user-file").exists());
        fs::remove_file(dir.join("user-file")).unwrap();
        remove_dir_if_empty(&dir).unwrap();
        assert!(!dir.exists());
        remove_dir_if_empty(&dir).unwrap();
    }
}
