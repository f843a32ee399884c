//! Sharing one cache file: two handles (or K processes) saving distinct keys lose none of them
//! (save = lock, then append a frame of the new entries, or rewrite the file), a saver picks up
//! what others saved, and a lock held elsewhere makes a save fail with `LockTimeout` after the
//! bounded wait, leaving the old file intact (while opening, which needs no lock, still works).

/// Every test here takes `support::serial()`: one of them forks.
mod support;

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use runtime_cache::{CacheError, CacheOptions, KernelKey, RuntimeCache, SaveKind, SaveOutcome};
use support::ChildStatus;

fn key(writer: u8, n: u8) -> KernelKey {
    let mut key = [n; 32];
    key[0] = writer;
    KernelKey(key)
}

fn artifact(writer: u8, n: u8) -> Bytes {
    Bytes::from(format!("artifact {writer}/{n}").repeat(10))
}

fn on_disk(path: &Path) -> RuntimeCache {
    RuntimeCache::open(path, CacheOptions::default()).expect("reopen")
}

#[test]
fn two_handles_saving_distinct_keys_leave_the_union() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let a = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    let b = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    for n in 0..10 {
        a.insert(key(1, n), artifact(1, n));
        b.insert(key(2, n), artifact(2, n));
    }
    assert_eq!(
        a.save().unwrap(),
        SaveOutcome::Committed {
            entries: 10,
            bytes: fs::metadata(&path).unwrap().len(),
            evicted: 0,
            kind: SaveKind::Rewritten
        }
    );
    // B has not seen A's save: it appends to A's file instead of overwriting it.
    match b.save().unwrap() {
        SaveOutcome::Committed { entries, .. } => assert_eq!(entries, 20),
        SaveOutcome::Clean => panic!("b was dirty"),
    }
    let merged = on_disk(&path);
    assert_eq!(merged.len(), 20);
    for n in 0..10 {
        assert_eq!(merged.get(&key(1, n)), Some(artifact(1, n)));
        assert_eq!(merged.get(&key(2, n)), Some(artifact(2, n)));
    }
    // B picked A's entries up in memory; it is clean again.
    assert_eq!(b.len(), 20);
    assert_eq!(b.get(&key(1, 3)), Some(artifact(1, 3)));
    assert!(!b.is_dirty());
    // A saves again with one more entry: it merges B's entries rather than dropping them.
    a.insert(key(1, 99), artifact(1, 99));
    a.save().unwrap();
    assert_eq!(on_disk(&path).len(), 21);
    assert_eq!(a.len(), 21, "a picked b's entries up at its save");
}

#[test]
fn on_a_key_both_hold_the_saver_wins_and_nothing_is_duplicated() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let a = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    let b = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    a.insert(key(0, 0), Bytes::from_static(b"from a"));
    b.insert(key(0, 0), Bytes::from_static(b"from b"));
    a.save().unwrap();
    b.save().unwrap();
    let merged = on_disk(&path);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged.get(&key(0, 0)), Some(Bytes::from_static(b"from b")));
}

#[test]
fn k_processes_saving_at_once_lose_no_entries() {
    let _serial = support::serial();
    const WRITERS: u8 = 4;
    const KEYS: u8 = 25;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let children: Vec<i32> = (0..WRITERS)
        .map(|writer| {
            let path = path.clone();
            support::fork_child(move || {
                // Each child saves after every insert, so the saves of all children interleave.
                let cache = match RuntimeCache::open(&path, CacheOptions::default()) {
                    Ok(cache) => cache,
                    Err(error) => return support::report(1, &format!("writer {writer}: open: {error}")),
                };
                for n in 0..KEYS {
                    cache.insert(key(writer, n), artifact(writer, n));
                    if let Err(error) = cache.save() {
                        return support::report(2, &format!("writer {writer}: save: {error}"));
                    }
                }
                0
            })
        })
        .collect();
    for pid in children {
        assert_eq!(support::wait_for(pid), ChildStatus::Exited(0));
    }
    let merged = on_disk(&path);
    assert_eq!(merged.len(), usize::from(WRITERS) * usize::from(KEYS), "entries were lost");
    for writer in 0..WRITERS {
        for n in 0..KEYS {
            assert_eq!(merged.get(&key(writer, n)), Some(artifact(writer, n)), "writer {writer} key {n}");
        }
    }
    let temps: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "temp files left behind: {temps:?}");
}

#[test]
fn a_held_lock_makes_save_and_open_time_out_and_leaves_the_file_intact() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let lock_timeout = Duration::from_millis(300);
    let options = CacheOptions { lock_timeout, ..CacheOptions::default() };
    let cache = RuntimeCache::open(&path, options.clone()).unwrap();
    cache.insert(key(0, 1), artifact(0, 1));
    cache.save().unwrap();
    let old = fs::read(&path).unwrap();
    cache.insert(key(0, 2), artifact(0, 2));

    // Another holder of `<path>.lock` (flock locks conflict between open file descriptions, even
    // within one process).
    let holder = File::options().read(true).write(true).open(dir.path().join("kernels.rtk.lock")).unwrap();
    holder.lock().unwrap();

    let started = Instant::now();
    let result = cache.save();
    let waited = started.elapsed();
    match result {
        Err(CacheError::LockTimeout { lock_path, waited: reported }) => {
            assert_eq!(lock_path, dir.path().join("kernels.rtk.lock"));
            assert!(reported >= lock_timeout, "reported a wait of {reported:?}");
        }
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    // Bounded: it waited the timeout, and not unboundedly more (the bound is loose on purpose:
    // this is a contract check, not a speed target).
    assert!(waited >= lock_timeout && waited < lock_timeout * 10, "waited {waited:?}");
    assert_eq!(fs::read(&path).unwrap(), old, "the old file is intact");
    assert!(cache.is_dirty(), "a failed save keeps the entries dirty");

    // Opening never waits for writers (issue #12): it loads the file without the lock.
    let reader = RuntimeCache::open(&path, options).expect("open while the lock is held");
    assert_eq!(reader.len(), 1, "the committed file, read without the lock");

    // Once the lock is released, the pending entry saves.
    holder.unlock().unwrap();
    cache.save().unwrap();
    assert_eq!(on_disk(&path).len(), 2);
}

/// Saves `cache` (at `path`, its lock `<path>.lock`) with `during` run while the save runs:
/// after the save has taken its snapshot (`Event::SaveStarted`) and before it reads the file,
/// which it cannot do sooner, as this function holds the lock until `during` returns.
fn save_with_a_change_after_its_snapshot(cache: &RuntimeCache, path: &Path, during: impl FnOnce()) {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let holder = File::options().read(true).write(true).open(lock_path).unwrap();
    holder.lock().unwrap();
    let (started, snapshotted) = std::sync::mpsc::channel();
    let watched = path.to_owned();
    runtime_cache::set_observer(move |event| {
        if let runtime_cache::Event::SaveStarted { path, .. } = event
            && *path == watched
        {
            let _ = started.send(());
        }
    });
    std::thread::scope(|scope| {
        let save = scope.spawn(|| cache.save());
        snapshotted.recv_timeout(Duration::from_secs(10)).expect("the save started");
        during();
        holder.unlock().unwrap();
        save.join().unwrap().unwrap();
    });
    runtime_cache::clear_observer();
}

/// [`save_with_a_change_after_its_snapshot`], the change an insert of `key`.
fn save_with_an_insert_after_its_snapshot(cache: &RuntimeCache, path: &Path, key: KernelKey, artifact: Bytes) {
    save_with_a_change_after_its_snapshot(cache, path, || cache.insert(key, artifact));
}

/// Generous: the save waits for the lock this test holds while it inserts.
fn patient(path: &Path) -> RuntimeCache {
    let options = CacheOptions { lock_timeout: Duration::from_secs(60), ..CacheOptions::default() };
    RuntimeCache::open(path, options).unwrap()
}

/// Another process saves k2 to `path` (another handle stands in for it): an append.
fn another_process_saves_k2(path: &Path) {
    let other = RuntimeCache::open(path, CacheOptions::default()).unwrap();
    other.insert(key(1, 2), artifact(1, 2));
    other.save().unwrap();
}

/// A cache file `kernels.rtk` saved once (k0, a version-3 file that later saves append to) and
/// our [`patient`] handle on it, dirty with k3.
fn a_saved_file_and_our_dirty_handle() -> (tempfile::TempDir, RuntimeCache) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let first = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    first.insert(key(1, 0), artifact(1, 0));
    first.save().unwrap();
    let ours = patient(&path);
    ours.insert(key(1, 3), artifact(1, 3));
    (dir, ours)
}

/// Found by the fuzzer (`create e0 a.rtc; compile e0 k3; spawn a.rtc k2; thread-compile e0 k2;
/// save e0; exit(0)` saved twice about once in 10 000 cases): a kernel inserted while a save
/// runs, after its snapshot, that the save then finds on disk with the same bytes (another
/// process saved it) is in the file already. It must not stay dirty, or the exit saves again.
#[test]
fn an_insert_during_a_save_that_finds_it_on_disk_leaves_the_handle_clean() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let ours = patient(&path);
    ours.insert(key(1, 3), artifact(1, 3));
    another_process_saves_k2(&path);

    save_with_an_insert_after_its_snapshot(&ours, &path, key(1, 2), artifact(1, 2));

    assert_eq!(on_disk(&path).len(), 2);
    assert!(!ours.is_dirty(), "k2 is in the file with these very bytes: nothing is left to save");
    assert_eq!(ours.save().unwrap(), SaveOutcome::Clean);
}

/// The same, but two processes appended the key since our handle last looked, first with our
/// bytes, then with others: the file holds the later ones, so our insert is still unsaved.
#[test]
fn an_insert_during_a_save_stays_dirty_when_a_later_append_replaced_those_bytes() {
    let _serial = support::serial();
    let (dir, ours) = a_saved_file_and_our_dirty_handle();
    let path = dir.path().join("kernels.rtk");
    for bytes in [Bytes::from_static(b"ours"), Bytes::from_static(b"theirs")] {
        let other = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
        other.insert(key(1, 2), bytes);
        assert!(matches!(other.save().unwrap(), SaveOutcome::Committed { kind: SaveKind::Appended, .. }));
    }

    save_with_an_insert_after_its_snapshot(&ours, &path, key(1, 2), Bytes::from_static(b"ours"));

    assert_eq!(on_disk(&path).get(&key(1, 2)), Some(Bytes::from_static(b"theirs")));
    assert!(ours.is_dirty(), "the file holds other bytes under k2: ours are not saved yet");
    ours.save().unwrap();
    assert_eq!(on_disk(&path).get(&key(1, 2)), Some(Bytes::from_static(b"ours")), "the saver wins");
}

/// A key removed while a save runs (after its snapshot) stays removed: the save does not forget
/// the removal, so the next save rewrites the file without it.
#[test]
fn a_remove_during_a_save_is_carried_by_the_next_save() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let ours = patient(&path);
    ours.insert(key(1, 1), artifact(1, 1));
    ours.save().unwrap();
    ours.insert(key(1, 2), artifact(1, 2));

    save_with_a_change_after_its_snapshot(&ours, &path, || assert!(ours.remove(&key(1, 1))));

    assert!(ours.is_dirty(), "the removal of k1 is not in the file yet");
    ours.save().unwrap();
    let file = on_disk(&path);
    assert_eq!(file.get(&key(1, 1)), None, "a removed key came back: the removal was lost");
    assert_eq!(file.get(&key(1, 2)), Some(artifact(1, 2)));
}

/// A `clear()` while a save runs (after its snapshot) is not undone by what that save read from
/// the file: nothing merges back into the cleared handle, and its next save empties the file.
#[test]
fn a_clear_during_a_save_keeps_what_the_save_read_out_of_the_handle() {
    let _serial = support::serial();
    let (dir, ours) = a_saved_file_and_our_dirty_handle();
    let path = dir.path().join("kernels.rtk");
    // Our save reads k2 from the file.
    another_process_saves_k2(&path);

    save_with_a_change_after_its_snapshot(&ours, &path, || ours.clear());

    assert_eq!(ours.len(), 0, "entries merged back into a handle cleared during the save");
    ours.save().unwrap();
    assert_eq!(on_disk(&path).len(), 0, "the clear reaches the file at the next save");
}

/// A save whose append fails (a full disk) after it read what another process appended forgets
/// none of it: the next save still brings it into the handle. Found by a review of the fuzzer's
/// `fail-save` cases: the failed append had moved the handle's view of the file past those
/// frames, so the next save found nothing new, and the handle missed (and recompiled) kernels the
/// file held.
#[test]
fn a_failed_append_does_not_forget_what_it_read_of_another_processs_save() {
    let _serial = support::serial();
    let (dir, ours) = a_saved_file_and_our_dirty_handle();
    let path = dir.path().join("kernels.rtk");
    another_process_saves_k2(&path);
    // The file size limit is process-wide: a forked child takes it.
    let status = support::fork_and_wait(|| {
        support::limit_file_size(Some(fs::metadata(&path).map_or(0, |metadata| metadata.len())));
        let failed = ours.save().is_err();
        support::limit_file_size(None);
        let saved = ours.save().is_ok();
        match (failed, saved, ours.get(&key(1, 2))) {
            (false, _, _) => support::report(2, "the save with a full disk did not fail"),
            (_, false, _) => support::report(3, "the save after the disk had room again failed"),
            (_, _, None) => support::report(4, "k2, which another process saved, never reached our handle"),
            (true, true, Some(_)) => 0,
        }
    });
    assert_eq!(status, ChildStatus::Exited(0));
    assert_eq!(on_disk(&path).len(), 3, "k0, k2 and k3 are in the file");
}

/// Caching the bytes a handle already holds under a key changes nothing: the handle stays clean
/// and writes nothing.
#[test]
fn inserting_the_same_bytes_again_leaves_the_handle_clean() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let cache = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    cache.insert(key(1, 1), artifact(1, 1));
    cache.save().unwrap();
    cache.insert(key(1, 1), artifact(1, 1));
    assert!(!cache.is_dirty(), "the same bytes again made the handle dirty");
    assert_eq!(cache.save().unwrap(), SaveOutcome::Clean);
}
