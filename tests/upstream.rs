//! The upstream pull request's four tests (pytorch/TensorRT #4362, `TestRuntimeCacheAutosave`),
//! reproduced against runtime-cache as inline tests: each body runs in a real child process
//! (rusty-fork) that really exits, and the harness judges what reached the disk and stderr.
//!
//! Upstream called the exit hook by hand and spied on `atexit.unregister`; these let the process
//! end for real, so they also catch what only a real exit shows (an exit hook that never runs, runs
//! twice, runs after the handle's thread-locals are gone, or prints on the way out).

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use exit_harness::inline::Inline;
use exit_harness::oracle::{
    ExitStatus, JournalEvents, QuietStderr, RegistryBound, SaveCount, SaveTriggers, SavedBefore,
};
use exit_harness::{fork_id, test_path};
use runtime_cache::{Backend, CacheOptions, Engine, KernelSpec, RuntimeSettings, SyntheticCompiler};
use scenarios::catalog::cache_file;
use scenarios::wiring;

const CACHE: &str = "kernels.rtc";

fn settings(scratch: &Path, lock_timeout: Duration) -> RuntimeSettings {
    RuntimeSettings {
        runtime_cache: Some(scratch.join(CACHE)),
        backend: Backend::Synthetic(SyntheticCompiler::default()),
        cache_options: CacheOptions { lock_timeout, ..CacheOptions::default() },
    }
}

fn dirty_engine(scratch: &Path, lock_timeout: Duration) -> Engine {
    let engine = Engine::new(settings(scratch, lock_timeout)).expect("engine");
    engine.kernel(&KernelSpec::new("k.cu", "extern \"C\" __global__ void k() {}", "k")).expect("compile");
    engine
}

/// Upstream `test_del_swallows_shutdown_import_error_on_path`: a save that fails during shutdown
/// must not leak an error. Here the exit save really fails (another open file description holds
/// the lock for good) and the process really exits: nothing on stderr, exit status 0, and the
/// failure is visible to the observer instead.
#[test]
fn failed_exit_save_is_silent_and_observed() {
    let obs = Inline::new(test_path!(failed_exit_save_is_silent_and_observed))
        .file(cache_file(CACHE))
        .run(fork_id!(), |ctx| {
            wiring::wire_observer();
            let engine: &'static Engine = Box::leak(Box::new(dirty_engine(&ctx.scratch, Duration::from_millis(200))));
            let lock = File::create(ctx.scratch.join(format!("{CACHE}.lock"))).expect("lock file");
            lock.lock().expect("lock");
            std::mem::forget(lock);
            assert!(engine.runtime_cache().is_some_and(|cache| cache.is_dirty()));
        })
        .expect("inline run");
    obs.assert().all(&[
        &ExitStatus::success(),
        &QuietStderr::empty(),
        &SaveCount::none(),
        &JournalEvents::of_kind("save_failed"),
    ]);
}

/// Upstream `test_atexit_hook_saves_via_weakref`: the exit hook saves a handle that is still
/// alive. Here the handle is leaked and the process really exits: exactly one save, by the exit
/// hook.
#[test]
fn handle_alive_at_exit_saves_once() {
    let obs = Inline::new(test_path!(handle_alive_at_exit_saves_once))
        .file(cache_file(CACHE))
        .run(fork_id!(), |ctx| {
            wiring::wire_observer();
            Box::leak(Box::new(dirty_engine(&ctx.scratch, Duration::from_secs(2))));
            wiring::sample_registry(1);
        })
        .expect("inline run");
    let saved_by_exit = SaveTriggers::exactly(CACHE, ["exit"]);
    obs.assert().all(&[
        &ExitStatus::success(),
        &QuietStderr::empty(),
        &SaveCount::exactly(1),
        &saved_by_exit,
        &RegistryBound::new(),
    ]);
}

/// Upstream `test_atexit_hook_no_op_on_dead_weakref`: once the handle is gone, the exit hook does
/// nothing. Here the handle is dropped mid-program (saving once) and the process really exits: no
/// second save at exit.
#[test]
fn dropped_handle_is_not_saved_again_at_exit() {
    let obs = Inline::new(test_path!(dropped_handle_is_not_saved_again_at_exit))
        .file(cache_file(CACHE))
        .run(fork_id!(), |ctx| {
            wiring::wire_observer();
            drop(dirty_engine(&ctx.scratch, Duration::from_secs(2)));
            wiring::marker("mid-program");
        })
        .expect("inline run");
    obs.assert().all(&[
        &ExitStatus::success(),
        &QuietStderr::empty(),
        &SaveCount::exactly(1),
        &SavedBefore::new(CACHE, "mid-program"),
    ]);
}

/// Upstream `test_atexit_token_unregistered_after_del`: dropping a handle unregisters its exit
/// hook (upstream spied on `atexit.unregister`). Here 1 000 handles come and go, the registry is
/// sampled after each, and the process really exits: the registry never exceeds the live count,
/// returns to empty, and the exit hook saves nothing.
#[test]
fn drop_unregisters_the_exit_hook() {
    let obs = Inline::new(test_path!(drop_unregisters_the_exit_hook))
        .file(cache_file(CACHE))
        .run(fork_id!(), |ctx| {
            wiring::wire_observer();
            for _ in 0..1_000 {
                let engine = Engine::new(settings(&ctx.scratch, Duration::from_secs(2))).expect("engine");
                wiring::sample_registry(1);
                drop(engine);
                wiring::sample_registry(0);
            }
            assert_eq!(runtime_cache::exit_registry_len(), 0);
        })
        .expect("inline run");
    obs.assert().all(&[
        &ExitStatus::success(),
        &QuietStderr::empty(),
        &SaveCount::none(),
        &RegistryBound::new().max_growth(0),
    ]);
}
