//! How long a save may wait: the exit budget as a type.
//!
//! A save waits at three points: for a save of the same handle running on another thread, for
//! the handle's contents, and for the file lock. What bounds those waits depends on when the
//! save runs, and [`Budget`] says which:
//!
//! - [`Budget::MidProgram`] (a drop, a swap, an explicit save, a write-through insert): the save
//!   waits for another thread's save of the same handle (itself bounded), so it never gives up
//!   on entries inserted after that save's snapshot; from then on every wait is bounded by the
//!   cache's `lock_timeout`. It carries no instant, so no caller can pass a placeholder.
//! - [`Budget::Exit`] (the `atexit` callback, a termination signal): every wait is bounded by
//!   one deadline shared by every handle the exit path saves ([`set_exit_deadline`]). Its
//!   [`ExitDeadline`] can only be made by [`Budget::exit`], counting the configured exit budget
//!   from now.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::bounded;

static EXIT_BUDGET_MS: AtomicU64 = AtomicU64::new(5_000);

/// Sets the exit path's total time budget, across every live handle (default 5 s).
pub fn set_exit_deadline(budget: Duration) {
    EXIT_BUDGET_MS.store(budget.as_millis().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// When the exit path's budget runs out. Made only by [`Budget::exit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExitDeadline(Instant);

/// What bounds the waits of one save (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Budget {
    /// A save while the program goes on: waits for another thread's save of the same handle,
    /// then bounds every wait by the cache's `lock_timeout`.
    MidProgram,
    /// A save on the exit path: every wait ends at this deadline.
    Exit(ExitDeadline),
}

impl Budget {
    /// The exit path's budget, starting now: the configured [`set_exit_deadline`] from now.
    pub(crate) fn exit() -> Self {
        Self::exit_within(Duration::from_millis(EXIT_BUDGET_MS.load(Ordering::Relaxed)))
    }

    /// An exit budget of `budget` from now.
    fn exit_within(budget: Duration) -> Self {
        Budget::Exit(ExitDeadline(Instant::now() + budget))
    }

    /// Takes `mutex` (the lock that serialises the saves of one handle, the exit registry):
    /// mid-program, waits for it (whoever holds it is itself bounded); at exit, waits until the
    /// deadline at most (`None` then).
    pub(crate) fn lock<T>(self, mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
        match self {
            Budget::MidProgram => Some(bounded::lock(mutex)),
            Budget::Exit(ExitDeadline(deadline)) => bounded::lock_until(mutex, deadline),
        }
    }

    /// Until when the next waits may last: mid-program, `lock_timeout` from now; at exit, the
    /// deadline.
    pub(crate) fn wait_until(self, lock_timeout: Duration) -> Instant {
        match self {
            Budget::MidProgram => Instant::now() + lock_timeout,
            Budget::Exit(ExitDeadline(deadline)) => deadline,
        }
    }

    /// Whether nothing is left of it: only an exit budget runs out.
    pub(crate) fn is_spent(self) -> bool {
        match self {
            Budget::MidProgram => false,
            Budget::Exit(ExitDeadline(deadline)) => Instant::now() >= deadline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_budget_bounds_every_wait_by_its_deadline_and_runs_out() {
        let spent = Budget::exit_within(Duration::ZERO);
        assert!(spent.is_spent());
        let Budget::Exit(ExitDeadline(deadline)) = spent else { panic!("not an exit budget") };
        assert_eq!(spent.wait_until(Duration::from_secs(60)), deadline, "the lock timeout must not extend it");
        let busy = Mutex::new(());
        let _held = busy.lock().unwrap();
        assert!(spent.lock(&busy).is_none(), "a spent exit budget must not wait for the serial lock");
    }

    #[test]
    fn a_mid_program_budget_never_runs_out_and_bounds_by_the_lock_timeout() {
        let budget = Budget::MidProgram;
        assert!(!budget.is_spent());
        let before = Instant::now();
        let until = budget.wait_until(Duration::from_secs(2));
        assert!(until >= before + Duration::from_secs(2) && until <= Instant::now() + Duration::from_secs(2));
        assert!(budget.lock(&Mutex::new(())).is_some());
    }
}
