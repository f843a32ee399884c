//! Per-handle autosave state: armed -> saving -> done, claimed by one atomic compare-exchange, so
//! a drop on one thread racing the exit (or a signal) on another saves exactly once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use crate::bounded;

const ARMED: u8 = 0;
const SAVING: u8 = 1;
const DONE: u8 = 2;

/// The outcome of trying to claim the one autosave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This caller saves.
    Won,
    /// Another trigger is saving right now.
    InProgress,
    /// The autosave already happened.
    Done,
}

/// One handle's autosave state.
#[derive(Debug)]
pub(crate) struct AutosaveState(AtomicU8);

impl AutosaveState {
    /// An armed state: the first claim wins.
    pub(crate) fn armed() -> Self {
        Self(AtomicU8::new(ARMED))
    }

    /// Tries to become the one caller that saves.
    pub(crate) fn claim(&self) -> Claim {
        match self.0.compare_exchange(ARMED, SAVING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Claim::Won,
            Err(SAVING) => Claim::InProgress,
            Err(_) => Claim::Done,
        }
    }

    /// Marks the autosave finished (by the caller that won the claim).
    pub(crate) fn finish(&self) {
        self.0.store(DONE, Ordering::Release);
    }

    /// Waits until a save in progress elsewhere finishes, or `deadline`. True if it finished.
    pub(crate) fn wait_done(&self, deadline: Instant) -> bool {
        bounded::poll_until(deadline, || (self.0.load(Ordering::Acquire) == DONE).then_some(())).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn exactly_one_of_many_racing_claims_wins() {
        for _ in 0..200 {
            let state = Arc::new(AutosaveState::armed());
            let winners = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (state, winners) = (state.clone(), winners.clone());
                    std::thread::spawn(move || {
                        if state.claim() == Claim::Won {
                            winners.fetch_add(1, Ordering::SeqCst);
                            state.finish();
                        }
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            assert_eq!(winners.load(Ordering::SeqCst), 1);
            assert_eq!(state.claim(), Claim::Done);
        }
    }
}
