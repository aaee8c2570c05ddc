//! The "must be root / Administrator" check, made before anything is touched.

use crate::ServiceError;

/// Fails with [`ServiceError::NotPrivileged`] unless the process runs as root. On Windows the
/// SCM itself is asked (see `ScmManager::check_available`), since a token check alone does
/// not tell whether UAC elevated this process.
pub fn require_privileges() -> Result<(), ServiceError> {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(ServiceError::NotPrivileged);
        }
    }
    Ok(())
}
