//! The upstream pull request's four tests (pytorch/TensorRT #4362), ported *as they are*: they
//! call the exit hook by hand ([`runtime_cache::testing::run_exit_hooks_now`]) in the test
//! process and never end a process. `tests/upstream.rs` holds the same four ideas as real exits.
//!
//! `upstream_tests_catch_only_some_defects` re-runs the four under every defect of the zoo and
//! pins down which defects they catch: the README's defect table shows this column next to the
//! catalog's, which catches all of them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use runtime_cache::{Backend, CacheOptions, Engine, Event, KernelSpec, RuntimeSettings, SyntheticCompiler, Trigger};
use scenarios::defects::{Defect, FAILPOINTS_ENV};

/// The ported tests share the process-global observer and registry: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// One ported test at a time, with this process's `FAILPOINTS` (a defect's recipe, when
/// `upstream_tests_catch_only_some_defects` re-runs the test) configured while it runs.
struct Serial {
    _failpoints: fail::FailScenario<'static>,
    _one_at_a_time: MutexGuard<'static, ()>,
}

fn serial() -> Serial {
    let one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    Serial { _failpoints: fail::FailScenario::setup(), _one_at_a_time: one_at_a_time }
}

/// Events about paths under `folder`, recorded from the global observer.
fn record_events(folder: &Path) -> Arc<Mutex<Vec<Event>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (sink, folder) = (events.clone(), folder.to_owned());
    runtime_cache::set_observer(move |event| {
        let path = match event {
            Event::SaveCommitted { path, .. } | Event::SaveFailed { path, .. } | Event::SaveSkipped { path, .. } => {
                path
            }
            _ => return,
        };
        if path.starts_with(&folder) {
            sink.lock().unwrap().push(event.clone());
        }
    });
    events
}

fn commits(events: &Mutex<Vec<Event>>) -> Vec<Trigger> {
    let events = events.lock().unwrap();
    events
        .iter()
        .filter_map(|e| if let Event::SaveCommitted { trigger, .. } = e { Some(*trigger) } else { None })
        .collect()
}

fn dirty_engine(cache: PathBuf) -> Engine {
    let settings = RuntimeSettings {
        runtime_cache: Some(cache),
        backend: Backend::Synthetic(SyntheticCompiler::default()),
        cache_options: CacheOptions::default(),
    };
    let engine = Engine::new(settings).expect("engine");
    engine.kernel(&KernelSpec::new("k.cu", "extern \"C\" __global__ void k() {}", "k")).expect("compile");
    engine
}

mod ported {
    use super::*;

    /// `test_del_swallows_shutdown_import_error_on_path`: a failing save in the destructor does
    /// not escape it. Ported: the save fails (the folder is gone) and the drop returns quietly,
    /// reporting the failure to the observer.
    #[test]
    fn del_swallows_a_failing_save() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("gone");
        let events = record_events(dir.path());
        let engine = dirty_engine(folder.join("kernels.rtc"));
        std::fs::remove_dir_all(&folder).unwrap();
        drop(engine);
        let failed =
            events.lock().unwrap().iter().any(|e| matches!(e, Event::SaveFailed { trigger: Trigger::Drop, .. }));
        assert!(failed, "the failed save was not reported: {:?}", events.lock().unwrap());
    }

    /// `test_atexit_hook_saves_via_weakref`: the exit hook, called by hand on a live handle,
    /// saves it and turns its autosave off (so the destructor does not save again).
    #[test]
    fn atexit_hook_saves_via_weakref() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let events = record_events(dir.path());
        let engine = dirty_engine(dir.path().join("kernels.rtc"));
        runtime_cache::testing::run_exit_hooks_now();
        assert_eq!(commits(&events), [Trigger::Exit], "the hook did not save the live handle once");
        drop(engine);
        assert_eq!(commits(&events), [Trigger::Exit], "the destructor saved again after the hook");
    }

    /// `test_atexit_hook_no_op_on_dead_weakref`: once the handle is gone, the hook does nothing.
    #[test]
    fn atexit_hook_no_op_on_dead_weakref() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let events = record_events(dir.path());
        drop(dirty_engine(dir.path().join("kernels.rtc")));
        let after_drop = commits(&events);
        runtime_cache::testing::run_exit_hooks_now();
        assert_eq!(commits(&events), after_drop, "the hook acted on a dropped handle");
    }

    /// `test_atexit_token_unregistered_after_del`: the destructor unregisters its exit hook
    /// (upstream spied on `atexit.unregister`; ported: the registry shrinks by one).
    #[test]
    fn atexit_token_unregistered_after_del() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let engine = dirty_engine(dir.path().join("kernels.rtc"));
        let with_handle = runtime_cache::exit_registry_len();
        drop(engine);
        assert_eq!(runtime_cache::exit_registry_len(), with_handle - 1, "the drop did not unregister");
    }
}

const PORTED: [&str; 4] = [
    "ported::del_swallows_a_failing_save",
    "ported::atexit_hook_saves_via_weakref",
    "ported::atexit_hook_no_op_on_dead_weakref",
    "ported::atexit_token_unregistered_after_del",
];

/// The defects the four ported tests catch; every other defect passes them.
const CAUGHT_BY_UPSTREAM: [Defect; 4] =
    [Defect::DropOnly, Defect::StrongHook, Defect::NoUnregister, Defect::NoOnceGuard];

#[test]
fn upstream_tests_catch_only_some_defects() {
    let me = std::env::current_exe().unwrap();
    let mut report = String::new();
    for defect in Defect::ALL {
        let failing: Vec<&str> = PORTED
            .iter()
            .copied()
            .filter(|test| {
                let run = Command::new(&me)
                    .args([test, "--exact", "--test-threads=1"])
                    .env(FAILPOINTS_ENV, defect.failpoints())
                    .output()
                    .expect("re-run the test binary");
                let stdout = String::from_utf8_lossy(&run.stdout);
                assert!(stdout.contains("running 1 test"), "{test} did not select exactly one test:\n{stdout}");
                !run.status.success()
            })
            .collect();
        report.push_str(&format!(
            "{:<20} {}\n",
            defect.name(),
            if failing.is_empty() { "missed".into() } else { failing.join(", ") }
        ));
        assert_eq!(
            !failing.is_empty(),
            CAUGHT_BY_UPSTREAM.contains(&defect),
            "{}: upstream's tests {} it\n{report}",
            defect.name(),
            if failing.is_empty() { "missed" } else { "caught" }
        );
    }
    println!("{report}");
}
