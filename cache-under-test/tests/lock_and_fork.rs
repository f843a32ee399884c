//! The save lock and `fork()`: a child forked while a save holds `<path>.lock` shares the lock's
//! open file description; the lock must still be released when the save ends, not when the child
//! exits. (Each test binary is its own process: this one forks from the observer.)

mod support;

use std::fs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use runtime_cache::{CacheOptions, Event, KernelKey, RuntimeCache};
use support::ChildStatus;

#[test]
fn a_child_forked_while_a_save_holds_the_lock_does_not_keep_it() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let first = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    first.insert(KernelKey([1; 32]), Bytes::from_static(b"one"));
    first.save().unwrap();

    // The saver read a valid file; damaged since, its save rewrites it and sets it aside, which
    // it reports (`Quarantined`) with the lock held. There, a child is forked that lives on.
    let saver = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    saver.insert(KernelKey([2; 32]), Bytes::from_static(b"two"));
    fs::write(&path, b"damaged in place, and no longer the size it was").unwrap();
    let child = Arc::new(Mutex::new(None));
    let forked = Arc::clone(&child);
    runtime_cache::set_observer(move |event| {
        if matches!(event, Event::Quarantined { .. }) {
            let pid = support::fork_child(|| {
                std::thread::sleep(Duration::from_secs(1));
                0
            });
            *forked.lock().unwrap() = Some(pid);
        }
    });
    saver.save().unwrap();
    let pid = child.lock().unwrap().take().expect("the save set the damaged file aside, and a child was forked there");

    // The child still holds a descriptor of the lock; another handle's save must not wait for it.
    let other =
        RuntimeCache::open(&path, CacheOptions { lock_timeout: Duration::from_millis(300), ..CacheOptions::default() })
            .unwrap();
    other.insert(KernelKey([3; 32]), Bytes::from_static(b"three"));
    let saved = other.save();
    assert_eq!(support::wait_for(pid), ChildStatus::Exited(0));
    assert!(saved.is_ok(), "a save waited for the lock a forked child inherited: {saved:?}");
}
