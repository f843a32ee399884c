//! Per-key single flight (issue #16, item 7): when several threads miss the same key at once, one
//! compiles and the others wait for its result instead of compiling it again.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;

use crate::bounded;
use crate::compiler::CompileError;
use crate::key::KernelKey;

/// What a flight's leader hands its waiters: the artifact, or the compile error (`None` when the
/// error cannot be shared, e.g. an application's own error type: each waiter then tries itself).
pub(crate) type Shared = Result<Bytes, Option<CompileError>>;

/// What [`Flights::begin`] found.
pub(crate) enum Begin<'a> {
    /// No flight of this key was running: this caller leads one and must
    /// [`land`](Landing::land) it (dropping the landing lands it as an unshareable failure).
    Lead(Landing<'a>),
    /// Another caller led; this is what it shared.
    Awaited(Shared),
}

#[derive(Debug, Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<KernelKey, Arc<Flight>>>,
}

#[derive(Debug, Default)]
struct Flight {
    outcome: Mutex<Option<Shared>>,
    done: Condvar,
}

impl Flights {
    /// Leads a flight for `key`, or, if another thread leads one, waits for its outcome.
    pub(crate) fn begin(&self, key: KernelKey) -> Begin<'_> {
        let (flight, leader) = {
            let mut running = bounded::lock(&self.running);
            match running.get(&key) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let flight = Arc::new(Flight::default());
                    running.insert(key, flight.clone());
                    (flight, true)
                }
            }
        };
        if leader {
            return Begin::Lead(Landing { flights: self, key, flight });
        }
        let mut outcome = bounded::lock(&flight.outcome);
        loop {
            if let Some(shared) = outcome.as_ref() {
                return Begin::Awaited(shared.clone());
            }
            outcome = flight.done.wait(outcome).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// A flight this caller leads. Landing it publishes the outcome to the waiters and frees the key;
/// dropping it unlanded (the leader's closure panicked) publishes an unshareable failure, so the
/// waiters try themselves instead of waiting for ever.
pub(crate) struct Landing<'a> {
    flights: &'a Flights,
    key: KernelKey,
    flight: Arc<Flight>,
}

impl Landing<'_> {
    /// Publishes `shared` to the waiters.
    pub(crate) fn land(self, shared: Shared) {
        self.publish(shared);
        std::mem::forget(self);
    }

    fn publish(&self, shared: Shared) {
        bounded::lock(&self.flights.running).remove(&self.key);
        *bounded::lock(&self.flight.outcome) = Some(shared);
        self.flight.done.notify_all();
    }
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.publish(Err(None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn concurrent_callers_of_one_key_run_it_once() {
        let flights = Arc::new(Flights::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (flights, runs, barrier) = (flights.clone(), runs.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match flights.begin(KernelKey([1; 32])) {
                        Begin::Lead(landing) => {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            landing.land(Ok(Bytes::from_static(b"ptx")));
                            Bytes::from_static(b"ptx")
                        }
                        Begin::Awaited(shared) => shared.unwrap(),
                    }
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), Bytes::from_static(b"ptx"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(bounded::lock(&flights.running).is_empty());
    }

    #[test]
    fn a_panicking_leader_releases_its_waiters() {
        let flights = Arc::new(Flights::default());
        let started = Arc::new(Barrier::new(2));
        let leader = {
            let (flights, started) = (flights.clone(), started.clone());
            std::thread::spawn(move || {
                let Begin::Lead(_landing) = flights.begin(KernelKey([2; 32])) else { panic!("not the leader") };
                started.wait();
                std::thread::sleep(Duration::from_millis(50));
                panic!("the application's closure panicked");
            })
        };
        started.wait();
        let waited = flights.begin(KernelKey([2; 32]));
        assert!(leader.join().is_err());
        match waited {
            Begin::Awaited(Err(None)) | Begin::Lead(_) => {}
            Begin::Awaited(other) => panic!("unexpected {other:?}"),
        }
        assert!(bounded::lock(&flights.running).is_empty());
    }
}
