//! Exit-time behaviour in real child processes: a `fork()`ed child that exits through
//! `std::process::exit` (so the atexit hook runs there) never saves its parent's handle, and the
//! parent still saves once; a handle alive at `exit` saves exactly once, also when a drop on
//! another thread races the exit.
//!
//! Every test here forks and takes `support::serial()`.

mod support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use runtime_cache::{CacheOptions, Event, KernelKey, RuntimeCache, Trigger};
use support::ChildStatus;

fn autosave() -> CacheOptions {
    CacheOptions { autosave: true, ..CacheOptions::default() }
}

fn entry(n: u8) -> (KernelKey, Bytes) {
    (KernelKey([n; 32]), Bytes::from(vec![n; 64]))
}

#[test]
fn a_forked_child_that_exits_does_not_save_the_parents_handle() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let cache = RuntimeCache::open(&path, autosave()).unwrap();
    let (key, artifact) = entry(1);
    cache.insert(key, artifact.clone());

    // The child inherits the dirty handle and the atexit hook; `exit` runs the hook there.
    let status = support::fork_and_wait(|| std::process::exit(0));
    assert_eq!(status, ChildStatus::Exited(0));
    assert!(!path.exists(), "the child saved its parent's cache");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "only the lock file is there");

    // A child that drops its copy of the handle does not save either.
    let cache = std::cell::RefCell::new(Some(cache));
    let status = support::fork_and_wait(|| {
        drop(cache.borrow_mut().take());
        if std::fs::exists(&path).unwrap_or(true) { 1 } else { 0 }
    });
    assert_eq!(status, ChildStatus::Exited(0), "the child's drop saved its parent's cache");
    assert!(!path.exists());
    let cache = cache.into_inner().expect("the parent's handle is still there");

    // The parent saves once, at drop.
    assert!(support::commits_for(&path).is_empty());
    drop(cache);
    assert_eq!(support::commits_for(&path), [Trigger::Drop]);
    let reopened = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    assert_eq!(reopened.get(&key), Some(artifact));
}

#[test]
fn a_forked_child_leaves_an_existing_file_byte_exact() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let cache = RuntimeCache::open(&path, autosave()).unwrap();
    let (key, artifact) = entry(1);
    cache.insert(key, artifact);
    cache.save().unwrap();
    let saved = fs::read(&path).unwrap();
    let (key, artifact) = entry(2);
    cache.insert(key, artifact);
    assert!(cache.is_dirty());

    let status = support::fork_and_wait(|| std::process::exit(7));
    assert_eq!(status, ChildStatus::Exited(7));
    assert_eq!(fs::read(&path).unwrap(), saved, "the child rewrote the file");
    drop(cache);
    assert_eq!(RuntimeCache::open(&path, CacheOptions::default()).unwrap().len(), 2);
}

/// An observer for a child process: appends one line per committed save or skip of `path` to
/// `journal` (one `write` per line, O_APPEND), so the parent can count them after the child ended.
fn journal_saves_of(path: PathBuf, journal: PathBuf) {
    runtime_cache::set_observer(move |event| {
        let line = match event {
            Event::SaveCommitted { path: saved, trigger, .. } if *saved == path => format!("committed {trigger}\n"),
            Event::SaveSkipped { path: saved, trigger, reason } if *saved == path => {
                format!("skipped {trigger} {reason}\n")
            }
            _ => return,
        };
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(&journal) {
            let _ = file.write_all(line.as_bytes());
        }
    });
}

fn journal_lines(journal: &Path) -> Vec<String> {
    fs::read_to_string(journal).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn a_handle_alive_at_exit_saves_exactly_once_in_a_child() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let journal = dir.path().join("journal");
    let status = support::fork_and_wait(|| {
        journal_saves_of(path.clone(), journal.clone());
        let cache = RuntimeCache::open(&path, autosave()).expect("open in child");
        let (key, artifact) = entry(3);
        cache.insert(key, artifact);
        // Leaked: never dropped, so only the exit hook can save it.
        std::mem::forget(cache);
        std::process::exit(0)
    });
    assert_eq!(status, ChildStatus::Exited(0));
    assert_eq!(journal_lines(&journal), ["committed exit"]);
    assert_eq!(RuntimeCache::open(&path, CacheOptions::default()).unwrap().len(), 1);
}

#[test]
fn a_drop_racing_the_exit_saves_exactly_once() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    for round in 0..50 {
        let path = dir.path().join(format!("race-{round}.rtk"));
        let journal = dir.path().join(format!("journal-{round}"));
        let status = support::fork_and_wait(|| {
            journal_saves_of(path.clone(), journal.clone());
            let cache = Arc::new(RuntimeCache::open(&path, autosave()).expect("open in child"));
            for n in 0..50 {
                let (key, artifact) = entry(n);
                cache.insert(key, artifact);
            }
            let start = Arc::new(std::sync::Barrier::new(2));
            let dropper = {
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    drop(cache);
                })
            };
            start.wait();
            // Exit while the other thread drops (and saves) the last reference.
            let _detached = dropper;
            std::process::exit(0)
        });
        assert_eq!(status, ChildStatus::Exited(0), "round {round}");
        let lines = journal_lines(&journal);
        let commits = lines.iter().filter(|line| line.starts_with("committed")).count();
        assert_eq!(commits, 1, "round {round}: {lines:?}");
        assert_eq!(RuntimeCache::open(&path, CacheOptions::default()).unwrap().len(), 50, "round {round}");
    }
}

/// The termination handler's signal thread exists only in the process that installed it: a forked
/// child that gets SIGTERM must still die by it (not catch it and hang), and save nothing.
#[test]
fn a_forked_child_of_a_process_with_the_termination_handler_dies_by_sigterm() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let child_path = path.clone();
    // The handler is installed in a child (A), so this test binary keeps default dispositions.
    let status = support::fork_and_wait(move || {
        if runtime_cache::install_termination_handler().is_err() {
            return 2;
        }
        let cache = RuntimeCache::open(&child_path, autosave()).unwrap();
        let (key, artifact) = entry(7);
        cache.insert(key, artifact);
        // Grandchild (B): raises SIGTERM at itself and then waits to die by it.
        let grandchild = support::fork_child(|| {
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
            std::thread::sleep(std::time::Duration::from_secs(30));
            0
        });
        let verdict = match support::wait_for_at_most(grandchild, std::time::Duration::from_secs(10)) {
            Some(ChildStatus::Signaled(signal)) if signal == signal_hook::consts::SIGTERM => 0,
            Some(_) => 4,
            None => 3,
        };
        std::mem::forget(cache);
        verdict
    });
    assert_eq!(status, ChildStatus::Exited(0), "3: the grandchild caught SIGTERM and hung; 4: it ended otherwise");
    assert!(!path.exists(), "nothing was to be saved: A ended with _exit and B by SIGTERM");
}
