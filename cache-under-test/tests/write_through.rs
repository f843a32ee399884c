//! Issue #16, item 8: write-through (`CacheOptions::write_through`). Seen failing before the fix:
//! nothing was on disk before drop or exit, so a SIGKILLed server recompiled everything.
//!
//! Write-through keeps the autosave contract for what remains dirty: a handle whose every insert
//! was saved is clean at drop (no second write); one whose write-through save failed saves it
//! exactly once at drop.

mod support;

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use runtime_cache::{
    Backend, CacheOptions, Engine, Event, KernelSpec, RuntimeCache, RuntimeSettings, SkipReason, SyntheticCompiler,
    Trigger,
};

fn spec(i: u32) -> KernelSpec {
    KernelSpec::new(format!("k{i}.cu"), format!("extern \"C\" __global__ void k{i}() {{}}"), format!("k{i}"))
}

fn settings(path: &Path, write_through: bool) -> RuntimeSettings {
    RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(64, Duration::ZERO)),
        cache_options: CacheOptions {
            write_through,
            lock_timeout: Duration::from_millis(300),
            ..CacheOptions::default()
        },
        ..RuntimeSettings::with_cache(path)
    }
}

#[test]
fn with_write_through_kernels_survive_a_sigkill() {
    const TEST: &str = "with_write_through_kernels_survive_a_sigkill";
    if support::is_child_of(TEST) {
        let path = PathBuf::from(std::env::var("TEST_CACHE").unwrap());
        let write_through = std::env::var("TEST_WRITE_THROUGH").is_ok();
        let engine = Engine::new(settings(&path, write_through)).unwrap();
        for i in 0..3 {
            engine.kernel(&spec(i)).unwrap();
        }
        // A server killed with the engine alive: no drop, no exit hook.
        support::kill_self();
    }
    let entries_after_sigkill = |write_through: bool| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernels.rtc");
        let exe = std::env::current_exe().unwrap();
        let mut command = Command::new(exe);
        command.args(["--exact", TEST, "--nocapture", "--test-threads=1"]).env(support::CHILD_ENV, TEST);
        command.env("TEST_CACHE", &path);
        if write_through {
            command.env("TEST_WRITE_THROUGH", "1");
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.signal(), Some(9), "the child was not killed: {output:?}");
        if path.exists() { RuntimeCache::open(&path, CacheOptions::default()).unwrap().len() } else { 0 }
    };
    assert_eq!(entries_after_sigkill(true), 3, "write-through lost kernels to a SIGKILL");
    assert_eq!(entries_after_sigkill(false), 0, "without write-through, the autosave is at drop or exit only");
}

#[test]
fn a_clean_write_through_handle_does_not_save_again_at_drop() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let engine = Engine::new(settings(&path, true)).unwrap();
    for i in 0..3 {
        engine.kernel(&spec(i)).unwrap();
        assert!(!engine.runtime_cache().unwrap().is_dirty(), "kernel {i} is not on disk yet");
    }
    drop(engine);
    assert_eq!(support::commits_for(&path), [Trigger::Insert; 3]);
    let skipped = support::events_for(&path)
        .into_iter()
        .any(|event| matches!(event, Event::SaveSkipped { trigger: Trigger::Drop, reason: SkipReason::Clean, .. }));
    assert!(skipped, "the drop did not find the handle clean");
}

#[test]
fn a_failed_write_through_save_leaves_the_entry_for_exactly_one_autosave() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let engine = Engine::new(settings(&path, true)).unwrap();
    // Another process holds the lock: the write-through save times out.
    let holder = File::create(dir.path().join("kernels.rtc.lock")).unwrap();
    holder.lock().unwrap();
    engine.kernel(&spec(1)).expect("a failed save never fails the kernel");
    assert!(engine.runtime_cache().unwrap().is_dirty());
    let failed = support::events_for(&path)
        .into_iter()
        .any(|event| matches!(event, Event::SaveFailed { trigger: Trigger::Insert, .. }));
    assert!(failed, "no SaveFailed event for the write-through save");
    drop(holder);
    drop(engine);
    assert_eq!(support::commits_for(&path), [Trigger::Drop], "not exactly one autosave of what stayed dirty");
    assert_eq!(RuntimeCache::open(&path, CacheOptions::default()).unwrap().len(), 1);
}
