//! The inter-process lock: an exclusive `flock` on `<path>.lock`, taken with a bounded wait.
//!
//! The lock file is created 0600 and never deleted (deleting a lock file races with a process
//! that just opened it). The lock is released when the guard is dropped (the file is closed).

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bounded;
use crate::defect::{self, Defect};
use crate::error::CacheError;

/// Holds `<path>.lock` exclusively until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

/// The lock file guarding `cache_path`.
pub(crate) fn lock_path(cache_path: &Path) -> PathBuf {
    let mut name = cache_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl FileLock {
    /// Takes the lock on `cache_path`, waiting until `deadline` at most.
    pub(crate) fn acquire(cache_path: &Path, deadline: Instant) -> Result<Self, CacheError> {
        fail::fail_point!("lock", |_| Err(CacheError::Failpoint("lock")));
        let path = lock_path(cache_path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| CacheError::io("open the lock file", &path, source))?;
        if defect::active(Defect::NoLock) {
            return Ok(FileLock { _file: file });
        }
        if defect::active(Defect::UnboundedLockWait) {
            file.lock().map_err(|source| CacheError::io("lock", &path, source))?;
            return Ok(FileLock { _file: file });
        }
        let started = Instant::now();
        let mut failure = None;
        let locked = bounded::poll_until(deadline, || match file.try_lock() {
            Ok(()) => Some(()),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Error(error)) => {
                failure = Some(error);
                Some(())
            }
        });
        if let Some(source) = failure {
            return Err(CacheError::io("lock", &path, source));
        }
        match locked {
            Some(()) => Ok(FileLock { _file: file }),
            None => Err(CacheError::LockTimeout { lock_path: path, waited: started.elapsed() }),
        }
    }
}
