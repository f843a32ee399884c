//! The inter-process lock: an exclusive `flock` on `<path>.lock`, taken by saves with a bounded
//! wait. Opening a cache never waits for it (a reader of an atomically renamed file needs no
//! lock); it only tries it once, to clean up after a crashed save.
//!
//! The lock file is opened relative to the trusted folder handle with `O_NOFOLLOW | O_NONBLOCK`
//! (a planted symlink is refused, a FIFO cannot block), created 0600 if missing, must be a
//! regular file this user owns, and is never deleted (deleting a lock file races with a process
//! that just opened it). The lock is released when the guard is dropped: unlocked explicitly,
//! then closed. Closing alone would not do: a process forked while the lock was held shares the
//! lock's open file description, and an `flock` lives until every descriptor of it is closed, so
//! a long-lived forked child would keep every other process's save waiting.

use std::fs::{File, TryLockError};
use std::time::Instant;

use crate::bounded;
use crate::error::CacheError;
use crate::location::CacheLocation;
use crate::seam;

/// Holds `<path>.lock` exclusively until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Releases the lock for every descriptor of this open file description, including those
        // a forked child inherited (see the module doc). Unlocking a file that is not locked (the
        // skip-lock seam) does nothing; on failure, closing the file below still releases it
        // once no child holds it.
        let _ = self.file.unlock();
    }
}

/// The name of the lock file guarding the cache at `location`: `<name>.lock`.
fn lock_name(location: &CacheLocation) -> std::ffi::OsString {
    location.sibling(".lock")
}

impl FileLock {
    /// Takes the lock on the cache at `location`, waiting until `deadline` at most.
    pub(crate) fn acquire(location: &CacheLocation, deadline: Instant) -> Result<Self, CacheError> {
        let name = lock_name(location);
        fail::fail_point!("lock", |_| Err(CacheError::io("lock", location.path_of(&name), seam::injected("lock"))));
        let file = location.open_lock_file(&name)?;
        if seam::active!("skip-lock") {
            return Ok(FileLock { file });
        }
        if seam::active!("unbounded-lock-wait") {
            file.lock().map_err(|source| CacheError::io("lock", location.path_of(&name), source))?;
            return Ok(FileLock { file });
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
            return Err(CacheError::io("lock", location.path_of(&name), source));
        }
        match locked {
            Some(()) => Ok(FileLock { file }),
            None => Err(CacheError::LockTimeout { lock_path: location.path_of(&name), waited: started.elapsed() }),
        }
    }

    /// Takes the lock if nobody holds it, without waiting: `Ok(None)` if it is held.
    pub(crate) fn try_acquire(location: &CacheLocation) -> Result<Option<Self>, CacheError> {
        let name = lock_name(location);
        fail::fail_point!("lock", |_| Err(CacheError::io("lock", location.path_of(&name), seam::injected("lock"))));
        let file = location.open_lock_file(&name)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(CacheError::io("lock", location.path_of(&name), source)),
        }
    }
}
