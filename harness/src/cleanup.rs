//! Cleanup off the critical path: dropping what is slow to drop on a background thread.
//!
//! Closing an inotify descriptor and deleting a run folder cost more than a do-nothing child's
//! whole run, and nothing observed depends on them. They are sent to one lazily started thread
//! that drops them in order; if that thread cannot be started, they are dropped in place.

use std::sync::{Mutex, OnceLock, mpsc};

type Garbage = Box<dyn Send>;

/// Drops `value` on the cleanup thread.
pub(crate) fn later(value: impl Send + 'static) {
    static THREAD: OnceLock<Option<Mutex<mpsc::Sender<Garbage>>>> = OnceLock::new();
    let sender = THREAD.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Garbage>();
        let spawned = std::thread::Builder::new()
            .name("exit-harness-cleanup".into())
            .spawn(move || rx.into_iter().for_each(drop));
        spawned.ok().map(|_| Mutex::new(tx))
    });
    let garbage: Garbage = Box::new(value);
    let unsent = match sender.as_ref().map(|tx| tx.lock().map(|tx| tx.send(garbage))) {
        Some(Ok(Ok(()))) => None,
        Some(Ok(Err(mpsc::SendError(garbage)))) => Some(garbage),
        _ => None,
    };
    drop(unsent);
}
