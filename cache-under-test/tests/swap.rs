//! An engine's implicit cache saves exactly once: at drop, or at a swap of cache path (trigger
//! `swap`, and then never again for the old path), and a swap that cannot open the new path
//! changes nothing.
//!
//! Asserts on the process-global observer and exit registry: every test takes `support::serial()`.

mod support;

use std::fs;
use std::path::Path;

use runtime_cache::{
    Backend, CacheError, Engine, KernelOrigin, KernelSpec, RuntimeCache, RuntimeSettings, SyntheticCompiler, Trigger,
    exit_registry_len,
};

fn settings(path: &Path) -> RuntimeSettings {
    RuntimeSettings { backend: Backend::Synthetic(SyntheticCompiler::default()), ..RuntimeSettings::with_cache(path) }
}

fn spec(n: u32) -> KernelSpec {
    KernelSpec::new(format!("k{n}.cu"), format!("extern \"C\" __global__ void k{n}() {{}}"), format!("k{n}"))
}

#[test]
fn a_swap_saves_the_old_cache_once_and_the_new_one_saves_once_at_drop() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.rtk"), dir.path().join("new.rtk"));
    let baseline = exit_registry_len();

    let mut engine = Engine::new(settings(&old)).unwrap();
    assert_eq!(exit_registry_len(), baseline + 1);
    assert_eq!(engine.kernel(&spec(1)).unwrap().origin, KernelOrigin::Compiled);
    assert_eq!(engine.kernel(&spec(1)).unwrap().origin, KernelOrigin::CacheHit);

    engine.set_settings(settings(&new)).unwrap();
    assert_eq!(support::commits_for(&old), [Trigger::Swap], "the old cache saved once, at the swap");
    assert_eq!(exit_registry_len(), baseline + 1, "the old cache left the registry, the new one joined");
    assert_eq!(engine.runtime_cache().unwrap().path(), new);

    // The new cache does not hold the old one's kernel: it compiles again, into the new path.
    assert_eq!(engine.kernel(&spec(1)).unwrap().origin, KernelOrigin::Compiled);
    assert_eq!(engine.kernel(&spec(2)).unwrap().origin, KernelOrigin::Compiled);
    assert!(support::commits_for(&new).is_empty());
    drop(engine);
    assert_eq!(support::commits_for(&old), [Trigger::Swap], "the old cache saved again at drop");
    assert_eq!(support::commits_for(&new), [Trigger::Drop], "the new cache saved once, at drop");
    assert_eq!(exit_registry_len(), baseline);

    assert_eq!(RuntimeCache::open(&old, Default::default()).unwrap().len(), 1);
    assert_eq!(RuntimeCache::open(&new, Default::default()).unwrap().len(), 2);
}

#[test]
fn a_swap_of_a_clean_cache_writes_nothing() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.rtk"), dir.path().join("new.rtk"));
    let mut engine = Engine::new(settings(&old)).unwrap();
    engine.set_settings(settings(&new)).unwrap();
    drop(engine);
    assert!(support::commits_for(&old).is_empty());
    assert!(support::commits_for(&new).is_empty());
    assert!(!old.exists() && !new.exists());
}

/// A cache that cannot be used never fails the engine (issue #12): a swap to one saves the old
/// cache once, like any swap, and the engine runs cold with the typed reason.
#[test]
fn a_swap_to_a_path_that_cannot_be_opened_saves_the_old_one_once_and_runs_cold() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.rtk");
    let folder = dir.path().join("a-folder");
    fs::create_dir(&folder).unwrap();
    let baseline = exit_registry_len();

    let mut engine = Engine::new(settings(&old)).unwrap();
    engine.kernel(&spec(1)).unwrap();
    engine.set_settings(settings(&folder)).expect("a swap to an unusable cache never fails");
    assert!(matches!(engine.cache_unavailable(), Some(CacheError::NotAFile { .. })));
    assert!(engine.runtime_cache().is_none());
    assert_eq!(engine.settings().runtime_cache.as_deref(), Some(folder.as_path()));
    assert_eq!(support::commits_for(&old), [Trigger::Swap]);
    assert_eq!(exit_registry_len(), baseline);
    assert_eq!(engine.kernel(&spec(2)).unwrap().origin, KernelOrigin::Compiled);
    assert_eq!(engine.kernel(&spec(2)).unwrap().origin, KernelOrigin::CacheHit);

    drop(engine);
    assert_eq!(support::commits_for(&old), [Trigger::Swap]);
    assert_eq!(exit_registry_len(), baseline);
}

#[test]
fn a_swap_to_no_cache_saves_the_old_one_once() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.rtk");
    let mut engine = Engine::new(settings(&old)).unwrap();
    engine.kernel(&spec(1)).unwrap();
    engine.set_settings(RuntimeSettings { runtime_cache: None, ..settings(&old) }).unwrap();
    assert!(engine.runtime_cache().is_none());
    assert_eq!(support::commits_for(&old), [Trigger::Swap]);
    // Kernels now live in memory only.
    assert_eq!(engine.kernel(&spec(3)).unwrap().origin, KernelOrigin::Compiled);
    assert_eq!(engine.kernel(&spec(3)).unwrap().origin, KernelOrigin::CacheHit);
    drop(engine);
    assert_eq!(support::commits_for(&old), [Trigger::Swap]);
}
