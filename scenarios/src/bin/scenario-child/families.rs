//! What happens between building the engine and ending, per scenario family.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use exit_harness::journal::Event as Line;
use runtime_cache::{
    Backend, CacheOptions, Durability, Engine, KernelOrigin, KernelSpec, RuntimeCache, RuntimeSettings,
    SyntheticCompiler,
};
use scenarios::contract::Hostile;
use scenarios::plan::{ChildPlan, Family, Holder, InitFailure, RaceChange, SaveFailure};
use scenarios::wiring;

use crate::ending::{end, give_up};
use crate::engines;
use crate::holders;
use crate::sys::{self, Forked};

/// Runs the plan's family in the process the harness spawned.
pub fn run(plan: &ChildPlan) -> ExitCode {
    if plan.family == Family::LateSignal {
        // Before the handler is installed: a budget the handler counted from its installation
        // would be long spent when the signal comes.
        runtime_cache::set_exit_deadline(SHORT_EXIT_DEADLINE);
    }
    if plan.handler
        && let Err(error) = runtime_cache::install_termination_handler()
    {
        give_up(&format!("install_termination_handler: {error}"));
    }
    match &plan.family {
        Family::Nothing => ExitCode::SUCCESS,
        Family::SurviveToExit
        | Family::CorruptOnOpen
        | Family::TrimmedAtOpen
        | Family::OtherBuildPruned
        | Family::OverMaxFileBytes
        | Family::DirtyEntryEvicted
        | Family::AtTheLimits => {
            let engine = dirty_engine(plan, &plan.cache, 0);
            end_holding(plan, engine)
        }
        Family::LeastRecentlyUsedDropped => {
            let engine = dirty_engine(plan, &plan.cache, 0);
            record_entries(&engine);
            end_holding(plan, engine)
        }
        Family::LastUseFromAnotherHandle { with_removal } => {
            let engine = engines::new_engine(settings(plan, &plan.cache));
            let other = another_handle(&plan.cache, CacheOptions::default());
            let used_elsewhere = scenarios::catalog::old_cache_keys()[0];
            other.insert(used_elsewhere, bytes::Bytes::from_static(b"the other handle's bytes"));
            if let Err(error) = other.save() {
                give_up(&format!("the other handle's save: {error}"));
            }
            compile(&engine, plan.kernels, 0);
            if *with_removal {
                let cache = cache_of(&engine);
                let (removed, artifact) = scenarios::catalog::other_writer_entry();
                cache.insert(removed, artifact);
                if !cache.remove(&removed) {
                    give_up("remove() did not find the entry just inserted");
                }
            }
            end_holding(plan, engine)
        }
        Family::MidProgramDrop => {
            drop(dirty_engine(plan, &plan.cache, 0));
            wiring::sample_registry(0);
            wiring::marker("mid-program");
            end(plan.ending)
        }
        Family::Churn { engines, dirty_every } => churn(plan, *engines, *dirty_every),
        Family::PartialInitFailure(cause) => partial_init_failure(plan, cause),
        Family::Fork { child_exit } => fork(plan, *child_exit),
        Family::Swap => {
            let mut engine = dirty_engine(plan, &plan.cache, 0);
            if let Err(error) = engine.set_settings(settings(plan, &plan.second_cache)) {
                give_up(&format!("set_settings: {error}"));
            }
            compile(&engine, plan.kernels, 1);
            wiring::marker("swapped");
            end_holding(plan, engine)
        }
        Family::ExplicitSave { compile_after } => {
            let engine = dirty_engine(plan, &plan.cache, 0);
            let saved = engine.runtime_cache().map(|cache| cache.save());
            if let Some(Err(error)) = saved {
                give_up(&format!("explicit save: {error}"));
            }
            wiring::marker("saved");
            if *compile_after {
                compile(&engine, plan.kernels, 1);
            }
            end_holding(plan, engine)
        }
        Family::WarmStart => {
            let code = finish_workers(vec![spawn_worker(plan, 0)]);
            wiring::marker("warm");
            // The same kernels again, in this process: every one must come from the cache.
            let engine = engines::new_engine(settings(plan, &plan.cache));
            compile(&engine, plan.kernels, 0);
            wiring::sample_registry(1);
            drop(engine);
            wiring::sample_registry(0);
            code
        }
        Family::LockContention => {
            let lock = open_lock(&plan.cache);
            let mut worker = spawn_worker(plan, 0);
            for step in CONTENDED_STEPS {
                if let Err(error) = lock.lock() {
                    let _ = worker.kill();
                    let _ = worker.wait();
                    give_up(&format!("take the lock: {error}"));
                }
                touch(&format!("locked-{step}"));
                std::thread::sleep(CONTENTION);
                let _ = lock.unlock();
                wait_for_file(&format!("done-{step}"));
            }
            finish_workers(vec![worker])
        }
        Family::Hostile(hostile) => hostile_cache(plan, *hostile),
        Family::ForkChildSigterm => fork_child_sigterm(plan),
        Family::ForkDuringSave => fork_during_save(plan),
        Family::CleanSwap => {
            let mut engine = engines::new_engine(settings(plan, &plan.cache));
            wiring::sample_registry(1);
            if let Err(error) = engine.set_settings(settings(plan, &plan.second_cache)) {
                give_up(&format!("set_settings: {error}"));
            }
            wiring::marker("swapped");
            end_holding(plan, engine)
        }
        Family::SwapToNoCache => {
            let mut engine = dirty_engine(plan, &plan.cache, 0);
            wiring::sample_registry(1);
            let no_cache = RuntimeSettings { runtime_cache: None, ..settings(plan, &plan.cache) };
            if let Err(error) = engine.set_settings(no_cache) {
                give_up(&format!("set_settings: {error}"));
            }
            wiring::marker("swapped");
            wiring::sample_registry(0);
            // Kernels now live in memory only: compiled, then found.
            wiring::marker("engine-works");
            compile(&engine, plan.kernels, 1);
            compile(&engine, plan.kernels, 1);
            wiring::marker("engine-worked");
            let _engine = engine;
            end(plan.ending)
        }
        Family::WriteThrough => {
            let engine = dirty_engine(plan, &plan.cache, 0);
            wiring::marker("compiled");
            end_holding(plan, engine)
        }
        Family::NoAutosave => {
            let registry_before = runtime_cache::exit_registry_len();
            let cache = match RuntimeCache::open(&plan.cache, CacheOptions::default()) {
                Ok(cache) => cache,
                Err(error) => give_up(&format!("open {}: {error}", plan.cache)),
            };
            let registry_after = runtime_cache::exit_registry_len();
            wiring::record(
                Line::new("construction_registry")
                    .with("before", registry_before as u64)
                    .with("after", registry_after as u64),
            );
            let key = scenarios::catalog::old_cache_keys()[0];
            cache.insert(key, scenarios::catalog::our_artifact(plan.artifact_bytes));
            wiring::record(Line::new("inserted").with("key", key.to_hex()).with("dirty", u64::from(cache.is_dirty())));
            wiring::sample_registry(0);
            // Alive at exit, never dropped: only an exit hook could save it.
            let _leaked: &'static RuntimeCache = Box::leak(Box::new(cache));
            end(plan.ending)
        }
        Family::Concurrent { processes } | Family::ManyWriters { processes } => {
            let workers: Vec<Child> = (0..*processes).map(|index| spawn_worker(plan, index)).collect();
            for index in 0..*processes {
                wait_for_file(&format!("ready-{index}"));
            }
            touch("go");
            finish_workers(workers)
        }
        Family::DropExitRace { rounds } => {
            let mut code = ExitCode::SUCCESS;
            for round in 0..*rounds {
                if finish_workers(vec![spawn_worker(plan, round)]) != ExitCode::SUCCESS {
                    code = ExitCode::FAILURE;
                }
            }
            code
        }
        Family::CrashMidSave(_) => {
            let code = finish_workers(vec![spawn_worker(plan, 0)]);
            // The next open must succeed and clean up the crashed save's temp file.
            match RuntimeCache::open(&plan.cache, CacheOptions::default()) {
                Ok(cache) => wiring::record(Line::new("reopened").with("entries", cache.len() as u64)),
                Err(error) => give_up(&format!("reopen after the crash failed: {error}")),
            }
            code
        }
        Family::SaveFails(SaveFailure::LockHeld) => {
            // The worker opens its cache first, then we hold the lock for good while it ends.
            let (lock, worker) = lock_once_worker_is_ready(plan);
            let code = finish_workers(vec![worker]);
            drop(lock);
            code
        }
        Family::SaveRecovery { write_through } => save_recovery(plan, *write_through),
        Family::SaveRace { change } => save_race(plan, *change),
        Family::FailedAppendThenLearns => {
            let engine = dirty_engine(plan, &plan.cache, 0);
            let cache = cache_of(&engine);
            append_from_another_handle(&plan.cache);
            if let Err(error) = fail::cfg("save-before-rename", "return") {
                give_up(&format!("arm failpoint: {error}"));
            }
            let failed = cache.save().is_err();
            fail::remove("save-before-rename");
            let saved = cache.save().is_ok();
            let learned = cache.get(&scenarios::catalog::other_writer_entry().0).is_some();
            wiring::record(
                Line::new("learned")
                    .with("failed", u64::from(failed))
                    .with("saved", u64::from(saved))
                    .with("held", u64::from(learned)),
            );
            end_holding(plan, engine)
        }
        Family::LateSignal => {
            let _engine = dirty_engine(plan, &plan.cache, 0);
            wiring::sample_registry(1);
            // Twice the exit budget after the handler was installed.
            std::thread::sleep(SHORT_EXIT_DEADLINE * 2);
            wiring::marker("awaiting-signal");
            loop {
                std::thread::park();
            }
        }
        Family::ExitBudget { .. } => {
            let (lock, worker) = lock_once_worker_is_ready(plan);
            wait_for_file("ending");
            // The clock of `within_deadline` starts here, in this process, as the worker ends.
            wiring::marker("worker-ending");
            let code = finish_workers(vec![worker]);
            drop(lock);
            code
        }
        Family::OtherVersion { at_save } => {
            let engine = engines::new_engine(settings(plan, &plan.cache));
            record_engine_built(&engine);
            compile(&engine, plan.kernels, 0);
            if *at_save {
                // A newer build of the application saves the same path meanwhile (temp, rename).
                let temp = format!("newer-build-{}.tmp", plan.cache);
                if let Err(error) = fs::write(&temp, scenarios::catalog::future_version_bytes())
                    .and_then(|()| fs::rename(&temp, &plan.cache))
                {
                    give_up(&format!("write the newer build's file: {error}"));
                }
                wiring::marker("newer-build-saved");
            }
            let live = engine.runtime_cache().map_or(0, |cache| u64::from(cache.autosaves()));
            wiring::sample_registry(live);
            let _engine = engine;
            end(plan.ending)
        }
        Family::OpenWhileLocked => {
            let lock = open_lock(&plan.cache);
            if let Err(error) = lock.lock() {
                give_up(&format!("take the lock: {error}"));
            }
            let worker = spawn_worker(plan, 0);
            let started = Instant::now();
            while !Path::new("opened").exists() && started.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(lock);
            finish_workers(vec![worker])
        }
        Family::FailedSwap => {
            if let Err(error) = fs::create_dir(&plan.second_cache) {
                give_up(&format!("make the folder {}: {error}", plan.second_cache));
            }
            let mut engine = dirty_engine(plan, &plan.cache, 0);
            wiring::sample_registry(1);
            if let Err(error) = engine.set_settings(settings(plan, &plan.second_cache)) {
                give_up(&format!("set_settings: {error}"));
            }
            record_engine_built(&engine);
            compile(&engine, plan.kernels, 1);
            wiring::marker("swapped");
            // Running cold: no autosaving handle is left.
            wiring::sample_registry(0);
            let _engine = engine;
            end(plan.ending)
        }
        Family::Remove { clear } => {
            let engine = engines::new_engine(settings(plan, &plan.cache));
            let cache = cache_of(&engine);
            if *clear {
                cache.clear();
                wiring::record(Line::new("cleared"));
            } else {
                let key = scenarios::catalog::old_cache_keys()[0];
                let held = cache.remove(&key);
                wiring::record(Line::new("removed").with("key", key.to_hex()).with("held", u64::from(held)));
            }
            end_holding(plan, engine)
        }
        Family::ReinsertSameBytes => {
            let engine = engines::new_engine(settings(plan, &plan.cache));
            let cache = cache_of(&engine);
            let key = scenarios::catalog::old_cache_keys()[0];
            let Some(held) = cache.get(&key) else {
                give_up("the seeded entry did not load");
            };
            cache.insert(key, held);
            wiring::record(Line::new("inserted").with("key", key.to_hex()).with("dirty", u64::from(cache.is_dirty())));
            end_holding(plan, engine)
        }
        Family::Supersede(supersession) => {
            let engine = engines::new_engine(settings(plan, &plan.cache));
            let cache = cache_of(&engine);
            let key = scenarios::catalog::old_cache_keys()[0];
            for (round, size) in (0u8..).zip(supersession.artifact_sizes()) {
                cache.insert(key, bytes::Bytes::from(vec![round; size]));
                if let Err(error) = cache.save() {
                    give_up(&format!("explicit save {round}: {error}"));
                }
            }
            end_holding(plan, engine)
        }
        Family::AppendAfterAnotherRewrite => {
            let engine = dirty_engine(plan, &plan.cache, 0);
            let other = another_handle(&plan.cache, CacheOptions::default());
            let removed = scenarios::catalog::old_cache_keys()[0];
            if !other.remove(&removed) {
                give_up("the other handle did not hold the first old entry");
            }
            // Artifacts as large as the kernels': the rewritten file is larger than the seeded one.
            for (n, (key, _)) in (0u8..).zip(scenarios::catalog::other_writer_entries(2)) {
                other.insert(key, bytes::Bytes::from(vec![n; plan.artifact_bytes]));
            }
            if let Err(error) = other.save() {
                give_up(&format!("the other handle's save: {error}"));
            }
            end_holding(plan, engine)
        }
        Family::TornTailByAnotherProcess => {
            let engine = dirty_engine(plan, &plan.cache, 0);
            finish_workers(vec![spawn_worker(plan, 0)]);
            end_holding(plan, engine)
        }
        Family::FramesSinceRewrite => frames_since_rewrite(plan),
        Family::RemoveAfterAnotherAppend => {
            let engine = engines::new_engine(settings(plan, &plan.cache));
            let cache = cache_of(&engine);
            append_from_another_handle(&plan.cache);
            let removed = scenarios::catalog::old_cache_keys()[0];
            let held = cache.remove(&removed);
            wiring::record(Line::new("removed").with("key", removed.to_hex()).with("held", u64::from(held)));
            end_holding(plan, engine)
        }
        Family::SharedKey | Family::SharedKeyInRewrite => {
            let engine = engines::new_engine(settings(plan, &plan.cache));
            let cache = cache_of(&engine);
            let key = scenarios::catalog::old_cache_keys()[0];
            cache.insert(key, scenarios::catalog::our_artifact(plan.artifact_bytes));
            wiring::record(Line::new("inserted").with("key", key.to_hex()));
            // Another process saves the same path meanwhile (temp, rename), its artifact under `key`.
            let temp = format!("other-writer-{}.tmp", plan.cache);
            let other = match plan.family {
                Family::SharedKeyInRewrite => scenarios::catalog::previous_version_cache_bytes(),
                _ => scenarios::catalog::old_cache_bytes(),
            };
            if let Err(error) = fs::write(&temp, other).and_then(|()| fs::rename(&temp, &plan.cache)) {
                give_up(&format!("write the other process's file: {error}"));
            }
            wiring::marker("other-saved");
            end_holding(plan, engine)
        }
        Family::SaveFails(SaveFailure::DiskFull) => {
            let engine = dirty_engine(plan, &plan.cache, 0);
            let journal_len = std::env::var_os(exit_harness::journal::JOURNAL_ENV)
                .and_then(|path| fs::metadata(path).ok())
                .map_or(0, |metadata| metadata.len());
            let old_len = fs::metadata(&plan.cache).map_or(0, |metadata| metadata.len());
            // Room for the journal to grow, none for the new cache file.
            let limit = journal_len.max(old_len) + 32 * 1024;
            if let Err(error) = sys::limit_file_size(limit) {
                give_up(&format!("setrlimit: {error}"));
            }
            wiring::record(Line::new("file_size_limit").with("bytes", limit));
            end_holding(plan, engine)
        }
    }
}

/// Runs worker `index` of a multi-process family.
pub fn worker(plan: &ChildPlan, index: u32) -> ExitCode {
    match &plan.family {
        Family::Concurrent { .. } | Family::ManyWriters { .. } => {
            let engine = dirty_engine(plan, &plan.cache, index + 1);
            wiring::sample_registry(1);
            touch(&format!("ready-{index}"));
            wait_for_file("go");
            drop(engine);
            ExitCode::SUCCESS
        }
        Family::DropExitRace { .. } => {
            let engine = dirty_engine(plan, &plan.cache, index + 1);
            wiring::sample_registry(1);
            let barrier = Arc::new(Barrier::new(2));
            let dropper_barrier = barrier.clone();
            std::thread::spawn(move || {
                dropper_barrier.wait();
                drop(engine);
            });
            barrier.wait();
            // Main returns (and the process exits) while the other thread drops the engine.
            ExitCode::SUCCESS
        }
        Family::TornTailByAnotherProcess => {
            let engine = dirty_engine(plan, &plan.cache, index + 1);
            let cache = cache_of(&engine);
            if let Err(error) = cache.save() {
                give_up(&format!("the worker's first save: {error}"));
            }
            compile(&engine, 1, index + 2);
            let armed = fail::cfg_callback("save-mid-write", || {
                wiring::marker("crash-point");
                let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
            });
            if let Err(error) = armed {
                give_up(&format!("arm failpoint: {error}"));
            }
            let _ = cache.save();
            give_up("the worker's second save finished without reaching save-mid-write")
        }
        Family::CrashMidSave(step) => {
            let engine = dirty_engine(plan, &plan.cache, 0);
            wiring::sample_registry(1);
            let armed = fail::cfg_callback(step.failpoint(), || {
                wiring::marker("crash-point");
                let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
            });
            if let Err(error) = armed {
                give_up(&format!("arm failpoint: {error}"));
            }
            drop(engine);
            give_up("the save finished without reaching the crash point")
        }
        Family::WarmStart => {
            drop(dirty_engine(plan, &plan.cache, 0));
            ExitCode::SUCCESS
        }
        Family::LockContention => {
            let [open, save, drop_step] = CONTENDED_STEPS;
            wait_for_file(&format!("locked-{open}"));
            let engine = dirty_engine(plan, &plan.cache, 0);
            wiring::sample_registry(1);
            touch(&format!("done-{open}"));
            wait_for_file(&format!("locked-{save}"));
            if let Some(Err(error)) = engine.runtime_cache().map(|cache| cache.save()) {
                give_up(&format!("explicit save under contention: {error}"));
            }
            touch(&format!("done-{save}"));
            compile(&engine, plan.kernels, 1);
            wait_for_file(&format!("locked-{drop_step}"));
            drop(engine);
            wiring::sample_registry(0);
            touch(&format!("done-{drop_step}"));
            ExitCode::SUCCESS
        }
        Family::SaveFails(SaveFailure::LockHeld) => {
            // The exit's total budget, not the (longer) lock timeout, bounds the exit.
            runtime_cache::set_exit_deadline(EXIT_DEADLINE_WHEN_LOCKED);
            let engine = dirty_engine(plan, &plan.cache, 0);
            touch("ready-0");
            wait_for_file("locked");
            end_holding(plan, engine)
        }
        Family::ExitBudget { handles, busy } => {
            // One budget for the whole exit, far below the 5 s lock timeout.
            runtime_cache::set_exit_deadline(SHORT_EXIT_DEADLINE);
            // Registered first, so the exit meets it first, while its explicit save still runs.
            let busy = busy.then(|| Arc::new(dirty_engine(plan, &plan.cache, handles + 1)));
            let leaked: Vec<Engine> = (0..*handles).map(|index| dirty_engine(plan, &plan.cache, index + 1)).collect();
            wiring::sample_registry(u64::from(*handles) + u64::from(busy.is_some()));
            touch("ready-0");
            wait_for_file("locked");
            if let Some(busy) = busy {
                let saver = busy.clone();
                std::thread::spawn(move || {
                    // Mid-program: waits for the lock up to the lock timeout (5 s).
                    if let Some(outcome) = saver.runtime_cache().map(RuntimeCache::save) {
                        wiring::record(Line::new("explicit_save").with("ok", u64::from(outcome.is_ok())));
                    }
                });
                // Let the explicit save reach its wait for the lock.
                std::thread::sleep(Duration::from_millis(100));
                std::mem::forget(busy);
            }
            for engine in leaked {
                let _kept = holders::place(Holder::BoxLeak, engine);
            }
            touch("ending");
            end(plan.ending)
        }
        Family::OpenWhileLocked => {
            wiring::marker("opening");
            let engine = engines::new_engine(settings(plan, &plan.cache));
            wiring::record(Line::new("opened"));
            touch("opened");
            compile(&engine, plan.kernels, 0);
            wiring::sample_registry(1);
            drop(engine);
            wiring::sample_registry(0);
            ExitCode::SUCCESS
        }
        other => give_up(&format!("family {other:?} has no workers")),
    }
}

/// The save-recovery family: a save fails while another open file description holds the lock
/// (this process's own: `flock` locks conflict between open file descriptions), then the lock is
/// released and the handle, dropped, saves every entry.
fn save_recovery(plan: &ChildPlan, write_through: bool) -> ExitCode {
    let lock = open_lock(&plan.cache);
    if let Err(error) = lock.lock() {
        give_up(&format!("take the lock: {error}"));
    }
    wiring::marker("locked");
    // With write-through, every insert's save fails here.
    let engine = dirty_engine(plan, &plan.cache, 0);
    if !write_through && let Some(outcome) = engine.runtime_cache().map(RuntimeCache::save) {
        wiring::record(Line::new("explicit_save").with("ok", u64::from(outcome.is_ok())));
    }
    if let Err(error) = lock.unlock() {
        give_up(&format!("release the lock: {error}"));
    }
    wiring::marker("unlocked");
    end_holding(plan, engine)
}

/// The save-race family: another thread makes `change` to the handle while an explicit save is
/// between its snapshot and its commit (the failpoint `save-before-rename` fires there on both
/// save paths: before an append's write, before a rewrite's rename); then the engine is dropped.
fn save_race(plan: &ChildPlan, change: RaceChange) -> ExitCode {
    let engine = Arc::new(dirty_engine(plan, &plan.cache, 0));
    if engine.runtime_cache().is_none() {
        give_up("the engine has no cache");
    }
    if change.another_handle_appends_first() {
        append_from_another_handle(&plan.cache);
    }
    let fired = AtomicBool::new(false);
    let racer = engine.clone();
    let artifact_bytes = plan.artifact_bytes;
    let armed = fail::cfg_callback("save-before-rename", move || {
        if fired.swap(true, Ordering::SeqCst) {
            return;
        }
        let racer = racer.clone();
        let changed = std::thread::spawn(move || change_during_save(&racer, change, artifact_bytes)).join();
        if changed.is_err() {
            give_up("the racing thread panicked");
        }
        wiring::marker("changed-during-save");
    });
    if let Err(error) = armed {
        give_up(&format!("arm failpoint: {error}"));
    }
    if let Some(Err(error)) = engine.runtime_cache().map(RuntimeCache::save) {
        give_up(&format!("explicit save: {error}"));
    }
    // Drops the callback and its clone of the engine.
    fail::remove("save-before-rename");
    let Ok(engine) = Arc::try_unwrap(engine) else {
        give_up("the engine is still shared after the save");
    };
    end_holding(plan, engine)
}

/// Another handle on `cache` saves [`scenarios::catalog::other_writer_entry`] (an append, as
/// another process's save would be) and is dropped clean.
fn append_from_another_handle(cache: &str) {
    let other = another_handle(cache, CacheOptions::default());
    let (key, artifact) = scenarios::catalog::other_writer_entry();
    other.insert(key, artifact);
    if let Err(error) = other.save() {
        give_up(&format!("the other handle's save: {error}"));
    }
}

/// The save-race family's change, made on the racing thread and journaled.
fn change_during_save(engine: &Engine, change: RaceChange, artifact_bytes: usize) {
    let Some(cache) = engine.runtime_cache() else { return };
    let line = match change {
        RaceChange::NewEntry => {
            compile(engine, 1, 1);
            return;
        }
        RaceChange::ReplacedEntry => {
            let key = match engine.kernel(&kernel_spec(0, 0)) {
                Ok(kernel) => kernel.key,
                Err(error) => give_up(&format!("find k0_0 again: {error}")),
            };
            cache.insert(key, scenarios::catalog::our_artifact(artifact_bytes));
            Line::new("replaced").with("key", key.to_hex())
        }
        RaceChange::RemovedEntry => {
            let key = scenarios::catalog::old_cache_keys()[0];
            Line::new("removed").with("key", key.to_hex()).with("held", u64::from(cache.remove(&key)))
        }
        RaceChange::RemovedAppendedEntry => {
            let key = scenarios::catalog::other_writer_entry().0;
            Line::new("removed").with("key", key.to_hex()).with("held", u64::from(cache.remove(&key)))
        }
        RaceChange::Cleared => {
            cache.clear();
            Line::new("cleared")
        }
        RaceChange::EntryAlreadyOnDisk => {
            let (key, artifact) = scenarios::catalog::other_writer_entry();
            cache.insert(key, artifact);
            Line::new("inserted").with("key", key.to_hex())
        }
        RaceChange::EntryOnDiskWithOtherBytes => {
            let key = scenarios::catalog::other_writer_entry().0;
            cache.insert(key, scenarios::catalog::our_artifact(artifact_bytes));
            Line::new("inserted").with("key", key.to_hex())
        }
    };
    wiring::record(line);
}

/// The hostile family: plants `hostile` (before the open, or between the open and the exit),
/// journals what the engine's construction came to (`engine_built`, between the marker
/// `opening` and that event), proves the engine works (its kernels compiled, then found, between
/// `engine-works` and `engine-worked`), and ends with the engine in the plan's holder, alive at
/// exit, so that its exit hook, if it has one, meets what was planted. The exit budget is short:
/// a save that blocks on what was planted shows as an exit that never ends.
fn hostile_cache(plan: &ChildPlan, hostile: Hostile) -> ExitCode {
    runtime_cache::set_exit_deadline(HOSTILE_EXIT_DEADLINE);
    let cache = Path::new(&plan.cache);
    let folder = cache.parent().filter(|folder| !folder.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let target = scenarios::plan::hostile_link_target(hostile).unwrap_or_default();
    let planted = match hostile {
        Hostile::SymlinkedLock => plant_link_of_another_user(target, &lock_path(&plan.cache)),
        Hostile::FifoAtOpen => sys::make_fifo(cache),
        Hostile::FolderIsSymlink => plant_link_of_another_user(target, folder),
        Hostile::FolderWorldWritable => fs::set_permissions(folder, fs::Permissions::from_mode(0o777)),
        Hostile::FolderOwnedByAnotherUser => std::os::unix::fs::chown(folder, Some(NOBODY), Some(NOBODY)),
        Hostile::FileOwnedByAnotherUser => std::os::unix::fs::chown(cache, Some(NOBODY), Some(NOBODY)),
        Hostile::OversizedFile => plant_oversized_file(cache),
        Hostile::TempLookalikes => {
            let [_, foreign, link] = scenarios::plan::TEMP_LOOKALIKES;
            std::os::unix::fs::chown(foreign, Some(NOBODY), Some(NOBODY))
                .and_then(|()| plant_link_of_another_user(&plan.cache, Path::new(link)))
        }
        Hostile::FifoBeforeExitSave | Hostile::SymlinkBeforeExitSave | Hostile::FlippedHeaderBit => Ok(()),
    };
    if let Err(error) = planted {
        give_up(&format!("plant {hostile:?} (this cell needs root, as CI runs, to act as another user): {error}"));
    }
    wiring::marker("opening");
    let engine = engines::new_engine(settings(plan, &plan.cache));
    record_engine_built(&engine);
    wiring::marker("engine-works");
    compile(&engine, plan.kernels, 0);
    compile(&engine, plan.kernels, 0);
    wiring::marker("engine-worked");
    // The engine opened a missing file: the path is free for what is planted.
    let planted_after_open = match hostile {
        Hostile::FifoBeforeExitSave => sys::make_fifo(cache),
        Hostile::SymlinkBeforeExitSave => plant_link_of_another_user(target, cache),
        _ => Ok(()),
    };
    if let Err(error) = planted_after_open {
        give_up(&format!("plant {hostile:?} after the open: {error}"));
    }
    let live = engine.runtime_cache().map_or(0, |cache| u64::from(cache.autosaves()));
    wiring::sample_registry(live);
    let _main_local = holders::place(plan.holder, engine);
    end(plan.ending)
}

/// The size of the hostile family's oversized (sparse) cache file: 1 GiB, over the cache's
/// 512 MiB default limit.
const OVERSIZED_FILE_BYTES: u64 = 1 << 30;

/// Plants a sparse file of [`OVERSIZED_FILE_BYTES`] at `cache`: made under another name and
/// hard-linked into place, so that the harness's black box does not count its making as a save
/// of `cache` (it counts renames onto the file and writes into it).
fn plant_oversized_file(cache: &Path) -> std::io::Result<()> {
    let made = Path::new("oversized-file.planting");
    File::create(made)?.set_len(OVERSIZED_FILE_BYTES)?;
    fs::hard_link(made, cache)?;
    fs::remove_file(made)
}

/// The uid and gid of `nobody`: the other user of the hostile family.
const NOBODY: u32 = 65534;

/// Plants a symlink at `link` pointing to `target`, owned by another user (`nobody`), as an
/// attacker sharing the folder would leave it.
fn plant_link_of_another_user(target: &str, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)?;
    std::os::unix::fs::lchown(link, Some(NOBODY), Some(NOBODY))
}

/// The engine's cache, or gives up (every family that calls this builds its engine with one).
fn cache_of(engine: &Engine) -> &RuntimeCache {
    engine.runtime_cache().unwrap_or_else(|| give_up("the engine has no cache"))
}

/// Another handle on `cache` in this process (as a second part of the application would open
/// it), or gives up.
fn another_handle(cache: &str, options: CacheOptions) -> RuntimeCache {
    RuntimeCache::open(cache, options)
        .unwrap_or_else(|error| give_up(&format!("open another handle on {cache}: {error}")))
}

/// Journals what `RuntimeCache::entries` lists (kind `entries`): per entry, in key order, its
/// key, its last use in Unix seconds (0 when unknown) and whether it is dirty.
fn record_entries(engine: &Engine) {
    let cache = cache_of(engine);
    let entries = cache.entries();
    let last_used = |entry: &runtime_cache::EntryInfo| {
        entry.last_used.and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |since| since.as_secs())
    };
    wiring::record(
        Line::new("entries")
            .with("keys", entries.iter().map(|entry| entry.key.to_hex()).collect::<Vec<_>>())
            .with("last_used", entries.iter().map(last_used).collect::<Vec<_>>())
            .with("dirty", entries.iter().map(|entry| entry.dirty).collect::<Vec<_>>()),
    );
}

/// Journals `engine_built`: whether the engine's cache is open (and its entries) or unavailable
/// (and the typed reason `Engine::cache_unavailable` gives).
fn record_engine_built(engine: &Engine) {
    wiring::record(match (engine.cache_unavailable(), engine.runtime_cache()) {
        (Some(error), _) => Line::new("engine_built")
            .with("cache", "unavailable")
            .with("reason", error.unavailable_reason().to_string())
            .with("error", error.to_string()),
        (None, Some(cache)) => Line::new("engine_built").with("cache", "open").with("entries", cache.len() as u64),
        (None, None) => Line::new("engine_built").with("cache", "none"),
    });
}

fn churn(plan: &ChildPlan, engines: u32, dirty_every: u32) -> ExitCode {
    record_rss();
    for index in 0..engines {
        let engine = engines::new_engine(settings(plan, &plan.cache));
        if index % dirty_every.max(1) == 0 {
            compile(&engine, 1, index);
        }
        if index % 500 == 0 {
            wiring::sample_registry(1);
        }
        drop(engine);
        if index % 500 == 0 {
            wiring::sample_registry(0);
            record_rss();
        }
    }
    wiring::sample_registry(0);
    record_rss();
    end(plan.ending)
}

/// Builds an engine whose construction meets `cause`, and journals what came of it:
/// - `init_failed`: `Engine::new` returned an error (the compiler causes);
/// - `engine_built` with `cache=unavailable` and the typed `reason` the engine reports through
///   `Engine::cache_unavailable` (the observer journals its own `cache_unavailable` event), or
///   with `cache=open` and the entries loaded.
///
/// Then `construction_registry` (the exit registry's size before and after `Engine::new`) and a
/// registry sample. A built engine then proves it works: its kernels are compiled once, then
/// found again (in memory when it runs cold), between the markers `engine-works` and
/// `engine-worked`; it is leaked, so it is still alive at exit, where an exit hook registered for
/// it would save it. Last, with the failpoint removed, a later construction in the same process
/// works (on the second cache) and the process ends holding it.
fn partial_init_failure(plan: &ChildPlan, cause: &InitFailure) -> ExitCode {
    let mut failing = settings(plan, &plan.cache);
    let prepared = match cause {
        InitFailure::Failpoint(_) => Ok(()),
        InitFailure::PathIsFolder => fs::create_dir(&plan.cache),
        InitFailure::ParentNotCreatable => {
            failing.runtime_cache = Some(Path::new("blocker").join(&plan.cache));
            fs::write("blocker", b"a regular file where a folder should be")
        }
        InitFailure::UntrustedFile => fs::set_permissions(&plan.cache, fs::Permissions::from_mode(0o666)),
        InitFailure::NvrtcMissing if runtime_cache::nvrtc_available() => {
            give_up(
                "NVRTC is installed system-wide (found with LD_LIBRARY_PATH unset): this cell cannot make it missing",
            );
        }
        InitFailure::NvrtcMissing => {
            failing.backend = Backend::Nvrtc;
            Ok(())
        }
    };
    if let Err(error) = prepared {
        give_up(&format!("prepare {cause:?}: {error}"));
    }
    let registry_before = runtime_cache::exit_registry_len();
    let built = Engine::new(failing);
    let registry_after = runtime_cache::exit_registry_len();
    let engine = match built {
        Err(error) => {
            wiring::record(Line::new("init_failed").with("error", error.to_string()));
            None
        }
        Ok(engine) => {
            record_engine_built(&engine);
            Some(engine)
        }
    };
    wiring::record(
        Line::new("construction_registry").with("before", registry_before as u64).with("after", registry_after as u64),
    );
    // The live autosave handles: the built engine's cache, if it has one.
    let live = engine.as_ref().and_then(Engine::runtime_cache).map_or(0, |cache| u64::from(cache.autosaves()));
    wiring::sample_registry(live);
    if let InitFailure::Failpoint(name) = cause {
        fail::remove(name);
    }
    if let Some(engine) = engine {
        wiring::marker("engine-works");
        // The same kernels twice: compiled, then found (in memory when the engine runs cold).
        compile(&engine, plan.kernels, 900);
        compile(&engine, plan.kernels, 900);
        wiring::marker("engine-worked");
        // Alive at exit, never dropped: only an exit hook could still write its cache.
        let _leaked: &'static Engine = Box::leak(Box::new(engine));
    }
    // A later construction in the same process works.
    let engine = dirty_engine(plan, &plan.second_cache, 1);
    wiring::marker("recovered");
    wiring::sample_registry(live + 1);
    let _engine = engine;
    end(plan.ending)
}

fn fork(plan: &ChildPlan, child_exit: Option<i32>) -> ExitCode {
    let engine = dirty_engine(plan, &plan.cache, 0);
    match sys::fork() {
        Err(error) => give_up(&format!("fork: {error}")),
        Ok(Forked::Child) => {
            wiring::marker("forked-child");
            match child_exit {
                Some(code) => std::process::exit(code),
                // Returning drops the inherited engine here, then runs the inherited exit hook.
                None => ExitCode::SUCCESS,
            }
        }
        Ok(Forked::Parent(pid)) => {
            match sys::wait_for(pid) {
                Ok(status) => wiring::record_exit(Line::new("fork_child_exit"), ExitStatus::from_raw(status)),
                Err(error) => give_up(&format!("waitpid: {error}")),
            }
            end_holding(plan, engine)
        }
    }
}

/// The fork family with the termination handler installed: the forked child raises SIGTERM and
/// must die by it (the handler's thread does not exist in the child, so a handler left in place
/// would swallow the signal and the child would hang), saving nothing; the parent then ends
/// holding its engine.
fn fork_child_sigterm(plan: &ChildPlan) -> ExitCode {
    let engine = dirty_engine(plan, &plan.cache, 0);
    match sys::fork() {
        Err(error) => give_up(&format!("fork: {error}")),
        Ok(Forked::Child) => {
            wiring::marker("forked-child");
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
            // Still alive: the signal was caught. The parent's timeout ends the wait.
            std::thread::sleep(Duration::from_secs(30));
            std::process::exit(0)
        }
        Ok(Forked::Parent(pid)) => {
            match sys::wait_for(pid) {
                Ok(status) => wiring::record_exit(Line::new("fork_child_exit"), ExitStatus::from_raw(status)),
                Err(error) => give_up(&format!("waitpid: {error}")),
            }
            end_holding(plan, engine)
        }
    }
}

/// Two handles of the plan's cache take turns appending one new entry each (see
/// [`Family::FramesSinceRewrite`]), then the first saves once more; the engine's handle is
/// dropped clean.
fn frames_since_rewrite(plan: &ChildPlan) -> ExitCode {
    let engine = engines::new_engine(settings(plan, &plan.cache));
    let first = cache_of(&engine);
    let second = another_handle(&plan.cache, CacheOptions::default());
    let frames = usize::try_from(runtime_cache::MAX_APPENDED_FRAMES).unwrap_or(usize::MAX);
    // One entry to create the file, one per appended frame, and one for the save after them.
    let entries = scenarios::catalog::other_writer_entries(frames + 2);
    for (turn, (key, artifact)) in entries.into_iter().enumerate() {
        // The first handle creates the file and makes the last save; in between they alternate.
        let handle = if turn == 0 || turn % 2 == 1 || turn == frames + 1 { first } else { &second };
        handle.insert(key, artifact);
        if let Err(error) = handle.save() {
            give_up(&format!("save {turn}: {error}"));
        }
    }
    drop(second);
    end_holding(plan, engine)
}

/// The fork-during-save family (see [`Family::ForkDuringSave`]).
fn fork_during_save(plan: &ChildPlan) -> ExitCode {
    static CHILD: std::sync::Mutex<Option<libc::pid_t>> = std::sync::Mutex::new(None);
    let engine = dirty_engine(plan, &plan.cache, 0);
    let cache = cache_of(&engine);
    let armed = fail::cfg_callback("save-before-rename", || {
        let mut child = CHILD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if child.is_some() {
            return;
        }
        match sys::fork() {
            Ok(Forked::Child) => {
                wiring::marker("forked-child");
                std::thread::sleep(Duration::from_secs(1));
                sys::exit_at_once(0)
            }
            Ok(Forked::Parent(pid)) => *child = Some(pid),
            Err(error) => give_up(&format!("fork: {error}")),
        }
    });
    if let Err(error) = armed {
        give_up(&format!("arm failpoint: {error}"));
    }
    if let Err(error) = cache.save() {
        give_up(&format!("the explicit save: {error}"));
    }
    fail::remove("save-before-rename");
    let Some(pid) = CHILD.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else {
        give_up("the save never reached save-before-rename");
    };
    wiring::marker("forked-during-save");
    // Journals `save_failed` if the lock the child inherited is still held.
    let options = CacheOptions { lock_timeout: Duration::from_millis(300), ..CacheOptions::default() };
    let other = another_handle(&plan.cache, options);
    let (key, artifact) = scenarios::catalog::other_writer_entry();
    other.insert(key, artifact);
    let _ = other.save();
    match sys::wait_for(pid) {
        Ok(status) => wiring::record_exit(Line::new("fork_child_exit"), ExitStatus::from_raw(status)),
        Err(error) => give_up(&format!("waitpid: {error}")),
    }
    end_holding(plan, engine)
}

/// Engine settings for `cache` with the plan's synthetic compiler.
fn settings(plan: &ChildPlan, cache: &str) -> RuntimeSettings {
    let durability = match plan.family {
        // Thousands of saves: skip the fsync, which no oracle here can observe.
        Family::Churn { .. } => Durability::None,
        Family::ManyWriters { .. } => CacheOptions::default().durability,
        _ => Durability::SyncFile,
    };
    // Crash exploration (scenarios::crash) picks the level per run.
    let durability = match std::env::var(scenarios::crash::DURABILITY_ENV).as_deref() {
        Ok("none") => Durability::None,
        Ok("sync-file") => Durability::SyncFile,
        Ok("sync-file-and-folder") => Durability::SyncFileAndFolder,
        _ => durability,
    };
    let compiler = SyntheticCompiler::new(plan.artifact_bytes, Duration::ZERO);
    // A save that fails on a held lock gives up soon, where the cell waits for the failure.
    let lock_timeout = match plan.family {
        Family::SaveRecovery { .. } => Duration::from_millis(200),
        // Many writers meet the cache as an application does: with its default options.
        Family::ManyWriters { .. } => CacheOptions::default().lock_timeout,
        _ => Duration::from_secs(5),
    };
    let mut settings = engines::settings(cache, compiler, durability, lock_timeout);
    let limits = &mut settings.cache_options.limits;
    limits.max_entries = match plan.family {
        Family::LeastRecentlyUsedDropped | Family::LastUseFromAnotherHandle { .. } => 2,
        Family::TrimmedAtOpen | Family::DirtyEntryEvicted => 1,
        Family::AtTheLimits => 3,
        _ => limits.max_entries,
    };
    limits.max_file_bytes = match plan.family {
        Family::OverMaxFileBytes => 1024,
        Family::AtTheLimits => scenarios::plan::at_the_limits_file_bytes(plan.artifact_bytes),
        _ => limits.max_file_bytes,
    };
    settings.cache_options.write_through =
        matches!(plan.family, Family::SaveRecovery { write_through: true } | Family::WriteThrough);
    settings
}

/// An engine on `cache` that has compiled `plan.kernels` kernels (so it is dirty).
fn dirty_engine(plan: &ChildPlan, cache: &str, seed: u32) -> Engine {
    let engine = engines::new_engine(settings(plan, cache));
    compile(&engine, plan.kernels, plan.kernel_seed * 1000 + seed);
    engine
}

/// Journals a registry sample (the engine is the one live handle), places `engine` where the
/// plan's holder says, and ends the process with it there.
fn end_holding(plan: &ChildPlan, engine: Engine) -> ExitCode {
    wiring::sample_registry(1);
    let _main_local = holders::place(plan.holder, engine);
    end(plan.ending)
}

/// What the lock-contention cell's worker does while another process holds the lock.
const CONTENDED_STEPS: [&str; 3] = ["open", "explicit-save", "drop"];

/// How long the lock-contention cell holds the lock each time: well within the 5 s lock timeout.
const CONTENTION: Duration = Duration::from_millis(300);

/// The exit deadline of the lock-held cell's worker: far below its 5 s lock timeout.
const EXIT_DEADLINE_WHEN_LOCKED: Duration = Duration::from_millis(300);

/// The exit budget of the hostile cells: a refused save gives up at once, a good one (the set-aside
/// case) takes milliseconds.
const HOSTILE_EXIT_DEADLINE: Duration = Duration::from_secs(1);

/// The exit budget of the late-signal and exit-budget cells.
const SHORT_EXIT_DEADLINE: Duration = Duration::from_millis(300);

/// Compiles `count` distinct kernels named after `seed`, journaling each one's key and origin.
fn compile(engine: &Engine, count: u32, seed: u32) {
    for index in 0..count {
        let name = format!("k{seed}_{index}");
        let kernel = engines::kernel(engine, &kernel_spec(seed, index));
        let origin = if kernel.origin == KernelOrigin::CacheHit { "hit" } else { "compiled" };
        wiring::record(Line::new("kernel").with("name", name).with("key", kernel.key.to_hex()).with("origin", origin));
    }
}

/// Kernel `index` of the kernels named after `seed`.
fn kernel_spec(seed: u32, index: u32) -> KernelSpec {
    let name = format!("k{seed}_{index}");
    let source = format!("extern \"C\" __global__ void {name}(float* x) {{ x[threadIdx.x] *= {index}.0f; }}");
    KernelSpec::new(format!("{name}.cu"), source, name.as_str())
}

fn open_lock(cache: &str) -> File {
    match File::options().create(true).truncate(false).write(true).open(lock_path(cache)) {
        Ok(lock) => lock,
        Err(error) => give_up(&format!("open the lock file: {error}")),
    }
}

/// Starts worker 0, waits until it has opened its cache (it touches `ready-0`), then takes
/// `<cache>.lock` in this process and says so (touches `locked`). The lock is held until the
/// returned file is dropped.
fn lock_once_worker_is_ready(plan: &ChildPlan) -> (File, Child) {
    let lock = open_lock(&plan.cache);
    let mut worker = spawn_worker(plan, 0);
    wait_for_file("ready-0");
    if let Err(error) = lock.lock() {
        let _ = worker.kill();
        let _ = worker.wait();
        give_up(&format!("take the lock: {error}"));
    }
    touch("locked");
    (lock, worker)
}

fn spawn_worker(plan: &ChildPlan, index: u32) -> Child {
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("scenario-child"));
    match Command::new(program).arg(plan.to_arg()).arg("--worker").arg(index.to_string()).spawn() {
        Ok(child) => child,
        Err(error) => give_up(&format!("spawn worker {index}: {error}")),
    }
}

/// Waits for every worker and journals how each ended; gives up if one cannot be waited for.
fn finish_workers(workers: Vec<Child>) -> ExitCode {
    for mut worker in workers {
        match worker.wait() {
            Ok(status) => wiring::record_exit(Line::new("worker_exit"), status),
            Err(error) => give_up(&format!("wait for worker: {error}")),
        }
    }
    ExitCode::SUCCESS
}

fn record_rss() {
    let kib = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    wiring::record(Line::new("rss").with("kib", kib));
}

fn lock_path(cache: &str) -> PathBuf {
    PathBuf::from(format!("{cache}.lock"))
}

fn touch(name: &str) {
    let _ = fs::write(name, b"");
}

/// Polls for `name` in the scratch folder (the harness's timeout bounds the wait).
fn wait_for_file(name: &str) {
    let started = Instant::now();
    while !Path::new(name).exists() {
        if started.elapsed() > Duration::from_secs(20) {
            give_up(&format!("{name} never appeared"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
