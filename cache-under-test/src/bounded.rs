//! Bounded waits: the exit path never blocks without a deadline, not on a mutex a vanished thread
//! held at `fork()`, not on a save running elsewhere, not on another process's file lock.

use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Polls `attempt` with a growing back-off (50 µs up to 10 ms) until it returns `Some` or
/// `deadline` passes.
pub(crate) fn poll_until<T>(deadline: Instant, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Locks `mutex`, waiting at most until `deadline`. A poisoned mutex is taken as it is: every
/// value guarded in this crate is valid at every await-free point.
pub(crate) fn lock_until<T>(mutex: &Mutex<T>, deadline: Instant) -> Option<MutexGuard<'_, T>> {
    poll_until(deadline, || match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    })
}

/// Locks `mutex` without a deadline, taking a poisoned one as it is. For mid-program paths only.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
