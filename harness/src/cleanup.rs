//! Cleanup off the critical path: dropping what is slow to drop on a background thread.
//!
//! Closing an inotify descriptor and deleting a run folder cost more than a do-nothing child's
//! whole run, and nothing observed depends on them. They are sent to one lazily started thread
//! that drops them in order; if that thread cannot be started, they are dropped in place.
//! [`finish`] waits for everything sent so far, so that a process does not end with run folders
//! still on disk.

use std::sync::{OnceLock, mpsc};

type Garbage = Box<dyn Send>;

/// Drops `value` on the cleanup thread.
pub(crate) fn later(value: impl Send + 'static) {
    static THREAD: OnceLock<Option<mpsc::Sender<Garbage>>> = OnceLock::new();
    let sender = THREAD.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Garbage>();
        let spawned = std::thread::Builder::new()
            .name("exit-harness-cleanup".into())
            .spawn(move || rx.into_iter().for_each(drop));
        spawned.ok().map(|_| tx)
    });
    let garbage: Garbage = Box::new(value);
    match sender {
        Some(tx) => {
            // If the thread is gone, the value comes back in the error and is dropped here.
            let _ = tx.send(garbage);
        }
        None => drop(garbage),
    }
}

/// Waits (at most 10 s) until everything handed to [`later`] so far has been dropped.
pub fn finish() {
    /// Dropped on the cleanup thread after everything sent before it.
    struct Barrier(mpsc::Sender<()>);
    impl Drop for Barrier {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let (tx, rx) = mpsc::channel();
    later(Barrier(tx));
    let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
}
