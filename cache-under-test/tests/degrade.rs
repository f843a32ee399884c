//! A cache that cannot be used degrades to a cold start with a typed, observable reason, never a
//! failed engine; and opening never waits for writers (issue #12, item 6).
//!
//! The observer and the exit registry are process-global: every test here takes
//! `support::serial()`.

mod support;

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use runtime_cache::{
    Backend, CacheError, CacheOptions, Engine, Event, KernelKey, KernelOrigin, KernelSpec, RuntimeCache,
    RuntimeSettings, SyntheticCompiler, UnavailableReason, exit_registry_len,
};

fn settings(path: &Path) -> RuntimeSettings {
    RuntimeSettings { backend: Backend::Synthetic(SyntheticCompiler::default()), ..RuntimeSettings::with_cache(path) }
}

fn spec(n: u32) -> KernelSpec {
    KernelSpec::new(format!("k{n}.cu"), format!("extern \"C\" __global__ void k{n}() {{}}"), format!("k{n}"))
}

/// A saved cache at `path` with two entries.
fn saved(path: &Path) {
    let cache = RuntimeCache::open(path, CacheOptions::default()).unwrap();
    cache.insert(KernelKey([1; 32]), Bytes::from_static(b"one"));
    cache.insert(KernelKey([2; 32]), Bytes::from_static(b"two"));
    cache.save().unwrap();
}

/// Another holder of `<path>.lock` (flock locks conflict between open file descriptions, even
/// within one process).
fn hold_lock(path: &Path) -> File {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let holder = File::options().read(true).write(true).create(true).truncate(false).open(name).unwrap();
    holder.lock().unwrap();
    holder
}

#[test]
fn opening_while_another_process_holds_the_lock_loads_without_waiting_for_it() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    saved(&path);
    let _holder = hold_lock(&path);
    // A lock timeout that an open waiting for the lock would run out of.
    let options = CacheOptions { lock_timeout: Duration::from_millis(50), ..CacheOptions::default() };
    let cache = RuntimeCache::open(&path, options).expect("open does not wait for the lock");
    assert_eq!(cache.len(), 2, "the file was loaded without the lock");
    let engine = Engine::new(RuntimeSettings {
        cache_options: CacheOptions { lock_timeout: Duration::from_millis(50), ..CacheOptions::default() },
        ..settings(&path)
    })
    .expect("engine");
    assert!(engine.cache_unavailable().is_none());
    assert_eq!(engine.runtime_cache().map(RuntimeCache::len), Some(2));
}

#[test]
fn an_engine_whose_cache_is_untrusted_starts_cold_with_a_typed_reason() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    saved(&path);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    let before = support::snapshot(dir.path());
    let registry = exit_registry_len();

    let engine = Engine::new(settings(&path)).expect("an unusable cache never fails the engine");
    assert!(matches!(engine.cache_unavailable(), Some(CacheError::UntrustedFile { .. })));
    assert!(engine.runtime_cache().is_none());
    assert_eq!(exit_registry_len(), registry, "a cache that is not used registers no exit hook");
    assert_eq!(engine.kernel(&spec(1)).unwrap().origin, KernelOrigin::Compiled);
    assert_eq!(engine.kernel(&spec(1)).unwrap().origin, KernelOrigin::CacheHit, "kernels are kept in memory");
    let reported = support::events_for(&path)
        .into_iter()
        .any(|event| matches!(event, Event::CacheUnavailable { reason: UnavailableReason::UntrustedFile, .. }));
    assert!(reported, "no CacheUnavailable event");
    drop(engine);
    assert_eq!(support::snapshot(dir.path()), before, "the untrusted file was written");
}

#[test]
fn a_valid_file_of_another_version_is_left_alone_and_the_engine_starts_cold() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    saved(&path);
    let mut other = fs::read(&path).unwrap();
    // A later version keeps version 3's rule: bytes 32..40 seal the header's first 32 bytes.
    other[8..10].copy_from_slice(&(runtime_cache::format::VERSION + 1).to_le_bytes());
    let checksum = xxhash_rust::xxh3::xxh3_64(&other[..32]);
    other[32..40].copy_from_slice(&checksum.to_le_bytes());
    fs::write(&path, &other).unwrap();
    let before = support::snapshot(dir.path());

    assert!(matches!(RuntimeCache::open(&path, CacheOptions::default()), Err(CacheError::Unsupported { .. })));
    let engine = Engine::new(settings(&path)).expect("a file of another version never fails the engine");
    assert!(matches!(engine.cache_unavailable(), Some(CacheError::Unsupported { .. })));
    assert_eq!(engine.kernel(&spec(1)).unwrap().origin, KernelOrigin::Compiled);
    drop(engine);
    assert_eq!(support::snapshot(dir.path()), before, "a file of another version is neither set aside nor overwritten");
}

#[test]
fn a_settings_swap_to_an_unusable_cache_runs_cold_and_saves_the_old_one() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.rtk");
    let second = dir.path().join("second.rtk");
    saved(&second);
    fs::set_permissions(&second, fs::Permissions::from_mode(0o666)).unwrap();
    let mut engine = Engine::new(settings(&first)).unwrap();
    engine.kernel(&spec(1)).unwrap();
    engine.set_settings(settings(&second)).expect("swapping to an unusable cache never fails");
    assert!(matches!(engine.cache_unavailable(), Some(CacheError::UntrustedFile { .. })));
    assert_eq!(RuntimeCache::open(&first, CacheOptions::default()).unwrap().len(), 1, "the old cache saved once");
    assert_eq!(engine.kernel(&spec(2)).unwrap().origin, KernelOrigin::Compiled);
}
